"""Scripts a node runs inside a Blender child process; the only node code that imports bpy."""
