"""Scene files kept on the node by their content address, so each is downloaded once.

A size limit keeps the cache in bounds: the least recently used scenes go first,
never one a slot is using. Downloads resume from a partial file, and every file is
checked against its sha256 before it is used; a mismatch is fetched again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from node_runner import defaults

HASH_CHUNK_BYTES = 1024 * 1024
log = logging.getLogger(__name__)


class SceneChecksumMismatch(RuntimeError):
    pass


class SceneSource(Protocol):
    """Where scenes come from (the backend); resumes into an existing partial file."""

    def download_scene(
        self, sha256: str, destination: Path, on_bytes: Callable[[int, int], None] | None = None
    ) -> int: ...


class SceneCache:
    def __init__(
        self,
        root: Path,
        source: SceneSource,
        limit_bytes: int = defaults.CACHE_LIMIT_BYTES,
        *,
        attempts: int = defaults.SCENE_DOWNLOAD_ATTEMPTS,
        on_bytes: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.root = root
        self.source = source
        self.limit_bytes = limit_bytes
        self.attempts = attempts
        self.on_bytes = on_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # guards the fields below
        self._fetching: dict[str, threading.Lock] = {}
        self._in_use: dict[str, int] = {}
        self.downloads = 0  # scene files fetched (a refetch after a bad hash counts again)
        self.hits = 0
        self.bytes_downloaded = 0
        self.evicted: list[str] = []

    def path_for(self, sha256: str) -> Path:
        return self.root / f"{sha256}.blend"

    @contextlib.contextmanager
    def use(self, sha256: str) -> Iterator[Path]:
        """The scene's local path, kept from eviction while the caller uses it."""
        with self._lock:
            self._in_use[sha256] = self._in_use.get(sha256, 0) + 1
        try:
            yield self.ensure(sha256)
        finally:
            with self._lock:
                self._in_use[sha256] -= 1
                if not self._in_use[sha256]:
                    del self._in_use[sha256]

    def ensure(self, sha256: str) -> Path:
        """The local path of the scene file, downloading and checking it if new."""
        path = self.path_for(sha256)
        with self._lock:
            fetching = self._fetching.setdefault(sha256, threading.Lock())
        with fetching:  # two slots on one new scene: one downloads, the other waits for it
            if path.is_file():
                os.utime(path)  # most recently used
                with self._lock:
                    self.hits += 1
                return path
            self._download(sha256, path)
        self.evict()
        return path

    def evict(self) -> None:
        """Drop least recently used scenes until the cache is within its limit."""
        with self._lock:
            files = sorted(self.root.glob("*.blend"), key=lambda p: p.stat().st_mtime)
            total = sum(p.stat().st_size for p in files)
            for candidate in files:
                if total <= self.limit_bytes:
                    break
                sha256 = candidate.stem
                if sha256 in self._in_use:
                    continue
                total -= candidate.stat().st_size
                candidate.unlink(missing_ok=True)
                self.evicted.append(sha256)
                log.info("scene cache: evicted %s (least recently used)", sha256[:12])

    def _download(self, sha256: str, path: Path) -> None:
        partial = path.with_suffix(".partial")
        for attempt in range(1, self.attempts + 1):
            if partial.exists():
                log.info("resuming the download of scene %s at %d bytes", sha256[:12], partial.stat().st_size)
            started = time.monotonic()
            progress = None if self.on_bytes is None else lambda d, t: self.on_bytes(sha256, d, t)  # type: ignore[misc]
            got = self.source.download_scene(sha256, partial, progress)
            with self._lock:
                self.downloads += 1
                self.bytes_downloaded += got
            actual = _sha256_of(partial)
            if actual == sha256:
                os.replace(partial, path)
                log.info("downloaded scene %s in %.1f s", sha256[:12], time.monotonic() - started)
                return
            partial.unlink(missing_ok=True)  # never resume from bytes that hash wrong
            log.warning(
                "scene %s arrived corrupted (hashes to %s); fetching it again (%d/%d)",
                sha256[:12], actual[:12], attempt, self.attempts,
            )  # fmt: skip
        raise SceneChecksumMismatch(f"scene {sha256} arrived corrupted {self.attempts} times")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
