"""The lossless / error-bounded codec as hinerc uses it: options, rate landing, the decoder.

`--lossless` gives every value back exactly (float cubes bit for bit); `--max-error E` gives every
value back within E in the cube's own units; `--bpppb X` with this codec picks, per band, the
largest bounds (proportional to each band's range, so that every band loses about the same share
of its PSNR) whose file fits the budget. The bitstream is coder.py's payload, in a CODE chunk;
MODL holds {"model": "lossless", "height", "width", "bands", "max_error": [bound per band]}.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ...cube import all_distinct
from ...errors import RequestError, UsageError
from ..base import Job
from . import coder

MODEL = "lossless"
CONFIG_KEYS = {"model", "height", "width", "bands", "max_error"}


def config(shape: tuple[int, int, int], bounds: np.ndarray, dtype: np.dtype) -> dict:
    h, w, c = shape
    values = [int(b) for b in bounds] if dtype.kind in "ui" else [float(b) for b in bounds]
    return {"model": MODEL, "height": int(h), "width": int(w), "bands": int(c), "max_error": values}


def bounds_for(cube: np.ndarray, max_error: float) -> np.ndarray:
    """One bound per band from the user's --max-error (integers for integer cubes)."""
    c = cube.shape[2]
    if not (math.isfinite(max_error) and max_error >= 0):
        raise UsageError(f"--max-error must be a finite number >= 0, got {max_error}")
    if cube.dtype.kind in "ui":
        if max_error != int(max_error):
            raise UsageError(f"--max-error of an integer cube ({cube.dtype}) must be an integer, got {max_error}")
        return np.full(c, int(max_error), np.int64)
    return np.full(c, float(max_error), np.float64)


def _ranges(cube: np.ndarray) -> np.ndarray:
    x = cube.reshape(-1, cube.shape[2])
    return x.max(axis=0).astype(np.float64) - x.min(axis=0).astype(np.float64)


def relative_bounds(cube: np.ndarray, ranges: np.ndarray, f: float) -> np.ndarray:
    """Bounds f * (each band's range): the same share of every band's range (integers rounded)."""
    if cube.dtype.kind in "ui":
        return np.floor(f * ranges + 0.5).astype(np.int64)
    return f * ranges


def encode(job: Job) -> tuple[bytes, dict]:
    """A fixed bound (options.max_error, 0 for --lossless) or, without one, the rate target."""
    cube = job.cube
    if cube is None:
        raise RuntimeError("the lossless codec needs the original cube (job.cube)")
    opts = job.options
    if opts.max_error is not None:
        bounds = bounds_for(cube, float(opts.max_error))
        payload = coder.encode(cube, bounds)
        data = job.pack_payload(config(job.shape, bounds, cube.dtype), payload)
        return data, {"max_error": float(np.max(bounds, initial=0)), "exact": bool(not np.any(bounds))}
    found = land(job, cube)
    if found is None:
        raise RequestError("the rate target is too low for an error-bounded file of this cube "
                           "(use the transform codec, --model transform)")
    return found


def land(job: Job, cube: np.ndarray, exact_only: bool = False) -> Optional[tuple[bytes, dict]]:
    """The file of the smallest bounds whose size fits the budget (None if even the largest tried
    does not). The exact file when it fits; else bisection on the share f of each band's range,
    then, for integer cubes, bands moved one step finer while the file still fits (integer
    bounds jump, and the rate window is narrow)."""
    budget = job.budget
    ranges = _ranges(cube)
    c = cube.shape[2]

    def pack(bounds: np.ndarray) -> bytes:
        return job.pack_payload(config(job.shape, bounds, cube.dtype), coder.encode(cube, bounds))

    exact = pack(np.zeros(c, np.int64 if cube.dtype.kind in "ui" else np.float64))
    if len(exact) <= budget.bytes:
        return exact, {"max_error": 0.0, "exact": True}
    if exact_only:
        return None
    best: Optional[tuple[bytes, np.ndarray]] = None
    lo, hi = math.log2(1e-7), math.log2(0.25)  # shares of the range: 1e-7 .. 1/4
    top = pack(relative_bounds(cube, ranges, 2.0 ** hi))
    if len(top) > budget.bytes:
        return None
    best = (top, relative_bounds(cube, ranges, 2.0 ** hi))
    for _ in range(24):
        mid = (lo + hi) / 2
        bounds = relative_bounds(cube, ranges, 2.0 ** mid)
        data = pack(bounds)
        if len(data) <= budget.bytes:
            hi, best = mid, (data, bounds)
            if len(data) >= budget.floor and len(data) >= 0.99 * budget.bytes:
                break
        else:
            lo = mid
        if hi - lo < 1e-3:
            break
    data, bounds = best
    if len(data) < budget.floor and cube.dtype.kind in "ui":
        data, bounds = _fill(pack, bounds, ranges, budget.bytes)
    stats = {"max_error": float(np.max(bounds, initial=0)), "exact": False}
    if len(data) < budget.floor:
        stats["below_target"] = True
    return data, stats


