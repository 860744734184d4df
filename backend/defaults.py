"""Tunables of the backend, with their units in their names."""

from __future__ import annotations

DEFAULT_PORT = 8000
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATA_DIR = ".ronrender"
MAX_SCENE_UPLOAD_BYTES = 2 * 1024**3
MAX_RENDER_OUTPUT_BYTES = 512 * 1024**2
UPLOAD_CHUNK_BYTES = 1024 * 1024

# A node not heard from for this long is OFFLINE, and its lease is gone with it.
OFFLINE_AFTER_S = 180
FRAME_TIME_LIMIT_S = 3600
SWEEP_INTERVAL_S = 10.0
MAX_FRAME_FAILURES = 3
CLAIM_CANDIDATES = 16
# A node that failed, dropped or timed out this many frames of a job gets no more of it.
JOB_BLOCKLIST_AFTER_FAILURES = 2

# Reputation = (verified + PRIOR) / (verified + PRIOR + weighted misses), in (0, 1].
REPUTATION_PRIOR_FRAMES = 10
REPUTATION_WEIGHT_REJECTED = 2
REPUTATION_WEIGHT_TIMEOUT = 2
REPUTATION_WEIGHT_DROPPED = 3
REPUTATION_SUSPEND_BELOW = 0.5
# Frames handed back after a failure go only to nodes at least this reputable.
REPUTATION_FOR_RETRIES = 0.8

# Spot checks: the share of verified-looking frames whose crops another node re-renders
# first; higher for nodes with few verified frames. A check nobody takes within the
# wait is skipped and the frame verified as usual, so payment is never blocked.
SPOT_CHECK_RATE = 0.1
SPOT_CHECK_RATE_NEW_NODES = 0.5
SPOT_CHECK_NEW_NODE_FRAMES = 10
SPOT_CHECK_WAIT_S = 600
SPOT_CHECK_CROPS = (2, 3)  # as few and as many crops per check
# A spot check mismatch is a fabricated frame: it weighs as this many rejections.
REPUTATION_WEIGHT_SPOT_CHECK_MISMATCH = 2

ANALYSIS_TIME_LIMIT_S = 300
# Analysis children yield the CPU: where they share a machine with nodes or the web
# server (a local farm), a render or a request goes first, and a Blender loading ahead
# slows neither.
ANALYSIS_NICENESS = 10
ANALYSIS_PRELOAD_AFTER_S = 10.0  # idle time after an analysis before the next one's Blender loads
ANALYSIS_QUEUE = "analysis"
VERIFICATION_QUEUE = "verification"
ESCROW_QUEUE = "escrow"
ALL_QUEUES = (ESCROW_QUEUE, VERIFICATION_QUEUE, ANALYSIS_QUEUE)

# Escrow on chain.
CONFIRMATIONS = 0
LOCK_DEADLINE_S = 7 * 24 * 3600
RELEASE_BATCH_FRAMES = 100
# A split of at least this many frames refreshes the frames table's statistics (PostgreSQL):
# below it, sorting a job's pending frames costs next to nothing anyway.
ANALYZE_AFTER_SPLIT_FRAMES = 1000
# Frames verified within this of each other are paid in one release transaction (less gas,
# fewer transactions); the job's close sends whatever is still owed at once.
RELEASE_WINDOW_S = 2.0
OPERATOR_LOCK_TIMEOUT_S = 120
ESCROW_RETRY_INTERVALS_S = (2, 5, 15, 30, 60, 120)

# Pricing, in integer wei: the measured render time at a rate per render-second,
# plus a safety margin for what a small probe render cannot see; a 5 % fee.
PRICE_WEI_PER_RENDER_SECOND = 10**15  # 0.001 RON per second of CPU render time
ESTIMATE_SAFETY_MARGIN_PERCENT = 50
MIN_PRICE_PER_FRAME_WEI = 10**12
PLATFORM_FEE_BPS = 500
SESSION_TTL_S = 3600
# How long a backend process trusts a token it looked up, and how often it asks Redis
# whether a token was revoked since (a revocation then makes it forget them all; the
# revoking process forgets the token at once).
TOKEN_CACHE_S = 60.0
TOKEN_REVOCATION_CHECK_S = 1.0
# Empty claims per second that a farm's idle nodes may make in all: past that many
# online nodes, an empty answer asks each to come back later (Retry-After).
IDLE_CLAIMS_PER_S = 50
IDLE_RETRY_AFTER_MAX_S = 30
# Idle claims a backend process holds open until work appears (each keeps a web thread),
# and the longest a node may ask one to be held.
CLAIM_HOLD_SEATS = 2
CLAIM_HOLD_MAX_S = 30
RATE_LIMIT = "1200 per minute"
