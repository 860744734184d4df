"""Errors of the backend, each with an HTTP status and a reason code the API returns."""

from __future__ import annotations

from typing import Any


class RonRenderError(Exception):
    """Base error: ``status`` and ``reason`` become the JSON error response."""

    status = 400
    reason = "BAD_REQUEST"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(RonRenderError):
    status = 404
    reason = "NOT_FOUND"


class UploadTooLarge(RonRenderError):
    status = 413
    reason = "UPLOAD_TOO_LARGE"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"upload exceeds the limit of {max_bytes} bytes", max_bytes=max_bytes)


class NotABlendFile(RonRenderError):
    status = 415
    reason = "NOT_A_BLEND_FILE"


class EmptyUpload(RonRenderError):
    status = 400
    reason = "EMPTY_UPLOAD"


class SceneNotReady(RonRenderError):
    status = 409
    reason = "SCENE_NOT_READY"


class SceneInvalid(RonRenderError):
    status = 422
    reason = "SCENE_INVALID"


class MissingExternalFiles(RonRenderError):
    status = 422
    reason = "MISSING_EXTERNAL_FILES"


class FrameRangeOutsideScene(RonRenderError):
    status = 422
    reason = "FRAME_RANGE_OUTSIDE_SCENE"


class InvalidJobState(RonRenderError):
    status = 409
    reason = "INVALID_JOB_STATE"


class LeaseNotHeld(RonRenderError):
    """The upload or report names an attempt whose lease is gone or not the caller's."""

    status = 409
    reason = "LEASE_NOT_HELD"


class NodeSuspended(RonRenderError):
    """The node's reputation fell below the threshold; an admin must review it."""

    status = 403
    reason = "NODE_SUSPENDED"


class EscrowError(RonRenderError):
    status = 502
    reason = "ESCROW_ERROR"


class ChainUnavailable(EscrowError):
    """The chain did not answer (or not yet): worth retrying."""

    status = 503
    reason = "CHAIN_UNAVAILABLE"


class ChainRejected(EscrowError):
    """The chain or the contract refused: retrying the same thing fails the same way."""

    status = 422
    reason = "CHAIN_REJECTED"


class InvalidSignature(RonRenderError):
    status = 422
    reason = "INVALID_SIGNATURE"


class NotSignedIn(RonRenderError):
    status = 401
    reason = "NOT_SIGNED_IN"


class Forbidden(RonRenderError):
    status = 403
    reason = "FORBIDDEN"


class LoginRefused(RonRenderError):
    status = 401
    reason = "LOGIN_REFUSED"
