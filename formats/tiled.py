"""Tiled .hnr files (format 2.0): one network per spatial tile, all in one file, read tile by tile.

Large scenes are fitted tile by tile (bounded memory, tiles in parallel); the file keeps the
cube-wide chunks of format 1.0 (HHDR, BNDS, WAVE) once, a tile index (TIDX) that says where each
tile's rectangle is and at which byte its TILE chunk starts, then one TILE chunk per tile. A reader
that wants a window reads the head, then seeks to the tiles that touch it and nothing else.
Layout in HNR.md, "Tiled files (format 2.0)".
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Optional, Sequence, Union

import numpy as np

from hinercodec.errors import CorruptFileError, UnsupportedFileError

from .container import Chunk, check_signature, chunk_offsets, is_critical, read_chunk_at, read_chunks, write_chunks
from .hnrfile import (HHDR_LAYOUT, HnrFile, bands_array, read_bands, read_header, read_wave, unzjson,
                      wave_payload, zjson, zstd_frame, band_positions, dtype_code, unpack)
from .tensors import pack_tensors, unpack_tensors

TILED_VERSION = (2, 0)
_U32 = struct.Struct("<I")
_ENTRY = struct.Struct("<QI")  # TIDX per tile: byte offset of its TILE chunk, its data length
_TILE_HEAD = struct.Struct("<II")  # TILE: tile number, MODL frame length
_HEAD_TYPES = ("HHDR", "BNDS", "WAVE", "TIDX")  # critical chunks before the tiles, in this order
_MAX_TILES = 1 << 20


@dataclass(frozen=True)
class TileGrid:
    """A grid of tiles given by its row and column edges (0 = first, last = H or W), row-major.

    Each tile's network covers its core rectangle grown by `overlap` pixels on every side (clipped
    to the image); where two tiles overlap the decoder blends them with linear weights that sum to
    one, so a tile's edge pixels, which a network fits worst, never show as a seam.
    """

    y_edges: tuple[int, ...]
    x_edges: tuple[int, ...]
    overlap: int = 0

    @classmethod
    def split(cls, height: int, width: int, tile: int, overlap: int = 0) -> "TileGrid":
        """Near-equal tiles of at most `tile` x `tile` core pixels (one tile when the cube fits)."""
        def edges(n: int) -> tuple[int, ...]:
            count = max(1, -(-n // tile))
            return tuple(int(round(i * n / count)) for i in range(count + 1))
        ys, xs = edges(height), edges(width)
        smallest = min(min(b - a for a, b in zip(e, e[1:])) for e in (ys, xs))
        return cls(ys, xs, min(overlap, smallest // 2) if len(ys) + len(xs) > 4 else 0)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.y_edges) - 1, len(self.x_edges) - 1

    def __len__(self) -> int:
        return self.shape[0] * self.shape[1]

    def rect(self, i: int) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1): the core of tile i (the tiles' cores cover the image once)."""
        r, c = divmod(i, self.shape[1])
        return self.y_edges[r], self.y_edges[r + 1], self.x_edges[c], self.x_edges[c + 1]

    def fit_rect(self, i: int) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1): the pixels tile i's network produces (core + overlap, inside the image)."""
        y0, y1, x0, x1 = self.rect(i)
        m = self.overlap
        return max(0, y0 - m), min(self.y_edges[-1], y1 + m), max(0, x0 - m), min(self.x_edges[-1], x1 + m)

    def weights(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Blending weights of tile i over its fit_rect rows and columns (outer product = 2-D weight).

        Across an inner border e the weight falls linearly from 1 to 0 over [e - m, e + m) and the
        neighbour's rises by as much, so the weights of all tiles sum to one at every pixel."""
        y0, y1, x0, x1 = self.rect(i)
        f0, f1, g0, g1 = self.fit_rect(i)
        return (self._ramp(np.arange(f0, f1) + 0.5, y0, y1, self.y_edges),
                self._ramp(np.arange(g0, g1) + 0.5, x0, x1, self.x_edges))

    def _ramp(self, centres: np.ndarray, lo: int, hi: int, edges: tuple[int, ...]) -> np.ndarray:
        m = self.overlap
        w = np.ones_like(centres)
        if m == 0:
            return w
        if lo != edges[0]:
            w = np.minimum(w, np.clip((centres - (lo - m)) / (2 * m), 0.0, 1.0))
        if hi != edges[-1]:
            w = np.minimum(w, np.clip(((hi + m) - centres) / (2 * m), 0.0, 1.0))
        return w

    def touching(self, y0: int, y1: int, x0: int, x1: int) -> list[int]:
        """The tiles whose networks cover some pixel of the window [y0, y1) x [x0, x1)."""
        out = []
        for i in range(len(self)):
            f0, f1, g0, g1 = self.fit_rect(i)
            if f0 < y1 and f1 > y0 and g0 < x1 and g1 > x0:
                out.append(i)
        return out


@dataclass
class Tile:
    """One tile's network: its configuration (MODL) and quantised tensors (TENS)."""

    model_config: dict
    tensors: list  # list[formats.tensors.QuantTensor]
    coder: Optional[int] = None  # TENS coder (formats.tensors.pack_tensors): None picks the smallest


@dataclass(eq=False)
class TiledHead:
    """Everything of a tiled file except the tiles: what a window reader needs first."""

    height: int
    width: int
    bands: int
    dtype: np.dtype
    band_offset: np.ndarray  # float32 [C], cube-wide (every tile uses the same normalisation)
    band_scale: np.ndarray
    wavelengths: Optional[np.ndarray]
    grid: TileGrid
    meta: dict = field(default_factory=dict)
    version: tuple[int, int] = TILED_VERSION
    entries: list = field(default_factory=list)  # per tile (offset, length) of its TILE chunk data
    chunk_sizes: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.bands)

    def band_positions(self) -> np.ndarray:
        return band_positions(self.wavelengths, self.bands)


