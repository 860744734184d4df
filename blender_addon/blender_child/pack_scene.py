"""Blender child: turn a copy of the artist's scene into one self-contained .blend.

Opens the copy without running its scripts, makes linked data local, packs every
external image, font, sound and volume, makes paths relative and saves the result
compressed. Files that cannot be packed (missing on disk, image sequences,
movies, movie clips, caches) are listed with the reason instead; nothing is saved
then. Runs in its own Blender process, so the artist's open session is never
touched.

Usage: blender --background --factory-startup --python pack_scene.py -- COPY OUT RESULT.json
   or: python pack_scene.py -- COPY OUT RESULT.json      (with the bpy module)
"""

from __future__ import annotations

import json
import os
import sys

import bpy

UNPACKABLE_IMAGE_SOURCES = {
    "SEQUENCE": "image sequences cannot be packed",
    "MOVIE": "movies cannot be packed",
}


def _external_blocks() -> list[tuple[str, bpy.types.ID]]:
    """Every data-block that may refer to a file outside the .blend, with its kind."""
    blocks: list[tuple[str, bpy.types.ID]] = []
    blocks += [("image", i) for i in bpy.data.images if i.source in {"FILE", "TILED", "SEQUENCE", "MOVIE"}]
    blocks += [("font", f) for f in bpy.data.fonts if f.filepath != "<builtin>"]
    blocks += [("sound", s) for s in bpy.data.sounds]
    blocks += [("volume", v) for v in bpy.data.volumes]
    blocks += [("movie_clip", c) for c in bpy.data.movieclips]
    blocks += [("cache_file", c) for c in bpy.data.cache_files]
    return [(kind, block) for kind, block in blocks if block.users > 0 and block.filepath]


def _absolute(path: str) -> str:
    """A path as the artist knows it (relative paths in the copy point into a temporary folder)."""
    return os.path.normpath(bpy.path.abspath(path)) if path else ""


def _problem(kind: str, block: bpy.types.ID, why: str) -> dict[str, str]:
    return {"kind": kind, "name": block.name, "path": _absolute(block.filepath), "why": why}


def _is_packed(block: bpy.types.ID) -> bool:
    if isinstance(block, bpy.types.Image):
        return len(block.packed_files) > 0
    return getattr(block, "packed_file", None) is not None


def _unpackable(kind: str, block: bpy.types.ID) -> str | None:
    """Why ``block`` cannot be packed, or None when it can (or already is)."""
    if _is_packed(block):
        return None
    if kind == "movie_clip":
        return "movie clips cannot be packed"
    if kind == "cache_file":
        return "cache files (Alembic, USD) cannot be packed"
    if kind == "image" and block.source in UNPACKABLE_IMAGE_SOURCES:
        return UNPACKABLE_IMAGE_SOURCES[block.source]
    path = bpy.path.abspath(block.filepath)
    if kind == "image" and block.source == "TILED":
        return None if os.path.isdir(os.path.dirname(path)) else "the folder of its UDIM tiles is not found"
    if not os.path.isfile(path):
        return "not found on disk"
    return None


def make_linked_data_local(problems: list[dict[str, str]]) -> int:
    """Make every linked or overridden data-block local and drop the libraries."""
    for library in bpy.data.libraries:
        if not os.path.isfile(bpy.path.abspath(library.filepath)):
            problems.append(_problem("library", library, "the linked .blend is not found on disk"))
    if problems:
        return 0
    linked = [block for block in bpy.data.user_map() if block.library is not None or block.override_library]
    for block in linked:
        block.make_local(clear_liboverride=True)
    still_linked = [block for block in bpy.data.user_map() if block.library is not None]
    for block in still_linked:
        problems.append(
            {
                "kind": "linked_data",
                "name": block.name,
                "path": _absolute(block.library.filepath),
                "why": "could not be made local",
            }
        )
    if not still_linked:
        for library in list(bpy.data.libraries):
            bpy.data.libraries.remove(library)
    return len(linked)


def pack(copy_path: str, output_path: str) -> dict[str, object]:
    bpy.ops.wm.open_mainfile(filepath=copy_path, load_ui=False, use_scripts=False)
    problems: list[dict[str, str]] = []
    made_local = make_linked_data_local(problems)
    for kind, block in _external_blocks():
        why = _unpackable(kind, block)
        if why:
            problems.append(_problem(kind, block, why))
    if problems:
        return {"ok": False, "problems": problems}
    try:
        bpy.ops.file.pack_all()
    except RuntimeError as error:  # Blender raises when a report is an error
        message = str(error).strip().splitlines()[-1][:500] if str(error).strip() else "packing failed"
        return {"ok": False, "problems": [{"kind": "pack", "name": "", "path": "", "why": message}]}
    left = [
        _problem(kind, block, "Blender could not pack it")
        for kind, block in _external_blocks()
        if not _is_packed(block)
    ]
    if left:
        return {"ok": False, "problems": left}
    bpy.ops.file.make_paths_relative()
    bpy.ops.wm.save_as_mainfile(filepath=output_path, compress=True, relative_remap=True, copy=True)
    packed = sum(1 for _kind, block in _external_blocks() if _is_packed(block))
    return {"ok": True, "packed_files": packed, "made_local": made_local}


def main() -> int:
    args = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    copy_path, output_path, result_path = args[-3:]
    try:
        result = pack(copy_path, output_path)
    except Exception as error:  # an unreadable copy or a Blender failure: report it, do not hide it
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"[:1000]}
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
