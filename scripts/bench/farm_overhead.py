"""Farm overhead: the demo scene rendered three ways, side by side.

(a) bare Blender in one child process rendering every frame in a loop (start,
    open once, render, exit: the whole process is timed);
(b) bare Blender started once per frame, as ``blender -b scene.blend -f N`` would
    (the sum of the processes' times);
(c) through RonRender with one local node (``scripts/local_farm.py``: anvil with
    the escrow, the backend under gunicorn, RQ workers, the sweeper, one
    ``ronrender-node``), from ``ronrender submit`` to the job's ``finished_at``
    (every frame verified). It includes the upload, scene analysis (a Blender
    probe render), the estimate, the signed acceptance and the lock on chain.
    The farm's start (before the submit) is not counted: the submit comes once
    the node is online and idle, as on a farm that was already running, from an
    artist who has signed in and unlocked the wallet before (``ronrender sign-in``,
    ``ronrender wallet unlock``: the wallet agent signs the acceptance, as a wallet
    the add-on keeps connected would). Without the agent the CLI opens the keystore
    itself: about a second of eth-account's import and scrypt, of which the upload and
    the analysis hide about half.

(a) and (c) run in pairs, one right after the other, ``repeats`` times (each (c) on
a farm started afresh): this machine's speed drifts by several per cent over minutes,
so each pair's ratio is taken and the median pair's is reported, beside every pair's
(with an even count, the higher of the middle two: a real pair, never flattered). A
farm run that fails ends the repeats; the pairs measured before it still count, and
the failure is noted. (b) is measured once, before the pairs.

Blender always runs in a child process; this module never imports ``bpy``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from artist_cli.wallet_agent import AGENT_DIR_ENV
from scripts.bench.common import OUTPUT_DIR, SCRIPTS_DIR, Section, child_env, free_port, ratio, rounded

BLENDER_SCRIPT = Path(__file__).resolve().parent / "blender_render.py"
SUBMIT_TIMEOUT_S = 900
NODE_SETTLE_S = 2.0  # after registering, an idle node starts its spare Blender


def make_scene(path: Path, frames: int) -> Path:
    """The demo's sample scene (320x180, Cycles, 16 samples), written by Blender in a child."""
    subprocess.run(
        [sys.executable, str(SCRIPTS_DIR / "make_sample_scene.py"), str(path), "--frames", str(frames)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=child_env(),
    )
    return path


def render_in_child(scene: Path, out_dir: Path, frames: list[int]) -> float:
    """Seconds of one Blender child process rendering ``frames``, start to exit."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(BLENDER_SCRIPT), str(scene), str(out_dir), *map(str, frames)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=child_env(),
    )
    return time.perf_counter() - started


def through_farm(scene: Path, data_dir: Path) -> tuple[float, float]:
    """Seconds from submit to the last verified frame, and from submit to the CLI's return."""
    from local_farm import VENV_BIN, LocalFarm

    farm = LocalFarm(
        data_dir, port=free_port(), nodes=1, node_threads=0, queue_prefix=f"rr-bench-farm-{time.time_ns()}"
    )
    try:  # not `with`: a farm whose start fails must still stop what it started
        farm.start()
        farm.wait_for_nodes()  # a running farm: its node idles, Blender loaded
        # An artist who signed in and unlocked the wallet before (as the add-on's wallet
        # stays connected): the wallet agent signs the acceptance.
        farm.env[AGENT_DIR_ENV] = tempfile.mkdtemp(prefix="rr-bench-agents-")
        for command in (["sign-in"], ["wallet", "unlock", "--for", "30"]):
            subprocess.run(
                [str(VENV_BIN / "ronrender"), "--url", farm.url, *command],
                env=farm.env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        time.sleep(NODE_SETTLE_S)
        submitted_at = time.time()
        started = time.perf_counter()
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            submit = subprocess.Popen(
                [str(VENV_BIN / "ronrender"), "--url", farm.url, "submit", str(scene), "--yes", "--json"],
                stdout=out,
                stderr=err,
                text=True,
                env=farm.env,
            )
            _wait_watching(submit, farm)
            returned_s = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if submit.returncode != 0:
            raise RuntimeError(f"ronrender submit failed: {stderr.strip()[-500:]}")
        job = json.loads(stdout)
        if job["frame_counts"].get("VERIFIED") != job["frames_total"] or not job.get("finished_at"):
            raise RuntimeError(f"the job did not verify every frame: {job['state']} {job['frame_counts']}")
        finished = datetime.fromisoformat(job["finished_at"]).timestamp()
    finally:
        if AGENT_DIR_ENV in farm.env:
            subprocess.run(
                [str(VENV_BIN / "ronrender"), "wallet", "lock"], env=farm.env, stdout=subprocess.DEVNULL
            )
        farm.stop()
    return finished - submitted_at, returned_s


def _wait_watching(submit: subprocess.Popen[str], farm: Any) -> None:
    """Wait for the CLI; fail at once if a process of the farm dies meanwhile."""
    deadline = time.monotonic() + SUBMIT_TIMEOUT_S
    while submit.poll() is None:
        dead = [name for name, process in farm.processes.items() if process.poll() is not None]
        if dead or time.monotonic() > deadline:
            submit.kill()
            submit.wait()
            if not dead:
                raise RuntimeError(f"the job did not finish within {SUBMIT_TIMEOUT_S} s")
            log = (farm.log_dir / f"{dead[0]}.log").read_text(errors="replace").strip()[-400:]
            raise RuntimeError(f"{', '.join(dead)} of the farm exited: {log}")
        time.sleep(0.2)


def run(frames: int = 12, repeats: int = 3) -> Section:
    section = Section()
    keys = ["overhead_vs_one_process", "overhead_vs_per_frame_process"]
    farm_root = OUTPUT_DIR / "farm-overhead"  # kept: the farms' logs
    shutil.rmtree(farm_root, ignore_errors=True)
    one_process_runs: list[float] = []
    farm_runs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="rr-bench-overhead-") as work:
        work_dir = Path(work)
        scene = make_scene(work_dir / "sample_scene.blend", frames)
        numbers = list(range(1, frames + 1))
        per_frame_s = sum(render_in_child(scene, work_dir / "b", [n]) for n in numbers)
        failure = None
        for run_index in range(max(1, repeats)):
            one_process_s = render_in_child(scene, work_dir / "a", numbers)
            try:
                farm_s, _ = through_farm(scene, farm_root / f"run-{run_index + 1}")
            except Exception as error:
                failure = error
                break
            one_process_runs.append(one_process_s)
            farm_runs.append(farm_s)
    pair_ratios = [farm / bare for farm, bare in zip(farm_runs, one_process_runs, strict=True)]
    section.figures["bare_per_frame_process_s"] = rounded(per_frame_s)
    if failure is not None:
        section.notes.append(f"farm run {len(farm_runs) + 1} failed, after {len(farm_runs)} pairs: {failure}")
    if not pair_ratios:
        section.unmeasured([*keys, "farm_s"], "no one-node farm run finished")
    else:
        middle = pair_ratios.index(statistics.median_high(pair_ratios))
        farm_s, one_process_s = farm_runs[middle], one_process_runs[middle]
        section.figures.update(
            bare_one_process_s=rounded(one_process_s),
            farm_s=rounded(farm_s),
            overhead_vs_one_process=rounded(pair_ratios[middle]),
            overhead_vs_per_frame_process=rounded(ratio(farm_s, per_frame_s)),
            overhead_vs_one_process_runs=[rounded(value) for value in pair_ratios],
            farm_runs_s=[rounded(value) for value in farm_runs],
            bare_one_process_runs_s=[rounded(value) for value in one_process_runs],
        )
    pairs = ", ".join(
        f"{farm:.2f}/{bare:.2f}" for farm, bare in zip(farm_runs, one_process_runs, strict=True)
    )
    runs = f"; the median of {len(pair_ratios)} pairs (c)/(a): {pairs} s" if pair_ratios else ""
    section.rows += [
        (f"bare Blender, one process per frame, {frames} frames", f"{per_frame_s:.2f} s", ""),
        (f"bare Blender, one process, {frames} frames (a)", _seconds(section, "bare_one_process_s"), ""),
        ("RonRender, 1 node, submit -> last verified (c)", _seconds(section, "farm_s"), ""),
        ("farm / one process (c)/(a)", _figure(section, "overhead_vs_one_process") + runs, "<= 1.10"),
        ("farm / per-frame process (c)/(b)", _figure(section, "overhead_vs_per_frame_process"), "< 1.0"),
    ]
    return section


def _figure(section: Section, key: str) -> str:
    value = section.figures.get(key)
    return str(value) if value is not None else "n/a"


def _seconds(section: Section, key: str) -> str:
    value = section.figures.get(key)
    return f"{value:.2f} s" if value is not None else "n/a"
