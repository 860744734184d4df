"""Recognising a .blend file by its first bytes, without Blender."""

from __future__ import annotations

BLEND_MAGIC = b"BLENDER"
# Blender 3.0+ saves compressed files with zstd; older ones used gzip.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
MAGIC_PREFIX_BYTES = 12


def looks_like_blend(first_bytes: bytes) -> bool:
    """True if ``first_bytes`` start a plain, zstd- or gzip-compressed .blend."""
    return first_bytes.startswith((BLEND_MAGIC, ZSTD_MAGIC, GZIP_MAGIC))
