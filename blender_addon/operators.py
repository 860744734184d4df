"""Operators: thin wrappers that read the settings on the main thread, start the
work of ``flows`` as a task and report. In background mode each runs to the end
before returning, so scripts and tests can call them and read their reports."""

from __future__ import annotations

import os
from pathlib import Path

import bpy

from . import flows, runtime
from .errors import AddonError
from .job_model import format_ron
from .packing import prepare_pack, unsaved_images
from .session import REFRESH_TASK, SCENE_TASK, WALLET_TASK, accept_task, cancel_task, pull_task
from .tasks import Work
from .wallet_signing import PASSWORD_ENV


def _start(operator: bpy.types.Operator, name: str, work: Work, started: str) -> set[str]:
    """Start the task; report how it went (background mode) or that it started."""
    try:
        reports = runtime.start(name, work)
    except AddonError as error:
        operator.report({"ERROR"}, str(error))
        return {"CANCELLED"}
    if not runtime.blocking():
        operator.report({"INFO"}, started)
        return {"FINISHED"}
    failed = False
    for report in reports:
        text = report.text + "".join(f"\n  {problem}" for problem in report.problems)
        operator.report({report.level}, text)
        failed = failed or report.level in {"ERROR", "WARNING"}
    return {"CANCELLED"} if failed else {"FINISHED"}


def _job_id_or_latest(job_id: str) -> str:
    if job_id:
        return job_id
    if runtime.session.job_ids:
        return runtime.session.job_ids[0]
    raise AddonError("no job to act on: submit one first", reason="NO_JOB")


class RONRENDER_OT_estimate(bpy.types.Operator):
    """Pack the scene into one file, upload it and ask the farm for a price"""

    bl_idname = "ronrender.estimate"
    bl_label = "Estimate"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and not runtime.runner.is_running(SCENE_TASK)

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            runtime.require_online()
            request = context.scene.ronrender.request(context.scene, context)
            client = runtime.farm_client(context)
            _warn_unsaved_images(self)
            plan = prepare_pack()
        except AddonError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        revision = runtime.session.scene_revision
        work = flows.estimate_work(client, plan, request, revision, runtime.wallet_address(context))
        return _start(self, SCENE_TASK, work, "Estimating: packing the scene…")


PASSWORD_DESCRIPTION = "The wallet keystore's password (not stored; or $RONRENDER_KEYSTORE_PASSWORD)"


class _SignsAcceptance:
    """Operators that accept an estimate: they ask for the keystore's password
    when a keystore is set and ``RONRENDER_KEYSTORE_PASSWORD`` is not."""

    password: bpy.props.StringProperty(
        name="Keystore Password", subtype="PASSWORD", options={"SKIP_SAVE"}, description=PASSWORD_DESCRIPTION
    )

    def confirmation(self, context: bpy.types.Context) -> str:
        raise NotImplementedError

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        return context.window_manager.invoke_props_dialog(self, width=420, confirm_text=self.bl_label)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        for line in self.confirmation(context).splitlines():
            layout.label(text=line)
        if runtime.keystore_path(context) and not os.environ.get(PASSWORD_ENV):
            layout.prop(self, "password")


class RONRENDER_OT_submit_job(_SignsAcceptance, bpy.types.Operator):
    """Accept the estimate and render on the farm (estimating first if the settings changed)"""

    bl_idname = "ronrender.submit_job"
    bl_label = "Submit Render"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and not runtime.runner.is_running(SCENE_TASK)

    def confirmation(self, context: bpy.types.Context) -> str:
        estimate = runtime.session.estimate_for(runtime.current_request() or {})
        if estimate is None:
            return (
                "There is no estimate for these settings yet.\nEstimate and lock it without seeing it first?"
            )
        total = format_ron(estimate.job.estimate_wei)
        return f"Lock {total} and render {estimate.job.frames_total} frames?"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            runtime.require_online()
            request = context.scene.ronrender.request(context.scene, context)
            client = runtime.farm_client(context)
            signer = runtime.signer(self.password, context)
            estimate = runtime.session.estimate_for(request)
            plan = None
            if estimate is None:
                _warn_unsaved_images(self)
                plan = prepare_pack()
        except AddonError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        shown = estimate.job if estimate else None
        work = flows.submit_work(client, plan, request, shown, signer, runtime.session.scene_revision)
        return _start(self, SCENE_TASK, work, "Submitting to RonRender…")


class RONRENDER_OT_accept_job(_SignsAcceptance, bpy.types.Operator):
    """Accept a listed job's estimate again (after its lock was refused and you deposited)"""

    bl_idname = "ronrender.accept_job"
    bl_label = "Accept Job"

    job_id: bpy.props.StringProperty(name="Job", options={"SKIP_SAVE"})

    def confirmation(self, context: bpy.types.Context) -> str:
        view = runtime.session.jobs.get(self.job_id)
        total = format_ron(view.estimate_wei) if view else "its estimate"
        return f"Lock {total} for job {self.job_id[:8]} and render it?"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            runtime.require_online()
            job_id = _job_id_or_latest(self.job_id)
            client = runtime.farm_client(context)
            signer = runtime.signer(self.password, context)
        except AddonError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        work = flows.accept_work(client, job_id, runtime.session.jobs.get(job_id), signer)
        return _start(self, accept_task(job_id), work, f"Accepting job {job_id[:8]}…")


