"""Per-request work Connexion 3.3 repeats needlessly, done once instead.

Profiling GET-by-id under load (py-spy, see bench/) showed ~20% of the time in work whose
result never changes between requests:

* ``AsyncOperation.fn`` re-applies the whole decorator chain (parameters, response, context)
  to the handler on *every* request, inspecting its signature each time;
* the security layer inspects the bearer-info function's signature twice per request.

The decorated handler reads the request from Connexion's context at call time, so building it
once per operation is safe. These patch Connexion internals, hence the exact pin.
"""

from __future__ import annotations

import functools

from connexion.apps.asynchronous import AsyncOperation
from connexion.security import AbstractSecurityHandler

_decorate = AsyncOperation.fn.fget


def _decorated_once(self: AsyncOperation):
    decorated = self.__dict__.get("_decorated_fn")
    if decorated is None:
        decorated = self.__dict__["_decorated_fn"] = _decorate(self)
    return decorated


AsyncOperation.fn = property(_decorated_once)
AbstractSecurityHandler._accepts_kwarg = staticmethod(
    functools.lru_cache(maxsize=256)(AbstractSecurityHandler._accepts_kwarg)
)
