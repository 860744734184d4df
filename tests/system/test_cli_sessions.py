"""The artist CLI signs in once and keeps the session for later commands, so they need
not decrypt the keystore to sign in; signing an acceptance still needs the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.system.test_farm_end_to_end import ronrender

pytestmark = pytest.mark.system


def kept_tokens(farm) -> dict[str, str]:
    path = Path(farm.env["RONRENDER_SESSIONS_FILE"])
    if not path.exists():
        return {}
    assert path.stat().st_mode & 0o077 == 0  # bearer tokens: the owner's eyes only
    return {key: kept["token"] for key, kept in json.loads(path.read_text()).items()}


def jobs_of_artist(farm) -> list[dict]:
    return farm.admin_get("/api/v1/jobs")["jobs"]


def test_a_kept_session_serves_later_commands_but_accepting_a_job_needs_the_key(start_farm, scene_files):
    farm = start_farm(nodes=0)
    signed_in = ronrender(farm, "sign-in")
    assert signed_in.returncode == 0, signed_in.stderr
    tokens = kept_tokens(farm)
    assert len(tokens) == 1 and next(iter(tokens)).startswith(farm.url)

    # The kept session lists tokens with no sign-in, so a wrong password goes unnoticed...
    listed = ronrender(farm, "token", "list", RONRENDER_KEYSTORE_PASSWORD="not the password")
    assert listed.returncode == 0, listed.stderr
    assert kept_tokens(farm) == tokens
    # ...but a submit must sign the acceptance: refused before any job is made.
    refused = ronrender(
        farm, "submit", str(scene_files["tiny"]), "--yes", RONRENDER_KEYSTORE_PASSWORD="not the password"
    )
    assert refused.returncode != 0 and "cannot open" in refused.stderr, refused.stderr
    assert jobs_of_artist(farm) == []


def test_a_session_the_backend_refuses_is_replaced_by_a_new_sign_in(start_farm):
    farm = start_farm(nodes=0)
    assert ronrender(farm, "sign-in").returncode == 0
    path = Path(farm.env["RONRENDER_SESSIONS_FILE"])
    sessions = json.loads(path.read_text())
    for kept in sessions.values():
        kept["token"] = "not-a-session-token"  # revoked, or from another farm on this address
    path.write_text(json.dumps(sessions))

    listed = ronrender(farm, "token", "list")
    assert listed.returncode == 0, listed.stderr
    renewed = kept_tokens(farm)
    assert len(renewed) == 1 and next(iter(renewed.values())) != "not-a-session-token"

    signed_out = ronrender(farm, "sign-out")
    assert signed_out.returncode == 0 and "forgot 1 session" in signed_out.stdout
    assert kept_tokens(farm) == {}


def test_an_unlocked_wallet_accepts_jobs_without_its_password_but_never_sends_transactions(
    start_farm, scene_files
):
    farm = start_farm(nodes=0)
    unlocked = ronrender(farm, "wallet", "unlock", "--for", "5")
    assert unlocked.returncode == 0 and f"unlocked for {farm.url}" in unlocked.stdout, unlocked.stderr
    try:
        # The agent holds the key: a wrong password is never asked for, the job is locked.
        wrong = {"RONRENDER_KEYSTORE_PASSWORD": "not the password"}
        submitted = ronrender(farm, "submit", str(scene_files["tiny"]), "--yes", "--no-wait", **wrong)
        assert submitted.returncode == 0, submitted.stderr
        (job,) = jobs_of_artist(farm)
        assert job["id"] == submitted.stdout.strip() and job["state"] in ("LOCKING", "RENDERING")
        # A deposit is a transaction, and a lasting token outlives the agent: both take the keystore.
        for command in (["wallet", "deposit", "1"], ["token", "create", "script"]):
            refused = ronrender(farm, *command, **wrong)
            assert refused.returncode != 0 and "cannot open" in refused.stderr, refused.stderr
    finally:
        locked = ronrender(farm, "wallet", "lock")
    assert locked.returncode == 0 and "locked 1 wallet(s)" in locked.stdout
    refused = ronrender(farm, "submit", str(scene_files["tiny"]), "--yes", "--no-wait", **wrong)
    assert refused.returncode != 0 and "cannot open" in refused.stderr, refused.stderr
    assert len(jobs_of_artist(farm)) == 1
