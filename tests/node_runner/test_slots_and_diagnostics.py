"""Pure planning and parsing: which slots a machine gets, how a failed render is
classified from real Blender output, and the status table an owner reads."""

from __future__ import annotations

import signal
import threading

import pytest

from node_runner.diagnostics import classify_failure, log_tail
from node_runner.hardware import GpuDevice
from node_runner.heartbeat import ActiveFrame, Heartbeat
from node_runner.progress import DownloadProgress
from node_runner.sandbox import ResourceLimits, Sandbox
from node_runner.slots import NoSlots, plan_slots
from node_runner.status import format_status
from shared.protocol import FrameAssignment, RenderSettings
from shared.render_progress import RenderProgress
from shared.states import RenderFailureKind as Kind

pytestmark = pytest.mark.unit

GIB = 1024**3
BUS = ["0000:01:00", "0000:21:00", "0000:41:00", "0000:61:00"]
FOUR_NVIDIA = [
    *(GpuDevice("NVIDIA RTX 4090", "CUDA", f"CUDA_NVIDIA RTX 4090_{bus}", 24 * GIB) for bus in BUS),
    *(GpuDevice("NVIDIA RTX 4090", "OPTIX", f"CUDA_NVIDIA RTX 4090_{bus}_OptiX", 24 * GIB) for bus in BUS),
]


def test_four_gpus_get_four_pinned_slots_and_the_cpu_one():
    slots = plan_slots(FOUR_NVIDIA, cpu_cores=16, memory_bytes=64 * GIB)
    gpus = [s for s in slots if s.device.backend != "CPU"]
    assert [s.device.backend for s in gpus] == ["OPTIX"] * 4  # one slot per card, not per backend
    assert [s.device.device_id for s in gpus] == [f"CUDA_NVIDIA RTX 4090_{bus}_OptiX" for bus in BUS]
    assert [s.to_json() for s in slots][-1] == {
        "name": "cpu0",
        "device_type": "CPU",
        "memory_bytes": 64 * GIB,
    }
    assert slots[-1].threads == 12  # a core per GPU slot stays free to feed its card
    assert slots[0].to_json() == {"name": "gpu0", "device_type": "GPU", "memory_bytes": 24 * GIB}


def test_owner_choices_shape_the_slots():
    assert len(plan_slots(FOUR_NVIDIA, cpu_cores=16, memory_bytes=GIB, allow_cpu_slot=False)) == 4
    picked = plan_slots(
        FOUR_NVIDIA, cpu_cores=16, memory_bytes=GIB, devices=[f"CUDA_NVIDIA RTX 4090_{BUS[2]}"]
    )
    assert [s.name for s in picked] == ["gpu0", "cpu0"] and BUS[2] in picked[0].device.device_id
    assert len(plan_slots(FOUR_NVIDIA, cpu_cores=16, memory_bytes=GIB, max_slots=3)) == 3
    cpu_only = plan_slots(FOUR_NVIDIA, cpu_cores=16, memory_bytes=GIB, use_gpus=False, cpu_slots=2)
    assert [(s.name, s.device.backend, s.threads) for s in cpu_only] == [
        ("cpu0", "CPU", 8),
        ("cpu1", "CPU", 8),
    ]


def test_no_gpu_means_cpu_slots_through_the_same_path():
    slots = plan_slots([], cpu_cores=2, memory_bytes=GIB, cpu_slots=2, threads=1)
    assert [(s.name, s.device_type.value, s.threads) for s in slots] == [
        ("cpu0", "CPU", 1),
        ("cpu1", "CPU", 1),
    ]
    with pytest.raises(NoSlots):
        plan_slots([], cpu_cores=2, memory_bytes=GIB, allow_cpu_slot=False)


