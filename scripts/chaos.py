"""``make chaos``: render a job on a local farm while killing, hanging and
restarting its parts, then prove nothing was lost or paid twice.

The same job is first rendered undisturbed, in the same invocation, for the
slowdown ratio. The farm gets a Redis server of its own (so restarting it
touches nothing else). Writes ``chaos-output/report.json``.

Usage: python scripts/chaos.py [--frames 24] [--nodes 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from child_processes import free_port
from local_farm import VENV_BIN, LocalFarm
from web3 import Web3

ROOT = Path(__file__).resolve().parent.parent
OFFLINE_AFTER_S = 4.0
SWEEP_INTERVAL_S = 0.5
HEARTBEAT_INTERVAL_S = 1.0
WAIT_LIMIT_S = 900.0


class RedisServer:
    """A throwaway redis-server on loopback that keeps nothing on disk."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.data_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_for(self._answers, 10, "Redis to start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def api(farm: LocalFarm, path: str) -> Any:
    return farm.admin_get(f"/api/v1{path}")


def submit(farm: LocalFarm, scene: Path) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "ronrender"), "--url", farm.url, "submit", str(scene), "--yes", "--no-wait"],
        env=farm.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


def settled(farm: LocalFarm, job_id: str) -> bool:
    job = api(farm, f"/jobs/{job_id}")
    return job["state"] == "COMPLETED" and job["money"]["fee_wei"] != "0"


def rendering_frame(farm: LocalFarm, job_id: str, avoid: set[str]) -> dict[str, Any] | None:
    for frame in api(farm, f"/jobs/{job_id}/frames")["frames"]:
        if frame["state"] == "RENDERING" and frame["node_id"] not in avoid:
            return frame
    return None


def node_process_name(farm: LocalFarm, node_id: str) -> str:
    return api(farm, f"/nodes/{node_id}")["name"]


def run_job(farm: LocalFarm, scene: Path) -> tuple[str, float]:
    started = time.monotonic()
    job_id = submit(farm, scene)
    wait_for(lambda: settled(farm, job_id), WAIT_LIMIT_S, "the job to complete and settle")
    return job_id, time.monotonic() - started


