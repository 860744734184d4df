"""Health: can this backend process reach the database, Redis, storage and the chain?

200 when every check passes, 503 naming the failing ones, for load balancers and on-call.
Each check is short and bounded; none writes anything but the storage's probe file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, DateTime, Float, Integer, List, Nested, String
from flask import current_app
from redis import Redis
from sqlalchemy import select, text

from backend.extensions import db
from backend.models import Payment
from backend.storage import app_storage
from shared.protocol import API_PREFIX
from shared.states import PaymentState

blueprint = APIBlueprint("health", __name__, url_prefix=f"{API_PREFIX}/health", tag="Health")

REDIS_TIMEOUT_S = 2.0


class CheckOut(Schema):
    ok = Boolean(required=True)
    elapsed_ms = Float(required=True)
    error = String(allow_none=True, metadata={"description": "why the check failed"})


class DatabaseCheckOut(CheckOut):
    dialect = String()


class RedisCheckOut(CheckOut):
    url = String(metadata={"description": "host and database, without credentials"})


class StorageCheckOut(CheckOut):
    kind = String(metadata={"description": "local or s3"})
    detail = String()


class PaymentOut(Schema):
    job_id = String()
    kind = String()
    frame_number = Integer()
    amount_wei = String()
    tx_hash = String(allow_none=True)
    confirmed_at = DateTime(allow_none=True)


class ChainCheckOut(CheckOut):
    chain_id = Integer(allow_none=True)
    expected_chain_id = Integer(allow_none=True)
    latest_block = Integer(allow_none=True)
    latest_block_age_s = Float(allow_none=True)
    escrow_address = String(allow_none=True)
    operator_address = String(allow_none=True)
    operator_balance_wei = String(allow_none=True, metadata={"description": "RON for gas, in wei"})
    latest_confirmed_payment = Nested(PaymentOut, allow_none=True)


class ChecksOut(Schema):
    database = Nested(DatabaseCheckOut, required=True)
    redis = Nested(RedisCheckOut, required=True)
    storage = Nested(StorageCheckOut, required=True)
    chain = Nested(ChainCheckOut, required=True)


class HealthOut(Schema):
    status = String(required=True, metadata={"description": "ok, or failing"})
    failing = List(String(), required=True, metadata={"description": "names of the checks that failed"})
    checks = Nested(ChecksOut, required=True)


def _run(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = {**check(), "ok": True, "error": None}
    except Exception as error:  # a failing check is an answer, not a crash
        db.session.rollback()
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    result["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return result


def check_database() -> dict[str, Any]:
    db.session.execute(text("SELECT 1"))
    return {"dialect": db.engine.dialect.name}


def check_redis() -> dict[str, Any]:
    url = current_app.config["RONRENDER_REDIS_URL"]
    client = Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
    try:
        client.ping()
        where = client.connection_pool.connection_kwargs
        return {"url": f"{where.get('host', where.get('path'))}:{where.get('port', '')}/{where.get('db', 0)}"}
    finally:
        client.close()


def check_storage() -> dict[str, Any]:
    store = app_storage()
    return {"kind": store.kind, "detail": store.check()}


def latest_confirmed_payment() -> dict[str, Any] | None:
    payment = db.session.scalar(
        select(Payment)
        .where(Payment.state == PaymentState.CONFIRMED)
        .order_by(Payment.confirmed_at.desc(), Payment.id.desc())
        .limit(1)
    )
    if payment is None:
        return None
    return {
        "job_id": payment.job_id,
        "kind": str(payment.kind),
        "frame_number": payment.frame_number,
        "amount_wei": str(payment.amount_wei),
        "tx_hash": payment.tx_hash,
        "confirmed_at": payment.confirmed_at,
    }


def check_chain() -> dict[str, Any]:
    from backend.services.chain_access import escrow_chain

    expected = current_app.config.get("RONRENDER_CHAIN_ID")
    chain = escrow_chain()  # raises when no chain or no operator key is configured
    chain_id = chain.live_chain_id()  # read anew: the cached id would hide an RPC moved to another chain
    if expected is not None and chain_id != expected:
        raise RuntimeError(f"the RPC serves chain {chain_id}, not the configured {expected}")
    block = chain.latest_block()
    return {
        "chain_id": chain_id,
        "expected_chain_id": expected,
        "latest_block": block["number"],
        "latest_block_age_s": max(0.0, datetime.now(UTC).timestamp() - block["timestamp"]),
        "escrow_address": chain.contract.address,
        "operator_address": chain.operator.address,
        "operator_balance_wei": str(chain.balance_of(chain.operator.address)),
        "latest_confirmed_payment": latest_confirmed_payment(),
    }


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "database": check_database,
    "redis": check_redis,
    "storage": check_storage,
    "chain": check_chain,
}


@blueprint.get("")
@blueprint.output(HealthOut)
@blueprint.doc(
    summary="Whether the database, Redis, storage and the chain answer",
    description="200 when every check passes; 503 with the same body when one fails, "
    "its name in `failing` and its `error` set. No authentication: it names no secrets.",
    responses={200: "Every check passed", 503: "At least one check failed (same body)"},
)
def health() -> Any:
    checks = {name: _run(check) for name, check in CHECKS.items()}
    failing = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "failing" if failing else "ok", "failing": failing, "checks": checks}
    return body, 503 if failing else 200
