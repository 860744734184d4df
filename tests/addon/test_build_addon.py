"""The extension zip without wheels (the one the Blender tests install; the platform
zips with wheels are checked in ``test_addon_wheels.py``): layout, manifest, vendored
modules, reproducibility, and Blender's own validator."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from build_addon import VENDORED_MODULES, build

pytestmark = pytest.mark.addon


def blender_ext_cli() -> Path | None:
    """Blender's extension command line (``blender --command extension``), from the bpy wheel."""
    spec = importlib.util.find_spec("bpy")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(
        Path(spec.submodule_search_locations[0]).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py")
    )
    return found[-1] if found else None


def test_the_zip_is_an_extension_with_the_shared_modules_vendored(addon_zip):
    manifest_source = (
        Path(__file__).resolve().parents[2] / "blender_addon" / "blender_manifest.toml"
    ).read_bytes()
    manifest = tomllib.loads(manifest_source.decode())
    assert addon_zip.name == f"ronrender-{manifest['version']}.zip"
    with zipfile.ZipFile(addon_zip) as archive:
        names = archive.namelist()
        assert archive.read("blender_manifest.toml") == manifest_source
        sources = {name: archive.read(name).decode() for name in names if name.endswith(".py")}
    assert {"__init__.py", "blender_manifest.toml", "blender_child/pack_scene.py"} <= set(names)
    assert {f"vendor/{module}" for module in VENDORED_MODULES} | {"vendor/__init__.py"} <= set(names)
    assert not [n for n in names if n.startswith("shared/") or "__pycache__" in n or n.endswith(".pyc")]
    assert manifest["id"] == "ronrender" and manifest["type"] == "add-on"
    assert manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"network", "files"}
    for name, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert node.module.split(".")[0] != "shared", f"{name} imports shared"
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] != "shared" for a in node.names), f"{name} imports shared"


def test_the_zip_is_the_same_for_the_same_sources(addon_zip, tmp_path):
    assert build(tmp_path).read_bytes() == addon_zip.read_bytes()


def test_blenders_extension_validator_accepts_the_zip(addon_zip):
    cli = blender_ext_cli()
    if cli is None:
        pytest.fail("the bpy wheel with Blender's extension command line is not installed (make setup)")
    checked = subprocess.run(
        [sys.executable, str(cli), "validate", str(addon_zip)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Success" in checked.stdout
