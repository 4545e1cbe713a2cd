"""Small real PNG files for upload tests (written with zlib, no imaging library)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(path: Path, width: int, height: int, rgb: tuple[int, int, int]) -> Path:
    """A ``width`` x ``height`` PNG of two bands (``rgb`` and white), at ``path``."""
    rows = b"".join(
        b"\x00" + (bytes(rgb) if y < height // 2 else b"\xff\xff\xff") * width
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )
    return path
