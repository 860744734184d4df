"""The HTTP protocol between the backend, nodes and artists' clients.

Paths, header names and the small dataclasses each side builds from JSON.
The backend's schemas (``backend.api.schemas``) are the authority on shapes;
these mirror what clients read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

API_PREFIX = "/api/v1"
DEFAULT_BACKEND_URL = "http://127.0.0.1:8000"
BACKEND_URL_ENV = "RONRENDER_URL"

LEASE_TOKEN_HEADER = "X-Lease-Token"
UPLOAD_CHUNK_BYTES = 1024 * 1024
# How often an idle node asks for work unless the backend's Retry-After says to wait
# longer (it does once a farm's idle nodes at this pace would exceed its budget).
IDLE_POLL_INTERVAL_S = 0.25

# What an artist's wallet signs: the backend's sign-in challenge (EIP-191 text in the
# Sign-In with Ethereum format) and a job's acceptance (EIP-712 typed data).
SIGN_IN_HEADLINE_END = " wants you to sign in with your Ethereum account:"
SIGN_IN_STATEMENT = "Sign in to RonRender."
ACCEPTANCE_DOMAIN_NAME = "RonRender"
ACCEPTANCE_DOMAIN_VERSION = "1"
ACCEPTANCE_PRIMARY_TYPE = "AcceptJob"
_SIGN_IN_PATTERN = (
    r"(?P<host>[^\s]+){headline}\n(?P<address>0x[0-9a-fA-F]{{40}})\n\n{statement}\n\n"
    r"URI: (?P<scheme>https?)://(?P=host)\nVersion: 1\nNonce: [0-9a-f]{{32}}\n"
    r"Issued At: [0-9T:+.-]+\nExpiration Time: [0-9T:+.-]+"
)


def auth_challenge_path() -> str:
    return f"{API_PREFIX}/auth/challenge"


def auth_login_path() -> str:
    return f"{API_PREFIX}/auth/login"


def auth_tokens_path() -> str:
    return f"{API_PREFIX}/auth/tokens"


def scene_upload_path() -> str:
    return f"{API_PREFIX}/scenes"


def scene_path(sha256: str) -> str:
    return f"{API_PREFIX}/scenes/{sha256}"


def scene_file_path(sha256: str) -> str:
    return f"{API_PREFIX}/scenes/{sha256}/file"


def jobs_path() -> str:
    return f"{API_PREFIX}/jobs"


def job_path(job_id: str) -> str:
    return f"{API_PREFIX}/jobs/{job_id}"


def job_acceptance_path(job_id: str) -> str:
    return f"{API_PREFIX}/jobs/{job_id}/acceptance"


def job_accept_path(job_id: str) -> str:
    return f"{API_PREFIX}/jobs/{job_id}/accept"


def job_cancel_path(job_id: str) -> str:
    return f"{API_PREFIX}/jobs/{job_id}/cancel"


def job_escrow_path(job_id: str) -> str:
    return f"{API_PREFIX}/jobs/{job_id}/escrow"


def wallet_path(address: str) -> str:
    return f"{API_PREFIX}/escrow/wallets/{address}"


def job_frames_path(job_id: str) -> str:
    return f"{API_PREFIX}/jobs/{job_id}/frames"


def frame_output_path(job_id: str, frame_number: int) -> str:
    return f"{API_PREFIX}/jobs/{job_id}/frames/{frame_number}/output"


def job_zip_path(job_id: str) -> str:
    return f"{API_PREFIX}/jobs/{job_id}/output.zip"


def escrow_path() -> str:
    return f"{API_PREFIX}/escrow"


def nodes_path() -> str:
    return f"{API_PREFIX}/nodes"


def node_heartbeat_path(node_id: str) -> str:
    return f"{API_PREFIX}/nodes/{node_id}/heartbeat"


def node_claim_path(node_id: str) -> str:
    return f"{API_PREFIX}/nodes/{node_id}/claim"


def attempt_output_path(attempt_id: int) -> str:
    return f"{API_PREFIX}/attempts/{attempt_id}/output"


def attempt_crop_path(attempt_id: int, index: int) -> str:
    return f"{API_PREFIX}/attempts/{attempt_id}/crops/{index}"


def attempt_failure_path(attempt_id: int) -> str:
    return f"{API_PREFIX}/attempts/{attempt_id}/failure"


def attempt_release_path(attempt_id: int) -> str:
    return f"{API_PREFIX}/attempts/{attempt_id}/release"


@dataclass(frozen=True)
class RenderSettings:
    """What the render child applies on top of the scene file before rendering."""

    output_format: str
    engine: str
    samples: int | None
    resolution_percentage: int
    width: int
    height: int


@dataclass(frozen=True)
class FrameAssignment:
    """A claim's answer: one frame under one lease. ``kind`` "SPOT_CHECK": render only
    the ``crops`` (render borders [min_x, max_x, min_y, max_y]) of the frame, on the CPU,
    and upload each to the attempt's crops."""

    attempt_id: int
    lease_token: str
    job_id: str
    frame_number: int
    scene_sha256: str
    scene_size_bytes: int
    settings: RenderSettings
    time_limit_s: int
    kind: str = "FRAME"
    crops: tuple[tuple[float, float, float, float], ...] = ()

    @property
    def is_spot_check(self) -> bool:
        return self.kind == "SPOT_CHECK"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FrameAssignment:
        return cls(
            attempt_id=data["attempt_id"],
            lease_token=data["lease_token"],
            job_id=data["job_id"],
            frame_number=data["frame_number"],
            scene_sha256=data["scene_sha256"],
            scene_size_bytes=data["scene_size_bytes"],
            settings=RenderSettings(**data["settings"]),
            time_limit_s=data["time_limit_s"],
            kind=data.get("kind", "FRAME"),
            crops=tuple(tuple(float(v) for v in crop) for crop in data.get("crops") or ()),  # type: ignore[misc]
        )


