"""Schemathesis against /openapi.json, as every role: no 5xx, no response outside its schema."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.identities import ADMIN_KEY, NODE_KEY, session_token

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from fuzz_api import fuzz

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 4  # `make fuzz` runs many more


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_api_survives_generated_requests_from_every_role(app, escrow):
    client = app.test_client()
    tokens = {
        "artist": session_token(client, escrow["artist_key"]),
        "node": session_token(client, NODE_KEY),
        "admin": session_token(client, ADMIN_KEY),
    }
    report = fuzz(app, tokens, EXAMPLES_PER_OPERATION)
    print(f"fuzz: {report['cases']} cases")
    assert report["cases"] > 100
    assert report["failures"] == []
