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
from schemathesis.checks import not_a_server_error
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
        except Exception as failure:
            text = str(failure)
            kind = "server_errors" if "Server error" in text or "500" in text else "schema_violations"
            report[kind] += 1
            report["failures"].append(
                {"operation": operation.label, "role": role, "kind": kind, "detail": text[:2000]}
            )

    run_case()


def main() -> int:
    parser = argparse.ArgumentParser(description="Fuzz the RonRender API from /openapi.json.")
    parser.add_argument(
        "--examples", type=int, default=200, help="Generated requests per operation and role."
    )
    parser.add_argument("--output", type=Path, default=Path("fuzz-output/report.json"))
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from flask_migrate import upgrade
    from local_chain import LocalChain

    from backend import create_app
    from tests.identities import ADMIN_KEY, NODE_KEY, address_of, session_token

    artist_key = "0x" + "d1" * 32
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
                "RONRENDER_ADMIN_ADDRESSES": [address_of(ADMIN_KEY)],
            }
        )
        with app.app_context():
            upgrade()
            client = app.test_client()
            tokens = {role: session_token(client, key) for role, key in
                      (("artist", artist_key), ("node", NODE_KEY), ("admin", ADMIN_KEY))}  # fmt: skip
            report = fuzz(app, tokens, args.examples)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(
        f"{report['cases']} cases: {report['server_errors']} server errors, "
        f"{report['schema_violations']} schema violations -> {args.output}"
    )
    return 0 if not report["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
