"""Spot checks: another node re-renders a few small crops of an uploaded frame, and
the frame is verified only if they equal the same regions of the upload.

Cycles on the CPU with the scene's own seed and the same frame number renders a
border crop bit for bit like the full frame, so the comparison is exact. Checks are
therefore made only where that holds: Cycles scenes without the denoiser or the
compositor (both look at neighbouring pixels; scene analysis records it), uploads
of nodes without GPUs, re-rendered on a CPU by a node of another wallet with the
same Blender version. A frame waits in CHECKING; a check nobody takes within the wait, or whose
checker fails, is SKIPPED and the frame verified as usual, so payment is never
blocked by a check.

A mismatch is confirmed by a node of a third wallet when one is online before the
upload is rejected; if that node's crops equal the upload, the first checker lied.

The checker works under an attempt of its own on the same frame (lease,
heartbeats, sweep); the frame's current attempt stays the checked one, so a
release always pays the node that rendered the frame.
"""

from __future__ import annotations

import functools
import logging
import random
import secrets
import time
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from flask import current_app
from sqlalchemy import Select, bindparam, exists, func, select

from backend import defaults, queues
from backend.errors import LeaseNotHeld, NotFound, RonRenderError
from backend.extensions import app_scoped, db
from backend.models import Attempt, Frame, Job, Node, SpotCheck, utc_now
from backend.services import reputation
from backend.services.frame_transitions import Lease, open_lease, requeue_or_fail, transition_frame
from backend.services.guarded_update import move_state
from backend.services.scene_intake import storage
from shared.image_checks import ExpectedImage, choose_crops, crop_region, crops_match, load_pixels
from shared.states import AttemptOutcome, DeviceType, FrameState, JobState, NodeState, SpotCheckState

MISMATCH = "SPOT_CHECK_MISMATCH"
# How many PENDING checks one claim looks through for one this node may take.
OFFER_CANDIDATES = 16
NONE_PENDING_TRUSTED_S = 1.0
NONE_PENDING_KEY = "ronrender_no_spot_check_pending_until"

log = logging.getLogger(__name__)


class CropIndexOutOfRange(RonRenderError):
    status = 404
    reason = "NOT_FOUND"


# Deciding and offering


def renders_on_cpu_only(node: Node) -> bool:
    """A node without GPUs rendered its frames on the CPU: an exact re-render is possible."""
    return not node.gpus and all(slot.get("device_type") != DeviceType.GPU for slot in node.slots or [])


def can_check_on_cpu(node: Node) -> bool:
    """The node has a CPU slot (nodes that listed no slots render on the CPU)."""
    slots = node.slots or []
    return not slots or any(slot.get("device_type") == DeviceType.CPU for slot in slots)


def _same_wallet(a: Node, b: Node) -> bool:
    addresses = {(x or "").lower() for x in (a.owner_address, a.payout_address)} - {""}
    return bool(addresses & ({(x or "").lower() for x in (b.owner_address, b.payout_address)} - {""}))


def _may_check(checker: Node, uploader: Node, first_checker: Node | None = None) -> bool:
    """``first_checker``: for a confirming check, the wallet whose mismatch is being confirmed."""
    return (
        checker.id != uploader.id
        and not _same_wallet(checker, uploader)
        and (first_checker is None or not _same_wallet(checker, first_checker))
        and checker.blender_version == uploader.blender_version
        and checker.suspended_reason is None
        and can_check_on_cpu(checker)
    )


def spot_check_rate(node: Node) -> float:
    """The share of the node's frames that are spot-checked: higher while it is new."""
    if node.frames_verified < defaults.SPOT_CHECK_NEW_NODE_FRAMES:
        return float(current_app.config["RONRENDER_SPOT_CHECK_RATE_NEW_NODES"])
    return float(current_app.config["RONRENDER_SPOT_CHECK_RATE"])


