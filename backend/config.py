"""Backend configuration, read from ``RONRENDER_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
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
        **storage_config_from_env(env),
        "RONRENDER_LOG_FORMAT": env.get("RONRENDER_LOG_FORMAT", "text"),  # "json": one object per line
        "RONRENDER_QUEUE_PREFIX": env.get("RONRENDER_QUEUE_PREFIX", "ronrender"),
        "RONRENDER_MAX_SCENE_UPLOAD_BYTES": int(
            env.get("RONRENDER_MAX_SCENE_UPLOAD_BYTES", defaults.MAX_SCENE_UPLOAD_BYTES)
        ),
        "RONRENDER_MAX_RENDER_OUTPUT_BYTES": int(
            env.get("RONRENDER_MAX_RENDER_OUTPUT_BYTES", defaults.MAX_RENDER_OUTPUT_BYTES)
        ),
        "RONRENDER_OFFLINE_AFTER_S": float(env.get("RONRENDER_OFFLINE_AFTER_S", defaults.OFFLINE_AFTER_S)),
        "RONRENDER_FRAME_TIME_LIMIT_S": int(
            env.get("RONRENDER_FRAME_TIME_LIMIT_S", defaults.FRAME_TIME_LIMIT_S)
        ),
        "RONRENDER_SWEEP_INTERVAL_S": float(env.get("RONRENDER_SWEEP_INTERVAL_S", defaults.SWEEP_INTERVAL_S)),
        "RONRENDER_ADMIN_TOKEN": env.get("RONRENDER_ADMIN_TOKEN", ""),
        "RONRENDER_ADMIN_ADDRESSES": [a for a in env.get("RONRENDER_ADMIN_ADDRESSES", "").split(",") if a],
        "RONRENDER_SESSION_TTL_S": int(env.get("RONRENDER_SESSION_TTL_S", defaults.SESSION_TTL_S)),
        "RONRENDER_TOKEN_CACHE_S": float(env.get("RONRENDER_TOKEN_CACHE_S", defaults.TOKEN_CACHE_S)),
        "RONRENDER_IDLE_CLAIMS_PER_S": int(
            env.get("RONRENDER_IDLE_CLAIMS_PER_S", defaults.IDLE_CLAIMS_PER_S)
        ),
        "RONRENDER_CLAIM_HOLD_SEATS": int(env.get("RONRENDER_CLAIM_HOLD_SEATS", defaults.CLAIM_HOLD_SEATS)),
        # Per identity (or per client address before sign-in); "" turns rate limiting off.
        "RONRENDER_RATE_LIMIT": env.get("RONRENDER_RATE_LIMIT", defaults.RATE_LIMIT),
        "RONRENDER_MAX_FRAME_FAILURES": int(
            env.get("RONRENDER_MAX_FRAME_FAILURES", defaults.MAX_FRAME_FAILURES)
        ),
        "RONRENDER_SPOT_CHECK_RATE": float(env.get("RONRENDER_SPOT_CHECK_RATE", defaults.SPOT_CHECK_RATE)),
        "RONRENDER_SPOT_CHECK_RATE_NEW_NODES": float(
            env.get("RONRENDER_SPOT_CHECK_RATE_NEW_NODES", defaults.SPOT_CHECK_RATE_NEW_NODES)
        ),
        "RONRENDER_RELEASE_WINDOW_S": float(env.get("RONRENDER_RELEASE_WINDOW_S", defaults.RELEASE_WINDOW_S)),
        "RONRENDER_ANALYSIS_PRELOAD_AFTER_S": float(
            env.get("RONRENDER_ANALYSIS_PRELOAD_AFTER_S", defaults.ANALYSIS_PRELOAD_AFTER_S)
        ),
        "RONRENDER_SPOT_CHECK_WAIT_S": float(
            env.get("RONRENDER_SPOT_CHECK_WAIT_S", defaults.SPOT_CHECK_WAIT_S)
        ),
        # Mixed into the draw of which frames are spot-checked: nodes cannot predict it.
        "RONRENDER_SPOT_CHECK_SECRET": env.get("RONRENDER_SPOT_CHECK_SECRET", ""),
        "RONRENDER_BLENDER_PYTHON": env.get("RONRENDER_BLENDER_PYTHON", ""),
        **chain_config_from_env(env),
    }


def chain_config_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Where the escrow contract lives and the operator key that drives it.

    The key comes from an encrypted keystore (production) or, for a local dev
    chain only, from ``RONRENDER_OPERATOR_KEY``.
    """
    expected_chain_id = env.get("RONRENDER_CHAIN_ID")
    rpc_url = env.get("RONRENDER_CHAIN_RPC_URL", "")
    return {
        "RONRENDER_CHAIN_RPC_URL": rpc_url,
        "RONRENDER_PUBLIC_RPC_URL": env.get("RONRENDER_PUBLIC_RPC_URL", rpc_url),
        "RONRENDER_CHAIN_ID": int(expected_chain_id) if expected_chain_id else None,
        "RONRENDER_ESCROW_ADDRESS": env.get("RONRENDER_ESCROW_ADDRESS", ""),
        "RONRENDER_OPERATOR_KEY": env.get("RONRENDER_OPERATOR_KEY", ""),
        "RONRENDER_OPERATOR_KEYSTORE": env.get("RONRENDER_OPERATOR_KEYSTORE", ""),
        "RONRENDER_OPERATOR_KEYSTORE_PASSWORD_FILE": env.get("RONRENDER_OPERATOR_KEYSTORE_PASSWORD_FILE", ""),
        "RONRENDER_CONFIRMATIONS": int(env.get("RONRENDER_CONFIRMATIONS", defaults.CONFIRMATIONS)),
        "RONRENDER_LOCK_DEADLINE_S": int(env.get("RONRENDER_LOCK_DEADLINE_S", defaults.LOCK_DEADLINE_S)),
    }


def engine_options(database_url: str) -> dict[str, Any]:
    """SQLite waits for a writer instead of failing; PostgreSQL checks pooled connections."""
    if database_url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}


def storage_config_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Which storage holds scene files and render outputs: ``local`` (a directory) or ``s3``
    (any S3-compatible store; credentials may also come from boto3's usual sources)."""
    return {
        "RONRENDER_STORAGE": env.get("RONRENDER_STORAGE", "local"),
        "RONRENDER_S3_ENDPOINT_URL": env.get("RONRENDER_S3_ENDPOINT_URL", ""),
        "RONRENDER_S3_PUBLIC_ENDPOINT_URL": env.get("RONRENDER_S3_PUBLIC_ENDPOINT_URL", ""),
        "RONRENDER_S3_BUCKET": env.get("RONRENDER_S3_BUCKET", ""),
        "RONRENDER_S3_PREFIX": env.get("RONRENDER_S3_PREFIX", ""),
        "RONRENDER_S3_REGION": env.get("RONRENDER_S3_REGION", "us-east-1"),
        "RONRENDER_S3_ACCESS_KEY_ID": env.get("RONRENDER_S3_ACCESS_KEY_ID", ""),
        "RONRENDER_S3_SECRET_ACCESS_KEY": env.get("RONRENDER_S3_SECRET_ACCESS_KEY", ""),
        "RONRENDER_S3_ADDRESSING_STYLE": env.get("RONRENDER_S3_ADDRESSING_STYLE", "path"),
        # local copies of objects for Blender and the image checks, trimmed to this size
        "RONRENDER_S3_CACHE_MAX_BYTES": int(env.get("RONRENDER_S3_CACHE_MAX_BYTES", 20 * 1024**3)),
    }
