"""When the chain is unreachable, slow, or the operator has no RON for gas: the job
waits visibly in LOCKING with the reason, nothing is dispatched, nothing is half
paid, and it goes on by itself once the chain is back."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from eth_account import Account

from backend.errors import ChainUnavailable
from backend.escrow_chain import EscrowChain
from backend.extensions import db
from backend.models import Payment
from backend.services import payments
from backend.services.chain_access import escrow_chain
from tests.backend.helpers import JOBS, accept, claim, ready_scene, register

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

CHAIN_EXTENSION = "ronrender_escrow_chain"


class SlowRpcProxy:
    """Forwards JSON-RPC to the real chain after ``delay_s``: a congested or distant RPC."""

    def __init__(self, upstream: str, delay_s: float) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(proxy.delay_s)
                answer = requests.post(upstream, data=body, headers={"Content-Type": "application/json"})
                try:
                    self.send_response(answer.status_code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer.content)))
                    self.end_headers()
                    self.wfile.write(answer.content)
                except BrokenPipeError:
                    pass  # the impatient client gave up; the chain still got the request

            def log_message(self, *_args: object) -> None:
                pass

        self.delay_s = delay_s
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> SlowRpcProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()


@pytest.fixture
def locking_job(client, run_workers, scene_files, escrow) -> Iterator[dict]:
    """A job the artist accepted whose lock has not been sent yet."""
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    job = client.post(JOBS, json={"scene_sha256": sha256}).json
    assert accept(client, job["id"], escrow["artist_key"]).status_code == 202
    yield job


def use_chain(app, chain: EscrowChain) -> None:
    app.extensions[CHAIN_EXTENSION] = chain


def assert_waiting(client, job_id: str, reason: str) -> None:
    job = client.get(f"{JOBS}/{job_id}").json
    assert job["state"] == "LOCKING"
    assert job["lock_error"].startswith("waiting for the chain") and reason in job["lock_error"]
    assert claim(client, register(client)) is None  # nothing goes out before the lock
    lock = db.session.query(Payment).filter_by(job_id=job_id, kind="LOCK").one()
    assert lock.state in ("RECORDED", "SENT")  # never CONFIRMED without a receipt


def test_an_unreachable_chain_leaves_the_job_waiting_then_it_locks(app, client, locking_job):
    real = escrow_chain()
    use_chain(app, EscrowChain(dataclasses.replace(real.config, rpc_url="http://127.0.0.1:9")))
    with pytest.raises(ChainUnavailable, match="unreachable"):
        payments.lock_job(locking_job["id"])
    assert_waiting(client, locking_job["id"], "unreachable")

    use_chain(app, real)
    payments.lock_job(locking_job["id"])  # what the queued retry does
    assert client.get(f"{JOBS}/{locking_job['id']}").json["state"] == "RENDERING"


def test_a_slow_chain_is_waited_for_and_a_too_slow_one_retried(app, client, locking_job):
    real = escrow_chain()
    with SlowRpcProxy(real.config.rpc_url, delay_s=0.6) as proxy:
        impatient = dataclasses.replace(real.config, rpc_url=proxy.url, request_timeout_s=0.3)
        use_chain(app, EscrowChain(impatient))
        with pytest.raises(ChainUnavailable):
            payments.lock_job(locking_job["id"])
        assert_waiting(client, locking_job["id"], "")

        patient = dataclasses.replace(real.config, rpc_url=proxy.url, request_timeout_s=10)
        use_chain(app, EscrowChain(patient))
        payments.lock_job(locking_job["id"])
    job = client.get(f"{JOBS}/{locking_job['id']}").json
    assert (job["state"], job["lock_error"]) == ("RENDERING", None)
    assert real.read_job(locking_job["id"])["locked"] == int(job["estimate_wei"])  # locked once


def test_an_operator_without_gas_makes_the_job_wait_not_fail(app, client, run_workers, scene_files, chain):
    owner, _, fee_recipient, artist = chain.accounts[:4]
    broke_operator = Account.create()
    address = chain.deploy_escrow(broke_operator.address, fee_recipient.address, key=owner.key.to_0x_hex())
    contract = chain.contract(address)
    chain.transact(contract.functions.deposit(), artist.key.to_0x_hex(), value=10**18)
    chain.transact(contract.functions.setSpendingCap(10**18), artist.key.to_0x_hex())
    app.config.update(RONRENDER_ESCROW_ADDRESS=address, RONRENDER_OPERATOR_KEY=broke_operator.key.to_0x_hex())
    app.extensions.pop(CHAIN_EXTENSION, None)
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    job = client.post(JOBS, json={"scene_sha256": sha256}).json
    assert accept(client, job["id"], artist.key.to_0x_hex()).status_code == 202

    with pytest.raises(ChainUnavailable, match="too little RON for gas"):
        payments.lock_job(job["id"])
    assert_waiting(client, job["id"], "too little RON for gas")

    chain.fund(broke_operator.address, 10**18)
    payments.lock_job(job["id"])  # the retry resends the same signed transaction
    assert client.get(f"{JOBS}/{job['id']}").json["state"] == "RENDERING"
    assert escrow_chain().read_job(job["id"])["locked"] == int(job["estimate_wei"])
