"""Code every side of RonRender speaks: states, the HTTP protocol, image checks.

This package imports nothing of ``backend``, ``node_runner`` or ``blender_addon``.
"""
