"""Errors of the add-on, each with a reason code and a message for the artist.

No bpy module use: the farm client, the packer and the task runner raise these;
operators turn them into reports.
"""

from __future__ import annotations

from typing import Any


class AddonError(Exception):
    """Base error: ``reason`` is a short code, ``message`` a sentence for the artist."""

    reason = "ERROR"

    def __init__(self, message: str, *, reason: str | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message} [{self.reason}]"


class FarmError(AddonError):
    """A call to the farm failed: the backend said no, or could not be reached.

    ``status`` is the HTTP status when the backend answered; ``transient`` says
    whether trying again may help (no connection, a timeout, a 5xx).
    """

    reason = "FARM_ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        detail: Any = None,
        status: int | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message, reason=reason, detail=detail)
        self.status = status
        self.transient = transient


class PackingError(AddonError):
    """The scene could not be packed into one self-contained file.

    ``problems`` lists the files at fault, each a dict with ``kind``, ``name``,
    ``path`` and ``why``.
    """

    reason = "PACKING_FAILED"

    def __init__(self, message: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message, detail={"problems": problems or []})
        self.problems = problems or []


class Cancelled(AddonError):
    """The artist stopped the work, or the add-on is being unregistered.

    Not an ``OSError``: it must pass through ``requests`` unchanged when raised
    from inside an upload.
    """

    reason = "CANCELLED"


class OnlineAccessDisabled(AddonError):
    """Blender's "Allow Online Access" is off, so the add-on stays offline."""

    reason = "ONLINE_ACCESS_DISABLED"
