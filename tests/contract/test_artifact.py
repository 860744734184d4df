"""The committed contracts/build/ artifacts are exactly what the pinned compiler makes of the sources."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from local_chain import BUILD_DIR, NODE_MODULES, ROOT

pytestmark = pytest.mark.contract

COMPILE_SCRIPT = ROOT / "scripts" / "compile_contract.mjs"


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "solc").is_dir():
        pytest.fail("node or the pinned solc is missing: run `npm ci` (make setup does)")
    out_dir = tmp_path_factory.mktemp("contracts-build")
    subprocess.run(
        [node, str(COMPILE_SCRIPT), "--out-dir", str(out_dir)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    return out_dir


def test_committed_artifacts_match_a_fresh_compile(fresh_build: Path):
    fresh = sorted(p.name for p in fresh_build.glob("*.json"))
    committed = sorted(p.name for p in BUILD_DIR.glob("*.json"))
    assert "RonRenderEscrow.json" in fresh
    assert committed == fresh, "contracts/build/ is stale: run `node scripts/compile_contract.mjs`"
    for name in fresh:
        assert (BUILD_DIR / name).read_bytes() == (fresh_build / name).read_bytes(), (
            f"contracts/build/{name} is stale: run `node scripts/compile_contract.mjs`"
        )


def test_artifact_records_its_source_and_compiler():
    artifact = json.loads((BUILD_DIR / "RonRenderEscrow.json").read_text())
    source = ROOT / artifact["sourceName"]
    assert artifact["contractName"] == "RonRenderEscrow"
    assert artifact["sourceSha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["solc"]
    assert artifact["compiler"].startswith(f"{pinned}+")
    assert f"pragma solidity {pinned};" in source.read_text()
    assert artifact["evmVersion"] == "cancun"
    assert 0 < (len(artifact["deployedBytecode"]) - 2) // 2 < 24_576
