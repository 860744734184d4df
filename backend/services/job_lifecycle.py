"""A job's own state changes: accepted, locked, completed or cancelled.

Each change is a guarded UPDATE, so a job completes or is cancelled exactly once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import exists, func, select, update
from web3 import Web3

from backend import queues
from backend.errors import InvalidJobState, InvalidSignature
from backend.escrow_chain import recover_signer
from backend.extensions import db
from backend.models import Attempt, Frame, Job, utc_now
from backend.services.chain_access import escrow_chain
from backend.services.guarded_update import move_state
from backend.services.job_split import get_job
from shared.protocol import acceptance_typed_data
from shared.states import FINAL_FRAME_STATES, AttemptOutcome, FrameState, JobState


def transition_job(job_id: str, from_states: set[JobState], to_state: JobState, **values: Any) -> bool:
    """Move a job between states exactly once (see ``move_state``)."""
    return move_state(Job, job_id, from_states, to_state, **values)


def acceptance_message(job: Job, artist_address: str) -> dict[str, Any]:
    """The EIP-712 message the artist signs to accept this job's estimate."""
    chain = escrow_chain()
    return acceptance_typed_data(
        chain_id=chain.chain_id,
        contract_address=Web3.to_checksum_address(chain.config.contract_address),
        job_id=job.id,
        artist=Web3.to_checksum_address(artist_address),
        total_wei=job.estimate_wei,
        frame_count=job.frames_total,
    )


def accept_job(job_id: str, artist_address: str, signature: str) -> Job:
    """The artist accepts the estimate by signing it: the lock is taken on chain
    from their wallet before any frame goes out. Accepting a job AWAITING_PAYMENT
    (after a deposit) tries the lock again."""
    job = get_job(job_id)
    try:
        signer = recover_signer(acceptance_message(job, artist_address), signature)
    except ValueError as error:
        raise InvalidSignature(f"the acceptance signature is malformed: {error}") from error
    if signer.lower() != artist_address.lower():
        raise InvalidSignature("the acceptance is not signed by the artist's wallet")
    acceptable = {JobState.AWAITING_ACCEPTANCE, JobState.AWAITING_PAYMENT}
    if not transition_job(job_id, acceptable, JobState.LOCKING, artist_address=signer, lock_error=None):
        raise InvalidJobState(f"job {job_id} is {job.state}, not awaiting acceptance")
    db.session.commit()
    queues.enqueue_escrow_lock(job_id)
    return job


def cancel_job(job_id: str) -> Job:
    """Stop a job: unfinished frames are cancelled, open leases end, the rest is refunded."""
    job = get_job(job_id)
    cancellable = {
        JobState.AWAITING_ACCEPTANCE,
        JobState.AWAITING_PAYMENT,
        JobState.LOCKING,
        JobState.RENDERING,
    }
    if not transition_job(job_id, cancellable, JobState.CANCELLED, finished_at=utc_now()):
        raise InvalidJobState(f"job {job_id} is {job.state} and cannot be cancelled")
    unfinished = [s for s in FrameState if s not in FINAL_FRAME_STATES]
    db.session.execute(
        update(Frame)
        .where(Frame.job_id == job_id, Frame.state.in_(unfinished))
        .values(state=FrameState.CANCELLED)
        .execution_options(synchronize_session=False)
    )
    frame_ids = select(Frame.id).where(Frame.job_id == job_id)
    db.session.execute(
        update(Attempt)
        .where(Attempt.frame_id.in_(frame_ids), Attempt.outcome == AttemptOutcome.OPEN)
        .values(outcome=AttemptOutcome.CANCELLED, ended_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    queues.enqueue_job_settlement(job_id)  # refunds whatever was locked
    return job


def finish_job_if_done(job_id: str) -> None:
    """Complete a rendering job once every frame is verified or failed, then settle it."""
    unfinished = exists().where(Frame.job_id == job_id, Frame.state.not_in(FINAL_FRAME_STATES))
    if db.session.scalar(select(unfinished)):
        return
    if transition_job(job_id, {JobState.RENDERING}, JobState.COMPLETED, finished_at=utc_now()):
        db.session.commit()
        queues.enqueue_job_settlement(job_id)


def frame_counts(job_id: str) -> dict[str, int]:
    rows = db.session.execute(
        select(Frame.state, func.count()).where(Frame.job_id == job_id).group_by(Frame.state)
    ).all()
    counts: Counter[str] = Counter({state.value: 0 for state in FrameState})
    counts.update({str(state): count for state, count in rows})
    return dict(counts)
