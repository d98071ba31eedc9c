"""Large cubes: split into tiles, fit each tile on its own, write one tiled .hnr (format 2.0).

Why tiles: fitting one network to a 1000 x 1000 x 224 scene needs the whole cube (and the
network's activations) in memory at once, and cannot use more than one process. A tile is read
from the file alone (h5py slicing), fitted alone (so tiles can run as separate tasks: processes,
GPUs, a Dask cluster: `map_fn`), and decoded alone (windows of a large file read only their
tiles). What the tiles share is fixed before any fit: the cube-wide band normalisation and the
byte budget of each tile.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from . import registry
from .codecs.base import LOW, Budget, stored_tensor
from .cube import normalised
from .decoder import Decoder
from .errors import RequestError
from .formats import cubeio
from .formats.hnrfile import HnrFile, band_normalisation, pack, unpack
from .formats.tiled import Tile, TiledHead, TileGrid, pack_tiled, tile_data
from .jobs import run_encoder
from .metrics import StreamingDistortion
from .options import EncodeOptions

DEFAULT_TILE = 512  # pixels per side: a tile of 512 x 512 x 224 fits in ~2 GB while fitting
OVERLAP = 8  # pixels each tile's network reaches into its neighbours, blended (no visible seams)
MapFn = Callable[[Callable, Iterable], Iterable]


# ---------------------------------------------------------------------------------------- sources

@dataclass(frozen=True)
class FileWindow:
    """A window of a cube file, read when called (picklable: a remote task reads its own tile)."""

    path: str
    key: Optional[str]
    rect: tuple[int, int, int, int]

    def __call__(self) -> np.ndarray:
        with cubeio.open_cube(self.path, key=self.key) as reader:
            return reader.read(*self.rect)


@dataclass(frozen=True)
class OrientedFileWindow:
    """A window of a cube file stored in another axis order (--layout), read when called (picklable)."""

    path: str
    key: Optional[str]
    layout: str
    rect: tuple

    def __call__(self) -> np.ndarray:
        with cubeio.open_cube(self.path, key=self.key, layout=self.layout) as reader:
            return reader.read(*self.rect)


@dataclass(frozen=True)
class ArrayWindow:
    """A window of a cube already in memory."""

    data: np.ndarray

    def __call__(self) -> np.ndarray:
        return self.data


@dataclass
class Survey:
    """What one streaming pass over the cube learns: per-band range and per-tile roughness."""

    lo: np.ndarray  # float64 [C]
    hi: np.ndarray  # float64 [C]
    rough: np.ndarray  # [tiles, C] sum of squared Laplacian residuals (raw units)
    pixels: np.ndarray  # [tiles]


def survey(read: Callable[[int, int, int, int], np.ndarray], grid: TileGrid, bands: int) -> Survey:
    """One pass, tile by tile (bounded memory): band minima/maxima and each tile's high-pass energy."""
    lo, hi = np.full(bands, np.inf), np.full(bands, -np.inf)
    rough, pixels = np.zeros((len(grid), bands)), np.zeros(len(grid))
    for i in range(len(grid)):
        x = read(*grid.fit_rect(i)).astype(np.float64)
        lo, hi = np.minimum(lo, x.min(axis=(0, 1))), np.maximum(hi, x.max(axis=(0, 1)))
        if x.shape[0] >= 3 and x.shape[1] >= 3:
            centre = x[1:-1, 1:-1]
            lap = 4 * centre - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
            rough[i] = (lap ** 2).sum(axis=(0, 1)) / max(1, lap.shape[0] * lap.shape[1]) * x.shape[0] * x.shape[1]
        pixels[i] = x.shape[0] * x.shape[1]
    return Survey(lo, hi, rough, pixels)


def tile_shares(s: Survey, scale: np.ndarray, split: str) -> np.ndarray:
    """Fraction of the byte pool each tile gets.

    "equal": by pixel count. "difficulty": reverse water-filling on each tile's high-pass variance
    (normalised units): bits_i = n_i max(0, log2(sigma_i / theta)), as for Gaussian sources at equal
    distortion, bounded to 0.5..2 times the equal share so no tile starves.
    """
    equal = s.pixels / s.pixels.sum()
    if split == "equal" or len(s.pixels) == 1:
        return equal
    if split != "difficulty":
        raise ValueError(f"unknown split {split!r}")
    safe = np.where(scale > 0, scale, 1.0)
    var = (s.rough / safe[None, :] ** 2).mean(axis=1) / np.maximum(s.pixels, 1) + 1e-12
    log_sigma = 0.5 * np.log2(var)
    # Shares proportional to n_i * (log_sigma_i - log_theta), with theta where the weakest tile is at
    # half the equal share's bits: a simple, monotone rule (the exact theta hardly matters once clipped).
    excess = log_sigma - log_sigma.min() + 1.0
    raw = s.pixels * excess
    shares = np.clip(raw / raw.sum(), 0.5 * equal, 2.0 * equal)
    return shares / shares.sum()


# ---------------------------------------------------------------------------------------- tasks

