"""Frame state changes, guarded in the database so that a frame cannot be
assigned twice or finished twice, whatever the concurrency."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Insert, Select, bindparam, insert, select, update

from backend.extensions import db
from backend.models import Attempt, Frame
from backend.services import held_claims
from backend.services.guarded_update import move_state
from shared.states import FrameState, states_leading_to


def transition_frame(
    frame_id: int,
    to_state: FrameState,
    *,
    expect: Iterable[FrameState] | None = None,
    held_by: int | None = None,
    **values: Any,
) -> bool:
    """Move a frame to ``to_state`` if it is in an allowed state (and, with ``held_by``,
    still leased to that attempt); True if it moved.

    The check and the write are one conditional UPDATE, so of two racing
    callers exactly one sees True. The caller commits.
    """
    allowed_from = set(states_leading_to(to_state))
    if expect is not None:
        allowed_from &= set(expect)
    lease = {"current_attempt_id": held_by} if held_by is not None else None
    return move_state(Frame, frame_id, allowed_from, to_state, also_equal=lease, **values)


def requeue_or_fail(frame: Frame, *, counts_as_failure: bool, reason: str | None) -> FrameState:
    """Send a frame back to PENDING for another node, or to FAILED after too many failures."""
    failures = frame.failures + (1 if counts_as_failure else 0)
    limit = current_app.config["RONRENDER_MAX_FRAME_FAILURES"]
    target = FrameState.FAILED if failures >= limit else FrameState.PENDING
    values: dict[str, Any] = {"failures": failures}
    if reason is not None:
        values["last_rejection"] = reason
    if target == FrameState.PENDING:
        values["current_attempt_id"] = None
        values["priority"] = 1
    if transition_frame(frame.id, target, **values) and target == FrameState.PENDING:
        held_claims.work_appeared()
    return target


def requeue_failed_frame(job_id: str, number: int) -> Frame:
    """An admin gives a FAILED frame of a still-rendering job a fresh start (failures reset)."""
    from backend.errors import InvalidJobState, NotFound
    from backend.extensions import db
    from backend.models import Job
    from shared.states import JobState

    frame = db.session.scalar(select(Frame).where(Frame.job_id == job_id, Frame.number == number))
    if frame is None:
        raise NotFound(f"no frame {number} in job {job_id}")
    job = db.session.get(Job, job_id)
    if job is None or job.state != JobState.RENDERING:
        raise InvalidJobState(f"job {job_id} is not rendering: only its failed frames can be requeued")
    # The one way out of FAILED, outside the lifecycle's transitions: an admin's explicit decision.
    moved = move_state(
        Frame,
        frame.id,
        {FrameState.FAILED},
        FrameState.PENDING,
        failures=0,
        current_attempt_id=None,
        priority=1,
    )
    if not moved:
        raise InvalidJobState(f"frame {number} is {frame.state}, not FAILED")
    held_claims.work_appeared()
    db.session.commit()
    db.session.refresh(frame)
    return frame


@dataclass(frozen=True)
class Lease:
    attempt_id: int
    token: str


def open_lease(node_id: str, frame_id: int, now: datetime) -> Lease:
    """A new attempt of ``node_id`` on a frame, with a fresh lease token. The caller moves
    the frame (or the spot check) it leases, and commits."""
    lease = _new_lease(node_id, now)
    inserted = db.session.execute(_open_lease_statement(), {"new_frame_id": frame_id, **lease})
    return Lease(attempt_id=inserted.inserted_primary_key[0], token=lease["new_lease_token"])  # RETURNING


@dataclass(frozen=True)
class LeasedFrame:
    lease: Lease
    frame_id: int
    frame_number: int


def lease_first_locked(
    locked_candidate: Select[Any], parameters: dict[str, Any], node_id: str, starts: FrameState, now: datetime
) -> LeasedFrame | None:
    """PostgreSQL only: lease the PENDING frame that ``locked_candidate`` (a SELECT of one
    frame's id and number, FOR UPDATE SKIP LOCKED) finds, in one statement: the attempt is
    inserted and the frame moved to ``starts`` under it; None when it finds none. A claim
    thus costs one round trip where a lock, an insert and a guarded move cost three. The
    frame's row lock is the guard: no other transaction can move it between the three
    steps. The caller commits."""
    assert FrameState.PENDING in states_leading_to(starts)
    lease = _new_lease(node_id, now)
    statement = _lease_first_locked_statement(locked_candidate)
    row = db.session.execute(statement, {**parameters, **lease, "to_state": starts}).one_or_none()
    if row is None:
        return None
    return LeasedFrame(Lease(row.attempt_id, lease["new_lease_token"]), row.frame_id, row.frame_number)


def _new_lease(node_id: str, now: datetime) -> dict[str, Any]:
    """The bound values of a new attempt, other than its frame: a fresh token, and when the
    lease runs out unless the node's beats renew it."""
    lease_s = current_app.config["RONRENDER_OFFLINE_AFTER_S"]
    return {
        "new_node_id": node_id,
        "new_lease_token": secrets.token_hex(32),
        "new_started_at": now,
        "new_lease_expires_at": now + timedelta(seconds=lease_s),
    }


_LEASE_COLUMNS = ("frame_id", "node_id", "lease_token", "started_at", "lease_expires_at")


@functools.cache
def _open_lease_statement() -> Insert:
    """Built once per process, as every claim runs it; the other columns take their defaults
    (a bound value may not share its column's name)."""
    columns = Attempt.__table__.c
    return insert(Attempt.__table__).values(
        {columns[name]: bindparam(f"new_{name}", type_=columns[name].type) for name in _LEASE_COLUMNS}
    )


@functools.cache
def _lease_first_locked_statement(locked_candidate: Select[Any]) -> Select[Any]:
    """WITH chosen AS (the locked candidate), opened AS (INSERT INTO attempts … FROM chosen
    RETURNING …), moved AS (UPDATE frames … FROM opened RETURNING …) SELECT … FROM moved;
    built once per candidate statement."""
    frames, attempts = Frame.__table__, Attempt.__table__
    chosen = locked_candidate.cte("chosen")
    lease_values = [
        bindparam(f"new_{name}", type_=attempts.c[name].type) for name in _LEASE_COLUMNS if name != "frame_id"
    ]
    opened = (
        insert(attempts)
        .from_select(list(_LEASE_COLUMNS), select(chosen.c.id, *lease_values))
        .returning(attempts.c.id, attempts.c.frame_id)
        .cte("opened")
    )
    moved = (
        update(frames)
        .where(frames.c.id == opened.c.frame_id)
        .values(state=bindparam("to_state", type_=frames.c.state.type), current_attempt_id=opened.c.id)
        .returning(
            opened.c.id.label("attempt_id"),
            frames.c.id.label("frame_id"),
            frames.c.number.label("frame_number"),
        )
        .cte("moved")
    )
    return select(moved.c.attempt_id, moved.c.frame_id, moved.c.frame_number)
