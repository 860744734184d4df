"""Build the RonRender Blender extension: ``dist/ronrender-<version>.zip``.

The zip holds ``blender_manifest.toml`` and the add-on's modules at its root (as
Blender's ``extension build`` lays it out) and, under ``vendor/``, copies of the
``shared`` modules the add-on speaks the protocol with. Extensions share one
site-packages inside Blender, so ``shared`` is never shipped as a top-level
package; the vendored copies may import only the standard library and
``requests`` (which Blender bundles).

Usage: python scripts/build_addon.py [--dist DIR] [--stage DIR]
  --stage DIR   also write the unpacked extension into DIR (for development:
                point a local extension repository at it)
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDON_DIR = ROOT / "blender_addon"
SHARED_DIR = ROOT / "shared"
MANIFEST = "blender_manifest.toml"
VENDORED_MODULES = ("protocol.py", "api_client.py", "states.py")
VENDOR_ALLOWED_IMPORTS = frozenset(sys.stdlib_module_names) | {"requests"}
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)

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


def package_files() -> list[tuple[str, bytes]]:
    """Everything the extension is made of, as (path in the zip, bytes), sorted."""
    return sorted(_addon_sources() + _vendored_sources())


def stage(target: Path) -> Path:
    """Write the unpacked extension into ``target`` (replaced if it exists)."""
    shutil.rmtree(target, ignore_errors=True)
    for name, data in package_files():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return target


def build(dist_dir: Path = ROOT / "dist") -> Path:
    """Write ``dist_dir/<id>-<version>.zip``, byte for byte the same for the same sources."""
    manifest = read_manifest()
    dist_dir.mkdir(parents=True, exist_ok=True)
    zip_path = dist_dir / f"{manifest['id']}-{manifest['version']}.zip"
    partial = zip_path.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in package_files():
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    partial.replace(zip_path)
    return zip_path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Build the RonRender Blender extension zip.")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--stage", type=Path, help="also write the unpacked extension here")
    args = parser.parse_args(argv)
    zip_path = build(args.dist)
    print(zip_path)
    if args.stage:
        print(stage(args.stage))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
