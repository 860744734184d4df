"""Blender child: open a scene file without running its scripts and write what
the backend needs to split and price it, as JSON.

Usage: python inspect_scene.py SCENE.blend RESULT.json
"""

from __future__ import annotations

import json
import os
import sys

import bpy


def _missing_files() -> list[dict[str, str]]:
    """External files the scene uses that are neither packed nor on disk."""
    missing = []
    collections = {
        "image": [i for i in bpy.data.images if i.source in {"FILE", "SEQUENCE", "MOVIE", "TILED"}],
        "sound": list(bpy.data.sounds),
        "font": [f for f in bpy.data.fonts if f.filepath != "<builtin>"],
        "movie_clip": list(bpy.data.movieclips),
        "library": list(bpy.data.libraries),
        "cache_file": list(bpy.data.cache_files),
    }
    for kind, blocks in collections.items():
        for block in blocks:
            if getattr(block, "packed_file", None) is not None:
                continue
            if not block.filepath:
                continue
            path = bpy.path.abspath(block.filepath)
            if not os.path.exists(path):
                missing.append({"kind": kind, "name": block.name, "path": block.filepath})
    return missing


def inspect(scene_path: str) -> dict[str, object]:
    bpy.ops.wm.open_mainfile(filepath=scene_path, load_ui=False, use_scripts=False)
    scene = bpy.context.scene
    render = scene.render
    engine = render.engine
    samples = None
    device = "ANY"
    if engine == "CYCLES":
        samples = int(scene.cycles.samples)
        device = "GPU" if scene.cycles.device == "GPU" else "ANY"
    elif engine.startswith("BLENDER_EEVEE"):
        samples = int(scene.eevee.taa_render_samples)
    major, minor, _patch = bpy.data.version
    return {
        "scene_name": scene.name,
        "frame_start": scene.frame_start,
        "frame_end": scene.frame_end,
        "frame_step": scene.frame_step,
        "resolution_x": render.resolution_x,
        "resolution_y": render.resolution_y,
        "resolution_percentage": render.resolution_percentage,
        "engine": engine,
        "samples": samples,
        "output_format": render.image_settings.file_format,
        "device": device,
        "has_camera": scene.camera is not None,
        "saved_with_blender": f"{major}.{minor}",
        "opened_with_blender": bpy.app.version_string,
        "scripts_blocked": bool(bpy.app.autoexec_fail),
        "missing_files": _missing_files(),
    }


def main() -> int:
    scene_path, result_path = sys.argv[-2], sys.argv[-1]
    try:
        result = {"ok": True, "scene": inspect(scene_path)}
    except Exception as error:  # Blender raises RuntimeError for unreadable files
        result = {"ok": False, "error": str(error).strip().splitlines()[-1][:500]}
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
