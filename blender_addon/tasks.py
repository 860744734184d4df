"""Long work off Blender's main thread. No bpy module use.

A ``Task`` runs a work function in a daemon thread; the function talks to the
main thread only by posting ``messages`` on one ``queue.SimpleQueue``. The main
thread drains the queue (from a ``bpy.app.timers`` callback) and applies what it
finds. ``TaskRunner.start(..., blocking=True)`` runs the same work in the calling
thread instead, which is what operators do in background mode.

Whatever a work function raises ends the task with one ``TaskFailed`` message:
an error in a thread never vanishes and never reaches Blender.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable

from . import defaults
from .errors import AddonError, Cancelled, FarmError, PackingError
from .messages import Message, Progress, TaskDone, TaskFailed
from .scene_packer import describe_problems


class TaskContext:
    """What a work function gets: a way to post messages and to see a stop request."""

    def __init__(self, task: str, outbox: queue.SimpleQueue, stop: threading.Event) -> None:
        self.task = task
        self.outbox = outbox
        self.stop = stop
        self._last_progress_s = 0.0

    def post(self, message: Message) -> None:
        self.outbox.put(message)

    def cancelled(self) -> bool:
        return self.stop.is_set()

    def check(self) -> None:
        """Raise ``Cancelled`` if a stop was requested."""
        if self.stop.is_set():
            raise Cancelled("stopped")

    def progress(self, text: str, fraction: float | None = None, *, force: bool = False) -> None:
        """Post progress, at most every ``PROGRESS_MESSAGE_INTERVAL_S`` unless forced."""
        now = time.monotonic()
        if (
            force
            or fraction is None
            or fraction >= 1.0
            or now - self._last_progress_s >= (defaults.PROGRESS_MESSAGE_INTERVAL_S)
        ):
            self._last_progress_s = now
            self.post(Progress(self.task, text, fraction))


Work = Callable[[TaskContext], None]


def problems_of(error: AddonError) -> tuple[str, ...]:
    """Lines naming what was at fault, from an error's detail (files, frames)."""
    if isinstance(error, PackingError):
        return tuple(describe_problems(error.problems))
    detail = error.detail if isinstance(error.detail, dict) else {}
    missing = detail.get("missing_files") or []
    if isinstance(error, FarmError) and missing:
        return tuple(
            f"{m.get('kind', 'file')} '{m.get('name', '')}' ({m.get('path', '')}): not packed"
            for m in missing
        )
    return ()


class Task:
    def __init__(self, name: str, work: Work, outbox: queue.SimpleQueue) -> None:
        self.name = name
        self.work = work
        self.stop = threading.Event()
        self.context = TaskContext(name, outbox, self.stop)
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        post = self.context.post
        try:
            self.work(self.context)
        except Cancelled as error:
            post(TaskFailed(self.name, error.message, error.reason))
        except AddonError as error:
            post(TaskFailed(self.name, error.message, error.reason, problems_of(error)))
        except Exception as error:  # a bug: report it with its traceback rather than lose it
            traceback.print_exc()
            post(
                TaskFailed(self.name, f"unexpected error: {type(error).__name__}: {error}", "INTERNAL_ERROR")
            )
        finally:
            post(TaskDone(self.name))


class TaskRunner:
    """The tasks in flight, by name (one at a time per name), and their outbox."""

    def __init__(self) -> None:
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.tasks: dict[str, Task] = {}

    def is_running(self, name: str) -> bool:
        return name in self.tasks

    @property
    def active(self) -> bool:
        return bool(self.tasks)

    def start(self, name: str, work: Work, *, blocking: bool) -> Task:
        """Start ``work`` as task ``name``; in the calling thread when ``blocking``."""
        if name in self.tasks:
            raise AddonError(f"{name} is already running", reason="BUSY")
        task = Task(name, work, self.outbox)
        self.tasks[name] = task
        if blocking:
            task.run()
        else:
            task.thread = threading.Thread(target=task.run, name=f"ronrender-{name}", daemon=True)
            task.thread.start()
        return task

    def drain(self) -> list[Message]:
        """Every message posted so far; finished tasks are forgotten."""
        messages: list[Message] = []
        while True:
            try:
                message = self.outbox.get_nowait()
            except queue.Empty:
                return messages
            if isinstance(message, TaskDone):
                self.tasks.pop(message.task, None)
            messages.append(message)

    def cancel(self, name: str) -> bool:
        task = self.tasks.get(name)
        if task is None:
            return False
        task.stop.set()
        return True

    def shutdown(self, join_timeout_s: float = 2.0) -> None:
        """Ask every task to stop, wait briefly for their threads, forget them all."""
        for task in self.tasks.values():
            task.stop.set()
        deadline = time.monotonic() + join_timeout_s
        for task in self.tasks.values():
            if task.thread is not None:
                task.thread.join(max(0.0, deadline - time.monotonic()))
        self.tasks.clear()
        self.drain()
