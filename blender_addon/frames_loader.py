"""Pulled frames into Blender: one image sequence per job, shown in an Image
Editor when one is open, ready to scrub. Files are loaded as they are, so EXR
frames keep their float data and layers."""

from __future__ import annotations

import bpy

from .messages import FramesPulled

JOB_ID_KEY = "ronrender_job_id"
FRAME_START_KEY = "ronrender_frame_start"
FRAME_END_KEY = "ronrender_frame_end"
FRAMES_ON_DISK_KEY = "ronrender_frames_on_disk"


def image_for_job(job_id: str) -> bpy.types.Image | None:
    for image in bpy.data.images:
        if image.get(JOB_ID_KEY) == job_id:
            return image
    return None


def _blend_relative(path: str) -> str:
    """Relative to the .blend when it is saved (so the project can move), else as is."""
    if not bpy.data.filepath:
        return path
    try:
        return bpy.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path


def load_sequence(pulled: FramesPulled) -> bpy.types.Image:
    """The job's image sequence in ``bpy.data.images``, created or reloaded."""
    first = sorted(pulled.files)[0]
    image = image_for_job(pulled.job_id)
    if image is None:
        image = bpy.data.images.load(first, check_existing=False)
        image.name = f"RonRender {pulled.job_id[:8]}"
        image[JOB_ID_KEY] = pulled.job_id
    image.source = "SEQUENCE"
    image.filepath = _blend_relative(first)
    image[FRAME_START_KEY] = pulled.frame_start
    image[FRAME_END_KEY] = pulled.frame_end
    image[FRAMES_ON_DISK_KEY] = len(pulled.files)
    image.reload()
    return image


def configure_image_user(image_user: bpy.types.ImageUser, frame_start: int, frame_end: int) -> None:
    """Scene frame N shows file N, for every frame of the job's range."""
    image_user.frame_start = frame_start
    image_user.frame_offset = frame_start - 1
    image_user.frame_duration = frame_end - frame_start + 1
    image_user.use_auto_refresh = True


def _image_editor_spaces() -> list[bpy.types.SpaceImageEditor]:
    wm = bpy.context.window_manager
    spaces = []
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                spaces.append(area.spaces.active)
                area.tag_redraw()
    return spaces


def show_frames(pulled: FramesPulled) -> bpy.types.Image:
    """Load the frames and show them in an Image Editor, if one is open (the one
    already showing this job's frames, else the first)."""
    image = load_sequence(pulled)
    spaces = _image_editor_spaces()
    if spaces:
        showing = [s for s in spaces if s.image is not None and s.image.get(JOB_ID_KEY) == pulled.job_id]
        space = (showing or spaces)[0]
        space.image = image
        configure_image_user(space.image_user, pulled.frame_start, pulled.frame_end)
    return image
