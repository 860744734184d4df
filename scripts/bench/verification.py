"""Verification: ``shared.image_checks.check_render_output`` on a 3840x2160 frame
against only decoding the same file (OpenEXR for the EXR, Pillow for the PNG), and
the verifier's whole image work on an accepted frame: the checks plus its preview
(``shared.thumbnails.thumbnail_png`` of the pixels the checks decoded).

The frames are synthetic renders: smooth shading plus per-pixel noise, so every
check runs and accepts (the verifier is given reference noise and detail from the
frame itself and the fingerprint of another frame, as for a job with verified
frames). Each figure is the median of ``repeats`` runs.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scripts.bench.common import Section, ratio, rounded

WIDTH, HEIGHT = 3840, 2160


def synthetic_frame(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """An RGBA float32 image in 0..1: gradients, a soft disc, and render noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x /= width
    y /= height
    disc = np.exp(-(((x - 0.5 - 0.05 * seed) ** 2) + (y - 0.5) ** 2) * 12.0)
    rgba = np.empty((height, width, 4), dtype=np.float32)
    rgba[..., 0] = 0.2 + 0.6 * x * disc
    rgba[..., 1] = 0.1 + 0.5 * y
    rgba[..., 2] = 0.3 + 0.4 * disc
    rgba[..., :3] += rng.normal(0.0, 0.02, (height, width, 3)).astype(np.float32)
    rgba[..., 3] = 1.0
    return np.clip(rgba, 0.0, 1.0)


def write_exr(path: Path, rgba: np.ndarray) -> Path:
    """A half-float EXR with Blender's channel names."""
    import OpenEXR

    channels = {
        f"ViewLayer.Combined.{name}": np.ascontiguousarray(rgba[..., index].astype(np.float16))
        for index, name in enumerate("RGBA")
    }
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, channels).write(str(path))
    return path


def write_png(path: Path, rgba: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray((rgba * 255 + 0.5).astype(np.uint8), "RGBA").save(path)
    return path


def decode_exr(path: Path) -> None:
    import OpenEXR

    for channel in OpenEXR.File(str(path), separate_channels=True).channels().values():
        np.asarray(channel.pixels)


def decode_png(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        np.asarray(image)


def median_s(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(repeats: int = 3, width: int = WIDTH, height: int = HEIGHT) -> Section:
    from shared.image_checks import ExpectedImage, KnownFrames, check_render_output
    from shared.thumbnails import thumbnail_png

    def verify_with_preview(path: Path, expected: ExpectedImage) -> None:
        verdict = check_render_output(str(path), expected)
        thumbnail_png(verdict.pixels or {})

    section = Section()
    writers = {"OPEN_EXR": (write_exr, decode_exr, "exr"), "PNG": (write_png, decode_png, "png")}
    with tempfile.TemporaryDirectory(prefix="rr-bench-verify-") as work:
        frame, other = synthetic_frame(1, width, height), synthetic_frame(2, width, height)
        for output_format, (write, decode, suffix) in writers.items():
            path = write(Path(work) / f"frame.{suffix}", frame)
            other_path = write(Path(work) / f"other.{suffix}", other)
            bare = ExpectedImage(output_format, width, height)
            reference = check_render_output(str(path), bare)
            known = check_render_output(str(other_path), bare)
            expected = ExpectedImage(
                output_format,
                width,
                height,
                known_frames=KnownFrames.of([known.fingerprint] if known.fingerprint else []),
                reference_noise=reference.stats.get("noise"),
                reference_detail_ratio=reference.stats.get("detail_ratio"),
            )
            verdict = check_render_output(str(path), expected)
            if not verdict.accepted:
                section.notes.append(f"verification: the {suffix} frame was rejected: {verdict.reason}")
            verify_s = median_s(lambda p=path, e=expected: check_render_output(str(p), e), repeats)
            decode_s = median_s(lambda p=path, d=decode: d(p), repeats)
            with_preview_s = median_s(lambda p=path, e=expected: verify_with_preview(p, e), repeats)
            section.figures[f"verify_{suffix}_s"] = rounded(verify_s, 4)
            section.figures[f"decode_{suffix}_s"] = rounded(decode_s, 4)
            section.figures[f"verify_over_decode_{suffix}"] = rounded(ratio(verify_s, decode_s))
            section.figures[f"verify_with_preview_{suffix}_s"] = rounded(with_preview_s, 4)
            section.figures[f"verify_with_preview_over_decode_{suffix}"] = rounded(
                ratio(with_preview_s, decode_s)
            )
            section.rows.append(
                (
                    f"verify / decode, {width}x{height} {suffix.upper()}",
                    f"{ratio(verify_s, decode_s):.2f} ({verify_s * 1000:.0f} / {decode_s * 1000:.0f} ms)",
                    "",
                )
            )
            section.rows.append(
                (
                    f"verify + preview / decode, {suffix.upper()}",
                    f"{ratio(with_preview_s, decode_s):.2f} ({with_preview_s * 1000:.0f} ms)",
                    "",
                )
            )
    return section
