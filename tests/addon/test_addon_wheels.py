"""The platform zips, which bundle eth-account and its dependencies as wheels: each
manifest lists exactly the wheels its zip holds, every one for that platform and
Blender's Python, with a compiled wheel for each compiled dependency and nothing
a wheel needs missing; and, in Blender, signing works with the bundled wheels alone.

The Blender test runs this file as the child script (``python test_addon_wheels.py
SPEC``): a bpy child whose site-packages (this venv's, where eth-account is) offers
only what stock Blender's Python ships, like a Blender that never had eth-account.
So the module level imports only the standard library and pytest (importing
eth-account here would load the venv's copy into the child); the pytest side
imports ``build_addon`` and ``eth_account`` where it uses them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

pytestmark = pytest.mark.addon

ROOT = Path(__file__).resolve().parents[2]
RESULT_PREFIX = "RONRENDER_TEST_RESULT:"
PLATFORMS = ("linux-x64", "windows-x64", "macos-arm64", "macos-x64")
# The dependencies with compiled parts: each platform zip needs its own build of each.
COMPILED = {"bitarray", "ckzg", "cytoolz", "pycryptodome", "pydantic-core", "regex"}
# Environment markers as the add-on's Python sees them on each platform.
MARKERS = {
    "linux-x64": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"},
    "windows-x64": {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64"},
    "macos-arm64": {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"},
    "macos-x64": {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "x86_64"},
}


def project(wheel_filename: str) -> str:
    return re.sub(r"[-_.]+", "-", wheel_filename.split("-")[0]).lower()


def wheel_names(archive: zipfile.ZipFile) -> list[str]:
    return sorted(Path(name).name for name in archive.namelist() if name.endswith(".whl"))


def wheel_metadata(archive: zipfile.ZipFile, wheel: str):
    """The METADATA of a wheel inside the extension zip."""
    with zipfile.ZipFile(archive.open(f"wheels/{wheel}")) as inner:
        name = next(n for n in inner.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(inner.read(name).decode())


def top_level_names(archive: zipfile.ZipFile) -> set[str]:
    """The importable top-level names the zip's wheels install."""
    names = set()
    for wheel in wheel_names(archive):
        with zipfile.ZipFile(archive.open(f"wheels/{wheel}")) as inner:
            for entry in inner.namelist():
                head = entry.split("/")[0]
                if not head.endswith((".dist-info", ".data")):
                    names.add(head.split(".")[0])
    return names


def blender_ext():
    """Blender's extension command line module (from the bpy wheel, without importing bpy)."""
    spec = importlib.util.find_spec("bpy")
    found = sorted(
        Path(spec.submodule_search_locations[0]).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py")
    )
    assert found, "the bpy wheel with Blender's extension command line is not installed (make setup)"
    module_spec = importlib.util.spec_from_file_location("blender_ext_for_tests", found[-1])
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def platform_zips(tmp_path_factory) -> dict[str, Path]:
    """Every platform's zip; the wheels come from the build's cache (downloaded once)."""
    from build_addon import build_platforms

    return build_platforms(tmp_path_factory.mktemp("platform-dist"))


