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
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from . import nodata as nodata_pixels
from . import parallel
from . import registry
from .codecs.base import LOW, Budget, stored_tensor
from .cube import normalised
from .decoder import Decoder
from .errors import InputError, RequestError
from .formats import cubeio
from .formats import metadata as sensor
from .formats.hnrfile import HnrFile, band_normalisation, pack, unpack
from .formats.tensors import CODER_STORED
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
    pixels: np.ndarray  # [tiles] (with nodata: the data pixels, at least NODATA_SHARE of the tile's)
    valid: Optional[np.ndarray] = None  # (H, W) bool, the data pixels, when some are nodata


NODATA_SHARE = 0.05  # the least share of a tile's pixels its budget counts (its file has a smallest size)


SURVEY_THREADS = 2  # tiles surveyed at once (readers serve concurrent windows, as the tiles' fits read them)


def survey(read: Callable[[int, int, int, int], np.ndarray], grid: TileGrid, bands: int,
           nodata: Optional[float] = None) -> Survey:
    """One pass, tile by tile (bounded memory: SURVEY_THREADS tiles at a time): band minima/maxima
    and each tile's high-pass energy, over the data pixels; with `nodata` (a value, NaN too), the
    mask of the data pixels. Tiles are combined in order: the same survey for any thread count."""
    lo, hi = np.full(bands, np.inf), np.full(bands, -np.inf)
    rough, pixels = np.zeros((len(grid), bands)), np.zeros(len(grid))
    valid: Optional[np.ndarray] = None

    def one(i: int) -> tuple:
        y0, y1, x0, x1 = grid.fit_rect(i)
        return _survey_tile(read(y0, y1, x0, x1), nodata, bands, (y0, y1, x0, x1))

    if SURVEY_THREADS > 1 and len(grid) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(SURVEY_THREADS, len(grid))) as pool:
            found = pool.map(parallel.run_limited(one, parallel.share(SURVEY_THREADS)), range(len(grid)))
            parts = list(found)
    else:
        parts = [one(i) for i in range(len(grid))]
    for i, (t_lo, t_hi, t_rough, t_pixels, invalid) in enumerate(parts):
        y0, y1, x0, x1 = grid.fit_rect(i)
        if invalid is not None:
            if valid is None:
                valid = np.ones((grid.y_edges[-1], grid.x_edges[-1]), bool)
            valid[y0:y1, x0:x1] &= ~invalid
        pixels[i] = t_pixels
        if t_lo is None:
            continue  # nodata alone
        lo, hi = np.minimum(lo, t_lo), np.maximum(hi, t_hi)
        rough[i] = t_rough
    if valid is not None and not valid.any():
        raise InputError(f"every pixel of the cube is nodata ({nodata:g}); there is nothing to code")
    return Survey(lo, hi, rough, pixels, valid)


def _survey_tile(x: np.ndarray, nodata: Optional[float], bands: int, rect: tuple) -> tuple:
    """(band minima, maxima (None for a tile of nodata alone), high-pass energy share, pixels
    counted, the nodata pixels or None) of one tile as read."""
    y0, y1, x0, x1 = rect
    invalid = nodata_pixels.invalid_pixels(x, nodata)
    if invalid is not None and invalid.any():
        pixels = max(float(np.count_nonzero(~invalid)), NODATA_SHARE * invalid.size)
        if invalid.all():
            return None, None, None, pixels, invalid
        x = nodata_pixels.filled(x, ~invalid)
    else:
        pixels, invalid = float(x.shape[0] * x.shape[1]), None
    data = x if invalid is None else x[~invalid]
    if x.dtype.kind == "f" and not np.isfinite(data).all():
        raise InputError(f"cube holds {int((~np.isfinite(data)).sum())} NaN/Inf values in rows {y0}:{y1}, "
                         f"columns {x0}:{x1} outside its nodata pixels (a nodata pixel is NaN, or the "
                         "nodata value, in every band)")
    data = x.reshape(-1, bands) if invalid is None else x[~invalid]
    # in the cube's own dtype (exact in float64 afterwards): no float64 copy of the tile
    t_lo, t_hi = data.min(axis=0).astype(np.float64), data.max(axis=0).astype(np.float64)
    rough = np.zeros(bands)
    if x.shape[0] >= 3 and x.shape[1] >= 3:
        rough = laplacian_energy(x) / max(1, (x.shape[0] - 2) * (x.shape[1] - 2)) * pixels
    return t_lo, t_hi, rough, pixels, invalid


