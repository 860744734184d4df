"""Scheduler at scale: simulated nodes against the real backend.

The backend runs under gunicorn (gthread workers) on a fresh PostgreSQL schema and
the real Redis, with rate limiting off. Simulated nodes (``sim_nodes``: a few
processes, each running many asyncio HTTP clients) register, claim, heartbeat and
upload a tiny PNG per frame. A frame's render is a sleep drawn uniformly from
2-20 s and multiplied by ``time_scale``; the heartbeat interval (15 s on a real
node), the idle poll (0.25 s) and the backend's Retry-After are scaled by the same
factor, so the mix of requests per frame is the real one, only faster.

The job is made claimable without a chain (see ``seed``). A frame counts as done
when its upload is accepted (UPLOADED): verification is measured on its own by the
verification benchmark, and no RQ worker drains the verification queue here (the
queue is deleted afterwards). No sweeper runs: leases (180 s) never expire here.

Figures: makespan over the ideal lower bound max(total render time / nodes, longest
frame), beside the same ratio for a farm with no overhead at all (frames handed out in
order, each the instant a node frees up: the best any farm reaches without knowing
render times ahead) and the measured makespan over that one (what this farm adds), and
the ratio the same farm would reach if it knew every render time ahead and handed out
the longest first (what only that knowledge buys); claim latency p50 and p99 (claims
that got a frame, measured by the client), apart from each node's first claim: every
node asks at the same instant at "go", a burst no real farm sees, reported on its own;
the same once every node has had its first frame (claims sent after that: the burst's
wake, the uploads queued behind it, left out); heartbeats answered per second while
frames were being rendered; the backend's peak resident memory (gunicorn master and
workers).
"""

from __future__ import annotations

import heapq
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.bench.common import (
    GUNICORN_KEEPALIVE_S,
    ROOT,
    Backend,
    Section,
    app_config,
    child_env,
    drop_queues,
    migrate,
    percentile,
    postgres_database,
    postgres_problem,
    ratio,
    rounded,
)
from scripts.bench.seed import claimable_job
from scripts.bench.sim_nodes import render_time_s
from shared.protocol import IDLE_POLL_INTERVAL_S

REAL_HEARTBEAT_INTERVAL_S = 15.0
REAL_IDLE_POLL_S = IDLE_POLL_INTERVAL_S  # a node's default; a large farm's backend asks for longer
NODES_PER_SIM_PROCESS = 500
PROGRESS_POLL_S = 0.5
RSS_SAMPLE_S = 0.5
STALL_S = 300.0


@dataclass(frozen=True)
class SchedulerOptions:
    node_counts: tuple[int, ...] = (100, 1000)
    frames_per_node: int = 20
    time_scale: float = 1.0
    backend_workers: int = 4
    backend_threads: int = 4
    backend_keepalive_s: int = GUNICORN_KEEPALIVE_S
    seed: int = 0
    log_dir: Path = Path("bench-output/logs")


def ideal_makespan_s(frames: int, nodes: int, time_scale: float, seed: int) -> tuple[float, float]:
    """The lower bound max(total render time / nodes, longest frame), and the total render time."""
    times = [render_time_s(number, time_scale, seed) for number in range(1, frames + 1)]
    return max(sum(times) / nodes, max(times)), sum(times)


def instant_farm_makespan_s(
    frames: int, nodes: int, time_scale: float, seed: int, *, longest_first: bool = False
) -> float:
    """The makespan of a farm with no overhead at all: frames handed out in number order,
    each to the node that frees up first, the moment it does. What any farm that cannot
    know render times ahead reaches at best; the rest of the measured makespan is ours.
    ``longest_first``: the same farm knowing every frame's render time ahead, handing out
    the longest first (what only such knowledge buys)."""
    times = [render_time_s(number, time_scale, seed) for number in range(1, frames + 1)]
    if longest_first:
        times.sort(reverse=True)
    free_at = [0.0] * nodes
    for render_s in times:
        heapq.heapreplace(free_at, free_at[0] + render_s)
    return max(free_at)


