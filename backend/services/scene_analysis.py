"""Opening a scene file with Blender in a child process to read what a job needs:
frame range, resolution, engine, samples, output format and missing files.

A worker that serves the analysis queue keeps the next analysis's Blender loaded
(``keep_blender_ready``): an upload's analysis then only opens the scene, instead of
first loading Blender (about 0.4 s). Each scene still gets a fresh child. After an
analysis the next child loads once the worker has been idle for
RONRENDER_ANALYSIS_PRELOAD_AFTER_S: the job just analysed usually starts rendering
then, and where nodes share the machine (a local farm) a loading Blender would slow
its first frames.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from flask import current_app

from backend import defaults
from backend.extensions import db
from backend.models import SceneFile
from backend.services.scene_intake import storage
from shared.image_checks import ExpectedImage, RejectionReason, check_render_output, describe_file
from shared.states import SceneState
from shared.supervised_process import ProcessResult, run_started, run_supervised, start_waiting

INSPECT_SCRIPT = Path(__file__).resolve().parent.parent / "blender_child" / "inspect_scene.py"

log = logging.getLogger(__name__)

_ready: tuple[subprocess.Popen[str], Path] | None = None  # the next analysis child, loaded; its directory
_keep_ready = False
_ready_lock = threading.Lock()  # the child is loaded later on a timer's thread
_load_timer: threading.Timer | None = None


def keep_blender_ready() -> None:
    """From now on, have the next analysis's Blender loaded ahead of need (a worker of the
    analysis queue calls this as it starts; it costs a waiting child of about 100 MB)."""
    global _keep_ready
    _keep_ready = True
    _start_next(blender_python())


def _start_next_later(delay_s: float) -> None:
    """Load the next analysis child once the worker has been idle for ``delay_s``."""
    global _load_timer
    _cancel_load()
    if not _keep_ready:
        return
    _load_timer = threading.Timer(delay_s, _start_next, args=(blender_python(),))  # outside the app
    _load_timer.daemon = True
    _load_timer.start()


def _cancel_load() -> None:
    global _load_timer
    if _load_timer is not None:
        _load_timer.cancel()
        _load_timer = None


def _start_next(python: str) -> None:
    """Load the next analysis child, unless one waits; failing that, analyses start their own."""
    with _ready_lock:
        _load_next(python)


def _load_next(python: str) -> None:
    global _ready
    if not _keep_ready or (_ready is not None and _ready[0].poll() is None):
        return
    _drop_ready()
    work_dir = Path(tempfile.mkdtemp(prefix="ronrender-analysis-"))  # its cwd, as a new child's
    try:
        process = start_waiting(
            [python, str(INSPECT_SCRIPT), "--wait"],
            cwd=str(work_dir),
            niceness=defaults.ANALYSIS_NICENESS,
        )
    except OSError as error:
        shutil.rmtree(work_dir, ignore_errors=True)
        log.warning("could not load Blender ahead of the next analysis: %s", error)
        return
    _ready = (process, work_dir)


def _drop_ready() -> None:
    global _ready
    if _ready is not None:
        process, work_dir = _ready
        _ready = None
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        shutil.rmtree(work_dir, ignore_errors=True)


def _inspect(scene_path: Path, result_path: Path, work_dir: str) -> ProcessResult:
    """Run the inspection in the child loaded ahead, or in a new one."""
    global _ready
    _cancel_load()
    with _ready_lock:
        ready, _ready = _ready, None
    arguments = [str(scene_path), str(result_path)]
    try:
        if ready is not None:
            try:
                return run_started(ready[0], arguments, max_time_s=defaults.ANALYSIS_TIME_LIMIT_S)
            except BrokenPipeError:  # it died while it waited: not this scene's doing
                log.warning("the Blender loaded ahead had exited; analysing in a new one")
        return run_supervised(
            [blender_python(), str(INSPECT_SCRIPT), *arguments],
            max_time_s=defaults.ANALYSIS_TIME_LIMIT_S,
            cwd=work_dir,
            niceness=defaults.ANALYSIS_NICENESS,
        )
    finally:
        if ready is not None:
            shutil.rmtree(ready[1], ignore_errors=True)
        _start_next_later(current_app.config["RONRENDER_ANALYSIS_PRELOAD_AFTER_S"])


def blender_python() -> str:
    """The Python that has ``bpy`` installed (the backend's own by default)."""
    return current_app.config.get("RONRENDER_BLENDER_PYTHON") or sys.executable


def _probe_is_blank(path: Path) -> bool:
    """Whether the reference render is one constant colour: then a constant frame is
    the truth, not a cheat (the verifier's blank rule)."""
    verdict = check_render_output(str(path), ExpectedImage("PNG", *describe_file(str(path))[1:]))
    return verdict.reason == RejectionReason.BLANK


def analyze_scene(sha256: str) -> None:
    """Record the scene's settings, or mark it INVALID and drop its bytes."""
    scene = db.session.get(SceneFile, sha256)
    if scene is None or scene.state != SceneState.ANALYZING:
        return
    store = storage()
    with tempfile.TemporaryDirectory(prefix="ronrender-analysis-") as work_dir:
        result_path = Path(work_dir) / "scene.json"
        process = _inspect(store.path_for(sha256), result_path, work_dir)
        result = json.loads(result_path.read_text()) if result_path.is_file() else None
        probe_path = Path(work_dir) / "probe.png"
        if result is not None and result["ok"] and "probe" in result["scene"] and probe_path.is_file():
            result["scene"]["probe"]["blank"] = _probe_is_blank(probe_path)
    if result is not None and result["ok"]:
        scene.state = SceneState.READY
        scene.analysis = result["scene"]
    else:
        scene.state = SceneState.INVALID
        if result is not None:
            scene.error = f"Blender could not open the file: {result['error']}"
        else:
            reason = process.stopped_because or f"exit code {process.exit_code}"
            scene.error = f"Blender could not open the file ({reason})"
        store.delete(sha256)
    db.session.commit()
