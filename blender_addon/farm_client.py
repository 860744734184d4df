"""The artist's calls to the farm's HTTP API, for the add-on. No bpy module use.

Upload with progress, cancel and retry; polling a scene until Blender has read
it; creating, accepting, following and cancelling jobs; downloading verified
frames with their sha256 checked. Every failure becomes a ``FarmError`` with the
backend's reason code, or ``UNREACHABLE`` / ``TIMEOUT`` / ``NETWORK_ERROR`` when
the backend did not answer, so the caller can report it and nothing hangs.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import requests

from . import defaults
from .errors import Cancelled, FarmError
from .vendor import protocol
from .vendor.api_client import ApiClient, ApiError
from .vendor.states import SceneState

ProgressCallback = Callable[[int, int], None]


def _never_cancelled() -> bool:
    return False


class ProgressReader:
    """A file opened for an upload: ``requests`` reads it in blocks, and each
    block reports the bytes sent so far; a set cancel flag stops the upload."""

    def __init__(
        self, handle: BinaryIO, size: int, on_progress: ProgressCallback, cancelled: Callable[[], bool]
    ) -> None:
        self.handle = handle
        self.size = size
        self.sent = 0
        self.on_progress = on_progress
        self.cancelled = cancelled

    def __len__(self) -> int:
        return self.size

    def read(self, size: int = -1) -> bytes:
        if self.cancelled():
            raise Cancelled("the upload was stopped")
        chunk = self.handle.read(size)
        self.sent += len(chunk)
        self.on_progress(self.sent, self.size)
        return chunk


class FarmClient:
    """One farm, one artist: ``token`` (if any) is sent as ``Authorization: Bearer``."""

    def __init__(self, base_url: str, *, token: str = "") -> None:
        base_url = base_url.strip()
        if not base_url.startswith(("http://", "https://")):
            raise FarmError(
                f"the backend URL {base_url!r} must start with http:// or https://", reason="BAD_URL"
            )
        self.base_url = base_url.rstrip("/")
        self.api = ApiClient(self.base_url)
        self.api.session.headers["User-Agent"] = "ronrender-blender-addon"
        if token.strip():
            self.api.session.headers["Authorization"] = f"Bearer {token.strip()}"

    # --- plumbing ---------------------------------------------------------------

    def _call(self, method: str, path: str, *, attempts: int = 1, **kwargs: Any) -> requests.Response:
        """One request; transient failures are retried up to ``attempts`` times."""
        kwargs.setdefault("timeout", (defaults.CONNECT_TIMEOUT_S, defaults.READ_TIMEOUT_S))
        for attempt in range(1, attempts + 1):
            try:
                return self.api.request(method, path, **kwargs)
            except (ApiError, requests.RequestException) as error:
                farm_error = self._farm_error(error)
                if not farm_error.transient or attempt == attempts:
                    raise farm_error from error
            time.sleep(defaults.RETRY_DELAYS_S[min(attempt, len(defaults.RETRY_DELAYS_S)) - 1])
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._call(method, path, **kwargs)
        try:
            return response.json() if response.content else None
        except ValueError as error:
            raise FarmError(
                f"the farm at {self.base_url} answered {path} with something that is not JSON",
                reason="BAD_RESPONSE",
            ) from error

    def _farm_error(self, error: BaseException) -> FarmError:
        if isinstance(error, ApiError):
            return FarmError(
                error.message or f"HTTP {error.status}",
                reason=error.reason or f"HTTP_{error.status}",
                detail=error.detail,
                status=error.status,
                transient=error.transient,
            )
        if isinstance(error, requests.ConnectionError) and not isinstance(error, requests.ConnectTimeout):
            return FarmError(
                f"cannot reach the farm at {self.base_url}: is the backend URL right and the backend up?",
                reason="UNREACHABLE",
                detail=str(error),
                transient=True,
            )
        if isinstance(error, requests.Timeout):
            return FarmError(
                f"the farm at {self.base_url} did not answer in time",
                reason="TIMEOUT",
                detail=str(error),
                transient=True,
            )
        return FarmError(f"talking to the farm failed: {error}", reason="NETWORK_ERROR", detail=str(error))

    def ping(self) -> None:
        """Fail early (before packing a big scene) when the farm cannot be reached;
        any HTTP answer, even an error, proves it can."""
        try:
            self._call("GET", "/openapi.json", stream=True).close()
        except FarmError as error:
            if error.status is None:
                raise

    # --- scenes -------------------------------------------------------------------

    def find_scene(self, sha256: str) -> dict[str, Any] | None:
        """The scene file stored under ``sha256``, or None when the farm has none."""
        try:
            return self._json("GET", protocol.scene_path(sha256), attempts=defaults.GET_ATTEMPTS)
        except FarmError as error:
            if error.status == 404:
                return None
            raise

    def upload_scene(
        self,
        path: Path,
        on_progress: ProgressCallback,
        cancelled: Callable[[], bool] = _never_cancelled,
    ) -> dict[str, Any]:
        """Stream the file to the farm. ``on_progress(sent, total)`` follows the
        bytes; a transient failure restarts the upload (the farm stores scene
        files by content, so sending the same bytes twice is harmless)."""
        size = path.stat().st_size
        for attempt in range(1, defaults.UPLOAD_ATTEMPTS + 1):
            on_progress(0, size)
            try:
                with open(path, "rb") as handle:
                    body = ProgressReader(handle, size, on_progress, cancelled)
                    return self._json(
                        "POST",
                        protocol.scene_upload_path(),
                        data=body,
                        headers={"Content-Type": "application/octet-stream"},
                        timeout=(defaults.CONNECT_TIMEOUT_S, defaults.UPLOAD_READ_TIMEOUT_S),
                    )
            except FarmError as error:
                if not error.transient or attempt == defaults.UPLOAD_ATTEMPTS:
                    raise
            _sleep_unless_cancelled(defaults.RETRY_DELAYS_S[attempt - 1], cancelled)
        raise AssertionError("unreachable")

    def wait_for_scene(
        self,
        sha256: str,
        cancelled: Callable[[], bool] = _never_cancelled,
        timeout_s: float = defaults.SCENE_ANALYSIS_TIMEOUT_S,
    ) -> dict[str, Any]:
        """Poll the scene until Blender on the farm has read it (READY or INVALID)."""
        deadline = time.monotonic() + timeout_s
        while True:
            scene = self._json("GET", protocol.scene_path(sha256), attempts=defaults.GET_ATTEMPTS)
            if scene["state"] != SceneState.ANALYZING:
                return scene
            if time.monotonic() > deadline:
                raise FarmError(
                    f"the farm did not finish reading the scene within {timeout_s:.0f} s",
                    reason="ANALYSIS_TIMEOUT",
                    transient=True,
                )
            _sleep_unless_cancelled(defaults.SCENE_POLL_INTERVAL_S, cancelled)

    # --- jobs ---------------------------------------------------------------------

    def create_job(self, request: dict[str, Any]) -> dict[str, Any]:
        """Split and price a job (AWAITING_ACCEPTANCE): this is the estimate."""
        return self._json("POST", protocol.jobs_path(), json=request)

    def acceptance_message(self, job_id: str, artist_address: str) -> dict[str, Any]:
        """The EIP-712 message the artist's wallet signs to accept the job's estimate."""
        return self._json(
            "GET",
            protocol.job_acceptance_path(job_id),
            params={"artist_address": artist_address},
            attempts=defaults.GET_ATTEMPTS,
        )

    def accept_job(
        self, job_id: str, artist_address: str | None = None, signature: str | None = None
    ) -> dict[str, Any]:
        """Accept the estimate (signed by the artist's wallet where the farm asks for it):
        the farm locks it, then hands out frames."""
        body = {"artist_address": artist_address, "signature": signature} if signature else None
        return self._json("POST", protocol.job_accept_path(job_id), json=body)

    def wallet_balance(self, address: str) -> dict[str, Any] | None:
        """A wallet's free escrow balance and spending cap, or None where the farm has no
        wallet endpoint."""
        try:
            return self._json("GET", protocol.wallet_path(address), attempts=1)
        except FarmError as error:
            if error.status in {404, 405}:
                return None
            raise

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", protocol.job_path(job_id), attempts=defaults.GET_ATTEMPTS)

    def frames(self, job_id: str) -> list[dict[str, Any]]:
        body = self._json("GET", protocol.job_frames_path(job_id), attempts=defaults.GET_ATTEMPTS)
        return body["frames"]

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", protocol.job_cancel_path(job_id))

    def download_frame(
        self,
        job_id: str,
        number: int,
        destination: Path,
        expected_sha256: str | None = None,
        cancelled: Callable[[], bool] = _never_cancelled,
    ) -> Path:
        """Write one verified frame to ``destination`` (whole or not at all),
        checking its sha256 against ``expected_sha256`` when given."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        digest = hashlib.sha256()
        try:
            with self._call(
                "GET", protocol.frame_output_path(job_id, number), attempts=defaults.GET_ATTEMPTS, stream=True
            ) as response:
                with open(partial, "wb") as handle:
                    for chunk in response.iter_content(defaults.DOWNLOAD_CHUNK_BYTES):
                        if cancelled():
                            raise Cancelled("the download was stopped")
                        digest.update(chunk)
                        handle.write(chunk)
        except requests.RequestException as error:
            partial.unlink(missing_ok=True)
            raise self._farm_error(error) from error
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            partial.unlink(missing_ok=True)
            raise FarmError(
                f"frame {number} arrived damaged (its sha256 does not match the verified output)",
                reason="DOWNLOAD_CORRUPT",
                transient=True,
            )
        os.replace(partial, destination)
        return destination


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(defaults.DOWNLOAD_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sleep_unless_cancelled(seconds: float, cancelled: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if cancelled():
            raise Cancelled("stopped")
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.1))