def open_spot_check(attempt: Attempt, **frame_values: Any) -> bool:
    """Hold an accepted upload in CHECKING behind a new spot check, if this attempt is
    drawn for one and some online node could take it; True if the frame now waits.

    The draw is seeded from the attempt id (and the deployment's secret), so it is
    reproducible. ``frame_values`` (fingerprint, statistics) are stored on the frame now.
    """
    uploader: Node = attempt.node
    frame: Frame = attempt.frame
    job: Job = frame.job
    rng = random.Random(f"{current_app.config.get('RONRENDER_SPOT_CHECK_SECRET', '')}:{attempt.id}")
    if rng.random() >= spot_check_rate(uploader):
        return False
    exact = (job.scene.analysis or {}).get("crops_render_exactly", False)  # no denoiser, no compositor
    if job.engine != "CYCLES" or not exact or not renders_on_cpu_only(uploader):
        return False
    if not _a_checker_is_online(uploader):
        return False
    if not transition_frame(frame.id, FrameState.CHECKING, expect=[FrameState.UPLOADED], **frame_values):
        return False
    count = rng.randint(*defaults.SPOT_CHECK_CROPS)
    crops = choose_crops(job.output_width, job.output_height, rng, count)
    db.session.add(
        SpotCheck(frame_id=frame.id, checked_attempt_id=attempt.id, crops=crops, crop_sha256s=[None] * count)
    )
    db.session.commit()
    _offer_soon()
    log.info("frame awaits a spot check", extra=_ids(attempt))
    return True


def _a_checker_is_online(uploader: Node, first_checker: Node | None = None) -> bool:
    """Some other ONLINE node could take the check now (else it would only wait and be skipped)."""
    candidates = db.session.scalars(
        select(Node)
        .where(
            Node.id != uploader.id,
            Node.state == NodeState.ONLINE,
            Node.suspended_reason.is_(None),
            Node.blender_version == uploader.blender_version,
        )
        .limit(50)
    )
    return any(_may_check(node, uploader, first_checker) for node in candidates)


def claim_spot_check(
    node: Node,
    now: datetime,
    *,
    exclude_job_ids: list[str] | None,
    exclude_artists: list[str] | None,
) -> tuple[SpotCheck, Lease] | None:
    """Give the node a PENDING spot check of another wallet's frame, under a new lease;
    uncommitted (the caller commits, and logs the lease once it has)."""
    if not can_check_on_cpu(node) or not _any_pending():
        return None
    candidates = _offerable_checks()
    if exclude_job_ids:
        candidates = candidates.where(Frame.job_id.not_in(exclude_job_ids))
    if exclude_artists:
        candidates = candidates.where(
            func.lower(Job.artist_address).not_in([a.lower() for a in exclude_artists])
        )
    node_values = {
        "node_id": node.id,
        "memory_bytes": node.memory_bytes,
        "blender_version": node.blender_version,
    }
    for spot_check_id in db.session.scalars(candidates, node_values).all():
        spot_check = db.session.get(SpotCheck, spot_check_id)
        assert spot_check is not None
        if not _may_check(node, spot_check.checked_attempt.node, _first_checker(spot_check)):
            continue
        if not move_state(  # the guard: of two racing checkers exactly one takes it
            SpotCheck,
            spot_check.id,
            {SpotCheckState.PENDING},
            SpotCheckState.ASSIGNED,
            checker_node_id=node.id,
            crop_sha256s=[None] * len(spot_check.crops),
        ):
            continue
        lease = open_lease(node.id, spot_check.frame_id, now)
        spot_check.checker_attempt_id = lease.attempt_id
        return spot_check, lease
    return None


def _any_pending() -> bool:
    """Whether any spot check waits for a checker. "None" is trusted for
    NONE_PENDING_TRUSTED_S per process: claims then skip the offer query (most find no
    check), and a new check waits at most that long to be offered."""
    memo = app_scoped(NONE_PENDING_KEY, lambda: {"until": 0.0})
    if time.monotonic() < memo["until"]:
        return False
    pending = db.session.scalar(_pending_exists()) or False
    if not pending:
        memo["until"] = time.monotonic() + NONE_PENDING_TRUSTED_S
    return pending


