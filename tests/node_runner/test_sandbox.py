"""The render child's sandbox (bubblewrap): a scene whose Python runs anyway cannot
reach the network, read the node's keystore or write outside its job directory;
renders still work inside it; and a node without a sandbox refuses to start
unless its owner allows it."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from node_runner.config import NodeConfig
from node_runner.render import BlenderSession
from node_runner.sandbox import ResourceLimits, Sandbox, SandboxUnavailable
from node_runner.service import NodeService
from shared.image_checks import ExpectedImage, check_render_output
from tests.node_runner.test_blender_session import assignment, render

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent


@pytest.fixture
def keystore_dir():
    """The node's key folder, outside /tmp (the sandbox hides all of /tmp anyway)."""
    folder = Path("/var/tmp") / f"rr-keys-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "keystore.json").write_text('{"address": "secret"}')
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def listener():
    """A port on this machine that accepts connections: reachable, unless the network is gone."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture
def sandbox(keystore_dir) -> Sandbox:
    found = Sandbox.detect(hidden=[keystore_dir])
    assert found is not None, "bubblewrap must work here (Debian package bubblewrap)"
    return found


def run_scene_scripts(scene: Path, job_dir: Path, sandbox: Sandbox | None) -> dict:
    job_dir.mkdir(parents=True)
    argv = [sys.executable, str(HERE / "open_with_scripts.py"), str(scene)]
    if sandbox is not None:
        argv = sandbox.wrap(argv, writable=job_dir, needed=[scene, HERE / "open_with_scripts.py"])
    subprocess.run(argv, cwd=job_dir, check=True, capture_output=True, timeout=120)
    return json.loads((job_dir / "report.json").read_text())


def test_scene_code_in_the_sandbox_has_no_network_keys_or_writes_outside(
    sandbox, keystore_dir, listener, tmp_path
):
    secret = keystore_dir / "keystore.json"
    outside = keystore_dir.parent / f"escaped-{uuid.uuid4().hex[:8]}"
    scene = tmp_path / "hostile.blend"
    subprocess.run(
        [
            sys.executable,
            str(HERE / "make_hostile_scene.py"),
            str(scene),
            str(listener),
            str(secret),
            str(outside),
        ],
        check=True,
        capture_output=True,
    )
    try:
        # The control: unconfined, the same scene reaches all three.
        free = run_scene_scripts(scene, tmp_path / "unconfined", None)
        assert free["socket"] == "connected" and free["secret"] and free["outside"] == "written"
        outside.unlink()

        jailed = run_scene_scripts(scene, tmp_path / "job", sandbox)
        assert jailed["socket"] != "connected"
        assert "secret" not in jailed or not jailed["secret"]  # hidden: absent, or an empty file
        assert "outside" in jailed and jailed["outside"] != "written"
        assert not outside.exists()
    finally:
        outside.unlink(missing_ok=True)


def test_a_render_in_the_sandbox_works_and_keeps_scripts_off(sandbox, scene_files, tmp_path):
    session = BlenderSession(
        sys.executable, threads=1, work_dir=tmp_path / "node" / "slots" / "cpu0", sandbox=sandbox,
        limits=ResourceLimits(memory_bytes=0, output_bytes=256 * 1024 * 1024),
    )  # fmt: skip
    try:
        for frame in (1, 2):
            result, _ = render(session, scene_files["tiny"], assignment(frame), tmp_path / f"out{frame}")
            assert result.output_path is not None, result.log
            assert check_render_output(str(result.output_path), ExpectedImage("PNG", 64, 36)).accepted
        assert session.starts == 1
    finally:
        session.close()


def test_a_node_without_a_sandbox_refuses_to_start_unless_allowed(tmp_path):
    config = NodeConfig(
        backend_url="http://127.0.0.1:9", name="n", work_dir=tmp_path, payout_address="0x" + "1" * 40
    )
    with pytest.raises(SandboxUnavailable, match="--allow-unsandboxed"):
        NodeService(config, sandbox=None).run()
    allowed = NodeService(config.with_overrides(allow_unsandboxed=True, retry_window_s=0.1), sandbox=None)
    allowed.stop.set()  # it gets past the sandbox check, then stops at the unreachable backend
    thread = threading.Thread(target=lambda: _swallow(allowed.run))
    thread.start()
    thread.join(180)
    assert not thread.is_alive()
    assert allowed.sandbox is None


def _swallow(call) -> None:
    try:
        call()
    except Exception:
        pass


def test_the_staged_scene_is_read_only_to_the_child(sandbox, scene_files, tmp_path):
    session = BlenderSession(
        sys.executable, threads=1, work_dir=tmp_path / "node" / "slots" / "cpu0", sandbox=sandbox
    )
    try:
        result, _ = render(session, scene_files["tiny"], assignment(1), tmp_path / "out")
        assert result.output_path is not None, result.log
        (staged,) = session.scene_dir.iterdir()
        original = staged.read_bytes()
        for target in (staged, session.scene_dir / "swapped.blend", session.work_dir / "own.txt"):
            script = f"echo changed > {target}"
            subprocess.run(session.confined(["sh", "-c", script]), capture_output=True, timeout=60)
        assert staged.read_bytes() == original and not (session.scene_dir / "swapped.blend").exists()
        assert (session.work_dir / "own.txt").read_text() == "changed\n"  # the control: its own directory
    finally:
        session.close()
    assert list(session.scene_dir.iterdir()) == []  # closing drops the staged link
