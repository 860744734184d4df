"""The escrow through the backend on a real local chain: the signed acceptance,
the lock as the gate, AWAITING_PAYMENT, per-frame releases read back from chain."""

from __future__ import annotations

import dataclasses

import pytest

from artist_cli.wallet import Wallet
from backend.errors import ChainUnavailable
from backend.escrow_chain import EscrowChain
from backend.extensions import db
from backend.models import Payment
from backend.services import payments, verification
from backend.services.chain_access import escrow_chain
from tests.backend.helpers import (
    JOBS,
    accept,
    black_png,
    claim,
    noise_png,
    put_output,
    ready_scene,
    register,
    rendering_job,
)
from tests.identities import signed_in_client, wallet_client

pytestmark = pytest.mark.integration


def test_chain_history_matches_the_books(app, client, run_workers, scene_files, tmp_path, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    payouts = []
    for number in (1, 2):
        node_client, payout = wallet_client(app, f"node-{number}")
        payouts.append(payout)
        assignment = claim(node_client, register(node_client, name=f"n{number}"))
        put_output(node_client, assignment, noise_png(tmp_path / f"{number}.png", 64, 36, seed=number))
    run_workers()
    final = client.get(f"{JOBS}/{job['id']}").json
    assert final["state"] == "COMPLETED"
    on_chain = client.get(f"{JOBS}/{job['id']}/escrow").json
    price = int(job["price_per_frame_wei"])
    assert on_chain["paid_wei_by_node"] == {p: str(price) for p in payouts}
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


def test_no_balance_leaves_the_job_awaiting_payment(app, run_workers, scene_files, escrow, chain):
    poor = chain.accounts[7]
    client = signed_in_client(app, poor.key.to_0x_hex())
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
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


def test_a_rejected_frame_is_paid_once_to_the_node_that_rerendered_it(
    app, client, run_workers, scene_files, tmp_path, escrow
):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    cheater_client, _ = wallet_client(app, "cheater")
    honest_client, honest_payout = wallet_client(app, "honest")
    cheater = register(cheater_client, name="cheater")
    honest = register(honest_client, name="honest")
    first = claim(cheater_client, cheater)
    put_output(cheater_client, first, black_png(tmp_path / "black.png", 64, 36))
    run_workers()
    second = claim(honest_client, honest)
    assert second["frame_number"] == 1
    put_output(honest_client, second, noise_png(tmp_path / "good.png", 64, 36))
    run_workers()
    on_chain = client.get(f"{JOBS}/{job['id']}/escrow").json
    assert on_chain["paid_wei_by_node"] == {honest_payout: job["price_per_frame_wei"]}


def test_a_crash_after_recording_a_release_resends_the_same_transaction(
    app, client, run_workers, scene_files, tmp_path, escrow, monkeypatch
):
    """The worker died after signing and recording a release, before sending it."""
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    assignment = claim(client, register(client))
    put_output(client, assignment, noise_png(tmp_path / "good.png", 64, 36))
    verification.verify_attempt(assignment["attempt_id"])  # records the release
    chain = escrow_chain()
    impatient = EscrowChain(dataclasses.replace(chain.config, receipt_timeout_s=0.5))
    monkeypatch.setitem(app.extensions, "ronrender_escrow_chain", impatient)
    monkeypatch.setattr(impatient, "send", lambda prepared: None)  # the crash: nothing reaches the chain
    with pytest.raises(ChainUnavailable, match="not confirmed"):
        payments.send_releases(job["id"])
    recorded = db.session.query(Payment).filter_by(kind="RELEASE").one()
    assert recorded.state == "SENT" and recorded.tx_hash
    tx_hash = recorded.tx_hash

    monkeypatch.setitem(app.extensions, "ronrender_escrow_chain", chain)
    payments.send_releases(job["id"])  # the retry resends the very same signed transaction
    db.session.refresh(recorded)
    assert (recorded.state, recorded.tx_hash) == ("CONFIRMED", tx_hash)
    on_chain = client.get(f"{JOBS}/{job['id']}/escrow").json
    assert on_chain["paid_wei_by_node"] == {escrow["artist_address"]: job["price_per_frame_wei"]}
    assert tx_hash in on_chain["tx_hashes"]


def test_frames_verified_within_the_release_window_share_one_transaction(
    app, client, run_workers, scene_files, tmp_path, escrow, monkeypatch
):
    from rq.registry import ScheduledJobRegistry

    from backend import defaults
    from backend.queues import get_queue

    monkeypatch.setitem(app.config, "RONRENDER_RELEASE_WINDOW_S", 2.0)
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=3)
    node = register(client)
    for number in (1, 2):
        assignment = claim(client, node)
        put_output(client, assignment, noise_png(tmp_path / f"{number}.png", 64, 36, seed=number))
        verification.verify_attempt(assignment["attempt_id"])  # records the frame's release
    escrow_queue = get_queue(defaults.ESCROW_QUEUE)
    waiting = ScheduledJobRegistry(queue=escrow_queue)
    assert escrow_queue.count == 0 and len(waiting.get_job_ids()) == 1  # one send waits for both

    send = escrow_queue.fetch_job(waiting.get_job_ids()[0])
    waiting.remove(send)
    escrow_queue.enqueue_job(send)  # as the scheduler does once the window is over
    run_workers()
    released = db.session.query(Payment).filter_by(kind="RELEASE").all()
    assert len(released) == 2 and {p.state for p in released} == {"CONFIRMED"}
    assert len({p.tx_hash for p in released}) == 1
    on_chain = client.get(f"{JOBS}/{job['id']}/escrow").json
    two_frames = str(2 * int(job["price_per_frame_wei"]))
    assert on_chain["paid_wei_by_node"] == {escrow["artist_address"]: two_frames}

    assignment = claim(client, node)  # a release recorded after that send started waits for the next
    put_output(client, assignment, noise_png(tmp_path / "3.png", 64, 36, seed=3))
    verification.verify_attempt(assignment["attempt_id"])
    assert len(waiting.get_job_ids()) == 1


def test_a_chain_id_mismatch_is_refused(app, client):
    app.config["RONRENDER_CHAIN_ID"] = 2020  # configured for Ronin mainnet, pointed at the dev chain
    app.extensions.pop("ronrender_escrow_chain", None)
    response = client.get("/api/v1/escrow")
    assert response.status_code == 422
    assert response.json["reason"] == "CHAIN_REJECTED"
    assert "not the configured 2020" in response.json["message"]


def test_escrow_info_and_wallet_balance(client, escrow):
    info = client.get("/api/v1/escrow").json
    assert info["contract_address"] == escrow["address"]
    assert info["fee_bps"] == 500
    assert any(entry.get("name") == "deposit" for entry in info["abi"])
    wallet = client.get(f"/api/v1/escrow/wallets/{escrow['artist_address']}").json
    assert wallet["free_balance_wei"] == str(100 * 10**18)
    assert client.get("/api/v1/escrow/wallets/not-an-address").status_code == 400


def test_jobs_are_listed_by_artist(client, run_workers, scene_files, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    mine = client.get(JOBS, query_string={"artist_address": escrow["artist_address"].lower()}).json["jobs"]
    assert [j["id"] for j in mine] == [job["id"]]
    theirs = client.get(JOBS, query_string={"artist_address": "0x" + "99" * 20}).json["jobs"]
    assert theirs == []