def _offer_soon() -> None:
    """A check was made PENDING here: this process's claims look for it at once."""
    current_app.extensions.pop(NONE_PENDING_KEY, None)


@functools.cache
def _pending_exists() -> Select[Any]:
    return select(exists().where(SpotCheck.state == SpotCheckState.PENDING))


@functools.cache
def _offerable_checks() -> Select[Any]:
    """PENDING spot checks the node whose values are bound (``node_id``, ``memory_bytes``,
    ``blender_version``) could take, oldest first. Built once: every claim asks it."""
    uploader = Node.__table__.alias("uploader")
    return (
        select(SpotCheck.id)
        .join(Frame, Frame.id == SpotCheck.frame_id)
        .join(Job, Job.id == Frame.job_id)
        .join(Attempt, Attempt.id == SpotCheck.checked_attempt_id)
        .join(uploader, uploader.c.id == Attempt.node_id)
        .where(
            SpotCheck.state == SpotCheckState.PENDING,
            Frame.state == FrameState.CHECKING,
            Job.state == JobState.RENDERING,
            Job.required_memory_bytes <= bindparam("memory_bytes"),
            uploader.c.id != bindparam("node_id"),
            uploader.c.blender_version == bindparam("blender_version"),
        )
        .order_by(SpotCheck.created_at)
        .limit(OFFER_CANDIDATES)
    )


def _first_checker(spot_check: SpotCheck) -> Node | None:
    """For a confirming check, the node whose mismatch it confirms."""
    if spot_check.confirms_spot_check_id is None:
        return None
    first = db.session.get(SpotCheck, spot_check.confirms_spot_check_id)
    return db.session.get(Node, first.checker_node_id) if first and first.checker_node_id else None


# The checker's lease


def checked_by(attempt: Attempt, *, locked: bool = False) -> SpotCheck | None:
    """The spot check this attempt is the checker of, if it is one; ``locked`` reads it
    again from the database, locked until the commit."""
    query = select(SpotCheck).where(SpotCheck.checker_attempt_id == attempt.id)
    if locked:
        query = query.with_for_update().execution_options(populate_existing=True)
    return db.session.scalar(query)


def holds_live_check(attempt: Attempt) -> bool:
    """A checker attempt whose check is still in its hands (heartbeats renew it)."""
    return _holds(attempt, checked_by(attempt))


def _holds(attempt: Attempt, spot_check: SpotCheck | None) -> bool:
    return (
        spot_check is not None
        and spot_check.state == SpotCheckState.ASSIGNED
        and attempt.outcome == AttemptOutcome.OPEN
        and attempt.frame.state == FrameState.CHECKING
    )


def live_checker_attempt(
    attempt_id: int, lease_token: str, *, locked: bool = False
) -> tuple[Attempt, SpotCheck]:
    """The checker's attempt and its spot check, if its lease is live. ``locked`` reads the
    attempt, its frame and its check again from the database, locked until the commit:
    another process (the sweep, a second crop) may have moved them since they were read."""
    attempt = db.session.get(Attempt, attempt_id, populate_existing=locked, with_for_update=locked)
    if attempt is None:
        raise NotFound(f"no attempt {attempt_id}")
    if not secrets.compare_digest(attempt.lease_token, lease_token or ""):
        raise LeaseNotHeld("the lease token does not match this attempt")
    if locked:
        db.session.get(Frame, attempt.frame_id, populate_existing=True)
    spot_check = checked_by(attempt, locked=locked)
    if spot_check is None or not _holds(attempt, spot_check):
        raise LeaseNotHeld(f"attempt {attempt_id} holds no live spot check")
    if attempt.lease_expires_at < utc_now():
        raise LeaseNotHeld(f"the lease of attempt {attempt_id} has expired")
    return attempt, spot_check


