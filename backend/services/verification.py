"""Checking each uploaded render output; a verified frame is paid, a rejected one
goes back to the queue for another node with its reason recorded.

The job's expectations come from the job (format, size, channels) and from its
frames verified so far: their fingerprints (no frame paid twice for one picture)
and their median noise and detail (no frame rendered with far fewer samples or
upscaled from a small render). Two nodes that independently deliver what one of
those comparisons rejected are believed: the scene really is like that there.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from cachetools import LRUCache
from flask import current_app
from sqlalchemy import Row, select

from backend import observability, queues
from backend.extensions import app_scoped, db
from backend.models import Attempt, Frame, Job, SpotCheck
from backend.services import job_lifecycle, payments, reputation, spot_checks
from backend.services.frame_transitions import requeue_or_fail, transition_frame
from backend.services.scene_intake import storage
from shared.image_checks import (
    NO_KNOWN_FRAMES,
    ExpectedImage,
    KnownFrames,
    RejectionReason,
    check_render_output,
)
from shared.states import AttemptOutcome, FrameState, SpotCheckState
from shared.thumbnails import make_thumbnail, thumbnail_png

# The statistical checks start once this many frames of the job are verified.
MIN_REFERENCE_FRAMES = 3
# A process keeps the verified frames of this many jobs (a 100,000-frame job's take about
# 60 MB), and reads unseen verified frames by id when there are at most this many.
VERIFIED_FRAMES_CACHE_SIZE = 8
VERIFIED_FRAMES_KEY = "ronrender_verified_frames"
VERIFIED_ROWS_BY_ID_MAX = 1000
# Rejections that compare with the job's other frames rather than with the task.
COMPARATIVE_REASONS = (RejectionReason.DUPLICATE_FRAME, RejectionReason.UPSCALED, RejectionReason.LOW_SAMPLES)

log = logging.getLogger(__name__)


@observability.VERIFICATION_SECONDS.time()
def verify_attempt(attempt_id: int) -> None:
    attempt = db.session.get(Attempt, attempt_id)
    if attempt is None or attempt.outcome != AttemptOutcome.UPLOADED:
        return  # already judged: verification is idempotent
    frame = attempt.frame
    if frame.state == FrameState.CHECKING:
        # its spot check decides; a lost comparison task is queued again from here
        spot_check = db.session.scalar(
            select(SpotCheck.id).where(
                SpotCheck.frame_id == frame.id, SpotCheck.state == SpotCheckState.ASSIGNED
            )
        )
        if spot_check is not None:
            spot_checks.compare(spot_check)
        return
    if attempt.output_sha256 is None:
        return  # a spot checker's crops, compared by its spot check
    job = frame.job
    output_path = str(storage().path_for(attempt.output_sha256))
    expected = expected_image(job, frame, attempt)
    verdict = check_render_output(output_path, expected)
    observability.record_verdict(verdict.accepted, verdict.reason)
    # The preview is made before the first write: on SQLite a write transaction holds
    # every other writer (the nodes' claims and heartbeats) back until it commits.
    preview = None
    if verdict.accepted:  # from the pixels the checks decoded: decoding again cost more than checking
        preview = _preview(output_path, functools.partial(thumbnail_png, verdict.pixels or {}))
        verdict = dataclasses.replace(verdict, pixels=None)  # let a 4K frame's channels go (66-130 MB)
    attempt.output_fingerprint = verdict.fingerprint
    if verdict.accepted:
        if frame.state == FrameState.UPLOADED and spot_checks.open_spot_check(
            attempt, output_fingerprint=verdict.fingerprint, output_stats=verdict.stats or None
        ):
            return  # verified (and paid) once another node's crops equal it
        _accept(
            attempt,
            expect=[FrameState.UPLOADED],
            output_fingerprint=verdict.fingerprint,
            output_stats=verdict.stats or None,
            thumbnail_sha256=_store_thumbnail(preview),
        )
    else:
        attempt.outcome = AttemptOutcome.REJECTED
        attempt.reason = f"{verdict.reason}: {verdict.detail}"
        reputation.record(attempt.node, reputation.Outcome.REJECTED)
        if frame.state == FrameState.UPLOADED:
            requeue_or_fail(frame, counts_as_failure=True, reason=attempt.reason)
        db.session.commit()
        log.info("frame rejected: %s", attempt.reason, extra=_ids(attempt))
        drop_unreferenced_output(attempt.output_sha256)
    job_lifecycle.finish_job_if_done(job.id)


def verify_checked_frame(attempt: Attempt) -> None:
    """A frame that waited for its spot check (passed, or skipped) is verified and paid."""
    frame = attempt.frame
    if attempt.outcome != AttemptOutcome.UPLOADED or frame.state != FrameState.CHECKING:
        return
    assert attempt.output_sha256 is not None
    output_path = str(storage().path_for(attempt.output_sha256))
    expected = task_image(frame.job)  # its checks passed: the preview needs no other frames
    preview = _preview(output_path, lambda: make_thumbnail(output_path, expected))
    _accept(attempt, expect=[FrameState.CHECKING], thumbnail_sha256=_store_thumbnail(preview))
    job_lifecycle.finish_job_if_done(frame.job_id)


def _accept(attempt: Attempt, *, expect: list[FrameState], **frame_values: object) -> None:
    """The frame is verified with this attempt's output and its release recorded, in one
    transaction: a worker stopped between the two would have left a verified frame unpaid,
    and its price refunded to the artist when the job closed."""
    frame, node = attempt.frame, attempt.node
    job, frame_number, ids = frame.job, frame.number, _ids(attempt)  # read before the writes
    verified = transition_frame(
        frame.id, FrameState.VERIFIED, expect=expect, output_sha256=attempt.output_sha256, **frame_values
    )
    if verified:
        attempt.outcome = AttemptOutcome.VERIFIED
        reputation.record(node, reputation.Outcome.VERIFIED)
        payments.add_release(job, frame_number, node.payout_address)
    elif db.session.scalar(select(Frame.current_attempt_id).where(Frame.id == frame.id)) != attempt.id:
        attempt.outcome = AttemptOutcome.CANCELLED  # the frame went back to the queue meanwhile
    # Otherwise the frame is still this upload's: a second verification of it (a task queued
    # again after Redis lost its queue) got there first and opened its spot check or accepted
    # it. That one decides; cancelling here would leave a passed check nothing to verify.
    db.session.commit()
    if verified:
        log.info("frame verified", extra=ids)
        queues.enqueue_releases(str(ids["job_id"]))


def _ids(attempt: Attempt) -> dict[str, object]:
    """The ids a log line about an attempt carries (JSON logs make them fields)."""
    return {"job_id": attempt.frame.job_id, "frame": attempt.frame.number, "node_id": attempt.node_id}


def expected_image(job: Job, frame: Frame, attempt: Attempt) -> ExpectedImage:
    """What this frame's output must be, from the job and its frames verified so far."""
    analysis = job.scene.analysis or {}
    probe = analysis.get("probe") or {}
    verified = _verified_frames(job.id, frame.id)
    enough = len(verified.noise) >= MIN_REFERENCE_FRAMES
    confirmed = _confirmed_by_another_node(frame, attempt)
    return dataclasses.replace(
        task_image(job),
        # the reference is the middle frame; a scene blank there is trusted to be blank
        reference_is_blank=bool(probe.get("blank")),
        known_frames=verified.known,
        # an unknown or static scene may repeat frames honestly
        allow_duplicates=not analysis.get("animated", False) or confirmed,
        reference_noise=float(np.median(verified.noise)) if enough and not confirmed else None,
        reference_detail_ratio=float(np.median(verified.detail_ratio)) if enough and not confirmed else None,
    )