# Real lines, as Blender 4.5 and its Cycles devices print them.
CASES = [
    (None, "max_time", "Fra:1 Mem:8.5M | Scene, ViewLayer | Sample 3/4000", Kind.TIMEOUT),
    (None, "no_output", "", Kind.TIMEOUT),
    (
        -signal.SIGABRT,
        None,
        "Fra:1 Mem:8.30M (Peak 8.39M) | Scene, ViewLayer | Rendered 0/100 Tiles, Sample 0/1\n"
        "Malloc returns null: len=318767104 in Cycles Alloc, total 328743688\n"
        "terminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc",
        Kind.OUT_OF_MEMORY,
    ),
    (
        0,
        None,
        "CUDA error: Out of memory in cuMemAlloc(&device_pointer, size), line 568\n"
        "RonRender: System is out of GPU memory",
        Kind.OUT_OF_MEMORY,
    ),
    (-signal.SIGKILL, None, "Fra:1 Mem:12000.1M | Scene, ViewLayer | Sample 1/16", Kind.OUT_OF_MEMORY),
    (
        0,
        None,
        "CUDA binary kernel for this graphics card compute capability (12.0) not found.\n"
        "RonRender: render failed",
        Kind.MISSING_GPU_KERNEL,
    ),
    (1, None, "RuntimeError: Cycles does not see device CUDA_X_0000:01:00 (CUDA)", Kind.MISSING_GPU_KERNEL),
    (-signal.SIGSEGV, None, "Fra:1 Mem:8.5M | Scene, ViewLayer | Sample 1/16", Kind.CRASH),
    (139, None, "Segmentation fault (core dumped)", Kind.CRASH),
    (-signal.SIGXFSZ, None, "Fra:1 | Finished", Kind.SANDBOX),
    (0, None, "Error writing frame: File too large", Kind.SANDBOX),
    (1, None, "bwrap: Can't mount proc on /newroot/proc: Operation not permitted", Kind.SANDBOX),
    (
        0,
        None,
        "RonRender: the scene carries scripts; they were not run\nRonRender: render failed",
        Kind.SCRIPTS_REFUSED,
    ),
    (
        1,
        None,
        "Traceback (most recent call last):\n"
        "RuntimeError: Error: Cannot read file '/x.blend': File ended too soon",
        Kind.OTHER,
    ),
]


@pytest.mark.parametrize(("exit_code", "stopped", "log", "kind"), CASES)
def test_failures_are_classified_from_exit_and_log(exit_code, stopped, log, kind):
    diagnosis = classify_failure(exit_code, stopped, log, time_limit_s=60)
    assert diagnosis.kind == kind
    assert diagnosis.reason.startswith(f"{kind.value}: ")
    assert "\n" not in diagnosis.reason and len(diagnosis.reason) <= 2000


def test_the_reported_log_tail_fits_the_backend():
    log = "x" * 50_000 + "the end"
    assert len(log_tail(log)) == 20_000 and log_tail(log).endswith("the end")


def test_status_table_shows_slots_today_and_reputation():
    status = {
        "node_id": "n1", "name": "box", "backend_url": "http://farm", "pid": 0, "running": False,
        "updated_at": "2026-11-25T10:00:00+00:00", "control": "PAUSED", "sandboxed": True,
        "benchmark_ms": 105,
        "today": {"date": "2026-11-25", "uploaded": 7, "failed": {"OUT_OF_MEMORY": 2}, "blocked": 1},
        "slots": [
            {"name": "cpu0", "device": "CPU", "state": "rendering", "job_id": "job-abc", "frame": 3,
             "progress": 0.5, "detail": "Sample 8/16", "waiting": None},
            {"name": "cpu1", "device": "CPU", "state": "waiting", "job_id": None, "frame": None,
             "progress": 0.0, "detail": "", "waiting": "paused by the owner"},
        ],
    }  # fmt: skip
    node = {"reputation": 0.93, "state": "ONLINE", "frames_verified": 40, "frames_rejected": 1}
    table = format_status(status, node, None)
    assert "job-abc / 3" in table and "[##########----------]  50%" in table
    assert "paused by the owner" in table
    assert "7 frames uploaded, 2 failed (OUT_OF_MEMORY: 2)" in table
    assert "reputation 0.93" in table and "frames verified 40, rejected 1" in table
    assert "unreachable (boom)" in format_status(status, None, "boom")


