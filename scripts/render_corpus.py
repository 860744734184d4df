"""Blender-side script: render frames of the sample scene with chosen settings, for
calibrating and testing the image checks (honest renders and cheats alike).

Usage: python scripts/render_corpus.py OUT_DIR SPEC.json
SPEC.json is a list of {"name", "frame", "samples", "width", "height", "format"
("PNG" or "OPEN_EXR"), "depth" ("8", "16", "16" half or "32" float), "denoise",
"seed", "multilayer"}; every key but "name" and "frame" is optional.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_sample_scene import build_scene


def main(argv: list[str]) -> int:
    out_dir, spec_path = argv
    with open(spec_path, encoding="utf-8") as handle:
        specs = json.load(handle)
    build_scene(
        argparse.Namespace(
            frames=12, width=320, height=180, samples=16, format="PNG", missing_texture=False, flat=False
        )
    )
    scene = bpy.context.scene
    scene.render.threads_mode = "AUTO"
    for spec in specs:
        render = scene.render
        render.resolution_x = spec.get("width", 128)
        render.resolution_y = spec.get("height", 72)
        scene.cycles.samples = spec.get("samples", 16)
        scene.cycles.seed = spec.get("seed", 0)
        scene.cycles.use_denoising = spec.get("denoise", False)
        fmt = spec.get("format", "PNG")
        if fmt == "OPEN_EXR" and spec.get("multilayer"):
            fmt = "OPEN_EXR_MULTILAYER"
        render.image_settings.file_format = fmt
        render.image_settings.color_mode = spec.get("color_mode", "RGBA")
        render.image_settings.color_depth = spec.get("depth", "8" if fmt == "PNG" else "16")
        scene.frame_set(spec["frame"])
        render.use_file_extension = False
        render.filepath = os.path.join(out_dir, spec["name"])
        bpy.ops.render.render(write_still=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
