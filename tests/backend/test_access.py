"""Who may do what: every rule tried from the wrong identity (another artist,
another node's wallet, an expired or revoked token, no token) through HTTP."""

from __future__ import annotations

import hashlib
import time

import pytest
from sqlalchemy import event

from backend import create_app
from backend.defaults import TOKEN_REVOCATION_CHECK_S
from backend.extensions import db
from backend.models import ApiToken, utc_now
from backend.services.identity import token_trust_cache
from tests.backend.helpers import (
    JOBS,
    NODES,
    SCENES,
    claim,
    noise_png,
    put_output,
    ready_scene,
    register,
    rendering_job,
    upload,
)
from tests.identities import (
    NODE_KEY,
    OTHER_ARTIST_KEY,
    address_of,
    client_with_token,
    session_token,
    signed_in_client,
    wallet_client,
)

pytestmark = pytest.mark.integration


def assert_refused(response, status: int) -> None:
    assert response.status_code == status, response.data
    assert set(response.json) >= {"message", "reason"}
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.fixture
def other_artist(app):
    return signed_in_client(app, OTHER_ARTIST_KEY)


@pytest.fixture
def finished_job(app, client, run_workers, scene_files, tmp_path, escrow):
    """A one-frame job of the escrow artist, rendered and verified by the artist's own node."""
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    node_client, _ = wallet_client(app, "renderer")
    assignment = claim(node_client, register(node_client))
    assert put_output(node_client, assignment, noise_png(tmp_path / "f.png", 64, 36)).status_code == 202
    run_workers()
    return job


def test_no_token_is_refused_everywhere_but_sign_in(anonymous_client, scene_files):
    for method, path in [
        ("get", JOBS),
        ("post", JOBS),
        ("post", SCENES),
        ("get", f"{SCENES}/{'0' * 64}/file"),
        ("post", NODES),
        ("post", f"{NODES}/x/claim"),
        ("put", "/api/v1/attempts/1/output"),
        ("get", "/api/v1/admin/nodes"),
        ("get", "/api/v1/auth/tokens"),
    ]:
        response = getattr(anonymous_client, method)(path, json={})
        assert_refused(response, 401)
        assert "sign in" in response.json["message"]
    assert anonymous_client.get("/openapi.json").status_code == 200


def test_another_artist_sees_none_of_my_job(client, other_artist, finished_job):
    job_id = finished_job["id"]
    assert client.get(f"{JOBS}/{job_id}/frames/1/output").status_code == 200
    for path in [
        f"{JOBS}/{job_id}",
        f"{JOBS}/{job_id}/frames",
        f"{JOBS}/{job_id}/frames/1/output",
        f"{JOBS}/{job_id}/frames/1/thumbnail",
        f"{JOBS}/{job_id}/output.zip",
        f"{JOBS}/{job_id}/escrow",
        f"{SCENES}/{finished_job['scene_sha256']}",
        f"{SCENES}/{finished_job['scene_sha256']}/file",
    ]:
        response = other_artist.get(path)
        assert_refused(response, 404)  # the same answer as for an id that does not exist
    assert_refused(other_artist.post(f"{JOBS}/{job_id}/cancel"), 404)
    assert other_artist.get(JOBS).json["jobs"] == []
    assert [j["id"] for j in client.get(JOBS).json["jobs"]] == [job_id]


def test_a_job_needs_a_scene_i_uploaded(client, other_artist, run_workers, scene_files):
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    assert_refused(other_artist.post(JOBS, json={"scene_sha256": sha256}), 404)
    # Uploading the same bytes makes the scene theirs too (stored once, owned by both).
    assert upload(other_artist, scene_files["tiny"]).status_code == 200
    assert other_artist.post(JOBS, json={"scene_sha256": sha256}).status_code == 201


def test_the_paying_wallet_is_the_signed_in_one(client, run_workers, scene_files, escrow):
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    job = client.post(JOBS, json={"scene_sha256": sha256}).json
    stranger = address_of(OTHER_ARTIST_KEY)
    response = client.get(f"{JOBS}/{job['id']}/acceptance", query_string={"artist_address": stranger})
    assert_refused(response, 403)


