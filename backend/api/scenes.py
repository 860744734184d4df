"""Scene files: upload (raw .blend bytes, streamed), analysis status, download for nodes."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app, request

from backend.api.access import bearer, caller
from backend.api.schemas import SceneOut, UploadChunkQuery, UploadOut, UploadStartIn
from backend.errors import NotFound, UploadTooLarge
from backend.services import scene_intake, scene_uploads
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


# Resumable uploads in chunks (the dashboard; anything with a flaky connection)

UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024


def _upload_view(upload: Any) -> dict[str, Any]:
    return {
        "id": upload.id,
        "size_bytes": upload.size_bytes,
        "received_bytes": upload.received_bytes,
        "chunk_bytes": UPLOAD_CHUNK_BYTES,
    }


@blueprint.post("/uploads")
@blueprint.auth_required(bearer)
@blueprint.input(UploadStartIn)
@blueprint.output(UploadOut, status_code=201)
@blueprint.doc(
    summary="Start a resumable upload of a packed .blend of this size",
    description="Then PUT each chunk to /uploads/{id}?offset=N (raw bytes), in order; after a "
    "dropped connection GET /uploads/{id} says where to resume; POST /uploads/{id}/complete stores it.",
    responses={413: "Larger than the limit"},
)
def start_upload(json_data: dict[str, Any]) -> Any:
    return _upload_view(scene_uploads.start_upload(caller().address, json_data["size_bytes"]))


@blueprint.get("/uploads/<upload_id>")
@blueprint.auth_required(bearer)
@blueprint.output(UploadOut)
@blueprint.doc(summary="How much of an upload arrived: resume from received_bytes")
def upload_status(upload_id: str) -> Any:
    return _upload_view(scene_uploads.get_upload(upload_id, caller().address))


@blueprint.put("/uploads/<upload_id>")
@blueprint.auth_required(bearer)
@blueprint.input(UploadChunkQuery, location="query", arg_name="query_data")
@blueprint.output(UploadOut)
@blueprint.doc(
    summary="Append one chunk (raw bytes) at offset",
    responses={409: "Not where the upload continues: the body says where", 413: "Past the declared size"},
)
def upload_chunk(upload_id: str, query_data: dict[str, Any]) -> Any:
    upload = scene_uploads.get_upload(upload_id, caller().address)
    return _upload_view(scene_uploads.append_chunk(upload, query_data["offset"], request.stream))


@blueprint.post("/uploads/<upload_id>/complete")
@blueprint.auth_required(bearer)
@blueprint.output(SceneOut, status_code=201)
@blueprint.doc(
    summary="Every byte arrived: store the scene file and analyse it",
    responses={200: "Already stored", 409: "Bytes missing", 415: "Not a .blend"},
)
def complete_upload(upload_id: str) -> Any:
    scene, created = scene_uploads.complete_upload(scene_uploads.get_upload(upload_id, caller().address))
    return scene, 201 if created else 200
