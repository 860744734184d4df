"""The payments outbox: a job's lock, one release per verified frame, and the
close that charges the fee and refunds the rest, all in integer wei.

Every movement is a row first (unique per job, frame and kind). A transaction is
signed, its hash and raw bytes recorded, and only then sent; a worker that dies
anywhere in between finds the row on retry and confirms or resends the very same
transaction. The contract's once-per-frame rule is the last guard, not the only one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend import defaults, queues
from backend.errors import ChainRejected, ChainUnavailable
from backend.escrow_chain import EscrowChain, PreparedTransaction
from backend.extensions import db
from backend.models import Job, Payment, utc_now
from backend.services import held_claims
from backend.services.chain_access import escrow_chain, operator_lock
from backend.services.job_lifecycle import transition_job
from backend.services.job_split import get_job
from shared.states import JobState, PaymentKind, PaymentState

JOB_WIDE = -1


def _payment(job_id: str, kind: PaymentKind, frame_number: int = JOB_WIDE) -> Payment | None:
    return db.session.scalar(
        select(Payment).where(
            Payment.job_id == job_id, Payment.kind == kind, Payment.frame_number == frame_number
        )
    )


def _record(payment: Payment) -> Payment | None:
    """Insert the movement; None if it was already recorded."""
    db.session.add(payment)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None
    return payment


def _send(
    chain: EscrowChain, payments: list[Payment], prepare: Callable[[int], PreparedTransaction]
) -> dict | None:
    """Under the operator lock: sign with the next nonce, record the hash, send; then
    wait for the receipt (outside the lock).

    Returns None, sending nothing, when another worker got to these payments first
    (they are no longer RECORDED); the caller looks again.
    """
    with operator_lock():
        for payment in payments:
            db.session.refresh(payment)
        if any(payment.state != PaymentState.RECORDED for payment in payments):
            return None
        prepared = prepare(chain.next_nonce())
        for payment in payments:
            payment.state = PaymentState.SENT
            payment.tx_hash = prepared.tx_hash
            payment.raw_tx = prepared.raw
        db.session.commit()
        chain.send(prepared)
    return chain.wait_for_receipt(prepared.tx_hash)


def _receipt_of_sent(chain: EscrowChain, payment: Payment) -> dict | None:
    """The receipt of a SENT payment's transaction, resending it if the chain lost it.

    Returns None when the transaction can never be mined (its nonce went to
    another): the caller puts the rows back to RECORDED.
    """
    assert payment.tx_hash is not None and payment.raw_tx is not None
    if not chain.is_pending_or_mined(payment.tx_hash):
        try:
            chain.send(PreparedTransaction(payment.tx_hash, payment.raw_tx, nonce=-1))
        except ChainRejected:
            return None
    return chain.wait_for_receipt(payment.tx_hash)


# The lock


def lock_job(job_id: str) -> None:
    """Lock the job's estimate from the artist's escrow balance, then open its frames."""
    job = get_job(job_id)
    if job.state != JobState.LOCKING:
        return
    chain = escrow_chain()
    payment = _payment(job.id, PaymentKind.LOCK) or _record(
        Payment(job_id=job.id, kind=PaymentKind.LOCK, amount_wei=job.estimate_wei, recipient="escrow")
    )
    assert payment is not None
    try:
        receipt = _receipt_of_sent(chain, payment) if payment.state == PaymentState.SENT else None
        if receipt is None:
            deadline = int(time.time()) + current_app.config["RONRENDER_LOCK_DEADLINE_S"]
            receipt = _send(
                chain,
                [payment],
                lambda nonce: chain.prepare_lock(
                    job.id,
                    job.artist_address or "",
                    job.price_per_frame_wei,
                    job.frames_total,
                    deadline,
                    nonce,
                ),
            )
        if receipt is None:
            raise ChainUnavailable("another worker is sending this lock")
        if receipt["status"] != 1:
            raise ChainRejected("the lock transaction reverted")
    except ChainRejected as refused:
        payment.state = PaymentState.RECORDED
        payment.tx_hash = payment.raw_tx = None
        transition_job(job.id, {JobState.LOCKING}, JobState.AWAITING_PAYMENT, lock_error=refused.message)
        db.session.commit()
        return
    except ChainUnavailable as waiting:
        job.lock_error = f"waiting for the chain: {waiting.message}"
        db.session.commit()
        raise
    payment.state = PaymentState.CONFIRMED
    payment.confirmed_at = utc_now()
    job.lock_error = None
    moved = transition_job(job.id, {JobState.LOCKING}, JobState.RENDERING)
    if moved:
        held_claims.work_appeared()  # idle nodes' held claims take its first frames at once
    db.session.commit()
    if not moved:  # cancelled while the lock was in flight: give the money back
        queues.enqueue_job_settlement(job.id)


# Releases


def add_release(job: Job, frame_number: int, recipient: str | None) -> None:
    """A verified frame owes its price to the node that rendered it: the release joins the
    caller's transaction, the one that verifies the frame (at most one per frame: a unique
    key). The caller queues the send once it has committed."""
    db.session.add(
        Payment(
            job_id=job.id,
            kind=PaymentKind.RELEASE,
            frame_number=frame_number,
            frame_index=(frame_number - job.frame_start) // job.frame_step,
            amount_wei=job.price_per_frame_wei,
            recipient=recipient,
        )
    )


def send_releases(job_id: str) -> None:
    """Send every recorded release of the job, in batches, and confirm them all,
    including batches another worker (or a crashed one) sent."""
    chain = escrow_chain()
    while True:
        _confirm_sent_releases(chain, job_id)
        batch = list(
            db.session.scalars(
                select(Payment)
                .where(
                    Payment.job_id == job_id,
                    Payment.kind == PaymentKind.RELEASE,
                    Payment.state == PaymentState.RECORDED,
                )
                .order_by(Payment.frame_index)
                .limit(defaults.RELEASE_BATCH_FRAMES)
            )
        )
        if not batch:
            return
        receipt = _send(
            chain,
            batch,
            lambda nonce, batch=batch: chain.prepare_release(
                job_id, [p.frame_index for p in batch], [p.recipient or "" for p in batch], nonce
            ),
        )
        if receipt is None:
            continue  # another worker sent them first: confirm theirs on the next pass
        if not _settle_batch(chain, batch, receipt):
            raise ChainRejected(f"release transaction {receipt['transactionHash'].hex()} reverted")


def _confirm_sent_releases(chain: EscrowChain, job_id: str) -> None:
    sent = db.session.scalars(
        select(Payment).where(
            Payment.job_id == job_id, Payment.kind == PaymentKind.RELEASE, Payment.state == PaymentState.SENT
        )
    ).all()
    for tx_hash in dict.fromkeys(p.tx_hash for p in sent):
        batch = [p for p in sent if p.tx_hash == tx_hash]
        _settle_batch(chain, batch, _receipt_of_sent(chain, batch[0]))


def _settle_batch(chain: EscrowChain, batch: list[Payment], receipt: dict | None) -> bool:
    """Mark the batch's frames that the chain shows settled CONFIRMED, the rest RECORDED again."""
    settled = chain.settled_frames(receipt) if receipt is not None and receipt["status"] == 1 else set()
    for payment in batch:
        if payment.frame_index in settled:
            payment.state = PaymentState.CONFIRMED
            payment.confirmed_at = utc_now()
        else:
            payment.state = PaymentState.RECORDED
            payment.tx_hash = payment.raw_tx = None
    db.session.commit()
    return bool(settled)


