"""Upload and download against a plain local file copy, on the real backend under
gunicorn (SQLite; the database does one row's work per transfer here).

- Upload: a generated .blend of ``size_bytes`` (the ``BLENDER`` magic the backend
  checks, then incompressible bytes) sent as the artist's CLI does, timed to the
  answer, against ``shutil.copyfile`` of the same file on the same disk.
- Repeated upload of the same bytes: how much the storage directory grew (the
  content address keeps one copy), and what the backend still wrote to disk and
  received over HTTP to find that out.
- Download: a verified 3840x2160 half-float EXR frame (uploaded by a node under its
  lease, then marked verified), fetched whole, against a copy of the file; the
  median of ``repeats``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from scripts.bench import auth
from scripts.bench.common import Backend, Section, app_config, directory_bytes, migrate, ratio, rounded
from scripts.bench.seed import claimable_job, mark_uploads_verified
from scripts.bench.verification import synthetic_frame, write_exr
from shared import protocol

DEFAULT_SIZE_BYTES = 1024**3
CHUNK_BYTES = 1024**2
DOWNLOAD_CHUNK_BYTES = 1024**2
HTTP_TIMEOUT_S = 1800


def make_blend(path: Path, size_bytes: int) -> Path:
    """A file the backend takes for a .blend: the magic, then incompressible bytes."""
    block = os.urandom(CHUNK_BYTES)
    with open(path, "wb") as handle:
        handle.write(b"BLENDER-v405")
        written = 12
        index = 0
        while written < size_bytes:
            piece = index.to_bytes(8, "big") + block[8 : min(CHUNK_BYTES, size_bytes - written)]
            handle.write(piece[: size_bytes - written])
            written += min(len(piece), size_bytes - written)
            index += 1
    return path


def timed_copy(source: Path, destination: Path) -> float:
    destination.unlink(missing_ok=True)
    started = time.perf_counter()
    shutil.copyfile(source, destination)  # no fsync: the upload does none either
    return time.perf_counter() - started


def upload_scene(http: requests.Session, url: str, token: str | None, path: Path) -> tuple[float, int]:
    """Seconds to upload, and the HTTP status."""
    started = time.perf_counter()
    with open(path, "rb") as handle:
        answer = http.post(
            url + protocol.scene_upload_path(),
            data=handle,
            headers=auth.upload_headers(token),
            timeout=HTTP_TIMEOUT_S,
        )
    elapsed = time.perf_counter() - started
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"scene upload: HTTP {answer.status_code}: {answer.text[:300]}")
    return elapsed, answer.status_code


def download(http: requests.Session, url: str, headers: dict[str, str], destination: Path) -> float:
    started = time.perf_counter()
    with http.get(url, headers=headers, stream=True, timeout=HTTP_TIMEOUT_S) as answer:
        if answer.status_code != 200:
            raise RuntimeError(f"download: HTTP {answer.status_code}: {answer.text[:300]}")
        with open(destination, "wb") as handle:
            for chunk in answer.iter_content(DOWNLOAD_CHUNK_BYTES):
                handle.write(chunk)
    return time.perf_counter() - started


def _verified_frame(http: requests.Session, backend: Backend, job_id: str, frame: Path) -> None:
    """A node signs in, registers, claims the job's frame and uploads ``frame`` under its lease."""
    wallet = auth.bench_wallet("transfer-node")
    token = auth.login(backend.url, wallet, http)
    hardware: dict[str, Any] = {
        "name": "transfer-node",
        "cpu_cores": 8,
        "memory_bytes": 32 * 1024**3,
        "blender_version": "4.5.15 LTS",
        "gpus": [],
        "payout_address": wallet.address,
    }
    node = http.post(backend.url + protocol.nodes_path(), json=hardware, headers=auth.node_headers(token))
    node.raise_for_status()
    claimed = http.post(
        backend.url + protocol.node_claim_path(node.json()["id"]), headers=auth.node_headers(token)
    )
    if claimed.status_code != 200:
        raise RuntimeError(f"claim: HTTP {claimed.status_code}: {claimed.text[:300]}")
    assignment = claimed.json()
    with open(frame, "rb") as handle:
        uploaded = http.put(
            backend.url + protocol.attempt_output_path(assignment["attempt_id"]),
            data=handle,
            headers=auth.lease_headers(token, assignment["lease_token"]),
            timeout=HTTP_TIMEOUT_S,
        )
    if uploaded.status_code != 202:
        raise RuntimeError(f"frame upload: HTTP {uploaded.status_code}: {uploaded.text[:300]}")
    if mark_uploads_verified(backend.config, job_id) != 1:
        raise RuntimeError("the uploaded frame could not be marked verified")


