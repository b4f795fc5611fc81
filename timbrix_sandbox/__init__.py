"""timbrix-sandbox: a contract-first, stateful sandbox for the Timbrix CFDI 4.0 customers API."""

import warnings

# connexion imports starlette's TestClient at import time, which warns about httpx on every
# start: noise for a server.
warnings.filterwarnings("ignore", message=".*starlette.testclient.*")

__version__ = "0.1.0"
