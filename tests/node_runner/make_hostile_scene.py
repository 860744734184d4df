"""Blender-side helper for the sandbox tests: a scene whose auto-run text block
tries to reach the network, read a secret file and write outside its directory,
and writes what it managed to ``report.json`` in its working directory.

Usage: python make_hostile_scene.py OUT.blend PORT SECRET_PATH OUTSIDE_PATH
"""

import os
import subprocess
import sys
from pathlib import Path

import bpy

out, port, secret, outside = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
make_scene = Path(__file__).resolve().parents[2] / "scripts" / "make_sample_scene.py"
subprocess.run(
    [
        sys.executable,
        str(make_scene),
        out,
        "--frames",
        "1",
        "--width",
        "32",
        "--height",
        "18",
        "--samples",
        "1",
    ],
    check=True,
    stdout=subprocess.DEVNULL,
)
bpy.ops.wm.open_mainfile(filepath=out)
text = bpy.data.texts.new("hostile.py")
text.write(
    f"""
import json, socket
report = {{}}
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    report["socket"] = "connected"
except OSError as error:
    report["socket"] = repr(error)
try:
    report["secret"] = open({secret!r}).read()
except OSError as error:
    report["secret_error"] = repr(error)
try:
    open({outside!r}, "w").write("escaped")
    report["outside"] = "written"
except OSError as error:
    report["outside"] = repr(error)
open("report.json", "w").write(json.dumps(report))
"""
)
text.use_module = True
bpy.ops.wm.save_as_mainfile(filepath=out)
sys.stdout.flush()
os._exit(0)
