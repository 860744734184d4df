"""The node's Blender child, kept up across frames of a job: reused while the job
stays the same, replaced after a crash, a hang past the time limit, a cancel, or
a new job — and it never runs the scene's scripts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from node_runner import defaults
from node_runner import render as render_module
from node_runner.render import BlenderSession, _is_plain_file
from shared.image_checks import ExpectedImage, check_render_output
from shared.protocol import FrameAssignment, RenderSettings
from tests.conftest import make_scene

pytestmark = pytest.mark.integration


def assignment(
    frame: int, scene: str = "a" * 64, time_limit_s: int = 120, samples: int = 4
) -> FrameAssignment:
    return FrameAssignment(
        attempt_id=frame,
        lease_token="t",
        job_id="j",
        frame_number=frame,
        scene_sha256=scene,
        scene_size_bytes=1,
        settings=RenderSettings("PNG", "CYCLES", samples, 100, 64, 36),
        time_limit_s=time_limit_s,
    )


@pytest.fixture
def session(tmp_path):
    blender = BlenderSession(sys.executable, threads=1, work_dir=tmp_path / "blender")
    yield blender
    blender.close()


def render(session, scene: Path, job: FrameAssignment, out: Path, cancel=None):
    out.mkdir(parents=True, exist_ok=True)
    progress = []
    result = session.render(job, scene, out, on_progress=progress.append, cancel=cancel or threading.Event())
    return result, progress


def test_frames_of_one_job_share_one_blender(session, scene_files, tmp_path):
    for frame in (1, 2, 3):
        result, progress = render(session, scene_files["tiny"], assignment(frame), tmp_path / f"f{frame}")
        assert result.output_path is not None, result.process.log_tail
        assert check_render_output(str(result.output_path), ExpectedImage("PNG", 64, 36)).accepted
        assert progress and progress[-1].fraction == 1.0
    assert session.starts == 1
    render(session, scene_files["tiny"], assignment(4, scene="b" * 64), tmp_path / "other-job")
    assert session.starts == 2  # another job gets a fresh Blender


def test_an_idle_slot_has_blender_loaded_before_its_job_comes(session, scene_files, tmp_path, monkeypatch):
    monkeypatch.setattr(defaults, "RENDER_NO_OUTPUT_TIMEOUT_S", 2.0)
    session.prestart()
    spare = session._process
    assert session.starts == 1 and spare.poll() is None
    time.sleep(3.0)  # the spare sat quiet past the no-output limit: that is no hang
    result, progress = render(session, scene_files["tiny"], assignment(1), tmp_path / "a")
    assert result.output_path is not None, result.process.log_tail
    assert session._process is spare and session.starts == 1  # the spare rendered the frame
    assert progress and progress[-1].fraction == 1.0
    session.prestart()  # a child holding a scene is kept for that job's next frames
    assert session._process is spare
    render(session, scene_files["tiny"], assignment(2, scene="b" * 64), tmp_path / "b")
    assert session._process is not spare and spare.poll() is not None and session.starts == 2


def test_a_spare_that_dies_unused_is_not_restarted_until_a_frame_needs_blender(
    session, scene_files, tmp_path
):
    session.prestart()
    os.killpg(session._process.pid, signal.SIGKILL)
    session._process.wait()
    session.prestart()  # no restart loop of a Blender that cannot stay up
    session.prestart()
    assert session._process is None and session.starts == 1
    result, _ = render(session, scene_files["tiny"], assignment(1), tmp_path / "a")
    assert result.output_path is not None and session.starts == 2  # a frame starts one; it works...
    session.close()
    session.prestart()  # ...so spares are tried again
    assert session._process is not None and session.starts == 3


def test_a_child_idle_with_an_old_scene_gives_way_to_a_spare(session, scene_files, tmp_path, monkeypatch):
    render(session, scene_files["tiny"], assignment(1), tmp_path / "a")
    loaded = session._process
    session.prestart()
    assert session._process is loaded  # recently used: kept for the job's next frame
    monkeypatch.setattr(render_module, "LOADED_IDLE_S", 0.0)
    session.prestart()
    assert session._process is not loaded and loaded.poll() is not None and session._key is None
    assert list(session.scene_dir.iterdir()) == []


def test_a_spare_that_cannot_start_leaves_the_slot_running(tmp_path):
    broken = BlenderSession(str(tmp_path / "no-such-python"), threads=1, work_dir=tmp_path / "blender")
    broken.prestart()
    if broken._process is not None:  # started (stdbuf runs), then failed to run Blender
        broken._process.wait(timeout=30)
    for _ in range(3):
        broken.prestart()  # logs once, then leaves it to the next frame (which says why)
    assert broken._process is None and broken.starts <= 1


def test_a_slot_told_not_to_prestart_loads_blender_only_for_a_frame(tmp_path):
    lazy = BlenderSession(sys.executable, threads=1, work_dir=tmp_path / "blender", prestart=False)
    lazy.prestart()
    assert lazy._process is None and lazy.starts == 0


def test_a_crashed_blender_is_replaced(session, scene_files, tmp_path):
    render(session, scene_files["tiny"], assignment(1), tmp_path / "a")
    os.killpg(session._process.pid, signal.SIGKILL)
    result, _ = render(session, scene_files["tiny"], assignment(2), tmp_path / "b")
    assert result.output_path is None  # the dead one is noticed...
    result, _ = render(session, scene_files["tiny"], assignment(2), tmp_path / "c")
    assert result.output_path is not None  # ...and replaced
    assert session.starts == 2


def test_a_render_past_its_time_limit_is_stopped(session, tmp_path):
    slow = make_scene(
        tmp_path / "slow.blend", "--frames", "1", "--width", "320", "--height", "180", "--samples", "4000"
    )
    job = assignment(1, time_limit_s=1, samples=None)
    result, _ = render(session, slow, job, tmp_path / "out")
    assert result.output_path is None
    assert result.failure_reason == "render stopped: max_time"
    assert result.process.wall_s < 30


def test_scene_scripts_never_run(session, tmp_path):
    marker = tmp_path / "pwned"
    scene = tmp_path / "scripted.blend"
    helper = Path(__file__).parent / "make_scripted_scene.py"
    subprocess.run([sys.executable, str(helper), str(scene), str(marker)], check=True, capture_output=True)
    # The control: Blender with scripts allowed does run them.
    trusting = (
        f"import bpy, os; bpy.ops.wm.open_mainfile(filepath={str(scene)!r}, use_scripts=True); "
        "bpy.context.scene.frame_set(1); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", trusting], check=True, capture_output=True, timeout=120)
    assert marker.exists()
    marker.unlink()

    result, _ = render(session, scene, assignment(1), tmp_path / "out")
    assert result.output_path is not None, result.process.log_tail
    assert not marker.exists()


def test_only_a_plain_file_counts_as_the_childs_output(tmp_path):
    """A link would make the node upload whatever it points at (a file the sandbox hides)."""
    secret = tmp_path / "wallet.json"
    secret.write_text("key")
    link = tmp_path / "frame_00001.png"
    link.symlink_to(secret)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert not _is_plain_file(link) and not _is_plain_file(empty) and not _is_plain_file(tmp_path / "none")
    assert _is_plain_file(secret)
