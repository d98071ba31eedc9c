"""Library API behind the `hinerc` command: cube in memory <-> .hnr bytes.

The CLI is a thin layer over these functions; they know nothing of paths or terminals.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Optional, Sequence, Union

import numpy as np
import torch

from .errors import CorruptFileError, InputError, RequestError, UnsupportedFileError
from .formats import cubeio, tiled
from .formats.hnrfile import HnrFile, band_normalisation, dtype_code, positions
from .metrics import bpppb, distortion
from .models import MODELS, build
from .pipelines import PIPELINES, Job, default_epochs
from .quant import load_quantized
from .ratecontrol import Budget
from . import tiling
from .tiling import DEFAULT_TILE, SPLITS, MapFn
from .transform import METRICS

DEFAULT_BPPPB = 0.2
MIN_SIDE = 4  # smallest height/width: the decoder upsamples at least x4


@dataclass
class EncodeOptions:
    """What a user can set on `hinerc encode` (all have documented defaults)."""

    bpppb: float = DEFAULT_BPPPB  # rate target: written file is <= bpppb and >= 0.9 * bpppb
    model: str = "transform"
    bits: int = 8  # quantisation bits of weights (4..10)
    effort: int = 3  # 1 (fast) .. 9 (slow); sets epochs when `epochs` is None
    epochs: Optional[int] = None
    seed: int = 0
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    tile: Optional[int] = None  # split cubes with a side over this into tiles of at most tile x tile; 0: never;
    # None: auto (tile_for): DEFAULT_TILE for the network models, only very large cubes for "transform"
    split: str = "difficulty"  # how tiles share the byte budget: "difficulty" (measured +0.8 dB) or "equal"
    optimise: str = "psnr_band"  # transform model: maximise PSNR_band (band weights) or PSNR_global (plain MSE)


@dataclass
class Progress:
    """One progress report from the fitting loop (the CLI draws a bar from these)."""

    stage: str  # "fit", "size", ...
    step: int
    total: int
    loss: float = float("nan")
    psnr: float = float("nan")
    note: str = ""


@dataclass
class EncodeResult:
    data: bytes  # the complete .hnr file
    bpppb: float  # 8 * len(data) / (H * W * C)
    psnr_band: float  # of the decoded file against the input (PROTOCOL.md)
    seconds: float  # fitting + quantisation + coding (the CLI adds loading and writing)
    device: str
    stats: dict = field(default_factory=dict)


ProgressFn = Callable[[Progress], None]


# ---------------------------------------------------------------------------------------------
# Implementation


def _resolve_device(name: str) -> torch.device:
    """'auto' -> first CUDA device when available, else CPU; an unavailable CUDA request -> error."""
    if name in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise RequestError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RequestError(f"device {name!r} requested but CUDA is not available here (use --device cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise RequestError(f"unsupported device {name!r} (use auto, cpu, cuda or cuda:N)")
    return dev


def _check_cube(cube: np.ndarray) -> np.ndarray:
    cube = np.asarray(cube)
    if cube.ndim != 3:
        raise InputError(f"a cube must be 3-D (H x W x C); got {cube.ndim}-D {tuple(cube.shape)}")
    if cube.dtype.kind not in "uif":
        raise InputError(f"unsupported sample type {cube.dtype} (integers or floats only)")
    dtype_code(cube.dtype)  # raises InputError for types the format cannot restore
    h, w, c = cube.shape
    if min(h, w) < MIN_SIDE or c < 1:
        raise InputError(f"cube {h} x {w} x {c} is too small: height and width must be at least {MIN_SIDE}")
    if cube.dtype.kind == "f" and not np.isfinite(cube).all():
        raise InputError(f"cube holds {int((~np.isfinite(cube)).sum())} NaN/Inf values")
    return cube


def _normalise(cube: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-band affine map to [0, 1]: returns (target C x H x W float32, offset, scale) with
    cube ~ offset + scale * target (BNDS values from formats.hnrfile.band_normalisation). A
    constant band gets scale 0 (decoded exactly as its offset)."""
    x = cube.astype(np.float64)
    lo, scale = band_normalisation(x.min(axis=(0, 1)), x.max(axis=(0, 1)))
    safe = np.where(scale > 0, scale, 1.0).astype(np.float64)
    y = (x - lo.astype(np.float64)) / safe
    y[:, :, scale <= 0] = 0.0
    return np.ascontiguousarray(y.transpose(2, 0, 1), dtype=np.float32), lo, scale


