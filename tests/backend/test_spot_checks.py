"""Spot checks through the HTTP API and the RQ workers, with frames and crops rendered
by real Blender children (the node's own BlenderSession): an honest frame is verified
and paid once after another wallet's node re-rendered its crops; a cheated upload is
rejected with SPOT_CHECK_MISMATCH and goes back to the queue unpaid; a check nobody
takes, or whose checker fails, is skipped and the frame verified as usual."""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backend import defaults
from backend.extensions import db
from backend.models import Attempt, Job, Node, Payment, SpotCheck, utc_now
from backend.queues import get_queue
from backend.services import reconcile, sweep, verification
from node_runner.render import BlenderSession
from shared.protocol import FrameAssignment
from shared.states import FrameState, PaymentKind
from tests.backend.helpers import (
    JOBS,
    NODES,
    claim,
    noise_png,
    put_output,
    register,
    rendering_job,
    storage_then,
)
from tests.identities import NODE_KEY, address_of, wallet_client

pytestmark = pytest.mark.integration


@pytest.fixture
def spot_check_everything(app: Any) -> None:
    app.config["RONRENDER_SPOT_CHECK_RATE"] = 1.0
    app.config["RONRENDER_SPOT_CHECK_RATE_NEW_NODES"] = 1.0


@pytest.fixture
def blender(tmp_path: Path) -> Iterator[BlenderSession]:
    """The node's persistent Blender child, on one CPU thread."""
    work_dir = tmp_path / "blender"
    work_dir.mkdir()
    session = BlenderSession(sys.executable, threads=1, work_dir=work_dir)
    yield session
    session.close()


def render(
    blender: BlenderSession, assignment: FrameAssignment, scene: Path, out: Path, **options: Any
) -> Path:
    result = blender.render(
        assignment, scene, out, on_progress=lambda _: None, cancel=threading.Event(), **options
    )
    assert result.output_path is not None, result.log[-2000:]
    return result.output_path


def upload_crops(client: Any, blender: BlenderSession, check: dict[str, Any], scene: Path, out: Path) -> None:
    """What a checker node does: render each crop on the CPU and upload it under its lease."""
    assignment = FrameAssignment.from_json(check)
    for index, border in enumerate(assignment.crops):
        path = render(blender, assignment, scene, out / f"crop{index}", border=border)
        response = client.put(
            f"/api/v1/attempts/{check['attempt_id']}/crops/{index}",
            data=path.read_bytes(),
            headers={"X-Lease-Token": check["lease_token"]},
            content_type="application/octet-stream",
        )
        assert response.status_code == 202, response.json


def frame_state(client: Any, job_id: str, number: int) -> dict[str, Any]:
    frames = client.get(f"{JOBS}/{job_id}/frames").json["frames"]
    return next(f for f in frames if f["number"] == number)


def releases() -> list[Payment]:
    return list(db.session.scalars(select(Payment).where(Payment.kind == PaymentKind.RELEASE)))