def receive_crop(attempt_id: int, lease_token: str, index: int, stream: BinaryIO) -> Attempt:
    """Store one re-rendered crop; once all arrived, queue the comparison."""
    _, spot_check = live_checker_attempt(attempt_id, lease_token)
    if not 0 <= index < len(spot_check.crops):
        raise CropIndexOutOfRange(f"spot check {spot_check.id} has {len(spot_check.crops)} crops")
    stored = storage().save_stream(stream, current_app.config["RONRENDER_MAX_RENDER_OUTPUT_BYTES"])
    try:  # the lease may have ended while the bytes arrived
        attempt, spot_check = live_checker_attempt(attempt_id, lease_token, locked=True)
    except Exception:
        db.session.rollback()
        if stored.newly_stored:
            storage().delete(stored.sha256)
        raise
    received = list(spot_check.crop_sha256s)
    received[index] = stored.sha256
    spot_check.crop_sha256s = received
    complete = all(received)
    if complete:
        attempt.outcome = AttemptOutcome.UPLOADED
        attempt.progress = 1.0
        attempt.ended_at = utc_now()
    db.session.commit()
    if complete:
        queues.enqueue_spot_check_comparison(spot_check.id)
    return attempt


def checker_failed(attempt: Attempt, reason: str, log_tail: str) -> Attempt:
    """The checker could not render its crops: the check is skipped, the frame verified as usual."""
    spot_check = checked_by(attempt)
    assert spot_check is not None
    attempt.outcome = AttemptOutcome.FAILED
    attempt.reason = reason[:2000]
    attempt.log_tail = log_tail[-8000:]
    attempt.ended_at = utc_now()
    reputation.record(attempt.node, reputation.Outcome.FAILED)
    db.session.commit()
    skip(spot_check.id, f"the checker failed: {reason[:200]}")
    return attempt


def checker_released(attempt: Attempt) -> Attempt:
    """The checker is stopping: the check waits for another node (within its wait)."""
    spot_check = checked_by(attempt)
    assert spot_check is not None
    attempt.outcome = AttemptOutcome.RELEASED
    attempt.ended_at = utc_now()
    move_state(
        SpotCheck,
        spot_check.id,
        {SpotCheckState.ASSIGNED},
        SpotCheckState.PENDING,
        checker_node_id=None,
        checker_attempt_id=None,
    )
    db.session.commit()
    _offer_soon()
    return attempt


# Comparing and deciding


def compare(spot_check_id: int) -> None:
    """Compare every crop with the same region of the checked upload, exactly; decide the frame."""
    spot_check = db.session.get(SpotCheck, spot_check_id)
    if spot_check is None or spot_check.state != SpotCheckState.ASSIGNED or not all(spot_check.crop_sha256s):
        return  # decided already, or not every crop arrived: comparing is idempotent
    checked = spot_check.checked_attempt
    job: Job = spot_check.frame.job
    width, height = job.output_width, job.output_height
    max_bytes = current_app.config["RONRENDER_MAX_RENDER_OUTPUT_BYTES"]
    assert checked.output_sha256 is not None
    upload = load_pixels(
        str(storage().path_for(checked.output_sha256)),
        ExpectedImage(output_format=job.output_format, width=width, height=height, max_bytes=max_bytes),
    )
    worst: tuple[float, int] = (0.0, -1)
    for index, (border, sha256) in enumerate(zip(spot_check.crops, spot_check.crop_sha256s, strict=True)):
        # a crop comes as a frame-sized image with only its border rendered (see render_server)
        try:
            rendered = load_pixels(
                str(storage().path_for(sha256)),
                ExpectedImage(job.output_format, width=width, height=height, max_bytes=max_bytes),
            )
        except Exception as error:  # the checker's crop is broken: its fault, not the uploader's
            reason = f"crop {index} does not decode as a {width}x{height} {job.output_format}: {error}"
            _checker_crop_broken(spot_check, reason)
            return
        if set(rendered) != set(upload):
            reason = f"crop {index} has channels {sorted(rendered)}, not {sorted(upload)}"
            _checker_crop_broken(spot_check, reason)
            return
        region = crop_region(upload, width, height, border)
        crop = crop_region(rendered, width, height, border)
        matched, difference = crops_match(region, crop)
        if not matched and difference > worst[0]:
            worst = (difference, index)
    if worst[1] < 0:
        _passed(spot_check)
    else:
        _mismatch(spot_check, f"{MISMATCH}: max difference {worst[0]:g} in crop {worst[1]}")


