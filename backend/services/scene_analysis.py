"""Opening a scene file with Blender in a child process to read what a job needs:
frame range, resolution, engine, samples, output format and missing files.

A worker that serves the analysis queue keeps the next analysis's Blender loaded
(``keep_blender_ready``): an upload's analysis then only opens the scene, instead of
first loading Blender (about 0.4 s). Each scene still gets a fresh child.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
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


_ready: subprocess.Popen[str] | None = None  # this process's next analysis child, Blender loaded
_keep_ready = False


def keep_blender_ready() -> None:
    """From now on, have the next analysis's Blender loaded ahead of need (a worker of the
    analysis queue calls this as it starts; it costs a waiting child of about 100 MB)."""
    global _keep_ready
    _keep_ready = True
    _start_next()


def _start_next() -> None:
    global _ready
    if _keep_ready and (_ready is None or _ready.poll() is not None):
        _ready = start_waiting([blender_python(), str(INSPECT_SCRIPT), "--wait"])


def _inspect(scene_path: Path, result_path: Path, work_dir: str) -> ProcessResult:
    """Run the inspection in the child loaded ahead, or in a new one."""
    global _ready
    ready, _ready = _ready, None
    if ready is not None and ready.poll() is None:
        process = run_started(
            ready, [str(scene_path), str(result_path)], max_time_s=defaults.ANALYSIS_TIME_LIMIT_S
        )
    else:
        process = run_supervised(
            [blender_python(), str(INSPECT_SCRIPT), str(scene_path), str(result_path)],
            max_time_s=defaults.ANALYSIS_TIME_LIMIT_S,
            cwd=work_dir,
        )
    _start_next()
    return process


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
