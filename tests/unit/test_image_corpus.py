"""The image checks on a generated corpus: real Cycles renders (made once per session
by Blender in a child process) must pass; broken files and cheats must be rejected
with the right reason; no input whatever makes the verifier raise."""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from shared.image_checks import (
    ExpectedImage,
    KnownFrames,
    RejectionReason,
    Verdict,
    check_render_output,
    to_display,
)
from shared.thumbnails import THUMBNAIL_MAX_WIDTH_PX, make_thumbnail, thumbnail_png

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 128, 72
HONEST_FRAMES = (1, 3, 5, 7, 9)
RENDERS = [
    *({"name": f"frame_{n}.png", "frame": n} for n in HONEST_FRAMES),
    {"name": "png16.png", "frame": 2, "depth": "16"},
    {"name": "half.exr", "frame": 2, "format": "OPEN_EXR", "depth": "16"},
    {"name": "float.exr", "frame": 2, "format": "OPEN_EXR", "depth": "32"},
    {"name": "multilayer.exr", "frame": 2, "format": "OPEN_EXR", "depth": "16", "multilayer": True},
    {"name": "denoised.png", "frame": 2, "denoise": True},
    {"name": "rgb.png", "frame": 2, "color_mode": "RGB"},
    {"name": "few_samples.png", "frame": 4, "samples": 4},
    {"name": "small.png", "frame": 4, "width": WIDTH // 2, "height": HEIGHT // 2},
]


@pytest.fixture(scope="session")
def renders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cycles renders of the sample scene (128x72, 16 samples unless said otherwise)."""
    folder = tmp_path_factory.mktemp("cycles")
    spec = folder / "spec.json"
    spec.write_text(json.dumps(RENDERS))
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_corpus.py"), str(folder), str(spec)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )
    return folder


def png(**overrides) -> ExpectedImage:
    return ExpectedImage("PNG", WIDTH, HEIGHT, **overrides)


def exr(**overrides) -> ExpectedImage:
    return ExpectedImage("OPEN_EXR", WIDTH, HEIGHT, **overrides)


@pytest.fixture(scope="session")
def job_reference(renders: Path) -> dict:
    """What verification passes for a job whose honest frames are already verified."""
    verdicts = [check_render_output(str(renders / f"frame_{n}.png"), png()) for n in HONEST_FRAMES]
    return {
        "known_frames": KnownFrames.of(v.fingerprint for v in verdicts),
        "reference_noise": statistics.median(v.stats["noise"] for v in verdicts),
        "reference_detail_ratio": statistics.median(v.stats["detail_ratio"] for v in verdicts),
    }


def assert_rejected(verdict: Verdict, reason: RejectionReason) -> None:
    assert verdict.accepted is False, verdict
    assert verdict.reason is reason, verdict
    assert verdict.detail


# --- honest renders ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected", "depth", "sample_type"),
    [
        ("frame_1.png", png(channels=frozenset("RGBA")), 8, "uint"),
        ("png16.png", png(bit_depth=16), 16, "uint"),
        ("rgb.png", png(channels=frozenset("RGB")), 8, "uint"),
        ("denoised.png", png(), 8, "uint"),
        ("half.exr", exr(bit_depth=16, channels=frozenset("RGBA")), 16, "half"),
        ("float.exr", exr(bit_depth=32), 32, "float"),
        (
            "multilayer.exr",
            exr(channels=frozenset(f"ViewLayer.Combined.{c}" for c in "RGBA")),
            16,
            "half",
        ),
    ],
)
def test_real_cycles_render_is_accepted(renders, name, expected, depth, sample_type):
    verdict = check_render_output(str(renders / name), expected)

    assert verdict.accepted is True, verdict
    assert verdict.info.bit_depth == depth
    assert verdict.info.sample_type == sample_type


@pytest.mark.parametrize("name", ["frame_9.png", "denoised.png", "png16.png"])
def test_honest_frame_passes_the_job_comparisons(renders, job_reference, name):
    reference = dict(job_reference)
    own = check_render_output(str(renders / name), png()).fingerprint
    honest = [check_render_output(str(renders / f"frame_{n}.png"), png()).fingerprint for n in HONEST_FRAMES]
    reference["known_frames"] = KnownFrames.of(f for f in honest if f != own)

    assert check_render_output(str(renders / name), png(**reference)).accepted is True


# --- broken files -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["frame_1.png", "half.exr", "multilayer.exr"])
@pytest.mark.parametrize("keep", [0.99, 0.75, 0.5, 0.2, 0.02])
def test_truncated_render_is_undecodable(renders, tmp_path, name, keep):
    whole = (renders / name).read_bytes()
    cut = tmp_path / name
    cut.write_bytes(whole[: max(40, int(len(whole) * keep))])
    expected = exr() if name.endswith(".exr") else png()

    assert_rejected(check_render_output(str(cut), expected), RejectionReason.UNDECODABLE)


def test_zero_bytes_and_wrong_format(renders, tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert_rejected(check_render_output(str(empty), png()), RejectionReason.UNDECODABLE)
    assert_rejected(check_render_output(str(renders / "half.exr"), png()), RejectionReason.WRONG_FORMAT)
    assert_rejected(check_render_output(str(renders / "frame_1.png"), exr()), RejectionReason.WRONG_FORMAT)


def test_wrong_size_channels_and_depth(renders):
    frame = str(renders / "frame_1.png")
    assert_rejected(
        check_render_output(frame, ExpectedImage("PNG", 320, 180)), RejectionReason.WRONG_RESOLUTION
    )
    assert_rejected(
        check_render_output(str(renders / "rgb.png"), png(channels=frozenset("RGBA"))),
        RejectionReason.WRONG_CHANNELS,
    )
    assert_rejected(check_render_output(frame, png(bit_depth=16)), RejectionReason.WRONG_BIT_DEPTH)
    assert_rejected(
        check_render_output(str(renders / "float.exr"), exr(bit_depth=16)), RejectionReason.WRONG_BIT_DEPTH
    )
    multilayer = exr(channels=frozenset({"ViewLayer.Normal.X"}))
    assert_rejected(
        check_render_output(str(renders / "multilayer.exr"), multilayer), RejectionReason.WRONG_CHANNELS
    )


def test_header_bomb_exr_is_too_large(renders, tmp_path):
    channels = OpenEXR.File(str(renders / "half.exr"), separate_channels=True).channels()
    pixels = {name: channel.pixels for name, channel in channels.items()}
    path = tmp_path / "bomb.exr"
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, pixels).write(str(path))

    assert_rejected(check_render_output(str(path), exr(max_pixels=64 * 36)), RejectionReason.TOO_LARGE)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_pixel_in_a_real_render(renders, tmp_path, bad):
    channels = OpenEXR.File(str(renders / "float.exr"), separate_channels=True).channels()
    pixels = {name: channel.pixels.copy() for name, channel in channels.items()}
    pixels["G"][HEIGHT // 2, WIDTH // 2] = bad
    path = tmp_path / "bad.exr"
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, pixels).write(
        str(path)
    )

    assert_rejected(check_render_output(str(path), exr()), RejectionReason.NON_FINITE)


# --- blank frames -----------------------------------------------------------------------


@pytest.mark.parametrize("colour", [(0, 0, 0, 255), (40, 60, 90, 255)], ids=["black", "constant"])
def test_blank_frame_is_rejected_unless_the_reference_is_blank(tmp_path, colour):
    path = tmp_path / "blank.png"
    Image.new("RGBA", (WIDTH, HEIGHT), colour).save(path)

    assert_rejected(check_render_output(str(path), png()), RejectionReason.BLANK)
    assert check_render_output(str(path), png(reference_is_blank=True)).accepted is True


# --- cheats -----------------------------------------------------------------------------


def test_duplicate_frame_is_rejected(renders, tmp_path, job_reference):
    copy = tmp_path / "copy.png"
    Image.open(renders / "frame_3.png").save(copy, compress_level=1)  # other bytes, same pixels
    verdict = check_render_output(str(copy), png(**job_reference))
    assert_rejected(verdict, RejectionReason.DUPLICATE_FRAME)
    assert "pixel-identical" in verdict.detail

    static = png(**job_reference, allow_duplicates=True)
    assert check_render_output(str(copy), static).accepted is True


def test_copy_with_added_noise_is_a_duplicate(renders, tmp_path, job_reference):
    pixels = np.asarray(Image.open(renders / "frame_5.png")).astype(np.int16)
    jitter = np.random.default_rng(7).integers(-1, 2, pixels.shape)
    jitter[..., 3] = 0
    path = tmp_path / "jittered.png"
    Image.fromarray(np.clip(pixels + jitter, 0, 255).astype(np.uint8), "RGBA").save(path)

    verdict = check_render_output(str(path), png(**job_reference))
    assert_rejected(verdict, RejectionReason.DUPLICATE_FRAME)
    assert "nearly identical" in verdict.detail


@pytest.mark.parametrize(
    "method", [Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS]
)
def test_upscaled_low_resolution_render_is_rejected(renders, tmp_path, job_reference, method):
    path = tmp_path / "upscaled.png"
    Image.open(renders / "small.png").resize((WIDTH, HEIGHT), method).save(path)

    assert_rejected(check_render_output(str(path), png(**job_reference)), RejectionReason.UPSCALED)


def test_crop_of_another_frame_is_rejected(renders, tmp_path, job_reference):
    path = tmp_path / "crop.png"
    crop = Image.open(renders / "frame_7.png").crop(
        (WIDTH // 4, HEIGHT // 4, WIDTH * 3 // 4, HEIGHT * 3 // 4)
    )
    crop.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC).save(path)

    assert_rejected(check_render_output(str(path), png(**job_reference)), RejectionReason.UPSCALED)


def test_render_with_far_fewer_samples_is_rejected(renders, job_reference):
    verdict = check_render_output(str(renders / "few_samples.png"), png(**job_reference))

    assert_rejected(verdict, RejectionReason.LOW_SAMPLES)


# --- thumbnails -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"), [("frame_1.png", png()), ("float.exr", exr()), ("multilayer.exr", exr())]
)
def test_thumbnail_is_a_small_png(renders, tmp_path, name, expected):
    data = make_thumbnail(str(renders / name), expected)
    path = tmp_path / "thumb.png"
    path.write_bytes(data)

    with Image.open(path) as thumb:
        assert thumb.format == "PNG"
        assert thumb.width <= THUMBNAIL_MAX_WIDTH_PX
        assert thumb.size == (WIDTH, HEIGHT)
        assert np.asarray(thumb)[..., :3].std() > 5  # tone-mapped, not black or white


def test_wide_thumbnail_is_scaled_down(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 1024, 3), dtype=np.uint8)).save(path)

    data = make_thumbnail(str(path), ExpectedImage("PNG", 1024, 300))
    (tmp_path / "t.png").write_bytes(data)
    assert Image.open(tmp_path / "t.png").size == (256, 75)


@pytest.mark.parametrize("output_format", ["PNG", "OPEN_EXR"])
def test_a_large_frames_preview_comes_from_the_checked_pixels_and_matches_a_full_lanczos_resize(
    tmp_path, output_format
):
    width, height = 1920, 1080  # 7.5x down: Pillow box-shrinks 2x first, then Lanczos
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 40)], -1) * 1.2  # some clipped
    rgb += rng.normal(0, 0.03, rgb.shape).astype(np.float32)
    if output_format == "PNG":
        path = tmp_path / "large.png"
        Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
    else:
        path = tmp_path / "large.exr"
        channels = {name: rgb[..., i].astype(np.float16) for i, name in enumerate("RGB")}
        OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, channels).write(str(path))
    expected = ExpectedImage(output_format, width, height)

    verdict = check_render_output(str(path), expected)
    assert verdict.accepted
    preview = thumbnail_png(verdict.pixels)
    assert preview == make_thumbnail(str(path), expected)

    # What a full-size Lanczos resize of the tone-mapped frame gives, to within a few 8-bit
    # steps here and there (the shrink boxes two pixels first) and a fraction of one on average.
    planes = [np.round(to_display(verdict.pixels[name]) * 255).astype(np.uint8) for name in "RGB"]
    size = (THUMBNAIL_MAX_WIDTH_PX, round(height * THUMBNAIL_MAX_WIDTH_PX / width))
    reference = np.asarray(Image.fromarray(np.stack(planes, -1)).resize(size, Image.Resampling.LANCZOS))
    with Image.open(io.BytesIO(preview)) as thumb:
        assert thumb.size == size
        difference = np.abs(np.asarray(thumb).astype(int) - reference.astype(int))
    assert difference.max() <= 3
    assert difference.mean() < 0.3


@pytest.mark.parametrize(("mode", "thumbnail_mode"), [("L", "RGB"), ("LA", "RGBA")])
def test_a_grey_frames_preview_is_grey_rgb_with_its_alpha(tmp_path, mode, thumbnail_mode):
    rng = np.random.default_rng(4)
    grey = rng.integers(0, 256, (300, 400), dtype=np.uint8)
    planes = [grey] if mode == "L" else [grey, np.full_like(grey, 200)]
    path = tmp_path / f"grey-{mode}.png"
    Image.fromarray(np.stack(planes, -1).squeeze(), mode).save(path)

    verdict = check_render_output(str(path), ExpectedImage("PNG", 400, 300))
    assert verdict.accepted
    with Image.open(io.BytesIO(thumbnail_png(verdict.pixels))) as thumb:
        assert thumb.mode == thumbnail_mode
        assert thumb.size == (THUMBNAIL_MAX_WIDTH_PX, 192)
        pixels = np.asarray(thumb).astype(int)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    if mode == "LA":
        assert (pixels[..., 3] == 200).all()


# --- no crash on any input --------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), as_exr=st.booleans())
def test_random_bytes_never_raise(tmp_path, data, as_exr):
    path = tmp_path / "random.bin"
    path.write_bytes(data)

    verdict = check_render_output(str(path), exr() if as_exr else png())
    assert isinstance(verdict, Verdict)
    assert verdict.accepted is False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(["frame_1.png", "png16.png", "half.exr", "multilayer.exr"]),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_mutated_real_files_never_raise(renders, tmp_path, name, edits, cut):
    data = bytearray((renders / name).read_bytes())
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path / name
    path.write_bytes(bytes(data))

    verdict = check_render_output(str(path), exr() if name.endswith(".exr") else png())
    assert isinstance(verdict, Verdict)
