"""The main thread's part of packing: write a plain copy of the open scene into
a private temporary folder. The open session keeps its file path, its unsaved
changes and its external files; the file on disk is not written. The slow part
(packing) runs later in a Blender child (``scene_packer``)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import bpy

from .errors import PackingError
from .scene_packer import PackPlan


def blender_argv() -> tuple[str, ...]:
    """How to start a Blender that runs a script: the Blender binary, or (for the
    ``bpy`` module, which has none) this Python, which imports ``bpy``."""
    if bpy.app.binary_path:
        return (
            bpy.app.binary_path,
            "--background",
            "--factory-startup",
            "--python-exit-code",
            "1",
            "--python",
        )
    return (sys.executable,)


def unsaved_images() -> list[str]:
    """Images edited in Blender but not saved: the farm would render the saved pixels."""
    return sorted(image.name for image in bpy.data.images if image.is_dirty and image.source == "FILE")


def prepare_pack() -> PackPlan:
    """Write the copy (main thread only); the returned plan is for the worker thread."""
    work_dir = Path(tempfile.mkdtemp(prefix="ronrender-pack-"))
    copy_path = work_dir / "scene_copy.blend"
    try:
        bpy.ops.wm.save_as_mainfile(
            filepath=str(copy_path), copy=True, relative_remap=True, compress=False, check_existing=False
        )
    except RuntimeError as error:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise PackingError(f"could not write a copy of the scene: {str(error).strip()}") from error
    return PackPlan(work_dir=work_dir, copy_path=copy_path, blender_argv=blender_argv())
