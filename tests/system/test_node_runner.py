"""The node service against a live backend: one download per scene, clean work
directory, SIGTERM hands the frame back, and a briefly unreachable backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from local_farm import LOCAL_KEYSTORE_PASSWORD

from artist_cli.artist_client import ArtistClient
from artist_cli.wallet import Wallet
from node_runner.service import NodeConfig, NodeService
from shared.key_wallet import KeyWallet
from tests.conftest import make_scene
from tests.identities import NODE_KEY
from tests.system.conftest import free_port

pytestmark = pytest.mark.system


def submit(farm, scene: Path, **request) -> str:
    """Upload, analyse, create and accept a job; returns its id."""
    client = ArtistClient(farm.url)
    wallet = Wallet.open(farm.artist_keystore, LOCAL_KEYSTORE_PASSWORD)
    client.sign_in_with(wallet)
    sha256 = client.upload_scene(scene, lambda _n: None)["sha256"]
    assert client.wait_for_scene(sha256)["state"] == "READY"
    job = client.create_job({"scene_sha256": sha256, **request})
    message = client.acceptance_message(job["id"], wallet.address)
    client.accept_job(job["id"], wallet.address, wallet.sign_typed_data(message))
    return job["id"]


def wait_for(predicate, timeout_s: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def job_state(farm, job_id: str) -> dict:
    return farm.admin_get(f"/api/v1/jobs/{job_id}")


def frames(farm, job_id: str) -> list[dict]:
    return farm.admin_get(f"/api/v1/jobs/{job_id}/frames")["frames"]


def start_node(url: str, work_dir: Path) -> tuple[NodeService, threading.Thread]:
    service = NodeService(
        NodeConfig(backend_url=url, name="in-process", work_dir=work_dir, threads=1, idle_poll_interval_s=0.2,
                   heartbeat_interval_s=1.0, wallet=KeyWallet(NODE_KEY))
    )  # fmt: skip
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    return service, thread


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_node_downloads_a_scene_once_and_cleans_up(start_farm, scene_files, tmp_path):
    farm = start_farm(nodes=0)
    job_id = submit(farm, scene_files["tiny"])
    service, thread = start_node(farm.url, tmp_path / "node")
    try:
        wait_for(lambda: job_state(farm, job_id)["state"] == "COMPLETED", what="the job to complete")
    finally:
        service.request_stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert service.frames_done == 4
    assert service.scenes.downloads == 1
    assert service.blender.starts == 1  # one Blender, kept up with the scene loaded, for all 4 frames
    assert {f["node_id"] for f in frames(farm, job_id)} == {service.node_id}
    assert not (tmp_path / "node" / "attempts").exists() or not any(
        (tmp_path / "node" / "attempts").iterdir()
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_node_waits_out_a_backend_that_is_not_up_yet(start_farm, scene_files, tmp_path):
    port = free_port()
    service, thread = start_node(f"http://127.0.0.1:{port}", tmp_path / "node")
    try:
        time.sleep(3)  # the node is retrying against a closed port
        assert thread.is_alive() and service.node_id is None
        farm = start_farm(nodes=0, port=port)
        job_id = submit(farm, scene_files["tiny"], frame_start=1, frame_end=1)
        wait_for(lambda: job_state(farm, job_id)["state"] == "COMPLETED", what="the job to complete")
        assert service.node_id is not None
    finally:
        service.request_stop()
        thread.join(timeout=30)


# Blender's own stop (3 s grace), the hand-back and a last beat; generous for a loaded CI box.
SIGTERM_EXIT_WITHIN_S = 60


def test_sigterm_hands_the_frame_back(start_farm, tmp_path):
    slow_scene = make_scene(
        tmp_path / "slow.blend", "--frames", "1", "--width", "160", "--height", "90", "--samples", "4000"
    )
    farm = start_farm(nodes=0)
    job_id = submit(farm, slow_scene)
    node_runner = str(Path(sys.executable).parent / "ronrender-node")
    node = subprocess.Popen(
        [node_runner, "run", "--backend", farm.url, "--name", "leaver",
         "--work-dir", str(tmp_path / "node"), "--threads", "1", "--heartbeat-interval", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "RONRENDER_NODE_KEY": NODE_KEY},
    )  # fmt: skip
    try:
        wait_for(lambda: frames(farm, job_id)[0]["state"] == "RENDERING", what="the render to start")
        node.send_signal(signal.SIGTERM)
        try:
            output, _ = node.communicate(timeout=SIGTERM_EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            node.kill()
            output, _ = node.communicate()
            pytest.fail(
                f"the node had not exited {SIGTERM_EXIT_WITHIN_S} s after SIGTERM; its log:\n{output}"
            )
    finally:
        if node.poll() is None:
            node.kill()
    assert node.returncode == 0, output
    assert "handed frame 1 back" in output
    frame = frames(farm, job_id)[0]
    assert (frame["state"], frame["failures"], frame["node_id"]) == ("PENDING", 0, None)
