"""Build the RonRender Blender extension: one zip per platform in ``dist/``.

Every zip holds ``blender_manifest.toml`` and the add-on's modules at its root (as
Blender's ``extension build`` lays it out) and, under ``vendor/``, copies of the
``shared`` modules the add-on speaks the protocol with. Extensions share one
site-packages inside Blender, so ``shared`` is never shipped as a top-level
package; the vendored copies may import only the standard library and
``requests`` (which Blender bundles).

Signing a job's acceptance needs ``eth-account``, which stock Blender lacks, so
each platform's zip, ``dist/ronrender-<version>-<platform>.zip`` (the names
``blender --command extension build --split-platforms`` gives), also carries
eth-account and all its dependencies as wheels under ``wheels/``: the wheels
built for that platform and for Blender's Python (3.11 in Blender 4.2 to 5.0),
the pure-Python ones shared by every platform. Its manifest lists them in
``wheels`` and names the one platform in ``platforms``; Blender installs them
when the extension is enabled. The wheels come from the package index through
pip (``pip download --only-binary=:all: --platform ... --python-version 3.11``)
into a cache, ``.ronrender/addon-wheels/``, with one lock file per platform
naming the wheels resolved and their sha256: later builds take the wheels from
there, offline, and give byte-identical zips.

``--no-wheels`` builds ``dist/ronrender-<version>.zip`` without wheels, for every
platform (the manifest as written): signing there works only where Blender's
Python has eth-account; the add-on otherwise says so.

Usage: python scripts/build_addon.py [--dist DIR] [--platform NAME ...] [--no-wheels]
                                     [--wheel-cache DIR] [--refresh-wheels] [--stage DIR]
  --platform NAME    build only this platform's zip (repeatable; default: all of
                     linux-x64, windows-x64, macos-arm64, macos-x64)
  --refresh-wheels   resolve and download the wheels again, ignoring the locks
  --stage DIR        also write the unpacked extension (the first zip built) into
                     DIR (for development: point a local extension repository at it)
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDON_DIR = ROOT / "blender_addon"
SHARED_DIR = ROOT / "shared"
MANIFEST = "blender_manifest.toml"
VENDORED_MODULES = ("protocol.py", "api_client.py", "states.py")
VENDOR_ALLOWED_IMPORTS = frozenset(sys.stdlib_module_names) | {"requests"}
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)

# The wheels: for Blender's Python, per Blender platform name the pip platform tags
# a wheel may carry. Blender 4.2+ needs glibc 2.28 on Linux and macOS 11.2 on a Mac
# (pip also takes the wheels for older macOS versions, and universal2 ones).
BLENDER_PYTHON = "3.11"
WHEEL_PLATFORMS: dict[str, tuple[str, ...]] = {
    "linux-x64": (
        *(f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)),
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
    ),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_11_0_arm64",),
    "macos-x64": ("macosx_11_0_x86_64",),
}
WHEEL_CACHE = ROOT / ".ronrender" / "addon-wheels"
WHEEL_DIR = "wheels"
# What Blender's own Python ships: never bundled (Blender's copy is the one every
# add-on gets). None of them is an eth-account dependency today.
BLENDER_BUNDLED = frozenset(
    {
        "autopep8",
        "certifi",
        "charset-normalizer",
        "cython",
        "idna",
        "numpy",
        "pycodestyle",
        "requests",
        "urllib3",
        "zstandard",
    }
)

VENDOR_INIT = '''"""The project's ``shared`` modules, vendored into the add-on by
``scripts/build_addon.py``: edit the originals in ``shared/``, not these copies."""
'''


def read_manifest() -> dict:
    with open(ADDON_DIR / MANIFEST, "rb") as handle:
        return tomllib.load(handle)


def _addon_sources() -> list[tuple[str, bytes]]:
    """(path in the package, bytes) of the manifest and every add-on module."""
    files = [(MANIFEST, (ADDON_DIR / MANIFEST).read_bytes())]
    for path in sorted(ADDON_DIR.rglob("*.py")):
        relative = path.relative_to(ADDON_DIR)
        if "__pycache__" in relative.parts or relative.parts[0] == "vendor":
            continue
        files.append((relative.as_posix(), path.read_bytes()))
    return files


def _check_vendorable(name: str, source: str) -> None:
    """A vendored module must not import the project: only the stdlib and requests."""
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots = [node.module.split(".")[0]]
        else:
            continue
        for root in roots:
            if root not in VENDOR_ALLOWED_IMPORTS:
                raise SystemExit(f"shared/{name} imports {root!r}: it cannot be vendored into the add-on")


def _vendored_sources() -> list[tuple[str, bytes]]:
    files = [("vendor/__init__.py", VENDOR_INIT.encode())]
    for name in VENDORED_MODULES:
        source = (SHARED_DIR / name).read_text(encoding="utf-8")
        _check_vendorable(name, source)
        header = f"# Vendored from shared/{name} by scripts/build_addon.py: edit the original.\n"
        files.append((f"vendor/{name}", (header + source).encode()))
    return files


# --- wheels ---------------------------------------------------------------------------


def bundled_requirements() -> list[str]:
    """What the platform zips bundle: eth-account at the version this environment has
    (the one the project's tests sign with), with whatever it depends on."""
    try:
        return [f"eth-account=={metadata.version('eth-account')}"]
    except metadata.PackageNotFoundError:
        return ["eth-account>=0.13"]


def wheel_project(filename: str) -> str:
    """The normalized project name of a wheel file (``pydantic_core-2...whl`` -> ``pydantic-core``)."""
    return re.sub(r"[-_.]+", "-", filename.split("-")[0]).lower()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _download(platform: str, requirements: list[str], target: Path) -> None:
    tags = WHEEL_PLATFORMS[platform]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--implementation=cp",
        f"--python-version={BLENDER_PYTHON}",
        f"--abi=cp{BLENDER_PYTHON.replace('.', '')}",
        *(f"--platform={tag}" for tag in tags),
        f"--dest={target}",
        *requirements,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if not line.startswith("WARNING")]
        raise SystemExit(
            f"downloading the {platform} wheels ({', '.join(requirements)}) failed:\n"
            + "\n".join(errors[-15:])
        )


