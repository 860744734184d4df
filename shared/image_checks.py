"""Verifying a render output without Blender, in the order of the issue: size limits
before decoding, a full decode, the job's format, resolution, channels and bit depth,
finite values only, not blank (unless the job's reference render is blank too), and
not a copy (of a frame already delivered for the job, of an upscaled low-resolution
image, or of a render with far fewer samples than the job's other frames).

Each failed check has its own reason code; no decoder error escapes as a crash.

The copy checks that need a reference compare with the job's own verified frames,
which the caller passes in ``ExpectedImage``: fingerprints for duplicates, and the
median noise and detail ratio for the statistical checks. Thresholds and how they
were calibrated on real Cycles renders are next to the constants below.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import random
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

DEFAULT_MAX_OUTPUT_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_OUTPUT_PIXELS = 16384 * 16384
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXR_MAGIC = b"\x76\x2f\x31\x01"
CHANNEL_NAMES_BY_COUNT = {2: "YA", 3: "RGB", 4: "RGBA"}
COLOR_CHANNELS = frozenset({"R", "G", "B", "Y"})
ACCEPTED_PNG_MODES = {"RGB", "RGBA", "RGB;16", "RGBA;16", "I;16", "L", "LA"}
PNG_CHANNELS_BY_COLOR_TYPE = {0: "Y", 2: "RGB", 3: "P", 4: "YA", 6: "RGBA"}

# Near-duplicate: the luminance signature is the image averaged down to at most
# SIGNATURE_SIDE_PX a side. Two signatures whose largest cell difference, after
# removing their mean difference, stays under NEAR_DUPLICATE_MAX_CELL_DIFF (one 8-bit
# step) are the same picture re-encoded, re-quantised or sprinkled with +-1 step of
# noise (caught 6 of 6). Consecutive honest frames of the sample animation differ by
# at least 0.37 there. A copy with its brightness shifted is caught (the mean
# difference is removed); a copy warped or cropped is not.
SIGNATURE_SIDE_PX = 16
NEAR_DUPLICATE_MAX_CELL_DIFF = 1 / 255
# A new frame's signature is compared with this many known ones at a time.
MATCH_BLOCK_ROWS = 4096

# Upscaled, nearest neighbour: adjacent pixel pairs repeat exactly at one phase of
# the pixel grid. Honest renders repeat equally at both phases (difference <= 0.01 on
# 52 Cycles renders, flat background included); a 2x nearest upscale differs by 0.85.
NEAREST_UPSCALE_MIN_PHASE_GAP = 0.5

# Upscaled, smooth kernels: the detail ratio is the energy of 2-pixel differences
# over that of 1-pixel ones (1 for white noise, 4 for a smooth band-limited image).
# Calibration (128x72 and 320x180, 16 to 64 samples, denoised or not): honest renders
# 2.46 to 2.90, frame to frame within a job +-0.1; 2x bilinear or Lanczos upscales of
# real renders 3.49 to 3.67. The check is relative to the job's verified frames,
# because a smooth honest scene (depth of field, denoised soft light) reaches high
# ratios on its own: rejected when the ratio exceeds the job's median by this margin.
UPSCALE_DETAIL_RATIO_MARGIN = 0.45

# Fewer samples than asked: noise falls as 1/sqrt(samples). The noise estimate is
# Immerkaer's Laplacian estimator on luminance in [0, 1]. Calibration on the sample
# animation (12 frames, 128x72): 16 samples 0.0049 to 0.0062 (median 0.0056), 8 samples
# 0.0068 to 0.0085, 4 samples 0.0091 to 0.0123, 2 samples 0.014 to 0.017; at 320x180
# 16 samples 0.0042 to 0.0048 against 4 samples 0.0079 to 0.0088. Rejected above this
# multiple of the job's median: catches 4x fewer samples, lets 2x fewer through.
LOW_SAMPLES_NOISE_RATIO = 1.5

# The statistical checks need images large enough to measure.
MIN_STATISTICS_SIDE_PX = 32
# Statistics of large images come from about this many pixels, in bands of rows.
STATISTICS_SAMPLE_PX = 1_000_000
BAND_ROWS = 4
# Whole-image passes go over blocks of rows of about this many pixels, so that their
# temporaries stay in the CPU cache instead of being whole-image arrays.
BLOCK_PX = 1 << 17


class RejectionReason(StrEnum):
    """Why a render output was rejected."""

    TOO_LARGE = "TOO_LARGE"
    UNDECODABLE = "UNDECODABLE"
    WRONG_FORMAT = "WRONG_FORMAT"
    WRONG_RESOLUTION = "WRONG_RESOLUTION"
    WRONG_CHANNELS = "WRONG_CHANNELS"
    WRONG_BIT_DEPTH = "WRONG_BIT_DEPTH"
    NON_FINITE = "NON_FINITE"
    BLANK = "BLANK"
    DUPLICATE_FRAME = "DUPLICATE_FRAME"
    UPSCALED = "UPSCALED"
    LOW_SAMPLES = "LOW_SAMPLES"


@dataclass(frozen=True, eq=False)
class KnownFrames:
    """Fingerprints of a job's verified frames, held to match a new frame against all of
    them at once: their pixel hashes as a set, their luminance signatures as one array
    of 16-bit rows per signature shape. Immutable; ``extended`` returns a larger one."""

    pixel_hashes: frozenset[str] = frozenset()
    signatures: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, fingerprints: Iterable[str]) -> KnownFrames:
        return cls().extended(fingerprints)

    def extended(self, fingerprints: Iterable[str]) -> KnownFrames:
        hashes = set(self.pixel_hashes)
        rows: dict[tuple[int, int], list[np.ndarray]] = {}
        for text in fingerprints:
            pixel_hash, shape, cells = _parse_fingerprint(text)
            hashes.add(pixel_hash)
            if cells is not None:
                rows.setdefault(shape, []).append(cells)
        signatures = dict(self.signatures)
        for shape, new_rows in rows.items():
            held = signatures.get(shape, np.empty((0, shape[0] * shape[1]), dtype=np.uint16))
            signatures[shape] = np.concatenate([held, np.stack(new_rows)])
        return KnownFrames(frozenset(hashes), signatures)

    def match(self, fingerprint: str) -> str | None:
        """How the fingerprint matches one of these ("pixel-identical", "nearly
        identical"), or None."""
        pixel_hash, shape, cells = _parse_fingerprint(fingerprint)
        if pixel_hash in self.pixel_hashes:
            return "pixel-identical"
        known = self.signatures.get(shape)
        if cells is None or known is None:
            return None
        for top in range(0, len(known), MATCH_BLOCK_ROWS):
            if _nearly_identical(cells, known[top : top + MATCH_BLOCK_ROWS]):
                return "nearly identical"
        return None


NO_KNOWN_FRAMES = KnownFrames()


@dataclass(frozen=True)
class ExpectedImage:
    """What the frame's job asked for, and what its other frames look like.

    ``channels``: the channel names that must be present (PNG: from "RGB" or "RGBA";
    EXR: full names such as "ViewLayer.Combined.R"), None for any colour image.
    ``bit_depth``: 8 or 16 for PNG, 16 (half) or 32 (float) for EXR, None for any.
    ``reference_is_blank``: the job's reference render of this frame is one constant
    colour, so a constant output is the truth and not a cheat.
    ``known_frames``: the fingerprints of frames already verified for the job.
    ``allow_duplicates``: the scene is static here, so repeated frames are honest.
    ``reference_noise`` / ``reference_detail_ratio``: medians over the job's verified
    frames; None skips the statistical checks.
    """

    output_format: str  # "PNG" or "OPEN_EXR"
    width: int
    height: int
    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS
    channels: frozenset[str] | None = None
    bit_depth: int | None = None
    reference_is_blank: bool = False
    known_frames: KnownFrames = NO_KNOWN_FRAMES
    allow_duplicates: bool = False
    reference_noise: float | None = None
    reference_detail_ratio: float | None = None


@dataclass(frozen=True)
class ImageInfo:
    """What the decoder found in the file."""

    output_format: str
    width: int
    height: int
    channels: tuple[str, ...]
    bit_depth: int
    sample_type: str  # "uint" or "half" or "float"


@dataclass(frozen=True)
class Verdict:
    """The verifier's answer for one render output, with what it measured (the
    fingerprint and statistics the job's next frames are compared with)."""

    accepted: bool
    reason: RejectionReason | None = None
    detail: str = ""
    info: ImageInfo | None = field(default=None, compare=False)
    fingerprint: str | None = field(default=None, compare=False)
    stats: dict[str, float] = field(default_factory=dict, compare=False)
    # An accepted output's decoded channels: its preview is made without decoding again.
    pixels: dict[str, np.ndarray] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def reject(cls, reason: RejectionReason, detail: str, **measured: Any) -> Verdict:
        return cls(accepted=False, reason=reason, detail=detail, **measured)

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "reason": None if self.reason is None else str(self.reason),
            "detail": self.detail,
            "image": None
            if self.info is None
            else self.info.__dict__ | {"channels": list(self.info.channels)},
            "fingerprint": self.fingerprint,
            "stats": self.stats,
        }