# --- the zips -------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_manifest_lists_exactly_the_platforms_wheels(platform, platform_zips, addon_zip):
    from build_addon import BLENDER_BUNDLED
    from packaging.requirements import Requirement

    zip_path = platform_zips[platform]
    assert zip_path.name == f"ronrender-0.1.0-{platform.replace('-', '_')}.zip"
    source = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    with zipfile.ZipFile(zip_path) as archive, zipfile.ZipFile(addon_zip) as plain:
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        wheels = wheel_names(archive)
        # The add-on itself is the same as in the zip without wheels.
        others = sorted(n for n in archive.namelist() if not n.startswith("wheels/"))
        assert others == sorted(plain.namelist())
        for name in others:
            if name != "blender_manifest.toml":
                assert archive.read(name) == plain.read(name), name
        assert [n for n in archive.namelist() if n.endswith(".whl")] == [f"wheels/{w}" for w in wheels]
        metadata = {wheel: wheel_metadata(archive, wheel) for wheel in wheels}

    assert manifest == {**source, "platforms": [platform], "wheels": [f"./wheels/{w}" for w in wheels]}
    assert "platforms" not in source and "wheels" not in source
    projects = [project(wheel) for wheel in wheels]
    assert len(set(projects)) == len(projects), "one wheel per project"
    assert "eth-account" in projects
    assert not set(projects) & BLENDER_BUNDLED

    # Every wheel is for Blender's Python and this platform, by Blender's own rules.
    cli = blender_ext()
    for wheel in wheels:
        versions = cli.python_versions_from_wheel(wheel)
        assert (3, 11) in versions or (3,) in versions, (wheel, versions)
        assert cli.blender_platform_compatible_with_wheel_platform_from_filepath(platform, wheel), wheel
    compiled = {project(w): w for w in wheels if not w.endswith("-none-any.whl")}
    assert set(compiled) == COMPILED, compiled

    # Nothing any bundled wheel needs on this platform is missing (or left to Blender's copy).
    environment = {
        **MARKERS[platform],
        "python_version": "3.11",
        "python_full_version": "3.11.13",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    for wheel, data in metadata.items():
        for line in data.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                needed = re.sub(r"[-_.]+", "-", requirement.name).lower()
                assert needed in projects or needed in BLENDER_BUNDLED, f"{wheel} needs {line}"


def test_blenders_extension_validator_accepts_every_platform_zip(platform_zips):
    assert set(platform_zips) == set(PLATFORMS)
    cli = Path(blender_ext().__file__)
    for platform, zip_path in platform_zips.items():
        checked = subprocess.run(
            [sys.executable, str(cli), "validate", str(zip_path)], capture_output=True, text=True, timeout=60
        )
        report = checked.stdout + checked.stderr
        assert checked.returncode == 0 and "Success" in checked.stdout, f"{platform}:\n{report}"


def test_a_rebuild_takes_the_cached_wheels_and_gives_the_same_zip(platform_zips, tmp_path, monkeypatch):
    import build_addon

    def no_download(*args):
        raise AssertionError("the wheels were downloaded again")

    monkeypatch.setattr(build_addon, "_download", no_download)
    for platform in ("linux-x64", "macos-x64"):
        assert build_addon.build(tmp_path, platform).read_bytes() == platform_zips[platform].read_bytes()


# --- in Blender -----------------------------------------------------------------------


def test_blender_without_eth_account_signs_with_the_bundled_wheels(platform_zips, tmp_path):
    from build_addon import BLENDER_BUNDLED
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from tests.addon.test_wallet_signing import typed_data

    account = Account.create()
    keystore = tmp_path / "keystore.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "pw", iterations=2)))
    zip_path = platform_zips["linux-x64"]
    with zipfile.ZipFile(zip_path) as archive:
        bundled = top_level_names(archive)
        wheels = wheel_names(archive)
    assert {"eth_account", "pydantic_core", "Crypto", "cytoolz", "ckzg"} <= bundled
    spec = {
        "zip": str(zip_path),
        "keystore": str(keystore),
        "password": "pw",
        "typed_data": typed_data(),
        "bundled": sorted(bundled),
        # What stock Blender's Python has besides bpy, by import name.
        "blender_ships": sorted(name.replace("-", "_") for name in BLENDER_BUNDLED),
    }
    env = dict(os.environ)
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "blender_user")
    env["PYTHONUNBUFFERED"] = "1"
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    process = subprocess.run(
        [sys.executable, __file__, json.dumps(spec)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = (process.stdout + process.stderr)[-6000:]
    lines = [line for line in process.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert process.returncode == 0 and lines, f"the Blender child failed ({process.returncode}):\n{output}"
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    (tmp_path / "result.json").write_text(json.dumps(result, indent=1))  # for a failing test

    # The child really had no eth-account until the extension brought it.
    assert result["preloaded"] == [], output
    assert result["before_install"].startswith("ModuleNotFoundError"), result["before_install"]

    # The add-on's own signer signed, by the keystore's address, over exactly this message.
    assert result["address"].lower() == account.address.lower()
    message = encode_typed_data(full_message=typed_data())
    assert Account.recover_message(message, signature=result["signature"]) == account.address

    # With the bundled wheels, installed by Blender into its extensions' site-packages.
    site = Path(result["extension_site_packages"])
    assert site.name == "site-packages" and ".local" in site.parts
    installed = {name.removesuffix(".dist-info") for name in result["installed"]}
    assert installed == {"-".join(wheel.split("-")[:2]) for wheel in wheels}
    loaded = result["loaded"]
    assert {"eth_account", "eth_keyfile", "pydantic_core", "Crypto", "cytoolz", "ckzg"} <= set(loaded)
    elsewhere = {name: file for name, file in loaded.items() if not Path(file).is_relative_to(site)}
    assert elsewhere == {}, "not from the extension's wheels"


# --- the child ----------------------------------------------------------------------


class StockBlenderSitePackages:
    """A ``sys.meta_path`` finder that stands in for the venv's site-packages, taken off
    ``sys.path``: it finds there only what stock Blender's Python has (``allowed``), so
    anything else (eth-account and its dependencies) is found only where Blender puts
    it, or not at all."""

    def __init__(self, site_packages: str, allowed: set[str]) -> None:
        self.site_packages = site_packages
        self.allowed = allowed
        self.served: set[str] = set()

    def find_spec(self, name, path=None, target=None):
        if path is not None or name not in self.allowed:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, [self.site_packages])
        if spec is not None:
            self.served.add(name)
        return spec


def child_main(spec: dict) -> int:
    """In the bpy child: hide the venv's eth-account, install the zip as Blender does,
    sign with the add-on's signer, and report where every bundled module came from."""
    import site

    import blender_session  # beside this file; imports bpy
    import bpy

    site_packages = [os.path.realpath(p) for p in site.getsitepackages()]
    bundled = set(spec["bundled"])
    result: dict = {"preloaded": sorted(n for n in sys.modules if n.split(".")[0] in bundled)}
    already = {name.split(".")[0] for name in sys.modules}
    sys.path[:] = [p for p in sys.path if os.path.realpath(p) not in site_packages]
    guards = [StockBlenderSitePackages(p, already | set(spec["blender_ships"])) for p in site_packages]
    sys.meta_path.extend(guards)  # after the path finder: Blender's own paths come first
    try:
        import eth_account

        result["before_install"] = f"imported from {eth_account.__file__}"
    except ImportError as error:
        result["before_install"] = f"{type(error).__name__}: {error}"

    blender_session.install(spec["zip"])
    signing = blender_session.addon("wallet_signing")
    signer = signing.KeystoreSigner(Path(spec["keystore"]), spec["password"])
    result["address"] = signer.address
    result["signature"] = signer.sign_typed_data(spec["typed_data"])

    extensions = Path(bpy.utils.user_resource("EXTENSIONS"))
    local = (
        extensions / ".local" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    )
    result["extension_site_packages"] = os.path.realpath(local)
    result["installed"] = sorted(p.name for p in local.glob("*.dist-info"))
    result["loaded"] = {
        name: os.path.realpath(getattr(module, "__file__", None) or "")
        for name, module in sys.modules.items()
        if name in bundled
    }
    result["served_from_venv"] = sorted(set().union(*(guard.served for guard in guards)))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(json.loads(sys.argv[1])))
