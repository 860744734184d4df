"""RonRender for Blender: estimate, submit and follow render jobs on the RonRender
farm, and pull the verified frames back as an image sequence.

A Blender 4.2+ extension. The logic that needs no Blender (the farm client, the
task runner, the job model, the job book) lives in modules that say "No bpy
module use" and are tested without Blender; the Blender-facing modules
(``preferences``, ``properties``, ``operators``, ``panels``, ``runtime``,
``packing``, ``frames_loader``) are thin. ``vendor/`` holds the project's
``shared`` modules, copied in by ``scripts/build_addon.py``.

Nothing here imports ``bpy`` at import time, so the bpy-free modules can be
imported (and tested) as ``<package>.farm_client`` without Blender.
"""

from __future__ import annotations


def _classes() -> tuple[type, ...]:
    from . import operators, panels, preferences, properties

    return (preferences.RONRENDER_AddonPreferences, *properties.classes, *operators.classes, *panels.classes)


def register() -> None:
    import bpy

    from . import properties, runtime

    register_classes, _unregister_classes = bpy.utils.register_classes_factory(_classes())
    register_classes()
    properties.register_properties()
    runtime.register_runtime()


def unregister() -> None:
    import bpy

    from . import properties, runtime

    runtime.unregister_runtime()
    properties.unregister_properties()
    _register_classes, unregister_classes = bpy.utils.register_classes_factory(_classes())
    unregister_classes()
