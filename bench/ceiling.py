"""The ceiling: a raw Starlette endpoint returning the docs customer, no validation, no auth,
no store. Served like the sandbox (uvicorn, uvloop + httptools, one process)."""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

CUSTOMER = {
    "id": "590ce6c56d04f840aa8438af",
    "organizationId": "550e8400-e29b-41d4-a716-446655440000",
    "legalName": "Dunder Mifflin",
    "taxId": "DUM901231AB3",
    "taxSystem": "601",
    "email": "billing@dundermifflin.com",
    "phone": "6474010101",
    "defaultInvoiceUse": "G01",
    "address": {
        "street": "Blvd. Atardecer",
        "exterior": "142",
        "interior": None,
        "neighborhood": "Centro",
        "city": "Huatabampo",
        "municipality": "Huatabampo",
        "zip": "86500",
        "state": "Sonora",
        "country": "MEX",
    },
    "createdAt": "2025-01-26T10:00:00Z",
    "updatedAt": "2025-01-26T10:00:00Z",
}


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