def upload_and_open_check(
    app: Any,
    client: Any,
    node_client: Any,
    run_workers: Any,
    scene: Path,
    escrow: dict[str, str],
    upload: Any,
) -> tuple[dict[str, Any], dict[str, Any], Any, str]:
    """A rendering job; the node wallet's node uploads frame 1 (``upload(assignment)`` gives
    the file); a node of another wallet exists to check it. Returns (job, assignment,
    checker's client, checker node id)."""
    job = rendering_job(client, run_workers, scene, escrow)
    uploader = register(node_client, name="uploader")
    checker_client, _ = wallet_client(app, "checker")
    checker = register(checker_client, name="checker")
    assignment = claim(node_client, uploader)
    assert assignment is not None and assignment["kind"] == "FRAME"
    assert put_output(node_client, assignment, upload(assignment)).status_code == 202
    run_workers()
    return job, assignment, checker_client, checker


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_honest_frame_is_verified_and_paid_once_after_another_wallets_node_checks_it(
    app, client, node_client, run_workers, scene_files, tmp_path, escrow, blender, spot_check_everything
):
    scene = scene_files["tiny"]

    def honest(assignment: dict[str, Any]) -> Path:
        return render(blender, FrameAssignment.from_json(assignment), scene, tmp_path / "upload")

    job, assignment, checker_client, checker = upload_and_open_check(
        app, client, node_client, run_workers, scene, escrow, honest
    )
    assert assignment["frame_number"] == 1
    assert frame_state(client, job["id"], 1)["state"] == "CHECKING"
    assert releases() == []  # nothing is paid while the check waits

    # neither the uploader nor another node of its wallet is offered the check
    same_wallet = register(node_client, name="same-wallet")
    uploader = db.session.get(Attempt, assignment["attempt_id"]).node_id
    for node in (same_wallet, uploader):
        offered = claim(node_client, node)
        assert offered is not None and offered["kind"] == "FRAME" and offered["frame_number"] != 1
        release = node_client.post(
            f"/api/v1/attempts/{offered['attempt_id']}/release",
            headers={"X-Lease-Token": offered["lease_token"]},
        )
        assert release.status_code == 200, release.json

    check = claim(checker_client, checker)
    assert check is not None and check["kind"] == "SPOT_CHECK", check
    assert check["frame_number"] == 1 and 2 <= len(check["crops"]) <= 3
    assert check["settings"] == assignment["settings"]
    # the checker's lease lives on its heartbeats like a frame's
    beat = checker_client.post(
        f"{NODES}/{checker}/heartbeat",
        json={
            "slots": [
                {"attempt_id": check["attempt_id"], "lease_token": check["lease_token"], "progress": 0.5}
            ]
        },
    )
    assert beat.status_code == 200 and beat.json["abandon_attempt_ids"] == []

    upload_crops(checker_client, blender, check, scene, tmp_path)
    # Redis loses the queued comparison: the sweeper's reconcile queues it again
    get_queue(defaults.VERIFICATION_QUEUE).empty()
    assert reconcile.reconcile(force=True) >= 1
    run_workers()

    frame = frame_state(client, job["id"], 1)
    assert frame["state"] == "VERIFIED", frame
    spot_check = db.session.scalar(select(SpotCheck))
    assert spot_check.state == "PASSED" and spot_check.checker_node_id == checker
    paid = releases()
    assert len(paid) == 1 and paid[0].frame_number == 1
    assert paid[0].recipient.lower() == address_of(NODE_KEY).lower()  # the uploader, not the checker
    run_workers()
    assert len(releases()) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("wallets", [2, 3], ids=["decided-by-one-check", "confirmed-by-a-third-wallet"])
def test_a_cheated_upload_fails_its_spot_check_and_goes_back_unpaid(
    app,
    client,
    node_client,
    run_workers,
    scene_files,
    tmp_path,
    escrow,
    blender,
    spot_check_everything,
    wallets,
):
    scene = scene_files["tiny"]

    def fewer_samples(assignment: dict[str, Any]) -> Path:
        """A real render of the right frame, with 1 sample where the job pays for 4."""
        frame = FrameAssignment.from_json(assignment)
        cheap = dataclasses.replace(frame, settings=dataclasses.replace(frame.settings, samples=1))
        return render(blender, cheap, scene, tmp_path / "upload")

    job, assignment, checker_client, checker = upload_and_open_check(
        app, client, node_client, run_workers, scene, escrow, fewer_samples
    )
    assert frame_state(client, job["id"], 1)["state"] == "CHECKING"  # checks 1-6 passed it
    checkers = [(checker_client, checker)]
    if wallets == 3:
        third_client, _ = wallet_client(app, "third")
        checkers.append((third_client, register(third_client, name="third")))
    for index, (a_client, a_node) in enumerate(checkers):
        check = claim(a_client, a_node)
        assert check is not None and check["kind"] == "SPOT_CHECK"
        upload_crops(a_client, blender, check, scene, tmp_path / f"checker{index}")
        run_workers()

    attempt = db.session.get(Attempt, assignment["attempt_id"])
    db.session.refresh(attempt)
    assert attempt.outcome == "REJECTED"
    assert attempt.reason.startswith("SPOT_CHECK_MISMATCH: max difference "), attempt.reason
    frame = frame_state(client, job["id"], 1)
    assert frame["state"] == "PENDING" and frame["last_rejection"].startswith("SPOT_CHECK_MISMATCH")
    checks = db.session.scalars(select(SpotCheck).order_by(SpotCheck.id)).all()
    assert [c.state for c in checks] == ["FAILED"] * (wallets - 1)  # one check, or one and its confirmation
    uploader = db.session.get(Node, attempt.node_id)
    db.session.refresh(uploader)
    assert uploader.frames_rejected == 2  # a proved cheat weighs as two rejections
    assert releases() == []


