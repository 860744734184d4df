"""Blender child: render a tiny built-in scene (Blender's default cube, a few Cycles
samples) on one device and print the render time as one line.

Usage: python benchmark.py OUTPUT.png SAMPLES DEVICE_JSON
"""

from __future__ import annotations

import json
import os
import sys
import time

import bpy
from render_server import select_device

RESOLUTION = (160, 90)


def main() -> int:
    output, samples, device = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    bpy.ops.wm.read_factory_settings(use_empty=False)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = RESOLUTION
    scene.render.resolution_percentage = 100
    scene.render.filepath = output
    select_device(scene, device)
    started = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    print("RONRENDER_BENCHMARK " + json.dumps({"render_ms": elapsed_ms}), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip bpy's exit handlers; the answer is out


if __name__ == "__main__":
    sys.exit(main())
