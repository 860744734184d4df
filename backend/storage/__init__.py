"""Content-addressed storage of scene files and render outputs: the only package that
touches stored bytes.

Two implementations of one interface (``Storage``): a local directory (the embedded
default) and any S3-compatible object store; ``RONRENDER_STORAGE`` picks one. Objects
are named by their sha256 in both, and the same bytes are stored once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Response, current_app, redirect, send_file

from backend.extensions import app_scoped
from backend.storage.base import PRESIGNED_URL_TTL_S, Storage, StoredObject, object_key
from backend.storage.local import LocalStorage
from backend.storage.s3 import CACHE_MAX_BYTES, S3Settings, S3Storage, checksum_header

__all__ = [
    "PRESIGNED_URL_TTL_S",
    "LocalStorage",
    "S3Settings",
    "S3Storage",
    "Storage",
    "StoredObject",
    "app_storage",
    "checksum_header",
    "object_key",
    "open_storage",
    "send_stored",
]

STORAGE_KINDS = ("local", "s3")


def open_storage(config: Mapping[str, Any]) -> Storage:
    """The storage a config describes (``RONRENDER_STORAGE``: ``local`` or ``s3``)."""
    kind = config.get("RONRENDER_STORAGE") or "local"
    if kind == "local":
        return LocalStorage(config["RONRENDER_STORAGE_DIR"])
    if kind == "s3":
        if not config.get("RONRENDER_S3_BUCKET"):
            raise ValueError("RONRENDER_STORAGE=s3 needs RONRENDER_S3_BUCKET")
        settings = S3Settings(
            bucket=config["RONRENDER_S3_BUCKET"],
            endpoint_url=config.get("RONRENDER_S3_ENDPOINT_URL") or None,
            access_key_id=config.get("RONRENDER_S3_ACCESS_KEY_ID") or None,
            secret_access_key=config.get("RONRENDER_S3_SECRET_ACCESS_KEY") or None,
            region=config.get("RONRENDER_S3_REGION") or "us-east-1",
            prefix=config.get("RONRENDER_S3_PREFIX") or "",
            public_endpoint_url=config.get("RONRENDER_S3_PUBLIC_ENDPOINT_URL") or None,
            addressing_style=config.get("RONRENDER_S3_ADDRESSING_STYLE") or "path",
        )
        # paths for Blender and the image checks come from a local cache of the store
        return S3Storage(
            settings,
            Path(config["RONRENDER_STORAGE_DIR"]) / "cache",
            cache_max_bytes=int(config.get("RONRENDER_S3_CACHE_MAX_BYTES") or CACHE_MAX_BYTES),
        )
    raise ValueError(f"RONRENDER_STORAGE must be one of {', '.join(STORAGE_KINDS)}, not {kind!r}")


def app_storage() -> Storage:
    """The app's storage, built once per process (a boto3 client is slow to make and thread-safe)."""
    return app_scoped("ronrender_storage", lambda: open_storage(current_app.config))


def send_stored(
    sha256: str,
    *,
    mimetype: str,
    download_name: str | None = None,
    as_attachment: bool = False,
    max_age: int | None = None,
) -> Response:
    """Answer a download of a stored object: a redirect to a presigned URL when the store
    gives one (the bytes bypass the backend; Range requests work there too), else the
    file itself, streamed by Flask with Range and conditional requests."""
    store = app_storage()
    url = store.presigned_get_url(
        sha256, download_name=download_name if as_attachment else None, content_type=mimetype
    )
    if url is not None:
        response = redirect(url, code=302)
        response.headers["Cache-Control"] = "no-store"  # the signature expires: never cache the redirect
        return response
    return send_file(
        store.path_for(sha256),
        mimetype=mimetype,
        download_name=download_name,
        as_attachment=as_attachment,
        max_age=max_age,
        conditional=True,
    )
