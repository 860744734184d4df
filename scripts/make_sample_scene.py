"""Blender-side script: write a small animated sample scene (a turning, bobbing
torus on a floor, lit by a sun) for demos, tests and benchmarks.

Usage: python scripts/make_sample_scene.py OUT.blend [--frames 12] [--width 320]
       [--height 180] [--samples 16] [--format PNG|OPEN_EXR] [--missing-texture] [--flat]

--flat writes a scene that truly renders one constant colour (only the sky in view).
"""

from __future__ import annotations

import argparse
import math
import sys

import bpy


def build_scene(args: argparse.Namespace) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, args.frames
    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x, render.resolution_y, render.resolution_percentage = args.width, args.height, 100
    render.image_settings.file_format = args.format
    scene.cycles.samples = args.samples
    scene.cycles.use_denoising = False
    scene.cycles.device = "CPU"

    world = bpy.data.worlds.new("Sky")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.05, 0.07, 0.12, 1.0)
    scene.world = world
    if args.flat:
        bpy.ops.object.camera_add(location=(0, 0, 0))
        scene.camera = bpy.context.object
        return

    bpy.ops.mesh.primitive_plane_add(size=20)
    floor_material = bpy.data.materials.new("Floor")
    floor_material.diffuse_color = (0.6, 0.6, 0.6, 1.0)
    bpy.context.object.data.materials.append(floor_material)

    bpy.ops.mesh.primitive_torus_add(location=(0, 0, 1.2))
    torus = bpy.context.object
    material = bpy.data.materials.new("Torus")
    material.use_nodes = True
    principled = material.node_tree.nodes["Principled BSDF"]
    principled.inputs["Base Color"].default_value = (0.9, 0.35, 0.1, 1.0)
    if args.missing_texture:
        texture = material.node_tree.nodes.new("ShaderNodeTexImage")
        texture.image = bpy.data.images.new("missing", 8, 8)
        texture.image.source = "FILE"
        texture.image.filepath = "//textures/does_not_exist.png"
        material.node_tree.links.new(texture.outputs["Color"], principled.inputs["Base Color"])
    torus.data.materials.append(material)
    for frame in range(1, args.frames + 1):
        phase = 2 * math.pi * (frame - 1) / max(args.frames, 1)
        torus.rotation_euler = (phase, phase / 2, 0)
        torus.location.z = 1.2 + 0.4 * math.sin(phase)
        torus.keyframe_insert("rotation_euler", frame=frame)
        torus.keyframe_insert("location", frame=frame)

    bpy.ops.object.light_add(type="SUN", rotation=(0.6, 0.2, 0.8))
    bpy.context.object.data.energy = 3.0
    bpy.ops.object.camera_add(location=(6, -6, 4.5))
    camera = bpy.context.object
    aim = camera.constraints.new("TRACK_TO")
    aim.target = torus
    aim.track_axis, aim.up_axis = "TRACK_NEGATIVE_Z", "UP_Y"
    scene.camera = camera


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--format", default="PNG", choices=["PNG", "OPEN_EXR"])
    parser.add_argument("--missing-texture", action="store_true")
    parser.add_argument("--flat", action="store_true")
    args = parser.parse_args(argv)
    build_scene(args)
    bpy.ops.wm.save_as_mainfile(filepath=args.output, compress=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
