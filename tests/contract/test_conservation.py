"""Random sequences of escrow operations against a model: no wei is created, lost or paid twice.

Hypothesis drives deposit, spending caps, lock, release (new batches, retries, the rest of a
job), close, reclaim, withdraw, credit withdrawal, a pause and the clock against the real contract on
anvil. A plain Python model predicts every outcome, including which custom error a call must revert
with, and after every step the invariant checks, from the chain's own views,

    deposited == free balances + open jobs' remainders + paid to payees (direct and credited)
                 + fees + withdrawn by artists

and that the contract holds exactly what it owes: free balances + open locks not yet paid out +
credits. Each example runs inside its own EVM snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_abi import decode
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from local_chain import LocalChain
from web3 import Web3

from tests.contract.escrow_driver import DAY_S, ETHER, FEE_BPS, Actors, Escrow, job_id, reverts_with

pytestmark = pytest.mark.contract

MAX_UINT256 = 2**256 - 1
RELEASE_CAP_WEI = ETHER // 50
MAX_FRAMES = 16
WARP_S = 2 * DAY_S  # past every open deadline and the release period at once
PRICES = st.integers(1, 1_000) | st.integers(10**14, 10**16)  # wei per frame: fee rounding, cap hits
GET_JOB_TYPES = ["address", "uint128", "uint32", "uint32", "uint64", "uint256", "uint256", "uint256", "bool"]


@dataclass
class ModelJob:
    artist: str
    price: int
    frame_count: int
    locked_in_epoch: int
    get_job_call: str
    paid_frames: set[int] = field(default_factory=set)
    closed: bool = False

    @property
    def fee_per_frame(self) -> int:
        return self.price * FEE_BPS // 10_000

    @property
    def remainder(self) -> int:
        if self.closed:
            return 0
        return (self.frame_count - len(self.paid_frames)) * (self.price + self.fee_per_frame)


class EscrowMachine(RuleBasedStateMachine):
    """One example: a fresh snapshot of the deployed escrow plus a model of what it should hold."""

    escrow: Escrow
    actors: Actors
    reverter: str

    def __init__(self) -> None:
        super().__init__()
        self.chain: LocalChain = self.escrow.chain
        self.snapshot = self.chain.snapshot()
        self.artists = [self.actors.artist, self.actors.other_artist]
        self.eoa_payees = [p.address for p in self.actors.payees[:3]]
        self.payees = [*self.eoa_payees, self.reverter]
        self.credited = [*self.payees, self.actors.fee_recipient.address]
        self.free = {a.address: 0 for a in self.artists}
        self.caps = {a.address: 0 for a in self.artists}
        self.credits = dict.fromkeys(self.credited, 0)
        self.jobs: dict[bytes, ModelJob] = {}
        self.sent_batches: list[tuple[bytes, list[int], list[str]]] = []
        self.next_job = 1
        self.epoch = 0
        self.window_epoch: int | None = None
        self.released_in_window = 0
        self.deposited = self.withdrawn = self.paid_to_payees = 0
        to = self.escrow.address
        self.book_calls = [("eth_getBalance", [to, "latest"])]
        self.book_calls += [
            ("eth_call", [{"to": to, "data": self.escrow.call_data(name, address)}, "latest"])
            for name, addresses in (("balanceOf", self.free), ("credits", self.credited))
            for address in addresses
        ]

    def teardown(self) -> None:
        self.chain.revert(self.snapshot)

    def pick_job(self, index: int) -> bytes:
        return list(self.jobs)[index % len(self.jobs)]

    def open_jobs(self) -> list[bytes]:
        return [key for key, job in self.jobs.items() if not job.closed]

    def open_batches(self) -> list[tuple[bytes, list[int], list[str]]]:
        return [batch for batch in self.sent_batches if not self.jobs[batch[0]].closed]

    def expect(self, error: str | None, send: Any) -> Any:
        """Run `send`; it must revert with `error`, or succeed when `error` is None."""
        if error is None:
            return send()
        with reverts_with(error):
            send()
        return None

    # ------------------------------------------------------------------ wallet

    @initialize(
        amounts=st.lists(st.integers(ETHER // 10, 2 * ETHER), min_size=2, max_size=2),
        caps=st.lists(st.just(MAX_UINT256) | st.integers(0, 2 * ETHER), min_size=2, max_size=2),
        jobs=st.lists(st.tuples(PRICES, st.integers(1, MAX_FRAMES)), min_size=2, max_size=2),
    )
    def artists_fund_and_submit(
        self, amounts: list[int], caps: list[int], jobs: list[tuple[int, int]]
    ) -> None:
        """Both artists deposit, set a cap and submit a job, so every example has money in play
        (Hypothesis enables only a random subset of the rules in each example)."""
        for artist, (who, amount, cap) in enumerate(zip(self.artists, amounts, caps, strict=True)):
            self.escrow.deposit(who, amount, cap=cap)
            self.free[who.address] += amount
            self.caps[who.address] = cap
            self.deposited += amount
            self.lock(artist, *jobs[artist], reuse=1)

    @rule(
        artist=st.integers(0, 1),
        amount=st.integers(0, 2 * ETHER),
        cap=st.none() | st.just(MAX_UINT256) | st.integers(0, 2 * ETHER),
    )
    def deposit(self, artist: int, amount: int, cap: int | None) -> None:
        """Deposit (nothing is refused) and maybe set a new spending cap."""
        who = self.artists[artist]
        if self.expect("ZeroAmount" if amount == 0 else None, lambda: self.escrow.deposit(who, amount)):
            self.free[who.address] += amount
            self.deposited += amount
        if cap is not None:
            self.escrow.send("setSpendingCap", cap, by=who)
            self.caps[who.address] = cap

    @precondition(lambda self: any(self.free.values()))
    @rule(artist=st.integers(0, 1), share=st.floats(0, 1.2))
    def withdraw(self, artist: int, share: float) -> None:
        who = self.artists[artist]
        amount = int(self.free[who.address] * share)
        error = (
            "ZeroAmount"
            if amount == 0
            else "InsufficientBalance"
            if amount > self.free[who.address]
            else None
        )
        if self.expect(error, lambda: self.escrow.send("withdraw", amount, by=who)):
            self.free[who.address] -= amount
            self.withdrawn += amount

    @precondition(lambda self: any(self.credits[a] for a in self.credited if a != self.reverter))
    @rule(index=st.integers(0, 3))
    def withdraw_credit(self, index: int) -> None:
        who = [*self.actors.payees[:3], self.actors.fee_recipient][index]
        error = "NothingToWithdraw" if self.credits[who.address] == 0 else None
        if self.expect(error, lambda: self.escrow.send("withdrawCredit", by=who)):
            self.credits[who.address] = 0

    # ------------------------------------------------------------------ jobs

    @rule(
        artist=st.integers(0, 1),
        price=PRICES,
        frames=st.integers(1, MAX_FRAMES),
        reuse=st.integers(0, 9),
    )
    def lock(self, artist: int, price: int, frames: int, reuse: int) -> None:
        """Lock a new job (or, now and then, one under an id already taken)."""
        who = self.artists[artist]
        taken = reuse == 0 and bool(self.jobs)
        job = self.pick_job(price) if taken else job_id(self.next_job)
        amount = frames * (price + price * FEE_BPS // 10_000)
        if taken:
            error = "JobExists"
        elif self.free[who.address] < amount:
            error = "InsufficientBalance"
        elif self.caps[who.address] < amount:
            error = "SpendingCapExceeded"
        else:
            error = None
        if not self.expect(error, lambda: self.escrow.lock(job, who, price, frames)):
            return
        self.next_job += 1
        self.free[who.address] -= amount
        if self.caps[who.address] != MAX_UINT256:
            self.caps[who.address] -= amount
        self.jobs[job] = ModelJob(
            who.address, price, frames, self.epoch, self.escrow.call_data("getJob", job)
        )

    def _release(self, job_key: bytes, frames: list[int], payees: list[str]) -> bool:
        """Release a batch, predicting its outcome, payouts, credits and events from the model."""
        job = self.jobs[job_key]
        new_frames: dict[int, str] = {}
        for frame, payee in zip(frames, payees, strict=True):
            if frame < job.frame_count and frame not in job.paid_frames:
                new_frames.setdefault(frame, payee)
        amount = len(new_frames) * job.price
        window_released = self.released_in_window if self.window_epoch == self.epoch else 0
        if job.closed:
            error = "JobAlreadyClosed"
        elif any(frame >= job.frame_count for frame in frames):
            error = "FrameOutOfRange"
        elif new_frames and amount > RELEASE_CAP_WEI - window_released:
            error = "ReleaseCapExceeded"
        else:
            error = None
        if error:
            with reverts_with(error):
                self.escrow.release(job_key, frames, payees)
            return False

        balance_calls = [("eth_getBalance", [payee, "latest"]) for payee in self.eoa_payees]
        before = [int(b, 16) for b in self.escrow.raw_batch(balance_calls)]
        receipt = self.escrow.release(job_key, frames, payees)
        after = [int(b, 16) for b in self.escrow.raw_batch(balance_calls)]
        self.sent_batches.append((job_key, frames, payees))
        direct = dict.fromkeys(self.eoa_payees, 0)
        for frame, payee in new_frames.items():
            job.paid_frames.add(frame)
            self.paid_to_payees += job.price
            if payee == self.reverter:
                self.credits[payee] += job.price
            else:
                direct[payee] += job.price
        if new_frames:
            self.window_epoch = self.epoch
            self.released_in_window = window_released + amount
        assert [a - b for a, b in zip(after, before, strict=True)] == list(direct.values())
        released = [(e["frame"], e["payee"]) for e in self.escrow.events(receipt, "FrameReleased")]
        assert released == list(new_frames.items())
        skipped = self.escrow.events(receipt, "FrameAlreadySettled")
        assert len(skipped) == len(frames) - len(new_frames)
        return True

    @precondition(lambda self: self.open_jobs())
    @rule(
        index=st.integers(0, 1_000),
        batch=st.lists(st.tuples(st.integers(0, MAX_FRAMES - 1), st.integers(0, 3)), min_size=1, max_size=8),
        past_the_end=st.integers(0, 9),
    )
    def release(self, index: int, batch: list[tuple[int, int]], past_the_end: int) -> None:
        """Release some frames (indices folded into range; one past the end now and then)."""
        open_jobs = self.open_jobs()
        job_key = open_jobs[index % len(open_jobs)]
        frame_count = self.jobs[job_key].frame_count
        frames = [frame % frame_count for frame, _ in batch]
        payees = [self.payees[payee] for _, payee in batch]
        if past_the_end == 0:
            frames.append(frame_count)
            payees.append(payees[0])
        if self._release(job_key, frames, payees):
            # The operator retries the same batch (to other payees, even): nothing more is paid.
            self._release(job_key, frames, payees[1:] + payees[:1])

    @precondition(lambda self: self.open_batches())
    @rule(index=st.integers(0, 1_000), payee=st.integers(0, 3))
    def retry_release(self, index: int, payee: int) -> None:
        """Send an earlier batch again, as a retrying operator would: it pays nothing new."""
        batches = self.open_batches()
        job_key, frames, _ = batches[index % len(batches)]
        self._release(job_key, frames, [self.payees[payee]] * len(frames))

    @precondition(lambda self: self.open_jobs())
    @rule(index=st.integers(0, 1_000), payee=st.integers(0, 3))
    def release_the_rest(self, index: int, payee: int) -> None:
        """Release every frame of a job to one payee (often hits the release cap)."""
        open_jobs = self.open_jobs()
        job_key = open_jobs[index % len(open_jobs)]
        frames = list(range(self.jobs[job_key].frame_count))
        self._release(job_key, frames, [self.payees[payee]] * len(frames))

    def _settle(self, job_key: bytes) -> None:
        job = self.jobs[job_key]
        self.free[job.artist] += job.remainder
        self.credits[self.actors.fee_recipient.address] += len(job.paid_frames) * job.fee_per_frame
        job.closed = True
        self._release(job_key, [0], [self.payees[0]])  # must revert: the job is closed
        with reverts_with("JobAlreadyClosed"):
            self.escrow.send("closeJob", job_key, by=self.actors.operator)

    @precondition(lambda self: self.open_jobs())
    @rule(index=st.integers(0, 1_000))
    def close(self, index: int) -> None:
        open_jobs = self.open_jobs()
        job_key = open_jobs[index % len(open_jobs)]
        job = self.jobs[job_key]
        expected = {
            "jobId": job_key,
            "paid": len(job.paid_frames) * job.price,
            "fee": len(job.paid_frames) * job.fee_per_frame,
            "refunded": job.remainder,
        }
        receipt = self.escrow.send("closeJob", job_key, by=self.actors.operator)
        assert self.escrow.events(receipt, "JobClosed") == [expected]
        self._settle(job_key)

    @precondition(lambda self: self.epoch > 0 and self.jobs)
    @rule(index=st.integers(0, 1_000))
    def reclaim(self, index: int) -> None:
        job_key = self.pick_job(index)
        job = self.jobs[job_key]
        artist = next(a for a in self.artists if a.address == job.artist)
        if job.locked_in_epoch == self.epoch:
            error = "DeadlineNotReached"
        elif job.closed:
            error = "JobAlreadyClosed"
        else:
            error = None
        if self.expect(error, lambda: self.escrow.send("reclaimAfterDeadline", job_key, by=artist)):
            self._settle(job_key)

    # ------------------------------------------------------------------ owner and clock

    @rule(artist=st.integers(0, 1))
    def pause_briefly(self, artist: int) -> None:
        """While paused nothing is deposited, locked or released; withdrawing still works."""
        who = self.artists[artist]
        self.escrow.send("pause", by=self.actors.owner)
        with reverts_with("EnforcedPause"):
            self.escrow.deposit(who, 1)
        with reverts_with("EnforcedPause"):
            self.escrow.lock(job_id(self.next_job), who, 1, 1)
        if self.jobs:
            with reverts_with("EnforcedPause"):
                self.escrow.release(self.pick_job(artist), [0], [self.payees[0]])
        if self.free[who.address]:
            self.escrow.send("withdraw", 1, by=who)
            self.free[who.address] -= 1
            self.withdrawn += 1
        self.escrow.send("unpause", by=self.actors.owner)

    @rule()
    def warp_past_deadlines(self) -> None:
        self.chain.increase_time(WARP_S)
        self.epoch += 1

    # ------------------------------------------------------------------ invariant

    @invariant()
    def books_balance(self) -> None:
        escrow = self.escrow
        jobs = list(self.jobs.values())
        calls = self.book_calls + [
            ("eth_call", [{"to": escrow.address, "data": job.get_job_call}, "latest"]) for job in jobs
        ]
        results = iter(escrow.raw_batch(calls))
        held = int(next(results), 16)
        free = {address: int(next(results), 16) for address in self.free}
        credits = {address: int(next(results), 16) for address in self.credited}
        assert free == self.free
        assert credits == self.credits

        unsettled = remainders = fees = 0
        for job in jobs:
            artist, price, frame_count, frames_paid, _, locked, paid, fee, closed = decode(
                GET_JOB_TYPES, Web3.to_bytes(hexstr=next(results))
            )
            assert (Web3.to_checksum_address(artist), price, frame_count, closed) == (
                job.artist,
                job.price,
                job.frame_count,
                job.closed,
            )
            assert (frames_paid, paid, fee) == (
                len(job.paid_frames),
                len(job.paid_frames) * job.price,
                len(job.paid_frames) * job.fee_per_frame,
            )
            assert paid + fee <= locked
            remainder = 0 if closed else locked - paid - fee
            assert remainder == job.remainder
            remainders += remainder
            unsettled += 0 if closed else locked - paid
            fees += fee
        # Where every deposited wei is now.
        assert self.deposited == sum(free.values()) + remainders + self.paid_to_payees + fees + self.withdrawn
        # The contract holds exactly what it owes.
        assert held == sum(free.values()) + unsettled + sum(credits.values())


def test_random_operation_sequences_conserve_funds(escrow: Escrow, actors: Actors):
    escrow.send("setReleaseCap", RELEASE_CAP_WEI, DAY_S, by=actors.owner)
    EscrowMachine.escrow = escrow
    EscrowMachine.actors = actors
    EscrowMachine.reverter = escrow.chain.deploy("Reverter", key=actors.stranger.key)
    run_state_machine_as_test(
        EscrowMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=20,
            deadline=None,
            database=None,
            # Shrinking replays examples on the chain for minutes; a failure prints its steps as is.
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_remainder_view_matches_get_job(escrow: Escrow, actors: Actors):
    """The invariant derives remainders from getJob; the remainder view must agree."""
    escrow.deposit(actors.artist, ETHER, cap=ETHER)
    escrow.lock(job_id(1), actors.artist, 1_003, 9)
    escrow.release(job_id(1), [0, 4], [actors.payees[0].address] * 2)
    state = escrow.job(job_id(1))
    assert (
        escrow.view("remainder", job_id(1))
        == state["locked"] - state["paid"] - state["fee"]
        == 7 * (1_003 + 50)
    )