def task_image(job: Job) -> ExpectedImage:
    """What the job asks of every frame's output: its format, size and byte limit."""
    return ExpectedImage(
        output_format=job.output_format,
        width=job.output_width,
        height=job.output_height,
        max_bytes=current_app.config["RONRENDER_MAX_RENDER_OUTPUT_BYTES"],
    )


@dataclasses.dataclass(frozen=True)
class VerifiedFrames:
    """What a job's verified frames tell the check of its next one: their fingerprints,
    and the noise and detail ratio of those large enough to measure."""

    frame_ids: frozenset[int] = frozenset()
    known: KnownFrames = NO_KNOWN_FRAMES
    noise: tuple[float, ...] = ()
    detail_ratio: tuple[float, ...] = ()

    def extended(self, rows: Iterable[Row[Any]]) -> VerifiedFrames:
        """These and more frames: rows of (id, output_fingerprint, output_stats)."""
        rows = list(rows)
        measured = [row.output_stats for row in rows if row.output_stats]
        return VerifiedFrames(
            self.frame_ids | {row.id for row in rows},
            self.known.extended(row.output_fingerprint for row in rows if row.output_fingerprint),
            self.noise + tuple(stats["noise"] for stats in measured),
            self.detail_ratio + tuple(stats["detail_ratio"] for stats in measured),
        )


_verified_frames_lock = threading.Lock()


