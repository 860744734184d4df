"""Property groups: a scene's RonRender settings (saved with the .blend), and the
window manager's mirror of the session (what the panel draws)."""

from __future__ import annotations

from typing import Any

import bpy

from . import defaults
from .job_model import JobView, job_request
from .preferences import OUTPUT_FORMAT_ITEMS, get_preferences
from .session import SCENE_TASK, Session

DEVICE_ITEMS = [
    ("ANY", "Any", "CPU or GPU, whichever node is free"),
    ("CPU", "CPU", "Render on CPUs only"),
    ("GPU", "GPU", "Render on GPUs only"),
]


class RONRENDER_SceneSettings(bpy.types.PropertyGroup):
    """What a job of this scene asks the farm for."""

    use_scene_frame_range: bpy.props.BoolProperty(
        name="Scene Frame Range", description="Render the scene's frame range", default=True
    )
    frame_start: bpy.props.IntProperty(name="Start", description="First frame to render", default=1)
    frame_end: bpy.props.IntProperty(name="End", description="Last frame to render", default=250)
    output_format: bpy.props.EnumProperty(
        name="Output Format",
        items=[
            ("DEFAULT", "Default", "The default output format of the add-on's preferences"),
            *OUTPUT_FORMAT_ITEMS,
        ],
        default="DEFAULT",
    )
    override_samples: bpy.props.BoolProperty(name="Override Samples", default=False)
    samples: bpy.props.IntProperty(name="Samples", min=1, max=1_000_000, default=64)
    override_resolution: bpy.props.BoolProperty(name="Override Resolution", default=False)
    resolution_percentage: bpy.props.IntProperty(
        name="Resolution %", subtype="PERCENTAGE", min=1, max=1000, default=100
    )
    required_device: bpy.props.EnumProperty(name="Device", items=DEVICE_ITEMS, default="ANY")
    min_gpu_memory_gib: bpy.props.IntProperty(
        name="Min GPU Memory (GiB)", description="Only GPUs with at least this much memory", min=0, max=1024
    )
    frames_dir: bpy.props.StringProperty(
        name="Frames Folder",
        description="Where pulled frames go ('//' is the .blend's folder); one subfolder per job",
        subtype="DIR_PATH",
        default=defaults.DEFAULT_FRAMES_DIR,
    )

    def frame_range(self, scene: bpy.types.Scene) -> tuple[int, int]:
        if self.use_scene_frame_range:
            return scene.frame_start, scene.frame_end
        return self.frame_start, self.frame_end

    def request(self, scene: bpy.types.Scene, context: bpy.types.Context | None = None) -> dict[str, Any]:
        """The job request for these settings (see ``job_model.job_request``)."""
        start, end = self.frame_range(scene)
        output_format = self.output_format
        if output_format == "DEFAULT":
            output_format = get_preferences(context).default_output_format
        return job_request(
            frame_start=start,
            frame_end=end,
            output_format=output_format,
            samples=self.samples if self.override_samples else None,
            resolution_percentage=self.resolution_percentage if self.override_resolution else None,
            required_device=self.required_device,
            min_gpu_memory_gib=self.min_gpu_memory_gib,
        )


class RONRENDER_JobItem(bpy.types.PropertyGroup):
    """One job of the job list, as the panel shows it."""

    job_id: bpy.props.StringProperty()
    state: bpy.props.StringProperty()
    frames_text: bpy.props.StringProperty()
    range_text: bpy.props.StringProperty()
    money_text: bpy.props.StringProperty()
    problems: bpy.props.StringProperty(description="Why frames failed, one per line")
    progress: bpy.props.FloatProperty(min=0.0, max=1.0)
    verified: bpy.props.IntProperty()
    can_cancel: bpy.props.BoolProperty()
    needs_artist: bpy.props.BoolProperty(description="Waits for the artist to accept (again)")
    is_final: bpy.props.BoolProperty()
    loaded: bpy.props.BoolProperty(description="The farm's answer about this job has arrived")
    busy_text: bpy.props.StringProperty(description="What is being done for this job now")
    busy_progress: bpy.props.FloatProperty(default=-1.0)


class RONRENDER_WindowState(bpy.types.PropertyGroup):
    """The session mirrored for drawing and for scripts; rebuilt from the session,
    never a source of truth."""

    jobs: bpy.props.CollectionProperty(type=RONRENDER_JobItem)
    busy: bpy.props.BoolProperty(description="Packing, uploading or accepting a scene")
    activity_text: bpy.props.StringProperty()
    activity_progress: bpy.props.FloatProperty(default=-1.0, description="0 to 1; -1 when unknown")
    estimate_job_id: bpy.props.StringProperty()
    estimate_state: bpy.props.StringProperty()
    estimate_lines: bpy.props.StringProperty()
    estimate_matches: bpy.props.BoolProperty(
        description="The estimate answers the scene and settings as they are"
    )
    wallet_text: bpy.props.StringProperty()
    wallet_short: bpy.props.BoolProperty(description="The escrow balance does not cover the estimate")
    report_level: bpy.props.StringProperty()
    report_text: bpy.props.StringProperty()
    report_problems: bpy.props.StringProperty()

    def mirror(self, session: Session, current_request: dict[str, Any] | None, running: set[str]) -> None:
        """Copy what the panel needs from ``session``; ``running`` names the tasks in flight."""
        scene_activity = session.activities.get(SCENE_TASK)
        self.busy = SCENE_TASK in running
        self.activity_text = scene_activity.text if scene_activity else ("Starting…" if self.busy else "")
        fraction = scene_activity.fraction if scene_activity else None
        self.activity_progress = -1.0 if fraction is None else fraction
        estimate = session.estimate
        self.estimate_job_id = estimate.job.job_id if estimate else ""
        self.estimate_state = estimate.job.state if estimate else ""
        self.estimate_lines = "\n".join(estimate.lines) if estimate else ""
        self.estimate_matches = session.estimate_for(current_request) is not None
        self.wallet_text = session.wallet_text
        self.wallet_short = session.wallet_short
        report = session.last_report
        self.report_level = report.level if report else ""
        self.report_text = report.text if report else ""
        self.report_problems = "\n".join(report.problems) if report else ""
        self.jobs.clear()
        for job_id in session.job_ids[: defaults.JOBS_SHOWN]:
            item = self.jobs.add()
            item.job_id = job_id
            view = session.jobs.get(job_id)
            if view is not None:
                _fill_job_item(item, view)
            for task, activity in session.activities.items():
                if task.endswith(f":{job_id}"):
                    item.busy_text = activity.text
                    item.busy_progress = -1.0 if activity.fraction is None else activity.fraction


def _fill_job_item(item: RONRENDER_JobItem, view: JobView) -> None:
    item.loaded = True
    item.state = view.state
    item.frames_text = view.frames_text
    item.range_text = view.frame_range_text
    item.money_text = view.money_text
    item.problems = "\n".join(view.problems[: defaults.PROBLEMS_SHOWN])
    item.progress = view.progress
    item.verified = view.verified
    item.can_cancel = view.can_cancel
    item.needs_artist = view.needs_artist
    item.is_final = view.is_final


classes = (RONRENDER_SceneSettings, RONRENDER_JobItem, RONRENDER_WindowState)


def register_properties() -> None:
    bpy.types.Scene.ronrender = bpy.props.PointerProperty(type=RONRENDER_SceneSettings)
    bpy.types.WindowManager.ronrender = bpy.props.PointerProperty(type=RONRENDER_WindowState)


def unregister_properties() -> None:
    del bpy.types.WindowManager.ronrender
    del bpy.types.Scene.ronrender
