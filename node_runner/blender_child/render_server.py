"""Blender child that stays up between frames of one job: it opens the scene file
once (scripts kept from running), applies the job's overrides in memory once,
then renders one frame per request.

It may start before its job is known (a node's idle slot keeps one ready, so a
job's first frame does not wait for Blender to load): the first line on stdin,
{"open": SETTINGS}, names the scene. SETTINGS holds scene_path, output_format,
engine, samples, resolution_percentage, threads (0 = all cores) and device
({"backend": "CPU"|"CUDA"|..., "device_id": ...}).

Then requests arrive as JSON lines on stdin: {"frame": N, "output_path": "..."}, and
for a spot check also "border": [min_x, max_x, min_y, max_y]: only that crop is
rendered, on the CPU (a CPU render reproduces an honest CPU upload bit for bit).
Each answer is one JSON line written to the file descriptor named on the command
line, so Blender's own log on stdout never mixes with answers.

Usage: python render_server.py RESULT_FD
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

import bpy


def open_scene(settings: dict) -> bpy.types.Scene:
    bpy.ops.wm.open_mainfile(filepath=settings["scene_path"], load_ui=False, use_scripts=False)
    if bpy.app.autoexec_fail:
        print("RonRender: the scene carries scripts; they were not run", flush=True)
    scene = bpy.context.scene
    render = scene.render
    render.engine = settings["engine"]
    if settings["samples"] is not None:
        if settings["engine"] == "CYCLES":
            scene.cycles.samples = settings["samples"]
        elif settings["engine"].startswith("BLENDER_EEVEE"):
            scene.eevee.taa_render_samples = settings["samples"]
    if settings["engine"] == "CYCLES":
        select_device(scene, settings.get("device") or {"backend": "CPU"})
    render.resolution_percentage = settings["resolution_percentage"]
    if settings["threads"]:
        render.threads_mode = "FIXED"
        render.threads = settings["threads"]
    render.image_settings.file_format = settings["output_format"]
    render.use_file_extension = False
    return scene


def select_device(scene: bpy.types.Scene, device: dict) -> None:
    """Pin Cycles to this slot's device. Set here, from a script, because command-line
    defaults reset the GPU preferences; every other device is switched off."""
    if device["backend"] == "CPU":
        scene.cycles.device = "CPU"
        return
    preferences = bpy.context.preferences.addons["cycles"].preferences
    preferences.compute_device_type = device["backend"]
    preferences.refresh_devices()
    found = False
    for candidate in preferences.devices:
        candidate.use = candidate.id == device["device_id"]
        found = found or candidate.use
    if not found:
        raise RuntimeError(f"Cycles does not see device {device['device_id']} ({device['backend']})")
    scene.cycles.device = "GPU"
    print(f"RonRender: rendering on {device['backend']} device {device['device_id']}", flush=True)


def render_crop(scene: bpy.types.Scene, border: list[float]) -> None:
    """Render one border crop of the current frame on the CPU, then restore the session
    for the next full frame.

    The image keeps the frame's size (only the border is rendered, the rest stays
    empty and compresses to nothing): 8-bit output is dithered by pixel position in
    the image, so a cropped-to-border file differs from the upload by up to 2 levels
    where an uncropped one is identical."""
    render = scene.render
    device = scene.cycles.device if render.engine == "CYCLES" else None
    kept = (render.use_border, render.use_crop_to_border, *render_border(render))
    render.use_border, render.use_crop_to_border = True, False
    render.border_min_x, render.border_max_x, render.border_min_y, render.border_max_y = border
    if device is not None:
        scene.cycles.device = "CPU"
    try:
        bpy.ops.render.render(write_still=True)
    finally:
        render.use_border, render.use_crop_to_border = kept[:2]
        render.border_min_x, render.border_max_x, render.border_min_y, render.border_max_y = kept[2:]
        if device is not None:
            scene.cycles.device = device


def render_border(render: bpy.types.RenderSettings) -> tuple[float, float, float, float]:
    return render.border_min_x, render.border_max_x, render.border_min_y, render.border_max_y


def main() -> int:
    answers = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    opening = sys.stdin.readline()
    if not opening:  # the node closed the session before it had a job
        return 0
    scene = open_scene(json.loads(opening)["open"])
    answers.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        try:
            scene.frame_set(request["frame"])
            scene.render.filepath = request["output_path"]
            if request.get("border"):
                render_crop(scene, request["border"])
            else:
                bpy.ops.render.render(write_still=True)
            answer = {"ok": True, "render_s": time.perf_counter() - started}
        except Exception as error:  # report, stay up for the next frame
            traceback.print_exc()
            answer = {"ok": False, "error": str(error)}
        sys.stdout.flush()
        answers.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
