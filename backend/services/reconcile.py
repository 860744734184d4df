"""Re-creating queue entries from the database, the state of record, after Redis
lost them (it keeps nothing on disk here). Every task is idempotent, so a
duplicate entry costs a little work and pays nothing twice."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from backend import queues
from backend.extensions import db
from backend.models import Attempt, Job, Payment, SceneFile, SpotCheck, utc_now
from shared.states import AttemptOutcome, JobState, PaymentKind, PaymentState, SceneState, SpotCheckState

MARKER_KEY = "reconciled"
# Work older than this without moving on is queued again even if Redis kept its entries.
STALE_AFTER_S = 20


def reconcile(force: bool = False) -> int:
    """Queue again what the database says is waiting; returns how many entries were made.

    Runs fully when Redis came back empty (its marker key is gone) or when
    ``force`` is set, and otherwise only for work that has been waiting long.
    """
    marker = f"{current_app.config['RONRENDER_QUEUE_PREFIX']}:{MARKER_KEY}"
    redis = queues.redis_connection()
    emptied = force or not redis.exists(marker)
    cutoff = utc_now() if emptied else utc_now() - timedelta(seconds=STALE_AFTER_S)
    count = 0
    for sha256 in db.session.scalars(
        select(SceneFile.sha256).where(
            SceneFile.state == SceneState.ANALYZING, SceneFile.created_at <= cutoff
        )
    ):
        queues.enqueue_scene_analysis(sha256)
        count += 1
    # an upload waiting for a node to take its spot check has nothing to verify yet
    waiting_for_checker = select(SpotCheck.frame_id).where(SpotCheck.state == SpotCheckState.PENDING)
    for attempt_id in db.session.scalars(
        select(Attempt.id).where(
            Attempt.outcome == AttemptOutcome.UPLOADED,
            Attempt.ended_at <= cutoff,
            Attempt.frame_id.not_in(waiting_for_checker),
        )
    ):
        queues.enqueue_verification(attempt_id)
        count += 1
    for job_id in db.session.scalars(select(Job.id).where(Job.state == JobState.LOCKING)):
        if emptied or _older(job_id, cutoff):
            queues.enqueue_escrow_lock(job_id)
            count += 1
    owed = select(Payment.job_id).where(
        Payment.kind == PaymentKind.RELEASE,
        Payment.state != PaymentState.CONFIRMED,
        Payment.created_at <= cutoff,
    )
    for job_id in db.session.scalars(owed.distinct()):
        queues.enqueue_releases(job_id)
        count += 1
    refunded = select(Payment.job_id).where(
        Payment.kind == PaymentKind.REFUND, Payment.state == PaymentState.CONFIRMED
    )
    unsettled = select(Job.id).where(
        Job.state.in_([JobState.COMPLETED, JobState.CANCELLED]),
        Job.finished_at <= cutoff,
        Job.id.not_in(refunded),
        Job.id.in_(select(Payment.job_id).where(Payment.kind == PaymentKind.LOCK)),
    )
    for job_id in db.session.scalars(unsettled):
        queues.enqueue_job_settlement(job_id)
        count += 1
    redis.set(marker, utc_now().isoformat())
    return count


def _older(job_id: str, cutoff: datetime) -> bool:
    job = db.session.get(Job, job_id)
    return job is not None and job.created_at <= cutoff
