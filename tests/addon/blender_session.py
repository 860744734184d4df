"""Blender side of the add-on tests: run in a child Python that imports bpy (never
in the pytest process). Installs the built extension zip the way Preferences ›
Get Extensions › Install from Disk does, runs one scenario and prints its
findings as one line ``RONRENDER_TEST_RESULT:{json}``; the pytest side asserts.

Usage: python blender_session.py '{"scenario": "lifecycle", "zip": ..., "work_dir": ...}'
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import bpy
import numpy as np

MODULE = "bl_ext.user_default.ronrender"
RESULT_PREFIX = "RONRENDER_TEST_RESULT:"
TEXTURE_RGB = (0.2, 0.8, 0.1)


# --- helpers ------------------------------------------------------------------------


def install(zip_path: str) -> None:
    import addon_utils  # Blender's own module: importable once bpy is

    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    assert addon_utils.check(MODULE) == (True, True), addon_utils.check(MODULE)


def addon(name: str) -> types.ModuleType:
    return sys.modules[f"{MODULE}.{name}"]


def prefs():
    return bpy.context.preferences.addons[MODULE].preferences


def call(operator, **options) -> dict:
    """Run an operator as a script would; an ERROR report raises RuntimeError."""
    try:
        return {"result": sorted(operator(**options))}
    except RuntimeError as error:
        return {"error": str(error)}


def layout_call_problems(name: str, args: tuple, kwargs: dict) -> list[str]:
    """What a real UILayout would refuse: an unknown method, argument, icon or property."""
    function = bpy.types.UILayout.bl_rna.functions.get(name)
    if function is None:
        return [f"UILayout has no {name}()"]
    parameters = {p.identifier: p for p in function.parameters}
    problems = [f"{name}() has no argument {key}" for key in kwargs if key not in parameters]
    icon = kwargs.get("icon")
    if icon is not None and icon not in parameters["icon"].enum_items.keys():
        problems.append(f"unknown icon {icon}")
    if name == "prop" and args[1] not in args[0].bl_rna.properties.keys():
        problems.append(f"{type(args[0]).__name__} has no property {args[1]}")
    module, _, operator = args[0].partition(".") if name == "operator" else ("", "", "")
    if name == "operator" and operator not in dir(getattr(bpy.ops, module)):
        problems.append(f"no operator {args[0]}")
    return problems


class FakeLayout:
    """Stands in for UILayout where background mode has no UI: records what a
    draw function asks for (checking it against UILayout's own definition) and
    returns itself for rows, columns and boxes."""

    def __init__(self, log: list) -> None:
        self.log = log

    def __getattr__(self, name: str):
        def record(*args, **kwargs):
            real_args = tuple(a.real if isinstance(a, WithLayout) else a for a in args)
            for problem in layout_call_problems(name, real_args, kwargs):
                self.log.append(["problem", [problem], {}])
            self.log.append([name, [str(a) for a in args], {k: str(v) for k, v in kwargs.items()}])
            if name == "operator":
                return types.SimpleNamespace()
            return self

        return record

    def __setattr__(self, name: str, value) -> None:
        if name == "log":
            object.__setattr__(self, name, value)
        elif name not in bpy.types.UILayout.bl_rna.properties.keys():
            self.log.append(["problem", [f"UILayout has no attribute {name}"], {}])


def draw_all() -> list:
    """Call every panel's draw (and the preferences' draw) with a fake layout."""
    log: list = []
    panels = addon("panels")
    for panel in panels.classes:
        fake = types.SimpleNamespace(layout=FakeLayout(log))
        log.append(["panel", [panel.__name__], {}])
        panel.draw(fake, bpy.context)
        if hasattr(panel, "draw_header_preset"):
            panel.draw_header_preset(fake, bpy.context)
    addon("preferences").RONRENDER_AddonPreferences.draw(WithLayout(prefs(), FakeLayout(log)), bpy.context)
    return log


class WithLayout:
    """A registered struct (the preferences) whose ``layout`` is a fake one."""

    def __init__(self, real, layout: FakeLayout) -> None:
        self.layout = layout
        self.real = real

    def __getattr__(self, name: str):
        return getattr(self.real, name)


def leftovers() -> dict:
    """What the add-on left registered after being disabled."""
    runtime = sys.modules.get(f"{MODULE}.runtime")
    timers = []
    if runtime is not None:
        timers = [
            t.__name__
            for t in (runtime._pump_timer, runtime._refresh_timer)
            if bpy.app.timers.is_registered(t)
        ]
    handlers = [
        f"{name}:{handler.__module__}"
        for name in (
            "load_post",
            "load_pre",
            "depsgraph_update_post",
            "save_pre",
            "save_post",
            "frame_change_post",
        )
        for handler in getattr(bpy.app.handlers, name)
        if "ronrender" in handler.__module__
    ]
    return {
        "types": sorted(name for name in dir(bpy.types) if name.upper().startswith("RONRENDER")),
        "operators": "ronrender" in dir(bpy.ops),
        "scene_property": hasattr(bpy.types.Scene, "ronrender"),
        "wm_property": hasattr(bpy.types.WindowManager, "ronrender"),
        "preferences": MODULE in bpy.context.preferences.addons,
        "timers": timers,
        "handlers": handlers,
        "threads": [t.name for t in __import__("threading").enumerate() if t.name.startswith("ronrender-")],
    }


def disable() -> dict:
    bpy.ops.preferences.addon_disable(module=MODULE)
    return leftovers()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_png(path: Path, rgb: tuple[float, float, float]) -> None:
    image = bpy.data.images.new("texture-writer", 8, 8)
    image.pixels = [*rgb, 1.0] * 64
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)


def build_library(path: Path) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_cube_add(size=0.5, location=(0, 0, -5))
    bpy.context.object.name = "LibCube"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))


def build_scene(folder: Path, frames: int = 3) -> Path:
    """A camera looking straight at a plane that shows an external PNG texture
    (emission, so the frame is the texture's colour), a linked object from a
    library .blend, 64x36, a few samples; saved as scene.blend."""
    textures = folder / "textures"
    textures.mkdir(parents=True, exist_ok=True)
    write_png(textures / "green.png", TEXTURE_RGB)
    build_library(folder / "library.blend")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, frames
    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x, render.resolution_y, render.resolution_percentage = 64, 36, 100
    render.image_settings.file_format = "PNG"
    scene.cycles.samples = 2
    # Every sample is rendered, so a samples override makes frames predictably slower.
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False
    scene.view_settings.view_transform = "Standard"
    world = bpy.data.worlds.new("Black")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0, 0, 0, 1)
    scene.world = world
    bpy.ops.mesh.primitive_plane_add(size=10)
    material = bpy.data.materials.new("Textured")
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = bpy.data.images.load(str(textures / "green.png"))
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    bpy.context.object.data.materials.append(material)
    bpy.ops.object.camera_add(location=(0, 0, 3))
    camera = bpy.context.object
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = 2
    scene.camera = camera
    with bpy.data.libraries.load(str(folder / "library.blend"), link=True) as (_source, target):
        target.objects = ["LibCube"]
    for linked in target.objects:
        scene.collection.objects.link(linked)
    path = folder / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), relative_remap=True)
    return path


def open_file_snapshot(blend: Path) -> dict:
    """What must not change in the artist's session and saved file while submitting."""
    return {
        "blend_sha256": file_sha256(blend),
        "filepath": bpy.data.filepath,
        "is_dirty": bpy.data.is_dirty,
        "images": sorted(
            (i.name, i.filepath, i.packed_file is not None) for i in bpy.data.images if i.source == "FILE"
        ),
        "libraries": sorted(lib.filepath for lib in bpy.data.libraries),
        "linked_objects": sorted(o.name for o in bpy.data.objects if o.library is not None),
        "ids": sorted(f"{type(i).__name__}:{i.name}" for i in bpy.data.user_map()),
        "files_next_to_blend": sorted(p.name for p in blend.parent.iterdir()),
    }


def inspect_packed(path: Path) -> dict:
    """Open the file the farm stored in a fresh Python (this session stays as it is)."""
    code = (
        "import bpy, json, sys;"
        f"bpy.ops.wm.open_mainfile(filepath={str(path)!r}, load_ui=False, use_scripts=False);"
        "print('INSPECT:' + json.dumps({"
        "'libraries': len(bpy.data.libraries),"
        "'linked': [i.name for i in bpy.data.user_map() if i.library is not None],"
        "'images': [[i.name, i.filepath, len(i.packed_files) > 0]"
        " for i in bpy.data.images if i.source == 'FILE'],"
        "'objects': sorted(o.name for o in bpy.data.objects)}))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    line = next(line for line in output.splitlines() if line.startswith("INSPECT:"))
    return json.loads(line[len("INSPECT:") :])


def frame_pixels(image: bpy.types.Image, frame: int) -> np.ndarray:
    """The pixels of one frame of an image sequence (a texture's image user picks it)."""
    texture = bpy.data.textures.get("ronrender-probe") or bpy.data.textures.new("ronrender-probe", "IMAGE")
    texture.image = image
    user = texture.image_user
    user.frame_start, user.frame_offset, user.frame_duration = 1, 0, 100000
    user.frame_current = frame
    texture.evaluate((0.0, 0.0, 0.0))  # loads that frame's buffer
    pixels = np.empty(len(image.pixels), dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return pixels


def file_pixels(path: str) -> np.ndarray:
    image = bpy.data.images.load(path, check_existing=False)
    pixels = np.empty(len(image.pixels), dtype=np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return pixels


def wait_for_job(job_id: str, timeout_s: float = 150.0, on_poll=None) -> dict:
    """Refresh until the job is final; returns the last job item as a dict."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        call(bpy.ops.ronrender.refresh_jobs)
        item = job_item(job_id)
        if on_poll is not None:
            on_poll(item)
        if item and item["is_final"]:
            return item
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job_item(job_id)}")


def rna_values(struct, skip: tuple[str, ...] = ()) -> dict:
    """A property group's plain values, by name."""
    names = [p.identifier for p in struct.bl_rna.properties if p.identifier not in ("rna_type", *skip)]
    return {name: getattr(struct, name) for name in names}


def job_item(job_id: str) -> dict | None:
    for item in bpy.context.window_manager.ronrender.jobs:
        if item.job_id == job_id:
            return rna_values(item)
    return None


def wm_state() -> dict:
    return rna_values(bpy.context.window_manager.ronrender, skip=("jobs",))


def pump_until_idle(timeout_s: float = 60.0) -> list:
    """Be Blender's event loop: call the pump timer until it unregisters itself."""
    runtime = addon("runtime")
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        interval = runtime._pump_timer()
        state = bpy.context.window_manager.ronrender
        seen.append([state.activity_text, state.activity_progress])
        if interval is None:
            return seen
        time.sleep(interval)
    raise AssertionError("the task did not finish")


# --- scenarios ----------------------------------------------------------------------


def scenario_lifecycle(spec: dict) -> dict:
    """Register, draw, the errors an artist can meet without a farm, unregister."""
    result: dict = {}
    work = Path(spec["work_dir"])
    install(spec["zip"])
    result["registered"] = leftovers()
    result["default_request"] = bpy.context.scene.ronrender.request(bpy.context.scene)
    revision = addon("runtime").session.scene_revision
    bpy.data.objects["Cube"].location.x += 1  # an edit: any estimate on screen is stale now
    bpy.context.view_layer.update()
    result["revisions"] = [revision, addon("runtime").session.scene_revision]
    result["draw_empty"] = draw_all()

    prefs().backend_url = f"http://127.0.0.1:{spec['closed_port']}"
    prefs().api_token = "secret-token"
    started = time.monotonic()
    result["unreachable"] = call(bpy.ops.ronrender.estimate)
    result["unreachable_s"] = time.monotonic() - started
    result["unreachable_state"] = wm_state()
    prefs().backend_url = "ftp://example.org"
    result["bad_url"] = call(bpy.ops.ronrender.submit_job)
    result["pull_nothing"] = call(bpy.ops.ronrender.pull_frames)

    # The asynchronous path, as in the UI: a thread does the work, the timer applies it.
    runtime = addon("runtime")
    runtime.blocking = lambda: False
    prefs().backend_url = f"http://127.0.0.1:{spec['closed_port']}"
    result["async_started"] = call(bpy.ops.ronrender.estimate)
    result["async_busy"] = bpy.context.window_manager.ronrender.busy
    result["async_timer_registered"] = bpy.app.timers.is_registered(runtime._pump_timer)
    result["async_seen"] = pump_until_idle()
    result["async_state"] = wm_state()
    # (Blender itself would now drop the pump timer, which returned None; without an
    # event loop it stays registered until the add-on is disabled below.)
    result["refresh_timer_registered"] = bpy.app.timers.is_registered(runtime._refresh_timer)

    # A scene whose files cannot be packed, against something that answers HTTP.
    blend = work / "broken" / "broken.blend"
    blend.parent.mkdir()
    material = bpy.data.materials.new("M")
    material.use_fake_user = True
    material.use_nodes = True
    missing = bpy.data.images.load(str(Path(spec["any_png"])), check_existing=False)
    missing.name = "gone"
    missing.filepath = "//textures/gone.png"
    sequence = bpy.data.images.load(str(Path(spec["any_png"])), check_existing=False)
    sequence.name = "sequence"
    sequence.source = "SEQUENCE"
    for image in (missing, sequence):
        material.node_tree.nodes.new("ShaderNodeTexImage").image = image
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    runtime.blocking = lambda: True
    prefs().backend_url = spec["http_url"]
    result["unpackable"] = call(bpy.ops.ronrender.estimate)
    result["unpackable_state"] = wm_state()

    result["leftovers"] = disable()
    result["temp_dirs"] = sorted(p.name for p in Path(spec["tmp_dir"]).glob("ronrender-pack-*"))
    return result


def scenario_farm(spec: dict) -> dict:
    """Pack, estimate, submit, follow, pull frames (PNG, then EXR) on a real farm."""
    result: dict = {}
    work = Path(spec["work_dir"]) / "project"
    blend = build_scene(work)
    install(spec["zip"])
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    prefs().backend_url = spec["farm_url"]
    prefs().api_token = spec["api_token"]  # what the artist pastes from `ronrender token create`
    if spec.get("keystore"):
        prefs().wallet_keystore = spec["keystore"]
    # Frames slow enough (about 1 s each here) that a poll sees the job running with a frame
    # verified: the node keeps Blender up between frames, so 2-sample frames all land
    # between two polls.
    bpy.context.scene.ronrender.override_samples = True
    bpy.context.scene.ronrender.samples = 5000
    before = open_file_snapshot(blend)

    # Estimate: pack + upload + job AWAITING_ACCEPTANCE; watch the messages go by.
    runtime = addon("runtime")
    posted: list = []
    drain = runtime.runner.drain

    def recording_drain():
        messages = drain()
        posted.extend(
            f"{type(m).__name__}:{getattr(m, 'text', '')}:{getattr(m, 'fraction', '')}" for m in messages
        )
        return messages

    runtime.runner.drain = recording_drain
    result["estimate"] = call(bpy.ops.ronrender.estimate)
    if "error" in result["estimate"]:
        return result  # the test shows the report
    result["messages"] = posted
    result["estimate_state"] = wm_state()
    result["after_estimate"] = open_file_snapshot(blend)
    result["before"] = before
    estimate_job_id = bpy.context.window_manager.ronrender.estimate_job_id
    scene_sha256 = runtime.session.estimate.scene_sha256 if runtime.session.estimate else None
    result["scene_sha256"] = scene_sha256

    # Prove the upload is self-contained: the texture and the library go away before rendering.
    shutil.move(str(work / "textures"), str(work.parent / "textures-away"))
    shutil.move(str(work / "library.blend"), str(work.parent / "library-away.blend"))
    if spec.get("keystore"):
        result["wrong_password"] = call(bpy.ops.ronrender.submit_job, password="not the password")
    result["submit"] = call(bpy.ops.ronrender.submit_job)
    if "error" in result["submit"]:
        return result
    result["submitted_job_id"] = bpy.context.window_manager.ronrender.jobs[0].job_id
    result["estimate_job_id"] = estimate_job_id

    pulls_while_running: list = []

    def pull_while_running(item: dict | None) -> None:
        if (
            item
            and item["loaded"]
            and not item["is_final"]
            and item["verified"] >= 1
            and not pulls_while_running
        ):
            outcome = call(bpy.ops.ronrender.pull_frames, job_id=estimate_job_id)
            pulls_while_running.append({"verified": item["verified"], **outcome})

    result["final"] = wait_for_job(estimate_job_id, on_poll=pull_while_running)
    result["pulls_while_running"] = pulls_while_running
    result["draw_jobs"] = draw_all()

    shutil.move(str(work.parent / "textures-away"), str(work / "textures"))
    shutil.move(str(work.parent / "library-away.blend"), str(work / "library.blend"))
    result["after_render"] = open_file_snapshot(blend)

    result["pull"] = call(bpy.ops.ronrender.pull_frames, job_id=estimate_job_id)
    result["pull_state"] = wm_state()
    result["png"] = describe_pulled(estimate_job_id)

    # The same scene as OpenEXR, submitted without an estimate, cancelled once a frame is verified.
    bpy.context.scene.ronrender.output_format = "OPEN_EXR"
    # The same slow frames, so the cancel lands while frames remain.
    bpy.context.scene.ronrender.override_samples = True
    bpy.context.scene.ronrender.samples = 5000
    posted.clear()
    result["exr_submit"] = call(bpy.ops.ronrender.submit_job)
    if "error" in result["exr_submit"]:
        return result
    result["exr_messages"] = list(posted)
    exr_job_id = bpy.context.window_manager.ronrender.jobs[0].job_id
    result["exr_job_id"] = exr_job_id
    cancels: list = []

    def cancel_after_first_frame(item: dict | None) -> None:
        if item and item["loaded"] and not item["is_final"] and item["verified"] >= 1 and not cancels:
            cancels.append(
                {"verified": item["verified"], **call(bpy.ops.ronrender.cancel_job, job_id=exr_job_id)}
            )

    result["exr_final"] = wait_for_job(exr_job_id, on_poll=cancel_after_first_frame)
    result["exr_cancel"] = cancels
    result["exr_cancel_state"] = wm_state()
    deadline = time.monotonic() + 30
    while "refunded 0 RON" in job_item(exr_job_id)["money_text"] and time.monotonic() < deadline:
        time.sleep(0.3)
        call(bpy.ops.ronrender.refresh_jobs)
    result["exr_settled"] = job_item(exr_job_id)
    result["exr_pull"] = call(bpy.ops.ronrender.pull_frames, job_id=exr_job_id)
    result["exr"] = describe_pulled(exr_job_id)
    result["job_book"] = json.loads((runtime.job_book().path).read_text())

    if scene_sha256:
        packed = Path(spec["work_dir"]) / "stored.blend"
        import requests

        response = requests.get(
            f"{spec['farm_url']}/api/v1/scenes/{scene_sha256}/file",
            headers={"Authorization": f"Bearer {spec['api_token']}"},  # the artist's own upload
            timeout=30,
        )
        response.raise_for_status()
        packed.write_bytes(response.content)
        result["stored_scene"] = inspect_packed(packed)

    result["leftovers"] = disable()
    result["temp_dirs"] = sorted(p.name for p in Path(spec["tmp_dir"]).glob("ronrender-pack-*"))
    return result


def describe_pulled(job_id: str) -> dict:
    """The job's image sequence in bpy.data.images, frame by frame against the files."""
    loader = addon("frames_loader")
    image = loader.image_for_job(job_id)
    if image is None:
        return {"image": None}
    directory = Path(bpy.path.abspath(image.filepath)).parent
    files = sorted(str(p) for p in directory.iterdir() if p.suffix in {".png", ".exr"})
    frames = []
    for path in files:
        number = int(Path(path).stem.split("_")[-1])
        in_sequence = frame_pixels(image, number)
        on_disk = file_pixels(path)
        height, width = image.size[1], image.size[0]
        centre = in_sequence.reshape(height, width, -1)[height // 2, width // 2].tolist()
        frames.append(
            {
                "number": number,
                "file": Path(path).name,
                "sha256": file_sha256(Path(path)),
                "equal": bool(in_sequence.shape == on_disk.shape and np.array_equal(in_sequence, on_disk)),
                "centre": centre,
            }
        )
    return {
        "image": image.name,
        "source": image.source,
        "filepath": image.filepath,
        "file_format": image.file_format,
        "is_float": image.is_float,
        "channels": image.channels,
        "frame_start": image.get("ronrender_frame_start"),
        "frame_end": image.get("ronrender_frame_end"),
        "frames_on_disk": image.get("ronrender_frames_on_disk"),
        "frames": frames,
        "directory": str(directory),
    }


def main() -> int:
    spec = json.loads(sys.argv[1])
    scenario = {"lifecycle": scenario_lifecycle, "farm": scenario_farm}[spec["scenario"]]
    result = scenario(spec)
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
