"""The node provider's side against a live farm (HTTP backend, RQ workers, real
Blender children in the bubblewrap sandbox): two CPU slots render two frames at
once through the same path GPU slots take; the owner pauses, resumes and stops
after the frame from another terminal; a blocked job is never handed out; a
Blender that crashes mid-frame is classified and reported with its log tail; and
``ronrender-node status`` shows it all."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from node_runner import cli
from node_runner.backend_client import BackendClient, Claimed
from node_runner.config import NodeConfig
from node_runner.render import BlenderSession
from node_runner.service import NodeService
from node_runner.terms import Control, Waiting, read_control
from tests.conftest import make_scene
from tests.system.test_node_runner import frames, job_state, submit, wait_for

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def slow_scene(tmp_path_factory) -> Path:
    """Frames that take a few seconds each on one thread, so work can be caught mid-frame."""
    folder = tmp_path_factory.mktemp("slow")
    return make_scene(
        folder / "slow.blend", "--frames", "6", "--width", "160", "--height", "90", "--samples", "300"
    )


def configured_node(farm, tmp_path: Path, **settings) -> NodeConfig:
    """A node set up as an owner would: `init` writes the config (and a wallet), `run` loads it."""
    path = tmp_path / "node.toml"
    wallet = tmp_path / "wallet"
    result = CliRunner().invoke(
        cli.main,
        ["init", "--config", str(path), "--backend", farm.url, "--name", "test-node",
         "--work-dir", str(tmp_path / "node"), "--wallet-keystore", str(wallet / "keystore.json"),
         "--wallet-password-file", str(wallet / "password"), "--new-wallet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = cli.load(path, threads=1)
    return config.with_overrides(heartbeat_interval_s=1.0, idle_poll_interval_s=0.2, **settings)


def start(config: NodeConfig) -> tuple[NodeService, threading.Thread]:
    service = NodeService(config)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    return service, thread


def finish(service: NodeService, thread: threading.Thread) -> None:
    service.request_stop()
    thread.join(timeout=60)
    assert not thread.is_alive()


@pytest.fixture
def render_intervals(monkeypatch):
    """(slot thread, frame, start, end) of every render, read from the real BlenderSession."""
    intervals: list[tuple[str, int, float, float]] = []
    original = BlenderSession.render

    def recording(self, assignment, *args, **kwargs):
        started = time.monotonic()
        try:
            return original(self, assignment, *args, **kwargs)
        finally:
            intervals.append(
                (threading.current_thread().name, assignment.frame_number, started, time.monotonic())
            )

    monkeypatch.setattr(BlenderSession, "render", recording)
    return intervals


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_cpu_slots_render_two_frames_at_once(start_farm, scene_files, tmp_path, render_intervals):
    farm = start_farm(nodes=0)
    job_id = submit(farm, scene_files["tiny"])
    config = configured_node(farm, tmp_path, cpu_slots=2)
    service, thread = start(config)
    try:
        wait_for(lambda: job_state(farm, job_id)["state"] == "COMPLETED", what="the job to complete")
        status = CliRunner().invoke(cli.main, ["status", "--config", str(config.config_path)])
    finally:
        finish(service, thread)

    assert [slot.spec.name for slot in service.slots] == ["cpu0", "cpu1"]
    assert all(slot.frames_done >= 1 for slot in service.slots)  # both slots rendered
    assert service.frames_done == 4 and service.scenes.downloads == 1
    by_slot = {name for name, *_ in render_intervals}
    assert by_slot == {"slot-cpu0", "slot-cpu1"}
    overlapping = [
        (a, b)
        for a in render_intervals
        for b in render_intervals
        if a[0] < b[0] and a[2] < b[3] and b[2] < a[3]  # different slots, intervals intersect
    ]
    assert overlapping, render_intervals

    node = BackendClient(farm.url, threading.Event(), wallet=config.wallet).get_node(service.node_id)
    assert node["sandboxed"] is True and node["benchmark_ms"] >= 1  # the first-start benchmark
    assert [slot["name"] for slot in node["slots"]] == ["cpu0", "cpu1"]
    assert (config.work_dir / "benchmark.json").exists()  # later starts reuse it
    assert status.exit_code == 0, status.output
    assert "cpu0" in status.output and "cpu1" in status.output and "reputation" in status.output
    assert "RON confirmed on chain" in status.output  # from the backend's earnings endpoint


@pytest.fixture
def requests_sent(monkeypatch):
    """What the node asked the backend, in order: ("claim", got a frame), ("upload", got a
    frame), ("heartbeat", None)."""
    sent: list[tuple[str, bool | None]] = []
    claim, upload, heartbeat = BackendClient.claim, BackendClient.upload_output, BackendClient.heartbeat

    def claiming(self, *args, **kwargs):
        answer = claim(self, *args, **kwargs)
        sent.append(("claim", isinstance(answer, Claimed)))
        return answer

    def uploading(self, *args, **kwargs):
        answer = upload(self, *args, **kwargs)
        sent.append(("upload", isinstance(answer, Claimed)))
        return answer

    def beating(self, *args, **kwargs):
        sent.append(("heartbeat", None))
        return heartbeat(self, *args, **kwargs)

    monkeypatch.setattr(BackendClient, "claim", claiming)
    monkeypatch.setattr(BackendClient, "upload_output", uploading)
    monkeypatch.setattr(BackendClient, "heartbeat", beating)
    return sent


@pytest.fixture
def watch_frame_states(monkeypatch):
    """``watch_frame_states(farm)``: from then on, each render notes (frame, its state as
    the farm tells an admin) as it begins; returns that list."""

    def watch(farm) -> list[tuple[int, str]]:
        seen: list[tuple[int, str]] = []
        render = BlenderSession.render

        def noting_the_state(self, assignment, *args, **kwargs):
            states = {f["number"]: f["state"] for f in frames(farm, assignment.job_id)}
            seen.append((assignment.frame_number, states[assignment.frame_number]))
            return render(self, assignment, *args, **kwargs)

        monkeypatch.setattr(BlenderSession, "render", noting_the_state)
        return seen

    return watch


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_upload_claims_the_next_frame_and_no_frame_needs_a_beat_to_start(
    start_farm, scene_files, tmp_path, requests_sent, watch_frame_states
):
    farm = start_farm(nodes=0)
    states_at_render = watch_frame_states(farm)
    job_id = submit(farm, scene_files["tiny"])
    config = configured_node(farm, tmp_path).with_overrides(heartbeat_interval_s=600.0)
    service, thread = start(config)
    try:
        wait_for(lambda: job_state(farm, job_id)["state"] == "COMPLETED", what="the job to complete")
        frames_total = job_state(farm, job_id)["frames_total"]
        # the job can complete before the last upload's answer is back on the node
        wait_for(lambda: service.frames_done == frames_total, what="the last upload's answer")
        sent = list(requests_sent)
    finally:
        finish(service, thread)

    work = [entry for entry in sent if entry != ("claim", False)]  # idle polls
    # One claim; then every frame but the last comes with the previous one's upload. The
    # node starts what it is handed at once and says so: no beat, no claim.
    assert work == [("claim", True)] + [("upload", True)] * (frames_total - 1) + [("upload", False)]
    assert service.frames_done == frames_total
    # Every frame, the claimed one included, was RENDERING before its render began.
    assert [state for _, state in states_at_render] == ["RENDERING"] * frames_total


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pause_resume_and_stop_after_frame_mid_job(start_farm, slow_scene, tmp_path):
    farm = start_farm(nodes=0)
    job_id = submit(farm, slow_scene)
    config = configured_node(farm, tmp_path, run_benchmark=False)
    service, thread = start(config)
    owner = CliRunner()
    work_dir = ["--work-dir", str(config.work_dir)]
    try:
        wait_for(lambda: service.slots and service.slots[0].active, what="a frame to start")
        slot = service.slots[0]
        paused_frame = slot.active.assignment.frame_number
        assert owner.invoke(cli.main, ["pause", *work_dir]).exit_code == 0
        wait_for(lambda: slot.waiting == Waiting.PAUSED.value, what="the slot to pause")
        # The frame in flight was finished and uploaded, not dropped; nothing new was taken.
        assert slot.frames_done == 1
        states = {f["number"]: f["state"] for f in frames(farm, job_id)}
        assert states[paused_frame] != "PENDING" and "RENDERING" not in states.values()
        assert "paused by the owner" in owner.invoke(cli.main, ["status", *work_dir]).output

        assert owner.invoke(cli.main, ["resume", *work_dir]).exit_code == 0
        wait_for(lambda: slot.active, what="the slot to take a frame again")
        stopped_frame = slot.active.assignment.frame_number
        assert owner.invoke(cli.main, ["stop", "--after-frame", *work_dir]).exit_code == 0
        thread.join(timeout=120)
        assert not thread.is_alive()  # the node left by itself after its frame
    finally:
        finish(service, thread)
    assert slot.frames_done == 2
    states = {f["number"]: f["state"] for f in frames(farm, job_id)}
    assert states[stopped_frame] != "PENDING"  # finished and uploaded, not handed back
    assert sum(state == "PENDING" for state in states.values()) == 4
    assert read_control(config.work_dir) == Control.RUN  # the next start runs normally


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_blocked_job_is_never_handed_to_the_node(start_farm, scene_files, tmp_path):
    farm = start_farm(nodes=0)
    blocked_job = submit(farm, scene_files["tiny"], frame_start=1, frame_end=1)
    other_job = submit(farm, scene_files["tiny"], frame_start=2, frame_end=2)
    config = configured_node(farm, tmp_path, run_benchmark=False, blocked_jobs=(blocked_job,))
    service, thread = start(config)
    try:
        wait_for(lambda: frames(farm, other_job)[0]["state"] == "VERIFIED", what="the other job's frame")
    finally:
        finish(service, thread)
    assert service.frames_done == 1
    frame = frames(farm, blocked_job)[0]
    assert (frame["state"], frame["failures"], frame["node_id"]) == ("PENDING", 0, None)  # never claimed


def blender_pids(root_pid: int) -> list[int]:
    """The render server among the descendants of the sandbox the slot started."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        try:
            if b"render_server.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
        todo.extend(children.get(pid, []))
    return found


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_blender_crash_is_classified_and_reported_with_its_log(start_farm, slow_scene, tmp_path):
    farm = start_farm(nodes=0)
    job_id = submit(farm, slow_scene, frame_start=1, frame_end=1)
    config = configured_node(farm, tmp_path, run_benchmark=False)
    service, thread = start(config)
    try:
        wait_for(lambda: service.slots and service.slots[0].active, what="the render to start")
        slot = service.slots[0]
        wait_for(lambda: slot.active and slot.active.progress > 0, what="samples to render")
        session = slot.blender._process
        pids = wait_for(lambda: blender_pids(session.pid), what="the Blender child")
        os.kill(pids[0], signal.SIGSEGV)  # Blender crashes mid-frame
        wait_for(lambda: frames(farm, job_id)[0]["failures"] == 1, what="the failure report")
    finally:
        finish(service, thread)
    frame = frames(farm, job_id)[0]
    assert "CRASH: Blender crashed (SIGSEGV)" in frame["last_rejection"]
    with sqlite3.connect(farm.data_dir / "ronrender.db") as db:
        reason, log_tail = db.execute(
            "SELECT reason, log_tail FROM attempts WHERE reason IS NOT NULL"
        ).fetchone()
    assert reason.startswith("CRASH: ")
    assert "Sample" in log_tail  # Blender's own lines up to the crash
    kept = list((config.work_dir / "logs").glob("*.log"))
    assert len(kept) == 1 and "Sample" in kept[0].read_text()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_nodes_spot_check_each_others_frames(start_farm, scene_files):
    """Every frame is spot-checked: each is re-rendered in crops by the other node (of
    another wallet) before it is verified, and every frame ends verified and paid."""
    every_frame = {"RONRENDER_SPOT_CHECK_RATE": "1.0", "RONRENDER_SPOT_CHECK_RATE_NEW_NODES": "1.0"}
    farm = start_farm(nodes=2, extra_env=every_frame)
    # A frame is checked only if another node is online when it is verified: both first.
    farm.wait_for_nodes()
    job_id = submit(farm, scene_files["tiny"])
    wait_for(
        lambda: job_state(farm, job_id)["state"] == "COMPLETED", timeout_s=240, what="the job to complete"
    )

    assert [f["state"] for f in frames(farm, job_id)] == ["VERIFIED"] * 4
    with sqlite3.connect(farm.data_dir / "ronrender.db") as db:
        checks = db.execute(
            "SELECT f.number, s.state, checked.node_id, s.checker_node_id, checker.outcome"
            " FROM spot_checks s JOIN frames f ON f.id = s.frame_id"
            " JOIN attempts checked ON checked.id = s.checked_attempt_id"
            " JOIN attempts checker ON checker.id = s.checker_attempt_id ORDER BY f.number"
        ).fetchall()
        owners = dict(db.execute("SELECT id, owner_address FROM nodes").fetchall())
        paid = db.execute(
            "SELECT frame_number FROM payments WHERE kind = 'RELEASE' ORDER BY frame_number"
        ).fetchall()
    assert [number for number, *_ in checks] == [1, 2, 3, 4], checks
    for number, state, uploader, checker, checker_outcome in checks:
        assert state == "PASSED", (number, state)
        assert checker != uploader and owners[checker] != owners[uploader]
        assert checker_outcome == "VERIFIED"
    assert [number for (number,) in paid] == [1, 2, 3, 4]
