"""The escrow on a real local chain: wallet, lock, per-frame release, close, reclaim, pause, caps."""

from __future__ import annotations

import pytest
from web3 import Web3

from tests.contract.escrow_driver import (
    DAY_S,
    ETHER,
    FEE_BPS,
    Actors,
    Escrow,
    gas_cost,
    job_id,
    reverts_with,
)

pytestmark = pytest.mark.contract

PRICE = 10**16  # 0.01 RON per frame
FEE = PRICE * FEE_BPS // 10_000
PER_FRAME = PRICE + FEE
JOB = job_id(1)
MAX_UINT256 = 2**256 - 1


def funded_job(escrow: Escrow, actors: Actors, frames: int = 10, price: int = PRICE) -> bytes:
    """The artist deposits 1 RON, approves it all, and the operator locks JOB."""
    escrow.deposit(actors.artist, ETHER, cap=ETHER)
    escrow.lock(JOB, actors.artist, price, frames)
    return JOB


# ------------------------------------------------------------------ deployment


def test_deployment_sets_roles_and_fits_the_size_limit(escrow: Escrow, actors: Actors):
    assert escrow.view("owner") == actors.owner.address
    assert escrow.view("operator") == actors.operator.address
    assert escrow.view("feeRecipient") == actors.fee_recipient.address
    assert escrow.view("feeBps") == FEE_BPS
    assert escrow.view("paused") is False
    code = escrow.chain.w3.eth.get_code(escrow.address)
    assert 0 < len(code) < 24_576


@pytest.mark.parametrize(
    ("operator", "fee_recipient", "fee_bps", "period", "error"),
    [
        ("0x" + "00" * 20, None, 500, DAY_S, "ZeroAddress"),
        (None, "0x" + "00" * 20, 500, DAY_S, "ZeroAddress"),
        (None, None, 10_001, DAY_S, "FeeTooHigh"),
        (None, None, 500, 0, "InvalidPeriod"),
    ],
)
def test_constructor_rejects_bad_settings(escrow, actors, operator, fee_recipient, fee_bps, period, error):
    with reverts_with(error):
        escrow.chain.deploy_escrow(
            operator or actors.operator.address,
            fee_recipient or actors.fee_recipient.address,
            fee_bps,
            ETHER,
            period,
        )


# ------------------------------------------------------------------ artist wallet


def test_deposit_credits_the_free_balance(escrow: Escrow, actors: Actors):
    receipt = escrow.deposit(actors.artist, 3 * ETHER)
    assert escrow.events(receipt, "Deposited") == [{"artist": actors.artist.address, "amount": 3 * ETHER}]
    escrow.deposit(actors.artist, ETHER)
    assert escrow.balance_of(actors.artist.address) == 4 * ETHER
    assert escrow.balance_of(actors.other_artist.address) == 0
    assert escrow.eth_balance() == 4 * ETHER


def test_deposit_of_nothing_is_rejected(escrow: Escrow, actors: Actors):
    with reverts_with("ZeroAmount"):
        escrow.deposit(actors.artist, 0)


def test_plain_transfers_are_refused(escrow: Escrow, actors: Actors):
    with pytest.raises(Exception, match="revert"):
        escrow.chain.send_value(actors.artist.key, escrow.address, ETHER)


def test_spending_cap_is_set_by_the_artist(escrow: Escrow, actors: Actors):
    receipt = escrow.send("setSpendingCap", 5 * ETHER, by=actors.artist)
    assert escrow.events(receipt, "SpendingCapSet") == [{"artist": actors.artist.address, "cap": 5 * ETHER}]
    assert escrow.view("spendingCap", actors.artist.address) == 5 * ETHER


