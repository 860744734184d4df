"""Backend configuration, read from ``RONRENDER_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from backend import defaults


def config_from_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The Flask config for this process, with embedded defaults for a local farm."""
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("RONRENDER_DATA_DIR", defaults.DEFAULT_DATA_DIR)).resolve()
    database_url = env.get("RONRENDER_DATABASE_URL") or f"sqlite:///{data_dir / 'ronrender.db'}"
    return {
        "RONRENDER_DATA_DIR": str(data_dir),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "RONRENDER_REDIS_URL": env.get("RONRENDER_REDIS_URL", defaults.DEFAULT_REDIS_URL),
        "RONRENDER_STORAGE_DIR": env.get("RONRENDER_STORAGE_DIR", str(data_dir / "storage")),
        "RONRENDER_QUEUE_PREFIX": env.get("RONRENDER_QUEUE_PREFIX", "ronrender"),
        "RONRENDER_MAX_SCENE_UPLOAD_BYTES": int(
            env.get("RONRENDER_MAX_SCENE_UPLOAD_BYTES", defaults.MAX_SCENE_UPLOAD_BYTES)
        ),
        "RONRENDER_MAX_RENDER_OUTPUT_BYTES": int(
            env.get("RONRENDER_MAX_RENDER_OUTPUT_BYTES", defaults.MAX_RENDER_OUTPUT_BYTES)
        ),
        "RONRENDER_LEASE_DURATION_S": int(env.get("RONRENDER_LEASE_DURATION_S", defaults.LEASE_DURATION_S)),
        "RONRENDER_MAX_FRAME_FAILURES": int(
            env.get("RONRENDER_MAX_FRAME_FAILURES", defaults.MAX_FRAME_FAILURES)
        ),
        "RONRENDER_BLENDER_PYTHON": env.get("RONRENDER_BLENDER_PYTHON", ""),
    }


def engine_options(database_url: str) -> dict[str, Any]:
    """SQLite waits for a writer instead of failing; PostgreSQL checks pooled connections."""
    if database_url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}
