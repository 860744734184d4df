"""Unit tests for shared.render_progress.parse_render_line on real Blender 4.5 output.

Every line in the tables below was copied verbatim from the stdout of Blender 4.5 (bpy 4.5.15)
rendering scripts/make_sample_scene.py's scene (64x36, 4 Cycles samples, CPU).
"""

from __future__ import annotations

import pytest

from shared.render_progress import RenderProgress, parse_render_line

pytestmark = pytest.mark.unit

PREFIX = "Fra:1 Mem:8.58M (Peak 8.67M) | Time:00:00.00 | Mem:0.21M, Peak:0.21M | Scene, ViewLayer | "

PROGRESS_LINES = [
    (
        "Fra:1 Mem:8.59M (Peak 8.59M) | Time:00:00.00 | Mem:0.00M, Peak:0.00M | Scene, ViewLayer | "
        "Synchronizing object | Sun",
        RenderProgress(frame=1, fraction=0.0, detail="Sun"),
    ),
    (
        "Fra:1 Mem:8.67M (Peak 8.67M) | Time:00:00.00 | Mem:0.00M, Peak:0.00M | Scene, ViewLayer | "
        "Initializing",
        RenderProgress(frame=1, fraction=0.0, detail="Initializing"),
    ),
    (
        "Fra:1 Mem:8.45M (Peak 8.67M) | Time:00:00.00 | Mem:0.00M, Peak:0.00M | Scene, ViewLayer | "
        "Loading render kernels (may take a few minutes the first time)",
        RenderProgress(
            frame=1, fraction=0.0, detail="Loading render kernels (may take a few minutes the first time)"
        ),
    ),
    (
        "Fra:1 Mem:8.54M (Peak 8.67M) | Time:00:00.00 | Mem:0.00M, Peak:0.00M | Scene, ViewLayer | "
        "Updating Objects | Copying Transformations to device",
        RenderProgress(frame=1, fraction=0.0, detail="Copying Transformations to device"),
    ),
    (
        "Fra:1 Mem:8.55M (Peak 8.67M) | Time:00:00.00 | Mem:0.04M, Peak:0.04M | Scene, ViewLayer | "
        "Updating Scene BVH | Building BVH 0%",
        RenderProgress(frame=1, fraction=0.0, detail="Building BVH 0%"),
    ),
    (
        "Fra:1 Mem:8.58M (Peak 8.67M) | Time:00:00.00 | Mem:0.20M, Peak:0.20M | Scene, ViewLayer | "
        "Updating Lights",
        RenderProgress(frame=1, fraction=0.0, detail="Updating Lights"),
    ),
    (
        "Fra:1 Mem:8.58M (Peak 8.67M) | Time:00:00.00 | Mem:0.21M, Peak:0.21M | Scene, ViewLayer | "
        "Sample 0/4",
        RenderProgress(frame=1, fraction=0.0, detail="Sample 0/4"),
    ),
    (
        "Fra:1 Mem:8.68M (Peak 8.68M) | Time:00:00.00 | Remaining:00:00.01 | Mem:0.29M, Peak:0.29M | "
        "Scene, ViewLayer | Sample 1/4",
        RenderProgress(frame=1, fraction=0.25, detail="Sample 1/4"),
    ),
    (
        "Fra:1 Mem:8.72M (Peak 8.72M) | Time:00:00.01 | Mem:0.29M, Peak:0.29M | Scene, ViewLayer | "
        "Sample 4/4",
        RenderProgress(frame=1, fraction=1.0, detail="Sample 4/4"),
    ),
    (
        "Fra:1 Mem:8.72M (Peak 8.72M) | Time:00:00.01 | Mem:0.29M, Peak:0.29M | Scene, ViewLayer | Finished",
        RenderProgress(frame=1, fraction=1.0, detail="Finished"),
    ),
    ("Saved: '/tmp/ut_out.png'", RenderProgress(frame=None, fraction=1.0, detail="saved")),
]

LINES_WITHOUT_PROGRESS = [
    'Read blend: "/tmp/ut_scene.blend"',
    "Time: 00:00.07 (Saving: 00:00.06)",
    'Info: Saved as "ut_scene.blend"',
    "",
    "   ",
]


@pytest.mark.parametrize(("line", "expected"), PROGRESS_LINES, ids=[e.detail for _, e in PROGRESS_LINES])
def test_real_blender_line_is_parsed(line, expected):
    assert parse_render_line(line) == expected


@pytest.mark.parametrize("line", LINES_WITHOUT_PROGRESS)
def test_line_without_progress_is_none(line):
    assert parse_render_line(line) is None


@pytest.mark.parametrize(("line", "expected"), PROGRESS_LINES[-4:])
def test_trailing_newline_and_indent_are_ignored(line, expected):
    # run_supervised hands lines over with their newline still on.
    assert parse_render_line(f"  {line}\n") == expected
    assert parse_render_line(f"{line}\r\n") == expected


def test_sample_fraction_is_done_over_total():
    progress = parse_render_line(PREFIX + "Sample 5/16")

    assert progress is not None
    assert progress.fraction == pytest.approx(5 / 16)
    assert progress.detail == "Sample 5/16"


def test_fraction_is_capped_at_one():
    progress = parse_render_line(PREFIX + "Sample 9/4")

    assert progress is not None
    assert progress.fraction == 1.0


def test_zero_total_samples_does_not_divide_by_zero():
    progress = parse_render_line(PREFIX + "Sample 0/0")

    assert progress is not None
    assert progress.fraction == 0.0


@pytest.mark.parametrize(("text", "frame"), [("Fra:0", 0), ("Fra:250", 250), ("Fra:-3", -3)])
def test_frame_number_is_read(text, frame):
    line = PREFIX.replace("Fra:1", text, 1) + "Sample 2/4"

    progress = parse_render_line(line)

    assert progress == RenderProgress(frame=frame, fraction=0.5, detail="Sample 2/4")


def test_saved_line_for_exr_output():
    assert parse_render_line("Saved: '/srv/out/frame_0042.exr'") == RenderProgress(
        frame=None, fraction=1.0, detail="saved"
    )


def test_fraction_stays_in_unit_interval_over_a_whole_render():
    fractions = [parse_render_line(line).fraction for line, _ in PROGRESS_LINES]

    assert all(0.0 <= fraction <= 1.0 for fraction in fractions)
    assert fractions[-1] == 1.0
