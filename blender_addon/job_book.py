"""The jobs this artist submitted from Blender, remembered across sessions in a
small JSON file in the add-on's user folder. No bpy module use.

The farm has no "list my jobs" call yet, so the add-on keeps the ids itself.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import defaults


@dataclass(frozen=True)
class BookEntry:
    job_id: str
    backend_url: str
    blend_path: str
    scene_name: str
    created_at: str


class JobBook:
    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[BookEntry]:
        """Newest first; a missing or unreadable file is an empty book."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return [BookEntry(**entry) for entry in raw["jobs"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def job_ids(self, backend_url: str) -> list[str]:
        url = backend_url.rstrip("/")
        return [entry.job_id for entry in self.entries() if entry.backend_url.rstrip("/") == url]

    def add(self, job_id: str, backend_url: str, blend_path: str, scene_name: str) -> None:
        entry = BookEntry(
            job_id, backend_url.rstrip("/"), blend_path, scene_name, datetime.now(UTC).isoformat()
        )
        entries = [entry] + [e for e in self.entries() if e.job_id != job_id]
        self._write(entries[: defaults.JOB_BOOK_MAX_JOBS])

    def forget(self, job_id: str) -> None:
        self._write([e for e in self.entries() if e.job_id != job_id])

    def _write(self, entries: list[BookEntry]) -> None:
        """Whole or not at all: a temporary file renamed over the old one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".jobs-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"jobs": [asdict(e) for e in entries]}, handle, indent=1)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
