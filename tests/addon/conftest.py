"""Fixtures of the add-on tier: the add-on staged as an importable package for
the pure tests (no Blender), the built extension zip, a child Blender that runs
``blender_session.py``, and the local farm of the system tier."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from build_addon import build, stage

from tests.addon.http_stub import start_stub
from tests.system.conftest import start_farm  # noqa: F401

STAGED_PACKAGE = "ronrender_addon"
CHILD_SCRIPT = Path(__file__).resolve().parent / "blender_session.py"
RESULT_PREFIX = "RONRENDER_TEST_RESULT:"


def _stage_for_import() -> Path:
    """The add-on as the zip holds it (vendored modules included), importable as
    ``ronrender_addon``: its ``__init__`` imports no bpy, so the bpy-free modules
    load without Blender."""
    folder = Path(tempfile.mkdtemp(prefix="ronrender-addon-tests-"))
    atexit.register(shutil.rmtree, folder, True)
    stage(folder / STAGED_PACKAGE)
    sys.path.insert(0, str(folder))
    return folder


_stage_for_import()


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("dist"))


@pytest.fixture
def run_blender(tmp_path: Path, addon_zip: Path):
    """Run one scenario of ``blender_session.py`` in a child Python that imports
    bpy, with its own Blender user folders; returns the JSON it reports."""

    def run(scenario: str, timeout_s: float = 120, env_vars: dict | None = None, **options: object) -> dict:
        env = dict(os.environ)
        env.update(env_vars or {})
        env["BLENDER_USER_RESOURCES"] = str(tmp_path / "blender_user")
        env["PYTHONUNBUFFERED"] = "1"
        env["TMPDIR"] = str(tmp_path / "tmp")
        (tmp_path / "tmp").mkdir(exist_ok=True)
        spec = {
            "scenario": scenario,
            "zip": str(addon_zip),
            "work_dir": str(tmp_path),
            "tmp_dir": env["TMPDIR"],
        }
        spec.update(options)
        process = subprocess.run(
            [sys.executable, str(CHILD_SCRIPT), json.dumps(spec)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        lines = [line for line in process.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        output = (process.stdout + process.stderr)[-6000:]
        assert process.returncode == 0 and lines, (
            f"the Blender child failed ({process.returncode}):\n{output}"
        )
        result = json.loads(lines[-1][len(RESULT_PREFIX) :])
        (tmp_path / f"{scenario}-result.json").write_text(json.dumps(result, indent=1))  # for a failing test
        result["_output"] = output
        return result

    return run


@pytest.fixture
def http_stub():
    stub, server = start_stub()
    yield stub
    server.shutdown()
    server.server_close()
