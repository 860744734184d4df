"""Content-addressed storage of scene files and render outputs on a local directory.

The only module that touches stored bytes. Objects are named by their sha256;
storing the same bytes twice keeps one copy.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from backend import defaults
from backend.errors import UploadTooLarge


@dataclass(frozen=True)
class StoredObject:
    sha256: str
    size_bytes: int
    newly_stored: bool
    first_bytes: bytes


class LocalStorage:
    """Objects at ``root/objects/ab/abcdef...``; uploads staged under ``root/staging``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._staging = self.root / "staging"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._staging.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self._objects / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def save_stream(self, stream: BinaryIO, max_bytes: int) -> StoredObject:
        """Stream ``stream`` to disk while hashing it, never holding it all in memory.

        Raises ``UploadTooLarge`` (and keeps nothing) past ``max_bytes``.
        """
        digest = hashlib.sha256()
        size = 0
        first_bytes = b""
        fd, staging_name = tempfile.mkstemp(dir=self._staging)
        try:
            with os.fdopen(fd, "wb") as staged:
                while chunk := stream.read(defaults.UPLOAD_CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise UploadTooLarge(max_bytes)
                    if len(first_bytes) < 16:
                        first_bytes += chunk[: 16 - len(first_bytes)]
                    digest.update(chunk)
                    staged.write(chunk)
            sha256 = digest.hexdigest()
            final = self.path_for(sha256)
            if final.is_file():
                return StoredObject(sha256, size, newly_stored=False, first_bytes=first_bytes)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging_name, final)
            return StoredObject(sha256, size, newly_stored=True, first_bytes=first_bytes)
        finally:
            if os.path.exists(staging_name):
                os.unlink(staging_name)

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)