class _Rejected(Exception):
    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class _Decoded:
    info: ImageInfo
    pixels: dict[str, np.ndarray]


def check_render_output(path: str, expected: ExpectedImage) -> Verdict:
    """Run every check on the file at ``path``, in order, stopping at the first failure."""
    measured: dict[str, Any] = {}
    try:
        decoded = _read(path, expected)
        measured["info"] = decoded.info
        _check_task(decoded.info, expected)
        _check_values(decoded.pixels)
        # sha256 and numpy's whole-array comparisons let go of the GIL: the pixel hash
        # and the phase gap run on a second core beside the luminance measures,
        # instead of adding their time to theirs.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pixel_hash = pool.submit(_pixel_hash, decoded.pixels)
            phase_gap = pool.submit(_nearest_phase_gap, decoded.pixels)
            luminance = display_luminance(decoded.pixels)
            signature = _signature_text(luminance)
            measured["stats"] = image_statistics(luminance)
            measured["fingerprint"] = f"{pixel_hash.result()}:{signature}"
            _check_content(decoded.pixels, expected)
            _check_copy(measured["fingerprint"], measured["stats"], phase_gap.result(), expected)
    except _Rejected as rejected:
        return Verdict.reject(rejected.reason, rejected.detail, **measured)
    except Exception as error:  # the verifier never crashes on a file, whatever it holds
        return Verdict.reject(RejectionReason.UNDECODABLE, f"unexpected decoder error: {error!r}", **measured)
    return Verdict(accepted=True, pixels=decoded.pixels, **measured)


