"""The N-panel: 3D Viewport › Sidebar › RonRender. Drawing only; every action is
an operator, every value comes from the scene's settings or the window
manager's mirror of the session."""

from __future__ import annotations

import textwrap

import bpy

from .online import online_allowed
from .preferences import get_preferences

LABEL_WIDTH_CHARS = 48


class RONRENDER_PT_base:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "RonRender"


def _progress(layout: bpy.types.UILayout, fraction: float, text: str) -> None:
    """A progress bar (a label when the fraction is unknown)."""
    if fraction < 0:
        layout.label(text=text, icon="SORTTIME")
    else:
        layout.progress(factor=fraction, type="BAR", text=text)


def _lines(layout: bpy.types.UILayout, text: str, icon: str = "NONE") -> None:
    """Labels for ``text``, wrapped to the sidebar's width; the icon on the first only."""
    for line in text.splitlines():
        for index, part in enumerate(textwrap.wrap(line, LABEL_WIDTH_CHARS) or [""]):
            layout.label(text=part, icon=icon if index == 0 else "BLANK1" if icon != "NONE" else "NONE")


class RONRENDER_PT_main(RONRENDER_PT_base, bpy.types.Panel):
    bl_idname = "RONRENDER_PT_main"
    bl_label = "RonRender"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        state = context.window_manager.ronrender
        prefs = get_preferences(context)
        app = bpy.app
        if not online_allowed(app.online_access, app.background, app.online_access_override):
            layout.label(text="Online access is off (Preferences › System)", icon="ERROR")
        layout.label(text=prefs.backend_url, icon="URL")

        row = layout.row(align=True)
        row.scale_y = 1.3
        row.operator("ronrender.estimate", icon="FUND")
        row.operator("ronrender.submit_job", icon="RENDER_ANIMATION")

        if state.busy:
            row = layout.row(align=True)
            _progress(row, state.activity_progress, state.activity_text)
            row.operator("ronrender.stop", text="", icon="CANCEL")

        if state.estimate_job_id:
            box = layout.box()
            title = f"Estimate (job {state.estimate_job_id[:8]})"
            box.label(
                text=title if state.estimate_matches else title + ": the scene or settings changed",
                icon="INFO",
            )
            _lines(box, state.estimate_lines)
            if state.wallet_text:
                box.label(text=state.wallet_text, icon="ERROR" if state.wallet_short else "BLANK1")
                if state.wallet_short:
                    box.label(text="Deposit more RON first: `ronrender wallet deposit`")

        if state.report_text:
            box = layout.box()
            icon = {"ERROR": "ERROR", "WARNING": "ERROR"}.get(state.report_level, "INFO")
            col = box.column(align=True)
            _lines(col, state.report_text, icon)
            _lines(col, state.report_problems, "DOT")


class RONRENDER_PT_frames(RONRENDER_PT_base, bpy.types.Panel):
    bl_idname = "RONRENDER_PT_frames"
    bl_label = "Frames & Output"
    bl_parent_id = "RONRENDER_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.ronrender
        layout.prop(settings, "use_scene_frame_range")
        col = layout.column(align=True)
        if settings.use_scene_frame_range:
            col.enabled = False
            col.prop(context.scene, "frame_start", text="Start")
            col.prop(context.scene, "frame_end", text="End")
        else:
            col.prop(settings, "frame_start")
            col.prop(settings, "frame_end")
        layout.prop(settings, "output_format")
        row = layout.row(heading="Samples")
        row.prop(settings, "override_samples", text="")
        sub = row.row()
        sub.active = settings.override_samples
        sub.prop(settings, "samples", text="")
        row = layout.row(heading="Resolution")
        row.prop(settings, "override_resolution", text="")
        sub = row.row()
        sub.active = settings.override_resolution
        sub.prop(settings, "resolution_percentage", text="")
        layout.prop(settings, "frames_dir")


class RONRENDER_PT_requirements(RONRENDER_PT_base, bpy.types.Panel):
    bl_idname = "RONRENDER_PT_requirements"
    bl_label = "Requirements"
    bl_parent_id = "RONRENDER_PT_main"
    bl_options = {"DEFAULT_CLOSED"}  # noqa: RUF012 (Blender reads a set)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.ronrender
        layout.prop(settings, "required_device")
        row = layout.row()
        row.active = settings.required_device == "GPU"
        row.prop(settings, "min_gpu_memory_gib")


class RONRENDER_PT_jobs(RONRENDER_PT_base, bpy.types.Panel):
    bl_idname = "RONRENDER_PT_jobs"
    bl_label = "Jobs"
    bl_parent_id = "RONRENDER_PT_main"

    def draw_header_preset(self, context: bpy.types.Context) -> None:
        self.layout.operator("ronrender.refresh_jobs", text="", icon="FILE_REFRESH", emboss=False)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        jobs = context.window_manager.ronrender.jobs
        if not jobs:
            layout.label(text="No jobs yet")
        for item in jobs:
            box = layout.box()
            header = box.row()
            header.label(text=f"{item.job_id[:8]}  {item.state or '…'}", icon=_state_icon(item.state))
            if item.can_cancel:
                op = header.operator("ronrender.cancel_job", text="", icon="CANCEL", emboss=False)
                op.job_id = item.job_id
            elif item.is_final:
                op = header.operator("ronrender.forget_job", text="", icon="X", emboss=False)
                op.job_id = item.job_id
            if not item.loaded:
                box.label(text="asking the farm…")
                continue
            _progress(box, item.progress, item.frames_text)
            col = box.column(align=True)
            col.label(text=item.range_text)
            col.label(text=item.money_text)
            _lines(col, item.problems, "ERROR")
            if item.busy_text:
                _progress(box, item.busy_progress, item.busy_text)
            row = box.row()
            if item.needs_artist:
                op = row.operator("ronrender.accept_job", text="Accept", icon="CHECKMARK")
                op.job_id = item.job_id
            sub = row.row()
            sub.enabled = item.verified > 0
            op = sub.operator("ronrender.pull_frames", icon="IMPORT")
            op.job_id = item.job_id


def _state_icon(state: str) -> str:
    return {
        "COMPLETED": "CHECKMARK",
        "CANCELLED": "CANCEL",
        "RENDERING": "RENDER_ANIMATION",
        "LOCKING": "LOCKED",
        "AWAITING_ACCEPTANCE": "QUESTION",
    }.get(state, "ERROR" if state.endswith(("FAILED", "PAYMENT")) else "TIME")


classes = (RONRENDER_PT_main, RONRENDER_PT_frames, RONRENDER_PT_requirements, RONRENDER_PT_jobs)