def _checker_crop_broken(spot_check: SpotCheck, reason: str) -> None:
    checker = db.session.get(Attempt, spot_check.checker_attempt_id)
    if checker is not None and checker.outcome in (AttemptOutcome.OPEN, AttemptOutcome.UPLOADED):
        checker.outcome = AttemptOutcome.FAILED
        checker.reason = reason[:2000]
        reputation.record(checker.node, reputation.Outcome.FAILED)
        db.session.commit()
    skip(spot_check.id, reason)


def _end_checker(spot_check: SpotCheck) -> None:
    checker = db.session.get(Attempt, spot_check.checker_attempt_id)
    if checker is not None and checker.outcome in (AttemptOutcome.OPEN, AttemptOutcome.UPLOADED):
        # the checker's crops were used; a check earns no payment and no reputation
        checker.outcome = AttemptOutcome.VERIFIED
        checker.ended_at = checker.ended_at or utc_now()


def _passed(spot_check: SpotCheck) -> None:
    from backend.services import verification

    if not move_state(
        SpotCheck, spot_check.id, {SpotCheckState.ASSIGNED}, SpotCheckState.PASSED, ended_at=utc_now()
    ):
        return
    spot_check.result = "the crops equal the upload"
    _end_checker(spot_check)
    if spot_check.confirms_spot_check_id is not None:
        _false_mismatch(spot_check.confirms_spot_check_id)
    db.session.commit()
    log.info("spot check passed", extra=_ids(spot_check.checked_attempt))
    verification.verify_checked_frame(spot_check.checked_attempt)


def _mismatch(spot_check: SpotCheck, reason: str) -> None:
    """The crops differ from the upload. A first mismatch is confirmed by a node of a third
    wallet when one is online (a lying checker must not cost an honest node its frame);
    a confirmed mismatch, or one nobody else can confirm, rejects the upload."""
    if not move_state(
        SpotCheck, spot_check.id, {SpotCheckState.ASSIGNED}, SpotCheckState.FAILED, ended_at=utc_now()
    ):
        return
    spot_check.result = reason
    _end_checker(spot_check)
    checker = db.session.get(Node, spot_check.checker_node_id)
    uploader = spot_check.checked_attempt.node
    if spot_check.confirms_spot_check_id is None and checker and _a_checker_is_online(uploader, checker):
        db.session.add(
            SpotCheck(
                frame_id=spot_check.frame_id,
                checked_attempt_id=spot_check.checked_attempt_id,
                crops=spot_check.crops,
                crop_sha256s=[None] * len(spot_check.crops),
                confirms_spot_check_id=spot_check.id,
            )
        )
        db.session.commit()
        _offer_soon()
        log.info("spot check mismatch, to be confirmed: %s", reason, extra=_ids(spot_check.checked_attempt))
        return
    db.session.commit()
    _reject_upload(spot_check, reason)


