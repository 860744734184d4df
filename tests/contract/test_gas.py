"""Gas budgets of the two calls the operator makes for every job: lock and releaseFrames."""

from __future__ import annotations

import pytest
from eth_account import Account

from tests.contract.escrow_driver import ETHER, Actors, Escrow, job_id

pytestmark = pytest.mark.contract

LOCK_GAS_MAX = 120_000
RELEASE_GAS_PER_FRAME_MAX = 35_000
FRAMES = 100
PRICE = 10**15


def funded_payees(escrow: Escrow, count: int) -> list[str]:
    """Fresh accounts that already hold some RON, as node providers' wallets would."""
    payees = [Account.create().address for _ in range(count)]
    for payee in payees:
        escrow.chain.fund(payee, ETHER)
    return payees


def test_lock_gas(escrow: Escrow, actors: Actors):
    escrow.deposit(actors.artist, 10 * ETHER, cap=10 * ETHER)
    gas = [escrow.lock(job_id(n), actors.artist, PRICE, FRAMES)["gasUsed"] for n in (1, 2)]
    print(f"\nlock gas: first {gas[0]}, second {gas[1]}")
    assert max(gas) <= LOCK_GAS_MAX


@pytest.mark.parametrize("distinct_payees", [100, 4, 1])
def test_release_gas_per_frame(escrow: Escrow, actors: Actors, distinct_payees: int):
    escrow.deposit(actors.artist, 10 * ETHER, cap=10 * ETHER)
    escrow.lock(job_id(1), actors.artist, PRICE, FRAMES)
    payees = funded_payees(escrow, distinct_payees)
    batch = [payees[i % distinct_payees] for i in range(FRAMES)]

    receipt = escrow.release(job_id(1), list(range(FRAMES)), batch)
    retry = escrow.release(job_id(1), list(range(FRAMES)), batch)

    per_frame = receipt["gasUsed"] / FRAMES
    print(
        f"\nreleaseFrames({FRAMES}) to {distinct_payees} payee(s): {receipt['gasUsed']} gas, "
        f"{per_frame:.0f} per frame; retry of the same batch {retry['gasUsed']} gas"
    )
    assert escrow.job(job_id(1))["framesPaid"] == FRAMES
    assert per_frame <= RELEASE_GAS_PER_FRAME_MAX
