"""Handlers for the contract's operations, resolved by operationId
(``CustomersController_update`` -> ``handlers.customers.update``)."""
