"""The fast paths of shared.image_checks (bit tests, row blocks, strided bands, the
pixel hash beside the luminance) against the plain whole-array computations they
replace: same verdicts, and the same fingerprints and statistics bit for bit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from shared import image_checks
from shared.image_checks import ExpectedImage, RejectionReason, check_render_output, to_display

pytestmark = pytest.mark.unit

# Over STATISTICS_SAMPLE_PX (banded statistics) and many BLOCK_PX blocks; odd sizes so
# that neither the blocks nor the bands divide the image evenly.
WIDTH, HEIGHT = 1203, 911
assert WIDTH * HEIGHT > image_checks.STATISTICS_SAMPLE_PX
assert WIDTH * HEIGHT > 4 * image_checks.BLOCK_PX


# --- the plain computations, as the verifier made them before its fast paths ------------


def plain_luminance(pixels: dict[str, np.ndarray]) -> np.ndarray:
    names = [name for name in pixels if image_checks._is_color(name)]
    names = [name for name in names if ".Combined." in name or "." not in name] or names
    total = to_display(pixels[names[0]])
    for name in names[1:]:
        total = total + to_display(pixels[name])
    return total / len(names)


def plain_bands(image: np.ndarray) -> np.ndarray:
    count = image.shape[0] // image_checks.BAND_ROWS
    wanted = max(1, image_checks.STATISTICS_SAMPLE_PX // (image_checks.BAND_ROWS * image.shape[1]))
    starts = np.arange(0, count, max(1, count // wanted)) * image_checks.BAND_ROWS
    rows = (starts[:, None] + np.arange(image_checks.BAND_ROWS)[None, :]).ravel()
    return image[rows].reshape(len(starts), image_checks.BAND_ROWS, *image.shape[1:])


def plain_statistics(luminance: np.ndarray) -> dict[str, float]:
    if luminance.size <= image_checks.STATISTICS_SAMPLE_PX:
        bands = luminance[None].astype(np.float64)
    else:
        bands = plain_bands(luminance).astype(np.float64)
    laplacian = plain_laplacian(bands)
    noise = float(np.sqrt(np.pi / 2) * np.abs(laplacian).mean() / 6)
    near = float(np.square(np.diff(bands, axis=2)).mean() + np.square(np.diff(bands, axis=1)).mean())
    far = float(
        np.square(bands[:, :, 2:] - bands[:, :, :-2]).mean() + np.square(bands[:, 2:] - bands[:, :-2]).mean()
    )
    return {"noise": noise, "detail_ratio": far / near if near > 0 else 0.0}


def plain_laplacian(bands: np.ndarray) -> np.ndarray:
    return (
        bands[:, :-2, :-2] - 2 * bands[:, :-2, 1:-1] + bands[:, :-2, 2:]
        - 2 * bands[:, 1:-1, :-2] + 4 * bands[:, 1:-1, 1:-1] - 2 * bands[:, 1:-1, 2:]
        + bands[:, 2:, :-2] - 2 * bands[:, 2:, 1:-1] + bands[:, 2:, 2:]
    )  # fmt: skip


def plain_phase_gap(pixels: dict[str, np.ndarray]) -> float:
    channels = [values for name, values in pixels.items() if image_checks._is_color(name)]
    gaps = []
    for axis in (0, 1):
        lines = [np.moveaxis(values, axis, 0) for values in channels]
        bands = [plain_bands(line) for line in lines]
        same = np.logical_and.reduce([band[:, 1:] == band[:, :-1] for band in bands])
        gaps.append(abs(float(same[:, 0::2].mean()) - float(same[:, 1].mean())))
    return max(gaps)


def plain_pixel_hash(pixels: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(name for name in pixels if image_checks._is_color(name)):
        values = np.ascontiguousarray(pixels[name])
        digest.update(f"{name}:{values.dtype.str}:{values.shape}".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


# --- images -----------------------------------------------------------------------------


def render_like(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """RGBA float32: smooth shading and per-pixel noise, a little outside [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgba = np.empty((height, width, 4), dtype=np.float32)
    rgba[..., 0] = 0.5 + 0.4 * np.sin(x / 37.0) * np.cos(y / 23.0)
    rgba[..., 1] = y / height
    rgba[..., 2] = x / width
    rgba[..., :3] += rng.normal(0.0, 0.05, (height, width, 3)).astype(np.float32)
    rgba[..., 3] = 1.0
    return rgba


def write_exr(path: Path, channels: dict[str, np.ndarray]) -> Path:
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {name: np.ascontiguousarray(v) for name, v in channels.items()}).write(str(path))
    return path


def exr_channels(rgba: np.ndarray, dtype: type) -> dict[str, np.ndarray]:
    return {f"ViewLayer.Combined.{name}": rgba[..., i].astype(dtype) for i, name in enumerate("RGBA")}


def exr_expected(**overrides) -> ExpectedImage:
    return ExpectedImage("OPEN_EXR", WIDTH, HEIGHT, **overrides)


