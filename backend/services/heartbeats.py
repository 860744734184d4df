"""A node's periodic "I am alive": renews its leases and records render progress."""

from __future__ import annotations

import functools
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, Update, bindparam, select, update
from sqlalchemy.orm.attributes import set_committed_value

from backend.extensions import db
from backend.models import Attempt, Frame, Node, utc_now
from backend.services import spot_checks
from backend.services.frame_transitions import transition_frame
from shared.states import AttemptOutcome, FrameState, NodeState


def note_heard(node: Node, now: datetime) -> None:
    """The node was heard from (a beat, a claim or an upload): it is ONLINE. Written at
    once, so that every transaction writes the node before its frames and attempts (no
    deadlock), and only when the time recorded is older than a tenth of the offline
    window: liveness needs no finer grain, and most of a busy node's requests then write
    no node row."""
    fresh_for = timedelta(seconds=current_app.config["RONRENDER_OFFLINE_AFTER_S"] / 10)
    heard = node.last_heartbeat_at
    if node.state == NodeState.ONLINE and heard is not None and now - heard < fresh_for:
        return
    nodes = Node.__table__
    db.session.execute(
        update(nodes).where(nodes.c.id == node.id).values(last_heartbeat_at=now, state=NodeState.ONLINE)
    )
    set_committed_value(node, "last_heartbeat_at", now)
    set_committed_value(node, "state", NodeState.ONLINE)


def record_heartbeat(node: Node, slots: list[dict[str, Any]]) -> list[int]:
    """Renew the node's live leases; returns the attempt ids it must abandon."""
    now = utc_now()
    note_heard(node, now)
    lease_s = current_app.config["RONRENDER_OFFLINE_AFTER_S"]
    abandon = []
    held_by_id: dict[int, Any] = {}
    if slots:  # every slot's lease and its frame in one read
        ids = [slot["attempt_id"] for slot in slots]
        held_by_id = {row.id: row for row in db.session.execute(_slot_leases_statement(), {"ids": ids})}
    for slot in slots:
        held = held_by_id.get(slot["attempt_id"])
        if (
            held is None
            or held.node_id != node.id
            or not secrets.compare_digest(held.lease_token, slot["lease_token"])
            or held.outcome != AttemptOutcome.OPEN
            or (held.current_attempt_id != held.id and not _checks_live(held.id))
        ):
            abandon.append(slot["attempt_id"])
            continue
        # The frame before its attempt, the order an upload writes them in: two
        # transactions never wait on each other's rows (no deadlock).
        if held.frame_state == FrameState.ASSIGNED and held.current_attempt_id == held.id:
            transition_frame(held.frame_id, FrameState.RENDERING, expect=[FrameState.ASSIGNED])
        # Guarded: an upload that committed meanwhile keeps its final progress.
        renewal = {
            "attempt_id": held.id,
            "reported_progress": max(0.0, min(1.0, float(slot["progress"]))),
            "reported_detail": str(slot.get("detail", ""))[:128],
            "expires_at": now + timedelta(seconds=lease_s),
        }
        db.session.execute(_renew_lease_statement(), renewal)
    db.session.commit()
    return abandon


def _checks_live(attempt_id: int) -> bool:
    """A lease that is not its frame's may be a spot check's, still in the checker's hands."""
    attempt = db.session.get(Attempt, attempt_id)
    return attempt is not None and spot_checks.holds_live_check(attempt)


@functools.cache
def _slot_leases_statement() -> Select[Any]:
    """Built once per process, on the tables: every beat of a rendering node reads it."""
    attempts, frames = Attempt.__table__.c, Frame.__table__.c
    return (
        select(
            attempts.id,
            attempts.node_id,
            attempts.lease_token,
            attempts.outcome,
            attempts.frame_id,
            frames.state.label("frame_state"),
            frames.current_attempt_id,
        )
        .join_from(Attempt.__table__, Frame.__table__, frames.id == attempts.frame_id)
        .where(attempts.id.in_(bindparam("ids", expanding=True)))
    )


@functools.cache
def _renew_lease_statement() -> Update:
    """Built once per process, as every beat of a rendering node runs it."""
    attempts = Attempt.__table__.c
    return (
        update(Attempt.__table__)
        .where(attempts.id == bindparam("attempt_id"), attempts.outcome == AttemptOutcome.OPEN)
        .values(
            {
                attempts.progress: bindparam("reported_progress", type_=attempts.progress.type),
                attempts.progress_detail: bindparam("reported_detail", type_=attempts.progress_detail.type),
                attempts.lease_expires_at: bindparam("expires_at", type_=attempts.lease_expires_at.type),
            }
        )
    )


def current_work(node: Any) -> list[dict[str, Any]]:
    """What the node holds now: each open lease's job, frame and reported progress."""
    rows = db.session.execute(
        select(Attempt.id, Attempt.progress, Attempt.progress_detail, Frame.job_id, Frame.number)
        .join(Frame, Frame.id == Attempt.frame_id)
        .where(Attempt.node_id == node.id, Attempt.outcome == AttemptOutcome.OPEN)
        .order_by(Attempt.id)
    ).all()
    return [
        {
            "attempt_id": r.id,
            "job_id": r.job_id,
            "frame": r.number,
            "progress": r.progress,
            "detail": r.progress_detail,
        }
        for r in rows
    ]
