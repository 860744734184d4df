"""Resumable scene uploads in chunks: a dropped connection costs only the chunk in
flight, a chunk in the wrong place changes nothing, and the result is the same
content-addressed scene file a one-shot upload makes."""

from __future__ import annotations

import hashlib

import pytest

from backend.extensions import db
from backend.models import SceneUpload
from tests.backend.helpers import SCENES
from tests.identities import OTHER_ARTIST_KEY, signed_in_client

pytestmark = pytest.mark.integration

UPLOADS = f"{SCENES}/uploads"


def put_chunk(client, upload_id: str, offset: int, data: bytes):
    return client.put(
        f"{UPLOADS}/{upload_id}",
        query_string={"offset": offset},
        data=data,
        content_type="application/octet-stream",
    )


def test_a_dropped_upload_resumes_where_it_stopped(client, run_workers, scene_files):
    data = scene_files["tiny"].read_bytes()
    third = len(data) // 3
    upload = client.post(UPLOADS, json={"size_bytes": len(data)}).json
    assert (upload["received_bytes"], upload["size_bytes"]) == (0, len(data))
    assert put_chunk(client, upload["id"], 0, data[:third]).json["received_bytes"] == third

    # The connection drops; the client asks where to go on, and a stale retry of the first chunk is refused.
    resume_at = client.get(f"{UPLOADS}/{upload['id']}").json["received_bytes"]
    assert resume_at == third
    stale = put_chunk(client, upload["id"], 0, data[:third])
    assert stale.status_code == 409 and stale.json["detail"]["received_bytes"] == third
    early = client.post(f"{UPLOADS}/{upload['id']}/complete")
    assert early.status_code == 409 and early.json["reason"] == "UPLOAD_INCOMPLETE"

    assert put_chunk(client, upload["id"], resume_at, data[resume_at:]).json["received_bytes"] == len(data)
    done = client.post(f"{UPLOADS}/{upload['id']}/complete")
    assert done.status_code == 201
    assert done.json["sha256"] == hashlib.sha256(data).hexdigest()  # the very same bytes, in order
    run_workers()
    assert client.get(f"{SCENES}/{done.json['sha256']}").json["state"] == "READY"
    assert db.session.query(SceneUpload).count() == 0  # nothing left staged


def test_chunks_cannot_overrun_the_declared_size_or_the_limit(app, client):
    app.config["RONRENDER_MAX_SCENE_UPLOAD_BYTES"] = 1000
    assert client.post(UPLOADS, json={"size_bytes": 1001}).status_code == 413
    upload = client.post(UPLOADS, json={"size_bytes": 10}).json
    assert put_chunk(client, upload["id"], 0, b"x" * 11).status_code == 413
    assert client.get(f"{UPLOADS}/{upload['id']}").json["received_bytes"] == 0  # the overrun left nothing


def test_an_upload_that_is_not_a_blend_file_leaves_nothing(client):
    upload = client.post(UPLOADS, json={"size_bytes": 5}).json
    put_chunk(client, upload["id"], 0, b"hello")
    refused = client.post(f"{UPLOADS}/{upload['id']}/complete")
    assert refused.status_code == 415
    assert db.session.query(SceneUpload).count() == 0
    assert client.get(f"{UPLOADS}/{upload['id']}").status_code == 404


def test_an_upload_is_its_starters_alone(app, client):
    upload = client.post(UPLOADS, json={"size_bytes": 5}).json
    other = signed_in_client(app, OTHER_ARTIST_KEY)
    assert other.get(f"{UPLOADS}/{upload['id']}").status_code == 404
    assert put_chunk(other, upload["id"], 0, b"12345").status_code == 404
    assert client.get(f"{UPLOADS}/{upload['id']}").json["received_bytes"] == 0
