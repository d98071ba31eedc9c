"""MATLAB v5 MAT-files (MATLAB's `save -v7`, scipy.io.savemat): the numeric arrays, read without scipy.

Why our own reader: importing scipy.io pulls in scipy.sparse, a noticeable part of the time of
coding a small cube; the format of numeric arrays is a short tagged
layout (MathWorks, "MAT-File Format", version 5). What this reads is exactly what
scipy.io.loadmat returns by default (the stored type, Fortran order, at least two dimensions);
anything else in a file (cells, structs, characters, sparse, logical or complex arrays,
big-endian files, MATLAB 4 files) raises Unsupported, and the caller reads that file with scipy.

Layout: a 128-byte header (text, subsystem offset, version 0x0100, "IM" for little-endian), then
data elements, each a tag (u32 type, u32 byte count; a "small" element packs both in the first
four bytes and its data in the next four) and its data padded to 8 bytes. A variable is an
miMATRIX element (or an miCOMPRESSED one holding a zlib stream of one): array flags (class in
the low byte), dimensions (int32), name (int8), then the real part in any numeric storage type.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

# storage types (miINT8 ... miUINT64) -> numpy, little-endian
STORAGE = {1: "i1", 2: "u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 9: "<f8", 12: "<i8", 13: "<u8"}
MATRIX, COMPRESSED = 14, 15
# numeric array classes (mxDOUBLE_CLASS ... mxUINT64_CLASS) -> the names scipy.io.whosmat gives
CLASSES = {6: "double", 7: "single", 8: "int8", 9: "uint8", 10: "int16", 11: "uint16", 12: "int32", 13: "uint32",
           14: "int64", 15: "uint64"}
COMPLEX_FLAG, LOGICAL_FLAG = 0x0800, 0x0200
PEEK = 1 << 12  # decompressed bytes enough for a compressed variable's flags, dimensions and name


class Unsupported(Exception):
    """Something in the file this reader does not read (scipy.io does), or a damaged file: read
    with scipy.io, whose message the user then gets."""


class Damaged(ValueError):
    """A variable that variables() listed cannot be read (the file is truncated or inconsistent)."""


@dataclass
class Variable:
    name: str
    shape: tuple[int, ...]
    mclass: str  # "double", "single", "uint16", ...
    offset: int  # of its element's tag in the file
    size: int  # bytes of the element's data
    compressed: bool


def _tag(buf: bytes, pos: int) -> tuple[int, int, int, int]:
    """(type, byte count, data start, next element) of the tag at `pos`."""
    if pos + 8 > len(buf):
        raise Unsupported("a truncated element")
    first, count = struct.unpack_from("<II", buf, pos)
    if first >> 16:  # small data element: type and count in one word, data in the next four bytes
        return first & 0xFFFF, first >> 16, pos + 4, pos + 8
    end = pos + 8 + count
    return first, count, pos + 8, end + (-end % 8)


def _header(body: bytes) -> tuple[str, tuple[int, ...], int, int]:
    """(name, dimensions, class code, position of the real part) of an miMATRIX element's data."""
    t, n, start, pos = _tag(body, 0)
    if t != 6 or n != 8:
        raise Unsupported("array flags")
    flags = struct.unpack_from("<I", body, start)[0]
    mclass = flags & 0xFF
    if mclass not in CLASSES or flags & (COMPLEX_FLAG | LOGICAL_FLAG):
        raise Unsupported(f"an array of class {mclass} (flags {flags:#x})")
    t, n, start, pos = _tag(body, pos)
    if t != 5 or n % 4 or n < 8:
        raise Unsupported("dimensions")
    dims = struct.unpack_from(f"<{n // 4}i", body, start)
    if min(dims) < 0:
        raise Unsupported("negative dimensions")
    t, n, start, pos = _tag(body, pos)
    if t not in (1, 2):
        raise Unsupported("array name")
    name = body[start:start + n].decode("ascii", "replace")
    return name, tuple(int(d) for d in dims), mclass, pos


def _array(body: bytes) -> np.ndarray:
    _, dims, _, pos = _header(body)
    t, n, start, _ = _tag(body, pos)
    if t not in STORAGE:
        raise Unsupported(f"storage type {t}")
    dtype = np.dtype(STORAGE[t])
    count = int(np.prod(dims, dtype=np.int64))
    if n != count * dtype.itemsize or start + n > len(body):
        raise Unsupported("a real part of the wrong size")
    flat = np.frombuffer(body, dtype, count, start)
    return flat.reshape(dims, order="F").copy(order="K")  # writable, in its own memory, like scipy's


def variables(f: BinaryIO) -> list[Variable]:
    """Every variable of a MAT v5 file open for reading (binary, seekable), without reading its data
    (read() does); Unsupported for a file holding anything else than real numeric arrays."""
    head = f.read(128)
    if len(head) < 128 or head[126:128] != b"IM" or head[124:126] != b"\x00\x01":
        raise Unsupported("not a little-endian MAT version 5 file")
    out = []
    while True:
        at = f.tell()
        tag = f.read(8)
        if not tag:
            return out
        t, n, _, _ = _tag(tag, 0)
        compressed = t == COMPRESSED
        if compressed:
            peek = zlib.decompressobj().decompress(f.read(min(n, PEEK)), PEEK)
            t, _, start, _ = _tag(peek, 0)
            if t != MATRIX:
                raise Unsupported(f"a compressed element of type {t}")
            name, dims, mclass, _ = _header(peek[start:])
            nxt = at + 8 + n  # compressed elements are not padded
        elif t == MATRIX:
            body = f.read(min(n, PEEK))
            name, dims, mclass, _ = _header(body)
            nxt = at + 8 + n + (-n % 8)
        else:
            raise Unsupported(f"an element of type {t}")

        out.append(Variable(name, dims, CLASSES[mclass], at, n, compressed))
        f.seek(nxt)


def read(f: BinaryIO, var: Variable) -> np.ndarray:
    """The array of a variable that variables(f) listed (the same file, open); Damaged when the
    file cannot give it (zlib.error for a damaged compressed element)."""
    f.seek(var.offset + 8)
    data = f.read(var.size)
    if len(data) != var.size:
        raise Damaged(f"MAT-file variable {var.name!r} is truncated")
    try:
        if var.compressed:
            data = zlib.decompress(data)
            _, count, start, _ = _tag(data, 0)
            data = data[start:start + count]
        return _array(data)
    except Unsupported as exc:
        raise Damaged(f"MAT-file variable {var.name!r}: {exc}") from None
