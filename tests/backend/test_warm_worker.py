"""The farm's RQ worker builds its app, connects the escrow chain (escrow workers),
loads Blender for the next analysis (analysis workers) and the image decoders
(verifiers) before its first job, so a new job's first lock, scene analysis or
verified frame does not wait for that. A web worker connects the
chain before its first request (an acceptance names the chain id)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.integration

CHILD = """
import gc, json, sys
from redis import Redis
from rq import Queue
from backend import tasks
from backend.services import scene_analysis
from backend.worker import WarmWorker
from shared import image_checks

queue = Queue(sys.argv[1], connection=Redis.from_url(sys.argv[2]))
assert tasks._worker_app is None
WarmWorker([queue], connection=queue.connection).work(burst=True)
app = tasks._worker_app
print(json.dumps({
    "app_built": app is not None,
    "chain_connected": app is not None and "ronrender_escrow_chain" in app.extensions,
    "analysis_blender_ready": scene_analysis._ready is not None and scene_analysis._ready[0].poll() is None,
    "decoders_loaded": all(name in sys.modules for name in ("PIL.PngImagePlugin", "OpenEXR"))
    and image_checks._display_table_8bit.cache_info().currsize > 0,  # an EXR preview was made
    "startup_frozen": gc.get_freeze_count() > 0,
}))
"""


def _env(app, **overrides: str) -> dict[str, str]:
    settings = app.config
    return {
        **os.environ,
        "RONRENDER_DATABASE_URL": settings["SQLALCHEMY_DATABASE_URI"],
        "RONRENDER_DATA_DIR": settings["RONRENDER_DATA_DIR"],
        "RONRENDER_REDIS_URL": settings["RONRENDER_REDIS_URL"],
        "RONRENDER_CHAIN_RPC_URL": settings["RONRENDER_CHAIN_RPC_URL"],
        "RONRENDER_CHAIN_ID": str(settings["RONRENDER_CHAIN_ID"]),
        "RONRENDER_ESCROW_ADDRESS": settings["RONRENDER_ESCROW_ADDRESS"],
        "RONRENDER_OPERATOR_KEY": settings["RONRENDER_OPERATOR_KEY"],
        **overrides,
    }


def _child_report(app, code: str, *args: str, **overrides: str) -> dict[str, bool]:
    """What a child process running ``code`` with the app's settings prints last, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=_env(app, **overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _burst_worker(app, queue_kind: str = "escrow", **overrides: str) -> dict[str, bool]:
    queue = f"rr-test-warm-{uuid.uuid4().hex}-{queue_kind}"
    return _child_report(app, CHILD, queue, app.config["RONRENDER_REDIS_URL"], **overrides)


def _ready(*done: str) -> dict[str, bool]:
    """The child's report: the app is always built and frozen; ``done`` names what else is ready."""
    return {"app_built": True, "startup_frozen": True} | {
        what: what in done for what in ("chain_connected", "analysis_blender_ready", "decoders_loaded")
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_is_ready_before_its_first_job(app):
    assert _burst_worker(app) == _ready("chain_connected")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_analysis_worker_has_blender_loaded_before_its_first_scene(app):
    assert _burst_worker(app, "analysis") == _ready("analysis_blender_ready")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_only_escrow_workers_hold_the_chain_and_its_key_and_verifiers_load_the_decoders(app):
    assert _burst_worker(app, "verification") == _ready("decoders_loaded")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_without_its_chain_still_starts(app):
    """The chain may come up later: the first escrow job connects, and retries, itself."""
    assert _burst_worker(app, RONRENDER_ESCROW_ADDRESS="") == _ready()


WEB_CHILD = """
import gc, json
from backend.wsgi import app
chain = app.extensions.get("ronrender_escrow_chain")
print(json.dumps({"chain_id_read": chain is not None and "chain_id" in vars(chain),
                  "startup_frozen": gc.get_freeze_count() > 0}))
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_web_worker_reads_the_chain_id_before_its_first_request(app):
    assert _child_report(app, WEB_CHILD) == {"chain_id_read": True, "startup_frozen": True}
    no_chain = _child_report(app, WEB_CHILD, RONRENDER_ESCROW_ADDRESS="")  # it still serves
    assert no_chain == {"chain_id_read": False, "startup_frozen": True}