def run(
    size_bytes: int = DEFAULT_SIZE_BYTES, repeats: int = 3, log_dir: Path = Path("bench-output/logs")
) -> Section:
    section = Section()
    with tempfile.TemporaryDirectory(prefix="rr-bench-transfer-") as work:
        work_dir = Path(work)
        config = app_config(
            f"sqlite:///{work_dir / 'ronrender.db'}", work_dir / "data", f"rr-bench-{uuid.uuid4().hex[:8]}"
        )
        migrate(config)
        artist = auth.bench_wallet("artist")
        job_id, _ = claimable_job(config, 1, output_format="OPEN_EXR", owner_address=artist.address)
        scene = make_blend(work_dir / "scene.blend", size_bytes)
        frame = write_exr(work_dir / "frame.exr", synthetic_frame(1))
        storage = Path(config["RONRENDER_STORAGE_DIR"])
        with Backend(
            config,
            log_dir.resolve() / "transfer-backend.log",
            workers=2,
            threads=4,
            RONRENDER_RATE_LIMIT="",
            RONRENDER_STORAGE="local",
        ) as backend:
            http = requests.Session()
            token = auth.login(backend.url, artist, http)
            copy_s = timed_copy(scene, work_dir / "scene-copy.blend")
            (work_dir / "scene-copy.blend").unlink()
            upload_s, _ = upload_scene(http, backend.url, token, scene)
            stored_before, written_before = directory_bytes(storage), backend.written_bytes()
            repeat_s, repeat_status = upload_scene(http, backend.url, token, scene)
            stored_growth = directory_bytes(storage) - stored_before
            repeat_written = backend.written_bytes() - written_before

            _verified_frame(http, backend, job_id, frame)
            frame_url = backend.url + protocol.frame_output_path(job_id, 1)
            headers = auth.artist_headers(token)
            download_s = statistics.median(
                download(http, frame_url, headers, work_dir / "frame-download.exr") for _ in range(repeats)
            )
            frame_copy_s = statistics.median(
                timed_copy(frame, work_dir / "frame-copy.exr") for _ in range(repeats)
            )
            frame_bytes = frame.stat().st_size
    mib = size_bytes / 2**20
    section.figures.update(
        {
            "upload_bytes": size_bytes,
            "upload_s": rounded(upload_s),
            "upload_copy_s": rounded(copy_s),
            "upload_over_copy": rounded(ratio(upload_s, copy_s)),
            "repeat_upload_s": rounded(repeat_s),
            "repeat_upload_status": repeat_status,
            "repeat_upload_bytes_moved": stored_growth,
            "repeat_upload_http_bytes": size_bytes,
            "repeat_upload_disk_write_bytes": repeat_written,
            "download_frame_bytes": frame_bytes,
            "download_s": rounded(download_s, 4),
            "download_copy_s": rounded(frame_copy_s, 4),
            "download_over_copy": rounded(ratio(download_s, frame_copy_s)),
        }
    )
    upload = f"{ratio(upload_s, copy_s):.2f} ({mib / upload_s:,.0f} vs {mib / copy_s:,.0f} MiB/s)"
    fetch = f"{ratio(download_s, frame_copy_s):.2f} ({download_s * 1000:.0f} / {frame_copy_s * 1000:.0f} ms)"
    section.rows += [
        (f"upload {mib:,.0f} MiB .blend / local copy (time)", upload, ""),
        ("repeat upload: bytes added to storage", f"{stored_growth:,}", "0"),
        ("repeat upload: bytes sent / written to disk", f"{size_bytes:,} / {repeat_written:,}", ""),
        ("frame download / local copy (time, 4K EXR)", fetch, ""),
    ]
    return section