def test_a_check_nobody_takes_is_skipped_and_the_frame_verified(
    app, client, node_client, run_workers, scene_files, tmp_path, escrow, spot_check_everything
):
    def noise(assignment: dict[str, Any]) -> Path:
        return noise_png(tmp_path / "frame.png", 64, 36)

    job, *_ = upload_and_open_check(app, client, node_client, run_workers, scene_files["tiny"], escrow, noise)
    assert frame_state(client, job["id"], 1)["state"] == "CHECKING"
    assert sweep.sweep(now=utc_now() + timedelta(seconds=60)).spot_checks_skipped == []  # still waiting
    wait_s = app.config["RONRENDER_SPOT_CHECK_WAIT_S"]
    report = sweep.sweep(now=utc_now() + timedelta(seconds=wait_s + 1))
    assert len(report.spot_checks_skipped) == 1
    run_workers()
    assert frame_state(client, job["id"], 1)["state"] == "VERIFIED"
    spot_check = db.session.scalar(select(SpotCheck))
    assert spot_check.state == "SKIPPED" and "no node took the check" in spot_check.result
    assert [p.frame_number for p in releases()] == [1]


def test_a_second_verification_of_the_same_upload_leaves_it_to_its_spot_check(
    app, client, node_client, run_workers, scene_files, tmp_path, escrow, spot_check_everything
):
    """Two verifications of one upload (a task queued again after Redis lost its queue) run
    at once: the first opens the spot check; the second, which read the frame UPLOADED, then
    fails to accept it. That must not cancel the upload, or the passed (here skipped) check
    finds nothing to verify and the frame stays CHECKING for good."""

    def noise(assignment: dict[str, Any]) -> Path:
        return noise_png(tmp_path / "frame.png", 64, 36)

    job, assignment, *_ = upload_and_open_check(
        app, client, node_client, run_workers, scene_files["tiny"], escrow, noise
    )
    assert frame_state(client, job["id"], 1)["state"] == "CHECKING"
    attempt = db.session.get(Attempt, assignment["attempt_id"])
    verification._accept(attempt, expect=[FrameState.UPLOADED])  # the late one's last step
    db.session.refresh(attempt)
    assert attempt.outcome == "UPLOADED"
    assert frame_state(client, job["id"], 1)["state"] == "CHECKING"

    wait_s = app.config["RONRENDER_SPOT_CHECK_WAIT_S"]
    assert len(sweep.sweep(now=utc_now() + timedelta(seconds=wait_s + 1)).spot_checks_skipped) == 1
    run_workers()
    assert frame_state(client, job["id"], 1)["state"] == "VERIFIED"
    assert [p.frame_number for p in releases()] == [1]


def test_a_failing_checker_skips_the_check_and_the_frame_is_verified(
    app, client, node_client, run_workers, scene_files, tmp_path, escrow, spot_check_everything
):
    def noise(assignment: dict[str, Any]) -> Path:
        return noise_png(tmp_path / "frame.png", 64, 36)

    job, _, checker_client, checker = upload_and_open_check(
        app, client, node_client, run_workers, scene_files["tiny"], escrow, noise
    )
    check = claim(checker_client, checker)
    assert check is not None and check["kind"] == "SPOT_CHECK"
    failed = checker_client.post(
        f"/api/v1/attempts/{check['attempt_id']}/failure",
        json={"reason": "CRASH: Blender crashed"},
        headers={"X-Lease-Token": check["lease_token"]},
    )
    assert failed.status_code == 200 and failed.json["outcome"] == "FAILED"
    run_workers()
    assert frame_state(client, job["id"], 1)["state"] == "VERIFIED"
    assert db.session.scalar(select(SpotCheck)).state == "SKIPPED"
    assert [p.frame_number for p in releases()] == [1]


