"""The node's side of the HTTP protocol, retrying with backoff while the backend
is briefly unreachable; gives up once the node is asked to stop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential_jitter,
)

from node_runner import defaults
from shared import protocol
from shared.api_client import ApiClient, is_transient
from shared.protocol import FrameAssignment, NodeHardware, SlotProgress

T = TypeVar("T")


class BackendClient:
    def __init__(
        self, base_url: str, stop: threading.Event, retry_window_s: float = defaults.BACKEND_RETRY_WINDOW_S
    ) -> None:
        self.api = ApiClient(base_url)
        self.stop = stop
        self.retry_window_s = retry_window_s

    def _retrying(self, call: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential_jitter(multiplier=0.5, max=defaults.BACKEND_RETRY_MAX_WAIT_S),
            stop=stop_after_delay(self.retry_window_s) | stop_when_event_set(self.stop),
            reraise=True,
        )
        return retrying(call)

    def register(self, name: str, hardware: NodeHardware, payout_address: str | None) -> str:
        body = {"name": name, "payout_address": payout_address, **hardware.to_json()}
        node = self._retrying(lambda: self.api.json("POST", protocol.nodes_path(), json=body))
        return node["id"]

    def heartbeat(self, node_id: str, slots: list[SlotProgress]) -> list[int]:
        body = {"slots": [slot.to_json() for slot in slots]}
        answer = self.api.json("POST", protocol.node_heartbeat_path(node_id), json=body)
        return list(answer["abandon_attempt_ids"])

    def claim(self, node_id: str) -> FrameAssignment | None:
        answer = self._retrying(lambda: self.api.json("POST", protocol.node_claim_path(node_id)))
        return None if answer is None else FrameAssignment.from_json(answer)

    def download_scene(self, sha256: str, destination: Path) -> None:
        def fetch() -> None:
            with self.api.request("GET", protocol.scene_file_path(sha256), stream=True) as response:
                with open(destination, "wb") as handle:
                    for chunk in response.iter_content(defaults.DOWNLOAD_CHUNK_BYTES):
                        handle.write(chunk)

        self._retrying(fetch)

    def upload_output(self, assignment: FrameAssignment, path: Path) -> None:
        headers = {
            protocol.LEASE_TOKEN_HEADER: assignment.lease_token,
            "Content-Type": "application/octet-stream",
        }

        def send() -> Any:
            with open(path, "rb") as handle:
                return self.api.request(
                    "PUT", protocol.attempt_output_path(assignment.attempt_id), data=handle, headers=headers
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