# ---------------------------------------------------------------- writing

def _tidx(grid: TileGrid, entries: Sequence[tuple[int, int]]) -> bytes:
    rows, cols = grid.shape
    parts = [_U32.pack(rows), _U32.pack(cols), _U32.pack(grid.overlap)]
    parts += [_U32.pack(v) for v in grid.y_edges + grid.x_edges]
    parts += [_ENTRY.pack(off, length) for off, length in entries]
    return b"".join(parts)


def tile_data(i: int, tile: Tile) -> bytes:
    modl = zjson(tile.model_config)
    return _TILE_HEAD.pack(i, len(modl)) + modl + pack_tensors(tile.tensors, tile.coder)


def pack_tiled(head: TiledHead, tiles: Sequence[Tile]) -> bytes:
    """The complete tiled file; deterministic byte for byte."""
    grid = head.grid
    if len(tiles) != len(grid):
        raise ValueError(f"{len(tiles)} tiles for a grid of {len(grid)}")
    if grid.y_edges[-1] != head.height or grid.x_edges[-1] != head.width:
        raise ValueError("the tile grid does not cover the cube")
    hhdr = HHDR_LAYOUT.pack(*TILED_VERSION, dtype_code(head.dtype), 0, head.height, head.width, head.bands)
    offset = bands_array(head.band_offset, head.bands, "band_offset")
    scale = bands_array(head.band_scale, head.bands, "band_scale")
    before = [Chunk("HHDR", hhdr)]
    if head.meta:
        before.append(Chunk("meta", zjson(head.meta)))
    before += [Chunk("BNDS", zstd_frame(offset.astype("<f4").tobytes() + scale.astype("<f4").tobytes())),
               Chunk("WAVE", wave_payload(head.wavelengths, head.bands))]
    bodies = [Chunk("TILE", tile_data(i, t)) for i, t in enumerate(tiles)]
    # TIDX's size does not depend on the offsets it holds: lay out with zeros, then fill them in.
    placeholder = Chunk("TIDX", _tidx(grid, [(0, 0)] * len(tiles)))
    offsets = chunk_offsets(before + [placeholder] + bodies)[len(before) + 1:]
    index = Chunk("TIDX", _tidx(grid, [(off, len(b.data)) for off, b in zip(offsets, bodies)]))
    return write_chunks(before + [index] + bodies + [Chunk("HEND", b"")])


