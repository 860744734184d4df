"""``ronrender``: the artist's command line — submit a scene, follow it, download frames."""
