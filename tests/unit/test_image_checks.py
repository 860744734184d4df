"""Unit tests for shared.image_checks: real PNG and EXR files built in tmp_path."""

from __future__ import annotations

import base64
import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from PIL import Image, ImageFile

from shared.image_checks import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_OUTPUT_PIXELS,
    MATCH_BLOCK_ROWS,
    NEAR_DUPLICATE_MAX_CELL_DIFF,
    ExpectedImage,
    KnownFrames,
    RejectionReason,
    Verdict,
    check_render_output,
)

pytestmark = pytest.mark.unit

WIDTH, HEIGHT = 64, 36
PNG_EXPECTED = ExpectedImage(output_format="PNG", width=WIDTH, height=HEIGHT)
EXR_EXPECTED = ExpectedImage(output_format="OPEN_EXR", width=WIDTH, height=HEIGHT)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def write_png(path: Path, array: np.ndarray, mode: str) -> Path:
    Image.fromarray(array, mode).save(path, "PNG")
    return path


def noise_png(
    path: Path, rng: np.random.Generator, mode: str = "RGBA", width: int = WIDTH, height: int = HEIGHT
) -> Path:
    channels = len(mode)
    array = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    return write_png(path, array, mode)


def write_exr(path: Path, channels: dict[str, np.ndarray]) -> Path:
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, channels).write(str(path))
    return path


def noise_exr(path: Path, rng: np.random.Generator, width: int = WIDTH, height: int = HEIGHT) -> Path:
    channels = {name: rng.random((height, width), dtype=np.float32) for name in "RGB"}
    channels["A"] = np.ones((height, width), dtype=np.float32)
    return write_exr(path, channels)


