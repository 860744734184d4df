"""Blender child: render exactly one frame of a scene file, with the job's
overrides applied in memory (the file on disk is never changed), and scripts
in the file kept from running.

Usage: python render_frame.py SETTINGS.json
SETTINGS holds: scene_path, frame, output_path, output_format, engine, samples,
resolution_percentage, threads (0 = all cores).
"""

from __future__ import annotations

import json
import sys

import bpy


def render(settings: dict) -> None:
    bpy.ops.wm.open_mainfile(filepath=settings["scene_path"], load_ui=False, use_scripts=False)
    if bpy.app.autoexec_fail:
        print("RonRender: the scene carries scripts; they were not run", flush=True)
    scene = bpy.context.scene
    render_settings = scene.render
    render_settings.engine = settings["engine"]
    if settings["samples"] is not None:
        if settings["engine"] == "CYCLES":
            scene.cycles.samples = settings["samples"]
        elif settings["engine"].startswith("BLENDER_EEVEE"):
            scene.eevee.taa_render_samples = settings["samples"]
    if settings["engine"] == "CYCLES":
        scene.cycles.device = "CPU"
    render_settings.resolution_percentage = settings["resolution_percentage"]
    if settings["threads"]:
        render_settings.threads_mode = "FIXED"
        render_settings.threads = settings["threads"]
    render_settings.image_settings.file_format = settings["output_format"]
    render_settings.use_file_extension = False
    render_settings.filepath = settings["output_path"]
    scene.frame_set(settings["frame"])
    bpy.ops.render.render(write_still=True)


def main() -> int:
    with open(sys.argv[-1], encoding="utf-8") as handle:
        settings = json.load(handle)
    render(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
