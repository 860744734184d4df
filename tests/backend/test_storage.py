"""Content-addressed storage: streamed, hashed, stored once, limits enforced — the same
suite over the local directory and over a real S3-compatible store (SeaweedFS)."""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from pathlib import Path

import pytest
import requests

from backend.errors import UploadTooLarge
from backend.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    checksum_header,
    open_storage,
)
from backend.storage.s3 import MULTIPART_PART_BYTES

# the local directory is a unit test; the S3 store needs SeaweedFS running: integration
KINDS = [pytest.param("local", marks=pytest.mark.unit), pytest.param("s3", marks=pytest.mark.integration)]

BIG_BYTES = 2 * MULTIPART_PART_BYTES + 12345  # three parts: a multipart upload and a copy


class ChunkedStream(io.RawIOBase):
    """A stream that yields at most 4 KiB per read, as a slow client would."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self.data.read(min(size, 4096) if size > 0 else 4096)


def s3_config(seaweedfs, tmp_path: Path) -> dict[str, str]:
    """The backend's settings for the test store, under a key prefix of this test's own."""
    return {
        **seaweedfs.settings,
        "RONRENDER_S3_PREFIX": f"test-{uuid.uuid4().hex[:12]}/",
        "RONRENDER_STORAGE_DIR": str(tmp_path / "storage"),
    }


@pytest.fixture(params=KINDS)
def store(request, tmp_path) -> Storage:
    if request.param == "local":
        return open_storage(
            {"RONRENDER_STORAGE": "local", "RONRENDER_STORAGE_DIR": str(tmp_path / "storage")}
        )
    return open_storage(s3_config(request.getfixturevalue("seaweedfs"), tmp_path))


def stored_keys(store: Storage) -> list[str]:
    """Every key the store holds, staging included (nothing must be left behind)."""
    if isinstance(store, LocalStorage):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, S3Storage)
    prefix = store.settings.prefix
    answer = store.client.list_objects_v2(Bucket=store.bucket, Prefix=prefix)
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=prefix).get("Uploads", [])
    assert uploads == [], f"multipart uploads left open: {uploads}"
    return sorted(item["Key"][len(prefix) :] for item in answer.get("Contents", []))


def read_all(store: Storage, sha256: str) -> bytes:
    with store.open(sha256) as body:
        return body.read()


def test_same_bytes_are_stored_once(store):
    data = b"BLENDER-v405" + bytes(range(256)) * 100
    first = store.save_stream(ChunkedStream(data), max_bytes=10**6)
    second = store.save_stream(ChunkedStream(data), max_bytes=10**6)
    assert first.sha256 == second.sha256 == hashlib.sha256(data).hexdigest()
    assert (first.newly_stored, second.newly_stored) == (True, False)
    assert first.first_bytes == data[:16]
    assert read_all(store, first.sha256) == data
    assert (store.exists(first.sha256), store.size(first.sha256)) == (True, len(data))
    assert stored_keys(store) == [f"objects/{first.sha256[:2]}/{first.sha256}"]


def test_big_stream_goes_up_in_parts_and_is_stored_once(store):
    data = os.urandom(BIG_BYTES)
    first = store.save_stream(ChunkedStream(data), max_bytes=BIG_BYTES)
    second = store.save_stream(io.BytesIO(data), max_bytes=BIG_BYTES)
    assert first.sha256 == second.sha256 == hashlib.sha256(data).hexdigest()
    assert (first.newly_stored, second.newly_stored) == (True, False)
    assert first.size_bytes == store.size(first.sha256) == BIG_BYTES
    assert hashlib.sha256(read_all(store, first.sha256)).hexdigest() == first.sha256
    # no staging object or open upload stays behind
    assert stored_keys(store) == [f"objects/{first.sha256[:2]}/{first.sha256}"]


@pytest.mark.parametrize("size", [50_000, BIG_BYTES], ids=["one-part", "multipart"])
def test_too_large_stream_keeps_nothing(store, size):
    with pytest.raises(UploadTooLarge):
        store.save_stream(ChunkedStream(b"x" * size), max_bytes=size - 1)
    assert stored_keys(store) == []


def test_delete_removes_the_object_and_missing_objects_say_so(store):
    stored = store.save_stream(ChunkedStream(b"abc"), max_bytes=10)
    assert store.path_for(stored.sha256).read_bytes() == b"abc"
    store.delete(stored.sha256)
    store.delete(stored.sha256)  # deleting twice is fine
    assert not store.exists(stored.sha256)
    assert store.size(stored.sha256) is None
    assert not store.path_for(stored.sha256).exists()
    with pytest.raises(FileNotFoundError):
        store.open(stored.sha256)


def test_paths_and_local_copies_hold_the_bytes(store):
    data = b"render output" * 1000
    stored = store.save_stream(io.BytesIO(data), max_bytes=len(data))
    assert store.path_for(stored.sha256).read_bytes() == data
    with store.local_copy(stored.sha256) as path:
        assert path.read_bytes() == data


def test_empty_stream_is_an_object_too(store):
    stored = store.save_stream(io.BytesIO(b""), max_bytes=10)
    assert (stored.sha256, stored.size_bytes) == (hashlib.sha256(b"").hexdigest(), 0)
    assert store.exists(stored.sha256)


def test_a_content_address_must_be_a_sha256(store):
    with pytest.raises(ValueError):
        store.path_for("../../etc/passwd")


def test_check_answers(store):
    assert store.kind in store.check()


def test_presigned_urls_move_bytes_without_the_backend(store):
    data = b"frame bytes" * 500
    sha256 = hashlib.sha256(data).hexdigest()
    put_url = store.presigned_put_url(sha256, len(data))
    if isinstance(store, LocalStorage):
        # callers fall back to streaming through the backend
        assert put_url is None and store.presigned_get_url(sha256) is None
        return
    assert put_url is not None
    headers = {"x-amz-checksum-sha256": checksum_header(sha256)}
    answer = requests.put(put_url, data=data, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert read_all(store, sha256) == data

    get_url = store.presigned_get_url(sha256, download_name="frame_00001.png", content_type="image/png")
    download = requests.get(get_url, timeout=10)
    assert download.status_code == 200 and download.content == data
    assert download.headers["Content-Type"] == "image/png"
    assert 'filename="frame_00001.png"' in download.headers["Content-Disposition"]
    # a signature is for one object only
    other = get_url.replace(sha256, "0" * 64)
    assert requests.get(other, timeout=10).status_code == 403


@pytest.mark.integration
def test_presigned_put_refuses_other_bytes(seaweedfs, tmp_path):
    store = open_storage(s3_config(seaweedfs, tmp_path))
    data = b"the real frame" * 100
    sha256 = hashlib.sha256(data).hexdigest()
    put_url = store.presigned_put_url(sha256, len(data))
    forged = bytes(reversed(data))  # same length, other bytes
    answer = requests.put(put_url, data=forged, headers={"x-amz-checksum-sha256": checksum_header(sha256)})
    assert answer.status_code >= 400
    assert not store.exists(sha256)


@pytest.mark.unit
def test_open_storage_refuses_an_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="RONRENDER_STORAGE"):
        open_storage({"RONRENDER_STORAGE": "ftp", "RONRENDER_STORAGE_DIR": str(tmp_path)})
    with pytest.raises(ValueError, match="RONRENDER_S3_BUCKET"):
        open_storage({"RONRENDER_STORAGE": "s3", "RONRENDER_STORAGE_DIR": str(tmp_path)})


def test_describe_reads_size_and_first_bytes_only(store):
    data = b"BLENDER-v405" + os.urandom(5000)
    stored = store.save_stream(io.BytesIO(data), max_bytes=len(data))
    described = store.describe(stored.sha256)
    assert (described.size_bytes, described.first_bytes) == (len(data), data[:16])
    empty = store.save_stream(io.BytesIO(b""), max_bytes=1)
    assert (store.describe(empty.sha256).size_bytes, store.describe(empty.sha256).first_bytes) == (0, b"")
    assert store.describe("f" * 64) is None


@pytest.mark.integration
def test_the_s3_cache_is_trimmed_least_recently_used_first(seaweedfs, tmp_path):
    store = open_storage({**s3_config(seaweedfs, tmp_path), "RONRENDER_S3_CACHE_MAX_BYTES": "2500"})
    shas = [store.save_stream(io.BytesIO(os.urandom(1000)), max_bytes=1000).sha256 for _ in range(3)]
    paths = [store.path_for(sha256) for sha256 in shas]
    long_ago = time.time() - 3600
    for age, path in enumerate(paths):  # the first is the least recently used
        os.utime(path, (long_ago + age, long_ago + age))
    store.trim_cache(force=True)
    assert [path.is_file() for path in paths] == [False, True, True]
    assert store.path_for(shas[0]).read_bytes() == read_all(store, shas[0])  # fetched again
