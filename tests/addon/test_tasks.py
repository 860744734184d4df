"""Work off the main thread without Blender: messages through the queue, errors
as TaskFailed, stop requests, blocking runs; the job book; pulls that download
only what is new."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from ronrender_addon import defaults
from ronrender_addon.errors import AddonError, FarmError, PackingError
from ronrender_addon.farm_client import FarmClient
from ronrender_addon.flows import pull_work
from ronrender_addon.job_book import JobBook
from ronrender_addon.messages import FramesPulled, JobUpdated, Progress, TaskDone, TaskFailed
from ronrender_addon.tasks import TaskRunner

from tests.addon.http_stub import Canned, canned_json

pytestmark = pytest.mark.addon


def drain_until_done(runner: TaskRunner, timeout_s: float = 10) -> list:
    """What the timer on the main thread would see, until the runner is idle."""
    messages: list = []
    deadline = time.monotonic() + timeout_s
    while runner.active and time.monotonic() < deadline:
        messages += runner.drain()
        time.sleep(0.01)
    assert not runner.active
    return messages


def test_a_task_runs_in_a_thread_and_talks_through_messages():
    runner = TaskRunner()
    main_thread = threading.get_ident()
    threads = []

    def work(context):
        threads.append(threading.get_ident())
        context.progress("half", 0.5, force=True)

    runner.start("scene", work, blocking=False)
    messages = drain_until_done(runner)
    assert threads and threads[0] != main_thread
    assert messages == [Progress("scene", "half", 0.5), TaskDone("scene")]


def test_errors_end_the_task_with_one_failure_message(capsys):
    runner = TaskRunner()

    def bug(_context):
        raise KeyError("oops")

    def refused(_context):
        raise FarmError(
            "frame range 1-9 is outside the scene", reason="FRAME_RANGE_OUTSIDE_SCENE", status=422
        )

    def unpackable(_context):
        raise PackingError(
            "1 file(s)", [{"kind": "image", "name": "a", "path": "//a.png", "why": "not found"}]
        )

    runner.start("bug", bug, blocking=False)
    runner.start("refused", refused, blocking=False)
    runner.start("unpackable", unpackable, blocking=False)
    failures = {m.task: m for m in drain_until_done(runner) if isinstance(m, TaskFailed)}
    assert failures["bug"].reason == "INTERNAL_ERROR" and "KeyError" in failures["bug"].message
    assert "Traceback" in capsys.readouterr().err
    assert failures["refused"].reason == "FRAME_RANGE_OUTSIDE_SCENE"
    assert failures["unpackable"].problems == ("image 'a' (//a.png): not found",)


def test_a_stop_request_reaches_the_work():
    runner = TaskRunner()
    started = threading.Event()

    def work(context):
        started.set()
        while True:
            context.check()
            time.sleep(0.01)

    runner.start("scene", work, blocking=False)
    started.wait(5)
    assert runner.cancel("scene")
    (failure,) = [m for m in drain_until_done(runner) if isinstance(m, TaskFailed)]
    assert failure.reason == "CANCELLED"


def test_one_task_per_name_and_blocking_runs_in_place():
    runner = TaskRunner()
    where = []
    runner.start("scene", lambda context: where.append(threading.get_ident()), blocking=True)
    assert where == [threading.get_ident()]
    assert [type(m) for m in runner.drain()] == [TaskDone]
    gate = threading.Event()
    runner.start("scene", lambda context: gate.wait(5), blocking=False)
    with pytest.raises(AddonError) as raised:
        runner.start("scene", lambda context: None, blocking=False)
    assert raised.value.reason == "BUSY"
    gate.set()
    drain_until_done(runner)


def test_shutdown_stops_and_forgets_every_task():
    runner = TaskRunner()
    runner.start("a", lambda context: context.stop.wait(5), blocking=False)
    runner.shutdown()
    assert not runner.active
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "ronrender-a"]


def test_the_job_book_remembers_jobs_per_farm(tmp_path):
    book = JobBook(tmp_path / "user" / "jobs.json")
    assert book.entries() == []
    book.add("job-1", "http://farm-a/", "/p/a.blend", "Scene")
    book.add("job-2", "http://farm-b", "/p/b.blend", "Scene")
    book.add("job-3", "http://farm-a", "/p/a.blend", "Scene")
    assert book.job_ids("http://farm-a") == ["job-3", "job-1"]
    book.forget("job-3")
    assert JobBook(book.path).job_ids("http://farm-a/") == ["job-1"]
    book.path.write_text("{not json")
    assert book.entries() == []


def test_the_job_book_keeps_the_newest_jobs(tmp_path, monkeypatch):
    monkeypatch.setattr(defaults, "JOB_BOOK_MAX_JOBS", 3)
    book = JobBook(tmp_path / "jobs.json")
    for number in range(5):
        book.add(f"job-{number}", "http://farm", "", "")
    assert book.job_ids("http://farm") == ["job-4", "job-3", "job-2"]


def test_pulling_twice_downloads_only_new_frames(http_stub, tmp_path):
    frames = {n: f"frame {n} pixels".encode() for n in (1, 2, 3)}
    sha = {n: hashlib.sha256(data).hexdigest() for n, data in frames.items()}
    job = {"id": "j1", "state": "RENDERING", "frame_start": 1, "frame_end": 3, "output_format": "PNG"}
    job["frame_counts"] = {"VERIFIED": 2}

    def frame(n, state):
        verified = state == "VERIFIED"
        return {
            "number": n,
            "state": state,
            "output_sha256": sha[n] if verified else None,
            "last_rejection": None,
        }

    http_stub.on("GET", "/api/v1/jobs/j1", canned_json(200, job))
    http_stub.on(
        "GET",
        "/api/v1/jobs/j1/frames",
        canned_json(200, {"frames": [frame(1, "VERIFIED"), frame(2, "VERIFIED"), frame(3, "RENDERING")]}),
        canned_json(200, {"frames": [frame(1, "VERIFIED"), frame(2, "VERIFIED"), frame(3, "VERIFIED")]}),
    )
    for n, data in frames.items():
        http_stub.on("GET", f"/api/v1/jobs/j1/frames/{n}/output", Canned(200, data, "image/png"))
    runner = TaskRunner()
    client = FarmClient(http_stub.url)
    pulled = []
    for _ in range(2):
        runner.start("pull:j1", pull_work(client, "j1", tmp_path / "j1"), blocking=True)
        messages = runner.drain()
        assert not [m for m in messages if isinstance(m, TaskFailed)], messages
        assert any(isinstance(m, JobUpdated) for m in messages)
        pulled += [m for m in messages if isinstance(m, FramesPulled)]
    first, second = pulled
    assert (len(first.files), first.downloaded) == (2, 2)
    assert (len(second.files), second.downloaded) == (3, 1)
    assert [p.rsplit("/", 1)[-1] for p in second.files] == [
        "frame_00001.png",
        "frame_00002.png",
        "frame_00003.png",
    ]
    assert (tmp_path / "j1" / "frame_00003.png").read_bytes() == frames[3]
    assert len(http_stub.seen("GET", "/api/v1/jobs/j1/frames/1/output")) == 1