def describe_file(path: str) -> tuple[str, int, int]:
    """The format ("PNG" or "OPEN_EXR") and size a file's header claims, for callers
    that know nothing of the job (``ronrender verify`` without options)."""
    with open(path, "rb") as handle:
        head = handle.read(32)
    if head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR":
        return "PNG", int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head.startswith(EXR_MAGIC):
        import OpenEXR

        try:
            low, high = OpenEXR.File(path, header_only=True).header()["dataWindow"]
            return "OPEN_EXR", int(high[0] - low[0] + 1), int(high[1] - low[1] + 1)
        except Exception:
            return "OPEN_EXR", 0, 0
    return "UNKNOWN", 0, 0


def load_pixels(path: str, expected: ExpectedImage) -> dict[str, np.ndarray]:
    """Decode a file that passed the checks: channel name to 2-D array."""
    return _read(path, expected).pixels


def _read(path: str, expected: ExpectedImage) -> _Decoded:
    size = os.path.getsize(path)
    if size > expected.max_bytes:
        raise _Rejected(RejectionReason.TOO_LARGE, f"{size} bytes > {expected.max_bytes}")
    if size == 0:
        raise _Rejected(RejectionReason.UNDECODABLE, "the file is empty")
    with open(path, "rb") as handle:
        head = handle.read(32)
    if expected.output_format == "PNG":
        return _decode_png(path, head, expected)
    if expected.output_format == "OPEN_EXR":
        return _decode_exr(path, head, expected)
    raise _Rejected(RejectionReason.WRONG_FORMAT, f"unknown format {expected.output_format}")


def _check_size(width: int, height: int, expected: ExpectedImage) -> None:
    if width <= 0 or height <= 0:
        raise _Rejected(RejectionReason.UNDECODABLE, f"the header claims {width}x{height}")
    if width * height > expected.max_pixels:
        raise _Rejected(RejectionReason.TOO_LARGE, f"{width}x{height} exceeds {expected.max_pixels} pixels")
    if (width, height) != (expected.width, expected.height):
        raise _Rejected(
            RejectionReason.WRONG_RESOLUTION,
            f"{width}x{height}, expected {expected.width}x{expected.height}",
        )