def interleaved(rgba: np.ndarray, dtype: type = np.uint8) -> dict[str, np.ndarray]:
    """Channels as the PNG decoder hands them over: strided views of one pixel array."""
    top = np.iinfo(dtype).max
    array = np.clip(rgba * top + 0.5, 0, top).astype(dtype)
    return {name: array[:, :, i] for i, name in enumerate("RGBA")}


# --- non-finite values ------------------------------------------------------------------


HALF_CODES = np.arange(65536, dtype=np.uint32).astype(np.uint16)
HALF_NON_FINITE = HALF_CODES[~np.isfinite(HALF_CODES.view(np.float16))]


def test_every_half_nan_and_inf_bit_pattern_is_found_anywhere():
    assert len(HALF_NON_FINITE) == 2 * 1024  # both signs: Inf and 1023 NaN payloads
    finite = HALF_CODES[np.isfinite(HALF_CODES.view(np.float16))]
    wide = np.resize(finite, (300, 1001))  # several blocks of rows, odd width
    assert image_checks._all_finite(wide.view(np.float16))
    for index, code in enumerate(HALF_NON_FINITE):
        values = wide.copy()
        values.flat[(index * 7919) % values.size] = code  # wherever, not only in the first block
        assert not image_checks._all_finite(values.view(np.float16)), hex(code)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, -np.nan])
def test_float_nan_and_inf_are_found_in_the_last_row(dtype, bad):
    values = np.random.default_rng(3).normal(0, 1e30, (700, 977)).astype(dtype)
    values[-1, -2] = bad
    assert not image_checks._all_finite(values)
    values[-1, -2] = np.finfo(dtype).max  # the largest finite value is not Inf
    values[0, 0] = -np.finfo(dtype).max
    values[1, 1] = np.finfo(dtype).smallest_subnormal
    assert image_checks._all_finite(values)


