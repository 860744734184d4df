"""What this machine offers: CPU cores, memory, and what Blender's Cycles sees."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.protocol import NodeHardware
from shared.supervised_process import run_supervised

PROBE_SCRIPT = Path(__file__).resolve().parent / "blender_child" / "probe_devices.py"
PROBE_PREFIX = "RONRENDER_PROBE "
PROBE_TIME_LIMIT_S = 120.0
NVIDIA_SMI_TIME_LIMIT_S = 20.0
REGISTERED_GPU_KEYS = ("name", "backend", "memory_bytes")  # what the backend's GpuIn takes


class ProbeFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class GpuDevice:
    """A GPU as Cycles names it: its backend and its device id, which a slot is pinned by."""

    name: str
    backend: str
    device_id: str
    memory_bytes: int = 0


@dataclass(frozen=True)
class Machine:
    hardware: NodeHardware
    gpus: list[GpuDevice] = field(default_factory=list)


def memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def detect_machine(blender_python: str) -> Machine:
    """Ask a Blender child for its version and the GPUs Cycles can use."""
    found: list[dict[str, Any]] = []

    def on_line(line: str) -> None:
        if line.startswith(PROBE_PREFIX):
            found.append(json.loads(line[len(PROBE_PREFIX) :]))

    result = run_supervised(
        [blender_python, str(PROBE_SCRIPT)], on_line=on_line, max_time_s=PROBE_TIME_LIMIT_S
    )
    if not found:
        raise ProbeFailed(f"Blender could not be started to probe devices:\n{result.log_tail}")
    probe = found[0]
    memory_by_bus = nvidia_memory_by_bus_id()
    gpus = [
        GpuDevice(
            name=str(gpu["name"]),
            backend=str(gpu["backend"]),
            device_id=str(gpu.get("id", gpu["name"])),
            memory_bytes=int(gpu.get("memory_bytes") or _memory_for(str(gpu.get("id", "")), memory_by_bus)),
        )
        for gpu in probe["gpus"]
    ]
    hardware = NodeHardware(
        cpu_cores=os.cpu_count() or 1,
        memory_bytes=memory_bytes(),
        blender_version=str(probe["blender_version"]),
        gpus=[{"name": g.name, "backend": g.backend, "memory_bytes": g.memory_bytes} for g in gpus],
    )
    return Machine(hardware, gpus)


def detect_hardware(blender_python: str) -> NodeHardware:
    return detect_machine(blender_python).hardware


def nvidia_memory_by_bus_id() -> dict[str, int]:
    """GPU memory by PCI "bus:device" from nvidia-smi; Cycles does not tell it. Empty without NVIDIA."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {}
    try:
        out = subprocess.run(
            [smi, "--query-gpu=pci.bus_id,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIME_LIMIT_S,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    memory: dict[str, int] = {}
    for line in out.splitlines():
        bus_id, _, mib = line.partition(",")
        match = re.search(r"([0-9a-fA-F]{2}:[0-9a-fA-F]{2})\.\d$", bus_id.strip())
        if match and mib.strip().isdigit():
            memory[match.group(1).lower()] = int(mib.strip()) * 1024 * 1024
    return memory


def _memory_for(device_id: str, memory_by_bus: dict[str, int]) -> int:
    """Cycles' CUDA/OptiX ids end with the PCI id, e.g. "CUDA_NVIDIA H100_0000:01:00"."""
    lowered = device_id.lower()
    return next((mib for bus, mib in memory_by_bus.items() if f":{bus}" in lowered), 0)
