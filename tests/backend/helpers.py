"""Helpers for backend tests: upload a scene, create and accept a job, make images, write
a job straight into the database."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from artist_cli.wallet import Wallet
from backend.extensions import db
from backend.models import Frame, Job, SceneFile
from shared.states import JobState

SCENES = "/api/v1/scenes"
JOBS = "/api/v1/jobs"
NODES = "/api/v1/nodes"
CPU_NODE = {
    "name": "cpu-node",
    "cpu_cores": 2,
    "memory_bytes": 8 * 1024**3,
    "blender_version": "4.5.15 LTS",
}


def upload(client: Any, path: Path) -> Any:
    with open(path, "rb") as handle:
        return client.post(SCENES, data=handle.read(), content_type="application/octet-stream")


def ready_scene(client: Any, run_workers: Any, path: Path) -> str:
    response = upload(client, path)
    assert response.status_code in (200, 201), response.json
    run_workers()
    scene = client.get(f"{SCENES}/{response.json['sha256']}").json
    assert scene["state"] == "READY", scene
    return scene["sha256"]


def accept(client: Any, job_id: str, artist_key: str) -> Any:
    """Sign the job's acceptance with the artist's key and send it."""
    wallet = Wallet(bytes.fromhex(artist_key.removeprefix("0x")))
    message = client.get(f"{JOBS}/{job_id}/acceptance", query_string={"artist_address": wallet.address}).json
    body = {"artist_address": wallet.address, "signature": wallet.sign_typed_data(message)}
    return client.post(f"{JOBS}/{job_id}/accept", json=body)


def rendering_job(
    client: Any, run_workers: Any, path: Path, escrow: dict[str, str], **request: Any
) -> dict[str, Any]:
    """A job whose lock is confirmed on chain, so its frames can be claimed."""
    sha256 = ready_scene(client, run_workers, path)
    created = client.post(JOBS, json={"scene_sha256": sha256, **request})
    assert created.status_code == 201, created.json
    accepted = accept(client, created.json["id"], escrow["artist_key"])
    assert accepted.status_code == 202, accepted.json
    run_workers()
    job = client.get(f"{JOBS}/{created.json['id']}").json
    assert job["state"] == "RENDERING", job
    return job


def register(client: Any, **overrides: Any) -> str:
    """Register a node for the signed-in wallet of ``client`` (its payout address)."""
    response = client.post(NODES, json={**CPU_NODE, **overrides})
    assert response.status_code == 201, response.json
    return response.json["id"]


def claim(client: Any, node_id: str, *, starts_at_once: bool = False) -> dict[str, Any] | None:
    response = client.post(
        f"{NODES}/{node_id}/claim", json={"starts_at_once": True} if starts_at_once else None
    )
    assert response.status_code in (200, 204), response.json
    return response.json if response.status_code == 200 else None


def noise_png(path: Path, width: int, height: int, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 4), dtype=np.uint8)
    pixels[:, :, 3] = 255
    Image.fromarray(pixels, "RGBA").save(path)
    return path


def black_png(path: Path, width: int, height: int) -> Path:
    Image.fromarray(np.zeros((height, width, 4), dtype=np.uint8), "RGBA").save(path)
    return path


def put_output(
    client: Any,
    assignment: dict[str, Any],
    path: Path,
    *,
    claim_next: bool = False,
    starts_at_once: bool = False,
) -> Any:
    options = {"claim_next": claim_next, "starts_at_once": starts_at_once}
    return client.put(
        f"/api/v1/attempts/{assignment['attempt_id']}/output",
        query_string={name: "true" for name, given in options.items() if given},
        data=path.read_bytes(),
        headers={"X-Lease-Token": assignment["lease_token"]},
        content_type="application/octet-stream",
    )


def storage_then(real_storage: Any, meanwhile: Callable[[], None]) -> Callable[[], Any]:
    """A stand-in for a service's ``storage()`` whose save_stream stores the bytes and then
    runs ``meanwhile``: what another process commits while an upload's bytes arrive."""

    class StoringThen:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_storage, name)

        def save_stream(self, *args: Any, **kwargs: Any) -> Any:
            stored = real_storage.save_stream(*args, **kwargs)
            meanwhile()
            return stored

    return StoringThen


def make_job(state: JobState = JobState.RENDERING, frames: int = 0) -> Job:
    """A job written straight into the database (no scene analysis, no chain), with
    ``frames`` PENDING frames; flushed, not committed."""
    scene = SceneFile(sha256=uuid.uuid4().hex * 2, size_bytes=1)
    db.session.add(scene)
    job = Job(
        id=uuid.uuid4().hex,
        scene_sha256=scene.sha256,
        state=state,
        frame_start=1,
        frame_end=max(frames, 1),
        frame_step=1,
        output_format="PNG",
        engine="CYCLES",
        resolution_x=64,
        resolution_y=36,
        resolution_percentage=100,
        required_device="ANY",
        min_blender_version=405,
        frames_total=max(frames, 1),
        price_per_frame_wei=10**15,
        fee_bps=500,
        estimate_wei=10**15 * max(frames, 1),
    )
    db.session.add(job)
    db.session.flush()
    for number in range(1, frames + 1):
        db.session.add(Frame(job_id=job.id, number=number))
    db.session.flush()
    return job
