"""Which render slots a node runs: one per GPU Cycles sees (pinned to it), plus the
CPU as a slot of its own when the owner allows; with no GPU, ``cpu_slots`` CPU
slots share the cores. Pure planning, tested without Blender."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node_runner.hardware import GpuDevice
from node_runner.render import CPU_DEVICE, RenderDevice
from shared.states import DeviceType

# OptiX and CUDA list the same NVIDIA card twice; OptiX renders it faster.
OPTIX_SUFFIX = "_OptiX"


class NoSlots(RuntimeError):
    """The owner's settings leave nothing to render with."""


@dataclass(frozen=True)
class SlotSpec:
    name: str
    device: RenderDevice
    memory_bytes: int  # the GPU's memory; for the CPU slot, the machine's
    threads: int  # render threads (CPU slots); 0 lets Blender choose

    @property
    def device_type(self) -> DeviceType:
        return DeviceType.CPU if self.device.backend == "CPU" else DeviceType.GPU

    def to_json(self) -> dict[str, Any]:
        """As registered with the backend (NodeRegisterIn.slots)."""
        return {"name": self.name, "device_type": self.device_type.value, "memory_bytes": self.memory_bytes}


def distinct_gpus(gpus: Sequence[GpuDevice]) -> list[GpuDevice]:
    """One entry per physical card: OptiX wins over CUDA for the same card."""
    chosen: dict[str, GpuDevice] = {}
    for gpu in gpus:
        card = gpu.device_id.removesuffix(OPTIX_SUFFIX)
        if card not in chosen or gpu.backend == "OPTIX":
            chosen[card] = gpu
    return list(chosen.values())


def plan_slots(
    gpus: Sequence[GpuDevice],
    *,
    cpu_cores: int,
    memory_bytes: int,
    use_gpus: bool = True,
    devices: Sequence[str] = (),
    allow_cpu_slot: bool = True,
    cpu_slots: int = 1,
    threads: int = 0,
    max_slots: int = 0,
) -> list[SlotSpec]:
    chosen = distinct_gpus(gpus) if use_gpus else []
    if devices:
        wanted = set(devices)
        chosen = [
            g for g in chosen if g.device_id in wanted or g.device_id.removesuffix(OPTIX_SUFFIX) in wanted
        ]
    slots = [
        SlotSpec(f"gpu{index}", RenderDevice(gpu.backend, gpu.device_id), gpu.memory_bytes, 0)
        for index, gpu in enumerate(chosen)
    ]
    if max_slots:
        slots = slots[:max_slots]
    if allow_cpu_slot:
        cpu_count = 1 if slots else max(1, cpu_slots)
        if max_slots:
            cpu_count = min(cpu_count, max_slots - len(slots))
        # Each GPU slot keeps one core busy feeding its card; the CPU slots share the rest.
        spare_cores = max(1, cpu_cores - len(slots))
        per_slot = threads or max(1, spare_cores // max(cpu_count, 1))
        slots += [SlotSpec(f"cpu{index}", CPU_DEVICE, memory_bytes, per_slot) for index in range(cpu_count)]
    if not slots:
        raise NoSlots("no render slot: no GPU selected and the CPU slot is not allowed (allow_cpu_slot)")
    return slots
