"""Unit tests for shared.blend_file.looks_like_blend."""

from __future__ import annotations

import gzip

import pytest

from shared.blend_file import BLEND_MAGIC, GZIP_MAGIC, MAGIC_PREFIX_BYTES, ZSTD_MAGIC, looks_like_blend

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "first_bytes",
    [
        b"BLENDER-v405RENDH",  # Blender 4.5 plain header: pointer size '-' (64 bit), 'v' little endian
        b"BLENDER_V300",  # 32-bit big-endian pointer/endianness markers
        b"BLENDER17-01v0500",  # Blender 5.0 "large header" layout
        b"\x28\xb5\x2f\xfd\x04\x58\x00\x00\x00\x00\x00\x00",  # zstd frame (Blender 3.0+ compressed)
        gzip.compress(b"BLENDER-v279REND")[:MAGIC_PREFIX_BYTES],  # gzip (Blender 2.x compressed)
    ],
    ids=["plain", "plain-32bit", "plain-large-header", "zstd", "gzip"],
)
def test_blend_headers_are_recognised(first_bytes):
    assert looks_like_blend(first_bytes) is True


def test_magic_constants_are_the_documented_bytes():
    assert BLEND_MAGIC == b"BLENDER"
    assert ZSTD_MAGIC == b"\x28\xb5\x2f\xfd"
    assert GZIP_MAGIC == b"\x1f\x8b"
    assert MAGIC_PREFIX_BYTES >= max(len(BLEND_MAGIC), len(ZSTD_MAGIC), len(GZIP_MAGIC))


@pytest.mark.parametrize(
    "first_bytes",
    [
        b"",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"\x76\x2f\x31\x01\x02\x00\x00\x00",  # OpenEXR
        b"PK\x03\x04\x14\x00\x00\x00",  # zip
        b"blender-v405",  # lower case is not Blender's magic
        b"BLENDE",  # a prefix of the magic is not enough
        b"\x1f",  # half of the gzip magic
        b"\x28\xb5\x2f",  # three quarters of the zstd magic
        b" BLENDER-v405",  # the magic must be at offset 0
    ],
    ids=["empty", "png", "exr", "zip", "lowercase", "short", "half-gzip", "short-zstd", "offset"],
)
def test_other_bytes_are_not_blend(first_bytes):
    assert looks_like_blend(first_bytes) is False


def test_real_saved_blend_header_is_recognised(tmp_path):
    # A header as Blender 4.5 writes it, followed by the first block code, read back from disk.
    path = tmp_path / "scene.blend"
    path.write_bytes(b"BLENDER-v405REND" + bytes(64))

    with path.open("rb") as handle:
        assert looks_like_blend(handle.read(MAGIC_PREFIX_BYTES)) is True