def _reject_upload(spot_check: SpotCheck, reason: str) -> None:
    # imported here: job_lifecycle and verification import the matchmaker, which imports this module
    from backend.services import job_lifecycle, verification

    checked = spot_check.checked_attempt
    frame = spot_check.frame
    if checked.outcome == AttemptOutcome.UPLOADED:
        checked.outcome = AttemptOutcome.REJECTED
        checked.reason = reason
        # a fabricated frame, proved by a re-render: weighs as several rejections
        for _ in range(defaults.REPUTATION_WEIGHT_SPOT_CHECK_MISMATCH):
            reputation.record(checked.node, reputation.Outcome.REJECTED)
    if frame.state == FrameState.CHECKING:
        requeue_or_fail(frame, counts_as_failure=True, reason=reason)
    db.session.commit()
    log.info("frame rejected: %s", reason, extra=_ids(checked))
    if checked.output_sha256:
        verification.drop_unreferenced_output(checked.output_sha256)
    job_lifecycle.finish_job_if_done(frame.job_id)


def _false_mismatch(first_id: int) -> None:
    """A third wallet's crops equal the upload the first checker said they differed from:
    the first checker's crops were false, and it pays for it as an uploader would. The caller commits."""
    first = db.session.get(SpotCheck, first_id)
    checker = db.session.get(Attempt, first.checker_attempt_id) if first else None
    if first is None or checker is None or checker.outcome == AttemptOutcome.REJECTED:
        return
    checker.outcome = AttemptOutcome.REJECTED
    checker.reason = f"SPOT_CHECK_FALSE_MISMATCH: a third node's crops equal the upload ({first.result})"[
        :2000
    ]
    for _ in range(defaults.REPUTATION_WEIGHT_SPOT_CHECK_MISMATCH):
        reputation.record(checker.node, reputation.Outcome.REJECTED)
    log.info("spot checker's crops were false", extra=_ids(checker))


def skip(spot_check_id: int, reason: str) -> None:
    """No check after all (nobody took it, or the checker failed): verify the frame as
    usual, or, for a confirming check, let the first check's mismatch decide."""
    from backend.services import verification

    spot_check = db.session.get(SpotCheck, spot_check_id)
    if spot_check is None:
        return
    waiting = {SpotCheckState.PENDING, SpotCheckState.ASSIGNED}
    if not move_state(
        SpotCheck, spot_check.id, waiting, SpotCheckState.SKIPPED, result=reason, ended_at=utc_now()
    ):
        return
    db.session.commit()
    log.info("spot check skipped: %s", reason, extra=_ids(spot_check.checked_attempt))
    first = db.session.get(SpotCheck, spot_check.confirms_spot_check_id or -1)
    if first is not None and first.result:
        _reject_upload(spot_check, first.result)  # unconfirmed, as when no third wallet is online
        return
    verification.verify_checked_frame(spot_check.checked_attempt)


def sweep(now: datetime) -> list[int]:
    """Skip the checks nobody took within the wait, and those whose checker's lease ended
    without every crop; returns their ids."""
    wait = timedelta(seconds=current_app.config["RONRENDER_SPOT_CHECK_WAIT_S"])
    unclaimed = select(SpotCheck.id).where(
        SpotCheck.state == SpotCheckState.PENDING, SpotCheck.created_at < now - wait
    )
    abandoned = (
        select(SpotCheck.id)
        .join(Attempt, Attempt.id == SpotCheck.checker_attempt_id)
        .where(
            SpotCheck.state == SpotCheckState.ASSIGNED,
            Attempt.outcome.in_([AttemptOutcome.EXPIRED, AttemptOutcome.CANCELLED, AttemptOutcome.FAILED]),
        )
    )
    skipped = []
    for spot_check_id in db.session.scalars(unclaimed).all():
        skip(spot_check_id, f"no node took the check within {int(wait.total_seconds())} s")
        skipped.append(spot_check_id)
    for spot_check_id in db.session.scalars(abandoned).all():
        skip(spot_check_id, "the checker's lease ended before every crop arrived")
        skipped.append(spot_check_id)
    return skipped


def _ids(attempt: Attempt) -> dict[str, object]:
    return {"job_id": attempt.frame.job_id, "frame": attempt.frame.number, "node_id": attempt.node_id}