def _verified_frames(job_id: str, frame_id: int) -> VerifiedFrames:
    """The job's verified frames other than ``frame_id``. VERIFIED is final, so a process
    keeps what it read of a job's and reads only the frames verified since: each frame
    then reads the ids of the job's verified frames, not every fingerprint again (an
    n-frame job read and parsed n²/2 fingerprints in all)."""
    verified = frozenset(
        db.session.scalars(select(Frame.id).where(Frame.job_id == job_id, Frame.state == FrameState.VERIFIED))
    )
    if frame_id in verified:  # the frame's verification repeated after it was verified: rare, not kept
        return VerifiedFrames().extended(_verified_rows(job_id, verified - {frame_id}))
    cache = app_scoped(VERIFIED_FRAMES_KEY, lambda: LRUCache(VERIFIED_FRAMES_CACHE_SIZE))
    with _verified_frames_lock:
        held = cache.get(job_id)
    if held is None or not held.frame_ids <= verified:  # not a frame this process has seen vanishes
        held = VerifiedFrames()
    unseen = verified - held.frame_ids
    if unseen:
        held = held.extended(_verified_rows(job_id, unseen))
        with _verified_frames_lock:
            cache[job_id] = held
    return held


def _verified_rows(job_id: str, frame_ids: frozenset[int]) -> list[Row[Any]]:
    """(id, output_fingerprint, output_stats) of these verified frames of the job."""
    rows = select(Frame.id, Frame.output_fingerprint, Frame.output_stats).where(
        Frame.job_id == job_id, Frame.state == FrameState.VERIFIED
    )
    if len(frame_ids) <= VERIFIED_ROWS_BY_ID_MAX:
        return list(db.session.execute(rows.where(Frame.id.in_(sorted(frame_ids)))))
    return [row for row in db.session.execute(rows) if row.id in frame_ids]


def _confirmed_by_another_node(frame: Frame, attempt: Attempt) -> bool:
    """Whether another node's output for this frame was already rejected by a
    comparison with the job's other frames: a second independent delivery that the
    comparison would reject again is the scene, not a cheat."""
    earlier = db.session.scalars(
        select(Attempt.reason).where(
            Attempt.frame_id == frame.id,
            Attempt.id != attempt.id,
            Attempt.node_id != attempt.node_id,
            Attempt.outcome == AttemptOutcome.REJECTED,
        )
    ).all()
    return any((reason or "").startswith(tuple(str(r) for r in COMPARATIVE_REASONS)) for reason in earlier)


def _preview(path: str, make: Callable[[], bytes]) -> bytes | None:
    """The frame's preview, or None if it cannot be made."""
    try:
        return make()
    except Exception:  # a preview never blocks payment for a verified frame
        current_app.logger.exception("thumbnail of %s failed", path)
        return None


def _store_thumbnail(png: bytes | None) -> str | None:
    """Keep the preview once, in content-addressed storage."""
    if png is None:
        return None
    return storage().save_stream(io.BytesIO(png), max_bytes=len(png)).sha256


def warm_up() -> None:
    """Check and preview a small PNG and EXR once, so that the first frame a new worker
    verifies does not pay for loading Pillow's plugins, OpenEXR and the display tables
    (about 40 ms of CPU beside a rendering node)."""
    try:
        _check_and_preview_samples()
    except Exception:  # only a head start: the first frame loads what it needs itself
        log.warning("the image decoders could not be loaded ahead", exc_info=True)


def _check_and_preview_samples() -> None:
    import OpenEXR
    from PIL import Image

    noise = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="ronrender-warm-") as work:
        png, exr = os.path.join(work, "warm.png"), os.path.join(work, "warm.exr")
        Image.fromarray((noise * 255).astype(np.uint8)).save(png)
        channels = {
            f"ViewLayer.Combined.{name}": noise[..., i].astype(np.float16) for i, name in enumerate("RGB")
        }
        OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, channels).write(exr)
        for path, output_format in ((png, "PNG"), (exr, "OPEN_EXR")):
            verdict = check_render_output(path, ExpectedImage(output_format, 48, 32))
            if verdict.accepted:
                thumbnail_png(verdict.pixels or {})


def drop_unreferenced_output(sha256: str) -> None:
    """Delete a rejected output unless a verified frame or a waiting upload holds the same bytes."""
    verified = select(Frame.id).where(Frame.output_sha256 == sha256)
    awaiting = select(Attempt.id).where(
        Attempt.output_sha256 == sha256, Attempt.outcome == AttemptOutcome.UPLOADED
    )
    if db.session.scalar(verified.union_all(awaiting).limit(1)) is None:
        storage().delete(sha256)