def _frames_uploaded(database_url: str, job_id: str) -> int:
    import psycopg

    with psycopg.connect(database_url.replace("+psycopg", "", 1), autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM frames"
            " WHERE job_id = %s AND state NOT IN ('PENDING', 'ASSIGNED', 'RENDERING')",
            (job_id,),
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_until_done(database_url: str, job_id: str, frames: int, deadline: float) -> bool:
    """Wait until every frame is uploaded; True if it gave up (the deadline passed, or no
    frame was uploaded for STALL_S: with no sweeper here, a lost lease is never retaken)."""
    done, progressed = 0, time.monotonic()
    while done < frames:
        now = time.monotonic()
        if now > deadline or now - progressed > STALL_S:
            return True
        time.sleep(PROGRESS_POLL_S)
        count = _frames_uploaded(database_url, job_id)
        if count > done:
            done, progressed = count, time.monotonic()
    return False


class _RssSampler(threading.Thread):
    def __init__(self, backend: Backend) -> None:
        super().__init__(daemon=True)
        self.backend = backend
        self.peak_bytes = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(RSS_SAMPLE_S):
            self.peak_bytes = max(self.peak_bytes, self.backend.rss_bytes())


def run_point(nodes: int, options: SchedulerOptions) -> dict[str, Any]:
    """One point of the scale curve: ``nodes`` simulated nodes, ``frames_per_node`` x nodes frames."""
    frames = nodes * options.frames_per_node
    scale = options.time_scale
    ideal_s, total_render_s = ideal_makespan_s(frames, nodes, scale, options.seed)
    instant_s = instant_farm_makespan_s(frames, nodes, scale, options.seed)
    knowing_s = instant_farm_makespan_s(frames, nodes, scale, options.seed, longest_first=True)
    log_dir = options.log_dir.resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rr-bench-sched-") as data_dir, postgres_database() as url:
        config = app_config(url, Path(data_dir), f"rr-bench-{uuid.uuid4().hex[:8]}")
        migrate(config)
        job_id, _ = claimable_job(config, frames)
        backend = Backend(
            config,
            log_dir / f"scheduler-backend-{nodes}.log",
            workers=options.backend_workers,
            threads=options.backend_threads,
            keepalive_s=options.backend_keepalive_s,
            RONRENDER_RATE_LIMIT="",
        )
        with backend:
            idle_rss = backend.rss_bytes()
            processes = _start_sim_processes(backend.url, nodes, options, Path(data_dir))
            try:
                for process, _ in processes:
                    assert process.stdout is not None
                    line = process.stdout.readline().strip()
                    if line != "registered":
                        raise RuntimeError(f"a simulated node process failed to register: {line!r}")
                sampler = _RssSampler(backend)
                sampler.start()
                go = time.monotonic()
                for process, _ in processes:
                    assert process.stdin is not None
                    process.stdin.write("go\n")
                    process.stdin.flush()
                timed_out = _wait_until_done(url, job_id, frames, deadline=go + max(120.0, 20 * ideal_s))
                sampler.done.set()
                results = _stop_sim_processes(processes)
            finally:
                for process, _ in processes:
                    if process.poll() is None:
                        process.kill()
                        process.wait()
        drop_queues(config)
    point = _summarise(nodes, frames, go, ideal_s, total_render_s, results, sampler, idle_rss, timed_out)
    point["instant_farm_over_ideal"] = rounded(ratio(instant_s, ideal_s))
    point["makespan_over_instant_farm"] = rounded(ratio(point["makespan_s"], instant_s))
    point["knowing_farm_over_ideal"] = rounded(ratio(knowing_s, ideal_s), 4)
    return point


def _start_sim_processes(
    url: str, nodes: int, options: SchedulerOptions, work_dir: Path
) -> list[tuple[subprocess.Popen[str], Path]]:
    count = max(1, math.ceil(nodes / NODES_PER_SIM_PROCESS))
    processes = []
    for index in range(count):
        share = nodes // count + (1 if index < nodes % count else 0)
        result = work_dir / f"sim-{index}.json"
        argv = [
            sys.executable, "-m", "scripts.bench.sim_nodes",
            "--url", url,
            "--nodes", str(share),
            "--name-prefix", f"sim{index}",
            "--time-scale", str(options.time_scale),
            "--heartbeat-interval-s", str(REAL_HEARTBEAT_INTERVAL_S * options.time_scale),
            "--idle-poll-s", str(REAL_IDLE_POLL_S * options.time_scale),
            "--seed", str(options.seed),
            "--connections", str(share),
            "--result", str(result),
        ]  # fmt: skip
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT
        )
        processes.append((process, result))
    return processes


