"""Verifying a render output without Blender: decodes fully, matches the frame's
format and size, holds only finite values, and is not blank.

Each failed check has its own reason code; no decoder error escapes as a crash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

DEFAULT_MAX_OUTPUT_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_OUTPUT_PIXELS = 16384 * 16384
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXR_MAGIC = b"\x76\x2f\x31\x01"
CHANNEL_NAMES_BY_COUNT = {2: "YA", 3: "RGB", 4: "RGBA"}
COLOR_CHANNELS = frozenset({"R", "G", "B", "Y"})
ACCEPTED_PNG_MODES = {"RGB", "RGBA", "RGB;16", "RGBA;16", "I;16", "L", "LA"}


class RejectionReason(StrEnum):
    """Why a render output was rejected."""

    TOO_LARGE = "TOO_LARGE"
    UNDECODABLE = "UNDECODABLE"
    WRONG_FORMAT = "WRONG_FORMAT"
    WRONG_RESOLUTION = "WRONG_RESOLUTION"
    WRONG_CHANNELS = "WRONG_CHANNELS"
    NON_FINITE = "NON_FINITE"
    BLANK = "BLANK"


@dataclass(frozen=True)
class ExpectedImage:
    """What the frame's job asked for."""

    output_format: str  # "PNG" or "OPEN_EXR"
    width: int
    height: int
    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS


@dataclass(frozen=True)
class Verdict:
    """The verifier's answer for one render output."""

    accepted: bool
    reason: RejectionReason | None = None
    detail: str = ""

    @classmethod
    def reject(cls, reason: RejectionReason, detail: str) -> Verdict:
        return cls(accepted=False, reason=reason, detail=detail)


class _Rejected(Exception):
    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(detail)
        self.verdict = Verdict.reject(reason, detail)


def check_render_output(path: str, expected: ExpectedImage) -> Verdict:
    """Run every check on the file at ``path``, in order, stopping at the first failure."""
    try:
        size = os.path.getsize(path)
        if size > expected.max_bytes:
            raise _Rejected(RejectionReason.TOO_LARGE, f"{size} bytes > {expected.max_bytes}")
        if size == 0:
            raise _Rejected(RejectionReason.UNDECODABLE, "the file is empty")
        with open(path, "rb") as handle:
            head = handle.read(8)
        if expected.output_format == "PNG":
            pixels = _decode_png(path, head, expected)
        elif expected.output_format == "OPEN_EXR":
            pixels = _decode_exr(path, head, expected)
        else:
            raise _Rejected(RejectionReason.WRONG_FORMAT, f"unknown format {expected.output_format}")
        _check_values(pixels)
    except _Rejected as rejected:
        return rejected.verdict
    return Verdict(accepted=True)


def _check_size(width: int, height: int, expected: ExpectedImage) -> None:
    if width * height > expected.max_pixels:
        raise _Rejected(RejectionReason.TOO_LARGE, f"{width}x{height} exceeds {expected.max_pixels} pixels")
    if (width, height) != (expected.width, expected.height):
        raise _Rejected(
            RejectionReason.WRONG_RESOLUTION,
            f"{width}x{height}, expected {expected.width}x{expected.height}",
        )


def _decode_png(path: str, head: bytes, expected: ExpectedImage) -> dict[str, np.ndarray]:
    from PIL import Image

    if not head.startswith(PNG_SIGNATURE):
        raise _Rejected(RejectionReason.WRONG_FORMAT, "not a PNG file")
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise _Rejected(RejectionReason.WRONG_FORMAT, f"decoded as {image.format}")
            _check_size(image.width, image.height, expected)
            if image.mode not in ACCEPTED_PNG_MODES:
                raise _Rejected(RejectionReason.WRONG_CHANNELS, f"PNG mode {image.mode}")
            image.load()
            array = np.asarray(image)
    except _Rejected:
        raise
    except Image.DecompressionBombError as error:
        raise _Rejected(RejectionReason.TOO_LARGE, f"PNG claims too many pixels: {error}") from error
    except Exception as error:  # Pillow raises many types for broken files
        raise _Rejected(RejectionReason.UNDECODABLE, f"PNG does not decode: {error}") from error
    if array.ndim == 2:
        return {"Y": array}
    names = CHANNEL_NAMES_BY_COUNT[array.shape[2]]
    return {name: array[:, :, index] for index, name in enumerate(names)}


def _decode_exr(path: str, head: bytes, expected: ExpectedImage) -> dict[str, np.ndarray]:
    import OpenEXR

    if not head.startswith(EXR_MAGIC):
        raise _Rejected(RejectionReason.WRONG_FORMAT, "not an OpenEXR file")
    try:
        header = OpenEXR.File(path, header_only=True).header()
        low, high = header["dataWindow"]
        _check_size(int(high[0] - low[0] + 1), int(high[1] - low[1] + 1), expected)
        channels = OpenEXR.File(path, separate_channels=True).channels()
        pixels = {name: np.asarray(channel.pixels) for name, channel in channels.items()}
    except _Rejected:
        raise
    except Exception as error:  # OpenEXR raises ValueError or RuntimeError on broken files
        raise _Rejected(RejectionReason.UNDECODABLE, f"EXR does not decode: {error}") from error
    color = [name for name in pixels if name.rsplit(".", 1)[-1] in COLOR_CHANNELS]
    if not color:
        raise _Rejected(RejectionReason.WRONG_CHANNELS, f"no colour channels in {sorted(pixels)}")
    return pixels


def _check_values(pixels: dict[str, np.ndarray]) -> None:
    for name, values in pixels.items():
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise _Rejected(RejectionReason.NON_FINITE, f"channel {name} holds NaN or Inf")
    color = [values for name, values in pixels.items() if name.rsplit(".", 1)[-1] in COLOR_CHANNELS]
    if all(float(values.min()) == float(values.max()) for values in color):
        black = all(float(values.max()) == 0.0 for values in color)
        what = "all black" if black else "a single constant colour"
        raise _Rejected(RejectionReason.BLANK, f"the image is {what}")
