"""Scene files in chunks: start an upload, append chunks at the offset the backend
expects, ask where to resume after a dropped connection, complete.

Chunks are staged in ``$RONRENDER_DATA_DIR/uploads`` (behind several backend hosts,
share that directory or route one upload to one host). A chunk at the wrong offset
changes nothing and answers 409 with the offset to resume from.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from flask import current_app
from sqlalchemy import update

from backend.errors import NotFound, RonRenderError, UploadTooLarge
from backend.extensions import db
from backend.models import SceneFile, SceneUpload
from backend.services import scene_intake

COPY_CHUNK_BYTES = 1024 * 1024


class ChunkOutOfPlace(RonRenderError):
    status = 409
    reason = "CHUNK_OUT_OF_PLACE"


class UploadIncomplete(RonRenderError):
    status = 409
    reason = "UPLOAD_INCOMPLETE"


def _staging_path(upload_id: str) -> Path:
    directory = Path(current_app.config["RONRENDER_DATA_DIR"]) / "uploads"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{upload_id}.part"


def start_upload(owner_address: str, size_bytes: int) -> SceneUpload:
    limit = current_app.config["RONRENDER_MAX_SCENE_UPLOAD_BYTES"]
    if size_bytes > limit:
        raise UploadTooLarge(limit)
    upload = SceneUpload(owner_address=owner_address, size_bytes=size_bytes)
    db.session.add(upload)
    db.session.commit()
    _staging_path(upload.id).touch()
    return upload


def get_upload(upload_id: str, owner_address: str) -> SceneUpload:
    upload = db.session.get(SceneUpload, upload_id)
    if upload is None or upload.owner_address.lower() != owner_address.lower():
        raise NotFound(f"no upload {upload_id}")
    return upload


def append_chunk(upload: SceneUpload, offset: int, stream: BinaryIO) -> SceneUpload:
    """Append the chunk if it starts where the staged bytes end; refuse it otherwise."""
    if offset != upload.received_bytes:
        raise ChunkOutOfPlace(
            f"this upload continues at byte {upload.received_bytes}, not {offset}",
            received_bytes=upload.received_bytes,
        )
    room = upload.size_bytes - offset
    written = 0
    staging = _staging_path(upload.id)
    with staging.open("r+b") as staged:
        staged.truncate(offset)  # drop the tail of a chunk that broke off half-written
        staged.seek(offset)
        while block := stream.read(COPY_CHUNK_BYTES):
            written += len(block)
            if written > room:
                staged.truncate(offset)
                raise UploadTooLarge(upload.size_bytes)
            staged.write(block)
    # Conditional: of two racing chunks for the same offset, one wins.
    moved = db.session.execute(
        update(SceneUpload)
        .where(SceneUpload.id == upload.id, SceneUpload.received_bytes == offset)
        .values(received_bytes=offset + written)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    db.session.refresh(upload)
    if not moved:
        raise ChunkOutOfPlace(
            f"another chunk got there first; continue at byte {upload.received_bytes}",
            received_bytes=upload.received_bytes,
        )
    return upload


def complete_upload(upload: SceneUpload) -> tuple[SceneFile, bool]:
    """Store the staged file like a one-shot upload, then forget the upload."""
    if upload.received_bytes != upload.size_bytes:
        raise UploadIncomplete(
            f"{upload.received_bytes} of {upload.size_bytes} bytes received",
            received_bytes=upload.received_bytes,
        )
    staging = _staging_path(upload.id)
    try:
        with staging.open("rb") as staged:
            return scene_intake.receive_scene(staged, upload.owner_address)
    finally:
        # Stored or refused (not a .blend, empty): either way the upload is over.
        db.session.delete(upload)
        db.session.commit()
        staging.unlink(missing_ok=True)