def platform_wheels(platform: str, cache: Path = WHEEL_CACHE, refresh: bool = False) -> list[Path]:
    """The wheels the ``platform`` zip bundles, sorted: from ``cache`` when its lock
    for the platform matches what is asked for and every wheel is intact, else
    resolved and downloaded again with pip (which needs the package index)."""
    if platform not in WHEEL_PLATFORMS:
        raise SystemExit(f"unknown platform {platform!r}: one of {', '.join(WHEEL_PLATFORMS)}")
    wanted = {
        "requirements": bundled_requirements(),
        "python": BLENDER_PYTHON,
        "pip_platforms": list(WHEEL_PLATFORMS[platform]),
        "excluded": sorted(BLENDER_BUNDLED),
    }
    lock_path = cache / f"{platform}.lock.json"
    if not refresh and lock_path.exists():
        try:
            lock = json.loads(lock_path.read_text(encoding="utf-8"))
            if lock["wanted"] == wanted and all(
                (cache / name).is_file() and _sha256(cache / name) == digest
                for name, digest in lock["wheels"].items()
            ):
                return [cache / name for name in sorted(lock["wheels"])]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # a broken lock: resolve again
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".download-{platform}-") as folder:
        _download(platform, wanted["requirements"], Path(folder))
        wheels = {}
        for path in sorted(Path(folder).iterdir()):
            if not path.name.endswith(".whl"):
                raise SystemExit(f"pip gave {path.name} for {platform}, not a wheel")
            if wheel_project(path.name) in BLENDER_BUNDLED:
                continue
            wheels[path.name] = _sha256(path)
            os.replace(path, cache / path.name)  # the same name is the same file: shared between platforms
    partial = lock_path.with_name(f".{lock_path.name}.{os.getpid()}")
    partial.write_text(json.dumps({"wanted": wanted, "wheels": wheels}, indent=1) + "\n", encoding="utf-8")
    partial.replace(lock_path)
    return [cache / name for name in sorted(wheels)]