def _positions_of(wavelengths: Optional[np.ndarray], bands: int) -> np.ndarray:
    """Normalised band positions t in [0, 1] as the file format defines them (formats/HNR.md, WAVE)."""
    if wavelengths is None:
        return np.arange(bands) / max(bands - 1, 1)
    wl = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    if wl.size != bands:
        raise InputError(f"{wl.size} wavelengths given for a cube of {bands} bands")
    if not np.isfinite(wl).all():
        raise InputError("wavelengths must be finite")
    if np.unique(wl).size != wl.size:
        raise InputError("wavelengths must be distinct (two bands at one wavelength cannot be told apart)")
    if bands > 1 and {float(wl[0]), float(wl[-1])} != {float(wl.min()), float(wl.max())}:
        raise InputError("the first and last wavelengths must be the two ends of the range")
    return positions(wl)


def _restore(y: np.ndarray, offset: np.ndarray, scale: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Network output (K, H, W) in [0, 1] -> H x W x K in the cube's units and dtype.

    In place on one float64 copy: a strip of a large image must not cost several copies."""
    x = y.astype(np.float64)
    x *= scale.astype(np.float64)[:, None, None]
    x += offset.astype(np.float64)[:, None, None]
    if dtype.kind in "ui":
        info_ = np.iinfo(dtype)
        np.rint(x, out=x)
        np.clip(x, info_.min, info_.max, out=x)
    return np.ascontiguousarray(x.transpose(1, 2, 0), dtype=dtype)


def _run(model: torch.nn.Module, t: np.ndarray, device: torch.device, batch: int = 1) -> np.ndarray:
    """Evaluate the network at positions t: (K, H, W) float32 clamped to [0, 1].

    One band per call by default: torch's CPU kernels may round differently for other batch
    sizes, and a band must decode to the same values whichever other bands are asked for.
    """
    outs = []
    with torch.no_grad():
        shared = model.maps() if hasattr(model, "maps") else None  # built once for all bands
        for i in range(0, len(t), batch):
            tt = torch.as_tensor(np.asarray(t[i:i + batch], dtype=np.float32), device=device)
            pred = model(tt) if shared is None else model(tt, shared)
            outs.append(pred.clamp_(0.0, 1.0).cpu().numpy())
    return np.concatenate(outs, axis=0) if outs else np.zeros((0, model.cfg.height, model.cfg.width), np.float32)


def _build_model(config: dict, tensors: list, height: int, width: int, device: torch.device,
                 where: str = "", positions: Optional[np.ndarray] = None,
                 units: Optional[tuple[np.ndarray, np.ndarray]] = None) -> torch.nn.Module:
    name = config.get("model")
    if name not in MODELS:
        raise UnsupportedFileError(f"model {name!r} needs a newer hinerc (this one knows: {', '.join(sorted(MODELS))})")
    try:
        model = build(config)
        if hasattr(model, "load_payload"):  # a model with its own entropy-coded stream (one byte tensor)
            if len(tensors) != 1 or tensors[0].bits != 8 or len(tensors[0].shape) != 1:
                raise ValueError("expected one 8-bit payload tensor")
            model.load_payload(np.asarray(tensors[0].symbols, np.uint8).tobytes())
        else:
            load_quantized(model, tensors)
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise CorruptFileError(f"{where}model configuration and weights do not match: {exc}") from None
    if (model.cfg.height, model.cfg.width) != (height, width):
        raise CorruptFileError(f"{where}model output {model.cfg.height} x {model.cfg.width} does not match "
                               f"{height} x {width}")
    model = model.to(device).eval()
    if positions is not None and hasattr(model, "set_band_positions"):
        try:
            model.set_band_positions(torch.from_numpy(np.asarray(positions, np.float32)))
        except ValueError as exc:
            raise CorruptFileError(f"{where}{exc}") from None
    if units is not None and hasattr(model, "set_band_units"):  # interpolate spectra in the cube's units
        try:
            model.set_band_units(*units)
        except ValueError as exc:
            raise CorruptFileError(f"{where}{exc}") from None
    return model


def _check_options(opts: EncodeOptions) -> None:
    if not (isinstance(opts.bpppb, (int, float)) and math.isfinite(opts.bpppb) and opts.bpppb > 0):
        raise RequestError(f"--bpppb must be a positive number, got {opts.bpppb}")
    if not (isinstance(opts.bits, int) and 4 <= opts.bits <= 10):
        raise RequestError(f"--bits must be an integer 4..10, got {opts.bits}")
    if opts.epochs is None and opts.effort not in range(1, 10):
        raise RequestError(f"--effort must be an integer 1..9, got {opts.effort}")
    if opts.epochs is not None and not (isinstance(opts.epochs, int) and opts.epochs >= 1):
        raise RequestError(f"--epochs must be a positive integer, got {opts.epochs}")
    if opts.model not in PIPELINES:
        raise RequestError(f"unknown model {opts.model!r} (known: {', '.join(sorted(PIPELINES))})")
    if opts.tile is not None and not (isinstance(opts.tile, int) and (opts.tile == 0 or opts.tile >= 4 * MIN_SIDE)):
        raise RequestError(f"--tile must be 0 (never tile) or at least {4 * MIN_SIDE} pixels, got {opts.tile}")
    if opts.optimise not in METRICS:
        raise RequestError(f"--optimise must be one of {', '.join(METRICS)}, got {opts.optimise!r}")
    if opts.split not in SPLITS:
        raise RequestError(f"--split must be one of {', '.join(SPLITS)}, got {opts.split!r}")


TRANSFORM_TILE_VALUES = 1 << 26  # the transform model holds a few float64 copies of this many values


def tile_for(opts: EncodeOptions, shape: tuple[int, ...]) -> int:
    """The tile side an encode uses (0: one untiled file). Auto: DEFAULT_TILE for the network
    models (their fitting memory grows with the pixels); the transform model codes the whole cube
    at once (one basis, one wavelet: better rate-distortion) unless it holds over 2**26 values,
    then tiles of at most 2**26 values."""
    if opts.tile is not None:
        return opts.tile
    if opts.model != "transform":
        return DEFAULT_TILE
    h, w, c = (int(s) for s in shape[:3])
    if h * w * c <= TRANSFORM_TILE_VALUES:
        return 0
    return max(4 * MIN_SIDE * 16, int(math.sqrt(TRANSFORM_TILE_VALUES / c)) // 64 * 64)


def _tiles_needed(opts: EncodeOptions, shape: tuple[int, ...]) -> bool:
    tile = tile_for(opts, shape)
    return tile > 0 and max(shape[0], shape[1]) > tile


def encode(cube: np.ndarray, wavelengths: Optional[np.ndarray] = None, options: EncodeOptions | None = None,
           progress: Optional[ProgressFn] = None, map_fn: MapFn = map) -> EncodeResult:
    """Fit, quantise and code `cube` (H x W x C, any real dtype) into .hnr bytes.

    A cube with a side over `options.tile` is split into tiles fitted one by one through `map_fn`
    (the builtin map by default; a process pool's or a Dask client's map runs them in parallel).
    """
    opts = options or EncodeOptions()
    _check_options(opts)
    cube = _check_cube(cube)
    if _tiles_needed(opts, cube.shape):
        def read(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
            return cube[y0:y1, x0:x1]
        return _encode_tiled(tuple(cube.shape), cube.dtype, wavelengths, read,
                             lambda r: tiling.ArrayWindow(cube[r[0]:r[1], r[2]:r[3]]), opts, progress, map_fn)
    start = time.perf_counter()
    shape = tuple(int(s) for s in cube.shape)
    device = _resolve_device(opts.device)
    t_np = _positions_of(wavelengths, shape[2])
    target_np, offset, scale = _normalise(cube)

    def report(stage: str, step: int, total: int, loss: float, psnr: float, note: str) -> None:
        if progress is not None:
            progress(Progress(stage, step, total, loss, psnr, note))

    job = Job(shape=shape, dtype=cube.dtype, offset=offset, scale=scale, wavelengths=wavelengths,
              target=torch.from_numpy(target_np).to(device), t=torch.from_numpy(t_np.astype(np.float32)).to(device),
              budget=Budget.from_bpppb(opts.bpppb, shape), bits=opts.bits,
              epochs=opts.epochs if opts.epochs is not None else default_epochs(opts.model, opts.effort, shape),
              seed=opts.seed, effort=opts.effort, metric=opts.optimise,
              report=report)
    data, stats = PIPELINES[opts.model](job)
    decoded = decode(data, device=str(device))
    dist = distortion(cube, decoded)
    return EncodeResult(data=data, bpppb=bpppb(len(data), shape), psnr_band=dist.psnr_band,
                        seconds=time.perf_counter() - start, device=str(device),
                        stats={**stats, "psnr_global": dist.psnr_global, "sam_deg": dist.sam_deg})




def encode_reader(reader: "cubeio.CubeReader", options: EncodeOptions | None = None,
                  progress: Optional[ProgressFn] = None, map_fn: MapFn = map) -> EncodeResult:
    """Encode the cube of an open file (cubeio.open_cube): a large one tile by tile, each tile read
    from the file on its own (a task in another process reads it there), never the whole cube."""
    opts = options or EncodeOptions()
    _check_options(opts)
    if not _tiles_needed(opts, reader.shape):
        return encode(reader.read(0, reader.shape[0], 0, reader.shape[1]), reader.wavelengths, opts, progress)
    h, w, c = reader.shape
    if min(h, w) < MIN_SIDE:
        raise InputError(f"cube {h} x {w} x {c} is too small: height and width must be at least {MIN_SIDE}")
    dtype_code(reader.dtype)
    if reader.source == "-":  # stdin is in memory already: hand out array windows
        def window_of(r: tuple) -> Callable[[], np.ndarray]:
            return tiling.ArrayWindow(reader.read(*r))
    else:  # a task reads its own tile from the file, wherever it runs
        def window_of(r: tuple) -> Callable[[], np.ndarray]:
            return tiling.FileWindow(reader.source, reader.key, tuple(r))
    return _encode_tiled(reader.shape, reader.dtype, reader.wavelengths, reader.read, window_of, opts, progress,
                         map_fn)


def _encode_tiled(shape: tuple, dtype: np.dtype, wavelengths: Optional[np.ndarray],
                  read: Callable[[int, int, int, int], np.ndarray], window_of: Callable, opts: EncodeOptions,
                  progress: Optional[ProgressFn], map_fn: MapFn) -> EncodeResult:
    from . import __version__

    start = time.perf_counter()
    device = _resolve_device(opts.device)
    if wavelengths is not None:
        _positions_of(wavelengths, shape[2])
    if progress is not None:
        progress(Progress("survey", 0, 1, note="reading the cube once for its band ranges"))
    head, tasks, survey = tiling.plan(shape, dtype, wavelengths, read, window_of, opts, tile_for(opts, shape), opts.split,
                                      {"encoder": f"hinerc {__version__}"})
    if map_fn is map:
        for task in tasks:
            task.progress = progress
    try:
        results = list(map_fn(tiling.fit_tile, tasks))
    except RequestError:
        if opts.split != "difficulty":
            raise
        # A tile given less than its share cannot hold even the smallest network: share equally.
        if progress is not None:
            progress(Progress("size", 0, 1, note="a tile's share is below its smallest file: sharing equally"))
        opts = dataclasses.replace(opts, split="equal")
        head, tasks, survey = tiling.plan(shape, dtype, wavelengths, read, window_of, opts, tile_for(opts, shape), opts.split,
                                          {"encoder": f"hinerc {__version__}"})
        if map_fn is map:
            for task in tasks:
                task.progress = progress
        results = list(map_fn(tiling.fit_tile, tasks))
    data = tiling.assemble(head, results)
    if progress is not None:
        progress(Progress("check", 0, 1, note="decoding the file tile by tile to measure it"))
    dist = tiling.measure(data, read, survey, str(device))
    stats = {"tiles": len(tasks), "grid": list(head.grid.shape), "split": opts.split,
             "tile_bytes": [r[2]["bytes"] for r in sorted(results, key=lambda r: r[0])],
             "tile_seconds": [round(r[2]["seconds"], 2) for r in sorted(results, key=lambda r: r[0])],
             "psnr_global": dist["psnr_global"], "sam_deg": dist["sam_deg"]}
    return EncodeResult(data=data, bpppb=bpppb(len(data), shape), psnr_band=dist["psnr_band"],
                        seconds=time.perf_counter() - start, device=str(device), stats=stats)


Window = tuple[int, int, int, int]  # (y0, y1, x0, x1): rows y0..y1-1, columns x0..x1-1


class Decoder:
    """A .hnr file opened once, to decode bands, windows or wavelengths many times.

    Building a network from the file costs more than running it on a few bands; callers that
    come back for more (training on jittered wavelengths, window reads) keep one of these.
    `data` is the whole file (validated at once) or a seekable binary stream: a tiled file on a
    stream is read tile by tile, only the tiles a request touches (`tile_reads` counts them).
    """

    _CACHE = 64  # tile networks kept between calls (small: a tile's latents and weights)

    def __init__(self, data: Union[bytes, BinaryIO], device: str = "cpu"):
        self.device = _resolve_device(device)
        self._models: dict[int, torch.nn.Module] = {}
        self.tile_reads = 0
        if isinstance(data, (bytes, bytearray, memoryview)):
            parsed = tiled.read_any(bytes(data))
            if isinstance(parsed, HnrFile):
                self.file, self._tile = parsed, None
            else:
                self.file, tiles = parsed
                self._tile = tiles.__getitem__
        else:
            opened = tiled.open_stream(data)
            if isinstance(opened, HnrFile):
                self.file, self._tile = opened, None
            else:
                self.file, self._tile = opened.head, opened.tile
        f = self.file
        self.grid = f.grid if self._tile is not None else tiled.TileGrid((0, f.height), (0, f.width))
        if self._tile is None:
            self._models[0] = _build_model(f.model_config, f.tensors, f.height, f.width, self.device,
                                           positions=f.band_positions(), units=(f.band_offset, f.band_scale))

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.file.shape

    @property
    def dtype(self) -> np.dtype:
        return self.file.dtype

    @property
    def wavelengths(self) -> Optional[np.ndarray]:
        return self.file.wavelengths

    @property
    def tiled(self) -> bool:
        return self._tile is not None

    def _model(self, i: int) -> torch.nn.Module:
        if i not in self._models:
            y0, y1, x0, x1 = self.grid.fit_rect(i)
            tile = self._tile(i)
            self.tile_reads += 1
            if len(self._models) >= self._CACHE:
                self._models.pop(next(iter(self._models)))
            self._models[i] = _build_model(tile.model_config, tile.tensors, y1 - y0, x1 - x0, self.device,
                                           f"tile {i}: ", self.file.band_positions(),
                                           (self.file.band_offset, self.file.band_scale))
        return self._models[i]

    def _window(self, window: Optional[Window]) -> Window:
        h, w = self.file.height, self.file.width
        if window is None:
            return (0, h, 0, w)
        y0, y1, x0, x1 = (int(v) for v in window)
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise RequestError(f"window rows {y0}:{y1}, columns {x0}:{x1} is not inside the "
                               f"{h} x {w} image (rows 0:{h}, columns 0:{w})")
        return y0, y1, x0, x1

    def _render(self, t: np.ndarray, offset: np.ndarray, scale: np.ndarray, window: Optional[Window]) -> np.ndarray:
        y0, y1, x0, x1 = self._window(window)
        out = np.empty((y1 - y0, x1 - x0, len(t)), dtype=self.file.dtype)
        edges = self.grid.y_edges
        # A row of tiles at a time: the float temporaries stay the size of one strip, not the image
        # (a network whose reach crosses into the next strip runs again there).
        for r in range(len(edges) - 1):
            s0, s1 = max(y0, edges[r]), min(y1, edges[r + 1])
            if s0 < s1:
                out[s0 - y0:s1 - y0] = _restore(self._blend(t, (s0, s1, x0, x1)), offset, scale, self.file.dtype)
        return out

    def _blend(self, t: np.ndarray, window: Window) -> np.ndarray:
        """(K, h, w) network outputs in [0, 1] over the window, overlapping tiles blended."""
        y0, y1, x0, x1 = window
        touching = self.grid.touching(y0, y1, x0, x1)
        if len(touching) == 1 and self.grid.overlap == 0:  # one network covers the window alone
            ty0, _, tx0, _ = self.grid.fit_rect(touching[0])
            return _run(self._model(touching[0]), t, self.device)[:, y0 - ty0:y1 - ty0, x0 - tx0:x1 - tx0]
        acc = np.zeros((len(t), y1 - y0, x1 - x0), np.float32)
        for i in touching:
            ty0, ty1, tx0, tx1 = self.grid.fit_rect(i)
            a0, a1, b0, b1 = max(y0, ty0), min(y1, ty1), max(x0, tx0), min(x1, tx1)
            wy, wx = self.grid.weights(i)
            weight = np.outer(wy[a0 - ty0:a1 - ty0], wx[b0 - tx0:b1 - tx0]).astype(np.float32)
            y = _run(self._model(i), t, self.device)[:, a0 - ty0:a1 - ty0, b0 - tx0:b1 - tx0]
            acc[:, a0 - y0:a1 - y0, b0 - x0:b1 - x0] += weight * y
        return acc

    def bands(self, bands: Optional[Sequence[int]] = None, window: Optional[Window] = None) -> np.ndarray:
        """The coded bands (all, or the listed 0-based ones in that order) of the whole image or a
        window: H x W x K in the original dtype."""
        f = self.file
        idx = np.arange(f.bands) if bands is None else np.asarray(list(bands), dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= f.bands):
            bad = int(idx[(idx < 0) | (idx >= f.bands)][0])
            raise RequestError(f"band {bad} is out of range: the file has bands 0..{f.bands - 1}")
        return self._render(f.band_positions()[idx], f.band_offset[idx], f.band_scale[idx], window)

    def at(self, t: Sequence[float], window: Optional[Window] = None) -> np.ndarray:
        """Bands at normalised wavelengths t in [0, 1]: H x W x K, original dtype.

        Offset and scale are interpolated linearly between the neighbouring coded bands.
        """
        t = np.asarray(list(t), dtype=np.float64).reshape(-1)
        bad = t[(t < 0) | (t > 1) | ~np.isfinite(t)]
        if bad.size:
            raise RequestError(f"normalised wavelength {bad[0]:g} is outside [0, 1]")
        if t.size == 0:
            raise RequestError("no wavelength asked for")
        f = self.file
        pos = f.band_positions()
        order = np.argsort(pos)
        offset = np.interp(t, pos[order], f.band_offset.astype(np.float64)[order]).astype(np.float32)
        scale = np.interp(t, pos[order], f.band_scale.astype(np.float64)[order]).astype(np.float32)
        return self._render(t, offset, scale, window)

    def nm_to_t(self, nm: Sequence[float]) -> np.ndarray:
        """Wavelengths in nm -> normalised positions (RequestError outside the file's range)."""
        f = self.file
        if f.wavelengths is None:
            raise RequestError("this file has no wavelengths in nm (its input had none): use --lambda in [0, 1]")
        req = np.asarray(list(nm), dtype=np.float64)
        lo, hi = float(np.min(f.wavelengths)), float(np.max(f.wavelengths))
        bad = req[(req < lo) | (req > hi) | ~np.isfinite(req)]
        if bad.size:
            raise RequestError(f"wavelength {bad[0]:g} nm is outside the file's range {lo:g}..{hi:g} nm")
        wl = np.asarray(f.wavelengths, dtype=np.float64)
        return (req - wl[0]) / (wl[-1] - wl[0]) if f.bands > 1 else np.zeros_like(req)


def decode(data: bytes, bands: Optional[Sequence[int]] = None, device: str = "cpu") -> np.ndarray:
    """Rebuild the cube (or the listed 0-based bands, in that order) in its original dtype and units."""
    return Decoder(data, device).bands(bands)


def interp(data: bytes, lambdas: Optional[Sequence[float]] = None, nm: Optional[Sequence[float]] = None,
           device: str = "cpu") -> np.ndarray:
    """Bands at normalised wavelengths in [0, 1] (`lambdas`) or in nm (`nm`): H x W x K, original dtype.

    The network is evaluated at the requested positions; the per-band offset and scale are
    interpolated linearly between the neighbouring coded bands.
    """
    if (lambdas is None) == (nm is None):
        raise RequestError("give normalised wavelengths (--lambda) or wavelengths in nm (--nm), not both or none")
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
    }
    if not isinstance(parsed, HnrFile):
        out["tiles"] = {"grid": list(f.grid.shape), "row_edges": list(f.grid.y_edges),
                        "column_edges": list(f.grid.x_edges)}
    return out


def evaluate(original: np.ndarray, data: bytes, device: str = "cpu") -> dict:
    """bpppb, PSNR_band, PSNR_global and SAM of the file against the original cube."""
    dec = Decoder(data, device)  # parsed and checked once
    original = np.asarray(original)
    if tuple(original.shape) != dec.shape:
        raise InputError(f"original is {tuple(original.shape)} but the file holds {dec.shape}")
    decoded = dec.bands()
    out = {"bpppb": bpppb(len(data), dec.shape), "bytes": len(data)}
    out.update(distortion(original, decoded).as_dict())
    return out