# Close: fee and refund


def settle_job(job_id: str) -> None:
    """After a job ends: send what is still owed, then close it on chain, which
    charges the fee on released frames once and refunds the rest to the artist."""
    job = get_job(job_id)
    lock = _payment(job.id, PaymentKind.LOCK)
    if job.state not in {JobState.COMPLETED, JobState.CANCELLED} or lock is None:
        return
    chain = escrow_chain()
    if lock.state == PaymentState.SENT:  # cancelled while the lock was in flight
        receipt = _receipt_of_sent(chain, lock)
        locked = receipt is not None and receipt["status"] == 1
        lock.state = PaymentState.CONFIRMED if locked else PaymentState.RECORDED
        db.session.commit()
    if lock.state != PaymentState.CONFIRMED:
        return  # nothing was locked, nothing to give back
    send_releases(job.id)
    refund = _payment(job.id, PaymentKind.REFUND) or _record(
        Payment(job_id=job.id, kind=PaymentKind.REFUND, amount_wei=0, recipient=job.artist_address)
    )
    assert refund is not None
    if refund.state == PaymentState.CONFIRMED:
        return
    receipt = _receipt_of_sent(chain, refund) if refund.state == PaymentState.SENT else None
    if receipt is None:
        receipt = _send(chain, [refund], lambda nonce: chain.prepare_close(job.id, nonce))
        if receipt is None:
            raise ChainUnavailable("another worker is closing this job")
    if receipt["status"] != 1:
        raise ChainRejected(f"closing job {job.id} reverted")
    amounts = chain.closed_amounts(receipt)
    refund.amount_wei = amounts["refunded"]
    refund.state = PaymentState.CONFIRMED
    refund.confirmed_at = utc_now()
    fee = _payment(job.id, PaymentKind.FEE) or Payment(
        job_id=job.id, kind=PaymentKind.FEE, recipient="platform"
    )
    fee.amount_wei = amounts["fee"]
    fee.state = PaymentState.CONFIRMED
    fee.tx_hash = refund.tx_hash
    fee.confirmed_at = utc_now()
    db.session.add(fee)
    db.session.commit()


def money_summary(job_id: str) -> dict[str, int]:
    """Confirmed amounts by kind, plus releases recorded or sent but not yet confirmed."""
    rows = db.session.execute(
        select(Payment.kind, Payment.state, Payment.amount_wei).where(Payment.job_id == job_id)
    ).all()
    summary = {f"{kind.value.lower()}_wei": 0 for kind in PaymentKind}
    summary["release_pending_wei"] = 0
    for kind, state, amount in rows:
        if state == PaymentState.CONFIRMED:
            summary[f"{kind.value.lower()}_wei"] += amount
        elif kind == PaymentKind.RELEASE:
            summary["release_pending_wei"] += amount
    return summary


def job_tx_hashes(job_id: str) -> list[str]:
    hashes = db.session.scalars(
        select(Payment.tx_hash)
        .where(Payment.job_id == job_id, Payment.tx_hash.is_not(None))
        .order_by(Payment.id)
    ).all()
    return list(dict.fromkeys(hashes))
