"""An idle node's claim may be held until work appears: it is answered the moment a job's
lock is confirmed or a frame is handed back, instead of at the node's next poll."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from backend.queues import redis_connection
from tests.backend.helpers import JOBS, NODES, accept, claim, ready_scene, register

pytestmark = pytest.mark.integration

LONG_WAIT_S = 30  # far longer than the work takes to appear: only a wake-up answers in time


class HeldClaim(threading.Thread):
    """A claim sent on its own thread (the test client, like a node, waits for the answer)."""

    def __init__(self, client: Any, node_id: str, **body: Any) -> None:
        super().__init__(daemon=True)
        self.client, self.node_id, self.body = client, node_id, body
        self.response: Any = None

    def run(self) -> None:
        self.response = self.client.post(f"{NODES}/{self.node_id}/claim", json=self.body)

    def answer(self) -> Any:
        self.join(LONG_WAIT_S + 10)
        assert self.response is not None, "the held claim never answered"
        return self.response


def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def holding(app, count: int = 1) -> Callable[[], bool]:
    """Whether ``count`` claims are held: they listen on the channel work is announced on."""
    channel = f"{app.config['RONRENDER_QUEUE_PREFIX']}:work-appeared"
    return lambda: dict(redis_connection().pubsub_numsub(channel)).get(channel.encode(), 0) == count


def test_a_held_claim_takes_the_first_frame_the_moment_the_jobs_lock_is_confirmed(
    app, client, node_client, run_workers, scene_files, escrow
):
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    job = client.post(JOBS, json={"scene_sha256": sha256, "frame_start": 1, "frame_end": 2}).json
    node_id = register(node_client)
    held = HeldClaim(node_client, node_id, wait_s=LONG_WAIT_S, starts_at_once=True)
    held.start()
    until(holding(app))

    assert accept(client, job["id"], escrow["artist_key"]).status_code == 202
    run_workers()  # the lock is sent and confirmed: the job starts rendering

    answer = held.answer()
    assert answer.status_code == 200, answer.json
    assert answer.json["job_id"] == job["id"] and answer.json["frame_number"] == 1
    frames = client.get(f"{JOBS}/{job['id']}/frames").json["frames"]
    assert {f["number"]: f["state"] for f in frames} == {1: "RENDERING", 2: "PENDING"}
    assert holding(app, 0)()


def test_a_held_claim_takes_a_frame_another_node_hands_back(
    app, client, node_client, run_workers, scene_files, escrow
):
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    job = client.post(JOBS, json={"scene_sha256": sha256, "frame_start": 1, "frame_end": 1}).json
    assert accept(client, job["id"], escrow["artist_key"]).status_code == 202
    run_workers()
    first = register(client, name="first")
    taken = claim(client, first)
    second = register(node_client, name="second")
    held = HeldClaim(node_client, second, wait_s=LONG_WAIT_S)
    held.start()
    until(holding(app))

    released = client.post(
        f"/api/v1/attempts/{taken['attempt_id']}/release", headers={"X-Lease-Token": taken["lease_token"]}
    )
    assert released.status_code == 200, released.json

    answer = held.answer()
    assert answer.status_code == 200, answer.json
    assert answer.json["job_id"] == job["id"] and answer.json["frame_number"] == 1
    assert answer.json["attempt_id"] != taken["attempt_id"]


def test_a_claim_held_to_the_end_of_its_wait_says_ask_again_now(app, node_client):
    node_id = register(node_client)
    answer = node_client.post(f"{NODES}/{node_id}/claim", json={"wait_s": 0.2})
    assert answer.status_code == 204
    assert answer.headers["Retry-After"] == "0"
    assert holding(app, 0)()


def test_a_process_holding_all_the_claims_it_may_answers_the_next_at_once(app, node_client):
    app.config["RONRENDER_CLAIM_HOLD_SEATS"] = 1
    node_ids = [register(node_client, name=f"node-{i}") for i in range(2)]
    held = HeldClaim(node_client, node_ids[0], wait_s=5)
    held.start()
    until(holding(app))

    answer = node_client.post(f"{NODES}/{node_ids[1]}/claim", json={"wait_s": LONG_WAIT_S})
    assert answer.status_code == 204
    assert "Retry-After" not in answer.headers  # not held: the node waits its own interval
    first = held.answer()  # the seat's own claim was held to the end of its wait
    assert first.status_code == 204 and first.headers["Retry-After"] == "0"


def test_a_large_farm_holds_no_claims(app, node_client):
    app.config["RONRENDER_IDLE_CLAIMS_PER_S"] = 2  # 7 nodes are a large farm here
    node_ids = [register(node_client, name=f"node-{i}") for i in range(7)]
    answer = node_client.post(f"{NODES}/{node_ids[0]}/claim", json={"wait_s": LONG_WAIT_S})
    assert answer.status_code == 204
    assert answer.headers["Retry-After"] == "4"


@pytest.mark.parametrize("wait_s", [-1, 31, "soon"])
def test_a_wait_out_of_range_is_refused(node_client, wait_s):
    node_id = register(node_client)
    answer = node_client.post(f"{NODES}/{node_id}/claim", json={"wait_s": wait_s})
    assert answer.status_code == 422
    assert "wait_s" in str(answer.json)
