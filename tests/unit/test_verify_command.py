"""``ronrender verify``: the verdict as JSON, exit 0 accepted, 1 rejected, 2 usage."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.unit

RONRENDER = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ronrender")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RONRENDER, "verify", *args], capture_output=True, text=True, timeout=60)


def test_exit_codes(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (36, 64, 3), dtype=np.uint8)).save(good)
    black = tmp_path / "black.png"
    Image.new("RGB", (64, 36)).save(black)

    accepted = run(str(good))
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["accepted"] is True
    assert json.loads(accepted.stdout)["image"]["width"] == 64

    wrong_size = run(str(good), "--width", "32", "--height", "36", "--format", "png")
    assert wrong_size.returncode == 1
    assert json.loads(wrong_size.stdout)["reason"] == "WRONG_RESOLUTION"
    assert json.loads(run(str(black)).stdout)["reason"] == "BLANK"
    assert json.loads(run(str(good), "--format", "exr").stdout)["reason"] == "WRONG_FORMAT"

    assert run(str(tmp_path / "missing.png")).returncode == 2
    assert run(str(good), "--format", "tiff").returncode == 2
    assert run(str(good), "--width", "0").returncode == 2
