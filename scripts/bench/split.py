"""Split: creating a job of 100,000 frames and its frame rows on PostgreSQL, timed
around the backend's ``job_split.create_job`` (validation, estimate, one bulk insert,
commit)."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from scripts.bench.common import Section, app_config, migrate, postgres_database, postgres_problem, rounded
from scripts.bench.seed import claimable_job

SPLIT_TARGET_S = 2.0


def run(frames: int = 100_000) -> Section:
    section = Section()
    problem = postgres_problem()
    if problem:
        section.unmeasured(["split_100k_s"], problem)
        return section
    with tempfile.TemporaryDirectory(prefix="rr-bench-split-") as data_dir, postgres_database() as url:
        config = app_config(url, Path(data_dir), f"rr-bench-{uuid.uuid4().hex[:8]}")
        migrate(config)
        _, split_s = claimable_job(config, frames, rendering=False)
    section.figures["split_100k_s"] = rounded(split_s)
    section.figures["split_frames"] = frames
    section.rows.append((f"split: create a {frames:,}-frame job (PostgreSQL)", f"{split_s:.2f} s", "< 2 s"))
    return section
