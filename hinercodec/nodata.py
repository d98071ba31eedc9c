"""Nodata pixels around the codecs: found from the metadata or a value, their mask stored
losslessly (a `mask` chunk) and restored exactly on decode (formats/metadata.py holds the chunks).
The codecs get the mask (codecs/base.py Job.valid): the transform codec codes the data pixels alone
(a shape-adaptive wavelet, HNR.md "Nodata"); the nodata pixels are also filled with a smooth
continuation of the valid ones, for the codecs that code a whole frame. api.encode runs these,
tiling.py does the same tile by tile.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from .errors import InputError
from .formats import metadata as sensor
from .options import EncodeOptions


def plan(cube: np.ndarray, metadata: Optional[dict], nodata: Optional[float]
                 ) -> tuple[Optional[dict], Optional[np.ndarray]]:
    """(metadata to store, valid-pixel mask or None when every pixel is valid)."""
    meta = dict(metadata) if metadata else {}
    value = float(nodata) if nodata is not None else sensor.nodata_value(meta)
    if cube.ndim != 3 or cube.dtype.kind not in "uif":
        return meta or None, None  # check_cube says what is wrong
    if value is None and cube.dtype.kind == "f" and np.isnan(cube).all(axis=2).any():
        value = float("nan")
    if value is None:
        return meta or None, None
    meta["nodata"] = value
    invalid = invalid_pixels(cube, value)
    if invalid is None or not invalid.any():
        return meta, None
    if invalid.all():
        raise InputError(f"every pixel of the cube is nodata ({value:g}); there is nothing to code")
    return meta, ~invalid


def invalid_pixels(block: np.ndarray, value: Optional[float]) -> Optional[np.ndarray]:
    """(H, W) bool: the pixels of `block` (H x W x C) whose every band is the nodata `value` (NaN:
    NaN in every band); None when no pixel of its type can hold the value."""
    if value is None:
        return None
    if value != value:
        return np.isnan(block).all(axis=2) if block.dtype.kind == "f" else None
    if block.dtype.kind in "ui":
        info_ = np.iinfo(block.dtype)
        if not (float(value).is_integer() and info_.min <= value <= info_.max):
            return None  # no pixel of this integer type can hold it
        return (block == block.dtype.type(int(value))).all(axis=2)
    return (block == value).all(axis=2)


def tile_value(block: np.ndarray, value: Optional[float]) -> Optional[float]:
    """The nodata value a tiled encode looks for in a window: the given one, else NaN in a float
    cube (NaN pixels are always nodata, as in plan)."""
    if value is None and block.dtype.kind == "f":
        return float("nan")
    return value


def filled(cube: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The cube with nodata pixels replaced by a smooth continuation of the valid ones (in its dtype).

    Push-pull: averages of the valid pixels over 2 x 2, 4 x 4, ... blocks fill the holes from the
    coarsest level down, each level smoothed over its holes by a few Jacobi passes (a discrete
    harmonic continuation), so the filled region has no edge at the mask boundary for the wavelet
    to pay for. Filled values are averages of valid spectra: inside the band ranges, and in the span
    of the data for the spectral basis. What the codecs that code a whole frame (the networks, the
    lossless codec) see; the transform codec leaves these pixels out. (Filling with each band's
    mean, the obvious choice, leaves a sharp edge along the boundary: 0.9 dB worse than this fill on
    Samson in a rotated frame at 0.1 bpppb when hinerc 0.5.0's transform coded the filled frame;
    benchmarks/README.md, "Nodata".)"""
    x = np.where(valid[..., None], cube, 0).astype(np.float32)
    w = valid.astype(np.float32)
    pyramid = [(x, w)]
    while min(x.shape[:2]) > 2:
        ph, pw = x.shape[0] % 2, x.shape[1] % 2
        if ph or pw:
            x = np.pad(x, ((0, ph), (0, pw), (0, 0)))
            w = np.pad(w, ((0, ph), (0, pw)))
        x = x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2, -1).sum(axis=(1, 3))
        w = w.reshape(w.shape[0] // 2, 2, w.shape[1] // 2, 2).sum(axis=(1, 3))
        pyramid.append((x, w))
    coarse, w = pyramid[-1]
    filled = coarse / np.maximum(w, 1e-12)[..., None]
    filled[w <= 0] = (coarse.sum(axis=(0, 1)) / max(float(w.sum()), 1e-12))
    for x, w in reversed(pyramid[:-1]):
        known = w > 0
        fine = x / np.where(known, w, 1.0)[..., None]
        up = np.repeat(np.repeat(filled, 2, axis=0), 2, axis=1)[:fine.shape[0], :fine.shape[1]]
        hole = ~known
        fine[hole] = up[hole]
        if hole.any():
            for _ in range(8):
                p = np.pad(fine, ((1, 1), (1, 1), (0, 0)), mode="edge")
                avg = (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) * 0.25
                fine[hole] = avg[hole]
        filled = fine
    out = cube.copy()
    values = filled[~valid].astype(np.float64)
    if cube.dtype.kind in "ui":
        info_ = np.iinfo(cube.dtype)
        values = np.clip(np.rint(values), info_.min, info_.max)
    else:  # stay inside the valid range of each band (float32 sums may round past it)
        values = np.clip(values, cube[valid].min(axis=0), cube[valid].max(axis=0))
    out[~valid] = values.astype(cube.dtype)
    return out


def extra_chunks(meta: Optional[dict], valid: Optional[np.ndarray]) -> list:
    chunks = []
    if meta:
        chunks.append(sensor.meta_chunk(meta))
    if valid is not None:
        chunks.append(sensor.mask_chunk(valid))
    return chunks


def less_extra(opts: EncodeOptions, extra: list, shape: tuple) -> EncodeOptions:
    """The options with the rate target lowered by the bytes of the metadata/mask chunks, so the
    whole file still meets it (PROTOCOL.md: every byte counts)."""
    if not extra:
        return opts
    n = float(shape[0] * shape[1] * shape[2])
    spent = 8.0 * sum(len(c.data) + 12 for c in extra) / n
    return dataclasses.replace(opts, bpppb=max(opts.bpppb - spent, opts.bpppb * 0.05))
