"""The node's side of the HTTP protocol, retrying with backoff while the backend
is briefly unreachable; gives up once the node is asked to stop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential_jitter,
)

from node_runner import defaults
from shared import protocol
from shared.api_client import ApiClient, ApiError, SigningWallet, is_transient
from shared.protocol import FrameAssignment, NodeHardware, SlotProgress

T = TypeVar("T")
log = logging.getLogger(__name__)
# Registration fields newer than some backends; left out when a backend refuses them.
OPTIONAL_REGISTRATION_FIELDS = ("sandboxed", "benchmark_ms", "slots")


@dataclass(frozen=True)
class NoWork:
    """Nothing fits the node now; a large idle farm is told to ask less often, and a claim
    the backend held until its wait ended is told to ask again at once (0)."""

    retry_after_s: float | None = None


def _retry_after_s(response: requests.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class Claimed:
    """A claim's answer, with the job's artist when the backend says who it is."""

    assignment: FrameAssignment
    artist_address: str | None = None


class BackendClient:
    def __init__(
        self,
        base_url: str,
        stop: threading.Event,
        retry_window_s: float = defaults.BACKEND_RETRY_WINDOW_S,
        wallet: SigningWallet | None = None,
    ) -> None:
        # The node signs in with its payout wallet: the signature proves where its RON goes.
        self.api = ApiClient(base_url, wallet=wallet)
        self.stop = stop
        self.retry_window_s = retry_window_s
        self.claimed_at = 0.0  # monotonic time of the last claim the backend answered

    def _retrying(self, call: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential_jitter(multiplier=0.5, max=defaults.BACKEND_RETRY_MAX_WAIT_S),
            stop=stop_after_delay(self.retry_window_s) | stop_when_event_set(self.stop),
            reraise=True,
        )
        return retrying(call)

    def register(self, name: str, hardware: NodeHardware, payout_address: str | None, **extra: Any) -> str:
        """Register; ``extra`` carries sandboxed, benchmark_ms and slots."""
        body = {"name": name, "payout_address": payout_address, **hardware.to_json(), **extra}
        try:
            node = self._retrying(lambda: self.api.json("POST", protocol.nodes_path(), json=body))
        except ApiError as error:
            refused = [
                key for key in OPTIONAL_REGISTRATION_FIELDS if key in extra and key in str(error.detail)
            ]
            if error.status != 400 or not refused:
                raise
            log.warning("this backend does not take %s at registration; registering without them", refused)
            body = {k: v for k, v in body.items() if k not in refused}
            node = self._retrying(lambda: self.api.json("POST", protocol.nodes_path(), json=body))
        return node["id"]

    def get_node(self, node_id: str) -> dict[str, Any]:
        return self.api.json("GET", f"{protocol.nodes_path()}/{node_id}")

    def get_earnings(self, node_id: str) -> dict[str, Any] | None:
        """The node's RON paid and pending and today's verdicts, where the backend offers them."""
        try:
            return self.api.json("GET", f"{protocol.nodes_path()}/{node_id}/earnings")
        except ApiError as error:
            if error.status in (404, 405):
                return None
            raise

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._retrying(lambda: self.api.json("GET", protocol.job_path(job_id)))

    def heartbeat(self, node_id: str, slots: list[SlotProgress]) -> list[int]:
        body = {"slots": [slot.to_json() for slot in slots]}
        answer = self.api.json("POST", protocol.node_heartbeat_path(node_id), json=body)
        return list(answer["abandon_attempt_ids"])

    def claim(
        self,
        node_id: str,
        exclude_job_ids: frozenset[str] = frozenset(),
        exclude_artists: frozenset[str] = frozenset(),
    ) -> Claimed | NoWork:
        """One frame under a new lease; the owner's blocklist travels along so it is never handed out.
        The slot starts what it is handed at once (fetching the scene is part of the work), so
        the backend marks it RENDERING with the answer: no beat has to say so. With nothing to
        hand out, the backend may hold the claim until work appears (up to CLAIM_WAIT_S)."""
        body = {
            "exclude_job_ids": sorted(exclude_job_ids),
            "exclude_artists": sorted(exclude_artists),
            "starts_at_once": True,
            "wait_s": defaults.CLAIM_WAIT_S,
        }
        path = protocol.node_claim_path(node_id)
        response = self._retrying(lambda: self.api.request("POST", path, json=body))
        self.claimed_at = time.monotonic()
        if response.status_code == 204:
            return NoWork(_retry_after_s(response))
        answer = response.json()
        return Claimed(FrameAssignment.from_json(answer), answer.get("artist_address"))

    def download_scene(
        self, sha256: str, destination: Path, on_bytes: Callable[[int, int], None] | None = None
    ) -> int:
        """Download into ``destination``, resuming what is already there with an HTTP Range
        request (a server that ignores Range sends it whole, and the file starts over).
        Returns the bytes transferred; ``on_bytes(done, total)`` follows the progress."""
        transferred = [0]

        def fetch() -> None:
            offset = destination.stat().st_size if destination.exists() else 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                response = self.api.request(
                    "GET", protocol.scene_file_path(sha256), stream=True, headers=headers
                )
            except ApiError as error:
                if error.status != 416:  # 416: the partial file is not a prefix; start over
                    raise
                destination.unlink(missing_ok=True)
                raise requests.ConnectionError("range not satisfiable; downloading anew") from error
            with response:
                resumed = response.status_code == 206
                done = offset if resumed else 0
                total = done + int(response.headers.get("Content-Length") or 0)
                try:
                    with open(destination, "ab" if resumed else "wb") as handle:
                        for chunk in response.iter_content(defaults.DOWNLOAD_CHUNK_BYTES):
                            handle.write(chunk)
                            done += len(chunk)
                            transferred[0] += len(chunk)
                            if on_bytes is not None:
                                on_bytes(done, total)
                except requests.exceptions.ChunkedEncodingError as error:
                    # A cut connection: retried, and the retry resumes where this one stopped.
                    raise requests.ConnectionError(str(error)) from error

        self._retrying(fetch)
        return transferred[0]

    def upload_output(
        self, assignment: FrameAssignment, path: Path, *, claim_next: bool = False
    ) -> Claimed | NoWork | None:
        """Upload the frame; with ``claim_next``, the answer is the node's next frame too
        (NoWork when none fits; RENDERING already, as with ``claim``), else None."""
        headers = {
            protocol.LEASE_TOKEN_HEADER: assignment.lease_token,
            "Content-Type": "application/octet-stream",
        }
        params = {"claim_next": "true", "starts_at_once": "true"} if claim_next else None

        def send() -> Any:
            with open(path, "rb") as handle:
                return self.api.request(
                    "PUT",
                    protocol.attempt_output_path(assignment.attempt_id),
                    data=handle,
                    headers=headers,
                    params=params,
                )

        answer = self._retrying(send).json()
        if not claim_next:
            return None
        self.claimed_at = time.monotonic()
        following = answer.get("next")
        if following is None:
            return NoWork()
        return Claimed(FrameAssignment.from_json(following), following.get("artist_address"))

    def upload_crop(self, assignment: FrameAssignment, index: int, path: Path) -> None:
        """One re-rendered crop of a spot check, under the check's lease."""
        headers = {
            protocol.LEASE_TOKEN_HEADER: assignment.lease_token,
            "Content-Type": "application/octet-stream",
        }

        def send() -> Any:
            with open(path, "rb") as handle:
                return self.api.request(
                    "PUT",
                    protocol.attempt_crop_path(assignment.attempt_id, index),
                    data=handle,
                    headers=headers,
                )

        self._retrying(send)

    def report_failure(self, assignment: FrameAssignment, reason: str, log_tail: str) -> None:
        headers = {protocol.LEASE_TOKEN_HEADER: assignment.lease_token}
        body = {"reason": reason, "log_tail": log_tail}
        self._retrying(
            lambda: self.api.request(
                "POST", protocol.attempt_failure_path(assignment.attempt_id), json=body, headers=headers
            )
        )

    def release(self, assignment: FrameAssignment) -> None:
        """Hand a frame back; one try only, since the node is on its way out."""
        headers = {protocol.LEASE_TOKEN_HEADER: assignment.lease_token}
        self.api.request("POST", protocol.attempt_release_path(assignment.attempt_id), headers=headers)
