"""Pricing a job before it is submitted, in integer wei."""

from __future__ import annotations

from dataclasses import dataclass

from backend import defaults


@dataclass(frozen=True)
class Estimate:
    price_per_frame_wei: int
    frames: int
    fee_bps: int

    @property
    def render_wei(self) -> int:
        return self.price_per_frame_wei * self.frames

    @property
    def fee_wei(self) -> int:
        return fee_for(self.render_wei, self.fee_bps)

    @property
    def total_wei(self) -> int:
        return self.render_wei + self.fee_wei


def fee_for(render_wei: int, fee_bps: int) -> int:
    """The platform fee on ``render_wei``, rounded down."""
    return render_wei * fee_bps // 10_000


def estimate_job(width: int, height: int, samples: int | None, frames: int) -> Estimate:
    """Price per frame is proportional to pixels times samples."""
    effective_samples = samples or defaults.DEFAULT_SAMPLES_FOR_PRICING
    price = width * height * effective_samples * defaults.PRICE_WEI_PER_PIXEL_SAMPLE
    return Estimate(price_per_frame_wei=price, frames=frames, fee_bps=defaults.PLATFORM_FEE_BPS)
