"""Pricing a job before it is submitted, in integer wei, from a measurement.

Scene analysis renders the middle frame small and with few samples, timed (the
probe). A full frame's render time is that time scaled by pixels and samples;
its price is that time at the farm's rate per render-second, plus a stated
safety margin. The platform fee is charged per released frame, as the escrow
contract does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend import defaults

MICROSECONDS_PER_SECOND = 1_000_000


@dataclass(frozen=True)
class Estimate:
    price_per_frame_wei: int
    frames: int
    fee_bps: int
    render_us_per_frame: int = 0
    margin_percent: int = defaults.ESTIMATE_SAFETY_MARGIN_PERCENT

    @property
    def render_wei(self) -> int:
        return self.price_per_frame_wei * self.frames

    @property
    def fee_per_frame_wei(self) -> int:
        return fee_for(self.price_per_frame_wei, self.fee_bps)

    @property
    def fee_wei(self) -> int:
        """Charged per released frame, as the escrow contract does, so lock = frames x (price + fee)."""
        return self.frames * self.fee_per_frame_wei

    @property
    def total_wei(self) -> int:
        return self.render_wei + self.fee_wei


def fee_for(render_wei: int, fee_bps: int) -> int:
    """The platform fee on ``render_wei``, rounded down (the contract's rule)."""
    return render_wei * fee_bps // 10_000


def scaled_render_us(probe: dict[str, Any], width: int, height: int, samples: int | None) -> int:
    """The probe's render time scaled to the full frame's pixels and samples, rounded up."""
    probe_samples = probe["samples"] or 1
    full_samples = samples or probe_samples
    numerator = probe["render_us"] * width * height * full_samples
    denominator = probe["width"] * probe["height"] * probe_samples
    return -(-numerator // denominator)


def estimate_job(
    probe: dict[str, Any], width: int, height: int, samples: int | None, frames: int
) -> Estimate:
    render_us = scaled_render_us(probe, width, height, samples)
    margin = defaults.ESTIMATE_SAFETY_MARGIN_PERCENT
    numerator = render_us * defaults.PRICE_WEI_PER_RENDER_SECOND * (100 + margin)
    price = -(-numerator // (MICROSECONDS_PER_SECOND * 100))
    return Estimate(
        price_per_frame_wei=max(price, defaults.MIN_PRICE_PER_FRAME_WEI),
        frames=frames,
        fee_bps=defaults.PLATFORM_FEE_BPS,
        render_us_per_frame=render_us,
        margin_percent=margin,
    )
