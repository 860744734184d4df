"""The add-on's life on Blender's main thread: the session, the tasks in flight,
the timer that applies their messages, the timer that follows unfinished jobs,
and the handler that resets things when another file is opened.

Worker threads never touch bpy; everything here runs on the main thread. In
background mode no timer ever fires, so ``start`` runs the work in place and
applies its messages at once (STYLE habit 9).
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.app.handlers import persistent

from . import defaults, frames_loader
from .errors import AddonError, OnlineAccessDisabled
from .farm_client import FarmClient
from .job_book import JobBook
from .messages import FramesPulled, JobAccepted, Message, TaskFailed
from .online import OFFLINE_MESSAGE, online_allowed
from .preferences import get_preferences
from .session import REFRESH_TASK, SCENE_TASK, Report, Session
from .tasks import TaskRunner, Work
from .wallet_signing import KEYSTORE_ENV, KeystoreSigner, keystore_address, signer_from

AUTO_REFRESH_TASK = "auto-refresh"

session = Session()
runner = TaskRunner()


def blocking() -> bool:
    """Background mode runs work in place: there is no event loop for timers."""
    return bool(bpy.app.background)


def require_online() -> None:
    app = bpy.app
    if not online_allowed(app.online_access, app.background, app.online_access_override):
        raise OnlineAccessDisabled(OFFLINE_MESSAGE)


def farm_client(context: bpy.types.Context | None = None) -> FarmClient:
    prefs = get_preferences(context)
    return FarmClient(prefs.backend_url, token=prefs.api_token)


def keystore_path(context: bpy.types.Context | None = None) -> str:
    path = get_preferences(context).wallet_keystore.strip()
    return bpy.path.abspath(path) if path else ""


def wallet_address(context: bpy.types.Context | None = None) -> str:
    """The artist's address: the keystore's, else the one typed in the preferences."""
    keystore = keystore_path(context) or os.environ.get(KEYSTORE_ENV, "")
    if keystore:
        address = keystore_address(Path(keystore).expanduser())
        if address:
            return address
    return get_preferences(context).wallet_address.strip()


def signer(password: str, context: bpy.types.Context | None = None) -> KeystoreSigner | None:
    return signer_from(keystore_path(context), password)


def job_book() -> JobBook:
    try:
        folder = bpy.utils.extension_path_user(__package__, create=True)
    except ValueError:  # loaded as a legacy add-on, not as an extension
        folder = bpy.utils.user_resource("CONFIG", path="ronrender", create=True)
    return JobBook(Path(folder) / "jobs.json")


def start(name: str, work: Work) -> list[Report]:
    """Start a task; in background mode it has run when this returns, and the
    reports of its messages are returned."""
    task_blocking = blocking()
    runner.start(name, work, blocking=task_blocking)
    if task_blocking:
        return pump_once()
    if not bpy.app.timers.is_registered(_pump_timer):
        bpy.app.timers.register(_pump_timer, first_interval=defaults.PUMP_INTERVAL_S, persistent=True)
    mirror()
    return []


def pump_once() -> list[Report]:
    """Apply every message posted so far; returns what the artist is told."""
    reports = []
    for message in runner.drain():
        report = session.apply(message)
        failure = _apply_to_blender(message)
        if failure is not None:
            session.last_report = report = failure
        if report is not None and not (message.task == AUTO_REFRESH_TASK and isinstance(message, TaskFailed)):
            reports.append(report)
    mirror()
    return reports


def _apply_to_blender(message: Message) -> Report | None:
    """The Blender side of a message; a failure here is reported, never raised into a timer."""
    try:
        if isinstance(message, JobAccepted):
            blend_path = bpy.data.filepath
            scene_name = bpy.context.scene.name if bpy.context.scene else ""
            job_book().add(message.job["id"], get_preferences().backend_url, blend_path, scene_name)
        elif isinstance(message, FramesPulled):
            frames_loader.show_frames(message)
    except (RuntimeError, OSError) as error:
        return Report("ERROR", f"could not apply {type(message).__name__}: {error}")
    return None


def _pump_timer() -> float | None:
    """The timer that applies the tasks' messages while any task is in flight."""
    for report in pump_once():
        tell(report)
    _tag_redraw()
    return defaults.PUMP_INTERVAL_S if runner.active else None


def tell(report: Report) -> None:
    """Show a report outside an operator: in the status bar and the Info log."""
    text = report.text + "".join(f"\n  {problem}" for problem in report.problems)
    print(f"RonRender {report.level}: {text}")
    try:
        bpy.ops.ronrender.report(level=report.level, message=text)
    except RuntimeError:
        pass  # an ERROR report also raises in the caller; it has been shown


def _refresh_timer() -> float:
    """Follow unfinished jobs in the background, every ``JOB_REFRESH_INTERVAL_S``."""
    job_ids = session.unfinished_job_ids()
    if job_ids and not runner.is_running(AUTO_REFRESH_TASK) and not runner.is_running(REFRESH_TASK):
        try:
            require_online()
            from .flows import refresh_work

            start(AUTO_REFRESH_TASK, refresh_work(farm_client(), job_ids))
        except AddonError:
            pass  # offline or a bad URL: the panel says so; nothing to follow now
    return defaults.JOB_REFRESH_INTERVAL_S


def current_request() -> dict | None:
    scene = bpy.context.scene
    if scene is None:
        return None
    try:
        return scene.ronrender.request(scene)
    except AddonError:
        return None


def mirror() -> None:
    """Copy the session into the window manager's properties for the panel."""
    wm = bpy.context.window_manager
    if wm is not None and hasattr(wm, "ronrender"):
        wm.ronrender.mirror(session, current_request(), set(runner.tasks))


def _tag_redraw() -> None:
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "IMAGE_EDITOR", "PREFERENCES"}:
                area.tag_redraw()


def load_jobs_from_book(*, replace: bool = False) -> None:
    """Show the jobs this artist submitted to the configured farm (only those with ``replace``)."""
    try:
        backend_url = get_preferences().backend_url
    except KeyError:
        return
    if replace:
        for job_id in list(session.job_ids):
            session.forget(job_id)
        session.estimate = None
    for job_id in job_book().job_ids(backend_url):
        session.track(job_id, first=False)
    mirror()


# Data-blocks whose changes do not change what the farm renders.
NOT_RENDERED_ID_TYPES = (bpy.types.WindowManager, bpy.types.Screen, bpy.types.WorkSpace)


@persistent
def _on_depsgraph_update(_scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph) -> None:
    """An edit of the scene makes the estimate on screen stale: Submit estimates again."""
    if any(not isinstance(update.id, NOT_RENDERED_ID_TYPES) for update in depsgraph.updates):
        if session.scene_changed():
            mirror()


@persistent
def _on_load_post(_filepath: str) -> None:
    """Another file is open: its settings differ, so the estimate no longer applies."""
    runner.cancel(SCENE_TASK)
    session.estimate = None
    mirror()


def register_runtime() -> None:
    load_jobs_from_book()
    bpy.app.handlers.load_post.append(_on_load_post)
    bpy.app.handlers.depsgraph_update_post.append(_on_depsgraph_update)
    bpy.app.timers.register(_refresh_timer, first_interval=1.0, persistent=True)
    mirror()


def unregister_runtime() -> None:
    """Stop every task and timer and drop the session: nothing stays behind."""
    for timer in (_pump_timer, _refresh_timer):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    if _on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load_post)
    if _on_depsgraph_update in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(_on_depsgraph_update)
    runner.shutdown()
    session.reset()
