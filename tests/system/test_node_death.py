"""A node killed mid-render: the sweep marks it OFFLINE, its frame goes to another
node at once, and the escrow pays only the node that rendered the verified image."""

from __future__ import annotations

import os
import signal
import time

import pytest
from web3 import Web3

from tests.conftest import make_scene
from tests.system.test_node_runner import frames, job_state, submit, wait_for

pytestmark = pytest.mark.system


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_killed_node_is_not_paid_and_its_frame_is_rendered_elsewhere(start_farm, tmp_path):
    scene = make_scene(
        tmp_path / "s.blend", "--frames", "6", "--width", "96", "--height", "54", "--samples", "256"
    )
    farm = start_farm(nodes=3, offline_after_s=3.0, sweep_interval_s=0.5)
    job_id = submit(farm, scene)
    victim = wait_for(
        lambda: next((f for f in frames(farm, job_id) if f["state"] == "RENDERING"), None),
        what="a frame to be rendering",
    )
    node = farm.admin_get(f"/api/v1/nodes/{victim['node_id']}")
    process = farm.processes[node["name"]]
    os.killpg(process.pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def reassigned() -> bool:
        frame = next(f for f in frames(farm, job_id) if f["number"] == victim["number"])
        return frame["node_id"] not in (None, victim["node_id"])

    wait_for(reassigned, timeout_s=60, what="the dropped frame to be reassigned")
    reassign_s = time.monotonic() - killed_at
    wait_for(lambda: job_state(farm, job_id)["state"] == "COMPLETED", timeout_s=240, what="the job")
    assert reassign_s < 30, reassign_s

    final = frames(farm, job_id)
    assert all(f["state"] == "VERIFIED" for f in final)
    dropped = next(f for f in final if f["number"] == victim["number"])
    assert dropped["node_id"] != victim["node_id"]
    dead = farm.admin_get(f"/api/v1/nodes/{victim['node_id']}")
    assert dead["state"] == "OFFLINE"
    assert dead["frames_dropped"] == 1

    settled = lambda: job_state(farm, job_id)["money"]["fee_wei"] != "0"  # noqa: E731
    wait_for(settled, timeout_s=60, what="the job to be closed on chain")
    on_chain = farm.admin_get(f"/api/v1/jobs/{job_id}/escrow")
    price = int(job_state(farm, job_id)["price_per_frame_wei"])
    verified_by = {}
    for frame in final:
        payout = farm.admin_get(f"/api/v1/nodes/{frame['node_id']}")["payout_address"]
        verified_by[Web3.to_checksum_address(payout)] = (
            verified_by.get(Web3.to_checksum_address(payout), 0) + price
        )
    assert {k: int(v) for k, v in on_chain["paid_wei_by_node"].items()} == verified_by
    paid = sum(verified_by.values())
    assert int(on_chain["locked_wei"]) == paid + int(on_chain["fee_wei"]) + int(on_chain["refunded_wei"])