@dataclass
class TileTask:
    """Everything one tile's fit needs (picklable, so that it can run in another process)."""

    index: int
    rect: tuple[int, int, int, int]
    window: Callable[[], np.ndarray]
    offset: np.ndarray  # float32 [C] cube-wide
    scale: np.ndarray  # float32 [C]
    wavelengths: Optional[np.ndarray]
    dtype: np.dtype
    budget: Budget  # for the tile's stand-alone 1.0 file
    options: EncodeOptions
    progress: Optional[Callable] = None  # local runs only: tasks sent to other processes carry None


def fit_tile(task: TileTask) -> tuple[int, bytes, dict]:
    """Fit one tile: (index, its stand-alone 1.x file, stats). Runs in whichever process gets it."""
    started = time.perf_counter()
    opts = task.options
    target = normalised(task.window(), task.offset, task.scale)
    try:
        data, stats = run_encoder(target, task.dtype, task.offset, task.scale, task.wavelengths, task.budget, opts,
                                  task.progress, seed=opts.seed + task.index, note=f"tile {task.index + 1}: ")
    except RequestError as exc:
        y0, y1, x0, x1 = task.rect
        raise RequestError(f"tile {task.index + 1} (rows {y0}:{y1}, columns {x0}:{x1}): {exc} "
                           "(use a higher rate or larger tiles, --tile)") from None
    return task.index, data, {**stats, "seconds": time.perf_counter() - started, "bytes": len(data)}


# ---------------------------------------------------------------------------------------- encode

def _standalone_extra(head: TiledHead, payload: bool) -> int:
    """Bytes a tile's stand-alone 1.x file has beyond what the same tile adds to the tiled file.
    A codec with its own bitstream has it in CODE alone and as a stored byte tensor in its TILE
    (a few bytes of tensor header more; 8 bytes of margin cover the varints of any length)."""
    body = np.random.default_rng(0).bytes(1000) if payload else None  # incompressible, like a payload
    probe = Tile({}, [stored_tensor(body)] if payload else [])
    alone = pack(HnrFile(height=1, width=1, bands=head.bands, dtype=head.dtype, band_offset=head.band_offset,
                         band_scale=head.band_scale, wavelengths=head.wavelengths, model_config={}, tensors=[],
                         meta=head.meta, payload=body))
    return len(alone) - (len(tile_data(0, probe)) + 12) - (8 if payload else 0)


def plan(shape: tuple[int, int, int], dtype: np.dtype, wavelengths: Optional[np.ndarray],
         read: Callable[[int, int, int, int], np.ndarray], window_of: Callable[[tuple], Callable[[], np.ndarray]],
         options, tile: int, split: str, meta: dict) -> tuple[TiledHead, list[TileTask], Survey]:
    """The head of the file and one task per tile, budgets shared out before any fit."""
    h, w, c = shape
    grid = TileGrid.split(h, w, tile, OVERLAP)
    s = survey(read, grid, c)
    offset, scale = band_normalisation(s.lo, s.hi)
    head = TiledHead(height=h, width=w, bands=c, dtype=np.dtype(dtype), band_offset=offset, band_scale=scale,
                     wavelengths=None if wavelengths is None else np.asarray(wavelengths, np.float64), grid=grid,
                     meta=meta)
    total = Budget.from_bpppb(options.bpppb, shape)
    fixed = len(pack_tiled(head, [Tile({}, [])] * len(grid))) - len(grid) * len(tile_data(0, Tile({}, [])))
    pool = total.bytes - fixed
    extra = _standalone_extra(head, registry.codec(options.model).payload)
    shares = tile_shares(s, scale.astype(np.float64), split) * pool
    tasks = []
    for i, share in enumerate(shares):
        budget = Budget(bytes=int(math.floor(share)) + extra, floor=int(math.ceil(LOW * share)) + extra)
        tasks.append(TileTask(index=i, rect=grid.fit_rect(i), window=window_of(grid.fit_rect(i)), offset=offset,
                              scale=scale,
                              wavelengths=head.wavelengths, dtype=np.dtype(dtype), budget=budget, options=options))
    return head, tasks, s


def assemble(head: TiledHead, results: Sequence[tuple[int, bytes, dict]]) -> bytes:
    """The tiled file from the tiles' stand-alone files (any order)."""
    tiles: list[Optional[Tile]] = [None] * len(head.grid)
    for index, data, _ in results:
        f = unpack(data)  # a tile's payload travels in its TILE chunk as one stored byte tensor
        tiles[index] = Tile(f.model_config, f.tensors if f.payload is None else [stored_tensor(f.payload)])
    missing = [i for i, t in enumerate(tiles) if t is None]
    if missing:
        raise RuntimeError(f"tiles {missing} were not fitted")
    return pack_tiled(head, tiles)  # type: ignore[arg-type]


def measure(data: bytes, read: Callable[[int, int, int, int], np.ndarray], s: Survey, device: str) -> dict:
    """PROTOCOL.md distortion of the tiled file against the source, tile by tile (bounded memory)."""
    dec = Decoder(data, device)
    acc = StreamingDistortion(s.lo, s.hi)
    grid = dec.grid
    for i in range(len(grid)):  # core by core: bounded memory (each network runs for up to 9 cores)
        y0, y1, x0, x1 = grid.rect(i)
        acc.add(read(y0, y1, x0, x1), dec.bands(window=(y0, y1, x0, x1)))
    return acc.result().as_dict()
