"""``make bench``: run every benchmark in one go, one after another (never two at
once: they share two cores), print a table of the figures and their targets, and
write ``bench-output/bench.json``. A figure that could not be measured is ``null``,
with the reason printed and kept under ``notes``.

    python -m scripts.bench.run [--nodes 100,1000] [--frames-per-node 20]
        [--time-scale 1.0] [--upload-mib 1024] [--only scheduler,split ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.bench import farm_overhead, gas, scheduler, split, transfer, verification
from scripts.bench.common import (
    GUNICORN_KEEPALIVE_S,
    OUTPUT_DIR,
    REFERENCE_LOOP_ADDITIONS,
    Section,
    reference_loop_s,
)

REQUIRED_KEYS = {
    "farm_overhead": ["overhead_vs_one_process", "overhead_vs_per_frame_process"],
    "scheduler": [
        "makespan_over_ideal",
        "claim_p50_ms",
        "claim_p99_ms",
        "heartbeats_per_s",
        "backend_rss_mb",
        "scale_curve",
    ],
    "split": ["split_100k_s"],
    "transfer": ["upload_over_copy", "download_over_copy", "repeat_upload_bytes_moved"],
    "verification": ["verify_over_decode_exr", "verify_over_decode_png"],
    "gas": ["gas_lock", "gas_per_frame_batch100"],
}
# Cheap first, the long scheduler run last.
ORDER = ["verification", "gas", "split", "transfer", "farm_overhead", "scheduler"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run RonRender's benchmarks and write bench-output/bench.json."
    )
    parser.add_argument(
        "--only", default=",".join(ORDER), help=f"comma-separated subset of {','.join(ORDER)}"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR / "bench.json")
    parser.add_argument("--overhead-frames", type=int, default=12, help="frames of the demo scene")
    parser.add_argument("--nodes", default="100,1000", help="simulated node counts: the scale curve")
    parser.add_argument("--frames-per-node", type=int, default=20, help="frames = nodes x this")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="render times uniform(2, 20) s, heartbeat (15 s), idle poll (1 s), Retry-After: all times this",
    )
    parser.add_argument("--backend-workers", type=int, default=4)
    parser.add_argument("--backend-threads", type=int, default=4)
    parser.add_argument(
        "--backend-keepalive-s",
        type=int,
        default=GUNICORN_KEEPALIVE_S,
        help="seconds gunicorn keeps an idle connection open (its default: 2)",
    )
    parser.add_argument("--split-frames", type=int, default=100_000)
    parser.add_argument("--upload-mib", type=int, default=1024, help="size of the uploaded .blend")
    parser.add_argument("--verify-width", type=int, default=verification.WIDTH)
    parser.add_argument("--verify-height", type=int, default=verification.HEIGHT)
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per median (verification, download, farm overhead)"
    )
    return parser.parse_args(argv)


def benchmarks(args: argparse.Namespace) -> dict[str, Callable[[], Section]]:
    log_dir = args.output.parent / "logs"
    options = scheduler.SchedulerOptions(
        node_counts=tuple(int(n) for n in args.nodes.split(",") if n),
        frames_per_node=args.frames_per_node,
        time_scale=args.time_scale,
        backend_workers=args.backend_workers,
        backend_threads=args.backend_threads,
        backend_keepalive_s=args.backend_keepalive_s,
        log_dir=log_dir,
    )
    return {
        "verification": lambda: verification.run(args.repeats, args.verify_width, args.verify_height),
        "gas": gas.run,
        "split": lambda: split.run(args.split_frames),
        "transfer": lambda: transfer.run(args.upload_mib * 2**20, args.repeats, log_dir),
        "farm_overhead": lambda: farm_overhead.run(args.overhead_frames, args.repeats),
        "scheduler": lambda: scheduler.run(options),
    }


def format_table(rows: list[tuple[str, str, str]]) -> str:
    header = ("benchmark", "measured", "target")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = [
        " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = [name for name in ORDER if name in args.only.split(",")]
    runners = benchmarks(args)
    figures: dict[str, Any] = {key: None for name in selected for key in REQUIRED_KEYS[name]}
    notes: list[str] = []
    machine_s = reference_loop_s()
    rows: list[tuple[str, str, str]] = [
        (
            f"this machine today: a pure-Python loop of {REFERENCE_LOOP_ADDITIONS:,} additions, best of 3",
            f"{machine_s:.3f} s",
            "",
        )
    ]
    timings: dict[str, float] = {}
    for name in selected:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            section = runners[name]()
        except Exception as error:
            traceback.print_exc()
            section = Section()
            section.unmeasured(REQUIRED_KEYS[name], f"{name} failed: {type(error).__name__}: {error}")
        timings[name] = round(time.perf_counter() - started, 1)
        figures.update(section.figures)
        notes += section.notes
        rows += section.rows
        for note in section.notes:
            print(f"  note: {note}", flush=True)
    result = {
        **figures,
        "notes": notes,
        "run": {
            "argv": sys.argv[1:] if argv is None else argv,
            "benchmarks": selected,
            "seconds": timings,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "reference_loop_s": round(machine_s, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(format_table(rows))
    if notes:
        print()
        for note in notes:
            print(f"note: {note}")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
