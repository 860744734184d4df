"""Money of a job in integer wei: the lock, one release per verified frame, and the
final fee and refund. Each movement is recorded (unique per job, frame and kind)
before the gateway is called, so nothing is paid twice."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.errors import EscrowError
from backend.extensions import db
from backend.models import Attempt, Frame, Job, Payment
from backend.services.escrow_gateway import escrow_gateway
from backend.services.estimate import fee_for
from backend.services.job_lifecycle import transition_job
from backend.services.job_split import get_job
from shared.states import JobState, PaymentKind

JOB_WIDE = -1


def _record(
    job_id: str, kind: PaymentKind, amount_wei: int, recipient: str | None, frame_number: int = JOB_WIDE
) -> Payment | None:
    """Insert the movement; None if it was already recorded."""
    payment = Payment(
        job_id=job_id, frame_number=frame_number, kind=kind, amount_wei=amount_wei, recipient=recipient
    )
    db.session.add(payment)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None
    return payment


def lock_job(job_id: str) -> None:
    """Lock the job's estimate, then open its frames to the matchmaker."""
    job = get_job(job_id)
    if job.state != JobState.LOCKING:
        return
    payment = _record(job.id, PaymentKind.LOCK, job.estimate_wei, recipient=None)
    if payment is not None:
        try:
            payment.reference = escrow_gateway().lock(job.id, job.estimate_wei)
        except EscrowError as error:
            db.session.delete(payment)
            transition_job(job.id, {JobState.LOCKING}, JobState.LOCK_FAILED, lock_error=error.message)
            db.session.commit()
            return
    transition_job(job.id, {JobState.LOCKING}, JobState.RENDERING)
    db.session.commit()


def release_frame(frame_id: int) -> None:
    """Pay one verified frame to the node that rendered it, at most once."""
    frame = db.session.get(Frame, frame_id)
    assert frame is not None and frame.current_attempt_id is not None
    attempt = db.session.get(Attempt, frame.current_attempt_id)
    assert attempt is not None
    job: Job = frame.job
    payee = attempt.node.payout_address or f"node:{attempt.node_id}"
    payment = _record(job.id, PaymentKind.RELEASE, job.price_per_frame_wei, payee, frame.number)
    if payment is None:
        return
    payment.reference = escrow_gateway().release(job.id, frame.number, payee, job.price_per_frame_wei)
    db.session.commit()


def settle_job(job_id: str) -> None:
    """After a job ends: charge the fee on what was released, refund the rest of the lock."""
    job = get_job(job_id)
    locked = paid_total(job_id, PaymentKind.LOCK)
    if job.state not in {JobState.COMPLETED, JobState.CANCELLED} or locked == 0:
        return
    released = paid_total(job_id, PaymentKind.RELEASE)
    fee = fee_for(released, job.fee_bps)
    refund = locked - released - fee
    _record(job.id, PaymentKind.FEE, fee, recipient="platform")
    payment = _record(job.id, PaymentKind.REFUND, refund, recipient="artist")
    if payment is not None:
        payment.reference = escrow_gateway().refund(job.id, refund)
        db.session.commit()


def paid_total(job_id: str, kind: PaymentKind) -> int:
    amounts = db.session.scalars(
        select(Payment.amount_wei).where(Payment.job_id == job_id, Payment.kind == kind)
    ).all()
    return sum(amounts)


def money_summary(job_id: str) -> dict[str, int]:
    return {kind.value.lower() + "_wei": paid_total(job_id, kind) for kind in PaymentKind}
