"""Blender child: open a scene file without running its scripts and write what
the backend needs to split and price it, as JSON.

It also renders the middle frame small and with few samples, timed, so the job
can be priced from a measurement (the probe image lands beside RESULT.json).

Usage: python inspect_scene.py SCENE.blend RESULT.json
   or: python inspect_scene.py --wait  (loads Blender, then reads ["SCENE.blend",
       "RESULT.json"] as one JSON line on stdin: a worker keeps one ready)
"""

from __future__ import annotations

import json
import os
import sys
import time

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


def _is_animated() -> bool:
    """Whether anything in the file is keyframed or driven: then two frames of the
    job that come out pixel-identical are suspect (the verifier's duplicate rule)."""
    if any(action.users for action in bpy.data.actions):
        return True
    holders = [*bpy.data.objects, *bpy.data.materials, *bpy.data.node_groups, *bpy.data.shape_keys]
    return any(h.animation_data and h.animation_data.drivers for h in holders)


PROBE_MAX_SIDE_PX = 160
PROBE_MAX_SAMPLES = 8


def probe_render(scene: bpy.types.Scene, output_path: str) -> dict[str, object]:
    """Render the middle frame small and with few samples, timed, to price the job
    from a measurement rather than a guess."""
    render = scene.render
    full_width = render.resolution_x * render.resolution_percentage // 100
    full_height = render.resolution_y * render.resolution_percentage // 100
    scale = min(1.0, PROBE_MAX_SIDE_PX / max(full_width, full_height))
    render.resolution_percentage = max(1, int(render.resolution_percentage * scale))
    samples = None
    if render.engine == "CYCLES":
        samples = min(int(scene.cycles.samples), PROBE_MAX_SAMPLES)
        scene.cycles.samples = samples
        scene.cycles.device = "CPU"
    elif render.engine.startswith("BLENDER_EEVEE"):
        samples = min(int(scene.eevee.taa_render_samples), PROBE_MAX_SAMPLES)
        scene.eevee.taa_render_samples = samples
    scene.frame_set((scene.frame_start + scene.frame_end) // 2)
    render.image_settings.file_format = "PNG"
    # Dither noise would make a truly flat scene's probe look non-constant to the blank rule.
    render.dither_intensity = 0.0
    render.use_file_extension = False
    render.filepath = output_path
    started = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    return {
        "frame": scene.frame_current,
        "width": render.resolution_x * render.resolution_percentage // 100,
        "height": render.resolution_y * render.resolution_percentage // 100,
        "samples": samples,
        "render_us": int((time.perf_counter() - started) * 1_000_000),
    }


def _crops_render_exactly(scene: bpy.types.Scene) -> bool:
    """Whether a Cycles border crop of this scene equals the same region of the full frame
    bit for bit (what a spot check compares): not with the denoiser or the compositor,
    which both look at neighbouring pixels."""
    if scene.cycles.use_denoising:
        return False
    uses_nodes = getattr(scene, "use_nodes", False) or getattr(scene, "compositing_node_group", None)
    return not (scene.render.use_compositing and uses_nodes)


def inspect(scene_path: str, probe_path: str) -> dict[str, object]:
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
    facts = {
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
        "animated": _is_animated(),
        "crops_render_exactly": _crops_render_exactly(scene),
    }
    if scene.camera is not None and not facts["missing_files"]:
        facts["probe"] = probe_render(scene, probe_path)
    return facts


def main() -> int:
    if sys.argv[-1] == "--wait":
        arguments = sys.stdin.readline()
        if not arguments:  # the worker exited before it needed this child
            return 0
        scene_path, result_path = json.loads(arguments)
    else:
        scene_path, result_path = sys.argv[-2], sys.argv[-1]
    probe_path = os.path.join(os.path.dirname(os.path.abspath(result_path)), "probe.png")
    try:
        result = {"ok": True, "scene": inspect(scene_path, probe_path)}
    except Exception as error:  # Blender raises RuntimeError for unreadable files
        result = {"ok": False, "error": str(error).strip().splitlines()[-1][:500]}
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
