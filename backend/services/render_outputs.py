"""What a node sends back under its lease: a render output, a failure, or the
frame handed back. Only a live lease counts."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from flask import current_app
from sqlalchemy import Update, bindparam, exists, update
from sqlalchemy.exc import SQLAlchemyError

from backend import queues
from backend.errors import LeaseNotHeld, NotFound
from backend.extensions import db
from backend.models import Attempt, Frame, utc_now
from backend.services import job_lifecycle, reputation, spot_checks
from backend.services.frame_transitions import requeue_or_fail, transition_frame
from backend.services.guarded_update import expire_loaded, guarded_update, move_parameters
from backend.services.scene_intake import storage
from shared.states import LIVE_FRAME_STATES, AttemptOutcome, FrameState, states_leading_to

log = logging.getLogger(__name__)


def live_attempt(attempt_id: int, lease_token: str) -> Attempt:
    """The attempt, if its lease is still held by the bearer of ``lease_token``."""
    attempt = db.session.get(Attempt, attempt_id)
    if attempt is None:
        raise NotFound(f"no attempt {attempt_id}")
    if not secrets.compare_digest(attempt.lease_token, lease_token or ""):
        raise LeaseNotHeld("the lease token does not match this attempt")
    frame = attempt.frame
    if (
        attempt.outcome != AttemptOutcome.OPEN
        or frame.current_attempt_id != attempt.id
        or frame.state not in LIVE_FRAME_STATES
    ):
        raise LeaseNotHeld(f"the lease of attempt {attempt_id} is no longer held")
    if attempt.lease_expires_at < utc_now():
        raise LeaseNotHeld(f"the lease of attempt {attempt_id} has expired")
    return attempt


class NextLease(Protocol):
    """A lease handed out in an upload's transaction (the matchmaker's claim)."""

    attempt_id: int


@dataclass(frozen=True)
class ReceivedOutput:
    """An upload's answer, read before the commit expires the rows."""

    id: int
    outcome: str
    output_sha256: str
    job_id: str
    repeated: bool = False  # the same bytes again, under the same lease: its answer was lost
    next_attempt_id: int | None = None  # with ``repeated``: the lease its first answer handed out
    next_lease: NextLease | None = None  # leased with this upload (``lease_next``)


def receive_output(
    attempt_id: int,
    lease_token: str,
    stream: BinaryIO,
    *,
    lease_next: Callable[[str], NextLease | None] | None = None,
) -> ReceivedOutput:
    """Store a render output under a live lease and queue its verification. The same
    upload repeated (the node never got the first answer) is answered again, not refused.

    ``lease_next(job_id)`` leases the node's next frame in the same transaction: one
    commit for both, and the upload records the lease it went out with. If leasing
    fails in the database, the upload is recorded alone.
    """
    try:
        attempt = live_attempt(attempt_id, lease_token)  # refused before the body is read
    except LeaseNotHeld:
        repeated = _repeated_upload(attempt_id, lease_token, stream)
        if repeated is None:
            raise
        return repeated
    frame_id, job_id = attempt.frame_id, attempt.frame.job_id  # read before the writes expire them
    stored = storage().save_stream(stream, current_app.config["RONRENDER_MAX_RENDER_OUTPUT_BYTES"])
    try:
        try:
            next_lease = _record_upload(attempt_id, frame_id, job_id, stored.sha256, lease_next)
        except SQLAlchemyError:
            if lease_next is None:
                raise
            log.warning("no next frame with the upload of attempt %s", attempt_id, exc_info=True)
            db.session.rollback()
            next_lease = _record_upload(attempt_id, frame_id, job_id, stored.sha256, None)
    except Exception:
        db.session.rollback()
        if stored.newly_stored:
            storage().delete(stored.sha256)
        raise
    received = ReceivedOutput(
        attempt_id, AttemptOutcome.UPLOADED, stored.sha256, job_id, next_lease=next_lease
    )
    db.session.commit()
    queues.enqueue_verification(received.id)
    return received


def _record_upload(
    attempt_id: int,
    frame_id: int,
    job_id: str,
    output_sha256: str,
    lease_next: Callable[[str], NextLease | None] | None,
) -> NextLease | None:
    """The next lease (if asked for), then the upload's writes, uncommitted.

    Both of the upload's writes are guarded, the lease's expiry included: a sweep or
    another node's claim while the bytes arrived (the lease expired, the frame was
    leased again) refuses the upload, with no second read of the rows, and the caller
    rolls the next lease back with it. They come after the next lease, which the
    attempt records.
    """
    next_lease = lease_next(job_id) if lease_next is not None else None
    next_attempt_id = next_lease.attempt_id if next_lease is not None else None
    if not _mark_uploaded(frame_id, attempt_id, output_sha256, next_attempt_id):
        raise LeaseNotHeld(f"the lease of attempt {attempt_id} is no longer held")
    return next_lease


# The live states an upload moves its frame out of, on either database's way.
_UPLOADED_FROM = frozenset(states_leading_to(FrameState.UPLOADED) & LIVE_FRAME_STATES)


