"""Test-only Blender child: open a scene WITH its scripts allowed, as a careless
node would, so the sandbox alone stands between the scene and the machine.

Usage: python open_with_scripts.py SCENE.blend
"""

import os
import sys

import bpy

bpy.ops.wm.open_mainfile(filepath=sys.argv[1], use_scripts=True)
bpy.context.scene.frame_set(1)
sys.stdout.flush()
os._exit(0)
