"""Opening a scene file with Blender in a child process to read what a job needs:
frame range, resolution, engine, samples, output format and missing files."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from flask import current_app

from backend import defaults
from backend.extensions import db
from backend.models import SceneFile
from backend.services.scene_intake import storage
from shared.states import SceneState
from shared.supervised_process import run_supervised

INSPECT_SCRIPT = Path(__file__).resolve().parent.parent / "blender_child" / "inspect_scene.py"


def blender_python() -> str:
    """The Python that has ``bpy`` installed (the backend's own by default)."""
    return current_app.config.get("RONRENDER_BLENDER_PYTHON") or sys.executable


def analyze_scene(sha256: str) -> None:
    """Record the scene's settings, or mark it INVALID and drop its bytes."""
    scene = db.session.get(SceneFile, sha256)
    if scene is None or scene.state != SceneState.ANALYZING:
        return
    store = storage()
    with tempfile.TemporaryDirectory(prefix="ronrender-analysis-") as work_dir:
        result_path = Path(work_dir) / "scene.json"
        process = run_supervised(
            [blender_python(), str(INSPECT_SCRIPT), str(store.path_for(sha256)), str(result_path)],
            max_time_s=defaults.ANALYSIS_TIME_LIMIT_S,
            cwd=work_dir,
        )
        result = json.loads(result_path.read_text()) if result_path.is_file() else None
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
