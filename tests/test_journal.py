"""The request journal over real sockets: every request a client sends outside the control API
is in ``GET /__sandbox/requests`` - from both pipelines and every refusal - newest first,
bounded, filterable, credentials redacted; ``DELETE`` empties it; a page shows it."""

from __future__ import annotations

import httpx
import pytest
from conftest import DOCS_CUSTOMER, MICHAEL, VALID_CREATE, LiveServer, customer_url, customers_url

CAPACITY = 40


@pytest.fixture(scope="module")
def server():
    started = LiveServer(None, ["--journal-size", str(CAPACITY)]).start()
    yield started
    started.stop()


@pytest.fixture
def http(server):
    with server.client() as client:
        assert client.delete("/__sandbox/requests").status_code == 204
        client.post("/__sandbox/reset")
        yield client


def journal(http: httpx.Client, **filters) -> list[dict]:
    answer = http.get("/__sandbox/requests", params=filters)
    assert answer.status_code == 200, answer.text
    return answer.json()["requests"]


def test_both_pipelines_and_refusals_are_journaled_newest_first(http):
    found = http.get(customer_url(), headers=MICHAEL)  # the fast path
    created = http.post(customers_url(), json=VALID_CREATE, headers=MICHAEL)
    bad_id = http.get(customer_url("abc"), headers=MICHAEL)  # Connexion's validation: 400
    no_token = http.get(customer_url())
    unknown = http.get("/api/nowhere", headers=MICHAEL)
    misdirected = http.get(customer_url(), headers={**MICHAEL, "Host": "rebind.evil.example"})
    too_large = http.post(customers_url(), content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                          headers={**MICHAEL, "Content-Type": "application/json"})
    statuses = [r.status_code for r in (found, created, bad_id, no_token, unknown, misdirected, too_large)]
    assert statuses == [200, 201, 400, 401, 404, 421, 413]

    entries = journal(http)
    assert [e["status"] for e in entries] == statuses[::-1]
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    get, post, invalid = entries[-1], entries[-2], entries[-3]
    assert (get["method"], get["path"], get["responseBody"]["id"]) == ("GET", customer_url(), DOCS_CUSTOMER)
    assert get["durationMs"] >= 0
    assert post["requestBody"] == VALID_CREATE
    assert post["responseBody"] == created.json()
    assert invalid["validationErrors"] and "abc" in str(invalid["validationErrors"])
    assert (entries[0]["method"], entries[0]["path"]) == ("POST", customers_url())  # refused by its length


def test_bodies_are_cut_at_16_kib(http):
    long = http.post(customers_url(), json={**VALID_CREATE, "legalName": "x" * 20_000}, headers=MICHAEL)
    assert long.status_code == 400
    (entry,) = journal(http)
    assert entry["requestBodyTruncated"] is True
    assert len(entry["requestBody"]) == 16 * 1024  # kept as text: cut JSON does not parse


def test_bodies_the_api_refused_as_hostile_json_are_kept_as_text(http):
    """Each is a 400 for the API; read back as JSON they made every later journal read a 500."""
    hostile = {
        "lone surrogate": b'{"legalName": "\\ud800"}',
        "nested 5,000 deep": b"[" * 5000 + b"]" * 5000,
    }
    headers = {**MICHAEL, "Content-Type": "application/json"}
    for label, body in hostile.items():
        assert http.put(customer_url(), content=body, headers=headers).status_code == 400, label
    entries = journal(http)
    assert [entry["requestBody"] for entry in reversed(entries)] == [body.decode() for body in hostile.values()]
    assert all(entry["status"] == 400 for entry in entries)
    assert http.get("/__sandbox/requests.html").status_code == 200


def test_credentials_are_redacted(http):
    http.get(customer_url(), headers={**MICHAEL, "Cookie": "session=s3cret", "X-Api-Key": "k3y"})
    (entry,) = journal(http)
    headers = entry["requestHeaders"]
    assert headers["authorization"] == "Bearer [redacted]"
    assert headers["cookie"] == "[redacted]" and headers["x-api-key"] == "[redacted]"
    assert "sk_test_michael" not in str(entry) and "s3cret" not in str(entry)


def test_filters_by_method_path_and_status(http):
    http.get(customer_url(), headers=MICHAEL)
    http.get(customer_url("66b2a1d3f5c0b2c3d4e5f699"), headers=MICHAEL)  # 404
    http.post(customers_url(), json=VALID_CREATE, headers=MICHAEL)
    assert [e["status"] for e in journal(http, method="POST")] == [201]
    assert [e["status"] for e in journal(http, status="404")] == [404]
    assert [e["status"] for e in journal(http, status="2xx")] == [201, 200]
    assert [e["status"] for e in journal(http, path=customer_url())] == [200]
    assert [e["status"] for e in journal(http, path=customers_url() + "*")] == [201, 404, 200]
    assert len(journal(http, limit=1)) == 1
    refused = http.get("/__sandbox/requests", params={"status": "teapot"})
    assert refused.status_code == 400 and set(refused.json()) == {"statusCode", "message", "error"}


def test_bounded_and_cleared(http):
    for _ in range(CAPACITY + 5):
        http.get(customer_url(), headers=MICHAEL)
    answer = http.get("/__sandbox/requests", params={"limit": 1000}).json()
    assert (answer["capacity"], answer["recorded"], len(answer["requests"])) == (CAPACITY, CAPACITY, CAPACITY)
    assert http.delete("/__sandbox/requests").status_code == 204
    assert journal(http) == []
    assert journal(http) == []  # reading the journal is not journaled


def test_page_reads_the_journal(http):
    page = http.get("/__sandbox/requests.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Timbrix" in page.text and 'fetch("requests?' in page.text
    assert "<script src" not in page.text  # self-contained: works offline
