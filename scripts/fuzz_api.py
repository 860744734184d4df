"""Fuzz the HTTP API from its own OpenAPI document with schemathesis.

Every operation gets generated requests as each role (artist, node, admin);
the checks are: no 5xx, and every response body matches the documented
schema. ``make fuzz`` runs many examples and writes fuzz-output/report.json;
``make test`` runs a few per operation (tests/backend/test_fuzz_api.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import Failure, ServerError, not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

CHECKS = [not_a_server_error, response_schema_conformance]


def fuzz(app: Any, tokens: dict[str, str], max_examples: int) -> dict[str, Any]:
    """Run every operation with each role's token; returns the report (cases, failures by kind)."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    report: dict[str, Any] = {"cases": 0, "server_errors": 0, "schema_violations": 0, "failures": []}
    for result in schema.get_all_operations():
        operation = result.ok()
        for role, token in tokens.items():
            _fuzz_operation(operation, role, {"Authorization": f"Bearer {token}"}, max_examples, report)
    return report


def _fuzz_operation(
    operation: Any, role: str, headers: dict[str, str], max_examples: int, report: dict[str, Any]
) -> None:
    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run_case(case: Any) -> None:
        report["cases"] += 1
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        except Exception as raised:
            # Check verdicts come as Failure (several as a FailureGroup); any other exception
            # escaped the app itself, which a real server answers with a 500.
            for failure in getattr(raised, "exceptions", [raised]):
                server = isinstance(failure, ServerError) or not isinstance(failure, Failure)
                kind = "server_errors" if server else "schema_violations"
                report[kind] += 1
                report["failures"].append(
                    {"operation": operation.label, "role": role, "kind": kind, "detail": str(failure)[:2000]}
                )

    run_case()


def sign_in(client: Any, private_key: str) -> str:
    """A session token for the wallet, through the real challenge endpoints."""
    from shared.key_wallet import KeyWallet

    wallet = KeyWallet(private_key)
    message = client.post("/api/v1/auth/challenge", json={"address": wallet.address}).json["message"]
    issued = client.post(
        "/api/v1/auth/login", json={"message": message, "signature": wallet.sign_message(message)}
    )
    return issued.json["token"]


def main() -> int:
    parser = argparse.ArgumentParser(description="Fuzz the RonRender API from /openapi.json.")
    parser.add_argument(
        "--examples", type=int, default=200, help="Generated requests per operation and role."
    )
    parser.add_argument("--output", type=Path, default=Path("fuzz-output/report.json"))
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eth_account import Account
    from flask_migrate import upgrade
    from local_chain import LocalChain

    from backend import create_app

    artist_key, node_key, admin_key = ("0x" + digit * 32 for digit in ("d1", "d2", "d3"))
    with LocalChain() as chain, tempfile.TemporaryDirectory(prefix="rr-fuzz-") as work:
        owner, operator, fee_recipient = chain.accounts[:3]
        escrow = chain.deploy_escrow(operator.address, fee_recipient.address, key=owner.key.to_0x_hex())
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{work}/fuzz.db",
                "RONRENDER_DATA_DIR": work,
                "RONRENDER_STORAGE_DIR": f"{work}/storage",
                "RONRENDER_QUEUE_PREFIX": f"rr-fuzz-{uuid.uuid4().hex[:8]}",
                "RONRENDER_CHAIN_RPC_URL": chain.rpc_url,
                "RONRENDER_CHAIN_ID": chain.chain_id,
                "RONRENDER_ESCROW_ADDRESS": escrow,
                "RONRENDER_OPERATOR_KEY": operator.key.to_0x_hex(),
                "RONRENDER_RATE_LIMIT": "",
                "RONRENDER_ADMIN_ADDRESSES": [Account.from_key(admin_key).address],
            }
        )
        with app.app_context():
            upgrade()
            client = app.test_client()
            roles = {"artist": artist_key, "node": node_key, "admin": admin_key}
            tokens = {role: sign_in(client, key) for role, key in roles.items()}
        report = fuzz(app, tokens, args.examples)  # each request in its own app context, as when served
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(
        f"{report['cases']} cases: {report['server_errors']} server errors, "
        f"{report['schema_violations']} schema violations -> {args.output}"
    )
    return 0 if not report["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
