"""``make bench``: RonRender's benchmarks, one module each, run side by side by
``python -m scripts.bench.run``, which prints a table of ratios and writes
``bench-output/bench.json``.

- ``farm_overhead``: the sample scene through bare Blender and through a one-node farm.
- ``scheduler``: simulated nodes (real HTTP clients, ``sim_nodes``) against the real
  backend under gunicorn on PostgreSQL and Redis; render times are scaled sleeps.
- ``split``: creating a 100,000-frame job and its frame rows.
- ``transfer``: scene upload and frame download against a plain file copy.
- ``verification``: verifying a 4K EXR and PNG against only decoding them.
- ``gas``: the escrow's lock and per-frame release on a local anvil chain.

No module here imports ``bpy``: Blender runs only in child processes.
"""
