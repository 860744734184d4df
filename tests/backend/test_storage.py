"""Content-addressed local storage: streamed, hashed, stored once, limits enforced."""

from __future__ import annotations

import hashlib
import io

import pytest

from backend.errors import UploadTooLarge
from backend.storage import LocalStorage

pytestmark = pytest.mark.unit


class ChunkedStream(io.RawIOBase):
    """A stream that yields at most 4 KiB per read and counts the largest read."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self.data.read(min(size, 4096) if size > 0 else 4096)


def test_same_bytes_are_stored_once(tmp_path):
    store = LocalStorage(tmp_path)
    data = b"BLENDER-v405" + bytes(range(256)) * 100
    first = store.save_stream(ChunkedStream(data), max_bytes=10**6)
    second = store.save_stream(ChunkedStream(data), max_bytes=10**6)
    assert first.sha256 == second.sha256 == hashlib.sha256(data).hexdigest()
    assert (first.newly_stored, second.newly_stored) == (True, False)
    assert store.path_for(first.sha256).read_bytes() == data
    assert first.first_bytes == data[:16]
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1


def test_too_large_stream_keeps_nothing(tmp_path):
    store = LocalStorage(tmp_path)
    with pytest.raises(UploadTooLarge):
        store.save_stream(ChunkedStream(b"x" * 50_000), max_bytes=10_000)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_delete_removes_the_object(tmp_path):
    store = LocalStorage(tmp_path)
    stored = store.save_stream(ChunkedStream(b"abc"), max_bytes=10)
    store.delete(stored.sha256)
    assert not store.exists(stored.sha256)
