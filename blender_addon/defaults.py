"""Tunables of the add-on, with their units in their names. No bpy module use."""

from __future__ import annotations

# Talking to the farm.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
UPLOAD_READ_TIMEOUT_S = 300.0
UPLOAD_ATTEMPTS = 3
RETRY_DELAYS_S = (1.0, 3.0)
GET_ATTEMPTS = 3
SCENE_POLL_INTERVAL_S = 0.5
SCENE_ANALYSIS_TIMEOUT_S = 600.0
DOWNLOAD_CHUNK_BYTES = 1024 * 1024

# Packing the scene in a Blender child process.
PACK_TIME_LIMIT_S = 600.0
PACK_POLL_INTERVAL_S = 0.1
PACK_LOG_TAIL_CHARS = 2000

# The main thread: how often queued results are applied and unfinished jobs refreshed.
PUMP_INTERVAL_S = 0.1
JOB_REFRESH_INTERVAL_S = 5.0
PROGRESS_MESSAGE_INTERVAL_S = 0.1

# The panel.
JOBS_SHOWN = 8
PROBLEMS_SHOWN = 3
JOB_BOOK_MAX_JOBS = 100
DEFAULT_FRAMES_DIR = "//ronrender_frames/"
