"""Calibrate the spot check on real Cycles renders: honest crops against honest full
frames (the false-reject rate), and honest crops against cheated uploads (the catch
rate per cheat: another frame, fewer samples, a shifted camera, an upscaled
low-resolution render).

Crops are rendered by the node's own render server code (``render_crop``), picked
by the backend's ``choose_crops`` and compared by ``crops_match``, exactly as on the farm.

Usage: .venv/bin/python scripts/spot_check_calibration.py [--frames 6] [--crops 3]
       [--width 320] [--height 240] [--samples 16] [--format PNG|OPEN_EXR]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from shared.image_checks import (  # noqa: E402
    ExpectedImage,
    choose_crops,
    crop_region,
    crops_match,
    load_pixels,
)


def _render_server() -> object:
    path = ROOT / "node_runner" / "blender_child" / "render_server.py"
    spec = importlib.util.spec_from_file_location("render_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--crops", type=int, default=3)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--format", default="PNG", choices=["PNG", "OPEN_EXR"])
    args = parser.parse_args()
    # Blender logs every render on stdout: keep the figures on a stdout of their own.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    server = _render_server()
    extension = ".png" if args.format == "PNG" else ".exr"
    folder = Path(tempfile.mkdtemp(prefix="spot-check-calibration-"))
    scene_path = folder / "scene.blend"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_sample_scene.py"), str(scene_path),
         "--frames", str(args.frames + 1), "--width", str(args.width), "--height", str(args.height),
         "--samples", str(args.samples), "--format", args.format],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    settings = {
        "scene_path": str(scene_path),
        "output_format": args.format,
        "engine": "CYCLES",
        "samples": args.samples,
        "resolution_percentage": 100,
        "threads": 0,
        "device": {"backend": "CPU"},
    }
    scene = server.open_scene(settings)  # type: ignore[attr-defined]
    width, height = args.width, args.height

    def full(frame: int, name: str) -> Path:
        scene.frame_set(frame)
        scene.render.filepath = str(folder / f"{name}{extension}")
        bpy.ops.render.render(write_still=True)
        return Path(scene.render.filepath)

    def expected(w: int, h: int) -> ExpectedImage:
        return ExpectedImage(output_format=args.format, width=w, height=h)

    cheats = ("another frame", "fewer samples (1/4)", "camera shifted 1 mm", "upscaled from 50 %")
    honest_checks = honest_rejects = 0
    caught = dict.fromkeys(cheats, 0)
    worst_honest = 0.0
    for frame in range(1, args.frames + 1):
        uploads = {
            "honest": full(frame, f"honest_{frame}"),
            "another frame": full(frame + 1, f"other_{frame}"),
        }
        scene.cycles.samples = max(1, args.samples // 4)
        uploads["fewer samples (1/4)"] = full(frame, f"low_{frame}")
        scene.cycles.samples = args.samples
        camera = scene.camera
        camera.location.x += 0.001
        uploads["camera shifted 1 mm"] = full(frame, f"shifted_{frame}")
        camera.location.x -= 0.001
        scene.render.resolution_percentage = 50
        small = full(frame, f"small_{frame}")
        scene.render.resolution_percentage = 100
        upscaled = folder / f"upscaled_{frame}{extension}"
        if args.format == "PNG":
            Image.open(small).resize((width, height), Image.Resampling.BILINEAR).save(upscaled)
            uploads["upscaled from 50 %"] = upscaled
        decoded = {name: load_pixels(str(path), expected(width, height)) for name, path in uploads.items()}
        crops = choose_crops(width, height, random.Random(frame), args.crops)
        crop_pixels = []
        for index, border in enumerate(crops):
            scene.frame_set(frame)
            scene.render.filepath = str(folder / f"crop_{frame}_{index}{extension}")
            server.render_crop(scene, border)  # type: ignore[attr-defined]
            rendered = load_pixels(scene.render.filepath, expected(width, height))
            crop_pixels.append(crop_region(rendered, width, height, border))
        for name, pixels in decoded.items():
            results = [
                crops_match(crop_region(pixels, width, height, border), crop)
                for border, crop in zip(crops, crop_pixels, strict=True)
            ]
            matched = all(ok for ok, _ in results)
            if name == "honest":
                honest_checks += 1
                honest_rejects += not matched
                worst_honest = max(worst_honest, max(diff for _, diff in results))
            else:
                caught[name] += not matched
    print(
        f"scene: {width}x{height}, Cycles CPU, {args.samples} samples, {args.format},"
        f" {args.frames} frames, {args.crops} crops of ~1 % each",
        file=out,
    )
    print(
        f"honest: {honest_rejects}/{honest_checks} rejected"
        f" (false-reject rate {honest_rejects / honest_checks:.0%}), max abs diff {worst_honest}",
        file=out,
    )
    for name in cheats:
        total = args.frames if (name != "upscaled from 50 %" or args.format == "PNG") else 0
        if total:
            print(f"cheat '{name}': caught {caught[name]}/{total} ({caught[name] / total:.0%})", file=out)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
