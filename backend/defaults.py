"""Tunables of the backend, with their units in their names."""

from __future__ import annotations

DEFAULT_PORT = 8000
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATA_DIR = ".ronrender"
MAX_SCENE_UPLOAD_BYTES = 2 * 1024**3
MAX_RENDER_OUTPUT_BYTES = 512 * 1024**2
UPLOAD_CHUNK_BYTES = 1024 * 1024

LEASE_DURATION_S = 180
FRAME_TIME_LIMIT_S = 3600
MAX_FRAME_FAILURES = 3
CLAIM_CANDIDATES = 16

ANALYSIS_TIME_LIMIT_S = 300
ANALYSIS_QUEUE = "analysis"
VERIFICATION_QUEUE = "verification"
ESCROW_QUEUE = "escrow"
ALL_QUEUES = (ESCROW_QUEUE, VERIFICATION_QUEUE, ANALYSIS_QUEUE)

# Pricing: integer wei per rendered pixel-sample, plus a platform fee in basis points.
PRICE_WEI_PER_PIXEL_SAMPLE = 10_000_000
PLATFORM_FEE_BPS = 500
# Samples assumed for engines that do not sample like Cycles.
DEFAULT_SAMPLES_FOR_PRICING = 16