def _decode_png(path: str, head: bytes, expected: ExpectedImage) -> _Decoded:
    from PIL import Image

    if not head.startswith(PNG_SIGNATURE):
        raise _Rejected(RejectionReason.WRONG_FORMAT, "not a PNG file")
    if head[12:16] != b"IHDR" or len(head) < 26:
        raise _Rejected(RejectionReason.UNDECODABLE, "PNG without a header chunk")
    # Read from IHDR itself: Pillow decodes 16-bit colour PNGs to 8 bits.
    _check_size(int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), expected)
    bit_depth, color_type = head[24], head[25]
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
        pixels = {"Y": array}
    else:
        names = CHANNEL_NAMES_BY_COUNT[array.shape[2]]
        pixels = {name: array[:, :, index] for index, name in enumerate(names)}
    names = PNG_CHANNELS_BY_COLOR_TYPE.get(color_type, "".join(pixels))
    info = ImageInfo("PNG", image.width, image.height, tuple(names), int(bit_depth), "uint")
    return _Decoded(info, pixels)


def _decode_exr(path: str, head: bytes, expected: ExpectedImage) -> _Decoded:
    import OpenEXR

    if not head.startswith(EXR_MAGIC):
        raise _Rejected(RejectionReason.WRONG_FORMAT, "not an OpenEXR file")
    try:
        header = OpenEXR.File(path, header_only=True).header()
        low, high = header["dataWindow"]
        width, height = int(high[0] - low[0] + 1), int(high[1] - low[1] + 1)
        _check_size(width, height, expected)
        channels = OpenEXR.File(path, separate_channels=True).channels()
        pixels = {name: np.asarray(channel.pixels) for name, channel in channels.items()}
    except _Rejected:
        raise
    except Exception as error:  # OpenEXR raises ValueError or RuntimeError on broken files
        raise _Rejected(RejectionReason.UNDECODABLE, f"EXR does not decode: {error}") from error
    if any(values.shape != (height, width) for values in pixels.values()):
        raise _Rejected(RejectionReason.UNDECODABLE, "EXR channels do not fill the data window")
    color = [name for name in pixels if _is_color(name)]
    if not color:
        raise _Rejected(RejectionReason.WRONG_CHANNELS, f"no colour channels in {sorted(pixels)}")
    kinds = {pixels[name].dtype for name in color}
    bit_depth = max(values.itemsize * 8 for values in (pixels[name] for name in color))
    sample_type = "half" if kinds == {np.dtype(np.float16)} else ("float" if bit_depth == 32 else "uint")
    if any(pixels[name].dtype.kind == "u" for name in color):
        sample_type = "uint"
    info = ImageInfo("OPEN_EXR", width, height, tuple(sorted(pixels)), bit_depth, sample_type)
    return _Decoded(info, pixels)


