"""Silent nodes go OFFLINE and drop their frames, which go first to a healthy,
reputable node; leases and time limits end; reputation falls and recovers; a
suspended node waits for an admin; the reconciler re-creates lost queue entries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend import defaults
from backend.extensions import db
from backend.models import Attempt, Node, utc_now
from backend.services import reconcile, reputation, sweep
from backend.services.matchmaker import claim_frame
from tests.backend.helpers import JOBS, NODES, claim, noise_png, put_output, register, rendering_job

pytestmark = pytest.mark.integration


def later(seconds: float):
    return utc_now() + timedelta(seconds=seconds)


def node_view(client, node_id):
    return client.get(f"{NODES}/{node_id}").json


def test_a_silent_node_goes_offline_and_its_frame_is_reassigned_first(
    app, client, run_workers, scene_files, tmp_path, escrow
):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow)
    dying = register(client, name="dying")
    healthy = register(client, name="healthy")
    dropped = claim(client, dying)
    report = sweep.sweep(now=later(app.config["RONRENDER_OFFLINE_AFTER_S"] + 1))
    assert dying in report.nodes_offline and healthy in report.nodes_offline  # both silent in this future
    client.post(f"{NODES}/{healthy}/heartbeat", json={"slots": []})  # the healthy one is back
    assert node_view(client, dying)["state"] == "OFFLINE"
    assert node_view(client, dying)["frames_dropped"] == 1
    assert node_view(client, dying)["reputation"] < 1.0

    retry = claim(client, healthy)
    assert retry["frame_number"] == dropped["frame_number"]  # handed back frames come first
    late = put_output(client, dropped, noise_png(tmp_path / "late.png", 64, 36))
    assert late.status_code == 409  # the dead node's lease is gone: never paid
    assert put_output(client, retry, noise_png(tmp_path / "ok.png", 64, 36)).status_code == 202
    run_workers()
    frames = {f["number"]: f for f in client.get(f"{JOBS}/{job['id']}/frames").json["frames"]}
    assert frames[dropped["frame_number"]]["state"] == "VERIFIED"
    assert frames[dropped["frame_number"]]["node_id"] == healthy
    assert frames[dropped["frame_number"]]["failures"] == 0  # a drop is the node's fault, not the frame's


def test_beats_claims_and_uploads_keep_a_node_online_to_a_tenth_of_the_offline_window(
    app, client, run_workers, scene_files, tmp_path, escrow
):
    rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=3)
    node_id = register(client)
    node = db.session.get(Node, node_id)
    grain_s = app.config["RONRENDER_OFFLINE_AFTER_S"] / 10

    def heard_ago(seconds: float, state: str = "ONLINE") -> None:
        node.last_heartbeat_at = utc_now() - timedelta(seconds=seconds)
        node.state = state
        db.session.commit()

    def age_s() -> float:
        db.session.expire_all()
        return (utc_now() - db.session.get(Node, node_id).last_heartbeat_at).total_seconds()

    heard_ago(grain_s / 2)
    assignment = claim(client, node_id)
    assert age_s() >= grain_s / 2  # recent enough: the claim wrote no node row
    heard_ago(grain_s + 1)
    answer = put_output(client, assignment, noise_png(tmp_path / "a.png", 64, 36), claim_next=True)
    assert answer.status_code == 202 and answer.json["next"] is not None
    assert age_s() < grain_s / 2  # the upload was heard
    heard_ago(grain_s / 2)
    client.post(f"{NODES}/{node_id}/heartbeat", json={"slots": []})
    assert age_s() >= grain_s / 2
    heard_ago(grain_s + 1)
    client.post(f"{NODES}/{node_id}/heartbeat", json={"slots": []})
    assert age_s() < grain_s / 2
    heard_ago(1, state="OFFLINE")  # the sweep saw it silent; then it claims again
    assert claim(client, node_id) is not None
    assert node_view(client, node_id)["state"] == "ONLINE" and age_s() < 1


def test_heartbeats_keep_a_node_and_its_lease_alive(app, client, run_workers, scene_files, escrow):
    rendering_job(client, run_workers, scene_files["tiny"], escrow)
    node = register(client)
    assignment = claim(client, node)
    slot = {"attempt_id": assignment["attempt_id"], "lease_token": assignment["lease_token"], "progress": 0.3}
    client.post(f"{NODES}/{node}/heartbeat", json={"slots": [slot]})
    report = sweep.sweep(now=later(app.config["RONRENDER_OFFLINE_AFTER_S"] / 2))
    assert report.nodes_offline == [] and report.frames_requeued == []


def test_a_hung_render_loses_its_frame_after_the_time_limit(app, client, run_workers, scene_files, escrow):
    app.config["RONRENDER_FRAME_TIME_LIMIT_S"] = 60
    app.config["RONRENDER_OFFLINE_AFTER_S"] = 3600
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    node = register(client)
    assignment = claim(client, node)
    report = sweep.sweep(now=later(61))
    assert report.frames_requeued == [(job["id"], 1)]
    attempt = db.session.get(Attempt, assignment["attempt_id"])
    assert attempt.outcome == "EXPIRED"
    assert "time limit of 60 s" in attempt.reason
    frame = client.get(f"{JOBS}/{job['id']}/frames").json["frames"][0]
    assert (frame["state"], frame["failures"]) == ("PENDING", 1)
    assert "TIMED_OUT" in frame["last_rejection"]


def test_a_node_that_keeps_failing_a_job_is_kept_off_it(client, run_workers, scene_files, escrow):
    rendering_job(client, run_workers, scene_files["tiny"], escrow)
    clumsy = register(client, name="clumsy")
    for _ in range(defaults.JOB_BLOCKLIST_AFTER_FAILURES):
        assignment = claim(client, clumsy)
        client.post(
            f"/api/v1/attempts/{assignment['attempt_id']}/failure",
            json={"reason": "Blender exited with code -9"},
            headers={"X-Lease-Token": assignment["lease_token"]},
        )
    db.session.get(Node, clumsy).frames_failed = 0  # reputation aside: the blocklist alone
    db.session.commit()
    assert claim(client, clumsy) is None
    assert claim(client, register(client, name="other")) is not None


def test_reputation_falls_suspends_and_recovers(app, client, run_workers, scene_files, escrow):
    node = db.session.get(Node, register(client))
    assert reputation.score(node) == 1.0
    for _ in range(3):
        reputation.record(node, reputation.Outcome.DROPPED)
    assert reputation.score(node) == pytest.approx(10 / 19)
    node.frames_verified = 20
    assert reputation.score(node) == pytest.approx(30 / 39)  # good work brings it back
    node.frames_verified = 0
    reputation.record(node, reputation.Outcome.REJECTED)
    db.session.commit()
    assert reputation.score(node) < defaults.REPUTATION_SUSPEND_BELOW
    assert "awaiting admin review" in node.suspended_reason
    rendering_job(client, run_workers, scene_files["tiny"], escrow)
    refused = client.post(f"{NODES}/{node.id}/claim")
    assert refused.status_code == 403
    assert refused.json["reason"] == "NODE_SUSPENDED"

    # Signed in, but not an admin.
    assert client.post(f"/api/v1/admin/nodes/{node.id}/reinstate").status_code == 403
    app.config["RONRENDER_ADMIN_TOKEN"] = "s3cret"
    headers = {"Authorization": "Bearer s3cret"}
    reinstated = client.post(f"/api/v1/admin/nodes/{node.id}/reinstate", headers=headers)
    assert reinstated.status_code == 200
    assert (reinstated.json["suspended_reason"], reinstated.json["reputation"]) == (None, 1.0)
    assert claim(client, node.id) is not None


def test_retried_frames_go_only_to_reputable_nodes(app, client, run_workers, scene_files, escrow):
    rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    first = claim(client, register(client, name="leaver"))
    client.post(
        f"/api/v1/attempts/{first['attempt_id']}/release", headers={"X-Lease-Token": first["lease_token"]}
    )
    shaky = db.session.get(Node, register(client, name="shaky"))
    shaky.frames_dropped = 1  # score 10/13: below the bar for retries, above suspension
    db.session.commit()
    claimed = claim_frame(shaky)
    assert claimed.frame_number != first["frame_number"]  # gets the fresh frame, not the retry
    steady = claim(client, register(client, name="steady"))
    assert steady["frame_number"] == first["frame_number"]


def test_the_reconciler_requeues_what_redis_lost(app, client, run_workers, scene_files, tmp_path, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    assignment = claim(client, register(client))
    put_output(client, assignment, noise_png(tmp_path / "f.png", 64, 36))
    from backend.queues import get_queue

    for name in defaults.ALL_QUEUES:
        get_queue(name).empty()  # Redis restarted with nothing on disk
    reconcile.reconcile(force=True)
    run_workers()
    assert client.get(f"{JOBS}/{job['id']}").json["state"] == "COMPLETED"
