"""Parsing Blender's render log lines into progress, as a pure function."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FRAME = re.compile(r"^Fra:(?P<frame>-?\d+)\s")
_SAMPLE = re.compile(r"\|\s*Sample (?P<done>\d+)/(?P<total>\d+)")
_SAVED = re.compile(r"^Saved: '(?P<path>.+)'")


@dataclass(frozen=True)
class RenderProgress:
    """Progress read from one log line; ``fraction`` is in [0, 1]."""

    frame: int | None
    fraction: float
    detail: str


def parse_render_line(line: str) -> RenderProgress | None:
    """Read progress from one line of Blender's output, or None if it has none.

    Cycles prints ``Fra:3 Mem:... | Scene, ViewLayer | Sample 5/16``; the last
    field names the phase. A ``Saved: '...'`` line means the image is written.
    """
    line = line.strip()
    if _SAVED.match(line):
        return RenderProgress(frame=None, fraction=1.0, detail="saved")
    frame_match = _FRAME.match(line)
    if not frame_match:
        return None
    frame = int(frame_match.group("frame"))
    phase = line.rsplit("|", 1)[-1].strip()
    sample = _SAMPLE.search(line)
    if sample:
        total = int(sample.group("total"))
        done = int(sample.group("done"))
        fraction = min(done / total, 1.0) if total > 0 else 0.0
        return RenderProgress(frame=frame, fraction=fraction, detail=phase)
    if phase == "Finished":
        return RenderProgress(frame=frame, fraction=1.0, detail=phase)
    return RenderProgress(frame=frame, fraction=0.0, detail=phase)
