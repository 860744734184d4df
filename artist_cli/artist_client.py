"""The artist's calls to the RonRender API: upload, create and accept a job, follow it, download."""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm.utils import CallbackIOWrapper

from artist_cli.sessions import SessionStore
from shared import protocol
from shared.api_client import ApiClient, ApiError, SigningWallet
from shared.states import SETTLED_JOB_STATES, SceneState

POLL_INTERVAL_S = 0.5
ANALYSIS_POLL_INTERVAL_S = 0.1  # analysis takes about a second: the job is created right after it


class ArtistClient:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.api = ApiClient(base_url, timeout_s=300, token=token)

    @property
    def has_credentials(self) -> bool:
        return self.api.signed_in or self.api.wallet is not None

    def sign_in_with(
        self, wallet: SigningWallet, sessions: SessionStore | None = None, address: str | None = None
    ) -> None:
        """Sign in with the wallet (unless an API token was given): challenge, signature,
        session. With ``sessions``, a session kept for ``address`` is used first, and each
        new one is kept."""
        if self.api.signed_in:
            return
        self.api.wallet = wallet
        if sessions is None:
            return
        base_url = self.api.base_url
        kept = sessions.get(base_url, address) if address else None
        if kept is not None:
            self.api.resume_session(*kept)

        def keep(token: str, expires_at: datetime) -> None:
            sessions.put(base_url, wallet.address, token, expires_at)

        self.api.on_signed_in = keep

    def create_api_token(self, name: str, expires_in_days: int | None) -> dict[str, Any]:
        body = {"name": name, "expires_in_days": expires_in_days}
        return self.api.json("POST", protocol.auth_tokens_path(), json=body)

    def api_tokens(self) -> list[dict[str, Any]]:
        return self.api.json("GET", protocol.auth_tokens_path())["tokens"]

    def revoke_api_token(self, token_id: str) -> dict[str, Any]:
        return self.api.json("DELETE", f"{protocol.auth_tokens_path()}/{token_id}")

    def stored_scene(self, sha256: str) -> dict[str, Any] | None:
        """The scene file if this artist already uploaded these bytes (then nothing is sent again)."""
        try:
            return self.api.json("GET", protocol.scene_path(sha256))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def upload_scene(self, path: Path, on_bytes: Callable[[int], None]) -> dict[str, Any]:
        """Stream the file to the backend; ``on_bytes`` is called with each chunk's size."""
        with open(path, "rb") as handle:
            body = CallbackIOWrapper(on_bytes, handle, "read")
            return self.api.json(
                "POST",
                protocol.scene_upload_path(),
                data=body,
                headers={"Content-Type": "application/octet-stream"},
            )

    def wait_for_scene(self, sha256: str, timeout_s: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            scene = self.api.json("GET", protocol.scene_path(sha256))
            if scene["state"] != SceneState.ANALYZING or time.monotonic() > deadline:
                return scene
            time.sleep(ANALYSIS_POLL_INTERVAL_S)

    def create_job(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.api.json("POST", protocol.jobs_path(), json=request)

    def acceptance_message(self, job_id: str, artist_address: str) -> dict[str, Any]:
        return self.api.json(
            "GET", protocol.job_acceptance_path(job_id), params={"artist_address": artist_address}
        )

    def accept_job(self, job_id: str, artist_address: str, signature: str) -> dict[str, Any]:
        body = {"artist_address": artist_address, "signature": signature}
        return self.api.json("POST", protocol.job_accept_path(job_id), json=body)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self.api.json("POST", protocol.job_cancel_path(job_id))

    def job_escrow(self, job_id: str) -> dict[str, Any]:
        return self.api.json("GET", protocol.job_escrow_path(job_id))

    def escrow_info(self) -> dict[str, Any]:
        return self.api.json("GET", protocol.escrow_path())

    def wallet_balance(self, address: str) -> dict[str, Any]:
        return self.api.json("GET", protocol.wallet_path(address))

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.api.json("GET", protocol.job_path(job_id))

    def frames(self, job_id: str) -> list[dict[str, Any]]:
        return self.api.json("GET", protocol.job_frames_path(job_id))["frames"]

    def wait_for_job(self, job_id: str, on_update: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        while True:
            job = self.get_job(job_id)
            on_update(job)
            if job["state"] in SETTLED_JOB_STATES:
                return job
            time.sleep(POLL_INTERVAL_S)

    def download(self, job_id: str, directory: Path) -> list[Path]:
        """Every verified frame of the job, unpacked into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        with self.api.request("GET", protocol.job_zip_path(job_id), stream=True) as response:
            fd, zip_name = tempfile.mkstemp(suffix=".zip")
            try:
                with os.fdopen(fd, "wb") as handle:
                    for chunk in response.iter_content(protocol.UPLOAD_CHUNK_BYTES):
                        handle.write(chunk)
                with zipfile.ZipFile(zip_name) as archive:
                    archive.extractall(directory)
                    return [directory / name for name in archive.namelist()]
            finally:
                os.unlink(zip_name)