@pytest.mark.parametrize(
    ("channel", "row", "col", "bad", "dtype"),
    [
        ("A", HEIGHT - 1, WIDTH - 2, np.nan, np.float16),  # far from the first block, odd column
        ("G", HEIGHT // 2 + 1, 1, -np.inf, np.float16),
        ("B", HEIGHT - 1, WIDTH - 1, np.inf, np.float32),
        ("R", 677, 333, np.nan, np.float32),
    ],
)
def test_large_exr_with_one_non_finite_value_is_rejected(tmp_path, channel, row, col, bad, dtype):
    channels = exr_channels(render_like(1), dtype)
    channels[f"ViewLayer.Combined.{channel}"][row, col] = bad

    verdict = check_render_output(str(write_exr(tmp_path / "bad.exr", channels)), exr_expected())

    assert verdict.reason is RejectionReason.NON_FINITE, verdict
    assert f"Combined.{channel}" in verdict.detail


# --- blank ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_constant_exr_with_one_different_pixel_in_the_far_corner_is_not_blank(tmp_path, dtype):
    flat = np.full((HEIGHT, WIDTH), 0.25, dtype=dtype)
    corner = flat.copy()
    corner[-1, -1] = 0.2505
    channels = {"R": flat, "G": corner, "B": flat}
    path = write_exr(tmp_path / "corner.exr", channels)

    verdict = check_render_output(str(path), exr_expected())

    assert verdict.reason is not RejectionReason.BLANK, verdict
    assert verdict.accepted is True
    blank = check_render_output(
        str(write_exr(tmp_path / "flat.exr", {"R": flat, "G": flat, "B": flat})), exr_expected()
    )
    assert blank.reason is RejectionReason.BLANK
    assert "constant" in blank.detail


def test_constant_png_with_one_different_pixel_in_the_far_corner_is_not_blank(tmp_path):
    array = np.full((HEIGHT, WIDTH, 3), (90, 90, 90), dtype=np.uint8)
    array[-1, -1, 2] = 91
    path = tmp_path / "corner.png"
    Image.fromarray(array, "RGB").save(path)

    assert check_render_output(str(path), ExpectedImage("PNG", WIDTH, HEIGHT)).accepted is True


def test_black_with_negative_zeros_is_blank_like_min_equals_max(tmp_path):
    zeros = np.zeros((HEIGHT, WIDTH), dtype=np.float16)
    signed = zeros.copy()
    signed[::3, ::7] = -0.0  # -0 == +0: still one constant colour, black
    path = write_exr(tmp_path / "black.exr", {"R": signed, "G": zeros, "B": signed})

    verdict = check_render_output(str(path), exr_expected())

    assert verdict.reason is RejectionReason.BLANK
    assert "black" in verdict.detail


def test_constant_test_agrees_with_min_and_max():
    rng = np.random.default_rng(9)
    for values in (
        np.full((HEIGHT, WIDTH), 7, dtype=np.uint16),
        np.full((HEIGHT, WIDTH), np.nan, dtype=np.float32),
        rng.integers(0, 2, (HEIGHT, WIDTH), dtype=np.uint8),
        np.where(rng.random((40, 50)) < 0.5, 0.0, -0.0).astype(np.float16),
        interleaved(render_like(2, 300, 200))["G"],
    ):
        assert image_checks._is_constant(values) == (float(values.min()) == float(values.max()))


# --- fingerprint and statistics ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["half", "float", "uint8", "uint16"])
def test_luminance_hash_and_statistics_match_the_whole_array_computations(kind):
    rgba = render_like(4)
    if kind in ("half", "float"):
        pixels = exr_channels(rgba * 1.5 - 0.2, np.float16 if kind == "half" else np.float32)
    else:
        pixels = interleaved(rgba, np.uint8 if kind == "uint8" else np.uint16)

    luminance = image_checks.display_luminance(pixels)
    plain = plain_luminance(pixels)

    assert luminance.dtype == plain.dtype == np.float32
    assert np.array_equal(luminance, plain)
    assert image_checks._pixel_hash(pixels) == plain_pixel_hash(pixels)
    assert image_checks.image_statistics(luminance) == plain_statistics(plain)
    small = np.ascontiguousarray(plain[:500, :700])  # the whole-image path
    assert image_checks.image_statistics(small) == plain_statistics(small)


def test_statistics_of_full_precision_luminance_match_bit_for_bit():
    # float64 luminance: the Laplacian's sums round, so their order counts (float32 ones are exact).
    rng = np.random.default_rng(8)
    for shape in ((HEIGHT, WIDTH), (300, 401)):
        luminance = rng.random(shape) ** 3
        assert image_checks.image_statistics(luminance) == plain_statistics(luminance)
        bands = luminance[None]
        assert np.array_equal(image_checks._laplacian(bands), plain_laplacian(bands))


@pytest.mark.parametrize("output_format", ["OPEN_EXR", "PNG"])
def test_verdict_measures_match_the_whole_array_computations(tmp_path, output_format):
    rgba = render_like(5)
    if output_format == "PNG":
        path = tmp_path / "frame.png"
        Image.fromarray(np.clip(rgba * 255 + 0.5, 0, 255).astype(np.uint8), "RGBA").save(path)
    else:
        path = write_exr(tmp_path / "frame.exr", exr_channels(rgba, np.float16))
    expected = ExpectedImage(output_format, WIDTH, HEIGHT)
    pixels = image_checks.load_pixels(str(path), expected)
    plain = plain_luminance(pixels)
    signature = image_checks._signature_text(plain)

    verdict = check_render_output(str(path), expected)

    assert verdict.accepted is True, verdict
    assert verdict.fingerprint == f"{plain_pixel_hash(pixels)}:{signature}"
    assert verdict.fingerprint == image_checks.fingerprint(str(path), expected)
    assert verdict.stats == plain_statistics(plain)


# --- nearest upscale --------------------------------------------------------------------


def test_phase_gap_matches_the_float_comparisons_of_half_floats():
    rgba = render_like(6).astype(np.float16)
    low = rgba[::2, ::2]
    upscaled = np.repeat(np.repeat(low, 2, axis=0), 2, axis=1)[:HEIGHT, :WIDTH]
    for image in (rgba, upscaled):
        pixels = {name: np.ascontiguousarray(image[..., i]) for i, name in enumerate("RGB")}
        assert image_checks._nearest_phase_gap(pixels) == plain_phase_gap(pixels)

    # -0 next to +0 repeats (equal values, different bits)...
    zeros = np.zeros((HEIGHT, WIDTH), dtype=np.float16)
    zeros[:, 1::2] = -0.0
    zeros[1::2, :] = -zeros[1::2, :]
    pixels = {"R": zeros, "G": zeros, "B": zeros}
    assert image_checks._nearest_phase_gap(pixels) == plain_phase_gap(pixels) == 0.0
    # ... NaN next to the same NaN does not (same bits, unequal values): rows of NaN in
    # pairs repeat at one phase by their bits, at neither by their values.
    nan_rows = np.ones((HEIGHT, WIDTH), dtype=np.float16)
    nan_rows[(np.arange(HEIGHT) % 4) < 2] = np.nan
    pixels = {"R": nan_rows, "G": zeros, "B": zeros}
    assert image_checks._nearest_phase_gap(pixels) == plain_phase_gap(pixels) == 0.5


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_phase_gap_matches_on_interleaved_integer_channels(dtype):
    rgba = render_like(7)
    upscaled = np.repeat(rgba[:, ::2], 2, axis=1)[:, :WIDTH]  # repeated along rows only
    for image in (rgba, upscaled):
        pixels = interleaved(image, dtype)
        assert image_checks._nearest_phase_gap(pixels) == plain_phase_gap(pixels)
    assert (
        image_checks._nearest_phase_gap(interleaved(upscaled, dtype))
        > image_checks.NEAREST_UPSCALE_MIN_PHASE_GAP
    )