def test_no_check_is_opened_when_no_other_wallet_could_take_it(
    app, client, node_client, run_workers, scene_files, tmp_path, escrow, spot_check_everything
):
    """A farm of one wallet never holds frames back for a check nobody could take."""
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow)
    uploader = register(node_client, name="alone")
    register(node_client, name="same-wallet")
    assignment = claim(node_client, uploader)
    assert put_output(node_client, assignment, noise_png(tmp_path / "f.png", 64, 36)).status_code == 202
    run_workers()
    assert frame_state(client, job["id"], 1)["state"] == "VERIFIED"
    assert db.session.scalar(select(SpotCheck)) is None


def test_no_check_is_opened_for_a_scene_whose_crops_cannot_render_exactly(
    app, client, node_client, run_workers, scene_files, tmp_path, escrow, spot_check_everything
):
    """A denoised or composited scene: a crop would differ at its edges from an honest frame."""
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow)
    scene = db.session.get(Job, job["id"]).scene
    scene.analysis = {**scene.analysis, "crops_render_exactly": False}
    db.session.commit()
    uploader = register(node_client, name="uploader")
    checker_client, _ = wallet_client(app, "checker")
    register(checker_client, name="checker")
    assignment = claim(node_client, uploader)
    assert put_output(node_client, assignment, noise_png(tmp_path / "f.png", 64, 36)).status_code == 202
    run_workers()
    assert frame_state(client, job["id"], 1)["state"] == "VERIFIED"
    assert db.session.scalar(select(SpotCheck)) is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_lying_checker_is_outvoted_by_a_third_wallet_and_pays_for_it(
    app, client, node_client, run_workers, scene_files, tmp_path, escrow, blender, spot_check_everything
):
    """One checker's mismatch is confirmed by a node of a third wallet before an upload is
    rejected; when the third node's crops equal the upload, the liar is the one rejected."""
    scene = scene_files["tiny"]

    def honest(assignment: dict[str, Any]) -> Path:
        return render(blender, FrameAssignment.from_json(assignment), scene, tmp_path / "upload")

    job, assignment, liar_client, liar = upload_and_open_check(
        app, client, node_client, run_workers, scene, escrow, honest
    )
    third_client, _ = wallet_client(app, "third")
    third = register(third_client, name="third")
    lie = claim(liar_client, liar)
    assert lie is not None and lie["kind"] == "SPOT_CHECK"
    fake = dict(lie, settings={**lie["settings"], "samples": 1})  # crops of a cheaper render
    upload_crops(liar_client, blender, fake, scene, tmp_path / "lie")
    run_workers()

    assert frame_state(client, job["id"], 1)["state"] == "CHECKING"  # not rejected on one word
    assert db.session.get(Attempt, assignment["attempt_id"]).outcome == "UPLOADED"
    assert claim(liar_client, liar)["kind"] == "FRAME"  # the liar cannot confirm its own lie
    confirm = claim(third_client, third)
    assert confirm is not None and confirm["kind"] == "SPOT_CHECK" and confirm["crops"] == lie["crops"]
    upload_crops(third_client, blender, confirm, scene, tmp_path / "confirm")
    run_workers()

    assert frame_state(client, job["id"], 1)["state"] == "VERIFIED"
    assert [p.frame_number for p in releases()] == [1]
    first, second = db.session.scalars(select(SpotCheck).order_by(SpotCheck.id)).all()
    assert (first.state, second.state) == ("FAILED", "PASSED")
    assert second.confirms_spot_check_id == first.id
    liar_attempt = db.session.get(Attempt, lie["attempt_id"])
    db.session.refresh(liar_attempt)
    assert liar_attempt.outcome == "REJECTED" and liar_attempt.reason.startswith("SPOT_CHECK_FALSE_MISMATCH")
    assert db.session.get(Node, liar).frames_rejected == 2
    assert (
        db.session.get(Node, db.session.get(Attempt, assignment["attempt_id"]).node_id).frames_rejected == 0
    )


