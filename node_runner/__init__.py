"""The node service: registers with the backend, claims frames, renders each in a
Blender child process, uploads the render output, and asks for the next."""