def test_withdraw_returns_free_balance_only(escrow: Escrow, actors: Actors):
    funded_job(escrow, actors, frames=10)
    free = ETHER - 10 * PER_FRAME
    assert escrow.balance_of(actors.artist.address) == free
    with reverts_with("InsufficientBalance"):
        escrow.send("withdraw", free + 1, by=actors.artist)
    with reverts_with("ZeroAmount"):
        escrow.send("withdraw", 0, by=actors.artist)

    before = escrow.eth_balance(actors.artist.address)
    receipt = escrow.send("withdraw", free, by=actors.artist)
    assert escrow.events(receipt, "Withdrawn") == [{"artist": actors.artist.address, "amount": free}]
    assert escrow.eth_balance(actors.artist.address) == before + free - gas_cost(receipt)
    assert escrow.balance_of(actors.artist.address) == 0
    assert escrow.eth_balance() == 10 * PER_FRAME  # the lock stays


def test_withdraw_works_while_paused(escrow: Escrow, actors: Actors):
    escrow.deposit(actors.artist, ETHER)
    escrow.send("pause", by=actors.owner)
    escrow.send("withdraw", ETHER, by=actors.artist)
    assert escrow.balance_of(actors.artist.address) == 0
    with reverts_with("EnforcedPause"):
        escrow.deposit(actors.artist, ETHER)


# ------------------------------------------------------------------ lock


