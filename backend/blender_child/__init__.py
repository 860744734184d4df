"""Scripts the backend runs inside a Blender child process; the only backend code that imports bpy."""
