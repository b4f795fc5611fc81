"""The local server's security model (README "Security"): what a hostile web page, a DNS
rebinding attack and the network can do to a sandbox on a developer's laptop."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from conftest import DOCS_CUSTOMER, DUNDER, LOCAL, MICHAEL, ROOT, VALID_CREATE, customer_url, customers_url

from timbrix_sandbox.cli import build_parser, security_policy
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.http.local_security import SecurityPolicy
from timbrix_sandbox.profiles import CONTRACTS
from timbrix_sandbox.profiles.sandboxes import make_sandbox

BEEL = str(CONTRACTS["beel"])
BEEL_KEY = {"Authorization": "Bearer beel_sk_test_madrid"}
EVIL = "https://evil.example"


def _client(security: SecurityPolicy | None = None, **kwargs):
    return create_app(make_sandbox(**kwargs), security).test_client(base_url=LOCAL)


def _created(client) -> str:
    response = client.post(customers_url(), json=VALID_CREATE, headers=MICHAEL)
    assert response.status_code == 201
    return response.json()["id"]


# -- cross-site requests to the control API ---------------------------------------------------
CROSS_SITE = [
    pytest.param({"Origin": EVIL, "Content-Type": "text/plain"}, "hello", id="form-post-text-plain"),
    pytest.param({"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"}, "a=1", id="form-urlencoded"),
    pytest.param({"Origin": EVIL}, None, id="fetch-no-cors-without-body"),
    pytest.param({"Sec-Fetch-Site": "cross-site"}, None, id="sec-fetch-site-cross-site"),
    pytest.param({"Sec-Fetch-Site": "same-site"}, None, id="sec-fetch-site-same-site"),
    pytest.param({"Origin": "null", "Content-Type": "text/plain"}, "x", id="sandboxed-iframe-null-origin"),
    pytest.param({"Content-Type": "multipart/form-data; boundary=x"}, "--x--", id="multipart-without-origin"),
]


@pytest.mark.parametrize(("headers", "body"), CROSS_SITE)
@pytest.mark.parametrize("path", ["/__sandbox/reset", f"/__sandbox/reset/{DUNDER}"])
def test_cross_site_requests_cannot_reset(headers, body, path):
    with _client() as client:
        created = _created(client)
        response = client.post(path, headers=headers, content=body)
        assert response.status_code == 403
        assert response.json()["error"] == "FORBIDDEN"
        assert client.get(customer_url(created), headers=MICHAEL).status_code == 200  # nothing was wiped


def test_same_origin_and_command_line_resets_work():
    with _client() as client:
        created = _created(client)
        # Swagger UI served by the sandbox itself: same origin.
        same = client.post("/__sandbox/reset", headers={"Origin": LOCAL, "Sec-Fetch-Site": "same-origin"})
        assert same.status_code == 200
        assert client.get(customer_url(created), headers=MICHAEL).status_code == 404
        created = _created(client)
        # curl, a test suite: no Origin, no Sec-Fetch-*, no body.
        assert client.post("/__sandbox/reset").status_code == 200
        assert client.get(customer_url(created), headers=MICHAEL).status_code == 404


def test_reading_the_control_api_is_not_refused():
    with _client() as client:
        assert client.get("/__sandbox/health", headers={"Origin": EVIL}).status_code == 200
        # ... but grants no CORS, so a page cannot read the answer.
        assert "access-control-allow-origin" not in client.get("/__sandbox/health", headers={"Origin": EVIL}).headers


# -- Host header (DNS rebinding) -----------------------------------------------------------------
@pytest.mark.parametrize("host", ["rebind.evil.example", "rebind.evil.example:3001", "localhost.evil.example"])
def test_unknown_host_is_misdirected_on_api_and_control(host):
    with _client() as client:
        api = client.get(customer_url(), headers={**MICHAEL, "Host": host})
        assert api.status_code == 421
        assert api.headers["content-type"] == "application/json"
        assert set(api.json()) == {"statusCode", "message", "error"}
        assert api.json()["error"] == "MISDIRECTED_REQUEST"
        assert "--allow-host" in api.json()["message"]
        control = client.post("/__sandbox/reset", headers={"Host": host})
        assert control.status_code == 421
        health = client.get("/__sandbox/health", headers={"Host": host})
        assert health.status_code == 421


def test_unknown_host_speaks_the_served_contracts_format():
    with _client(contract=BEEL) as client:
        response = client.get("/api/v1/customers", headers={**BEEL_KEY, "Host": "rebind.evil.example"})
        assert response.status_code == 421
        body = response.json()
        assert body["success"] is False
        assert body["error"]["code"] == "MISDIRECTED_REQUEST"


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:3001", "127.0.0.1:3001", "[::1]:3001", "app.localhost:3001", "10.0.0.7:3001"]
)
def test_loopback_names_and_ip_literals_are_served(host):
    with _client() as client:
        assert client.get(customer_url(), headers={**MICHAEL, "Host": host}).status_code == 200


def test_allow_host_adds_names():
    policy = SecurityPolicy(allowed_hosts=frozenset({"sandbox.dev.test"}))
    with _client(policy) as client:
        assert client.get(customer_url(), headers={**MICHAEL, "Host": "sandbox.dev.test:3001"}).status_code == 200
        assert client.get(customer_url(), headers={**MICHAEL, "Host": "other.dev.test"}).status_code == 421


def test_host_verdicts_hold_however_many_hosts_were_seen():
    """Each Host's verdict is remembered (a few values per sandbox), but the memory is bounded
    and never changes an answer: after a hundred made-up names, loopback is still served and
    a rebinding name, old or new, still refused - in either order, and asked twice."""
    with _client() as client:
        for n in range(100):
            assert client.get(customer_url(), headers={**MICHAEL, "Host": f"rebind{n}.example"}).status_code == 421
        for _ in range(2):
            assert client.get(customer_url(), headers={**MICHAEL, "Host": "localhost:3001"}).status_code == 200
            assert client.get(customer_url(), headers={**MICHAEL, "Host": "rebind3.example"}).status_code == 421
            assert client.get(customer_url(), headers={**MICHAEL, "Host": "rebind999.example"}).status_code == 421
            assert client.get(customer_url(), headers={**MICHAEL, "Host": "127.0.0.1:9"}).status_code == 200


def test_bound_host_name_is_served():
    with _client(SecurityPolicy(bound_host="devbox.internal")) as client:
        assert client.get(customer_url(), headers={**MICHAEL, "Host": "devbox.internal:3001"}).status_code == 200


# -- control token -------------------------------------------------------------------------------
def test_control_token_is_required_when_set():
    with _client(SecurityPolicy(control_token="s3cret")) as client:
        assert client.get("/__sandbox/health").status_code == 403
        assert client.post("/__sandbox/reset", headers={"X-Sandbox-Control-Token": "wrong"}).status_code == 403
        assert client.post("/__sandbox/reset", headers={"X-Sandbox-Control-Token": "s3cret"}).status_code == 200
        assert client.get("/__sandbox/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        # The contract API is unaffected by the control token.
        assert client.get(customer_url(), headers=MICHAEL).status_code == 200


def test_binding_beyond_loopback_generates_a_control_token():
    exposed = security_policy(build_parser().parse_args(["serve", "--host", "0.0.0.0"]))
    assert exposed.exposed
    assert exposed.control_token and len(exposed.control_token) >= 24
    local = security_policy(build_parser().parse_args(["serve"]))
    assert not local.exposed and local.control_token is None
    given = security_policy(build_parser().parse_args(["serve", "--host", "0.0.0.0", "--control-token", "abc"]))
    assert given.control_token == "abc"


def test_serve_warns_when_bound_beyond_loopback(live_server_factory):
    # Bound to every interface for a moment; the test only talks to it over loopback.
    server = live_server_factory(None, ["--host", "0.0.0.0", "--control-token", "abc"])
    assert httpx.get(server.url + "/__sandbox/health").status_code == 403  # the token is required
    server.stop()
    output = server.process.stdout.read()
    assert "WARNING: bound to 0.0.0.0, beyond loopback" in output
    assert "control token abc" in output


# -- CORS for the contract API ---------------------------------------------------------------------
def test_preflight_from_a_local_dev_server_is_answered_from_the_contract():
    with _client() as client:
        response = client.options(
            customer_url(),
            headers={
                "Origin": "http://localhost:5173",
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert response.headers["access-control-allow-methods"] == "DELETE, GET, PUT"
        assert response.headers["access-control-allow-headers"] == "authorization, content-type"
        assert "origin" in response.headers["vary"].lower()


def test_preflight_for_an_undeclared_method_grants_nothing():
    with _client() as client:
        response = client.options(
            customer_url(), headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"}
        )
        assert response.status_code == 405
        assert "access-control-allow-origin" not in response.headers
        assert response.json()["error"] == "METHOD_NOT_ALLOWED"



def test_a_refused_preflight_allows_what_the_server_answers_head_included():
    """HEAD is answered wherever GET is: a refused preflight's ``Allow`` lists it, as the
    routing 405's does, and a preflight for HEAD (a HEAD with an Authorization header) is
    answered. HEAD is CORS-safelisted, so the grant still lists the declared methods."""
    local = {"Origin": "http://localhost:5173"}
    with _client() as client:
        routing = client.post(customer_url(), headers=MICHAEL)
        refused = client.options(customer_url(), headers={**local, "Access-Control-Request-Method": "POST"})
        assert (routing.status_code, refused.status_code) == (405, 405)
        assert refused.headers["allow"] == routing.headers["allow"] == "DELETE, GET, HEAD, PUT"
        head = client.options(customer_url(), headers={**local, "Access-Control-Request-Method": "HEAD",
                                                       "Access-Control-Request-Headers": "authorization"})
        assert head.status_code == 204
        assert head.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert head.headers["access-control-allow-methods"] == "DELETE, GET, PUT"
        assert client.head(customer_url(), headers={**MICHAEL, **local}).status_code == 200
        listing = client.options(customers_url(), headers={**local, "Access-Control-Request-Method": "PATCH"})
        assert listing.headers["allow"] == client.patch(customers_url(), headers=MICHAEL).headers["allow"]

def test_actual_requests_from_allowed_origins_get_cors_headers():
    with _client() as client:
        ok = client.get(customer_url(), headers={**MICHAEL, "Origin": "http://127.0.0.1:8080"})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "http://127.0.0.1:8080"
        # errors too, or the browser hides them from the client under development
        denied = client.get(customer_url(), headers={"Origin": "http://127.0.0.1:8080"})
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == "http://127.0.0.1:8080"


def test_other_origins_get_no_cors_grant_unless_allowed():
    with _client() as client:
        response = client.get(customer_url(), headers={**MICHAEL, "Origin": EVIL})
        assert "access-control-allow-origin" not in response.headers
        preflight = client.options(customer_url(), headers={"Origin": EVIL, "Access-Control-Request-Method": "PUT"})
        assert "access-control-allow-origin" not in preflight.headers
    with _client(SecurityPolicy(cors_origins=("https://app.example.test",))) as client:
        response = client.get(customer_url(), headers={**MICHAEL, "Origin": "https://app.example.test"})
        assert response.headers["access-control-allow-origin"] == "https://app.example.test"


# -- over a real socket -------------------------------------------------------------------------------
def test_cross_site_form_post_over_http_leaves_data_intact(live_server_factory):
    server = live_server_factory(None, ["--control-token", "t0ken"])
    with server.client(headers={"X-Sandbox-Control-Token": "t0ken"}) as client:
        created = client.post(customers_url(), json=VALID_CREATE, headers=MICHAEL).json()["id"]
    # The browser's form POST: no token, text/plain, cross-site.
    attack = httpx.post(
        server.url + "/__sandbox/reset",
        content="x=1",
        headers={"Origin": EVIL, "Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"},
    )
    assert attack.status_code == 403
    rebinding = httpx.get(server.url + customer_url(DOCS_CUSTOMER), headers={**MICHAEL, "Host": "rebind.evil.example"})
    assert rebinding.status_code == 421
    assert httpx.get(server.url + customer_url(created), headers=MICHAEL).status_code == 200
    # The CLI's reset --url passes the token.
    result = subprocess.run(
        [sys.executable, "-m", "timbrix_sandbox", "reset", "--url", server.url, "--control-token", "t0ken"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert httpx.get(server.url + customer_url(created), headers=MICHAEL).status_code == 404
