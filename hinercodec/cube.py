"""Cube preparation shared by every codec and by tiles: checks, per-band normalisation, band
positions, and the way back to the cube's units and dtype (numpy only)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .errors import InputError
from .formats.hnrfile import band_normalisation, dtype_code, positions
from .options import MIN_SIDE


def check_cube(cube: np.ndarray) -> np.ndarray:
    """The cube as an array, or InputError (3) for what no codec can take."""
    cube = np.asarray(cube)
    if cube.ndim != 3:
        raise InputError(f"a cube must be 3-D (H x W x C); got {cube.ndim}-D {tuple(cube.shape)}")
    if cube.dtype.kind not in "uif":
        raise InputError(f"unsupported sample type {cube.dtype} (integers or floats only)")
    dtype_code(cube.dtype)  # raises InputError for types the format cannot restore
    check_size(cube.shape)
    if cube.dtype.kind == "f" and not np.isfinite(cube).all():
        raise InputError(f"cube holds {int((~np.isfinite(cube)).sum())} NaN/Inf values")
    return cube


def check_size(shape: tuple) -> None:
    h, w, c = (int(s) for s in shape[:3])
    if min(h, w) < MIN_SIDE or c < 1:
        raise InputError(f"cube {h} x {w} x {c} is too small: height and width must be at least {MIN_SIDE}")


NORMALISE_VALUES = 1 << 20  # values per strip of normalised() (float64 temporaries of 8 MB)


def normalised(x: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """H x W x C values -> C x H x W float32 in [0, 1] by the file's per-band map (a constant band,
    scale 0, gives 0)."""
    x = np.asarray(x)
    h, w, c = x.shape
    safe = np.where(scale > 0, scale, 1.0).astype(np.float64)
    off = np.asarray(offset, np.float64)
    flat = scale <= 0
    out = np.empty((c, h, w), np.float32)
    rows = max(1, NORMALISE_VALUES // max(1, w * c))
    for r0 in range(0, h, rows):  # by strips: float64 temporaries of a few MB, reused
        y = np.subtract(x[r0:r0 + rows], off, dtype=np.float64)
        y /= safe
        y[:, :, flat] = 0.0
        out[:, r0:r0 + rows, :] = y.transpose(2, 0, 1)
    return out


def band_ranges(cube: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The BNDS (offset, scale) of an H x W x C cube without its normalised copy: each band's min
    and max in the cube's own dtype (exact in float64), then formats.hnrfile.band_normalisation."""
    return band_normalisation(cube.min(axis=(0, 1)).astype(np.float64), cube.max(axis=(0, 1)).astype(np.float64))


def normalise(cube: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-band affine map to [0, 1]: (target C x H x W float32, offset, scale) with
    cube ~ offset + scale * target (BNDS values from formats.hnrfile.band_normalisation)."""
    lo, scale = band_ranges(cube)
    return normalised(cube, lo, scale), lo, scale


def all_distinct(values: np.ndarray) -> bool:
    """No two of these (1-D, finite) values are equal: np.unique's test without its import of
    numpy.ma (on every small cube's encode and decode)."""
    v = np.sort(np.asarray(values).reshape(-1))
    return bool((v[1:] != v[:-1]).all())


def positions_of(wavelengths: Optional[np.ndarray], bands: int) -> np.ndarray:
    """Normalised band positions t in [0, 1] as the file format defines them (formats/HNR.md, WAVE)."""
    if wavelengths is None:
        return np.arange(bands) / max(bands - 1, 1)
    wl = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    if wl.size != bands:
        raise InputError(f"{wl.size} wavelengths given for a cube of {bands} bands")
    if not np.isfinite(wl).all():
        raise InputError("wavelengths must be finite")
    if not all_distinct(wl):
        raise InputError("wavelengths must be distinct (two bands at one wavelength cannot be told apart)")
    if bands > 1 and {float(wl[0]), float(wl[-1])} != {float(wl.min()), float(wl.max())}:
        raise InputError("the first and last wavelengths must be the two ends of the range")
    return positions(wl)


def restore(y: np.ndarray, offset: np.ndarray, scale: np.ndarray, dtype: np.dtype,
            out: Optional[np.ndarray] = None) -> np.ndarray:
    """Decoded (K, H, W) in [0, 1] -> H x W x K in the cube's units and dtype (HNR.md,
    reconstruction: binary64 y * scale + offset, then round half to even and clip for integer
    types). In place on one float64 copy: a strip of a large image must not cost several copies;
    compiled (the same operations, both cores) for the usual types when the coder is built.
    `out`: where the compiled path writes the result when it can (a C-contiguous H x W x K array of
    `dtype`); the returned array is the result either way."""
    from .codecs.transform.bitstream import fast_restore

    dtype = np.dtype(dtype)
    restored = fast_restore(y, offset, scale, dtype, out)
    if restored is not None:
        return restored
    x = np.array(y, dtype=np.float64)
    x *= scale.astype(np.float64)[:, None, None]
    x += offset.astype(np.float64)[:, None, None]
    if dtype.kind in "ui":
        info_ = np.iinfo(dtype)
        np.rint(x, out=x)
        np.clip(x, info_.min, info_.max, out=x)
    return np.ascontiguousarray(x.transpose(1, 2, 0), dtype=dtype)


def band_lerp(t: float, p: np.ndarray, v: np.ndarray) -> float:
    """v between the sorted, distinct band positions p at t, linearly, in binary64 as HNR.md
    specifies (u = (t - p_i) / h, (1 - u) v_i + u v_i+1; the coded value itself at a coded position)."""
    n = p.size
    t = min(max(t, float(p[0])), float(p[-1]))
    i1 = int(np.clip(np.searchsorted(p, t), 1, max(n - 1, 1)))
    i0 = i1 - 1
    if n == 1 or t <= p[i0]:
        return float(v[max(i0, 0) if n > 1 else 0])
    if t >= p[i1]:
        return float(v[i1])
    u = (t - float(p[i0])) / float(p[i1] - p[i0])
    return (1 - u) * float(v[i0]) + u * float(v[i1])