def png_bomb(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR claims ``width`` x ``height``, with a valid IHDR CRC."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (10, 20, 30)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    struct.pack_into(">II", data, 16, width, height)
    # The CRC covers the chunk type and the 13 data bytes (offsets 12..28).
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def assert_rejected(verdict: Verdict, reason: RejectionReason) -> None:
    assert verdict.accepted is False, verdict
    assert verdict.reason is reason, verdict
    assert verdict.detail, "a rejection must say why"


# --- accepted outputs -------------------------------------------------------------------


def test_defaults_are_generous_but_finite():
    expected = ExpectedImage(output_format="PNG", width=1, height=1)
    assert expected.max_bytes == DEFAULT_MAX_OUTPUT_BYTES == 512 * 1024 * 1024
    assert expected.max_pixels == DEFAULT_MAX_OUTPUT_PIXELS == 16384 * 16384


@pytest.mark.parametrize("mode", ["RGBA", "RGB"])
def test_noisy_png_is_accepted(tmp_path, rng, mode):
    path = noise_png(tmp_path / "frame.png", rng, mode=mode)

    verdict = check_render_output(str(path), PNG_EXPECTED)

    assert verdict == Verdict(accepted=True, reason=None, detail="")


def test_noisy_grey_png_is_accepted(tmp_path, rng):
    array = rng.integers(0, 256, size=(HEIGHT, WIDTH), dtype=np.uint8)
    path = write_png(tmp_path / "grey.png", array, "L")

    assert check_render_output(str(path), PNG_EXPECTED).accepted is True


def test_noisy_16_bit_grey_png_is_accepted(tmp_path, rng):
    array = rng.integers(0, 65536, size=(HEIGHT, WIDTH), dtype=np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(array).save(path, "PNG")

    assert check_render_output(str(path), PNG_EXPECTED).accepted is True


def test_noisy_exr_is_accepted(tmp_path, rng):
    path = noise_exr(tmp_path / "frame.exr", rng)

    verdict = check_render_output(str(path), EXR_EXPECTED)

    assert verdict == Verdict(accepted=True, reason=None, detail="")


def test_exr_with_layered_channel_names_is_accepted(tmp_path, rng):
    # Blender's multilayer EXR names channels like "ViewLayer.Combined.R".
    channels = {
        f"ViewLayer.Combined.{name}": rng.random((HEIGHT, WIDTH), dtype=np.float32) for name in "RGBA"
    }
    path = write_exr(tmp_path / "layers.exr", channels)

    assert check_render_output(str(path), EXR_EXPECTED).accepted is True


# --- broken or wrong files --------------------------------------------------------------


@pytest.mark.parametrize("expected", [PNG_EXPECTED, EXR_EXPECTED], ids=["png", "exr"])
def test_zero_byte_file_is_undecodable(tmp_path, expected):
    path = tmp_path / "empty"
    path.write_bytes(b"")

    assert_rejected(check_render_output(str(path), expected), RejectionReason.UNDECODABLE)


@pytest.mark.parametrize("expected", [PNG_EXPECTED, EXR_EXPECTED], ids=["png", "exr"])
def test_garbage_bytes_are_wrong_format(tmp_path, rng, expected):
    path = tmp_path / "garbage.bin"
    path.write_bytes(rng.integers(1, 256, size=4096, dtype=np.uint8).tobytes())

    assert_rejected(check_render_output(str(path), expected), RejectionReason.WRONG_FORMAT)


def test_truncated_png_is_undecodable(tmp_path, rng):
    whole = noise_png(tmp_path / "whole.png", rng).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole[: len(whole) // 2])
    assert cut.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    assert_rejected(check_render_output(str(cut), PNG_EXPECTED), RejectionReason.UNDECODABLE)


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1])
def test_truncated_exr_is_undecodable(tmp_path, rng, keep):
    whole = noise_exr(tmp_path / "whole.exr", rng).read_bytes()
    cut = tmp_path / "cut.exr"
    cut.write_bytes(whole[: int(len(whole) * keep)])

    assert_rejected(check_render_output(str(cut), EXR_EXPECTED), RejectionReason.UNDECODABLE)


def test_png_when_exr_expected_is_wrong_format(tmp_path, rng):
    path = noise_png(tmp_path / "frame.exr", rng)

    assert_rejected(check_render_output(str(path), EXR_EXPECTED), RejectionReason.WRONG_FORMAT)


def test_exr_when_png_expected_is_wrong_format(tmp_path, rng):
    path = noise_exr(tmp_path / "frame.png", rng)

    assert_rejected(check_render_output(str(path), PNG_EXPECTED), RejectionReason.WRONG_FORMAT)


def test_jpeg_when_png_expected_is_wrong_format(tmp_path, rng):
    path = tmp_path / "frame.png"
    array = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    Image.fromarray(array, "RGB").save(path, "JPEG")

    assert_rejected(check_render_output(str(path), PNG_EXPECTED), RejectionReason.WRONG_FORMAT)


def test_unknown_expected_format_is_wrong_format(tmp_path, rng):
    path = noise_png(tmp_path / "frame.png", rng)
    expected = ExpectedImage(output_format="TIFF", width=WIDTH, height=HEIGHT)

    assert_rejected(check_render_output(str(path), expected), RejectionReason.WRONG_FORMAT)


@pytest.mark.parametrize(("width", "height"), [(WIDTH + 1, HEIGHT), (WIDTH, HEIGHT - 1), (HEIGHT, WIDTH)])
def test_png_of_wrong_resolution_is_rejected(tmp_path, rng, width, height):
    path = noise_png(tmp_path / "frame.png", rng, width=width, height=height)

    verdict = check_render_output(str(path), PNG_EXPECTED)

    assert_rejected(verdict, RejectionReason.WRONG_RESOLUTION)
    assert f"{width}x{height}" in verdict.detail


def test_exr_of_wrong_resolution_is_rejected(tmp_path, rng):
    path = noise_exr(tmp_path / "frame.exr", rng, width=WIDTH * 2, height=HEIGHT * 2)

    assert_rejected(check_render_output(str(path), EXR_EXPECTED), RejectionReason.WRONG_RESOLUTION)


@pytest.mark.parametrize("mode", ["P", "1"])
def test_png_of_unsupported_mode_is_wrong_channels(tmp_path, rng, mode):
    noisy = Image.fromarray(rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8), "RGB")
    path = tmp_path / "frame.png"
    noisy.convert(mode).save(path, "PNG")
    with Image.open(path) as reopened:
        assert reopened.mode == mode

    assert_rejected(check_render_output(str(path), PNG_EXPECTED), RejectionReason.WRONG_CHANNELS)


def test_exr_without_colour_channels_is_wrong_channels(tmp_path, rng):
    path = write_exr(tmp_path / "depth.exr", {"Z": rng.random((HEIGHT, WIDTH), dtype=np.float32)})

    assert_rejected(check_render_output(str(path), EXR_EXPECTED), RejectionReason.WRONG_CHANNELS)


