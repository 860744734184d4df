"""Downloads of stored objects through the app: a presigned redirect to the object store,
or the bytes streamed by Flask from the local directory."""

from __future__ import annotations

import io
import os

import pytest
import requests

from backend.storage import app_storage, send_stored
from tests.backend.test_storage import s3_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_send_stored_redirects_to_the_store_or_streams_itself(app, kind, tmp_path, request):
    """The download helper for scene files and frames: S3 answers with a presigned
    redirect (bytes bypass the backend), the local directory with the bytes."""
    if kind == "s3":
        app.config.update(s3_config(request.getfixturevalue("seaweedfs"), tmp_path))
    app.extensions.pop("ronrender_storage", None)
    data = b"\x89PNG" + os.urandom(3000)
    stored = app_storage().save_stream(io.BytesIO(data), max_bytes=len(data))
    with app.test_request_context():
        response = send_stored(
            stored.sha256, mimetype="image/png", download_name="frame_00002.png", as_attachment=True
        )
        response.direct_passthrough = False
        if kind == "local":
            assert response.status_code == 200 and response.get_data() == data
            assert "frame_00002.png" in response.headers["Content-Disposition"]
            return
        assert response.status_code == 302
        assert response.headers["Cache-Control"] == "no-store"
        download = requests.get(response.headers["Location"], headers={"Range": "bytes=4-9"}, timeout=10)
    assert download.status_code == 206 and download.content == data[4:10]
    app.extensions.pop("ronrender_storage", None)
