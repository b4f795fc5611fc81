"""timbrix-sandbox: a contract-first, stateful sandbox for the Timbrix CFDI 4.0 customers API."""

__version__ = "0.1.0"
