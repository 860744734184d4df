"""Gas per job on a local anvil chain with the escrow freshly deployed: the
operator's ``lock`` of a 100-frame job, and ``releaseFrames`` of all 100 frames in
one batch (the backend's batch size) to 100 distinct, already funded payees,
divided by 100."""

from __future__ import annotations

from eth_account import Account

from scripts.bench.common import Section

FRAMES = 100
PRICE_PER_FRAME_WEI = 10**15
DEPOSIT_WEI = 10 * 10**18
DEADLINE_S = 86_400


def run(frames: int = FRAMES) -> Section:
    from local_chain import LocalChain

    section = Section()
    with LocalChain() as chain:
        owner, operator, fee_recipient, artist = chain.accounts[:4]
        address = chain.deploy_escrow(operator.address, fee_recipient.address, key=owner.key.to_0x_hex())
        escrow = chain.contract(address).functions
        artist_key, operator_key = artist.key.to_0x_hex(), operator.key.to_0x_hex()
        chain.transact(escrow.deposit(), artist_key, value=DEPOSIT_WEI)
        chain.transact(escrow.setSpendingCap(DEPOSIT_WEI), artist_key)
        job = (1).to_bytes(32, "big")
        deadline = chain.latest_timestamp() + DEADLINE_S
        lock = chain.transact(
            escrow.lock(job, artist.address, PRICE_PER_FRAME_WEI, frames, deadline), operator_key
        )
        payees = [Account.create().address for _ in range(frames)]
        for payee in payees:
            chain.fund(payee, 10**18)
        release = chain.transact(escrow.releaseFrames(job, list(range(frames)), payees), operator_key)
    section.figures["gas_lock"] = int(lock["gasUsed"])
    section.figures["gas_per_frame_batch100"] = round(release["gasUsed"] / frames)
    section.rows += [
        ("gas: lock a job", f"{lock['gasUsed']:,}", ""),
        (f"gas per frame, release batch of {frames}", f"{release['gasUsed'] / frames:,.0f}", ""),
    ]
    return section
