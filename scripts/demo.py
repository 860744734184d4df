"""``make demo``: render a sample animation on a local farm through the whole
lifecycle and leave the frames and ``demo-output/summary.json``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from child_processes import free_port
from local_farm import VENV_BIN, LocalFarm

ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = ROOT / "demo-output"
DATA_DIR = ROOT / ".ronrender" / "demo"


def wait_for_settlement(farm: LocalFarm, job_id: str, timeout_s: float = 120.0) -> dict:
    """The job once its close (fee and refund) is confirmed on chain."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = farm.admin_get(f"/api/v1/jobs/{job_id}")
        settled = any(int(job["money"][k]) for k in ("refund_wei", "fee_wei"))
        if settled or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


def main() -> int:
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    shutil.rmtree(OUTPUT_DIR, ignore_errors=True)
    (OUTPUT_DIR / "frames").mkdir(parents=True)
    scene = OUTPUT_DIR / "sample_scene.blend"
    print("generating the sample scene (12 frames, 320x180, Cycles, 16 samples)…")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_sample_scene.py"), str(scene)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    started = time.monotonic()
    with LocalFarm(
        DATA_DIR, port=free_port(), nodes=2, node_threads=1, queue_prefix=f"ronrender-demo-{time.time_ns()}"
    ) as farm:
        print(f"local farm up at {farm.url}: backend, 2 RQ workers, 2 nodes (logs in {farm.log_dir})")
        ronrender = [str(VENV_BIN / "ronrender"), "--url", farm.url]
        submitted = subprocess.run(
            [*ronrender, "submit", str(scene), "--yes", "--json"],
            stdout=subprocess.PIPE,
            text=True,
            env=farm.env,
        )
        if submitted.returncode != 0:
            print("the demo job did not complete", file=sys.stderr)
            return 1
        job = json.loads(submitted.stdout)
        wall_s = time.monotonic() - started
        subprocess.run(
            [*ronrender, "download", job["id"], str(OUTPUT_DIR / "frames")], check=True, env=farm.env
        )
        frames = farm.admin_get(f"/api/v1/jobs/{job['id']}/frames")["frames"]
        names = {}
        for node_id in {f["node_id"] for f in frames if f["node_id"]}:
            names[node_id] = farm.admin_get(f"/api/v1/nodes/{node_id}")["name"]
        job = wait_for_settlement(farm, job["id"])
        on_chain = farm.admin_get(f"/api/v1/jobs/{job['id']}/escrow")
    by_node = Counter(names[f["node_id"]] for f in frames if f["state"] == "VERIFIED")
    summary = {
        "job_id": job["id"],
        "state": job["state"],
        "frames_total": job["frames_total"],
        "frames_verified": job["frame_counts"]["VERIFIED"],
        "frames_failed": job["frame_counts"]["FAILED"],
        "frames_by_node": dict(sorted(by_node.items())),
        "wall_s": round(wall_s, 2),
        "estimate": {
            "price_per_frame_wei": int(job["price_per_frame_wei"]),
            "estimate_wei": int(job["estimate_wei"]),
            "estimated_render_s_per_frame": job["estimated_render_us_per_frame"] / 1e6,
            "safety_margin_percent": job["safety_margin_percent"],
        },
        "escrow": {  # read back from the chain's events, not from the database
            "contract": farm.escrow_address,
            "locked_wei": int(on_chain["locked_wei"]),
            "paid_wei_by_node": {payee: int(wei) for payee, wei in on_chain["paid_wei_by_node"].items()},
            "fee_wei": int(on_chain["fee_wei"]),
            "refunded_wei": int(on_chain["refunded_wei"]),
            "tx_hashes": on_chain["tx_hashes"],
        },
    }
    (OUTPUT_DIR / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"frames in {OUTPUT_DIR / 'frames'}; summary in {OUTPUT_DIR / 'summary.json'}")
    escrow = summary["escrow"]
    balanced = (
        escrow["locked_wei"]
        == sum(escrow["paid_wei_by_node"].values()) + escrow["fee_wei"] + escrow["refunded_wei"]
    )
    return 0 if summary["frames_verified"] == summary["frames_total"] and balanced else 1


if __name__ == "__main__":
    sys.exit(main())
