"""Scene files: upload (raw .blend bytes, streamed), analysis status, download for nodes."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app, request, send_file

from backend.api.schemas import SceneOut
from backend.errors import UploadTooLarge
from backend.services import scene_intake
from shared.protocol import API_PREFIX

blueprint = APIBlueprint("scenes", __name__, url_prefix=f"{API_PREFIX}/scenes", tag="Scenes")


@blueprint.post("")
@blueprint.output(SceneOut, status_code=201)
@blueprint.doc(
    summary="Upload a packed .blend",
    description="The request body is the raw .blend (application/octet-stream). It is "
    "streamed to storage and named by its sha256; the same bytes are stored once. "
    "Blender then analyses it on a queue: poll the scene until it is READY or INVALID.",
    responses={200: "Already stored", 400: "Empty", 413: "Too large", 415: "Not a .blend"},
)
def upload_scene() -> Any:
    limit = current_app.config["RONRENDER_MAX_SCENE_UPLOAD_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise UploadTooLarge(limit)
    scene, created = scene_intake.receive_scene(request.stream)
    return scene, 201 if created else 200


@blueprint.get("/<sha256>")
@blueprint.output(SceneOut)
@blueprint.doc(summary="A scene file and what Blender read from it")
def get_scene(sha256: str) -> Any:
    return scene_intake.get_scene(sha256)


@blueprint.get("/<sha256>/file")
@blueprint.doc(summary="Download a scene file's bytes (for nodes)")
def download_scene(sha256: str) -> Any:
    return send_file(scene_intake.scene_file_path(sha256), mimetype="application/octet-stream")
