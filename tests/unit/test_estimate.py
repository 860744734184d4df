"""Unit tests for backend.services.estimate: integer wei, fee rounded down."""

from __future__ import annotations

import pytest

from backend import defaults
from backend.services.estimate import Estimate, estimate_job, fee_for

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


def test_estimate_fields_are_ints():
    estimate = estimate_job(1920, 1080, 128, 250)

    for value in (
        estimate.price_per_frame_wei,
        estimate.frames,
        estimate.fee_bps,
        estimate.render_wei,
        estimate.fee_wei,
        estimate.total_wei,
    ):
        assert type(value) is int, value


def test_estimate_prices_pixels_times_samples():
    estimate = estimate_job(64, 36, 4, 2)

    per_frame = 64 * 36 * 4 * defaults.PRICE_WEI_PER_PIXEL_SAMPLE
    assert estimate.price_per_frame_wei == per_frame
    assert estimate.frames == 2
    assert estimate.fee_bps == defaults.PLATFORM_FEE_BPS
    assert estimate.render_wei == per_frame * 2
    assert estimate.fee_wei == per_frame * 2 * defaults.PLATFORM_FEE_BPS // 10_000
    assert estimate.total_wei == estimate.render_wei + estimate.fee_wei


@pytest.mark.parametrize(
    ("width", "height", "samples", "frames"),
    [(1, 1, 1, 1), (64, 36, 4, 2), (1920, 1080, 4096, 250), (7, 3, 3, 11), (320, 180, None, 12)],
)
def test_total_is_render_plus_fee(width, height, samples, frames):
    estimate = estimate_job(width, height, samples, frames)

    assert estimate.total_wei == estimate.render_wei + estimate.fee_wei
    assert estimate.fee_wei == fee_for(estimate.render_wei, estimate.fee_bps)
    assert estimate.fee_wei <= estimate.render_wei


@pytest.mark.parametrize("samples", [None, 0])
def test_missing_samples_use_the_pricing_default(samples):
    estimate = estimate_job(100, 50, samples, 1)

    expected = 100 * 50 * defaults.DEFAULT_SAMPLES_FOR_PRICING * defaults.PRICE_WEI_PER_PIXEL_SAMPLE
    assert estimate.price_per_frame_wei == expected


def test_fee_rounds_down_inside_an_estimate():
    estimate = Estimate(price_per_frame_wei=199, frames=1, fee_bps=100)

    assert estimate.fee_wei == 1
    assert estimate.total_wei == 200


def test_zero_frames_cost_nothing():
    estimate = estimate_job(1920, 1080, 64, 0)

    assert (estimate.render_wei, estimate.fee_wei, estimate.total_wei) == (0, 0, 0)