def test_lock_within_cap(escrow: Escrow, actors: Actors):
    escrow.deposit(actors.artist, ETHER, cap=ETHER // 2)
    deadline = escrow.chain.latest_timestamp() + DAY_S
    assert escrow.view("quoteLock", PRICE, 10) == 10 * PER_FRAME
    receipt = escrow.lock(JOB, actors.artist, PRICE, 10, deadline)

    assert escrow.events(receipt, "Locked") == [
        {
            "jobId": JOB,
            "artist": actors.artist.address,
            "amount": 10 * PER_FRAME,
            "pricePerFrame": PRICE,
            "frameCount": 10,
            "deadline": deadline,
        }
    ]
    assert escrow.balance_of(actors.artist.address) == ETHER - 10 * PER_FRAME
    assert escrow.view("spendingCap", actors.artist.address) == ETHER // 2 - 10 * PER_FRAME
    assert escrow.job(JOB) == {
        "artist": actors.artist.address,
        "pricePerFrame": PRICE,
        "frameCount": 10,
        "framesPaid": 0,
        "deadline": deadline,
        "locked": 10 * PER_FRAME,
        "paid": 0,
        "fee": 0,
        "closed": False,
    }
    assert escrow.view("remainder", JOB) == 10 * PER_FRAME


def test_lock_over_cap_is_rejected(escrow: Escrow, actors: Actors):
    escrow.deposit(actors.artist, ETHER, cap=10 * PER_FRAME - 1)
    with reverts_with("SpendingCapExceeded"):
        escrow.lock(JOB, actors.artist, PRICE, 10)
    # The cap is an allowance: two locks that together exceed it fail on the second.
    escrow.send("setSpendingCap", 15 * PER_FRAME, by=actors.artist)
    escrow.lock(JOB, actors.artist, PRICE, 10)
    with reverts_with("SpendingCapExceeded"):
        escrow.lock(job_id(2), actors.artist, PRICE, 10)
    escrow.lock(job_id(2), actors.artist, PRICE, 5)
    assert escrow.view("spendingCap", actors.artist.address) == 0


def test_unlimited_cap_is_not_consumed(escrow: Escrow, actors: Actors):
    escrow.deposit(actors.artist, ETHER, cap=MAX_UINT256)
    escrow.lock(JOB, actors.artist, PRICE, 10)
    assert escrow.view("spendingCap", actors.artist.address) == MAX_UINT256


def test_lock_without_balance_is_rejected(escrow: Escrow, actors: Actors):
    escrow.send("setSpendingCap", ETHER, by=actors.artist)
    with reverts_with("InsufficientBalance"):
        escrow.lock(JOB, actors.artist, PRICE, 10)
    escrow.deposit(actors.artist, 10 * PER_FRAME - 1)
    with reverts_with("InsufficientBalance"):
        escrow.lock(JOB, actors.artist, PRICE, 10)


def test_lock_rejects_bad_terms(escrow: Escrow, actors: Actors):
    escrow.deposit(actors.artist, ETHER, cap=ETHER)
    now = escrow.chain.latest_timestamp()
    with reverts_with("ZeroFrames"):
        escrow.lock(JOB, actors.artist, PRICE, 0)
    with reverts_with("ZeroPrice"):
        escrow.lock(JOB, actors.artist, 0, 10)
    with reverts_with("DeadlineInPast"):
        escrow.lock(JOB, actors.artist, PRICE, 10, deadline=now - 1)
    escrow.lock(JOB, actors.artist, PRICE, 10)
    with reverts_with("JobExists"):
        escrow.lock(JOB, actors.artist, PRICE, 1)


def test_lock_by_a_stranger_is_rejected(escrow: Escrow, actors: Actors):
    escrow.deposit(actors.artist, ETHER, cap=ETHER)
    with reverts_with("NotOperator"):
        escrow.lock(JOB, actors.artist, PRICE, 10, by=actors.stranger)
    with reverts_with("NotOperator"):
        escrow.lock(JOB, actors.artist, PRICE, 10, by=actors.artist)


def test_lock_while_paused_is_rejected(escrow: Escrow, actors: Actors):
    escrow.deposit(actors.artist, ETHER, cap=ETHER)
    receipt = escrow.send("pause", by=actors.owner)
    assert escrow.events(receipt, "Paused") == [{"account": actors.owner.address}]
    with reverts_with("EnforcedPause"):
        escrow.lock(JOB, actors.artist, PRICE, 10)
    escrow.send("unpause", by=actors.owner)
    escrow.lock(JOB, actors.artist, PRICE, 10)


def test_fee_per_frame_rounds_down(escrow: Escrow, actors: Actors):
    price = 199  # 5 % of 199 wei is 9.95 wei
    assert escrow.view("feePerFrame", price) == 9
    assert escrow.view("quoteLock", price, 7) == 7 * 208


# ------------------------------------------------------------------ release


def test_release_pays_each_frame_to_its_payee(escrow: Escrow, actors: Actors):
    job = funded_job(escrow, actors, frames=10)
    alice, bob = actors.payees[0].address, actors.payees[1].address
    before = {p: escrow.eth_balance(p) for p in (alice, bob)}

    receipt = escrow.release(job, [0, 3, 4, 9], [alice, bob, alice, alice])

    assert escrow.events(receipt, "FrameReleased") == [
        {"jobId": job, "frame": 0, "payee": alice, "amount": PRICE},
        {"jobId": job, "frame": 3, "payee": bob, "amount": PRICE},
        {"jobId": job, "frame": 4, "payee": alice, "amount": PRICE},
        {"jobId": job, "frame": 9, "payee": alice, "amount": PRICE},
    ]
    assert escrow.eth_balance(alice) == before[alice] + 3 * PRICE
    assert escrow.eth_balance(bob) == before[bob] + PRICE
    assert [escrow.view("isFramePaid", job, f) for f in range(10)] == [f in (0, 3, 4, 9) for f in range(10)]
    state = escrow.job(job)
    assert (state["framesPaid"], state["paid"], state["fee"]) == (4, 4 * PRICE, 4 * FEE)
    assert escrow.view("remainder", job) == 6 * PER_FRAME
    assert escrow.eth_balance() == ETHER - 4 * PRICE


def test_payouts_to_one_payee_are_one_transfer(escrow: Escrow, actors: Actors):
    job = funded_job(escrow, actors, frames=10)
    payee = actors.payees[0].address
    receipt = escrow.release(job, list(range(10)), [payee] * 10)
    trace = escrow.chain.rpc(
        "debug_traceTransaction", receipt["transactionHash"].to_0x_hex(), {"tracer": "callTracer"}
    )
    assert [(call["to"].lower(), int(call["value"], 16)) for call in trace.get("calls", [])] == [
        (payee.lower(), 10 * PRICE)
    ]


def test_double_release_is_skipped_and_pays_nothing(escrow: Escrow, actors: Actors):
    job = funded_job(escrow, actors, frames=10)
    payee, other = actors.payees[0].address, actors.payees[1].address
    escrow.release(job, [1, 2], [payee, payee])
    before = escrow.eth_balance(payee), escrow.eth_balance(other), escrow.eth_balance()

    receipt = escrow.release(job, [1, 2], [other, other])

    assert escrow.events(receipt, "FrameAlreadySettled") == [
        {"jobId": job, "frame": 1},
        {"jobId": job, "frame": 2},
    ]
    assert escrow.events(receipt, "FrameReleased") == []
    assert (escrow.eth_balance(payee), escrow.eth_balance(other), escrow.eth_balance()) == before
    assert escrow.job(job)["framesPaid"] == 2


def test_a_frame_twice_in_one_batch_is_paid_once(escrow: Escrow, actors: Actors):
    job = funded_job(escrow, actors, frames=10)
    payee = actors.payees[0].address
    before = escrow.eth_balance(payee)
    receipt = escrow.release(job, [5, 5, 6], [payee, payee, payee])
    assert [e["frame"] for e in escrow.events(receipt, "FrameReleased")] == [5, 6]
    assert escrow.events(receipt, "FrameAlreadySettled") == [{"jobId": job, "frame": 5}]
    assert escrow.eth_balance(payee) == before + 2 * PRICE


def test_release_of_an_index_past_the_frame_count_is_rejected(escrow: Escrow, actors: Actors):
    job = funded_job(escrow, actors, frames=10)
    payee = actors.payees[0].address
    with reverts_with("FrameOutOfRange"):
        escrow.release(job, [0, 10], [payee, payee])
    with reverts_with("FrameOutOfRange"):
        escrow.release(job, [2**32 - 1], [payee])
    assert escrow.job(job)["framesPaid"] == 0
    assert not escrow.view("isFramePaid", job, 0)


def test_release_rejects_malformed_batches(escrow: Escrow, actors: Actors):
    job = funded_job(escrow, actors, frames=10)
    payee = actors.payees[0].address
    with reverts_with("LengthMismatch"):
        escrow.release(job, [0, 1], [payee])
    with reverts_with("EmptyBatch"):
        escrow.release(job, [], [])
    with reverts_with("InvalidPayee"):
        escrow.release(job, [0], ["0x" + "00" * 20])
    with reverts_with("InvalidPayee"):
        escrow.release(job, [0], [escrow.address])
    with reverts_with("JobNotFound"):
        escrow.release(job_id(99), [0], [payee])


def test_release_by_a_stranger_is_rejected(escrow: Escrow, actors: Actors):
    job = funded_job(escrow, actors, frames=10)
    for intruder in (actors.stranger, actors.artist, actors.owner):
        with reverts_with("NotOperator"):
            escrow.release(job, [0], [intruder.address], by=intruder)


def test_release_while_paused_is_rejected(escrow: Escrow, actors: Actors):
    job = funded_job(escrow, actors, frames=10)
    escrow.send("pause", by=actors.owner)
    with reverts_with("EnforcedPause"):
        escrow.release(job, [0], [actors.payees[0].address])


def test_failing_payees_are_credited_and_do_not_block_the_others(escrow: Escrow, actors: Actors):
    chain = escrow.chain
    reverter = chain.deploy("Reverter", key=actors.stranger.key)
    burner = chain.deploy("GasBurner", key=actors.stranger.key)
    reenterer = chain.deploy("Reenterer", escrow.address, key=actors.stranger.key)
    good = actors.payees[0].address
    job = funded_job(escrow, actors, frames=10)
    before = escrow.eth_balance(good)

    receipt = escrow.release(job, [0, 1, 2, 3, 4], [reverter, good, burner, reenterer, reverter])

    assert escrow.eth_balance(good) == before + PRICE
    assert escrow.events(receipt, "PaymentCredited") == [
        {"jobId": job, "payee": reverter, "amount": 2 * PRICE},
        {"jobId": job, "payee": burner, "amount": PRICE},
        {"jobId": job, "payee": reenterer, "amount": PRICE},
    ]
    assert receipt["gasUsed"] < 500_000  # the gas burner only got the payout stipend
    assert [escrow.view("credits", a) for a in (reverter, burner, reenterer)] == [2 * PRICE, PRICE, PRICE]
    assert escrow.job(job)["framesPaid"] == 5

    # A credited contract pulls its money itself.
    pull = chain.contract(reenterer, "Reenterer").functions.pull()
    receipt = chain.transact(pull, actors.stranger.key)
    assert escrow.events(receipt, "CreditWithdrawn") == [{"account": reenterer, "amount": PRICE}]
    assert escrow.eth_balance(reenterer) == PRICE
    assert escrow.view("credits", reenterer) == 0


# ------------------------------------------------------------------ close and reclaim


def test_close_refunds_the_unpaid_frames_and_credits_the_fee_once(escrow: Escrow, actors: Actors):
    job = funded_job(escrow, actors, frames=10)
    escrow.release(job, [0, 1, 2, 3], [actors.payees[0].address] * 4)

    receipt = escrow.send("closeJob", job, by=actors.operator)

    assert escrow.events(receipt, "JobClosed") == [
        {"jobId": job, "paid": 4 * PRICE, "fee": 4 * FEE, "refunded": 6 * PER_FRAME}
    ]
    assert escrow.balance_of(actors.artist.address) == ETHER - 4 * PER_FRAME
    assert escrow.view("credits", actors.fee_recipient.address) == 4 * FEE
    assert escrow.view("remainder", job) == 0
    assert escrow.job(job)["closed"] is True
    with reverts_with("JobAlreadyClosed"):
        escrow.send("closeJob", job, by=actors.operator)
    with reverts_with("JobAlreadyClosed"):
        escrow.release(job, [5], [actors.payees[0].address])
    with reverts_with("NotOperator"):
        escrow.send("closeJob", job_id(7), by=actors.stranger)
    with reverts_with("JobNotFound"):
        escrow.send("closeJob", job_id(7), by=actors.operator)
    # The contract holds exactly what it owes.
    assert escrow.eth_balance() == escrow.balance_of(actors.artist.address) + 4 * FEE


def test_fee_recipient_withdraws_its_credit(escrow: Escrow, actors: Actors):
    job = funded_job(escrow, actors, frames=10)
    escrow.release(job, list(range(10)), [actors.payees[0].address] * 10)
    escrow.send("closeJob", job, by=actors.operator)
    before = escrow.eth_balance(actors.fee_recipient.address)

    receipt = escrow.send("withdrawCredit", by=actors.fee_recipient)

    assert escrow.eth_balance(actors.fee_recipient.address) == before + 10 * FEE - gas_cost(receipt)
    assert escrow.events(receipt, "CreditWithdrawn") == [
        {"account": actors.fee_recipient.address, "amount": 10 * FEE}
    ]
    with reverts_with("NothingToWithdraw"):
        escrow.send("withdrawCredit", by=actors.fee_recipient)
    assert escrow.eth_balance() == escrow.balance_of(actors.artist.address)


def test_reclaim_only_after_the_deadline_and_only_by_the_artist(escrow: Escrow, actors: Actors):
    escrow.deposit(actors.artist, ETHER, cap=ETHER)
    deadline = escrow.chain.latest_timestamp() + DAY_S
    escrow.lock(JOB, actors.artist, PRICE, 10, deadline)
    escrow.release(JOB, [0, 1], [actors.payees[0].address] * 2)
    with reverts_with("DeadlineNotReached"):
        escrow.send("reclaimAfterDeadline", JOB, by=actors.artist)

    escrow.chain.set_next_block_timestamp(deadline)  # at the deadline is not after it
    with reverts_with("DeadlineNotReached"):
        escrow.send("reclaimAfterDeadline", JOB, by=actors.artist, gas=200_000)
    escrow.chain.set_next_block_timestamp(deadline + 1)
    with reverts_with("NotJobArtist"):
        escrow.send("reclaimAfterDeadline", JOB, by=actors.other_artist, gas=200_000)

    receipt = escrow.send("reclaimAfterDeadline", JOB, by=actors.artist)

    assert escrow.events(receipt, "Reclaimed") == [
        {
            "jobId": JOB,
            "artist": actors.artist.address,
            "paid": 2 * PRICE,
            "fee": 2 * FEE,
            "refunded": 8 * PER_FRAME,
        }
    ]
    assert escrow.balance_of(actors.artist.address) == ETHER - 2 * PER_FRAME
    assert escrow.view("credits", actors.fee_recipient.address) == 2 * FEE
    with reverts_with("JobAlreadyClosed"):
        escrow.send("reclaimAfterDeadline", JOB, by=actors.artist)
    with reverts_with("JobAlreadyClosed"):
        escrow.send("closeJob", JOB, by=actors.operator)


def test_reclaim_works_while_paused(escrow: Escrow, actors: Actors):
    job = funded_job(escrow, actors, frames=10)
    escrow.send("pause", by=actors.owner)
    escrow.chain.increase_time(DAY_S + 1)
    escrow.send("reclaimAfterDeadline", job, by=actors.artist)
    escrow.send("withdraw", ETHER, by=actors.artist)
    assert escrow.eth_balance() == 0


# ------------------------------------------------------------------ release cap and admin


def test_release_cap_per_period(escrow: Escrow, actors: Actors):
    job = funded_job(escrow, actors, frames=20)
    payee = actors.payees[0].address
    with reverts_with("NotOwner"):
        escrow.send("setReleaseCap", 3 * PRICE, DAY_S, by=actors.operator)
    receipt = escrow.send("setReleaseCap", 3 * PRICE, DAY_S, by=actors.owner)
    assert escrow.events(receipt, "ReleaseCapChanged") == [
        {"capPerPeriod": 3 * PRICE, "periodSeconds": DAY_S}
    ]

    escrow.release(job, [0, 1], [payee, payee])
    assert escrow.view("remainingReleaseCap") == PRICE
    with reverts_with("ReleaseCapExceeded"):
        escrow.release(job, [2, 3], [payee, payee])
    escrow.release(job, [2], [payee])
    with reverts_with("ReleaseCapExceeded"):
        escrow.release(job, [3], [payee])
    # A retry of paid frames releases nothing and so is not capped.
    escrow.release(job, [0, 1, 2], [payee] * 3)

    escrow.chain.increase_time(DAY_S)
    assert escrow.view("remainingReleaseCap") == 3 * PRICE
    escrow.release(job, [3, 4, 5], [payee] * 3)
    assert escrow.job(job)["framesPaid"] == 6


def test_admin_functions_are_owner_only(escrow: Escrow, actors: Actors):
    for name, args in (("pause", ()), ("unpause", ()), ("setOperator", (actors.stranger.address,))):
        with reverts_with("NotOwner"):
            escrow.send(name, *args, by=actors.operator)
    with reverts_with("ExpectedPause"):
        escrow.send("unpause", by=actors.owner)
    with reverts_with("ZeroAddress"):
        escrow.send("setOperator", "0x" + "00" * 20, by=actors.owner)
    with reverts_with("InvalidPeriod"):
        escrow.send("setReleaseCap", ETHER, 0, by=actors.owner)


def test_set_operator_hands_over_the_role(escrow: Escrow, actors: Actors):
    escrow.deposit(actors.artist, ETHER, cap=ETHER)
    new_operator = actors.stranger
    receipt = escrow.send("setOperator", new_operator.address, by=actors.owner)
    assert escrow.events(receipt, "OperatorChanged") == [
        {
            "previousOperator": actors.operator.address,
            "newOperator": Web3.to_checksum_address(new_operator.address),
        }
    ]
    with reverts_with("NotOperator"):
        escrow.lock(JOB, actors.artist, PRICE, 10)
    escrow.lock(JOB, actors.artist, PRICE, 10, by=new_operator)
