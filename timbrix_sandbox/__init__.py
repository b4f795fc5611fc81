"""timbrix-sandbox: a contract-first, stateful sandbox for the Timbrix CFDI 4.0 customers API."""

import warnings

# connexion imports starlette's TestClient at import time, which warns about httpx on every
# start: noise for a server.
warnings.filterwarnings("ignore", message=".*starlette.testclient.*")

__version__ = "0.2.0.dev0"
"""The one version (pyproject.toml reads it): ``X.Y.Z`` for a release, ``X.Y.Z.devN`` while
``X.Y.Z`` is being made; CHANGELOG.md says what each holds."""
