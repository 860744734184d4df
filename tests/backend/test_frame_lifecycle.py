"""A frame's life through the HTTP API and the RQ workers: claim, heartbeat, upload,
verification, payment; rejection, failure, hand-back, cancel; and safe claims."""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

import pytest

from backend.extensions import db
from backend.models import Attempt, Payment
from backend.services import matchmaker
from tests.backend.helpers import (
    JOBS,
    NODES,
    accept,
    black_png,
    claim,
    noise_png,
    put_output,
    ready_scene,
    register,
    rendering_job,
)

pytestmark = pytest.mark.integration


def frames_by_number(client, job_id):
    return {f["number"]: f for f in client.get(f"{JOBS}/{job_id}/frames").json["frames"]}


def test_no_frame_goes_out_before_the_lock(client, run_workers, scene_files, escrow):
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    job = client.post(JOBS, json={"scene_sha256": sha256}).json
    node = register(client)
    assert claim(client, node) is None
    assert accept(client, job["id"], escrow["artist_key"]).status_code == 202
    assert claim(client, node) is None  # LOCKING until the lock is confirmed on chain
    run_workers()
    assert claim(client, node) is not None


def test_each_claim_gets_a_different_frame(client, run_workers, scene_files, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow)
    nodes = [register(client, name=f"n{i}") for i in range(5)]
    claims = [claim(client, node) for node in nodes]
    numbers = [c["frame_number"] for c in claims if c]
    assert sorted(numbers) == [1, 2, 3, 4]
    assert claims[4] is None
    assert {c["job_id"] for c in claims if c} == {job["id"]}


def test_concurrent_claims_never_share_a_frame(app, client, run_workers, scene_files, escrow):
    rendering_job(client, run_workers, scene_files["tiny"], escrow)
    nodes = [register(client, name=f"racer{i}") for i in range(8)]
    barrier = threading.Barrier(len(nodes))
    won: list[int] = []
    errors: list[BaseException] = []

    def race(node_id: str) -> None:
        try:
            with app.app_context():
                barrier.wait()
                claimed = matchmaker.claim_frame(matchmaker.get_node(node_id))
                if claimed is not None:
                    won.append(claimed.frame_number)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=race, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(won) == [1, 2, 3, 4]
    assert db.session.query(Attempt).count() == 4


def test_requirements_decide_who_gets_work(client, run_workers, scene_files, escrow):
    rendering_job(
        client,
        run_workers,
        scene_files["tiny"],
        escrow,
        required_device="GPU",
        required_memory_bytes=4 * 1024**3,
    )
    cpu_only = register(client)
    old_blender_gpu = register(
        client,
        blender_version="3.6.0",
        gpus=[{"name": "RTX", "backend": "OPTIX", "memory_bytes": 8 * 1024**3}],
    )
    small_gpu = register(client, gpus=[{"name": "GT", "backend": "CUDA", "memory_bytes": 2 * 1024**3}])
    big_gpu = register(client, gpus=[{"name": "RTX", "backend": "OPTIX", "memory_bytes": 8 * 1024**3}])
    assert claim(client, cpu_only) is None
    assert claim(client, old_blender_gpu) is None
    assert claim(client, small_gpu) is None
    assert claim(client, big_gpu) is not None


def test_verified_frame_is_paid_once_and_downloadable(client, run_workers, scene_files, tmp_path, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    node = register(client)
    assignment = claim(client, node)
    beat = client.post(
        f"{NODES}/{node}/heartbeat",
        json={
            "slots": [
                {
                    "attempt_id": assignment["attempt_id"],
                    "lease_token": assignment["lease_token"],
                    "progress": 0.5,
                }
            ]
        },
    )
    assert beat.json["abandon_attempt_ids"] == []
    rendering = client.get(f"{NODES}/{node}").json["rendering"]
    assert [(r["job_id"], r["frame"], r["progress"]) for r in rendering] == [(job["id"], 1, 0.5)]
    frame = frames_by_number(client, job["id"])[1]
    assert (frame["state"], frame["progress"], frame["node_id"]) == ("RENDERING", 0.5, node)

    image = noise_png(tmp_path / "f.png", 64, 36)
    uploaded = put_output(client, assignment, image)
    assert uploaded.status_code == 202, uploaded.json
    assert frames_by_number(client, job["id"])[1]["state"] == "UPLOADED"
    run_workers()
    assert frames_by_number(client, job["id"])[1]["state"] == "VERIFIED"

    from backend.services import verification

    verification.verify_attempt(assignment["attempt_id"])  # a duplicate delivery pays nothing more
    releases = db.session.query(Payment).filter_by(kind="RELEASE").all()
    assert [(p.frame_number, p.amount_wei, p.recipient) for p in releases] == [
        (1, int(job["price_per_frame_wei"]), escrow["artist_address"])  # the wallet that signed in
    ]
    final = client.get(f"{JOBS}/{job['id']}").json
    assert final["state"] == "COMPLETED"
    money = {k: int(v) for k, v in final["money"].items()}
    assert money["lock_wei"] == int(job["estimate_wei"])
    assert money["lock_wei"] == money["release_wei"] + money["fee_wei"] + money["refund_wei"]
    assert money["refund_wei"] == 0

    single = client.get(f"{JOBS}/{job['id']}/frames/1/output")
    assert single.status_code == 200
    assert single.data == image.read_bytes()
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"{JOBS}/{job['id']}/output.zip").data))
    assert archive.namelist() == ["frame_00001.png"]
    assert archive.read("frame_00001.png") == image.read_bytes()


