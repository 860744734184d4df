"""``make bench`` at a tiny size: every benchmark runs through the runner and writes
its figures to the JSON as numbers. No timing is asserted: the benchmark prints,
the note records."""

from __future__ import annotations

import json
import numbers
from pathlib import Path

import pytest

from scripts.bench import run, scheduler
from scripts.bench.common import postgres_problem

pytestmark = pytest.mark.system

TINY = [
    "--overhead-frames", "2",
    "--nodes", "3,6",
    "--frames-per-node", "2",
    "--time-scale", "0.02",
    "--backend-workers", "2",
    "--backend-threads", "2",
    "--split-frames", "200",
    "--upload-mib", "2",
    "--verify-width", "320",
    "--verify-height", "180",
    "--repeats", "1",
]  # fmt: skip
NEEDS_POSTGRES = {"scheduler", "split"}


def is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@pytest.mark.parametrize("benchmark", run.ORDER)
def test_benchmark_writes_its_figures(benchmark: str, tmp_path: Path):
    if benchmark in NEEDS_POSTGRES and postgres_problem():
        pytest.skip(postgres_problem())
    output = tmp_path / "bench.json"

    assert run.main(["--only", benchmark, "--output", str(output), *TINY]) == 0

    result = json.loads(output.read_text())
    assert result["run"]["benchmarks"] == [benchmark]
    assert is_number(result["run"]["reference_loop_s"]) and result["run"]["reference_loop_s"] > 0
    for key in run.REQUIRED_KEYS[benchmark]:
        if key == "scale_curve":
            assert [point["nodes"] for point in result[key]] == [3, 6]
            for point in result[key]:
                assert point["frames_uploaded"] == point["frames"], point
                figures = ("makespan_over_ideal", "claim_p99_ms", "first_claim_p99_ms",
                           "every_node_started_s", "heartbeats_per_s", "sim_loop_lag_p99_ms",
                           "knowing_farm_over_ideal")  # fmt: skip
                for figure in figures:
                    assert is_number(point[figure]), (figure, point)
        else:
            assert is_number(result[key]), (key, result[key], result["notes"])


def test_table_lines_up():
    table = run.format_table([("split", "1.20 s", "< 2 s"), ("gas: lock a job", "85,640", "")])
    lines = table.splitlines()
    assert lines[0].startswith("benchmark") and set(lines[1]) <= {"-", "+"}
    assert len({line.index("|") for line in lines if "|" in line}) == 1


def test_the_overhead_free_farms_hand_out_frames_in_order_or_longest_first(monkeypatch):
    render_s = {1: 1.0, 2: 1.0, 3: 2.0}
    monkeypatch.setattr(scheduler, "render_time_s", lambda number, scale, seed: render_s[number] * scale)

    # In order, the long frame starts last on two nodes; longest first, it starts at once.
    assert scheduler.instant_farm_makespan_s(3, 2, 1.0, 0) == 3.0
    assert scheduler.instant_farm_makespan_s(3, 2, 1.0, 0, longest_first=True) == 2.0
    assert scheduler.ideal_makespan_s(3, 2, 1.0, 0) == (2.0, 4.0)