# --- pixel values -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "+inf", "-inf"])
@pytest.mark.parametrize("channel", ["R", "A"])
def test_exr_with_non_finite_value_is_rejected(tmp_path, rng, bad, channel):
    channels = {name: rng.random((HEIGHT, WIDTH), dtype=np.float32) for name in "RGBA"}
    channels[channel][HEIGHT // 2, WIDTH // 3] = bad
    path = write_exr(tmp_path / "frame.exr", channels)

    verdict = check_render_output(str(path), EXR_EXPECTED)

    assert_rejected(verdict, RejectionReason.NON_FINITE)
    assert channel in verdict.detail


def test_half_float_exr_with_nan_is_rejected(tmp_path, rng):
    channels = {name: rng.random((HEIGHT, WIDTH)).astype(np.float16) for name in "RGB"}
    channels["G"][0, 0] = np.nan
    path = write_exr(tmp_path / "half.exr", channels)

    assert_rejected(check_render_output(str(path), EXR_EXPECTED), RejectionReason.NON_FINITE)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_all_black_png_is_blank(tmp_path, mode):
    path = tmp_path / "black.png"
    Image.new(mode, (WIDTH, HEIGHT), 0).save(path, "PNG")

    verdict = check_render_output(str(path), PNG_EXPECTED)

    assert_rejected(verdict, RejectionReason.BLANK)
    assert "black" in verdict.detail


def test_single_constant_colour_png_is_blank(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("RGB", (WIDTH, HEIGHT), (128, 128, 128)).save(path, "PNG")

    verdict = check_render_output(str(path), PNG_EXPECTED)

    assert_rejected(verdict, RejectionReason.BLANK)
    assert "constant" in verdict.detail


def test_constant_colour_with_varying_alpha_is_blank(tmp_path, rng):
    array = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    array[:, :, :3] = (200, 100, 50)
    array[:, :, 3] = rng.integers(0, 256, size=(HEIGHT, WIDTH), dtype=np.uint8)
    path = write_png(tmp_path / "alpha.png", array, "RGBA")

    assert_rejected(check_render_output(str(path), PNG_EXPECTED), RejectionReason.BLANK)


def test_one_varying_channel_is_not_blank(tmp_path, rng):
    array = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    array[:, :, 2] = rng.integers(0, 256, size=(HEIGHT, WIDTH), dtype=np.uint8)
    path = write_png(tmp_path / "blue.png", array, "RGB")

    assert check_render_output(str(path), PNG_EXPECTED).accepted is True


@pytest.mark.parametrize(("value", "word"), [(0.0, "black"), (0.25, "constant")])
def test_constant_exr_is_blank(tmp_path, value, word):
    channels = {name: np.full((HEIGHT, WIDTH), value, dtype=np.float32) for name in "RGB"}
    path = write_exr(tmp_path / "flat.exr", channels)

    verdict = check_render_output(str(path), EXR_EXPECTED)

    assert_rejected(verdict, RejectionReason.BLANK)
    assert word in verdict.detail


def test_constant_green_png_is_not_called_black(tmp_path):
    path = tmp_path / "green.png"
    Image.new("RGB", (WIDTH, HEIGHT), (0, 255, 0)).save(path, "PNG")

    verdict = check_render_output(str(path), PNG_EXPECTED)

    assert_rejected(verdict, RejectionReason.BLANK)
    assert "black" not in verdict.detail


def test_black_grey_alpha_png_with_varying_alpha_is_blank(tmp_path, rng):
    array = np.zeros((HEIGHT, WIDTH, 2), dtype=np.uint8)
    array[:, :, 1] = rng.integers(0, 256, size=(HEIGHT, WIDTH), dtype=np.uint8)
    path = write_png(tmp_path / "la.png", array, "LA")

    assert_rejected(check_render_output(str(path), PNG_EXPECTED), RejectionReason.BLANK)


# --- size limits ------------------------------------------------------------------------


@pytest.mark.parametrize("expected", [PNG_EXPECTED, EXR_EXPECTED], ids=["png", "exr"])
def test_file_larger_than_max_bytes_is_too_large(tmp_path, rng, expected):
    path = (
        noise_png(tmp_path / "frame.png", rng)
        if expected is PNG_EXPECTED
        else noise_exr(tmp_path / "frame.exr", rng)
    )
    size = path.stat().st_size
    limited = ExpectedImage(expected.output_format, WIDTH, HEIGHT, max_bytes=size - 1)

    verdict = check_render_output(str(path), limited)

    assert_rejected(verdict, RejectionReason.TOO_LARGE)
    assert str(size) in verdict.detail


def test_file_exactly_max_bytes_is_accepted(tmp_path, rng):
    path = noise_png(tmp_path / "frame.png", rng)
    limited = ExpectedImage("PNG", WIDTH, HEIGHT, max_bytes=path.stat().st_size)

    assert check_render_output(str(path), limited).accepted is True


def test_too_many_pixels_wins_over_wrong_resolution(tmp_path, rng):
    path = noise_exr(tmp_path / "frame.exr", rng)
    limited = ExpectedImage("OPEN_EXR", 8, 8, max_pixels=WIDTH * HEIGHT - 1)

    assert_rejected(check_render_output(str(path), limited), RejectionReason.TOO_LARGE)


@pytest.fixture
def no_pixel_decoding(monkeypatch):
    """Fail the test if Pillow is asked to decode (allocate) pixel data."""
    calls: list[object] = []

    def refuse_load(self):
        calls.append(self)
        raise AssertionError("pixel data was decoded for an image over max_pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_load)
    return calls


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_png_bomb_below_pillow_limit_is_too_large_without_decoding(tmp_path, no_pixel_decoding):
    # 10000x10000 is over max_pixels here but under Pillow's own hard bomb limit.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(10_000, 10_000))
    assert path.stat().st_size < 200
    expected = ExpectedImage("PNG", 1, 1, max_pixels=64 * 64)

    tracemalloc.start()
    try:
        verdict = check_render_output(str(path), expected)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert_rejected(verdict, RejectionReason.TOO_LARGE)
    assert no_pixel_decoding == []
    assert peak < 5 * 1024 * 1024


def test_png_bomb_is_rejected_without_decoding(tmp_path, no_pixel_decoding):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(100_000, 100_000))
    expected = ExpectedImage("PNG", 1, 1, max_pixels=64 * 64)

    tracemalloc.start()
    try:
        verdict = check_render_output(str(path), expected)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert verdict.accepted is False
    assert no_pixel_decoding == []
    assert peak < 5 * 1024 * 1024


def test_png_bomb_is_too_large(tmp_path, no_pixel_decoding):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(100_000, 100_000))
    expected = ExpectedImage("PNG", 1, 1, max_pixels=64 * 64)

    assert_rejected(check_render_output(str(path), expected), RejectionReason.TOO_LARGE)


def test_large_images_are_measured_on_row_bands_as_well_as_on_every_pixel():
    from shared import image_checks

    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:1200, 0:1600].astype(np.float32)
    smooth = 0.5 + 0.3 * np.sin(x / 90.0) * np.cos(y / 70.0)
    luminance = np.clip(smooth + rng.normal(0, 0.03, smooth.shape), 0, 1).astype(np.float32)
    assert luminance.size > image_checks.STATISTICS_SAMPLE_PX  # the banded path
    banded = image_checks.image_statistics(luminance)
    whole_bands = luminance[None].astype(np.float64)  # what the small-image path measures
    assert banded["noise"] == pytest.approx(_full_noise(whole_bands), rel=0.02)

    low = np.clip(smooth[::2, ::2] + rng.normal(0, 0.03, smooth[::2, ::2].shape), 0, 1)
    nearest = np.repeat(np.repeat(low, 2, axis=0), 2, axis=1)  # a 2x nearest upscale, 1600x1200
    pixels = {"R": nearest, "G": nearest, "B": nearest}
    assert image_checks._nearest_phase_gap(pixels) > image_checks.NEAREST_UPSCALE_MIN_PHASE_GAP
    honest = {"R": luminance, "G": luminance, "B": luminance}
    assert image_checks._nearest_phase_gap(honest) < 0.05