def _stop_sim_processes(processes: list[tuple[subprocess.Popen[str], Path]]) -> list[dict[str, Any]]:
    for process, _ in processes:
        assert process.stdin is not None
        process.stdin.write("stop\n")
        process.stdin.flush()
    results = []
    for process, path in processes:
        process.wait(timeout=120)
        results.append(json.loads(path.read_text()))
    return results


def _summarise(
    nodes: int,
    frames: int,
    go: float,
    ideal_s: float,
    total_render_s: float,
    results: list[dict[str, Any]],
    sampler: _RssSampler,
    idle_rss: int,
    timed_out: bool,
) -> dict[str, Any]:
    def merged(key: str) -> list[float]:
        return [value for result in results for value in result[key]]

    uploaded_at = merged("uploaded_at")
    last = max(uploaded_at) if uploaded_at else None
    makespan = (last - go) if last is not None else None

    def in_run(key: str) -> list[float]:
        return [t for t in merged(key) if last is not None and go <= t <= last]

    beats = in_run("heartbeat_at")
    empty_claims = in_run("empty_claim_at")
    plain_claims = merged("claim_ms")
    claims = plain_claims + merged("upload_claim_ms")  # how long a node waited for its next frame
    claims_sent_at = merged("claim_sent_at") + merged("upload_claim_sent_at")
    first_claims = merged("first_claim_ms")
    # Once every node has its first frame, the burst at "go" is served: the steady state
    # (unknown, None, if some node never got a frame).
    first_claim_at = merged("first_claim_at")
    all_started = max(first_claim_at) if len(first_claim_at) == nodes else None
    steady_claims = [
        ms
        for ms, sent in zip(claims, claims_sent_at, strict=True)
        if all_started is not None and sent > all_started
    ]
    requests = len(plain_claims) + len(first_claims) + len(empty_claims) + len(beats) + len(uploaded_at)
    errors: dict[str, int] = {}
    for result in results:
        for what, count in result["errors"].items():
            errors[what] = errors.get(what, 0) + count
    return {
        "nodes": nodes,
        "frames": frames,
        "frames_uploaded": len(uploaded_at),
        "timed_out": timed_out,
        "makespan_s": rounded(makespan),
        "ideal_s": rounded(ideal_s),
        "total_render_s": rounded(total_render_s),
        "makespan_over_ideal": rounded(ratio(makespan, ideal_s)),
        "claim_p50_ms": rounded(percentile(claims, 0.50), 1),
        "claim_p99_ms": rounded(percentile(claims, 0.99), 1),
        "first_claim_p50_ms": rounded(percentile(first_claims, 0.50), 1),
        "first_claim_p99_ms": rounded(percentile(first_claims, 0.99), 1),
        "every_node_started_s": rounded(all_started - go if all_started is not None else None),
        "steady_claim_p50_ms": rounded(percentile(steady_claims, 0.50), 1),
        "steady_claim_p99_ms": rounded(percentile(steady_claims, 0.99), 1),
        "sim_loop_lag_p50_ms": rounded(percentile(merged("loop_lag_ms"), 0.50), 1),
        "sim_loop_lag_p99_ms": rounded(percentile(merged("loop_lag_ms"), 0.99), 1),
        "empty_claims": len(empty_claims),
        "heartbeat_p99_ms": rounded(percentile(merged("heartbeat_ms"), 0.99), 1),
        "upload_p99_ms": rounded(percentile(merged("upload_ms"), 0.99), 1),
        "heartbeats_per_s": rounded(ratio(len(beats), makespan), 1),
        "requests_per_s": rounded(ratio(requests, makespan), 1),
        "backend_rss_mb": rounded(max(sampler.peak_bytes, idle_rss) / 2**20, 1),
        "backend_idle_rss_mb": rounded(idle_rss / 2**20, 1),
        "errors": errors,
    }