def test_rejected_frames_go_back_then_fail_and_are_never_paid(
    app, client, run_workers, scene_files, tmp_path, escrow
):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=2, frame_end=2)
    black = black_png(tmp_path / "black.png", 64, 36)
    for attempt_number in range(1, 4):
        node = register(client, name=f"cheat{attempt_number}")  # each node is kept off the job after misses
        assignment = claim(client, node)
        assert assignment is not None, f"attempt {attempt_number}: the frame did not come back"
        assert put_output(client, assignment, black).status_code == 202
        run_workers()
        frame = frames_by_number(client, job["id"])[2]
        assert frame["failures"] == attempt_number
        assert frame["last_rejection"].startswith("BLANK")
    assert frame["state"] == "FAILED"
    assert claim(client, register(client, name="late")) is None
    outcomes = [a.outcome for a in db.session.query(Attempt).order_by(Attempt.id)]
    assert outcomes == ["REJECTED"] * 3
    final = client.get(f"{JOBS}/{job['id']}").json
    assert final["state"] == "COMPLETED"
    assert final["money"]["release_wei"] == "0"
    assert final["money"]["refund_wei"] == job["estimate_wei"]


def test_wrong_size_is_rejected_with_its_reason(client, run_workers, scene_files, tmp_path, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    assignment = claim(client, register(client))
    put_output(client, assignment, noise_png(tmp_path / "big.png", 128, 72))
    run_workers()
    frame = frames_by_number(client, job["id"])[1]
    assert frame["state"] == "PENDING"
    assert frame["last_rejection"] == "WRONG_RESOLUTION: 128x72, expected 64x36"


def test_upload_without_the_lease_is_refused(app, client, run_workers, scene_files, tmp_path, escrow):
    rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    node = register(client)
    assignment = claim(client, node)
    image = noise_png(tmp_path / "f.png", 64, 36)
    forged = put_output(client, {**assignment, "lease_token": "f" * 64}, image)
    assert forged.status_code == 409
    assert forged.json["reason"] == "LEASE_NOT_HELD"

    released = client.post(
        f"/api/v1/attempts/{assignment['attempt_id']}/release",
        headers={"X-Lease-Token": assignment["lease_token"]},
    )
    assert released.status_code == 200
    assert released.json["outcome"] == "RELEASED"
    late = put_output(client, assignment, image)
    assert late.status_code == 409
    objects = [p for p in (Path(app.config["RONRENDER_STORAGE_DIR"]) / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 1  # only the scene file: the refused image was not kept
    again = claim(client, node)
    assert again["frame_number"] == 1
    assert again["attempt_id"] != assignment["attempt_id"]


def test_render_failure_is_recorded_and_the_frame_retried(client, run_workers, scene_files, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=3, frame_end=3)
    node = register(client)
    assignment = claim(client, node)
    response = client.post(
        f"/api/v1/attempts/{assignment['attempt_id']}/failure",
        json={"reason": "Blender exited with code -11", "log_tail": "Segmentation fault"},
        headers={"X-Lease-Token": assignment["lease_token"]},
    )
    assert response.status_code == 200
    frame = frames_by_number(client, job["id"])[3]
    assert (frame["state"], frame["failures"]) == ("PENDING", 1)
    assert "exited with code -11" in frame["last_rejection"]
    attempt = db.session.get(Attempt, assignment["attempt_id"])
    assert attempt.log_tail == "Segmentation fault"


def test_cancel_stops_work_and_refunds_the_lock(client, run_workers, scene_files, tmp_path, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow)
    node = register(client)
    assignment = claim(client, node)
    cancelled = client.post(f"{JOBS}/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json["state"] == "CANCELLED"
    beat = client.post(
        f"{NODES}/{node}/heartbeat",
        json={
            "slots": [
                {
                    "attempt_id": assignment["attempt_id"],
                    "lease_token": assignment["lease_token"],
                    "progress": 0.1,
                }
            ]
        },
    )
    assert beat.json["abandon_attempt_ids"] == [assignment["attempt_id"]]
    assert put_output(client, assignment, noise_png(tmp_path / "f.png", 64, 36)).status_code == 409
    run_workers()
    final = client.get(f"{JOBS}/{job['id']}").json
    assert final["frame_counts"]["CANCELLED"] == 4
    assert final["money"]["refund_wei"] == job["estimate_wei"]
    assert client.post(f"{JOBS}/{job['id']}/cancel").status_code == 409


def test_a_node_blocklist_keeps_jobs_and_artists_away(client, run_workers, scene_files, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    node = register(client)
    claim_path = f"{NODES}/{node}/claim"
    assert client.post(claim_path, json={"exclude_job_ids": [job["id"]]}).status_code == 204
    assert (
        client.post(claim_path, json={"exclude_artists": [escrow["artist_address"].lower()]}).status_code
        == 204
    )
    assert_bad = client.post(claim_path, json={"exclude_artists": ["not-an-address"]})
    assert assert_bad.status_code == 422
    claimed = client.post(claim_path, json={"exclude_artists": ["0x" + "12" * 20]})
    assert claimed.status_code == 200
    assert claimed.json["artist_address"] == escrow["artist_address"]


def test_lifecycle_log_lines_carry_job_frame_and_node_ids(
    client, run_workers, scene_files, tmp_path, escrow, caplog
):
    import json
    import logging

    from backend.observability import JsonFormatter

    caplog.set_level(logging.INFO, logger="backend")
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    node = register(client)
    assignment = claim(client, node)
    put_output(client, assignment, noise_png(tmp_path / "f.png", 64, 36))
    run_workers()
    lines = {record.getMessage(): json.loads(JsonFormatter().format(record)) for record in caplog.records}
    assert lines["frame assigned"]["node_id"] == node
    assert (lines["frame verified"]["job_id"], lines["frame verified"]["frame"]) == (job["id"], 1)
    assert any(message.startswith("job created") for message in lines)