def test_a_mismatch_nobody_confirms_in_time_still_rejects_the_upload(
    app, client, node_client, run_workers, scene_files, tmp_path, escrow, spot_check_everything
):
    def noise(assignment: dict[str, Any]) -> Path:
        return noise_png(tmp_path / "frame.png", 64, 36, seed=1)

    job, _, checker_client, checker = upload_and_open_check(
        app, client, node_client, run_workers, scene_files["tiny"], escrow, noise
    )
    third_client, _ = wallet_client(app, "third")
    register(third_client, name="third")  # online, so a confirmation is asked for, but it never claims
    check = claim(checker_client, checker)
    for index in range(len(check["crops"])):
        different = noise_png(tmp_path / f"crop{index}.png", 64, 36, seed=2)
        response = checker_client.put(
            f"/api/v1/attempts/{check['attempt_id']}/crops/{index}",
            data=different.read_bytes(),
            headers={"X-Lease-Token": check["lease_token"]},
            content_type="application/octet-stream",
        )
        assert response.status_code == 202, response.json
    run_workers()
    assert frame_state(client, job["id"], 1)["state"] == "CHECKING"  # waiting for a confirmation
    wait_s = app.config["RONRENDER_SPOT_CHECK_WAIT_S"]
    sweep.sweep(now=utc_now() + timedelta(seconds=wait_s + 1))
    run_workers()
    frame = frame_state(client, job["id"], 1)
    assert frame["state"] == "PENDING" and frame["last_rejection"].startswith("SPOT_CHECK_MISMATCH")
    assert [c.state for c in db.session.scalars(select(SpotCheck).order_by(SpotCheck.id))] == [
        "FAILED",
        "SKIPPED",
    ]
    assert releases() == []


def test_a_crop_that_arrives_after_the_lease_ended_is_refused(
    app, client, node_client, run_workers, scene_files, tmp_path, escrow, spot_check_everything, monkeypatch
):
    """The sweep expires the checker's lease while a crop's bytes arrive: the crop is
    refused, and the expired attempt stays expired."""
    from sqlalchemy import text

    from backend.services import spot_checks

    def noise(assignment: dict[str, Any]) -> Path:
        return noise_png(tmp_path / "frame.png", 64, 36, seed=1)

    _, _, checker_client, checker = upload_and_open_check(
        app, client, node_client, run_workers, scene_files["tiny"], escrow, noise
    )
    check = claim(checker_client, checker)

    def expire_the_lease() -> None:
        with db.engine.begin() as other:  # what the sweep commits meanwhile
            expire = text("UPDATE attempts SET outcome = 'EXPIRED' WHERE id = :id")
            other.execute(expire, {"id": check["attempt_id"]})

    monkeypatch.setattr(spot_checks, "storage", storage_then(spot_checks.storage(), expire_the_lease))
    response = checker_client.put(
        f"/api/v1/attempts/{check['attempt_id']}/crops/0",
        data=noise_png(tmp_path / "crop0.png", 64, 36, seed=2).read_bytes(),
        headers={"X-Lease-Token": check["lease_token"]},
        content_type="application/octet-stream",
    )
    assert response.status_code == 409, response.json
    db.session.expire_all()
    assert db.session.get(Attempt, check["attempt_id"]).outcome == "EXPIRED"
    assert db.session.scalar(select(SpotCheck)).crop_sha256s[0] is None


def test_claims_trust_none_pending_for_a_moment_then_see_a_check_made_elsewhere(
    app, client, node_client, run_workers, scene_files, tmp_path, escrow, spot_check_everything
):
    """A process that found no check pending skips the offer query for
    NONE_PENDING_TRUSTED_S; a check a verifier in another process opened meanwhile is
    offered once that has passed."""
    import time

    from backend.services import spot_checks

    def noise(assignment: dict[str, Any]) -> Path:
        return noise_png(tmp_path / "frame.png", 64, 36)

    job, _, checker_client, checker = upload_and_open_check(
        app, client, node_client, run_workers, scene_files["tiny"], escrow, noise
    )
    assert frame_state(client, job["id"], 1)["state"] == "CHECKING"
    # As if this process had found none pending just before another process opened the check.
    memo = {"until": time.monotonic() + spot_checks.NONE_PENDING_TRUSTED_S}
    app.extensions[spot_checks.NONE_PENDING_KEY] = memo
    meanwhile = claim(checker_client, checker)
    assert meanwhile is None or meanwhile["kind"] == "FRAME"
    memo["until"] = time.monotonic()  # the moment has passed
    offered = claim(checker_client, checker)
    assert offered is not None and offered["kind"] == "SPOT_CHECK" and offered["frame_number"] == 1