SURVEY_ROWS = 32  # rows of a tile converted to float64 at a time (temporaries of a few MB, reused)


def laplacian_energy(x: np.ndarray) -> np.ndarray:
    """(C,) the sum over the interior pixels of x (H x W x C, H and W >= 3) of the squared
    5-point Laplacian 4 x - (its 4 neighbours), in float64, SURVEY_ROWS rows at a time."""
    h = x.shape[0]
    total = np.zeros(x.shape[2])
    for r0 in range(1, h - 1, SURVEY_ROWS):
        r1 = min(h - 1, r0 + SURVEY_ROWS)
        b = np.asarray(x[r0 - 1:r1 + 1], np.float64)
        lap = 4.0 * b[1:-1, 1:-1]
        lap -= b[:-2, 1:-1]
        lap -= b[2:, 1:-1]
        lap -= b[1:-1, :-2]
        lap -= b[1:-1, 2:]
        lap *= lap
        total += lap.sum(axis=(0, 1))
    return total


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

HINT_LAG = 2  # a tile's step search starts from the codes the tile this many before it found (Hints)


class Hints:
    """Step codes that the tiles fitted in threads of one process hand on (speed only): tile i's
    search starts from the codes tile i - HINT_LAG found (its neighbour but one, coded with the
    same plan: its steps are usually within a few codes), not from the plan's, which a sample of
    small blocks can put far off. The search finds the same codes from any start, so the files do
    not change; and a fixed predecessor, waited for, keeps the start itself independent of which
    thread finished first. A pool that takes tasks in order never waits on a tile not yet started."""

    def __init__(self) -> None:
        self._found: dict[int, Optional[dict]] = {}
        self._ready = threading.Condition()

    def post(self, index: int, codes: Optional[dict]) -> None:
        """Tile `index` is done searching (codes: K -> step code, or None: none, or it failed); a
        second post of the same tile changes nothing."""
        with self._ready:
            self._found.setdefault(index, codes)
            self._ready.notify_all()

    def before(self, index: int) -> Optional[dict]:
        """The codes of tile index - HINT_LAG (waited for), or None for the first tiles."""
        if index < HINT_LAG:
            return None
        with self._ready:
            self._ready.wait_for(lambda: index - HINT_LAG in self._found)
            return self._found[index - HINT_LAG]


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
    nodata: Optional[float] = None  # the value of nodata pixels (NaN too) when the cube has some
    plan: Optional[dict] = None  # the codec's search plan for every tile (registry.planner), or None
    band_range: Optional[tuple] = None  # (min, max) [C] of the whole cube: the tile measures its own file's
    # distortion (tiles side by side: its pixels are decoded from it alone), partial sums in its stats
    hints: Optional[Hints] = None  # tiles fitted in threads of this process: where their step searches start


def _malloc_trim() -> Optional[Callable[[int], int]]:
    try:
        import ctypes

        return ctypes.CDLL(None).malloc_trim  # glibc
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def trim_heap() -> None:
    """Give the heap's free pages back to the system (glibc; elsewhere nothing): a tile's large
    temporaries, freed, otherwise stay resident in fragments between tiles (peak memory)."""
    if _TRIM is not None:
        _TRIM(0)


def fit_tile(task: TileTask) -> tuple[int, bytes, dict]:
    """Fit one tile: (index, its stand-alone 1.x file, stats). Runs in whichever process gets it.
    Its nodata pixels (task.nodata) go to the codec as its mask (Job.valid), filled as in api.encode;
    a tile of nodata alone is coded as a constant (the decoder writes nodata over it)."""
    try:
        return _fit_tile(task)
    finally:
        if task.hints is not None:  # (posted when its search ended; else now, whatever stopped it)
            task.hints.post(task.index, None)