def _full_noise(bands: np.ndarray) -> float:
    laplacian = (
        bands[:, :-2, :-2] - 2 * bands[:, :-2, 1:-1] + bands[:, :-2, 2:]
        - 2 * bands[:, 1:-1, :-2] + 4 * bands[:, 1:-1, 1:-1] - 2 * bands[:, 1:-1, 2:]
        + bands[:, 2:, :-2] - 2 * bands[:, 2:, 1:-1] + bands[:, 2:, 2:]
    )  # fmt: skip
    return float(np.sqrt(np.pi / 2) * np.abs(laplacian).mean() / 6)


def test_display_lookup_tables_match_the_direct_conversion():
    from shared import image_checks

    half = np.random.default_rng(1).uniform(-0.5, 4.0, (64, 64)).astype(np.float16)
    assert np.allclose(image_checks.to_display(half), image_checks._to_display(half), atol=1e-6)
    byte = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(image_checks.to_display(byte), image_checks._to_display(byte))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float32])
def test_8_bit_display_values_are_the_rounded_display_values(dtype):
    from shared import image_checks

    rng = np.random.default_rng(2)
    if np.dtype(dtype).kind == "u":
        values = np.arange(np.iinfo(dtype).max + 1, dtype=dtype)  # every code
    else:
        values = rng.uniform(-0.5, 4.0, 4096).astype(dtype)
    expected = np.round(image_checks.to_display(values) * 255).astype(np.uint8)
    assert np.array_equal(image_checks.to_display_8bit(values), expected)