def platform_manifest(platform: str, wheel_names: list[str]) -> bytes:
    """The manifest as written plus ``platforms`` (this one) and ``wheels`` (these),
    as top-level keys: before the first table."""
    source = (ADDON_DIR / MANIFEST).read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    first_table = next((i for i, line in enumerate(lines) if line.startswith("[")), len(lines))
    generated = [
        f"# Written by scripts/build_addon.py into the {platform} zip: the wheels under {WHEEL_DIR}/.\n",
        f"platforms = [{json.dumps(platform)}]\n",
        "wheels = [\n",
        *(f"  {json.dumps(f'./{WHEEL_DIR}/{name}')},\n" for name in wheel_names),
        "]\n",
        "\n",
    ]
    text = "".join(lines[:first_table] + generated + lines[first_table:])
    expected = {
        **tomllib.loads(source),
        "platforms": [platform],
        "wheels": [f"./{WHEEL_DIR}/{n}" for n in wheel_names],
    }
    if tomllib.loads(text) != expected:
        raise SystemExit(f"{MANIFEST}: cannot add platforms and wheels to it (a key after the first table?)")
    return text.encode("utf-8")


# --- the package ------------------------------------------------------------------------


def package_files(platform: str | None = None, wheel_cache: Path = WHEEL_CACHE) -> list[tuple[str, bytes]]:
    """Everything the extension is made of, as (path in the zip, bytes), sorted: with
    ``platform``, that platform's manifest and wheels too."""
    files = _addon_sources() + _vendored_sources()
    if platform is not None:
        wheels = platform_wheels(platform, wheel_cache)
        manifest = platform_manifest(platform, [wheel.name for wheel in wheels])
        files = [(name, manifest if name == MANIFEST else data) for name, data in files]
        files += [(f"{WHEEL_DIR}/{wheel.name}", wheel.read_bytes()) for wheel in wheels]
    return sorted(files)


def zip_name(platform: str | None = None) -> str:
    """``ronrender-<version>.zip``, or with the platform: ``ronrender-<version>-linux_x64.zip``."""
    manifest = read_manifest()
    suffix = f"-{platform.replace('-', '_')}" if platform else ""
    return f"{manifest['id']}-{manifest['version']}{suffix}.zip"


def stage(target: Path, platform: str | None = None, wheel_cache: Path = WHEEL_CACHE) -> Path:
    """Write the unpacked extension into ``target`` (replaced if it exists)."""
    shutil.rmtree(target, ignore_errors=True)
    for name, data in package_files(platform, wheel_cache):
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return target


def build(
    dist_dir: Path = ROOT / "dist", platform: str | None = None, wheel_cache: Path = WHEEL_CACHE
) -> Path:
    """Write ``dist_dir/<id>-<version>[-<platform>].zip``, byte for byte the same for the
    same sources (and wheels). Without ``platform``: no wheels, for any platform."""
    files = package_files(platform, wheel_cache)
    dist_dir.mkdir(parents=True, exist_ok=True)
    zip_path = dist_dir / zip_name(platform)
    partial = zip_path.with_name(f".{zip_path.name}.part")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.external_attr = 0o644 << 16
            # Wheels are zips already: stored as they are (as Blender's own build does).
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".whl") else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    partial.replace(zip_path)
    return zip_path


def build_platforms(
    dist_dir: Path = ROOT / "dist",
    platforms: tuple[str, ...] = tuple(WHEEL_PLATFORMS),
    wheel_cache: Path = WHEEL_CACHE,
) -> dict[str, Path]:
    """One zip per platform, each with that platform's wheels."""
    return {platform: build(dist_dir, platform, wheel_cache) for platform in platforms}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Build the RonRender Blender extension zips.")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument(
        "--platform",
        action="append",
        choices=tuple(WHEEL_PLATFORMS),
        help="build only this platform's zip (repeatable; default: every platform)",
    )
    parser.add_argument("--no-wheels", action="store_true", help="one zip without wheels, for any platform")
    parser.add_argument(
        "--wheel-cache", type=Path, default=WHEEL_CACHE, help="wheel cache (default: .ronrender/addon-wheels)"
    )
    parser.add_argument("--refresh-wheels", action="store_true", help="resolve and download the wheels again")
    parser.add_argument("--stage", type=Path, help="also write the unpacked extension (the first zip) here")
    args = parser.parse_args(argv)
    if args.no_wheels and (args.platform or args.refresh_wheels):
        parser.error("--no-wheels builds no platform zip")
    platforms: list[str | None] = (
        [None] if args.no_wheels else list(dict.fromkeys(args.platform or WHEEL_PLATFORMS))
    )
    if args.refresh_wheels:
        for platform in platforms:
            platform_wheels(platform, args.wheel_cache, refresh=True)
    for platform in platforms:
        print(build(args.dist, platform, args.wheel_cache))
    if args.stage:
        print(stage(args.stage, platforms[0], args.wheel_cache))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