class RONRENDER_OT_check_balance(bpy.types.Operator):
    """Ask the farm for your wallet's escrow balance"""

    bl_idname = "ronrender.check_balance"
    bl_label = "Check Balance"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            runtime.require_online()
            client = runtime.farm_client(context)
            address = runtime.wallet_address(context)
            if not address:
                raise AddonError("set your wallet keystore or address first", reason="NO_WALLET")
        except AddonError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        return _start(self, WALLET_TASK, flows.balance_work(client, address), "Checking your balance…")


class RONRENDER_OT_stop(bpy.types.Operator):
    """Stop packing or uploading the scene"""

    bl_idname = "ronrender.stop"
    bl_label = "Stop"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return runtime.runner.is_running(SCENE_TASK)

    def execute(self, context: bpy.types.Context) -> set[str]:
        runtime.runner.cancel(SCENE_TASK)
        return {"FINISHED"}


class RONRENDER_OT_refresh_jobs(bpy.types.Operator):
    """Ask the farm how the jobs in the list are doing"""

    bl_idname = "ronrender.refresh_jobs"
    bl_label = "Refresh Jobs"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not runtime.runner.is_running(REFRESH_TASK)

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            runtime.require_online()
            client = runtime.farm_client(context)
        except AddonError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        job_ids = list(runtime.session.job_ids)
        return _start(self, REFRESH_TASK, flows.refresh_work(client, job_ids), "Refreshing jobs…")


class RONRENDER_OT_pull_frames(bpy.types.Operator):
    """Download the job's verified frames next to the .blend and load them as an image sequence"""

    bl_idname = "ronrender.pull_frames"
    bl_label = "Pull Frames"

    job_id: bpy.props.StringProperty(
        name="Job", description="The job (default: the newest)", options={"SKIP_SAVE"}
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            runtime.require_online()
            job_id = _job_id_or_latest(self.job_id)
            directory = frames_directory(context.scene, job_id)
            client = runtime.farm_client(context)
        except AddonError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        work = flows.pull_work(client, job_id, directory)
        return _start(self, pull_task(job_id), work, f"Pulling the frames of job {job_id[:8]}…")


class RONRENDER_OT_cancel_job(bpy.types.Operator):
    """Cancel the job: frames not yet rendered are dropped, what was not paid is refunded"""

    bl_idname = "ronrender.cancel_job"
    bl_label = "Cancel Job"

    job_id: bpy.props.StringProperty(
        name="Job", description="The job (default: the newest)", options={"SKIP_SAVE"}
    )

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        return context.window_manager.invoke_confirm(
            self,
            event,
            title="Cancel RonRender job",
            message=f"Cancel job {self.job_id[:8]}?",
            icon="WARNING",
        )

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            runtime.require_online()
            job_id = _job_id_or_latest(self.job_id)
            client = runtime.farm_client(context)
        except AddonError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        return _start(
            self, cancel_task(job_id), flows.cancel_work(client, job_id), f"Cancelling job {job_id[:8]}…"
        )


class RONRENDER_OT_forget_job(bpy.types.Operator):
    """Remove the job from this list (the farm keeps it)"""

    bl_idname = "ronrender.forget_job"
    bl_label = "Remove from List"

    job_id: bpy.props.StringProperty(name="Job", options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        runtime.session.forget(self.job_id)
        runtime.job_book().forget(self.job_id)
        runtime.mirror()
        return {"FINISHED"}


class RONRENDER_OT_report(bpy.types.Operator):
    """Show a message from a finished background task"""

    bl_idname = "ronrender.report"
    bl_label = "RonRender Report"
    bl_options = {"INTERNAL"}  # noqa: RUF012 (Blender reads a set)

    level: bpy.props.EnumProperty(
        items=[("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")],
        options={"SKIP_SAVE"},
    )
    message: bpy.props.StringProperty(options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        self.report({self.level}, self.message)
        return {"FINISHED"}


def frames_directory(scene: bpy.types.Scene, job_id: str) -> Path:
    """The job's frames folder: the scene's Frames Folder (next to the .blend by default) / job id."""
    folder = scene.ronrender.frames_dir.strip() or "//ronrender_frames/"
    if folder.startswith("//") and not bpy.data.filepath:
        raise AddonError(
            "save the .blend first (frames go next to it), or choose an absolute Frames Folder",
            reason="UNSAVED_BLEND",
        )
    return Path(bpy.path.abspath(folder)) / job_id


def _warn_unsaved_images(operator: bpy.types.Operator) -> None:
    names = unsaved_images()
    if names:
        operator.report(
            {"WARNING"},
            f"images with unsaved edits are sent as last saved: {', '.join(names)}; save them first",
        )


classes = (
    RONRENDER_OT_estimate,
    RONRENDER_OT_submit_job,
    RONRENDER_OT_accept_job,
    RONRENDER_OT_check_balance,
    RONRENDER_OT_stop,
    RONRENDER_OT_refresh_jobs,
    RONRENDER_OT_pull_frames,
    RONRENDER_OT_cancel_job,
    RONRENDER_OT_forget_job,
    RONRENDER_OT_report,
)