class RecordingClient:
    def __init__(self, abandon: list[int]) -> None:
        self.abandon = abandon
        self.sent: list[list[dict]] = []

    def heartbeat(self, node_id, slots):
        self.sent.append([slot.to_json() for slot in slots])
        return self.abandon


def test_one_heartbeat_carries_every_slot_and_cancels_only_the_withdrawn_frame():
    frames = [ActiveFrame(assignment(attempt_id)) for attempt_id in (11, 12)]
    frames[0].update(RenderProgress(frame=1, fraction=0.5, detail="Sample 8/16"))
    client = RecordingClient(abandon=[12])
    Heartbeat(client, "node", 15.0, threading.Event(), lambda: frames).beat()
    assert [(s["attempt_id"], s["progress"]) for s in client.sent[0]] == [(11, 0.5), (12, 0.0)]
    assert not frames[0].cancel.is_set() and frames[1].cancel.is_set()


def test_download_progress_writes_plain_lines_in_a_log(caplog):
    progress = DownloadProgress(terminal=False)
    with caplog.at_level("INFO"):
        for done in range(0, 1001, 100):
            progress("ab" * 32, done, 1000)
    assert [r.getMessage().split(": ")[1].split("%")[0] for r in caplog.records] == ["30", "50", "80", "100"]


def assignment(attempt_id: int) -> FrameAssignment:
    settings = RenderSettings("PNG", "CYCLES", 4, 100, 64, 36)
    return FrameAssignment(attempt_id, "token", "job", 1, "a" * 64, 1, settings, 60)


def test_the_sandbox_command_hides_the_node_and_limits_the_child(tmp_path):
    work, keys = tmp_path / "node", tmp_path / "keys"
    job = work / "slots" / "cpu0"
    scene = work / "scenes" / "abc.blend"
    for folder in (job, keys, scene.parent):
        folder.mkdir(parents=True)
    scene.write_bytes(b"BLENDER")
    argv = Sandbox("/usr/bin/bwrap", (work, keys)).wrap(
        ["python", "render_server.py"], writable=job, needed=[scene]
    )
    joined = " ".join(argv)
    assert f"--tmpfs {work} " in joined and f"--tmpfs {keys} " in joined  # hidden first...
    assert f"--ro-bind {scene} {scene}" in joined  # ...then what the child needs, read-only
    assert f"--bind {job} {job}" in joined and joined.index(f"--tmpfs {work}") < joined.index(f"--bind {job}")
    assert {"--unshare-all", "--die-with-parent", "--new-session"} <= set(argv)
    assert argv[-3:] == ["--", "python", "render_server.py"]
    limited = ResourceLimits(memory_bytes=2 * GIB, output_bytes=GIB).wrap(argv)
    assert limited[1:4] == [f"--as={2 * GIB}", f"--fsize={GIB}", "--"] and limited[4:] == argv
    assert ResourceLimits().wrap(argv) == argv


def test_status_table_shows_earnings_when_the_backend_reports_them():
    status = {"name": "box", "pid": 0, "slots": [], "today": {"date": "2026-11-25"}}
    earnings = {
        "released_wei": str(3 * 10**17), "pending_wei": str(10**17), "frames_paid": 3, "frames_pending": 1,
        "by_day": [{"date": "2026-11-24", "wei": str(10**17), "frames": 1},
                   {"date": "2026-11-25", "wei": str(2 * 10**17), "frames": 2}],
    }  # fmt: skip
    table = format_status(status, {"reputation": 1.0, "earnings": earnings}, None)
    assert "earned: 0.300000 RON confirmed on chain (3 frames), 0.100000 RON pending (1 frames)" in table
    assert "paid today: 0.200000 RON for 2 frames" in table
