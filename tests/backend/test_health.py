"""GET /api/v1/health: the database, Redis, storage and the chain, each checked for real."""

from __future__ import annotations

import pytest

from backend.extensions import db
from backend.models import Payment, utc_now
from shared.states import PaymentKind, PaymentState
from tests.backend.helpers import make_job

pytestmark = pytest.mark.integration

HEALTH = "/api/v1/health"


@pytest.fixture
def client(app):
    """Anonymous, as a load balancer or Prometheus asks: no sign-in needed."""
    return app.test_client()


def use_storage(app, settings: dict[str, str]) -> None:
    """Point the app at another storage (built anew on next use)."""
    app.config.update(settings)
    app.extensions.pop("ronrender_storage", None)


def confirmed_payment() -> Payment:
    job = make_job()
    payment = Payment(
        job_id=job.id,
        kind=PaymentKind.LOCK,
        state=PaymentState.CONFIRMED,
        amount_wei=10**15,
        tx_hash="0x" + "ab" * 32,
        confirmed_at=utc_now(),
    )
    db.session.add(payment)
    db.session.commit()
    return payment


def test_all_checks_pass(app, client, chain, escrow):
    response = client.get(HEALTH)
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["status"], body["failing"]) == ("ok", [])
    checks = body["checks"]
    assert all(check["ok"] and check["error"] is None for check in checks.values())
    assert checks["database"]["dialect"] in ("sqlite", "postgresql")
    assert checks["storage"]["kind"] == "local"
    assert checks["chain"]["chain_id"] == chain.chain_id
    assert checks["chain"]["latest_block"] >= 1
    assert checks["chain"]["escrow_address"].lower() == escrow["address"].lower()
    assert int(checks["chain"]["operator_balance_wei"]) > 0
    assert checks["chain"]["latest_confirmed_payment"] is None

    payment = confirmed_payment()
    latest = client.get(HEALTH).json["checks"]["chain"]["latest_confirmed_payment"]
    assert (latest["job_id"], latest["kind"], latest["tx_hash"]) == (payment.job_id, "LOCK", payment.tx_hash)
    assert latest["amount_wei"] == str(10**15)


def test_redis_down_is_a_503_naming_it(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "RONRENDER_REDIS_URL", "redis://127.0.0.1:1/0")
    response = client.get(HEALTH)
    assert response.status_code == 503
    assert response.json["status"] == "failing"
    assert response.json["failing"] == ["redis"]
    assert "Connection" in response.json["checks"]["redis"]["error"]
    assert response.json["checks"]["database"]["ok"]


def test_an_rpc_of_another_chain_fails_the_chain_check(app, client, monkeypatch, chain):
    monkeypatch.setitem(app.config, "RONRENDER_CHAIN_ID", chain.chain_id + 1)
    response = client.get(HEALTH)
    assert response.status_code == 503
    assert response.json["failing"] == ["chain"]
    assert f"not the configured {chain.chain_id + 1}" in response.json["checks"]["chain"]["error"]


def test_s3_storage_is_checked(app, client, seaweedfs, tmp_path, monkeypatch):
    for key in seaweedfs.settings:
        monkeypatch.setitem(app.config, key, app.config.get(key))  # restored after the test
    use_storage(app, seaweedfs.settings)
    storage = client.get(HEALTH).json["checks"]["storage"]
    assert storage["ok"] and storage["kind"] == "s3"
    assert seaweedfs.bucket in storage["detail"]

    use_storage(app, {**seaweedfs.settings, "RONRENDER_S3_BUCKET": "no-such-bucket"})
    response = client.get(HEALTH)
    assert response.status_code == 503
    assert response.json["failing"] == ["storage"]
    app.extensions.pop("ronrender_storage", None)


def test_health_is_described_in_the_api_document(app, client):
    spec = client.get("/openapi.json").json
    operation = spec["paths"][HEALTH]["get"]
    assert {"200", "503"} <= set(operation["responses"])
    schema_ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert {"status", "failing", "checks"} <= set(schema["properties"])