def test_a_node_reads_a_scene_only_while_it_holds_a_frame_of_it(
    app, client, run_workers, scene_files, escrow
):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    scene_file = f"{SCENES}/{job['scene_sha256']}/file"
    node_client, _ = wallet_client(app, "node")
    node = register(node_client)
    assert_refused(node_client.get(scene_file), 404)
    assignment = claim(node_client, node)
    assert node_client.get(scene_file).status_code == 200
    release = node_client.post(
        f"/api/v1/attempts/{assignment['attempt_id']}/release",
        headers={"X-Lease-Token": assignment["lease_token"]},
    )
    assert release.status_code == 200
    assert_refused(node_client.get(scene_file), 404)


def test_a_node_cannot_touch_another_wallets_node_or_lease(
    app, client, run_workers, scene_files, escrow, tmp_path
):
    rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    owner, _ = wallet_client(app, "owner")
    thief, _ = wallet_client(app, "thief")
    node = register(owner)
    assignment = claim(owner, node)
    assert_refused(thief.get(f"{NODES}/{node}"), 404)
    assert_refused(thief.post(f"{NODES}/{node}/claim"), 404)
    assert_refused(thief.post(f"{NODES}/{node}/heartbeat", json={"slots": []}), 404)
    # Even with the lease token, an upload from another wallet is refused.
    assert_refused(put_output(thief, assignment, noise_png(tmp_path / "x.png", 64, 36)), 404)
    assert put_output(owner, assignment, noise_png(tmp_path / "y.png", 64, 36)).status_code == 202


def test_a_node_is_paid_only_to_the_wallet_that_signed_in(node_client):
    response = node_client.post(
        NODES,
        json={
            "name": "n",
            "cpu_cores": 2,
            "memory_bytes": 1,
            "blender_version": "4.5.0",
            "payout_address": "0x" + "99" * 20,
        },
    )
    assert_refused(response, 403)
    assert response.json["reason"] == "FORBIDDEN"


def test_admin_endpoints_answer_only_admins(app, client, admin_client, run_workers, scene_files, escrow):
    node = register(client)
    assert_refused(client.get("/api/v1/admin/nodes"), 403)
    assert_refused(client.post(f"/api/v1/admin/nodes/{node}/suspend", json={"reason": "x"}), 403)
    assert admin_client.get("/api/v1/admin/nodes").status_code == 200
    banned = admin_client.post(f"/api/v1/admin/nodes/{node}/suspend", json={"reason": "cheating"})
    assert banned.status_code == 200 and "cheating" in banned.json["suspended_reason"]
    rendering_job(client, run_workers, scene_files["tiny"], escrow)
    assert_refused(client.post(f"{NODES}/{node}/claim"), 403)
    assert admin_client.post(f"/api/v1/admin/nodes/{node}/reinstate").status_code == 200
    assert claim(client, node) is not None
    # Admins see every artist's jobs.
    assert len(admin_client.get(JOBS).json["jobs"]) == 1


def test_admin_requeues_a_failed_frame(app, client, admin_client, run_workers, scene_files, escrow):
    app.config["RONRENDER_MAX_FRAME_FAILURES"] = 1
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    node = register(client)
    first = claim(client, node)
    failure = client.post(
        f"/api/v1/attempts/{first['attempt_id']}/failure",
        json={"reason": "CRASH: segfault"},
        headers={"X-Lease-Token": first["lease_token"]},
    )
    assert failure.status_code == 200
    frames = {f["number"]: f for f in client.get(f"{JOBS}/{job['id']}/frames").json["frames"]}
    assert frames[first["frame_number"]]["state"] == "FAILED"
    path = f"/api/v1/admin/jobs/{job['id']}/frames/{first['frame_number']}/requeue"
    assert_refused(client.post(path), 403)
    requeued = admin_client.post(path)
    assert requeued.status_code == 200 and requeued.json["state"] == "PENDING"
    assert_refused(admin_client.post(path), 409)  # not FAILED any more


