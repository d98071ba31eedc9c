"""The library's public face: cube in memory <-> .hnr bytes.

    from hinercodec import api
    result = api.encode(cube, wavelengths, bpppb=0.2)   # cube: H x W x C numpy array
    cube2 = api.decode(result.data)                      # same shape and dtype
    band = api.interp(result.data, nm=[555.0])           # H x W x 1 at 555 nm

The CLI is a thin layer over these functions; they know nothing of paths or terminals. The codecs
themselves live in hinercodec/codecs/ and are found through hinercodec/registry.py.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Callable, Optional, Sequence

import numpy as np

from . import __version__, parallel, registry, tiling
from . import nodata as nodata_pixels
from .codecs.base import Budget
from .cube import band_ranges, check_cube, check_size, normalised, positions_of
from .decoder import Decoder, Window
from .errors import InputError, RequestError, UsageError
from .formats import cubeio, metadata as sensor, tiled
from .formats.hnrfile import HnrFile, dtype_code
from .jobs import run_encoder
from .metrics import bpppb, distortion
from .options import NUMPY_CODECS, EncodeOptions, EncodeResult, Progress, ProgressFn, check, resolved
from .tiling import DEFAULT_TILE, MapFn

__all__ = ["EncodeOptions", "EncodeResult", "Progress", "ProgressFn", "Decoder", "Window", "MapFn", "encode",
           "encode_reader", "decode", "interp", "info", "evaluate", "tile_for", "MODELS"]

MODELS = registry.ENCODABLE  # what --model accepts


def _options(options: Optional[EncodeOptions], keywords: dict) -> EncodeOptions:
    opts = EncodeOptions.from_keywords(options, **keywords) if keywords else (options or EncodeOptions())
    opts = resolved(opts)
    check(opts, MODELS)
    return opts


TRANSFORM_TILE_VALUES = 1 << 25  # cube values a transform tile holds at most (its float32 copy, read blocks)
TRANSFORM_TILE_IMAGES = 1 << 23  # pixels x min(bands, TYPICAL_K) a transform tile holds at most: the search's
TYPICAL_K = 32  # float64 / int64 arrays are K component images (K <= bands; up to ~32 on large cubes)
TILE_VALUE_BYTES = 45  # peak bytes a transform tile's search holds a component-image value (CAVE mosaic peaks, speed.py)
TILE_ROOM = 64 << 20  # bytes: a tile in flight holds at most the input's size plus this (two at a time)


def tile_for(opts: EncodeOptions, shape: tuple[int, ...], itemsize: int = 4) -> int:
    """The tile side an encode uses (0: one untiled file). Auto: DEFAULT_TILE for the network
    models (their fitting memory grows with the pixels); the transform model codes the whole cube
    at once (one basis, one wavelet: better rate-distortion) unless it holds over
    TRANSFORM_TILE_VALUES values or pixels x min(bands, TYPICAL_K) over TRANSFORM_TILE_IMAGES, then
    tiles within both (peak memory: ~TILE_VALUE_BYTES a component-image value in flight, two tiles at
    a time; a cube of few bands has K close to its band count, one of many bands far fewer), and
    small enough that a tile in flight holds no more than the cube's own bytes (`itemsize` a value)
    and TILE_ROOM: two of them then stay within twice the input and 300 MB with what a process
    holds besides (issue 16's memory target; a cube of few 16-bit bands needs the smaller tiles)."""
    if opts.model == "lossless":
        return 0  # codes the whole cube: one predictor run over every band
    if opts.tile is not None:
        return opts.tile
    if opts.model != "transform":
        return DEFAULT_TILE
    h, w, c = (int(s) for s in shape[:3])
    pixels = min(TRANSFORM_TILE_VALUES / max(c, 1), TRANSFORM_TILE_IMAGES / max(min(c, TYPICAL_K), 1))
    if h * w <= pixels:
        return 0
    pixels = min(pixels, (h * w * c * itemsize + TILE_ROOM) / (TILE_VALUE_BYTES * max(min(c, TYPICAL_K), 1)))
    return max(4 * 4 * 16, int(math.sqrt(pixels)) // 64 * 64)


def _tiles_needed(opts: EncodeOptions, shape: tuple[int, ...], itemsize: int = 4) -> bool:
    tile = tile_for(opts, shape, itemsize)
    return tile > 0 and max(shape[0], shape[1]) > tile


def encode(cube: np.ndarray, wavelengths: Optional[np.ndarray] = None, options: Optional[EncodeOptions] = None,
           progress: Optional[ProgressFn] = None, map_fn: MapFn = map, *, metadata: Optional[dict] = None,
           nodata: Optional[float] = None, **keywords) -> EncodeResult:
    """Code `cube` (H x W x C, any integer or float dtype) into .hnr bytes.

    Options as an EncodeOptions, or as keywords (`bpppb=0.1, model="hiner", effort=1`, ...), or
    both (keywords win). A cube over the tile size is split into tiles coded one by one through
    `map_fn` (the builtin map by default; a process pool's or a Dask client's map runs them in
    parallel).

    `metadata` (formats/metadata.py keys: fwhm, map info, CRS, ...) is stored in the file's `smta`
    chunk. Nodata: pixels whose bands all hold `nodata` (else metadata["nodata"]; NaN pixels of a
    float cube always) are left to the codec as a mask (the transform codec codes the data pixels
    alone; others code them filled with a smooth continuation of the valid pixels), their mask is
    stored losslessly (`mask` chunk), and they decode as exactly the nodata value; PSNR_band counts
    valid pixels only. The rate target counts these chunks: the codec gets the budget less their
    size. Tiled cubes too (each tile gets its part of the mask).
    """
    opts = _options(options, keywords)
    original = np.asarray(cube)
    meta, valid = nodata_pixels.plan(original, metadata, nodata)
    if original.ndim != 3 or original.dtype.kind not in "uif":
        check_cube(original)  # says what is wrong
    if _tiles_needed(opts, original.shape, original.dtype.itemsize):
        check_size(original.shape)
        dtype_code(original.dtype)

        def read(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
            return original[y0:y1, x0:x1]
        return _encode_tiled(tuple(original.shape), original.dtype, wavelengths, read,
                             lambda r: tiling.ArrayWindow(original[r[0]:r[1], r[2]:r[3]]), opts, progress, map_fn,
                             meta, sensor.nodata_value(meta))
    extra = nodata_pixels.extra_chunks(meta, valid)
    cube = check_cube(original if valid is None else nodata_pixels.filled(original, valid))
    start = time.perf_counter()
    shape = tuple(int(s) for s in cube.shape)
    positions_of(wavelengths, shape[2])  # InputError before any work
    offset, scale = band_ranges(cube)  # the normalised copy only for the codecs that read it
    target = normalised(cube, offset, scale) if registry.codec(opts.model).normalised_input else None
    run_opts = nodata_pixels.less_extra(opts, extra, shape)
    keep: dict = {}
    data, stats = run_encoder(target, cube.dtype, offset, scale, wavelengths, Budget.from_bpppb(run_opts.bpppb, shape),
                              run_opts, progress, cube=cube, valid=valid, keep=keep)
    data = sensor.add_chunks(data, extra)
    # the file measured as decoded (from the coefficients the codec left in `keep`, when it did: the
    # same cube, without entropy-decoding them)
    decoded = Decoder(data, opts.device, coefficients=keep.pop("coefficients", None)).bands()
    if valid is not None:
        stats = {**stats, "nodata_pixels": int(valid.size - np.count_nonzero(valid))}
        original, decoded = original[valid][:, None, :], decoded[valid][:, None, :]
    dist = distortion(original, decoded, tiling.MEASURE_THREADS)
    return EncodeResult(data=data, bpppb=bpppb(len(data), shape), psnr_band=dist.psnr_band,
                        seconds=time.perf_counter() - start, device=_device_name(opts),
                        stats={**stats, "psnr_global": dist.psnr_global, "sam_deg": dist.sam_deg})


def _device_name(opts: EncodeOptions) -> str:
    """Where the encoder ran: 'cpu' for the numpy codecs, the torch device for networks."""
    if not registry.codec(opts.model).needs_torch:
        return "cpu"
    from .device import resolve_device

    return str(resolve_device(opts.device))


def encode_reader(reader: "cubeio.CubeReader", options: Optional[EncodeOptions] = None,
                  progress: Optional[ProgressFn] = None, map_fn: MapFn = map, *, nodata: Optional[float] = None,
                  **keywords) -> EncodeResult:
    """Encode the cube of an open file (cubeio.open_cube): a large one tile by tile, each tile read
    from the file on its own (a task in another process reads it there), never the whole cube.
    The file's sensor metadata (reader.metadata) goes into the .hnr; nodata as in `encode`."""
    opts = _options(options, keywords)
    if not _tiles_needed(opts, reader.shape, np.dtype(reader.dtype).itemsize):
        extra = {k: v for k, v in (("metadata", reader.metadata), ("nodata", nodata)) if v is not None}
        return encode(reader.read(0, reader.shape[0], 0, reader.shape[1]), reader.wavelengths, opts, progress,
                      **extra)
    check_size(reader.shape)
    dtype_code(reader.dtype)
    value = nodata if nodata is not None else sensor.nodata_value(reader.metadata)
    if reader.source == "-":  # stdin is in memory already: hand out array windows
        def window_of(r: tuple) -> Callable[[], np.ndarray]:
            return tiling.ArrayWindow(reader.read(*r))
    elif reader.layout not in (None, "hwc"):
        def window_of(r: tuple) -> Callable[[], np.ndarray]:
            return tiling.OrientedFileWindow(reader.source, reader.key, reader.layout, tuple(r))
    else:  # a task reads its own tile from the file, wherever it runs
        def window_of(r: tuple) -> Callable[[], np.ndarray]:
            return tiling.FileWindow(reader.source, reader.key, tuple(r))

    return _encode_tiled(reader.shape, reader.dtype, reader.wavelengths, reader.read, window_of, opts, progress,
                         map_fn, reader.metadata, value)


def _fit_tiles(map_fn: MapFn, tasks: list, opts: EncodeOptions) -> list:
    """Every tile's fit: through `map_fn` (a Dask client's, say), or, with plain `map` and a numpy
    codec, in opts.threads threads (default one per core: its compiled and numpy parts release the
    GIL; the same bytes, each tile's fit depending on its task alone)."""
    threads = opts.threads or os.cpu_count() or 1
    if map_fn is not map or len(tasks) < 2 or threads < 2 or opts.model not in NUMPY_CODECS:
        return list(map_fn(tiling.fit_tile, tasks))
    from concurrent.futures import ThreadPoolExecutor

    workers = min(threads, len(tasks))
    hints = tiling.Hints()  # where each tile's step search starts (speed only)
    for task in tasks:
        task.hints = hints
    try:
        with ThreadPoolExecutor(workers) as pool:  # each worker's compiled steps get its share of the cores
            return list(pool.map(parallel.run_limited(tiling.fit_tile, parallel.share(workers)), tasks))
    finally:
        for task in tasks:
            task.hints = None


def _encode_tiled(shape: tuple, dtype: np.dtype, wavelengths: Optional[np.ndarray],
                  read: Callable[[int, int, int, int], np.ndarray], window_of: Callable, opts: EncodeOptions,
                  progress: Optional[ProgressFn], map_fn: MapFn, metadata: Optional[dict] = None,
                  nodata: Optional[float] = None) -> EncodeResult:
    """Tile by tile. Nodata pixels (`nodata`, and NaN pixels of a float cube) are found by the
    survey, which reads every pixel before any coding: their mask goes into the file's `mask` chunk
    (whole image) and each tile's codec gets its part."""
    start = time.perf_counter()
    if wavelengths is not None:
        positions_of(wavelengths, shape[2])
    if progress is not None:
        progress(Progress("survey", 0, 1, note="reading the cube once for its band ranges"))
    tile = tile_for(opts, shape, np.dtype(dtype).itemsize)
    look = float("nan") if nodata is None and np.dtype(dtype).kind == "f" else nodata
    survey = tiling.survey(read, tiling.grid_of(shape, tile, opts.model), int(shape[2]), look)
    meta = dict(metadata or {})
    if nodata is not None:
        meta["nodata"] = float(nodata)
    elif survey.valid is not None:
        meta["nodata"] = float("nan")
    extra = nodata_pixels.extra_chunks(meta or None, survey.valid)
    opts = nodata_pixels.less_extra(opts, extra, shape)
    head, tasks, survey = tiling.plan(shape, dtype, wavelengths, read, window_of, opts, tile, opts.split,
                                      {"encoder": f"hinerc {__version__}"}, survey, look)
    if map_fn is map:
        for task in tasks:
            task.progress = progress
    try:
        results = _fit_tiles(map_fn, tasks, opts)
    except RequestError:
        if opts.split != "difficulty":
            raise
        # A tile given less than its share cannot hold even the smallest network: share equally.
        if progress is not None:
            progress(Progress("size", 0, 1, note="a tile's share is below its smallest file: sharing equally"))
        opts = dataclasses.replace(opts, split="equal")
        head, tasks, survey = tiling.plan(shape, dtype, wavelengths, read, window_of, opts, tile, opts.split,
                                          {"encoder": f"hinerc {__version__}"}, survey, look)
        if map_fn is map:
            for task in tasks:
                task.progress = progress
        results = _fit_tiles(map_fn, tasks, opts)
    data = sensor.add_chunks(tiling.assemble(head, results), extra)
    dist = tiling.measured(results, survey)  # tiles side by side measured themselves
    if dist is None:  # blended tiles: the file decoded a row of tiles at a time
        if progress is not None:
            progress(Progress("check", 0, 1, note="decoding the file tile by tile to measure it"))
        dist = tiling.measure(data, read, survey, opts.device)
    stats = {"tiles": len(tasks), "grid": list(head.grid.shape), "split": opts.split,
             **({} if survey.valid is None else {"nodata_pixels": int(survey.valid.size - np.count_nonzero(survey.valid))}),
             "tile_bytes": [r[2]["bytes"] for r in sorted(results, key=lambda r: r[0])],
             "tile_seconds": [round(r[2]["seconds"], 2) for r in sorted(results, key=lambda r: r[0])],
             "psnr_global": dist["psnr_global"], "sam_deg": dist["sam_deg"]}
    return EncodeResult(data=data, bpppb=bpppb(len(data), shape), psnr_band=dist["psnr_band"],
                        seconds=time.perf_counter() - start, device=_device_name(opts), stats=stats)


def decode(data: bytes, bands: Optional[Sequence[int]] = None, device: str = "auto") -> np.ndarray:
    """Rebuild the cube (or the listed 0-based bands, in that order) in its original dtype and units."""
    return Decoder(data, device).bands(bands)


def interp(data: bytes, lambdas: Optional[Sequence[float]] = None, nm: Optional[Sequence[float]] = None,
           device: str = "auto") -> np.ndarray:
    """Bands at normalised wavelengths in [0, 1] (`lambdas`) or in nm (`nm`): H x W x K, original dtype.

    The network is evaluated at the requested positions; the per-band offset and scale are
    interpolated linearly between the neighbouring coded bands.
    """
    if (lambdas is None) == (nm is None):
        raise UsageError("give normalised wavelengths (--lambda) or wavelengths in nm (--nm), not both or none")
    dec = Decoder(data, device)
    return dec.at(dec.nm_to_t(nm) if nm is not None else lambdas)


def info(data: bytes) -> dict:
    """Everything about a .hnr file without running the model (JSON-serialisable)."""
    parsed = tiled.read_any(bytes(data))
    if isinstance(parsed, HnrFile):
        f, configs, tensors = parsed, [parsed.model_config], list(parsed.tensors)
    else:
        f, tiles = parsed
        configs, tensors = [t.model_config for t in tiles], [q for t in tiles for q in t.tensors]
    out = {
        "format_version": f"{f.version[0]}.{f.version[1]}",
        "encoder": f.meta.get("encoder", "unknown"),
        "shape": [f.height, f.width, f.bands],
        "dtype": str(f.dtype),
        "bytes": len(data),
        "bpppb": bpppb(len(data), f.shape),
        "chunks": dict(f.chunk_sizes),
        "model": configs[0],
        "parameters": int(sum(int(np.prod(q.shape)) for q in tensors)),
        "bits": sorted({int(q.bits) for q in tensors}),
        "wavelength_nm": None if f.wavelengths is None else [float(f.wavelengths[0]), float(f.wavelengths[-1])],
        "guarantee": _guarantee(configs[0]),
    }
    if not isinstance(parsed, HnrFile):
        out["tiles"] = {"grid": list(f.grid.shape), "row_edges": list(f.grid.y_edges),
                        "column_edges": list(f.grid.x_edges)}
    meta, valid = sensor.read_extra(bytes(data), f.height, f.width)
    if meta is not None:
        out["metadata"] = meta
    if valid is not None:
        out["nodata"] = {"value": sensor.nodata_value(meta), "pixels": int(valid.size - np.count_nonzero(valid))}
    return out


def _guarantee(config: dict) -> str:
    """What a file promises about every value (the lossless codec), or that it promises a rate."""
    if config.get("model") == "lossless":
        bounds = config.get("max_error") or [0]
        worst = max(bounds)
        return "lossless: every value exact" if worst == 0 else f"every value within {worst:g} of the original"
    return "none per value: a rate target (PSNR)"


def evaluate(original: np.ndarray, data: bytes, device: str = "auto") -> dict:
    """bpppb, PSNR_band, PSNR_global and SAM of the file against the original cube."""
    dec = Decoder(data, device)  # parsed and checked once
    original = np.asarray(original)
    if tuple(original.shape) != dec.shape:
        raise InputError(f"original is {tuple(original.shape)} but the file holds {dec.shape}")
    decoded = dec.bands()
    out = {"bpppb": bpppb(len(data), dec.shape), "bytes": len(data)}
    if dec.valid is not None:  # PROTOCOL.md: metrics over the valid pixels, nodata checked apart
        invalid = ~dec.valid
        out["nodata_pixels"] = int(np.count_nonzero(invalid))
        out["nodata_exact"] = bool(np.array_equal(decoded[invalid], original[invalid], equal_nan=True))
        original, decoded = original[dec.valid][:, None, :], decoded[dec.valid][:, None, :]
    out.update(distortion(original, decoded, tiling.MEASURE_THREADS).as_dict())
    return out