def run_with_chaos(
    farm: LocalFarm, redis: RedisServer, scene: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    started = time.monotonic()
    job_id = submit(farm, scene)
    victims: dict[str, dict[str, Any]] = {}

    killed = wait_for(lambda: rendering_frame(farm, job_id, set()), 120, "a frame to render")
    name = node_process_name(farm, killed["node_id"])
    os.killpg(farm.processes[name].pid, signal.SIGKILL)
    killed_at = time.monotonic()
    victims["killed"] = {**killed, "node_name": name}
    log(f"SIGKILL {name} while it rendered frame {killed['number']}")

    hung = wait_for(
        lambda: rendering_frame(farm, job_id, {killed["node_id"]}), 120, "another rendering frame"
    )
    hung_name = node_process_name(farm, hung["node_id"])
    os.killpg(farm.processes[hung_name].pid, signal.SIGSTOP)
    victims["hung"] = {**hung, "node_name": hung_name}
    log(f"SIGSTOP {hung_name} while it rendered frame {hung['number']}")

    def moved_on() -> bool:
        frames = {f["number"]: f for f in api(farm, f"/jobs/{job_id}/frames")["frames"]}
        return frames[killed["number"]]["node_id"] not in (None, killed["node_id"])

    wait_for(moved_on, 120, "the killed node's frame to be reassigned")
    reassign_s = time.monotonic() - killed_at
    log(f"frame {killed['number']} reassigned {reassign_s:.1f} s after the kill")

    farm.restart("backend")
    log("backend restarted")
    redis.stop()
    time.sleep(1.0)
    redis.start()
    log("Redis restarted empty")
    for name, process in list(farm.processes.items()):
        if name.startswith("worker") and process.poll() is not None:
            farm.restart(name)
            log(f"{name} had exited with Redis; restarted")

    wait_for(lambda: settled(farm, job_id), WAIT_LIMIT_S, "the job to complete and settle")
    wall_s = time.monotonic() - started
    os.killpg(farm.processes[hung_name].pid, signal.SIGCONT)  # it wakes to find its lease gone
    return {"job_id": job_id, "wall_s": wall_s, "reassign_s": reassign_s, "victims": victims}


def audit(farm: LocalFarm, job_id: str, victims: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Count what the chain paid, per frame and payee, against what was verified."""
    assert farm.chain is not None
    job = api(farm, f"/jobs/{job_id}")
    frames = api(farm, f"/jobs/{job_id}/frames")["frames"]
    payout_of = {}
    for frame in frames:
        if frame["node_id"] and frame["node_id"] not in payout_of:
            payout_of[frame["node_id"]] = Web3.to_checksum_address(
                api(farm, f"/nodes/{frame['node_id']}")["payout_address"]
            )
    contract = farm.chain.contract(farm.escrow_address)
    key = bytes.fromhex(job_id).rjust(32, b"\0")
    released = contract.events.FrameReleased().get_logs(argument_filters={"jobId": key}, from_block=0)
    paid_per_index = Counter(int(e["args"]["frame"]) for e in released)
    payee_of_index = {int(e["args"]["frame"]): e["args"]["payee"] for e in released}
    index_of = {f["number"]: (f["number"] - job["frame_start"]) // job["frame_step"] for f in frames}
    verified = [f for f in frames if f["state"] == "VERIFIED"]
    wrong_payee = sum(
        1 for f in verified if payee_of_index.get(index_of[f["number"]]) != payout_of[f["node_id"]]
    )
    dropped_paid = 0
    for victim in victims.values():
        dropper_payout = payout_of.get(victim["node_id"])
        if payee_of_index.get(index_of[victim["number"]]) == dropper_payout:
            dropped_paid += 1
    history = api(farm, f"/jobs/{job_id}/escrow")
    paid = sum(int(v) for v in history["paid_wei_by_node"].values())
    return {
        "frames_total": job["frames_total"],
        "frames_verified": len(verified),
        "frames_lost": job["frames_total"] - len(verified),
        "frames_paid": len(paid_per_index),
        "double_payments": sum(count - 1 for count in paid_per_index.values() if count > 1),
        "paid_to_wrong_node": wrong_payee,
        "paid_for_dropped_frames": dropped_paid,
        "books_balance": int(history["locked_wei"])
        == paid + int(history["fee_wei"]) + int(history["refunded_wei"]),
        "job_state": job["state"],
    }


def run_chaos(frames: int, nodes: int, output_dir: Path, *, samples: int = 96) -> dict[str, Any]:
    """The whole suite; returns the report it writes to ``output_dir/report.json``."""
    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.mkdir(parents=True)
    data_dir = output_dir / "data"

    def log(line: str) -> None:
        print(f"[chaos] {line}", flush=True)

    scene = output_dir / "scene.blend"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_sample_scene.py"), str(scene), "--frames", str(frames),
         "--width", "128", "--height", "72", "--samples", str(samples)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    options = {
        "nodes": nodes,
        "node_threads": 1,
        "offline_after_s": OFFLINE_AFTER_S,
        "sweep_interval_s": SWEEP_INTERVAL_S,
        "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
    }
    redis = RedisServer(data_dir / "redis")
    redis.start()
    try:
        with LocalFarm(data_dir / "calm", port=free_port(), redis_url=redis.url, **options) as farm:
            _, calm_wall_s = run_job(farm, scene)
        log(f"undisturbed run: {calm_wall_s:.1f} s")
        with LocalFarm(data_dir / "chaos", port=free_port(), redis_url=redis.url, **options) as farm:
            outcome = run_with_chaos(farm, redis, scene, log)
            report = audit(farm, outcome["job_id"], outcome["victims"])
    finally:
        redis.stop()
    report.update(
        {
            "nodes": nodes,
            "reassign_s": round(outcome["reassign_s"], 2),
            "calm_wall_s": round(calm_wall_s, 2),
            "chaos_wall_s": round(outcome["wall_s"], 2),
            "slowdown_ratio": round(outcome["wall_s"] / calm_wall_s, 3),
            "offline_after_s": OFFLINE_AFTER_S,
            "events": ["SIGKILL a rendering node", "SIGSTOP a rendering node", "restart the backend",
                       "restart Redis (empty)"],
        }
    )  # fmt: skip
    (output_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description="Render a job through kills, hangs and restarts.")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--output", type=Path, default=ROOT / "chaos-output")
    args = parser.parse_args()
    report = run_chaos(args.frames, args.nodes, args.output)
    ok = (
        report["frames_lost"] == 0
        and report["double_payments"] == 0
        and report["paid_for_dropped_frames"] == 0
        and report["paid_to_wrong_node"] == 0
        and report["books_balance"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
