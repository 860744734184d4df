"""Unit tests for backend.services.estimate: integer wei, fee rounded down."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from backend import defaults
from backend.services.estimate import Estimate, estimate_job, fee_for, scaled_render_us

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("render_wei", "fee_bps", "fee"),
    [
        (199, 100, 1),  # 1.99 rounds down to 1
        (99, 100, 0),  # 0.99 rounds down to 0
        (100, 100, 1),
        (10_000, 500, 500),
        (19_999, 500, 999),  # 999.95 rounds down
        (0, 500, 0),
        (12_345, 0, 0),
        (10_000, 10_000, 10_000),
    ],
)
def test_fee_rounds_down(render_wei, fee_bps, fee):
    result = fee_for(render_wei, fee_bps)

    assert result == fee
    assert type(result) is int


def test_fee_is_exact_for_amounts_beyond_float_precision():
    render_wei = 10**30 + 7  # far past 2**53: a float computation would lose the low digits
    result = fee_for(render_wei, 500)

    assert type(result) is int
    assert result == (10**30 + 7) * 500 // 10_000


PROBE = {"width": 160, "height": 90, "samples": 8, "render_us": 120_000}


def test_estimate_fields_are_ints():
    estimate = estimate_job(PROBE, 1920, 1080, 128, 250)

    for value in (
        estimate.price_per_frame_wei,
        estimate.frames,
        estimate.fee_bps,
        estimate.render_wei,
        estimate.fee_wei,
        estimate.total_wei,
        estimate.render_us_per_frame,
    ):
        assert type(value) is int, value


def test_render_time_scales_with_pixels_and_samples():
    # 4x the pixels and 2x the samples of the probe: 8x its time.
    assert scaled_render_us(PROBE, 320, 180, 16) == 8 * 120_000
    # Rounded up, never down.
    assert scaled_render_us({"width": 3, "height": 1, "samples": 1, "render_us": 1}, 1, 1, 1) == 1


def test_price_is_measured_time_at_the_rate_plus_margin():
    estimate = estimate_job(PROBE, 320, 180, 16, 2)

    seconds = Fraction(8 * 120_000, 1_000_000)
    expected = (
        seconds * defaults.PRICE_WEI_PER_RENDER_SECOND * (100 + defaults.ESTIMATE_SAFETY_MARGIN_PERCENT) / 100
    )
    assert estimate.price_per_frame_wei == math.ceil(expected)
    assert estimate.margin_percent == defaults.ESTIMATE_SAFETY_MARGIN_PERCENT
    assert estimate.frames == 2
    assert estimate.fee_bps == defaults.PLATFORM_FEE_BPS
    assert estimate.render_wei == estimate.price_per_frame_wei * 2
    assert estimate.fee_wei == 2 * (estimate.price_per_frame_wei * defaults.PLATFORM_FEE_BPS // 10_000)
    assert estimate.total_wei == estimate.render_wei + estimate.fee_wei


@pytest.mark.parametrize(
    ("width", "height", "samples", "frames"),
    [(1, 1, 1, 1), (64, 36, 4, 2), (1920, 1080, 4096, 250), (7, 3, 3, 11), (320, 180, None, 12)],
)
def test_total_is_render_plus_fee(width, height, samples, frames):
    estimate = estimate_job(PROBE, width, height, samples, frames)

    assert estimate.total_wei == estimate.render_wei + estimate.fee_wei
    assert estimate.fee_wei == estimate.frames * fee_for(estimate.price_per_frame_wei, estimate.fee_bps)
    assert estimate.fee_wei <= estimate.render_wei


def test_tiny_frames_cost_at_least_the_minimum():
    estimate = estimate_job({"width": 100, "height": 100, "samples": 1, "render_us": 1}, 1, 1, 1, 1)

    assert estimate.price_per_frame_wei == defaults.MIN_PRICE_PER_FRAME_WEI


def test_fee_rounds_down_inside_an_estimate():
    estimate = Estimate(price_per_frame_wei=199, frames=1, fee_bps=100)

    assert estimate.fee_wei == 1
    assert estimate.total_wei == 200


def test_zero_frames_cost_nothing():
    estimate = estimate_job(PROBE, 1920, 1080, 64, 0)

    assert (estimate.render_wei, estimate.fee_wei, estimate.total_wei) == (0, 0, 0)
