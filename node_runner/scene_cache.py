"""Scene files kept on the node by their content address, so each is downloaded once."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from node_runner.backend_client import BackendClient

HASH_CHUNK_BYTES = 1024 * 1024


class SceneChecksumMismatch(RuntimeError):
    pass


class SceneCache:
    def __init__(self, root: Path, client: BackendClient) -> None:
        self.root = root
        self.client = client
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.downloads = 0

    def path_for(self, sha256: str) -> Path:
        return self.root / f"{sha256}.blend"

    def ensure(self, sha256: str) -> Path:
        """The local path of the scene file, downloading and checking it if new."""
        path = self.path_for(sha256)
        with self._lock:
            if path.is_file():
                return path
            partial = path.with_suffix(".partial")
            self.client.download_scene(sha256, partial)
            actual = _sha256_of(partial)
            if actual != sha256:
                partial.unlink(missing_ok=True)
                raise SceneChecksumMismatch(f"downloaded scene hashes to {actual}, expected {sha256}")
            os.replace(partial, path)
            self.downloads += 1
            return path


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
