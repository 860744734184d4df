"""Content-addressed storage on a local directory (the embedded default).

Objects are named by their sha256; storing the same bytes twice keeps one copy.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from backend.storage.base import HashingReader, Storage, StoredObject, object_key


class LocalStorage(Storage):
    """Objects at ``root/objects/ab/abcdef...``; uploads staged under ``root/staging``."""

    kind = "local"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._staging = self.root / "staging"
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self._staging.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self.root / object_key(sha256)

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int | None:
        try:
            return self.path_for(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def open(self, sha256: str) -> BinaryIO:
        return self.path_for(sha256).open("rb")

    def save_stream(self, stream: BinaryIO, max_bytes: int) -> StoredObject:
        reader = HashingReader(stream, max_bytes)
        fd, staging_name = tempfile.mkstemp(dir=self._staging)
        try:
            with os.fdopen(fd, "wb") as staged:
                for chunk in reader.chunks():
                    staged.write(chunk)
            final = self.path_for(reader.sha256)
            newly_stored = not final.is_file()
            if newly_stored:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging_name, final)
            return StoredObject(reader.sha256, reader.size, newly_stored, reader.first_bytes)
        finally:
            if os.path.exists(staging_name):
                os.unlink(staging_name)

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def check(self) -> str:
        # a store that cannot create a staging file cannot take an upload either
        with tempfile.TemporaryFile(dir=self._staging):
            pass
        return f"local directory {self.root}"
