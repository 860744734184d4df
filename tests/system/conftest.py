"""Fixtures for the whole-system tier: a real local farm (gunicorn backend, RQ
workers, render nodes as processes) on a free port, on SQLite or PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from child_processes import free_port
from local_farm import LocalFarm

from tests.conftest import REDIS_URL


@pytest.fixture
def start_farm(database_url: str, tmp_path: Path) -> Iterator[Callable[..., LocalFarm]]:
    """Start a farm with the given options; every farm started is stopped after the test."""
    farms: list[LocalFarm] = []

    def start(*, nodes: int = 2, port: int | None = None, **options: object) -> LocalFarm:
        # No spot checks unless a test asks: they would change which node renders what.
        no_spot_checks = {"RONRENDER_SPOT_CHECK_RATE": "0", "RONRENDER_SPOT_CHECK_RATE_NEW_NODES": "0"}
        options["extra_env"] = {**no_spot_checks, **options.get("extra_env", {})}  # type: ignore[dict-item]
        farm = LocalFarm(
            tmp_path / f"farm{len(farms)}",
            port=port or free_port(),
            nodes=nodes,
            workers=1,
            node_threads=1,
            redis_url=REDIS_URL,
            queue_prefix=f"rr-system-{uuid.uuid4().hex[:8]}",
            database_url=database_url if not database_url.startswith("sqlite") else None,
            heartbeat_interval_s=1.0,
            **options,  # type: ignore[arg-type]
        )
        farms.append(farm)
        farm.start()
        return farm

    yield start
    for farm in farms:
        farm.stop()
