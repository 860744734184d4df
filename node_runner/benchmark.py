"""The node's benchmark: a short render of a tiny built-in scene on its first slot,
reported with its registration so the matchmaker and pricing know the machine.
Run once; the result is kept in the work directory for later starts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from node_runner import defaults
from node_runner.render import RenderDevice
from shared.supervised_process import run_supervised

SCRIPT = Path(__file__).resolve().parent / "blender_child" / "benchmark.py"
PREFIX = "RONRENDER_BENCHMARK "
CACHE_FILE = "benchmark.json"
log = logging.getLogger(__name__)


class BenchmarkFailed(RuntimeError):
    pass


def benchmark_ms(blender_python: str, blender_version: str, device: RenderDevice, work_dir: Path) -> int:
    """The cached score for this Blender and device, or a fresh run of the benchmark."""
    cache = work_dir / CACHE_FILE
    key = {
        "blender_version": blender_version,
        "device": device.to_json(),
        "samples": defaults.BENCHMARK_SAMPLES,
    }
    try:
        cached = json.loads(cache.read_text())
        if cached["key"] == key:
            return int(cached["render_ms"])
    except (OSError, ValueError, KeyError):
        pass
    render_ms = run_benchmark(blender_python, device, work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "render_ms": render_ms}))
    log.info("benchmark: %d ms for the reference frame on %s", render_ms, device.backend)
    return render_ms


def run_benchmark(blender_python: str, device: RenderDevice, work_dir: Path) -> int:
    found: list[int] = []

    def on_line(line: str) -> None:
        if line.startswith(PREFIX):
            found.append(int(json.loads(line[len(PREFIX) :])["render_ms"]))

    work_dir.mkdir(parents=True, exist_ok=True)
    result = run_supervised(
        [
            blender_python,
            str(SCRIPT),
            str(work_dir / "benchmark.png"),
            str(defaults.BENCHMARK_SAMPLES),
            json.dumps(device.to_json()),
        ],
        on_line=on_line,
        max_time_s=defaults.BENCHMARK_TIME_LIMIT_S,
        cwd=str(SCRIPT.parent),
    )
    (work_dir / "benchmark.png").unlink(missing_ok=True)
    if not found:
        raise BenchmarkFailed(f"the benchmark render failed:\n{result.log_tail}")
    return found[0]
