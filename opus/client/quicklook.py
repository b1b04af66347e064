"""The quick-look PNG of a FITS image: a grayscale picture of at most ``MAX_SIDE`` pixels
a side, read without loading the image.

The plane (astro.ImageInfo: the primary HDU's or first image extension's, the first
plane of a cube) is sampled every ``step`` rows and columns, ``step`` chosen so that
the picture fits in MAX_SIDE: only the rows sampled are read (by seek and read, in
pieces of at most ``CHUNK`` bytes; a column step past a piece reads single pixels).
The file is not memory-mapped: a result truncated while it is mapped would kill the
server with SIGBUS, and a read of a short file is only a short read (NotPreviewable).
Pixels are scaled by BSCALE/BZERO (BLANK is no value), their display range is astropy's
ZScaleInterval (the min and max when it cannot tell), and the picture is flipped so
that FITS's first row is at the bottom, as astronomers draw it. The PNG is 8-bit
grayscale, written with zlib (no imaging library).
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from opus.client.astro import BITPIX, ImageInfo, NotPreviewable

MAX_SIDE = 1024
CHUNK = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def step_for(info: ImageInfo, side: int = MAX_SIDE) -> int:
    """Every how many rows and columns a pixel is taken."""
    return max(1, math.ceil(max(info.width, info.height) / side))


def _exact(stream: BinaryIO, offset: int, size: int) -> bytes:
    stream.seek(offset)
    data = stream.read(size)
    if len(data) < size:
        raise NotPreviewable("the file is shorter than its FITS header says")
    return data


def read_row(stream: BinaryIO, info: ImageInfo, row: int, step: int) -> npt.NDArray[np.float64]:
    """Every ``step``-th pixel of one row of the plane."""
    dtype = np.dtype(BITPIX[info.bitpix])
    size = dtype.itemsize
    start = info.offset + row * info.width * size
    if step * size > CHUNK:
        pixels = [
            np.frombuffer(_exact(stream, start + column * size, size), dtype)[0]
            for column in range(0, info.width, step)
        ]
        return np.array(pixels, dtype=np.float64)
    piece = max(1, CHUNK // (step * size)) * step  # pixels per read, a multiple of step
    parts = []
    for first in range(0, info.width, piece):
        count = min(piece, info.width - first)
        data = _exact(stream, start + first * size, count * size)
        parts.append(np.frombuffer(data, dtype)[::step].astype(np.float64))
    return np.concatenate(parts)


def sample(stream: BinaryIO, info: ImageInfo, side: int = MAX_SIDE) -> npt.NDArray[np.float64]:
    """The plane sampled to at most ``side`` pixels a side, scaled (NaN for BLANK)."""
    step = step_for(info, side)
    rows = [read_row(stream, info, row, step) for row in range(0, info.height, step)]
    values = np.vstack(rows)
    if info.blank is not None:
        values[values == info.blank] = np.nan
    if info.bscale != 1.0 or info.bzero != 0.0:
        values = values * info.bscale + info.bzero
    return values


def display_range(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    """The range shown from black to white: ZScale, else min to max."""
    from astropy.visualization import ZScaleInterval

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    try:
        low, high = (float(v) for v in ZScaleInterval().get_limits(finite))
    except (ValueError, IndexError, ZeroDivisionError):
        low, high = float(finite.min()), float(finite.max())
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        low, high = float(finite.min()), float(finite.max())
    return (low, high) if high > low else (low, low + 1.0)


def to_gray(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """8-bit gray levels of the values, FITS's first row at the bottom."""
    low, high = display_range(values)
    with np.errstate(invalid="ignore"):
        scaled = np.clip((values - low) / (high - low), 0.0, 1.0) * 255.0
    gray = np.nan_to_num(scaled, nan=0.0).round().astype(np.uint8)
    return np.ascontiguousarray(gray[::-1])


def _chunk(kind: bytes, data: bytes) -> bytes:
    checksum = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)


def encode_png(gray: npt.NDArray[np.uint8]) -> bytes:
    """An 8-bit grayscale PNG of a 2-D array (filter 0 on every row)."""
    height, width = gray.shape
    lines = np.zeros((height, width + 1), dtype=np.uint8)
    lines[:, 1:] = gray
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(lines.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


def quicklook_png(stream: BinaryIO, info: ImageInfo, side: int = MAX_SIDE) -> bytes:
    """The quick-look PNG of an image (NotPreviewable if its data cannot be read)."""
    try:
        values = sample(stream, info, side)
    except (OSError, EOFError, ValueError) as exc:  # a broken gzip stream, a bad buffer
        raise NotPreviewable(f"the image cannot be read: {exc}") from None
    return encode_png(to_gray(values))