# ---------------------------------------------------------------- reading

def _read_tidx(data: bytes, height: int, width: int) -> tuple[TileGrid, list[tuple[int, int]]]:
    if len(data) < 12:
        raise CorruptFileError(f"TIDX chunk of {len(data)} bytes is too short")
    rows, cols, overlap = (_U32.unpack_from(data, k)[0] for k in (0, 4, 8))
    if not (1 <= rows and 1 <= cols and rows * cols <= _MAX_TILES):
        raise CorruptFileError(f"TIDX declares a {rows} x {cols} tile grid")
    n_edges = rows + cols + 2
    expected = 12 + 4 * n_edges + _ENTRY.size * rows * cols
    if len(data) != expected:
        raise CorruptFileError(f"TIDX chunk is {len(data)} bytes, expected {expected}")
    edges = struct.unpack_from(f"<{n_edges}I", data, 12)
    y_edges, x_edges = tuple(edges[:rows + 1]), tuple(edges[rows + 1:])
    for name, e, end in (("row", y_edges, height), ("column", x_edges, width)):
        if e[0] != 0 or e[-1] != end or any(b <= a for a, b in zip(e, e[1:])):
            raise CorruptFileError(f"TIDX {name} edges {list(e)} do not split 0..{end} into tiles")
    smallest = min(b - a for e in (y_edges, x_edges) for a, b in zip(e, e[1:]))
    if 2 * overlap > smallest:
        raise CorruptFileError(f"TIDX overlap {overlap} is more than half the smallest tile ({smallest} pixels)")
    pos = 12 + 4 * n_edges
    entries = [_ENTRY.unpack_from(data, pos + k * _ENTRY.size) for k in range(rows * cols)]
    return TileGrid(y_edges, x_edges, overlap), entries


def _head_from(chunks: list[Chunk]) -> TiledHead:
    """The head of a tiled file from its chunks up to TIDX (ancillary ones in between allowed)."""
    version, dtype, height, width, bands = read_header(chunks[0].data)
    if version[0] != TILED_VERSION[0]:
        raise CorruptFileError(f"format {version[0]}.{version[1]} file read as a tiled (2.x) file")
    crit = [c for c in chunks if is_critical(c.type)]
    types = [c.type for c in crit]
    for t in types:
        if t not in _HEAD_TYPES + ("TILE", "HEND"):
            raise UnsupportedFileError(f"needs a newer hinerc: unknown critical chunk '{t}'")
    if tuple(types[:4]) != _HEAD_TYPES:
        raise CorruptFileError(f"chunks out of order: {' '.join(types[:4])} (expected {' '.join(_HEAD_TYPES)})")
    metas = [c.data for c in chunks if c.type == "meta"]
    if len(metas) > 1:
        raise CorruptFileError("duplicate meta chunk")
    offset, scale = read_bands(crit[1].data, bands)
    grid, entries = _read_tidx(crit[3].data, height, width)
    sizes: dict[str, int] = {}
    for c in chunks:
        sizes[c.type] = sizes.get(c.type, 0) + len(c.data) + 12
    return TiledHead(height=height, width=width, bands=bands, dtype=dtype, band_offset=offset, band_scale=scale,
                     wavelengths=read_wave(crit[2].data, bands), grid=grid,
                     meta=unzjson(metas[0], "meta") if metas else {}, version=version, entries=entries,
                     chunk_sizes=sizes)


def _tile_from(data: bytes, i: int) -> Tile:
    if len(data) < _TILE_HEAD.size:
        raise CorruptFileError(f"TILE chunk of {len(data)} bytes is too short")
    number, n_modl = _TILE_HEAD.unpack_from(data)
    if number != i:
        raise CorruptFileError(f"TILE chunk number {number} found where the index puts tile {i}")
    if n_modl > len(data) - _TILE_HEAD.size:
        raise CorruptFileError(f"TILE {i} declares a model of {n_modl} bytes, only {len(data) - 8} remain")
    config = unzjson(data[8:8 + n_modl], f"TILE {i} model")
    return Tile(model_config=config, tensors=unpack_tensors(data[8 + n_modl:]))


