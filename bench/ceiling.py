"""The ceiling: a raw Starlette endpoint returning the docs customer, no validation, no auth,
no store. Served like the sandbox (uvicorn, uvloop + httptools, one process)."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from timbrix_sandbox.engine.fixtures import load_fixtures  # noqa: E402
from timbrix_sandbox.profiles import TIMBRIX_FIXTURES  # noqa: E402

# The docs customer, as the sandbox's fixtures hold it (one source of truth for the example).
CUSTOMER = next(
    record
    for record in load_fixtures(TIMBRIX_FIXTURES).records["customers"]["550e8400-e29b-41d4-a716-446655440000"]
    if record["id"] == "590ce6c56d04f840aa8438af"
)


async def customer(request):
    return JSONResponse(CUSTOMER)


async def health(request):
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/api/organizations/{org}/customers/{customer_id}", customer),
        Route("/__sandbox/health", health),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
