"""Taking in an uploaded scene file: stream it to storage, check it is a .blend,
record it once by its content address, and queue its analysis."""

from __future__ import annotations

from typing import BinaryIO

from flask import current_app

from backend import queues
from backend.errors import EmptyUpload, NotABlendFile, NotFound
from backend.extensions import db
from backend.models import SceneFile
from backend.storage import LocalStorage
from shared.blend_file import looks_like_blend
from shared.states import SceneState


def storage() -> LocalStorage:
    return LocalStorage(current_app.config["RONRENDER_STORAGE_DIR"])


def receive_scene(stream: BinaryIO) -> tuple[SceneFile, bool]:
    """Store an upload; returns the scene file and whether it is new."""
    store = storage()
    stored = store.save_stream(stream, current_app.config["RONRENDER_MAX_SCENE_UPLOAD_BYTES"])
    existing = db.session.get(SceneFile, stored.sha256)
    if existing is not None:
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
    db.session.commit()
    queues.enqueue_scene_analysis(scene.sha256)
    return scene, True


def get_scene(sha256: str) -> SceneFile:
    scene = db.session.get(SceneFile, sha256)
    if scene is None:
        raise NotFound(f"no scene file {sha256}")
    return scene


def scene_file_path(sha256: str) -> str:
    """The stored bytes of a usable scene file, for nodes to download."""
    scene = get_scene(sha256)
    if scene.state != SceneState.READY:
        raise NotFound(f"scene file {sha256} is {scene.state}")
    return str(storage().path_for(sha256))
