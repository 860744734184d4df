"""When the add-on may go online. No bpy module use.

Blender 4.2+ asks extensions to respect "Allow Online Access"
(``bpy.app.online_access``). In background mode (scripts, render farms, tests
with the ``bpy`` module) Blender reports it off unless ``--online-mode`` was
given; a script that calls a RonRender operator there asks for the network
explicitly, so background mode counts as allowed, unless Blender was started
with ``--offline-mode`` (``bpy.app.online_access_override``).
"""

from __future__ import annotations

OFFLINE_MESSAGE = (
    "online access is off: enable Preferences › System › Network › Allow Online Access "
    "so RonRender can reach the farm"
)


def online_allowed(online_access: bool, background: bool, online_access_override: bool) -> bool:
    """True when the add-on may talk to the farm."""
    if online_access:
        return True
    return background and not online_access_override
