"""Rendering one frame in a supervised Blender child, reporting progress through a callback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from node_runner import defaults
from shared.protocol import FrameAssignment
from shared.render_progress import RenderProgress, parse_render_line
from shared.supervised_process import ProcessResult, run_supervised

RENDER_SCRIPT = Path(__file__).resolve().parent / "blender_child" / "render_frame.py"
OUTPUT_EXTENSIONS = {"PNG": ".png", "OPEN_EXR": ".exr"}


@dataclass(frozen=True)
class RenderResult:
    output_path: Path | None
    process: ProcessResult

    @property
    def failure_reason(self) -> str | None:
        if self.output_path is not None:
            return None
        if self.process.stopped_because:
            return f"render stopped: {self.process.stopped_because}"
        if self.process.exit_code != 0:
            return f"Blender exited with code {self.process.exit_code}"
        return "Blender wrote no output file"


def render_frame(
    assignment: FrameAssignment,
    scene_path: Path,
    work_dir: Path,
    *,
    blender_python: str,
    threads: int,
    on_progress: Callable[[RenderProgress], None],
    cancel: threading.Event,
) -> RenderResult:
    """Render the assigned frame into ``work_dir``."""
    settings = assignment.settings
    output_path = work_dir / f"frame_{assignment.frame_number:05d}{OUTPUT_EXTENSIONS[settings.output_format]}"
    settings_path = work_dir / "render.json"
    settings_path.write_text(
        json.dumps(
            {
                "scene_path": str(scene_path),
                "frame": assignment.frame_number,
                "output_path": str(output_path),
                "output_format": settings.output_format,
                "engine": settings.engine,
                "samples": settings.samples,
                "resolution_percentage": settings.resolution_percentage,
                "threads": threads,
            }
        )
    )

    def on_line(line: str) -> None:
        progress = parse_render_line(line)
        if progress is not None:
            on_progress(progress)

    process = run_supervised(
        [blender_python, str(RENDER_SCRIPT), str(settings_path)],
        on_line=on_line,
        max_time_s=assignment.time_limit_s,
        no_output_timeout_s=defaults.RENDER_NO_OUTPUT_TIMEOUT_S,
        cancel=cancel,
        cwd=str(work_dir),
    )
    produced = process.succeeded and output_path.is_file() and output_path.stat().st_size > 0
    return RenderResult(output_path=output_path if produced else None, process=process)
