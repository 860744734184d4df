"""What this machine offers: CPU cores, memory, and what Blender's Cycles sees."""

from __future__ import annotations

import json
import os
from pathlib import Path

from shared.protocol import NodeHardware
from shared.supervised_process import run_supervised

PROBE_SCRIPT = Path(__file__).resolve().parent / "blender_child" / "probe_devices.py"
PROBE_PREFIX = "RONRENDER_PROBE "
PROBE_TIME_LIMIT_S = 120.0


class ProbeFailed(RuntimeError):
    pass


def memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def detect_hardware(blender_python: str) -> NodeHardware:
    """Ask a Blender child for its version and the GPUs Cycles can use."""
    found: list[dict[str, object]] = []

    def on_line(line: str) -> None:
        if line.startswith(PROBE_PREFIX):
            found.append(json.loads(line[len(PROBE_PREFIX) :]))

    result = run_supervised(
        [blender_python, str(PROBE_SCRIPT)], on_line=on_line, max_time_s=PROBE_TIME_LIMIT_S
    )
    if not found:
        raise ProbeFailed(f"Blender could not be started to probe devices:\n{result.log_tail}")
    probe = found[0]
    return NodeHardware(
        cpu_cores=os.cpu_count() or 1,
        memory_bytes=memory_bytes(),
        blender_version=str(probe["blender_version"]),
        gpus=list(probe["gpus"]),  # type: ignore[arg-type]
    )