def test_sign_in_challenges_work_once_and_only_for_their_wallet(app, anonymous_client):
    from shared.key_wallet import KeyWallet

    wallet, impostor = KeyWallet(OTHER_ARTIST_KEY), KeyWallet("0x" + "77" * 32)
    address, sign, impostor_sign = wallet.address, wallet.sign_message, impostor.sign_message
    message = anonymous_client.post("/api/v1/auth/challenge", json={"address": address}).json["message"]
    login = "/api/v1/auth/login"
    assert_refused(
        anonymous_client.post(login, json={"message": message, "signature": impostor_sign(message)}), 401
    )
    # The failed try used the challenge up: even the right signature is refused now.
    assert_refused(anonymous_client.post(login, json={"message": message, "signature": sign(message)}), 401)
    message = anonymous_client.post("/api/v1/auth/challenge", json={"address": address}).json["message"]
    tampered = message.replace("Sign in to RonRender.", "Sign in to RonRender!")
    assert_refused(anonymous_client.post(login, json={"message": tampered, "signature": sign(tampered)}), 401)


def test_expired_and_revoked_tokens_stop_working(app, client, anonymous_client):
    created = client.post("/api/v1/auth/tokens", json={"name": "blender add-on"})
    assert created.status_code == 201
    secret = created.json["token"]
    listed = client.get("/api/v1/auth/tokens").json["tokens"]
    assert [t["name"] for t in listed] == ["blender add-on"] and "token" not in listed[0]
    assert db.session.query(ApiToken).filter_by(token_sha256=secret).count() == 0  # only the hash is kept
    addon = client_with_token(app, secret)
    assert addon.get(JOBS).status_code == 200
    other = signed_in_client(app, OTHER_ARTIST_KEY)
    assert_refused(other.delete(f"/api/v1/auth/tokens/{created.json['id']}"), 404)
    assert client.delete(f"/api/v1/auth/tokens/{created.json['id']}").status_code == 200
    assert_refused(addon.get(JOBS), 401)

    # A session token expires even while the process still trusts it (the token cache).
    app.config["RONRENDER_SESSION_TTL_S"] = 1
    session = session_token(anonymous_client, OTHER_ARTIST_KEY)
    expiring = client_with_token(app, session)
    assert expiring.get(JOBS).status_code == 200
    token = (
        db.session.query(ApiToken).filter_by(token_sha256=hashlib.sha256(session.encode()).hexdigest()).one()
    )
    time.sleep(max(0.0, (token.expires_at - utc_now()).total_seconds()) + 0.05)
    assert_refused(expiring.get(JOBS), 401)


