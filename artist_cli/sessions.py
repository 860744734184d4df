"""Session tokens the CLI keeps between runs, per backend and wallet address, so that a
command signs in once an hour instead of decrypting the keystore every time (the way
the add-on's connected wallet stays signed in).

The file holds bearer tokens: it is written readable by its owner only, replaced
atomically, and ``ronrender sign-out`` empties it for a backend. A token the backend
no longer accepts (expired, revoked, another farm on the same address) makes the client
sign in again with the wallet.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

log = logging.getLogger(__name__)

SESSIONS_FILE_ENV = "RONRENDER_SESSIONS_FILE"
# A session this close to its end is not reused: a command may run for a while.
MIN_REMAINING = timedelta(minutes=5)


def default_sessions_file() -> Path:
    configured = os.environ.get(SESSIONS_FILE_ENV)
    if configured:
        return Path(configured)
    return Path(click.get_app_dir("ronrender")) / "sessions.json"


class SessionStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_sessions_file()

    def get(self, backend_url: str, address: str) -> tuple[str, datetime] | None:
        """A kept session token for this backend and address, and when it ends."""
        kept = self._read().get(_key(backend_url, address))
        expires_at = _end_of(kept)  # None unless an entry this CLI wrote
        token = kept.get("token") if isinstance(kept, dict) else None
        if expires_at is None or not isinstance(token, str):
            return None  # none, or not one this CLI wrote: sign in
        if expires_at - datetime.now(UTC) < MIN_REMAINING:
            return None
        return token, expires_at

    def put(self, backend_url: str, address: str, token: str, expires_at: datetime) -> None:
        """Keep a session; a file that cannot be written only costs the next command a sign-in."""
        now = datetime.now(UTC)
        sessions = {k: v for k, v in self._read().items() if (_end_of(v) or now) > now}
        sessions[_key(backend_url, address)] = {"token": token, "expires_at": expires_at.isoformat()}
        try:
            self._write(sessions)
        except OSError as error:
            log.warning("could not keep the session in %s: %s", self.path, error)

    def forget(self, backend_url: str) -> int:
        """Drop every session kept for this backend; how many there were."""
        sessions = self._read()
        prefix = _key(backend_url, "")
        kept = {k: v for k, v in sessions.items() if not k.startswith(prefix)}
        if len(kept) != len(sessions):
            self._write(kept)
        return len(sessions) - len(kept)

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            sessions = json.loads(self.path.read_text())
        except (OSError, ValueError):  # none yet, or unreadable: sign in again
            return {}
        return sessions if isinstance(sessions, dict) else {}

    def _write(self, sessions: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".sessions-")  # mode 0600
        with os.fdopen(handle, "w") as out:
            json.dump(sessions, out)
        os.replace(temporary, self.path)


def _end_of(kept: object) -> datetime | None:
    """When a kept session ends; None for an entry this CLI did not write."""
    if not isinstance(kept, dict):
        return None
    try:
        ends = datetime.fromisoformat(kept["expires_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return ends if ends.tzinfo is not None else ends.replace(tzinfo=UTC)


def _key(backend_url: str, address: str) -> str:
    return f"{backend_url.rstrip('/')} {address.lower()}"
