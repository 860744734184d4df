"""The spot check's geometry and comparison, pure: crops on pixel edges that Blender's
border render cuts exactly where the backend cuts the upload, and exact comparison."""

from __future__ import annotations

import random

import numpy as np
import pytest

from shared.image_checks import (
    border_from_pixels,
    border_to_pixels,
    choose_crops,
    crop_region,
    crops_match,
)

pytestmark = pytest.mark.unit


def blender_pixels(border: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    """What Blender computes: float32 border times the size, truncated (RE_InitState)."""
    b = np.float32(border)
    w, h = np.float32(width), np.float32(height)
    return int(b[0] * w), int(b[1] * w), int(b[2] * h), int(b[3] * h)


@pytest.mark.parametrize("size", [(320, 240), (64, 36), (1920, 1080), (333, 177), (3840, 2160)])
def test_crops_are_about_one_percent_and_land_on_the_same_pixels_as_in_blender(size):
    width, height = size
    for seed in range(50):
        crops = choose_crops(width, height, random.Random(seed), 3)
        assert len(crops) == 3
        for border in crops:
            x0, x1, y0, y1 = border_to_pixels(border, width, height)
            assert (x0, x1, y0, y1) == blender_pixels(border, width, height)
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            area = (x1 - x0) * (y1 - y0) / (width * height)
            assert 0.005 < area < 0.03 or min(width, height) < 100


def test_frame_edges_map_to_zero_and_one():
    assert border_from_pixels(0, 64, 0, 36, 64, 36) == [0.0, 1.0, 0.0, 1.0]


def test_crop_region_counts_rows_from_the_bottom_like_blender():
    pixels = {"R": np.arange(6 * 4).reshape(4, 6)}  # stored top row first
    border = border_from_pixels(1, 3, 0, 1, 6, 4)  # x 1..2, the bottom row
    assert crop_region(pixels, 6, 4, border)["R"].tolist() == [[19, 20]]


def test_crops_match_exactly_or_report_the_largest_difference():
    a = {"R": np.zeros((2, 2), np.uint8), "G": np.ones((2, 2), np.uint8)}
    assert crops_match(a, {k: v.copy() for k, v in a.items()}) == (True, 0.0)
    b = {"R": np.zeros((2, 2), np.uint8), "G": np.ones((2, 2), np.uint8)}
    b["G"][1, 1] = 4
    assert crops_match(a, b) == (False, 3.0)
    assert crops_match(a, {"R": a["R"]}) == (False, float("inf"))
    floats = {"R": np.zeros((1, 1), np.float32)}
    assert crops_match(floats, {"R": np.full((1, 1), np.nan, np.float32)})[0] is False
