"""Checking each uploaded render output; a verified frame is paid, a rejected one
goes back to the queue for another node with its reason recorded."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from backend.extensions import db
from backend.models import Attempt, Frame
from backend.services import job_lifecycle, payments, reputation
from backend.services.frame_transitions import requeue_or_fail, transition_frame
from backend.services.scene_intake import storage
from shared.image_checks import ExpectedImage, check_render_output
from shared.states import AttemptOutcome, FrameState


def verify_attempt(attempt_id: int) -> None:
    attempt = db.session.get(Attempt, attempt_id)
    if attempt is None or attempt.outcome != AttemptOutcome.UPLOADED:
        return  # already judged: verification is idempotent
    frame = attempt.frame
    job = frame.job
    expected = ExpectedImage(
        output_format=job.output_format,
        width=job.output_width,
        height=job.output_height,
        max_bytes=current_app.config["RONRENDER_MAX_RENDER_OUTPUT_BYTES"],
    )
    assert attempt.output_sha256 is not None
    verdict = check_render_output(str(storage().path_for(attempt.output_sha256)), expected)
    if verdict.accepted:
        verified = transition_frame(
            frame.id,
            FrameState.VERIFIED,
            expect=[FrameState.UPLOADED],
            output_sha256=attempt.output_sha256,
        )
        attempt.outcome = AttemptOutcome.VERIFIED if verified else AttemptOutcome.CANCELLED
        if verified:
            reputation.record(attempt.node, reputation.Outcome.VERIFIED)
        db.session.commit()
        if verified:
            payments.record_release(frame.id)
    else:
        attempt.outcome = AttemptOutcome.REJECTED
        attempt.reason = f"{verdict.reason}: {verdict.detail}"
        reputation.record(attempt.node, reputation.Outcome.REJECTED)
        if frame.state == FrameState.UPLOADED:
            requeue_or_fail(frame, counts_as_failure=True, reason=attempt.reason)
        db.session.commit()
        _drop_unreferenced_output(attempt.output_sha256)
    job_lifecycle.finish_job_if_done(job.id)


def _drop_unreferenced_output(sha256: str) -> None:
    """Delete a rejected output unless a verified frame or a waiting upload holds the same bytes."""
    verified = select(Frame.id).where(Frame.output_sha256 == sha256)
    awaiting = select(Attempt.id).where(
        Attempt.output_sha256 == sha256, Attempt.outcome == AttemptOutcome.UPLOADED
    )
    if db.session.scalar(verified.union_all(awaiting).limit(1)) is None:
        storage().delete(sha256)