def test_a_process_reads_a_token_once_per_cache_period(app, client):
    statements: list[str] = []

    def record(_connection, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert client.get(JOBS).status_code == 200  # looked up (or already trusted)
        statements.clear()
        assert client.get(JOBS).status_code == 200
        again = [s for s in statements if "FROM api_tokens" in s]
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert again == [] and app.config["RONRENDER_TOKEN_CACHE_S"] > 0


def test_a_process_trusts_each_token_for_three_quarters_to_all_of_the_cache_period():
    """Spread, so that the tokens first seen together are not read again together."""
    now = [0.0]
    trusted = token_trust_cache(100.0, timer=lambda: now[0])
    digests = [f"token-{index}" for index in range(200)]
    for digest in digests:
        trusted[digest] = "identity"
    now[0] = 74.9
    assert all(digest in trusted for digest in digests)
    now[0] = 90.0
    still = sum(digest in trusted for digest in digests)
    assert 0 < still < len(digests)
    now[0] = 100.0
    assert not any(digest in trusted for digest in digests)


def test_a_revocation_reaches_every_process_within_a_second(app, client):
    """Another process (here another app, with its own token cache) trusted the token for
    RONRENDER_TOKEN_CACHE_S; the revocation's count in Redis makes it forget it sooner."""
    created = client.post("/api/v1/auth/tokens", json={"name": "script"})
    assert created.status_code == 201
    elsewhere = create_app(dict(app.config))
    with elsewhere.app_context():
        script = client_with_token(elsewhere, created.json["token"])
        assert script.get(JOBS).status_code == 200  # looked up, and now trusted there
        assert client.delete(f"/api/v1/auth/tokens/{created.json['id']}").status_code == 200
        time.sleep(TOKEN_REVOCATION_CHECK_S + 0.2)
        assert_refused(script.get(JOBS), 401)
    assert app.config["RONRENDER_TOKEN_CACHE_S"] > 10 * TOKEN_REVOCATION_CHECK_S  # not the cache's own end


def test_rate_limits_apply_per_identity(app, escrow):
    config = {k: v for k, v in app.config.items() if not k.startswith("RATELIMIT_")}
    limited = create_app({**config, "RONRENDER_RATE_LIMIT": "4 per minute"})
    with limited.app_context():
        artist = client_with_token(limited, session_token(limited.test_client(), escrow["artist_key"]))
        answers = [artist.get(JOBS) for _ in range(5)]
        assert [answer.status_code for answer in answers] == [200, 200, 200, 200, 429]
        # Only the refusal says when to come back (within the minute's window).
        assert all("Retry-After" not in answer.headers for answer in answers[:4])
        assert 1 <= int(answers[4].headers["Retry-After"]) <= 60
        assert_refused(artist.get(JOBS), 429)
        # Another identity has its own budget (its sign-in counts against the client address).
        other = client_with_token(limited, session_token(limited.test_client(), OTHER_ARTIST_KEY))
        assert other.get(JOBS).status_code == 200


def test_a_node_wallet_sees_its_nodes_and_their_earnings(
    app, client, run_workers, scene_files, tmp_path, escrow
):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    owner, _ = wallet_client(app, "earner")
    other, _ = wallet_client(app, "someone-else")
    node = register(owner, name="earner-1")
    for number in (1, 2):
        assignment = claim(owner, node)
        put_output(owner, assignment, noise_png(tmp_path / f"{number}.png", 64, 36, seed=number))
    run_workers()
    assert [n["id"] for n in owner.get(NODES).json["nodes"]] == [node]
    assert other.get(NODES).json["nodes"] == []
    earned = owner.get(f"{NODES}/{node}/earnings").json
    price = int(job["price_per_frame_wei"])
    assert (earned["released_wei"], earned["pending_wei"], earned["frames_paid"]) == (str(2 * price), "0", 2)
    assert [day["wei"] for day in earned["by_day"]] == [str(2 * price)]
    assert_refused(other.get(f"{NODES}/{node}/earnings"), 404)


def test_the_bootstrap_admin_token_cannot_mint_api_tokens(app):
    app.config["RONRENDER_ADMIN_TOKEN"] = "bootstrap-secret"
    admin = client_with_token(app, "bootstrap-secret")
    assert admin.get("/api/v1/admin/nodes").status_code == 200
    assert_refused(admin.post("/api/v1/auth/tokens", json={"name": "x"}), 403)


def test_admins_see_queue_depths(client, admin_client, scene_files):
    assert upload(client, scene_files["tiny"]).status_code == 201  # queues the scene's analysis
    assert_refused(client.get("/api/v1/admin/queues"), 403)
    depths = {q["name"].rsplit("-", 1)[1]: q for q in admin_client.get("/api/v1/admin/queues").json["queues"]}
    assert depths["analysis"]["queued"] == 1
    assert depths["verification"]["queued"] == 0


def test_registration_refuses_versions_and_sizes_the_database_cannot_hold(node_client):
    body = {"name": "n", "cpu_cores": 2, "memory_bytes": 1, "blender_version": "4.5.1 LTS"}
    assert node_client.post(NODES, json=body).status_code == 201
    for bad in (
        {"blender_version": "99999999999999999999.1"},
        {"blender_version": "4.\U0001d7d95"},  # a Unicode digit
        {"cpu_cores": 2**40},
        {"memory_bytes": 2**64},
    ):
        assert_refused(node_client.post(NODES, json={**body, **bad}), 422)


def test_an_empty_claim_under_rate_limits_does_not_send_a_small_farms_node_away(app):
    """Rate limiting counts requests; it must not tell an idle node to wait out its window."""
    config = {k: v for k, v in app.config.items() if not k.startswith("RATELIMIT_")}
    limited = create_app({**config, "RONRENDER_RATE_LIMIT": "100 per minute"})
    with limited.app_context():
        node_client = signed_in_client(limited, NODE_KEY)
        node_id = register(node_client)
        empty = node_client.post(f"{NODES}/{node_id}/claim", json={})
        assert empty.status_code == 204
        assert "Retry-After" not in empty.headers