def _fit_tile(task: TileTask) -> tuple[int, bytes, dict]:
    started = time.perf_counter()
    opts = task.options
    block = task.window()
    invalid = nodata_pixels.invalid_pixels(block, task.nodata)
    valid = None
    nothing = invalid is not None and bool(invalid.all())  # a tile of nodata alone
    if nothing:
        block = np.broadcast_to(task.offset.astype(np.float64), block.shape)
    elif invalid is not None and invalid.any():
        valid = ~invalid
        block = nodata_pixels.filled(block, valid)
    target = normalised(block, task.offset, task.scale)
    del block, invalid  # the tile as read: not needed once normalised (peak memory)
    keep: dict = {}
    plan = task.plan
    try:
        codes = None if task.hints is None or plan is None else task.hints.before(task.index)
        if codes:
            plan = {**plan, "step_codes": codes}
        data, stats = run_encoder(target, task.dtype, task.offset, task.scale, task.wavelengths, task.budget, opts,
                                  task.progress, seed=opts.seed + task.index, note=f"tile {task.index + 1}: ",
                                  valid=valid, plan=plan, keep=keep)
        if task.hints is not None:
            task.hints.post(task.index, keep.pop("step_codes", None))
        del target
        trim_heap()
    except RequestError as exc:
        y0, y1, x0, x1 = task.rect
        raise RequestError(f"tile {task.index + 1} (rows {y0}:{y1}, columns {x0}:{x1}): {exc} "
                           "(use a higher rate or larger tiles, --tile)") from None
    stats = {**stats, "seconds": time.perf_counter() - started, "bytes": len(data)}
    if task.band_range is not None:
        stats["distortion_sums"] = _own_distortion(task, data, valid, nothing, keep.pop("coefficients", None))
        trim_heap()
    return task.index, data, stats


def _own_distortion(task: TileTask, data: bytes, valid: Optional[np.ndarray], nothing: bool,
                    coefficients: Optional[tuple] = None) -> tuple:
    """StreamingDistortion.sums() of a tile's stand-alone file against the tile read again, over
    its data pixels (the tiled file's decode of these pixels: the same operations on them; with
    the `coefficients` its encoder left in Job.keep, the decode builds the model from them instead
    of entropy-decoding its payload)."""
    acc = StreamingDistortion(*task.band_range)
    if not nothing:
        with_mask = data if valid is None else sensor.add_chunks(data, [sensor.mask_chunk(valid)])
        decoded = Decoder(with_mask, "cpu", coefficients=coefficients).bands()
        original = task.window()
        if valid is not None:
            original, decoded = original[valid][:, None], decoded[valid][:, None]
        acc.add(original, decoded)
    return acc.sums()


def measured(results: Sequence[tuple[int, bytes, dict]], s: Survey) -> Optional[dict]:
    """The distortion of a tiled file from its tiles' own sums (_own_distortion), added in tile
    order; None when some tile has none (blended tiles: measure)."""
    if not results or any("distortion_sums" not in r[2] for r in results):
        return None
    acc = StreamingDistortion(s.lo, s.hi)
    for _, _, stats in sorted(results, key=lambda r: r[0]):
        acc.add_sums(stats.pop("distortion_sums"))
    return acc.result().as_dict()


# ---------------------------------------------------------------------------------------- encode

def _standalone_extra(head: TiledHead, payload: bool) -> int:
    """Bytes a tile's stand-alone 1.x file has beyond what the same tile adds to the tiled file.
    A codec with its own bitstream has it in CODE alone and as a stored byte tensor in its TILE
    (a few bytes of tensor header more; 8 bytes of margin cover the varints of any length)."""
    body = np.random.default_rng(0).bytes(1000) if payload else None  # incompressible, like a payload
    probe = Tile({}, [stored_tensor(body)], CODER_STORED) if payload else Tile({}, [])
    alone = pack(HnrFile(height=1, width=1, bands=head.bands, dtype=head.dtype, band_offset=head.band_offset,
                         band_scale=head.band_scale, wavelengths=head.wavelengths, model_config={}, tensors=[],
                         meta=head.meta, payload=body))
    return len(alone) - (len(tile_data(0, probe)) + 12) - (8 if payload else 0)


