"""Tunables of a node, with their units in their names."""

from __future__ import annotations

from shared import protocol

HEARTBEAT_INTERVAL_S = 15.0
IDLE_POLL_INTERVAL_S = protocol.IDLE_POLL_INTERVAL_S
# How long an idle slot's claim may wait at the backend for work to appear (short: a
# node that is told to stop waits for its held claims to end).
CLAIM_WAIT_S = 2.0
UNREACHABLE_RETRY_S = 1.0  # at least, before a slot asks a backend that did not answer again
BACKEND_RETRY_WINDOW_S = 600.0
BACKEND_RETRY_MAX_WAIT_S = 15.0
RENDER_NO_OUTPUT_TIMEOUT_S = 600.0
DEFAULT_WORK_DIR = "~/.ronrender-node"
DEFAULT_CONFIG_PATH = "~/.config/ronrender/node.toml"
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
SUSPENDED_RETRY_S = 60.0
CACHE_LIMIT_BYTES = 20 * 1024**3
OUTPUT_LIMIT_BYTES = 4 * 1024**3
IDLE_MAX_LOAD_PER_CORE = 0.3
# How often a slot waiting on the owner's terms (paused, outside the schedule, busy) looks again.
TERMS_POLL_INTERVAL_S = 1.0
SCENE_DOWNLOAD_ATTEMPTS = 3
FAILURE_REASON_MAX_CHARS = 2000  # the backend's FailureIn.reason
FAILURE_LOG_TAIL_MAX_CHARS = 20000  # the backend's FailureIn.log_tail
FRAME_LOG_MAX_LINES = 200_000  # full log kept per frame for diagnostics
STATUS_WRITE_INTERVAL_S = 1.0
BENCHMARK_SAMPLES = 8
BENCHMARK_TIME_LIMIT_S = 300.0
STARTUP_LOG_MAX_LINES = 500
DEFAULT_WALLET_KEYSTORE = "~/.ronrender-node-wallet/keystore.json"
DEFAULT_WALLET_PASSWORD_FILE = "~/.ronrender-node-wallet/password"