def _mark_uploaded(frame_id: int, attempt_id: int, output_sha256: str, next_attempt_id: int | None) -> bool:
    """The frame ASSIGNED or RENDERING under this attempt -> UPLOADED, and the attempt
    OPEN -> UPLOADED with its output (and the lease handed out with it); False if either
    guard fails. The frame is written before the attempt, the order a heartbeat writes
    them in (no deadlock): on PostgreSQL in one statement, the frame's move a data-modifying
    ``WITH`` that the attempt's UPDATE requires; on SQLite in two."""
    finish = {"attempt_id": attempt_id, "now": utc_now(), "sha256": output_sha256, "next": next_attempt_id}
    if db.engine.dialect.name == "postgresql":
        frame_move = move_parameters(frame_id, FrameState.UPLOADED, {"current_attempt_id": attempt_id}, {})
        if db.session.execute(_mark_uploaded_statement(), {**frame_move, **finish}).rowcount != 1:
            return False
        expire_loaded(Frame, frame_id)  # as transition_frame does on SQLite's way
        return True
    if not transition_frame(frame_id, FrameState.UPLOADED, expect=_UPLOADED_FROM, held_by=attempt_id):
        return False
    return db.session.execute(_finish_open_attempt_statement(), finish).rowcount == 1


@functools.cache
def _mark_uploaded_statement() -> Update:
    """WITH frame_moved AS (UPDATE frames … RETURNING id) UPDATE attempts … WHERE … AND
    EXISTS (SELECT FROM frame_moved), built once per process. A bound value named after a
    column of attempts would be read as one to set: the frame's are ``row_id`` and the like."""
    frames = Frame.__table__
    frame_moved = (
        guarded_update(frames, _UPLOADED_FROM, ("current_attempt_id",), ())
        .returning(frames.c.id)
        .cte("frame_moved")
    )
    return _finish_open_attempt_statement().where(exists(frame_moved.select()))


def _repeated_upload(attempt_id: int, lease_token: str, stream: BinaryIO) -> ReceivedOutput | None:
    """The first upload's answer, if this is the same lease sending the same bytes again."""
    attempt = db.session.get(Attempt, attempt_id)
    if (
        attempt is None
        or attempt.output_sha256 is None
        or attempt.outcome == AttemptOutcome.OPEN
        or not secrets.compare_digest(attempt.lease_token, lease_token or "")
    ):
        return None
    stored = storage().save_stream(stream, current_app.config["RONRENDER_MAX_RENDER_OUTPUT_BYTES"])
    if stored.newly_stored:  # not kept: these bytes are stored already, or were dropped as rejected
        storage().delete(stored.sha256)
    if stored.sha256 != attempt.output_sha256:
        return None
    return ReceivedOutput(
        attempt.id,
        attempt.outcome,
        stored.sha256,
        attempt.frame.job_id,
        repeated=True,
        next_attempt_id=attempt.next_attempt_id,
    )


@functools.cache
def _finish_open_attempt_statement() -> Update:
    """OPEN -> UPLOADED with its output (and the lease handed out with it), in one guarded
    UPDATE that refuses an expired lease; built once per process, as every upload runs it."""
    attempts = Attempt.__table__.c
    return (
        update(Attempt.__table__)
        .where(
            attempts.id == bindparam("attempt_id"),
            attempts.outcome == AttemptOutcome.OPEN,
            attempts.lease_expires_at >= bindparam("now"),
        )
        .values(
            {
                attempts.outcome: AttemptOutcome.UPLOADED,
                attempts.output_sha256: bindparam("sha256"),
                attempts.progress: 1.0,
                attempts.ended_at: bindparam("now"),
                attempts.next_attempt_id: bindparam("next", type_=attempts.next_attempt_id.type),
            }
        )
    )


def report_failure(attempt_id: int, lease_token: str, reason: str, log_tail: str) -> Attempt:
    """The node could not render the frame: record why and let another node try."""
    checker = _live_checker(attempt_id, lease_token)
    if checker is not None:
        return spot_checks.checker_failed(checker, reason, log_tail)
    attempt = live_attempt(attempt_id, lease_token)
    attempt.outcome = AttemptOutcome.FAILED
    attempt.reason = reason[:2000]
    attempt.log_tail = log_tail[-8000:]
    attempt.ended_at = utc_now()
    reputation.record(attempt.node, reputation.Outcome.FAILED)
    requeue_or_fail(attempt.frame, counts_as_failure=True, reason=f"RENDER_FAILED: {reason}")
    db.session.commit()
    job_lifecycle.finish_job_if_done(attempt.frame.job_id)
    return attempt


def release_attempt(attempt_id: int, lease_token: str) -> Attempt:
    """The node hands its frame back (it is stopping); no failure is counted."""
    checker = _live_checker(attempt_id, lease_token)
    if checker is not None:
        return spot_checks.checker_released(checker)
    attempt = live_attempt(attempt_id, lease_token)
    attempt.outcome = AttemptOutcome.RELEASED
    attempt.ended_at = utc_now()
    requeue_or_fail(attempt.frame, counts_as_failure=False, reason=None)
    db.session.commit()
    return attempt


def _live_checker(attempt_id: int, lease_token: str) -> Attempt | None:
    """The attempt, if it is a spot checker's under a live lease (its frame is another's)."""
    attempt = db.session.get(Attempt, attempt_id)
    if attempt is None or spot_checks.checked_by(attempt) is None:
        return None
    return spot_checks.live_checker_attempt(attempt_id, lease_token)[0]
