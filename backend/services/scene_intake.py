"""Taking in an uploaded scene file: stream it to storage, check it is a .blend,
record it once by its content address, and queue its analysis."""

from __future__ import annotations

from typing import BinaryIO

from flask import current_app
from sqlalchemy import func, select

from backend import queues
from backend.errors import EmptyUpload, NotABlendFile, NotFound
from backend.extensions import db
from backend.models import Attempt, Frame, Job, Node, SceneFile, SceneOwner
from backend.storage import Storage, app_storage
from shared.blend_file import looks_like_blend
from shared.states import AttemptOutcome, SceneState


def storage() -> Storage:
    return app_storage()


def receive_scene(stream: BinaryIO, owner_address: str) -> tuple[SceneFile, bool]:
    """Store an upload for its uploader; returns the scene file and whether it is new."""
    store = storage()
    stored = store.save_stream(stream, current_app.config["RONRENDER_MAX_SCENE_UPLOAD_BYTES"])
    existing = db.session.get(SceneFile, stored.sha256)
    if existing is not None:
        _record_owner(existing.sha256, owner_address)
        db.session.commit()
        return existing, False
    if stored.size_bytes == 0:
        store.delete(stored.sha256)
        raise EmptyUpload("the upload is empty")
    if not looks_like_blend(stored.first_bytes):
        if stored.newly_stored:
            store.delete(stored.sha256)
        raise NotABlendFile("the upload is not a .blend file")
    scene = SceneFile(sha256=stored.sha256, size_bytes=stored.size_bytes)
    db.session.add(scene)
    db.session.flush()
    _record_owner(scene.sha256, owner_address)
    db.session.commit()
    queues.enqueue_scene_analysis(scene.sha256)
    return scene, True


def _record_owner(sha256: str, owner_address: str) -> None:
    if db.session.get(SceneOwner, (sha256, owner_address)) is None:
        db.session.add(SceneOwner(scene_sha256=sha256, owner_address=owner_address))


def is_owner(sha256: str, address: str) -> bool:
    return db.session.get(SceneOwner, (sha256, address)) is not None


def node_holds_work_of(sha256: str, owner_address: str) -> bool:
    """True while one of the wallet's nodes holds an open lease on a frame of this scene."""
    lease = db.session.scalar(
        select(Attempt.id)
        .join(Frame, Frame.id == Attempt.frame_id)
        .join(Job, Job.id == Frame.job_id)
        .join(Node, Node.id == Attempt.node_id)
        .where(
            Job.scene_sha256 == sha256,
            Attempt.outcome == AttemptOutcome.OPEN,
            func.lower(Node.owner_address) == owner_address.lower(),
        )
        .limit(1)
    )
    return lease is not None


def get_scene(sha256: str) -> SceneFile:
    scene = db.session.get(SceneFile, sha256)
    if scene is None:
        raise NotFound(f"no scene file {sha256}")
    return scene


def require_ready(sha256: str) -> SceneFile:
    """A usable scene file, for nodes to download."""
    scene = get_scene(sha256)
    if scene.state != SceneState.READY:
        raise NotFound(f"scene file {sha256} is {scene.state}")
    return scene
