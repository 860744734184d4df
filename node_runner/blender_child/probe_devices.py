"""Blender child: print, as one JSON line, Blender's version and the compute
devices Cycles sees on this machine.

Usage: python probe_devices.py
"""

from __future__ import annotations

import json
import sys

import bpy

GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")


def probe() -> dict[str, object]:
    gpus = []
    preferences = bpy.context.preferences.addons["cycles"].preferences
    for backend in GPU_BACKENDS:
        try:
            preferences.compute_device_type = backend
        except TypeError:
            continue  # this build of Blender has no such backend
        preferences.refresh_devices()
        for device in preferences.devices:
            if device.type == backend:
                # The id names the card (CUDA ids carry the PCI bus id); a slot is pinned by it.
                gpus.append({"name": device.name, "backend": backend, "id": device.id, "memory_bytes": 0})
    return {"blender_version": bpy.app.version_string, "gpus": gpus}


if __name__ == "__main__":
    print("RONRENDER_PROBE " + json.dumps(probe()), flush=True)
    sys.exit(0)
