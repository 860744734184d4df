"""Blender-side helper for the tests: a scene whose auto-run text block and Python
driver would each write a marker file if scripts were allowed to run.

Usage: python make_scripted_scene.py OUT.blend MARKER_PATH
"""

import os
import subprocess
import sys
from pathlib import Path

import bpy

out, marker = sys.argv[1], sys.argv[2]
make_scene = Path(__file__).resolve().parents[2] / "scripts" / "make_sample_scene.py"
subprocess.run(
    [
        sys.executable,
        str(make_scene),
        out,
        "--frames",
        "1",
        "--width",
        "64",
        "--height",
        "36",
        "--samples",
        "4",
    ],
    check=True,
    stdout=subprocess.DEVNULL,
)
bpy.ops.wm.open_mainfile(filepath=out)
text = bpy.data.texts.new("autorun.py")
text.write(f"open({marker!r}, 'w').write('text block ran')\n")
text.use_module = True
driver = bpy.data.objects["Torus"].driver_add("location", 0).driver
driver.type = "SCRIPTED"
driver.expression = f"__import__('pathlib').Path({marker!r}).write_text('driver ran') or 0"
bpy.ops.wm.save_as_mainfile(filepath=out)
# bpy can hang in its exit handlers after a driver error; the file is saved, so leave now.
sys.stdout.flush()
os._exit(0)
