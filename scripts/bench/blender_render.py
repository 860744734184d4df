"""Blender-side script (run in a child process, never imported): bare Blender
rendering frames of a scene in a loop, the baseline of the farm-overhead benchmark.

Usage: python blender_render.py SCENE.blend OUT_DIR FRAME [FRAME ...]
Opens the scene once, the way a node does (scripts kept from running), and
renders each frame to OUT_DIR/frame_NNNNN.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bpy


def main(argv: list[str]) -> int:
    scene_path, out_dir, *frames = argv
    bpy.ops.wm.open_mainfile(filepath=scene_path, load_ui=False, use_scripts=False)
    scene = bpy.context.scene
    scene.render.use_file_extension = False
    for frame in (int(f) for f in frames):
        scene.frame_set(frame)
        scene.render.filepath = str(Path(out_dir) / f"frame_{frame:05d}.png")
        bpy.ops.render.render(write_still=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
