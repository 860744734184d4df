"""The escrow through the backend on a real local chain: the signed acceptance,
the lock as the gate, AWAITING_PAYMENT, per-frame releases read back from chain."""

from __future__ import annotations

import pytest
from web3 import Web3

from backend.extensions import db
from backend.models import Payment
from tests.backend.helpers import (
    JOBS,
    accept,
    claim,
    noise_png,
    put_output,
    ready_scene,
    register,
    rendering_job,
)

pytestmark = pytest.mark.integration


def test_chain_history_matches_the_books(client, run_workers, scene_files, tmp_path, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    payouts = ["0x" + "a1" * 20, "0x" + "b2" * 20]
    for number, payout in enumerate(payouts, start=1):
        assignment = claim(client, register(client, name=f"n{number}", payout_address=payout))
        put_output(client, assignment, noise_png(tmp_path / f"{number}.png", 64, 36, seed=number))
    run_workers()
    final = client.get(f"{JOBS}/{job['id']}").json
    assert final["state"] == "COMPLETED"
    on_chain = client.get(f"{JOBS}/{job['id']}/escrow").json
    price = int(job["price_per_frame_wei"])
    assert on_chain["paid_wei_by_node"] == {Web3.to_checksum_address(p): str(price) for p in payouts}
    assert int(on_chain["locked_wei"]) == int(job["estimate_wei"])
    paid = sum(int(v) for v in on_chain["paid_wei_by_node"].values())
    assert int(on_chain["locked_wei"]) == paid + int(on_chain["fee_wei"]) + int(on_chain["refunded_wei"])
    assert int(on_chain["refunded_wei"]) == 0  # every frame verified: nothing to give back
    books = {k: int(v) for k, v in final["money"].items()}
    assert books["release_wei"] == paid
    assert books["fee_wei"] == int(on_chain["fee_wei"])
    states = {p.state for p in db.session.query(Payment)}
    assert states == {"CONFIRMED"}
    assert len(on_chain["tx_hashes"]) >= 3  # lock, release batch(es), close


def test_no_balance_leaves_the_job_awaiting_payment(client, run_workers, scene_files, escrow, chain):
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    poor = chain.accounts[7]
    job = client.post(JOBS, json={"scene_sha256": sha256}).json
    assert accept(client, job["id"], poor.key.to_0x_hex()).status_code == 202
    run_workers()
    waiting = client.get(f"{JOBS}/{job['id']}").json
    assert waiting["state"] == "AWAITING_PAYMENT"
    assert "escrow balance is 0 wei" in waiting["lock_error"]
    assert claim(client, register(client)) is None  # nothing is dispatched

    contract = chain.contract(escrow["address"])
    chain.transact(contract.functions.deposit(), poor.key.to_0x_hex(), value=10**18)
    chain.transact(contract.functions.setSpendingCap(10**18), poor.key.to_0x_hex())
    assert accept(client, job["id"], poor.key.to_0x_hex()).status_code == 202
    run_workers()
    assert client.get(f"{JOBS}/{job['id']}").json["state"] == "RENDERING"


def test_a_cap_too_low_is_explained(client, run_workers, scene_files, escrow, chain):
    contract = chain.contract(escrow["address"])
    chain.transact(contract.functions.setSpendingCap(1), escrow["artist_key"])
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    job = client.post(JOBS, json={"scene_sha256": sha256}).json
    accept(client, job["id"], escrow["artist_key"])
    run_workers()
    waiting = client.get(f"{JOBS}/{job['id']}").json
    assert waiting["state"] == "AWAITING_PAYMENT"
    assert "spending cap is 1 wei" in waiting["lock_error"]


def test_acceptance_must_be_signed_by_the_artist(client, run_workers, scene_files, escrow, chain):
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    job = client.post(JOBS, json={"scene_sha256": sha256}).json
    impostor = chain.accounts[8]
    message = client.get(
        f"{JOBS}/{job['id']}/acceptance", query_string={"artist_address": escrow["artist_address"]}
    )
    from artist_cli.wallet import Wallet

    forged = Wallet(bytes(impostor.key)).sign_typed_data(message.json)
    response = client.post(
        f"{JOBS}/{job['id']}/accept", json={"artist_address": escrow["artist_address"], "signature": forged}
    )
    assert response.status_code == 422
    assert response.json["reason"] == "INVALID_SIGNATURE"
    assert client.get(f"{JOBS}/{job['id']}").json["state"] == "AWAITING_ACCEPTANCE"


def test_cancel_refunds_everything_on_chain(client, run_workers, scene_files, escrow, chain):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow)
    contract = chain.contract(escrow["address"])
    before = contract.functions.balanceOf(escrow["artist_address"]).call()
    client.post(f"{JOBS}/{job['id']}/cancel")
    run_workers()
    after = contract.functions.balanceOf(escrow["artist_address"]).call()
    assert after - before == int(job["estimate_wei"])
    on_chain = client.get(f"{JOBS}/{job['id']}/escrow").json
    assert on_chain["refunded_wei"] == job["estimate_wei"]
    assert on_chain["paid_wei_by_node"] == {}