def plan(shape: tuple[int, int, int], dtype: np.dtype, wavelengths: Optional[np.ndarray],
         read: Callable[[int, int, int, int], np.ndarray], window_of: Callable[[tuple], Callable[[], np.ndarray]],
         options, tile: int, split: str, meta: dict, s: Optional[Survey] = None,
         nodata: Optional[float] = None) -> tuple[TiledHead, list[TileTask], Survey]:
    """The head of the file and one task per tile, budgets shared out before any fit. `s`: the
    survey when it was made already (grid_of(shape, tile)); `nodata`: the value of nodata pixels."""
    h, w, c = shape
    grid = grid_of(shape, tile, options.model)
    s = survey(read, grid, c, nodata) if s is None else s
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
                              wavelengths=head.wavelengths, dtype=np.dtype(dtype), budget=budget, options=options,
                              nodata=None if s.valid is None else nodata,
                              band_range=None if grid.overlap else (s.lo, s.hi)))
    planner = registry.planner(options.model) if len(tasks) > 1 else None
    if planner is not None:  # one search on a sample of the whole cube; each tile then searches its step
        found = planner(read, shape, offset, scale, s.valid, options, h * w / len(tasks))
        for task in tasks:
            task.plan = found
    return head, tasks, s


def grid_of(shape: tuple, tile: int, model: str) -> TileGrid:
    """The tile grid of a cube coded in tiles of side `tile` by codec `model`: overlapping by
    OVERLAP when the codec's tiles are blended (registry.Codec.blends_tiles), else side by side."""
    return TileGrid.split(int(shape[0]), int(shape[1]), tile, OVERLAP if registry.codec(model).blends_tiles else 0)


def assemble(head: TiledHead, results: Sequence[tuple[int, bytes, dict]]) -> bytes:
    """The tiled file from the tiles' stand-alone files (any order)."""
    tiles: list[Optional[Tile]] = [None] * len(head.grid)
    for index, data, _ in results:
        f = unpack(data)  # a tile's payload travels in its TILE chunk as one stored byte tensor (an
        # entropy-coded payload: the other coders cannot make it smaller, so they are not tried)
        tiles[index] = (Tile(f.model_config, f.tensors) if f.payload is None
                        else Tile(f.model_config, [stored_tensor(f.payload)], CODER_STORED))
    missing = [i for i, t in enumerate(tiles) if t is None]
    if missing:
        raise RuntimeError(f"tiles {missing} were not fitted")
    return pack_tiled(head, tiles)  # type: ignore[arg-type]


MEASURE_THREADS = 2  # threads of the summary's distortion sums (the same figures for any count)
MEASURE_VALUES = 1 << 23  # values of the source (and of the decode) a summary compares at a time


def measure(data: bytes, read: Callable[[int, int, int, int], np.ndarray], s: Survey, device: str) -> dict:
    """PROTOCOL.md distortion of the tiled file against the source, a row of tiles at a time (the
    decoder opens the row's tile models two at a time), by bands of rows of MEASURE_VALUES values
    (bounded memory: the row's models and one band of both cubes), the sums by strips in
    MEASURE_THREADS threads; over the data pixels (PROTOCOL.md "Nodata")."""
    dec = Decoder(data, device)
    acc = StreamingDistortion(s.lo, s.hi)
    edges, width = dec.grid.y_edges, dec.grid.x_edges[-1]
    rows = max(1, MEASURE_VALUES // max(1, width * dec.shape[2]))
    for y0, y1 in zip(edges[:-1], edges[1:]):
        for r0 in range(y0, y1, rows):
            r1 = min(y1, r0 + rows)
            original, decoded = read(r0, r1, 0, width), dec.bands(window=(r0, r1, 0, width))
            if s.valid is not None:
                keep = s.valid[r0:r1]
                original, decoded = original[keep][:, None], decoded[keep][:, None]
            acc.add(original, decoded, MEASURE_THREADS)
            del original, decoded
        if y1 < edges[-1]:  # a row of tiles done: keep the models the rest needs (networks reach across)
            dec.forget(keep=dec.grid.touching(y1, edges[-1], 0, width))
    return acc.result().as_dict()