def run(options: SchedulerOptions) -> Section:
    section = Section()
    keys = ["makespan_over_ideal", "claim_p50_ms", "claim_p99_ms", "heartbeats_per_s", "backend_rss_mb"]
    problem = postgres_problem()
    if problem:
        section.unmeasured([*keys, "scale_curve"], problem)
        return section
    curve = []
    for nodes in options.node_counts:
        point = run_point(nodes, options)
        curve.append(point)
        print(f"  scheduler, {nodes} nodes: {json.dumps(point)}", flush=True)
    largest = curve[-1]
    for key in keys:
        section.figures[key] = largest[key]
    section.figures["scheduler_nodes"] = largest["nodes"]
    section.figures["scheduler_frames"] = largest["frames"]
    section.figures["scheduler_time_scale"] = options.time_scale
    section.figures["scale_curve"] = curve
    section.notes.append(
        f"scheduler: render = uniform(2, 20) s x {options.time_scale}; heartbeat every "
        f"{REAL_HEARTBEAT_INTERVAL_S * options.time_scale:g} s, idle poll "
        f"{REAL_IDLE_POLL_S * options.time_scale:g} s; {options.frames_per_node} frames per node; "
        f"gunicorn {options.backend_workers} workers x {options.backend_threads} threads,"
        f" idle connections kept {options.backend_keepalive_s} s; "
        "job made claimable in the database (no chain); done = upload accepted"
    )
    for point in curve:
        if point["timed_out"] or point["errors"]:
            section.notes.append(
                f"scheduler at {point['nodes']} nodes: "
                f"timed out={point['timed_out']}, errors={point['errors']}"
            )
        at = f"scheduler {point['nodes']} nodes"
        claims = f"{point['claim_p50_ms']} / {point['claim_p99_ms']} ms"
        first = f"{point['first_claim_p50_ms']} / {point['first_claim_p99_ms']} ms"
        steady = f"{point['steady_claim_p50_ms']} / {point['steady_claim_p99_ms']} ms"
        started = f"every node started after {point['every_node_started_s']} s"
        rates = f"{point['heartbeats_per_s']} / {point['requests_per_s']}"
        section.rows += [
            (
                f"{at}, {point['frames']} frames: makespan / ideal",
                f"{point['makespan_over_ideal']}",
                "<= 1.05",
            ),
            (
                f"{at}: an overhead-free farm's makespan / ideal; measured / overhead-free",
                f"{point['instant_farm_over_ideal']}; {point['makespan_over_instant_farm']}",
                "",
            ),
            (
                f"{at}: the overhead-free farm knowing render times ahead (longest first) / ideal",
                f"{point['knowing_farm_over_ideal']}",
                "",
            ),
            (f"{at}: claim p50 / p99", claims, "p99 < 100 ms"),
            (f"{at}: first claims at go, p50 / p99", first, ""),
            (
                f"{at}: claim p50 / p99 once {started}",
                steady,
                "",
            ),
            (
                f"{at}: the simulator's own event-loop lag p50 / p99 (inside every latency above)",
                f"{point['sim_loop_lag_p50_ms']} / {point['sim_loop_lag_p99_ms']} ms",
                "",
            ),
            (f"{at}: heartbeats/s / all requests/s", rates, ""),
            (f"{at}: backend RSS peak", f"{point['backend_rss_mb']} MB", ""),
        ]
    return section