@dataclass
class SlotProgress:
    """One slot's progress as carried by a heartbeat."""

    attempt_id: int
    lease_token: str
    progress: float
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt_id": self.attempt_id,
            "lease_token": self.lease_token,
            "progress": self.progress,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class NodeHardware:
    """What a node offers, as registered with the backend."""

    cpu_cores: int
    memory_bytes: int
    blender_version: str
    gpus: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "cpu_cores": self.cpu_cores,
            "memory_bytes": self.memory_bytes,
            "blender_version": self.blender_version,
            "gpus": self.gpus,
        }


def sign_in_message(
    *, host: str, origin: str, address: str, nonce: str, issued_at: str, expires_at: str
) -> str:
    """The one-time sign-in challenge the backend issues, as its wallet signs it."""
    return (
        f"{host}{SIGN_IN_HEADLINE_END}\n{address}\n\n{SIGN_IN_STATEMENT}\n\n"
        f"URI: {origin}\nVersion: 1\nNonce: {nonce}\nIssued At: {issued_at}\nExpiration Time: {expires_at}"
    )


def is_sign_in_message(text: str, *, host: str, address: str) -> bool:
    """Whether ``text`` is exactly a sign-in challenge of the backend at ``host`` for ``address``."""
    pattern = _SIGN_IN_PATTERN.format(
        headline=re.escape(SIGN_IN_HEADLINE_END), statement=re.escape(SIGN_IN_STATEMENT)
    )
    matched = re.fullmatch(pattern, text)
    return bool(matched and matched["host"] == host and matched["address"].lower() == address.lower())


def acceptance_typed_data(
    *, chain_id: int, contract_address: str, job_id: str, artist: str, total_wei: int, frame_count: int
) -> dict[str, Any]:
    """EIP-712 message an artist signs to let the operator lock this job's estimate.

    The domain carries the chain id and the contract address, so a signature is
    good for one chain and one contract only. Addresses are taken as given (the hash
    does not depend on their letter case).
    """
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            ACCEPTANCE_PRIMARY_TYPE: [
                {"name": "jobId", "type": "bytes32"},
                {"name": "artist", "type": "address"},
                {"name": "totalWei", "type": "uint256"},
                {"name": "frameCount", "type": "uint32"},
            ],
        },
        "primaryType": ACCEPTANCE_PRIMARY_TYPE,
        "domain": {
            "name": ACCEPTANCE_DOMAIN_NAME,
            "version": ACCEPTANCE_DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": contract_address,
        },
        "message": {
            "jobId": "0x" + bytes.fromhex(job_id).rjust(32, b"\0").hex(),
            "artist": artist,
            "totalWei": total_wei,
            "frameCount": frame_count,
        },
    }


def acceptance_fields(
    typed_data: object, *, chain_id: int | None = None, contract_address: str | None = None
) -> dict[str, Any] | None:
    """The message of ``typed_data`` if it is exactly a job acceptance, else None: what a
    wallet checks before it signs. Its types, primary type and domain must be the
    canonical ones (on this chain and contract, when given), so that the signature covers
    the fields the caller then checks, and cannot be used as anything else."""
    canonical = acceptance_typed_data(
        chain_id=0, contract_address="", job_id="00" * 16, artist="", total_wei=0, frame_count=0
    )
    if not isinstance(typed_data, dict) or set(typed_data) != set(canonical):
        return None
    domain, message = typed_data["domain"], typed_data["message"]
    if (
        typed_data["types"] != canonical["types"]
        or typed_data["primaryType"] != canonical["primaryType"]
        or not isinstance(domain, dict)
        or set(domain) != set(canonical["domain"])
        or domain["name"] != ACCEPTANCE_DOMAIN_NAME
        or domain["version"] != ACCEPTANCE_DOMAIN_VERSION
        or (chain_id is not None and domain["chainId"] != chain_id)
        or (
            contract_address is not None
            and str(domain["verifyingContract"]).lower() != contract_address.lower()
        )
        or not isinstance(message, dict)
        or set(message) != set(canonical["message"])
    ):
        return None
    return message


def is_acceptance_of(
    typed_data: object, *, job_id: str, total_wei: int, frame_count: int, artist: str | None = None
) -> bool:
    """Whether ``typed_data`` is exactly the acceptance of this job's estimate (and, given
    ``artist``, by that wallet): what the CLI and the add-on check before they sign."""
    fields = acceptance_fields(typed_data)
    try:
        return (
            fields is not None
            and int(fields["totalWei"]) == total_wei
            and int(fields["frameCount"]) == frame_count
            and str(fields["jobId"]).lower() == "0x" + job_id.lower().rjust(64, "0")
            and (artist is None or str(fields["artist"]).lower() == artist.lower())
        )
    except (TypeError, ValueError):
        return False
