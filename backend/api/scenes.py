"""Scene files: upload (raw .blend bytes, streamed), analysis status, download for nodes."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app, request

from backend.api.access import bearer, caller
from backend.api.schemas import SceneOut
from backend.errors import NotFound, UploadTooLarge
from backend.services import scene_intake
from backend.storage import send_stored
from shared.protocol import API_PREFIX

blueprint = APIBlueprint("scenes", __name__, url_prefix=f"{API_PREFIX}/scenes", tag="Scenes")


@blueprint.post("")
@blueprint.auth_required(bearer)
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
    scene, created = scene_intake.receive_scene(request.stream, caller().address)
    return scene, 201 if created else 200


@blueprint.get("/<sha256>")
@blueprint.auth_required(bearer)
@blueprint.output(SceneOut)
@blueprint.doc(summary="A scene file I uploaded and what Blender read from it")
def get_scene(sha256: str) -> Any:
    _require_reader(sha256, allow_nodes=False)
    return scene_intake.get_scene(sha256)


@blueprint.get("/<sha256>/file")
@blueprint.auth_required(bearer)
@blueprint.doc(summary="Download a scene file's bytes: its uploader, or a node while it holds a frame of it")
def download_scene(sha256: str) -> Any:
    _require_reader(sha256, allow_nodes=True)
    scene_intake.require_ready(sha256)
    return send_stored(sha256, mimetype="application/octet-stream")


def _require_reader(sha256: str, *, allow_nodes: bool) -> None:
    me = caller()
    if me.is_admin or scene_intake.is_owner(sha256, me.address):
        return
    if allow_nodes and scene_intake.node_holds_work_of(sha256, me.address):
        return
    raise NotFound(f"no scene file {sha256}")
