"""Tunables of a node, with their units in their names."""

from __future__ import annotations

HEARTBEAT_INTERVAL_S = 15.0
IDLE_POLL_INTERVAL_S = 2.0
BACKEND_RETRY_WINDOW_S = 600.0
BACKEND_RETRY_MAX_WAIT_S = 15.0
RENDER_NO_OUTPUT_TIMEOUT_S = 600.0
DEFAULT_WORK_DIR = "~/.ronrender-node"
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
SUSPENDED_RETRY_S = 60.0
