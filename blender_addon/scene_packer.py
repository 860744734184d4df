"""Running the packing child (``blender_child/pack_scene.py``) from a worker
thread, with a time limit and a stop button. No bpy module use.

The main thread writes a plain copy of the open scene (``PackPlan.copy_path``);
everything slow (packing, compressing) happens in the child Blender process, so
the artist's session and saved file are never touched.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import defaults
from .errors import Cancelled, PackingError

CHILD_SCRIPT = Path(__file__).resolve().parent / "blender_child" / "pack_scene.py"


@dataclass(frozen=True)
class PackPlan:
    """What the main thread prepared: a copy of the scene in a private work folder,
    and how to start a Blender that runs a script (``argv`` + script + ``--`` + args)."""

    work_dir: Path
    copy_path: Path
    blender_argv: tuple[str, ...]

    @property
    def output_path(self) -> Path:
        return self.work_dir / "packed.blend"

    @property
    def result_path(self) -> Path:
        return self.work_dir / "pack_result.json"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "pack.log"


def describe_problems(problems: list[dict[str, str]]) -> list[str]:
    """One line per file that could not be packed, for the artist."""
    lines = []
    for problem in problems:
        what = f"{problem.get('kind', 'file').replace('_', ' ')} '{problem.get('name', '')}'"
        if problem.get("path"):
            what += f" ({problem['path']})"
        lines.append(f"{what}: {problem.get('why', 'cannot be packed')}")
    return lines


def pack_scene(
    plan: PackPlan,
    cancelled: Callable[[], bool],
    time_limit_s: float = defaults.PACK_TIME_LIMIT_S,
) -> Path:
    """Run the child; return the packed file, or raise ``PackingError`` naming the
    files that could not be packed and why."""
    argv = [*plan.blender_argv, str(CHILD_SCRIPT), "--", str(plan.copy_path), str(plan.output_path)]
    argv.append(str(plan.result_path))
    deadline = time.monotonic() + time_limit_s
    with open(plan.log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            while process.poll() is None:
                if cancelled():
                    raise Cancelled("packing was stopped")
                if time.monotonic() > deadline:
                    raise PackingError(f"packing the scene took longer than {time_limit_s:.0f} s")
                time.sleep(defaults.PACK_POLL_INTERVAL_S)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    result = _read_result(plan)
    if result is None:
        raise PackingError(
            f"the packing Blender exited with code {process.returncode} without a result: {_log_tail(plan)}"
        )
    if result.get("error"):
        raise PackingError(f"the packing Blender failed: {result['error']}")
    if not result.get("ok"):
        problems = result.get("problems", [])
        lines = describe_problems(problems)
        raise PackingError(
            f"{len(problems)} file(s) of the scene cannot be packed: " + "; ".join(lines), problems
        )
    if not plan.output_path.is_file():
        raise PackingError(f"the packing Blender wrote no file: {_log_tail(plan)}")
    return plan.output_path


def _read_result(plan: PackPlan) -> dict | None:
    try:
        return json.loads(plan.result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _log_tail(plan: PackPlan) -> str:
    try:
        text = plan.log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return text[-defaults.PACK_LOG_TAIL_CHARS :].strip() or "(empty log)"