def unpack_tiled(data: bytes) -> tuple[TiledHead, list[Tile]]:
    """Parse and validate a whole tiled file (every chunk's CRC, the index against the layout)."""
    chunks = read_chunks(data)
    if chunks[0].type != "HHDR":
        raise CorruptFileError(f"first chunk is '{chunks[0].type}', not HHDR")
    head = _head_from(chunks)
    offsets = chunk_offsets(chunks)
    tiles_at = [(off, c) for off, c in zip(offsets, chunks) if c.type == "TILE"]
    crit = [c.type for c in chunks if is_critical(c.type)]
    if crit[4:] != ["TILE"] * len(head.grid) + ["HEND"]:
        raise CorruptFileError(f"the index lists {len(head.grid)} tiles but the file holds {len(tiles_at)} "
                               "TILE chunks (or they are out of place)")
    tiles = []
    for i, ((off, chunk), (want_off, want_len)) in enumerate(zip(tiles_at, head.entries)):
        if off != want_off or len(chunk.data) != want_len:
            raise CorruptFileError(f"tile {i} is at byte {off} ({len(chunk.data)} bytes); the index says "
                                   f"{want_off} ({want_len} bytes)")
        tiles.append(_tile_from(chunk.data, i))
    return head, tiles


class TiledReader:
    """Random access to a tiled file on a seekable stream: the head once, then any tile by number.

    Only the chunks asked for are read and checked (each has its CRC): decoding a window of a large
    file touches the head and the tiles under the window, nothing else.
    """

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        stream.seek(0, os.SEEK_END)
        self.size = stream.tell()
        pos = check_signature(stream)
        chunks: list[Chunk] = []
        while True:
            chunk, pos = read_chunk_at(stream, pos, self.size)
            if not chunks and chunk.type != "HHDR":
                raise CorruptFileError(f"first chunk is '{chunk.type}', not HHDR")
            chunks.append(chunk)
            if chunk.type == "TIDX" or chunk.type == "HEND" or len(chunks) > 64:
                break
        self.head = _head_from(chunks)
        last = max(off + 12 + length for off, length in self.head.entries)
        if last + 12 > self.size:
            raise CorruptFileError(f"truncated .hnr file ({self.size} bytes; its tiles end at byte {last})")
        self.reads = 0  # TILE chunks read so far (tests check that a window reads only its tiles)

    def tile(self, i: int) -> Tile:
        if not 0 <= i < len(self.head.grid):
            raise IndexError(i)
        off, length = self.head.entries[i]
        chunk, _ = read_chunk_at(self.stream, off, self.size)
        if chunk.type != "TILE" or len(chunk.data) != length:
            raise CorruptFileError(f"tile {i}: the index points at a '{chunk.type}' chunk of {len(chunk.data)} "
                                   f"bytes at byte {off}")
        self.reads += 1
        return _tile_from(chunk.data, i)


def major_version(data_or_stream: Union[bytes, BinaryIO]) -> int:
    """The format's major version from the first bytes (1: whole cube, 2: tiled); 0 if unreadable.

    Used to choose the reader; each reader then validates everything itself."""
    if isinstance(data_or_stream, (bytes, bytearray, memoryview)):
        head = bytes(data_or_stream[:18])
    else:
        data_or_stream.seek(0)
        head = data_or_stream.read(18)
    return head[16] if len(head) >= 17 and head[12:16] == b"HHDR" else 0


def read_any(data: bytes) -> Union[HnrFile, tuple[TiledHead, list[Tile]]]:
    """A whole file of either layout, validated."""
    if major_version(data) == TILED_VERSION[0]:
        return unpack_tiled(data)
    return unpack(data)


def open_stream(stream: BinaryIO) -> Union[HnrFile, TiledReader]:
    """A file on a seekable stream: a tiled file opened for random access, any other read whole."""
    if major_version(stream) == TILED_VERSION[0]:
        return TiledReader(stream)
    stream.seek(0)
    return unpack(stream.read())
