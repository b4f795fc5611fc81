"""State persists across restarts and survives kill -9; reset puts fixtures back without a
restart. Real servers on loopback."""

from __future__ import annotations

import subprocess
import sys

from conftest import (
    DOCS_CUSTOMER,
    DUNDER,
    LOCAL,
    MICHAEL,
    PRINCE,
    PRINCE_TOKEN,
    ROOT,
    VALID_CREATE,
    customer_url,
    customers_url,
)


def test_created_and_updated_customers_survive_a_restart(live_server_factory, tmp_path):
    data = tmp_path / "data"
    server = live_server_factory(data)
    with server.client(headers=MICHAEL) as client:
        created = client.post(customers_url(), json=VALID_CREATE).json()
        client.put(customer_url(), json={"email": "restart@dundermifflin.com"})
        client.delete(customer_url("65a1f0c2e4b0a1b2c3d4e501"))
    server.stop()
    again = live_server_factory(data)
    with again.client(headers=MICHAEL) as client:
        assert client.get(customer_url(created["id"])).json() == created
        assert client.get(customer_url()).json()["email"] == "restart@dundermifflin.com"
        assert client.get(customer_url("65a1f0c2e4b0a1b2c3d4e501")).status_code == 404


def test_acknowledged_writes_survive_kill_9(live_server_factory, tmp_path):
    data = tmp_path / "data"
    server = live_server_factory(data)
    acknowledged = []
    with server.client(headers=MICHAEL) as client:
        for i in range(30):
            response = client.post(customers_url(), json={**VALID_CREATE, "legalName": f"Kill {i}"})
            assert response.status_code == 201
            acknowledged.append(response.json())
        client.put(customer_url(), json={"legalName": "Last acknowledged"})
    server.kill9()
    again = live_server_factory(data)
    with again.client(headers=MICHAEL) as client:
        for record in acknowledged:
            assert client.get(customer_url(record["id"])).json() == record
        assert client.get(customer_url()).json()["legalName"] == "Last acknowledged"


def test_reset_start_flag_restores_fixtures(live_server_factory, tmp_path):
    data = tmp_path / "data"
    server = live_server_factory(data)
    with server.client(headers=MICHAEL) as client:
        client.delete(customer_url())
    server.stop()
    again = live_server_factory(data, extra=["--reset"])
    with again.client(headers=MICHAEL) as client:
        assert client.get(customer_url()).status_code == 200


def test_reset_one_organization_leaves_the_others(client):
    client.delete(customer_url(), headers=MICHAEL)
    client.post(customers_url(PRINCE), headers=PRINCE_TOKEN, json=VALID_CREATE)
    response = client.post(f"/__sandbox/reset/{DUNDER}")
    assert response.status_code == 200
    assert response.json()["organizations"] == [DUNDER] and response.json()["customers"] == 14
    assert client.get(customer_url(), headers=MICHAEL).status_code == 200
    assert len(client.get(customers_url(PRINCE), headers=PRINCE_TOKEN).json()) == 4


def test_reset_everything(client):
    client.delete(customer_url(), headers=MICHAEL)
    client.post(customers_url(PRINCE), headers=PRINCE_TOKEN, json=VALID_CREATE)
    body = client.post("/__sandbox/reset").json()
    assert body["customers"] == 17 and sorted(body["organizations"]) == sorted([DUNDER, PRINCE])
    assert len(client.get(customers_url(), headers=MICHAEL).json()) == 14
    assert len(client.get(customers_url(PRINCE), headers=PRINCE_TOKEN).json()) == 3


def test_reset_unknown_organization_is_404(client):
    response = client.post("/__sandbox/reset/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404 and response.json()["error"] == "NOT_FOUND"


def test_health_reports_storage(disk_app):
    with disk_app.test_client(base_url=LOCAL) as client:
        body = client.get("/__sandbox/health").json()
    assert body["status"] == "ok" and body["storage"] == "file"
    assert body["customers"] == 17 and body["organizations"] == 2


def test_cli_reset_offline_and_online(live_server_factory, tmp_path):
    data = tmp_path / "offline"
    cli = [sys.executable, "-m", "timbrix_sandbox", "reset", "--data-dir", str(data)]
    out = subprocess.run(cli + ["--organization", DUNDER], cwd=ROOT, capture_output=True, text=True, check=True)
    assert '"customers": 14' in out.stdout

    server = live_server_factory(tmp_path / "online")
    with server.client(headers=MICHAEL) as client:
        client.delete(customer_url(DOCS_CUSTOMER))
        online = [sys.executable, "-m", "timbrix_sandbox", "reset", "--url", server.url]
        subprocess.run(online, cwd=ROOT, capture_output=True, text=True, check=True)
        assert client.get(customer_url(DOCS_CUSTOMER)).status_code == 200


def test_serve_prints_urls_and_tokens(live_server):
    live_server.stop()
    output = live_server.process.stdout.read()
    assert f"{live_server.url}/api/ui/" in output
    for token in ("sk_test_michael", "sk_test_prince", "sk_test_toby"):
        assert token in output