def test_an_accepted_verdict_carries_the_decoded_pixels_and_a_rejected_one_none(tmp_path, rng):
    path = tmp_path / "frame.png"
    Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(path)

    accepted = check_render_output(str(path), ExpectedImage("PNG", WIDTH, HEIGHT))
    assert accepted.accepted
    assert accepted.pixels is not None
    decoded = np.stack([accepted.pixels[name] for name in "RGB"], -1)
    assert np.array_equal(decoded, np.asarray(Image.open(path)))
    rejected = check_render_output(str(path), ExpectedImage("PNG", WIDTH + 1, HEIGHT))
    assert not rejected.accepted
    assert rejected.pixels is None


def fingerprint_of(pixel_hash: str, cells: np.ndarray) -> str:
    """A fingerprint as check_render_output writes one: hash, then the signature's
    width x height and its 16-bit cells, big-endian, in base64."""
    height, width = cells.shape
    encoded = base64.b64encode(cells.astype(">u2").tobytes()).decode("ascii")
    return f"{pixel_hash}:{width}x{height}:{encoded}"


def reference_match(first: str, second: str) -> str | None:
    """The near-duplicate rule written out on two fingerprints, in floats."""
    first_hash, first_cells = first.split(":")[0], decoded_cells(first)
    second_hash, second_cells = second.split(":")[0], decoded_cells(second)
    if first_hash == second_hash:
        return "pixel-identical"
    if first_cells is None or second_cells is None or first_cells.shape != second_cells.shape:
        return None
    difference = first_cells / 65535 - second_cells / 65535
    if np.abs(difference - difference.mean()).max() < NEAR_DUPLICATE_MAX_CELL_DIFF:
        return "nearly identical"
    return None


def decoded_cells(text: str) -> np.ndarray | None:
    try:
        _, shape, encoded = text.split(":")
        width, height = (int(part) for part in shape.split("x"))
        return np.frombuffer(base64.b64decode(encoded), dtype=">u2").reshape(height, width).astype(np.float64)
    except ValueError:
        return None


def test_known_frames_match_a_copy_shifted_in_brightness_and_not_a_changed_cell(rng):
    original = rng.integers(2000, 60000, (16, 16))
    known = KnownFrames.of([fingerprint_of("a" * 64, original)])

    assert known.match(fingerprint_of("a" * 64, original + 500)) == "pixel-identical"
    assert known.match(fingerprint_of("b" * 64, original + 500)) == "nearly identical"
    # One cell 257 units (one 8-bit step) off the others after the mean shift: no longer a copy.
    changed = original.copy()
    changed[3, 4] += 257 * 256 // 255 + 1
    assert known.match(fingerprint_of("b" * 64, changed)) is None
    assert KnownFrames().match(fingerprint_of("a" * 64, original)) is None


def test_known_frames_follow_the_rule_at_its_edge_for_every_offset(rng):
    """Deviations just under, at and over the limit, in integers and in floats alike."""
    base = rng.integers(1000, 64000, (16, 16))
    own = fingerprint_of("own", base)
    for bump in range(250, 266):
        for cell in [(0, 0), (7, 9), (15, 15)]:
            other = base.copy()
            other[cell] += bump
            text = fingerprint_of("other", other)
            assert KnownFrames.of([text]).match(own) == reference_match(own, text), (bump, cell)


def test_known_frames_search_every_block_and_keep_what_they_held(rng):
    rows = [
        fingerprint_of(f"{n:064x}", rng.integers(0, 65535, (16, 16))) for n in range(MATCH_BLOCK_ROWS + 10)
    ]
    target = rng.integers(0, 60000, (16, 16))
    held = KnownFrames.of(rows)
    grown = held.extended([fingerprint_of("late", target)])

    copy = fingerprint_of("copy", target + 3)
    assert held.match(copy) is None  # extended returns a new set of frames
    assert grown.match(copy) == "nearly identical"  # found past the first block
    assert grown.match(rows[5]) == "pixel-identical"


def test_known_frames_compare_only_signatures_of_one_shape_and_skip_broken_ones(rng):
    small = rng.integers(0, 65535, (9, 16))
    known = KnownFrames.of([fingerprint_of("wide", small), "legacy-hash-only", "x:3x3:!!!"])

    assert known.match(fingerprint_of("other", small.T.copy())) is None  # 9x16 is not 16x9
    assert known.match(fingerprint_of("other", small + 1)) == "nearly identical"
    assert known.match("legacy-hash-only") == "pixel-identical"
    assert known.match("unparsable") is None
