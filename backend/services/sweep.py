"""The sweep: finds silent nodes, expired leases and hung renders, and hands their
frames straight back to the queue, ahead of fresh frames. Run periodically by
the sweeper process, never as a side effect of a request."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from backend.extensions import db
from backend.models import Attempt, Frame, Node, utc_now
from backend.services import job_lifecycle, reputation, spot_checks
from backend.services.frame_transitions import requeue_or_fail
from shared.states import LIVE_FRAME_STATES, AttemptOutcome, NodeState


@dataclass
class SweepReport:
    nodes_offline: list[str] = field(default_factory=list)
    frames_requeued: list[tuple[str, int]] = field(default_factory=list)
    spot_checks_skipped: list[int] = field(default_factory=list)


def sweep(now: datetime | None = None) -> SweepReport:
    """One pass: OFFLINE nodes drop their frames; expired or overlong leases end."""
    now = now or utc_now()
    report = SweepReport()
    offline_after = timedelta(seconds=current_app.config["RONRENDER_OFFLINE_AFTER_S"])
    time_limit = timedelta(seconds=current_app.config["RONRENDER_FRAME_TIME_LIMIT_S"])
    silent = db.session.scalars(
        select(Node.id).where(Node.state == NodeState.ONLINE, Node.last_heartbeat_at < now - offline_after)
    ).all()
    for node_id in silent:
        moved = db.session.execute(
            update(Node)
            .where(
                Node.id == node_id,
                Node.state == NodeState.ONLINE,
                Node.last_heartbeat_at < now - offline_after,
            )
            .values(state=NodeState.OFFLINE)
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if moved:
            report.nodes_offline.append(node_id)
            for attempt in _open_attempts(Attempt.node_id == node_id):
                _end(
                    attempt,
                    reputation.Outcome.DROPPED,
                    "the node went OFFLINE",
                    report,
                    counts_as_failure=False,
                )
    for attempt in _open_attempts(Attempt.lease_expires_at < now):
        _end(attempt, reputation.Outcome.TIMED_OUT, "the lease expired", report, counts_as_failure=False)
    for attempt in _open_attempts(Attempt.started_at < now - time_limit):
        reason = f"no result within the frame's time limit of {int(time_limit.total_seconds())} s"
        _end(attempt, reputation.Outcome.TIMED_OUT, reason, report, counts_as_failure=True)
    report.spot_checks_skipped = spot_checks.sweep(now)  # after the leases above ended
    return report


def _open_attempts(condition: object) -> list[Attempt]:
    return list(db.session.scalars(select(Attempt).where(Attempt.outcome == AttemptOutcome.OPEN, condition)))


def _end(
    attempt: Attempt,
    outcome: reputation.Outcome,
    reason: str,
    report: SweepReport,
    *,
    counts_as_failure: bool,
) -> None:
    """Take the frame back from this attempt (if it still holds it) and count the miss against its node."""
    ended = db.session.execute(
        update(Attempt)
        .where(Attempt.id == attempt.id, Attempt.outcome == AttemptOutcome.OPEN)
        .values(outcome=AttemptOutcome.EXPIRED, reason=reason, ended_at=utc_now())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not ended:
        db.session.rollback()
        return
    frame: Frame = attempt.frame
    db.session.refresh(frame)
    if frame.current_attempt_id == attempt.id and frame.state in LIVE_FRAME_STATES:
        requeue_or_fail(frame, counts_as_failure=counts_as_failure, reason=f"{outcome.name}: {reason}")
        report.frames_requeued.append((frame.job_id, frame.number))
    reputation.record(attempt.node, outcome)
    db.session.commit()
    job_lifecycle.finish_job_if_done(frame.job_id)
