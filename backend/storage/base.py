"""What every storage of scene files and render outputs offers, whatever holds the bytes.

Objects are named by the sha256 of their bytes (their content address); the key of an
object is the same in every implementation (``objects/ab/abcdef…``), so a farm can move
from a local directory to an object store by copying the tree.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from backend import defaults
from backend.errors import UploadTooLarge

# Presigned URLs live long enough for a slow node to start a big download, not for days.
PRESIGNED_URL_TTL_S = 3600
SHA256_HEX_CHARS = 64


@dataclass(frozen=True)
class StoredObject:
    sha256: str
    size_bytes: int
    newly_stored: bool
    first_bytes: bytes


def object_key(sha256: str) -> str:
    """The relative key of an object: ``objects/ab/abcdef…`` (validated: it names a file)."""
    if len(sha256) != SHA256_HEX_CHARS or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 content address: {sha256!r}")
    return f"objects/{sha256[:2]}/{sha256}"


class HashingReader:
    """Reads ``stream`` in chunks, hashing and counting as it goes, and refuses to go past
    ``max_bytes`` (raising ``UploadTooLarge``) so a caller can stop before storing anything."""

    def __init__(self, stream: BinaryIO, max_bytes: int) -> None:
        self.stream = stream
        self.max_bytes = max_bytes
        self.digest = hashlib.sha256()
        self.size = 0
        self.first_bytes = b""

    def chunks(self, chunk_bytes: int = defaults.UPLOAD_CHUNK_BYTES) -> Iterator[bytes]:
        while chunk := self.stream.read(chunk_bytes):
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise UploadTooLarge(self.max_bytes)
            if len(self.first_bytes) < 16:
                self.first_bytes += chunk[: 16 - len(self.first_bytes)]
            self.digest.update(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


class Storage(ABC):
    """Content-addressed storage: the one interface the services use for stored bytes."""

    kind: str

    @abstractmethod
    def save_stream(self, stream: BinaryIO, max_bytes: int) -> StoredObject:
        """Store ``stream`` while hashing it, never holding it all in memory; bytes already
        stored are not written again. Raises ``UploadTooLarge`` (keeping nothing) past
        ``max_bytes``."""

    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def size(self, sha256: str) -> int | None:
        """The object's size in bytes, or None when it is not stored."""

    def describe(self, sha256: str) -> StoredObject | None:
        """A stored object's size and first bytes, or None: what a caller checks after
        bytes arrived by a presigned PUT, without reading them all."""
        try:
            with self.open(sha256) as body:
                first_bytes = body.read(16)
        except FileNotFoundError:
            return None
        size = self.size(sha256)
        return None if size is None else StoredObject(sha256, size, False, first_bytes)

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """The object's bytes as a stream (close it); ``FileNotFoundError`` when missing."""

    @abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove the object; nothing happens when it is not stored."""

    @abstractmethod
    def path_for(self, sha256: str) -> Path:
        """A local file holding the object, for code that needs a path (Blender, image
        checks, ``send_file``). An object store downloads it into its local cache first."""

    @contextmanager
    def local_copy(self, sha256: str) -> Iterator[Path]:
        """A local file with the object's bytes for the duration of the block."""
        yield self.path_for(sha256)

    def presigned_get_url(
        self,
        sha256: str,
        *,
        expires_s: int = PRESIGNED_URL_TTL_S,
        download_name: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        """A URL that downloads the object straight from the store, or None when the
        store cannot give one (then stream it through the backend)."""
        return None

    def presigned_put_url(
        self, sha256: str, size_bytes: int, *, expires_s: int = PRESIGNED_URL_TTL_S
    ) -> str | None:
        """A URL to PUT exactly these bytes (``size_bytes`` long, hashing to ``sha256``)
        straight into the store, or None when the store cannot give one."""
        return None

    @abstractmethod
    def check(self) -> str:
        """Prove the store answers (for the health endpoint); a short description, or raises."""