def _fill(pack, bounds: np.ndarray, ranges: np.ndarray, most: int) -> tuple[bytes, np.ndarray]:
    """Integer bounds: the first m bands (widest range first) one step finer, m as large as fits."""
    order = [int(i) for i in np.argsort(-ranges, kind="stable") if bounds[i] > 0]
    best = (pack(bounds), bounds)
    lo, hi = 0, len(order)  # fits(lo); find the largest m that fits
    while lo < hi:
        m = (lo + hi + 1) // 2
        trial = bounds.copy()
        trial[order[:m]] -= 1
        data = pack(trial)
        if len(data) <= most:
            lo, best = m, (data, trial)
        else:
            hi = m - 1
    return best


class LosslessDecoder:
    """The decoded cube in its own units: `render_units(t, rect)` -> h x w x K float64 or the dtype.

    Coded bands come back as decoded (exact, or within the file's bounds); between coded
    wavelengths, bands are linear between their two neighbours in the cube's units."""

    def __init__(self, config: dict, payload: bytes, positions: np.ndarray, units: tuple, dtype: np.dtype):
        if set(config) != CONFIG_KEYS or config["model"] != MODEL:
            raise ValueError(f"lossless config keys {sorted(config)} != {sorted(CONFIG_KEYS)}")
        h, w, c = (config[k] for k in ("height", "width", "bands"))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (h, w, c)):
            raise ValueError("lossless config: height, width and bands must be positive integers")
        bounds = config["max_error"]
        if not (isinstance(bounds, list) and len(bounds) == c and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) and b >= 0 for b in bounds)):
            raise ValueError("lossless config: max_error must list one finite bound >= 0 per band")
        p = np.asarray(positions, np.float64).reshape(-1)
        if p.shape != (c,) or not np.isfinite(p).all() or not all_distinct(p):
            raise ValueError("band positions must be distinct finite values, one per band")
        self.height, self.width, self.bands = h, w, c
        self.max_error = bounds
        self.cube = coder.decode(payload, (h, w, c), np.dtype(dtype))
        self._order = np.argsort(p)
        self._p = p[self._order]

    def render_units(self, t: np.ndarray, rect: Optional[tuple[int, int, int, int]] = None) -> np.ndarray:
        y0, y1, x0, x1 = rect if rect is not None else (0, self.height, 0, self.width)
        cube = self.cube[y0:y1, x0:x1]
        t = np.asarray(t, np.float64).reshape(-1)
        out = np.empty((y1 - y0, x1 - x0, t.size), cube.dtype)
        p, n = self._p, self._p.size
        for j, v in enumerate(t):
            v = min(max(float(v), float(p[0])), float(p[-1]))
            i1 = int(np.clip(np.searchsorted(p, v), 1, max(n - 1, 1)))
            i0 = i1 - 1
            if n == 1 or v <= p[i0]:
                out[:, :, j] = cube[:, :, self._order[max(i0, 0) if n > 1 else 0]]
            elif v >= p[i1]:
                out[:, :, j] = cube[:, :, self._order[i1]]
            else:
                u = (v - float(p[i0])) / float(p[i1] - p[i0])
                a, b = (cube[:, :, self._order[i]].astype(np.float64) for i in (i0, i1))
                y = (1 - u) * a + u * b  # binary64, as HNR.md says
                if cube.dtype.kind in "ui":
                    info = np.iinfo(cube.dtype)
                    y = np.clip(np.rint(y), info.min, info.max)
                out[:, :, j] = y.astype(cube.dtype)
        return out