def _is_color(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in COLOR_CHANNELS


def _check_task(info: ImageInfo, expected: ExpectedImage) -> None:
    if expected.channels is not None:
        missing = sorted(set(expected.channels) - set(info.channels))
        if missing:
            raise _Rejected(
                RejectionReason.WRONG_CHANNELS,
                f"missing channels {missing}; the file has {list(info.channels)}",
            )
    if expected.bit_depth is not None and info.bit_depth != expected.bit_depth:
        raise _Rejected(
            RejectionReason.WRONG_BIT_DEPTH,
            f"{info.bit_depth}-bit {info.sample_type}, expected {expected.bit_depth}",
        )


def _check_values(pixels: dict[str, np.ndarray]) -> None:
    for name, values in pixels.items():
        if values.dtype.kind == "f" and not _all_finite(values):
            raise _Rejected(RejectionReason.NON_FINITE, f"channel {name} holds NaN or Inf")


# IEEE floats by size: the unsigned type of their bits, and the exponent mask.
_FLOAT_BITS = {2: (np.uint16, 0x7C00), 4: (np.uint32, 0x7F800000), 8: (np.uint64, 0x7FF0000000000000)}


def _all_finite(values: np.ndarray) -> bool:
    """``np.isfinite(values).all()`` from the bits: NaN and Inf are the values whose
    exponent bits are all ones (np.isfinite converts every half float first)."""
    bits = _FLOAT_BITS.get(values.dtype.itemsize)
    if bits is None or values.ndim != 2 or not values.dtype.isnative:
        return bool(np.isfinite(values).all())
    unsigned, exponent = bits
    magnitude = unsigned(exponent | (exponent - 1))  # every bit but the sign
    pattern = values.view(unsigned)
    scratch = np.empty(BLOCK_PX + values.shape[1], dtype=unsigned)
    for rows in _row_blocks(values):
        block = pattern[rows]
        masked = scratch[: block.size].reshape(block.shape)
        np.bitwise_and(block, magnitude, out=masked)
        if masked.max() >= exponent:
            return False
    return True


def _row_blocks(values: np.ndarray) -> Iterator[slice]:
    """Slices of consecutive rows of about BLOCK_PX pixels, covering the array."""
    height, width = values.shape[:2]
    step = max(1, BLOCK_PX // max(1, width))
    for top in range(0, height, step):
        yield slice(top, min(top + step, height))


def _check_content(pixels: dict[str, np.ndarray], expected: ExpectedImage) -> None:
    color = [values for name, values in pixels.items() if _is_color(name)]
    if all(_is_constant(values) for values in color):
        if expected.reference_is_blank:
            return  # the job's reference render is blank here too: the truth
        black = all(float(values.flat[0]) == 0.0 for values in color)
        what = "all black" if black else "a single constant colour"
        raise _Rejected(RejectionReason.BLANK, f"the image is {what}")


def _is_constant(values: np.ndarray) -> bool:
    """min == max, but a rendered image is told apart in its first rows, not in a full pass."""
    first = values.flat[0]
    if values.ndim != 2:
        return bool((values == first).all())
    return not any((values[rows] != first).any() for rows in _row_blocks(values))


def display_luminance(pixels: dict[str, np.ndarray]) -> np.ndarray:
    """Mean of the colour channels scaled to [0, 1]: integers by their range, floats
    (linear EXR) clipped to the display range and sRGB encoded, as a thumbnail shows them."""
    names = [name for name in pixels if _is_color(name)]
    combined = [name for name in names if ".Combined." in name or "." not in name]
    channels = [pixels[name] for name in combined or names]
    assert channels
    # Block by block, with the same float32 operations in the same order as on whole arrays.
    total = np.empty(channels[0].shape, dtype=np.float32)
    scratch = np.empty(BLOCK_PX + total.shape[1], dtype=np.float32)
    for rows in _row_blocks(total):
        out = total[rows]
        _display_into(channels[0][rows], out)
        for values in channels[1:]:
            part = scratch[: out.size].reshape(out.shape)
            _display_into(values[rows], part)
            np.add(out, part, out=out)
        np.divide(out, len(channels), out=out)
    return total


def _display_into(values: np.ndarray, out: np.ndarray) -> None:
    """``to_display(values)`` written into ``out`` (float32, same shape)."""
    if values.dtype.kind == "u" and values.dtype.itemsize <= 2:
        # The table's own float32 division, vectorised where a lookup is a gather.
        np.copyto(out, values)
        np.divide(out, np.float32(np.iinfo(values.dtype).max), out=out)
    elif values.dtype.kind in "if" and values.dtype.itemsize <= 2:
        table = _display_table(values.dtype)
        codes = values.view(np.uint16 if values.dtype.itemsize == 2 else np.uint8)
        # "wrap" never wraps (the table has every code); "raise" would buffer the output.
        np.take(table, codes, out=out, mode="wrap")
    else:
        out[...] = _to_display(values)


def to_display(values: np.ndarray) -> np.ndarray:
    """One channel as float32 in [0, 1] as a display shows it."""
    if values.dtype.itemsize <= 2 and values.dtype.kind in "uif":
        # 8- and 16-bit channels (PNG, half-float EXR) have at most 65,536 values: look them up.
        return _display_table(values.dtype)[
            values.view(np.uint16 if values.dtype.itemsize == 2 else np.uint8)
        ]
    return _to_display(values)


def to_display_8bit(values: np.ndarray) -> np.ndarray:
    """``round(to_display(values) * 255)`` as uint8: one table lookup per pixel for
    8- and 16-bit channels, none for 8-bit integers (already display values)."""
    if values.dtype == np.uint8:
        return values
    if values.dtype.itemsize <= 2 and values.dtype.kind in "uif":
        codes = values.view(np.uint16 if values.dtype.itemsize == 2 else np.uint8)
        return np.take(_display_table_8bit(values.dtype), codes, mode="wrap")  # every code is in it
    return np.round(_to_display(values) * 255).astype(np.uint8)


def _to_display(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "ui":
        return values.astype(np.float32) / float(np.iinfo(values.dtype).max)
    linear = np.clip(values.astype(np.float32), 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


@functools.cache
def _display_table(dtype: np.dtype) -> np.ndarray:
    """``_to_display`` of every value a 1- or 2-byte channel type can hold, by bit pattern."""
    codes = np.arange(
        256 if dtype.itemsize == 1 else 65536, dtype=np.uint8 if dtype.itemsize == 1 else np.uint16
    )
    with np.errstate(invalid="ignore"):  # NaN patterns of half floats: rejected earlier anyway
        return np.nan_to_num(_to_display(codes.view(dtype)).astype(np.float32))


@functools.cache
def _display_table_8bit(dtype: np.dtype) -> np.ndarray:
    return np.round(_display_table(dtype) * 255).astype(np.uint8)


def fingerprint(path: str, expected: ExpectedImage) -> str:
    """The fingerprint ``check_render_output`` compares with ``known_fingerprints``."""
    pixels = load_pixels(path, expected)
    return _fingerprint(pixels, display_luminance(pixels))


def _fingerprint(pixels: dict[str, np.ndarray], luminance: np.ndarray) -> str:
    """sha256 of the decoded colour pixels, then a 16-bit luminance signature."""
    return f"{_pixel_hash(pixels)}:{_signature_text(luminance)}"


def _pixel_hash(pixels: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(name for name in pixels if _is_color(name)):
        values = pixels[name]
        digest.update(f"{name}:{values.dtype.str}:{values.shape}".encode())
        _hash_pixels(digest, values)
    return digest.hexdigest()


def _signature_text(luminance: np.ndarray) -> str:
    signature = np.round(_signature(luminance) * 65535).astype(">u2")
    height, width = signature.shape
    encoded = base64.b64encode(signature.tobytes()).decode("ascii")
    return f"{width}x{height}:{encoded}"


def _hash_pixels(digest: Any, values: np.ndarray) -> None:
    """Feed the array's bytes in C order, as ``tobytes`` has them, without a whole copy."""
    if values.flags.c_contiguous:
        digest.update(values)
    elif values.ndim != 2:
        digest.update(np.ascontiguousarray(values))
    else:  # a channel of interleaved pixels (PNG): copied a block of rows at a time
        for rows in _row_blocks(values):
            digest.update(np.ascontiguousarray(values[rows]))


def _signature(luminance: np.ndarray) -> np.ndarray:
    from PIL import Image

    height, width = luminance.shape
    size = (min(SIGNATURE_SIDE_PX, width), min(SIGNATURE_SIDE_PX, height))
    image = Image.fromarray(np.ascontiguousarray(luminance, dtype=np.float32), "F")
    return np.asarray(image.resize(size, Image.Resampling.BOX))


def _parse_fingerprint(text: str) -> tuple[str, tuple[int, int], np.ndarray | None]:
    """The pixel hash, the signature's (width, height) and its cells as 16-bit values."""
    try:
        pixel_hash, shape, encoded = text.split(":")
        width, height = (int(part) for part in shape.split("x"))
        cells = np.frombuffer(base64.b64decode(encoded), dtype=">u2").astype(np.uint16)
        if cells.size != width * height or not cells.size:
            return pixel_hash, (0, 0), None
        return pixel_hash, (width, height), cells
    except ValueError:
        return text.split(":")[0], (0, 0), None


def _nearly_identical(cells: np.ndarray, known: np.ndarray) -> bool:
    """Whether a row of ``known`` is within NEAR_DUPLICATE_MAX_CELL_DIFF of ``cells`` in
    every cell once their mean difference (a uniform brightness change) is taken out:
    in 16-bit units times the cell count, so that the test is on exact integers."""
    count = cells.size
    limit = count * round(65535 * NEAR_DUPLICATE_MAX_CELL_DIFF)
    difference = np.subtract(known, cells, dtype=np.int32)
    total = difference.sum(axis=1)
    above = count * difference.max(axis=1) - total
    below = total - count * difference.min(axis=1)
    return bool(np.any((above < limit) & (below < limit)))


def image_statistics(luminance: np.ndarray) -> dict[str, float]:
    """Noise and detail ratio of a luminance image (empty when it is too small).

    Large images are measured on evenly spaced bands of rows (about STATISTICS_SAMPLE_PX
    pixels in all): every statistic is a mean over pixel neighbourhoods, and a few hundred
    thousand of them estimate it as well as millions do, at a fraction of the time.
    """
    height, width = luminance.shape
    if min(width, height) < MIN_STATISTICS_SIDE_PX:
        return {}
    if luminance.size <= STATISTICS_SAMPLE_PX:
        bands = luminance[None].astype(np.float64)  # small: the whole image as one band
    else:
        bands = _row_bands(luminance).astype(np.float64)  # (bands, 4 rows, width)
    laplacian = _laplacian(bands)
    noise = float(np.sqrt(np.pi / 2) * np.abs(laplacian, out=laplacian).mean() / 6)
    near = float(_mean_square(np.diff(bands, axis=2)) + _mean_square(np.diff(bands, axis=1)))
    far = float(
        _mean_square(np.subtract(bands[:, :, 2:], bands[:, :, :-2]))
        + _mean_square(np.subtract(bands[:, 2:], bands[:, :-2]))
    )
    return {"noise": noise, "detail_ratio": far / near if near > 0 else 0.0}


def _laplacian(bands: np.ndarray) -> np.ndarray:
    """The Laplacian [1 -2 1; -2 4 -2; 1 -2 1] of each band, summed in place term by term
    in reading order: bit for bit the sum written as one expression, without its
    temporaries (doubling is exact, and x - y is x + -y in IEEE arithmetic)."""
    height, width = bands.shape[1] - 2, bands.shape[2] - 2
    doubled = np.multiply(bands, 2)

    def at(source: np.ndarray, row: int, col: int) -> np.ndarray:
        return source[:, row : row + height, col : col + width]

    total = at(bands, 0, 0).copy()
    total -= at(doubled, 0, 1)
    total += at(bands, 0, 2)
    total -= at(doubled, 1, 0)
    total += np.multiply(at(doubled, 1, 1), 2)
    total -= at(doubled, 1, 2)
    total += at(bands, 2, 0)
    total -= at(doubled, 2, 1)
    total += at(bands, 2, 2)
    return total


def _mean_square(values: np.ndarray) -> np.floating:
    """Mean of the squares, squaring in place (``values`` is a temporary)."""
    return np.square(values, out=values).mean()


def _row_bands(image: np.ndarray) -> np.ndarray:
    """Bands of 4 consecutive rows starting on even rows, evenly spaced, as (bands, 4, ...):
    the whole image when it is small. A read-only view, not a copy."""
    height, width = image.shape[:2]
    count = height // BAND_ROWS
    wanted = max(1, STATISTICS_SAMPLE_PX // (BAND_ROWS * width))
    stride = max(1, count // wanted)
    bands = len(range(0, count, stride))
    step = image.strides[0]
    return np.lib.stride_tricks.as_strided(
        image,
        shape=(bands, BAND_ROWS, *image.shape[1:]),
        strides=(stride * BAND_ROWS * step, step, *image.strides[1:]),
        writeable=False,
    )


def _nearest_phase_gap(pixels: dict[str, np.ndarray]) -> float:
    """How much more often adjacent pixel pairs repeat at one grid phase than the other."""
    channels = [values for name, values in pixels.items() if _is_color(name)]
    gaps = []
    for axis in (0, 1):
        lines = [np.moveaxis(values, axis, 0) for values in channels]
        if lines[0].shape[0] < BAND_ROWS:
            continue
        if lines[0].size <= STATISTICS_SAMPLE_PX:
            same = _all_equal(np.equal(line[:-1], line[1:]) for line in lines)
            equal = same.reshape(same.shape[0], -1).mean(axis=1)
            gaps.append(abs(float(equal[0::2].mean()) - float(equal[1::2].mean())))
            continue
        # Bands of 4 lines starting on even lines: pairs (0,1) and (2,3) are one phase, (1,2) the other.
        bands = (_comparable(_row_bands(line)) for line in lines)
        same = _all_equal(np.equal(band[:, 1:], band[:, :-1]) for band in bands)
        # Counted rather than averaged: the same fractions, from exact integer counts.
        pairs = same[:, 0].size
        first, middle, last = (np.count_nonzero(same[:, index]) for index in range(3))
        gaps.append(abs((first + last) / (2 * pairs) - middle / pairs))
    return max(gaps, default=0.0)


def _comparable(bands: np.ndarray) -> np.ndarray:
    """A C-ordered copy of sampled bands, so that comparisons run along whole lines.

    Half floats become their bits (numpy compares float16 one value at a time), with -0
    made +0: then bits are equal exactly when the values are, NaN aside, which never
    equals itself and keeps the float comparison.
    """
    copy = bands.copy(order="C")
    if copy.dtype != np.float16:
        return copy
    bits = copy.view(np.uint16)
    if (np.bitwise_and(bits, 0x7FFF) > 0x7C00).any():
        return copy.astype(np.float32)
    np.copyto(bits, 0, where=bits == 0x8000)
    return bits


def _all_equal(comparisons: Iterator[np.ndarray]) -> np.ndarray:
    """The logical and of boolean arrays, into the first (no stack of them all)."""
    same = next(comparisons)
    for other in comparisons:
        np.logical_and(same, other, out=same)
    return same


def _check_copy(own: str, stats: dict[str, float], phase_gap: float, expected: ExpectedImage) -> None:
    if not expected.allow_duplicates:
        match = expected.known_frames.match(own)
        if match:
            raise _Rejected(
                RejectionReason.DUPLICATE_FRAME, f"{match} to a frame already delivered for this job"
            )
    if not stats:
        return
    if phase_gap > NEAREST_UPSCALE_MIN_PHASE_GAP:
        raise _Rejected(
            RejectionReason.UPSCALED,
            f"pixel pairs repeat on a grid (phase gap {phase_gap:.2f}): a nearest upscale",
        )
    reference = expected.reference_detail_ratio
    if reference is not None and stats["detail_ratio"] > reference + UPSCALE_DETAIL_RATIO_MARGIN:
        raise _Rejected(
            RejectionReason.UPSCALED,
            f"detail ratio {stats['detail_ratio']:.2f} against {reference:.2f} in the job's frames:"
            " too smooth at the pixel scale, an upscaled image",
        )
    noise_reference = expected.reference_noise
    if noise_reference and stats["noise"] > LOW_SAMPLES_NOISE_RATIO * noise_reference:
        raise _Rejected(
            RejectionReason.LOW_SAMPLES,
            f"noise {stats['noise']:.4f} is {stats['noise'] / noise_reference:.1f}x the job's"
            f" {noise_reference:.4f}: rendered with far fewer samples",
        )


# Spot checks: a crop re-rendered on another node is compared with the same region
# of the upload. Borders are Blender's render border, fractions of the frame with y
# measured from the bottom: [min_x, max_x, min_y, max_y].


def border_from_pixels(x0: int, x1: int, y0: int, y1: int, width: int, height: int) -> list[float]:
    """The render border of the pixel rectangle [x0, x1) x [y0, y1) (y from the bottom).

    Blender truncates ``border * size`` to pixels in float32, so a fraction exactly on
    a pixel edge may land one pixel short; a quarter pixel inside the edge never does.
    """

    def edge(pixel: int, size: int) -> float:
        if pixel <= 0:
            return 0.0
        if pixel >= size:
            return 1.0
        return (pixel + 0.25) / size

    return [edge(x0, width), edge(x1, width), edge(y0, height), edge(y1, height)]


def border_to_pixels(border: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) in pixels, y from the bottom, as Blender's border render cuts them."""
    min_x, max_x, min_y, max_y = (min(max(float(v), 0.0), 1.0) for v in border)
    return int(min_x * width), int(max_x * width), int(min_y * height), int(max_y * height)


def crop_region(
    pixels: dict[str, np.ndarray], width: int, height: int, border: list[float]
) -> dict[str, np.ndarray]:
    """The channels of a decoded full frame cut to a render border (rows are stored top down)."""
    x0, x1, y0, y1 = border_to_pixels(border, width, height)
    return {name: values[height - y1 : height - y0, x0:x1] for name, values in pixels.items()}


def crops_match(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[bool, float]:
    """Exact comparison of two crops: (equal, max abs difference over every channel).

    Different channels or shapes never match (difference inf). The same scene, seed
    and frame on a CPU render bit for bit, so no tolerance is needed.
    """
    if set(a) != set(b) or any(a[name].shape != b[name].shape for name in a):
        return False, float("inf")
    worst = 0.0
    for name in a:
        diff = np.abs(a[name].astype(np.float64) - b[name].astype(np.float64))
        if diff.size:
            worst = max(worst, float(np.nan_to_num(diff, nan=np.inf).max()))
    return worst == 0.0, worst


SPOT_CHECK_CROP_AREA = 0.01  # each crop is about 1 % of the frame: the check costs about 1 % of a render
SPOT_CHECK_MIN_CROP_SIDE_PX = 4


def choose_crops(width: int, height: int, rng: random.Random, count: int) -> list[list[float]]:
    """``count`` random crops of about 1 % of the frame each, as render borders on pixel edges."""
    side = SPOT_CHECK_CROP_AREA**0.5
    crop_w = min(width, max(SPOT_CHECK_MIN_CROP_SIDE_PX, round(width * side)))
    crop_h = min(height, max(SPOT_CHECK_MIN_CROP_SIDE_PX, round(height * side)))
    crops = []
    for _ in range(count):
        x0 = rng.randint(0, width - crop_w)
        y0 = rng.randint(0, height - crop_h)
        crops.append(border_from_pixels(x0, x0 + crop_w, y0, y0 + crop_h, width, height))
    return crops
