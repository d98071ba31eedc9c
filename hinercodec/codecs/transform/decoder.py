"""The decoder of the transform codec: bands = mean(t) + B(t) A, numpy only (no torch).

A (K, H, W) are the wavelet-decoded component images, built once when the file is loaded; the band
at a coded position is mean_c + B_c A. Between coded positions the rows [B_c | mean_c] of the band
table, taken in the cube's own units (the file's per-band offset and scale applied), are
interpolated in wavelength by Akima splines, and the band is that row times [A; 1]: C1 in
wavelength, exact at the coded bands, without the overshoot of plain cubic splines at sharp
spectral features, and as cheap as a coded band (one K-term mix).

Every step follows formats/HNR.md ("Model transform", "Reconstruction") operation by operation in
binary64, so that two decoders written from the spec agree bit for bit
(tests/educational_decoder.py is one).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...cube import all_distinct
from ...memory import Spare
from . import bitstream, wavelet

MODELS = ("transform", "transform2")  # MODL values this decoder reads ("transform2": sign contexts, 0.4)
STEP_RESOLUTION = 64  # the global step is 2 ** (-code / 64)
BASIS_RESOLUTION = 4  # basis / mean steps are the global step times 2 ** (-e / 4)
OFFSET_RESOLUTION = 64  # reconstruction offsets in 1/64 of a step
OFFSET_LIMIT = OFFSET_RESOLUTION // 2  # |offset| <= 32
EXP_MIN, EXP_MAX = -64, 255  # basis / mean steps from 2**16 times the global step down to 2**-64 times
WEIGHT_RESOLUTION = 8  # band weights are 2 ** (e / 8)
WEIGHT_RANGE = 12 * WEIGHT_RESOLUTION  # |e| <= 96: weights within 2**-12 .. 2**12
CONFIG_KEYS = {"model", "height", "width", "bands", "components", "levels", "step_code", "basis_exps", "mean_exp",
               "offsets"}


def step_of(code: int) -> float:
    return 2.0 ** (-code / STEP_RESOLUTION)


def sub_step(step: float, e: int) -> float:
    return step * 2.0 ** (-e / BASIS_RESOLUTION)


def restore_predicted(r: np.ndarray) -> np.ndarray:
    """Undo the second-order prediction along the bands (exact integers; |v| > 2**53 is refused)."""
    v: list[int] = []
    for i, x in enumerate(int(e) for e in r):
        p = 0 if i == 0 else (v[0] if i == 1 else 2 * v[i - 1] - v[i - 2])
        v.append(x + p)
        if abs(v[-1]) > 1 << 53:
            raise ValueError("a side-information integer exceeds 2**53")
    return np.array(v, np.int64).reshape(np.shape(r))


def dequantise_pyramid(ints: bitstream.Pyramid, steps: tuple[float, list[float]], offsets: list[int],
                       in_place: bool = False, storage: Optional[np.ndarray] = None) -> wavelet.Pyramid:
    """The coefficients of an integer pyramid (HNR.md); `in_place`: written over the integers' memory
    where the compiled path can (the integers are then gone); `storage`: a flat float64 array the
    detail bands are made in, in order (views of it), as far as it holds them (the compiled path)."""
    used = 0

    def d(i: np.ndarray, s: float, o: int, detail: bool = True) -> np.ndarray:
        nonlocal used
        out = None
        if storage is not None and detail and used + i.size <= storage.size:
            out = storage[used:used + i.size].reshape(i.shape)
        fast = bitstream.fast_dequantise(i, s, o / OFFSET_RESOLUTION, in_place, out)
        if fast is not None and out is not None:
            used += i.size
        return np.sign(i) * (np.abs(i) + o / OFFSET_RESOLUTION) * s if fast is None else fast

    ll_step, det_steps = steps
    return (d(ints[0], ll_step, offsets[0], detail=False),
            [tuple(d(b, s, o) for b in bands) for bands, s, o in zip(ints[1], det_steps, offsets[1:])])


def band_steps(step: float, levels: int) -> tuple[float, list[float]]:
    """Steps of the LL band and of each level: the global step over each subband's synthesis gain."""
    ll_gain, det_gains = wavelet.gains(levels) if levels else (1.0, [])
    return step / ll_gain, [step / g for g in det_gains]



def check_config(config: dict) -> None:
    """ValueError unless `config` is a valid transform MODL object (HNR.md lists the ranges)."""
    if set(config) - {"nodata"} != CONFIG_KEYS:
        raise ValueError(f"transform config keys {sorted(config)} != {sorted(CONFIG_KEYS)}")
    if "nodata" in config and (config["nodata"] != 1 or isinstance(config["nodata"], bool)
                               or config["model"] != "transform2"):
        raise ValueError("transform config: \"nodata\" is 1 (a shape-adaptive transform2 section) or absent")
    if config["model"] not in MODELS:
        raise ValueError(f"model {config['model']!r} is not a transform model")
    try:
        h, w, c, k, levels, code, m_exp = (_int(config[n]) for n in ("height", "width", "bands", "components",
                                                                       "levels", "step_code", "mean_exp"))
        b_exps = [_int(e) for e in config["basis_exps"]]
        offsets = [_int(o) for o in config["offsets"]]
    except (TypeError, ValueError):
        raise ValueError("transform config values must be integers (and lists of integers)") from None
    if (min(h, w, c, k) < 1 or k > c or len(b_exps) != k or len(offsets) != levels + 1 or not 0 <= code <= 4096
            or not 0 <= levels <= bitstream.MAX_LEVELS or any(not EXP_MIN <= e <= EXP_MAX for e in b_exps + [m_exp])
            or any(abs(o) > OFFSET_LIMIT for o in offsets) or h * w * k > 1 << 34):
        raise ValueError("transform config out of range")


def _int(v) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("not an integer")
    return v


def decode_payload(config: dict, payload: bytes, valid: Optional[np.ndarray] = None,
                   out: Optional[np.ndarray] = None, coefficients: Optional[bitstream.Pyramid] = None,
                   storage: Optional[np.ndarray] = None,
                   work: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images A (K, H, W) float64, basis (C, K), mean (C,)) in normalised units: band c =
    mean_c + B_c A. ValueError (or CorruptFileError from the entropy decoder) on a config or
    payload that does not fit together. `valid` (H, W) bool: the file's data pixels (its `mask`
    chunk), needed by a config with "nodata": 1 (the shape-adaptive wavelet of the data pixels).
    `out`: memory the images may be made in (a C-contiguous float64 (K, H, W) array; ignored when
    it is not one: the memory of an earlier model, not touched afresh). `coefficients`: the integer
    pyramid the payload's coefficient section codes, as its encoder holds it (Job.keep; a file without
    "nodata"): taken as decoded (and consumed: the coefficients are made in its memory) instead of
    entropy-decoding the section, the same images (a test compares both). `storage`: a flat int64
    array of K * H * W values the coefficients are decoded (and dequantised) in (bitstream.unpack),
    free again once this returns but where it holds the images (no levels). `work`: flat float64
    memory for the inverse wavelet's levels before the last (wavelet.inverse), free again after."""
    check_config(config)
    h, w, c, k, levels = (int(config[n]) for n in ("height", "width", "bands", "components", "levels"))
    code = int(config["step_code"])
    b_exps = [int(e) for e in config["basis_exps"]]
    offsets = [int(o) for o in config["offsets"]]
    vectors, pos = bitstream.unpack_vectors(payload, 0, [c, c] + [c] * k)
    weights_e, m_res, b_res = vectors[0], vectors[1], vectors[2:]
    if np.abs(weights_e).max(initial=0) > WEIGHT_RANGE:
        raise ValueError("band weight out of range")
    step = step_of(code)
    root = np.sqrt(2.0 ** (weights_e / WEIGHT_RESOLUTION))
    basis = np.stack([restore_predicted(r) * sub_step(step, e) for r, e in zip(b_res, b_exps)], axis=1) / root[:, None]
    mean = restore_predicted(m_res) * sub_step(step, int(config["mean_exp"])) / root
    coded = None
    if config.get("nodata"):
        if valid is None or np.shape(valid) != (h, w):
            raise ValueError("the transform section leaves out nodata coefficients but the file has no "
                             f"{h} x {w} nodata mask")
        coded = wavelet.masks(valid, levels)
    if coefficients is not None and coded is None:
        ints = coefficients
        if ints[0].shape != (k,) + wavelet.shapes(h, w, levels)[0] or len(ints[1]) != levels:
            raise ValueError("the coefficients given are not of this section's shape")
    else:
        ints = bitstream.unpack(payload[pos:], k, h, w, levels, config["model"] == "transform2", coded, storage)
    pyramid = dequantise_pyramid(ints, band_steps(step, levels), offsets, in_place=True)
    del ints
    if out is not None and (out.shape != (k, h, w) or out.dtype != np.float64 or not out.flags.c_contiguous
                            or not out.flags.writeable):
        out = None
    images = wavelet.inverse(pyramid, out, work) if coded is None else wavelet.inverse_masked(pyramid, valid)
    return images, basis, mean


class TransformDecoder:
    """`render(t, rect)`: bands at positions t, (K, h, w) float64 in [0, 1] (HNR.md's reconstruction).
    Any window costs its own pixels only (a mix per pixel): cheap_windows.

    positions: the coded bands' positions (distinct); units: the file's per-band (offset, scale),
    so that spectra between coded bands are interpolated in the cube's own units."""

    def __init__(self, config: dict, payload: bytes, positions: np.ndarray, units: tuple[np.ndarray, np.ndarray],
                 dtype: Optional[np.dtype] = None, valid: Optional[np.ndarray] = None, spare: Optional[Spare] = None,
                 coefficients: Optional[bitstream.Pyramid] = None):
        shape = tuple(config.get(n) for n in ("components", "height", "width"))
        memory = spare.take(shape, np.float64) if spare is not None else None
        # the coefficients' memory too: the last model's, free once its images were made
        flat = None
        if spare is not None and all(isinstance(v, int) and v > 0 for v in shape):
            flat = spare.take((shape[0] * shape[1] * shape[2],), np.int64)
            if flat is None:
                flat = np.empty(shape[0] * shape[1] * shape[2], np.int64)
        # and the inverse wavelet's levels before the last in a buffer of the pool's
        work = None
        if flat is not None and isinstance(config.get("levels"), int) and 1 < config["levels"] <= bitstream.MAX_LEVELS:
            size = wavelet.inverse_work_size(shape[0], shape[1], shape[2], config["levels"])
            work = spare.take((size,), np.float64)
            work = np.empty(size) if work is None else work
        images, basis, mean = decode_payload(config, payload, valid, memory, coefficients, flat, work)
        if flat is not None and config.get("levels") and not np.shares_memory(images, flat):
            spare.give(flat)
        if work is not None:
            spare.give(work)
        self._setup(images, basis, mean, positions, units)

    takes_spare = True  # hinercodec.decoder gives it the memory of the models it let go of
    takes_coefficients = True  # and the coefficients its payload codes, when its encoder still holds them

    def release(self) -> Optional[np.ndarray]:
        """Give up this model's component images, for a later model of the same shape to decode
        into (fresh memory costs a page clear per page). The model renders no more."""
        images, self.images = self.images, None
        return images if isinstance(images, np.ndarray) and images.flags.c_contiguous and images.base is None else None

    @classmethod
    def from_parts(cls, images: np.ndarray, basis: np.ndarray, mean: np.ndarray, positions: np.ndarray,
                   units: tuple[np.ndarray, np.ndarray]) -> "TransformDecoder":
        """A decoder of given component images (K, H, W), basis (C, K) and mean (C,)."""
        self = cls.__new__(cls)
        self._setup(np.asarray(images, np.float64), np.asarray(basis, np.float64), np.asarray(mean, np.float64),
                    positions, units)
        return self

    def _setup(self, images: np.ndarray, basis: np.ndarray, mean: np.ndarray, positions: np.ndarray,
               units: tuple[np.ndarray, np.ndarray]) -> None:
        self.images = images
        c = basis.shape[0]
        self.height, self.width = images.shape[1:]
        p = np.asarray(positions, np.float64).reshape(-1)
        o, s = (np.asarray(v, np.float64).reshape(-1) for v in units)
        if p.shape != (c,) or not np.isfinite(p).all() or not all_distinct(p):
            raise ValueError("band positions must be distinct finite values, one per band")
        if o.shape != (c,) or s.shape != (c,) or not (np.isfinite(o).all() and np.isfinite(s).all()):
            raise ValueError("band offsets and scales must be finite, one per band")
        order = np.argsort(p)
        self._p = p[order]
        self._table = np.concatenate([basis, mean[:, None]], axis=1)[order]  # [B | mean], normalised
        self._o, self._s = o[order], s[order]
        units_table = self._table * self._s[:, None]
        units_table[:, -1] += self._o
        self._units_table = units_table
        self._tangents = akima_tangents(self._p, units_table)
        self._rows_of: tuple = (None, None)  # (positions' bytes, their rows): _rows

    cheap_windows = True  # the tiled decoder renders a strip by bands of rows (hinercodec.decoder)

    def render(self, t: np.ndarray, rect: Optional[tuple[int, int, int, int]] = None) -> np.ndarray:
        y0, y1, x0, x1 = rect if rect is not None else (0, self.height, 0, self.width)
        a = self.images[:, y0:y1, x0:x1]
        t = np.asarray(t, np.float64).reshape(-1)
        out = np.empty((t.size, y1 - y0, x1 - x0), np.float64)
        if bitstream.FAST and out.size and self.images.flags.c_contiguous and self.images.dtype == np.float64:
            rows = self._rows(t)  # the compiled mix:
            bitstream.fast_mix(rows, self.images, out, (y0, y1, x0, x1))  # the same operations, both cores
            return out
        for i, v in enumerate(t):
            out[i] = mix(self.row(float(v)), a)
        return out

    def _rows(self, t: np.ndarray) -> np.ndarray:
        """(T, K + 1) rows of these positions, remembered for the next render of the same ones (a
        tiled decode renders each tile band of rows by band of rows)."""
        key = t.tobytes()
        if self._rows_of[0] != key:
            self._rows_of = (key, np.ascontiguousarray([self.row(float(v)) for v in t], np.float64).reshape(t.size, -1))
        return self._rows_of[1]

    def row(self, t: float) -> np.ndarray:
        """[B(t) | mean(t)] in the decoder's normalisation at t (float64, K + 1)."""
        p = self._p
        n = p.size
        t = min(max(t, float(p[0])), float(p[-1]))
        i1 = int(np.clip(np.searchsorted(p, t), 1, max(n - 1, 1)))
        i0 = i1 - 1
        if n == 1 or t <= p[i0]:
            return self._table[max(i0, 0) if n > 1 else 0]
        if t >= p[i1]:
            return self._table[i1]
        h = float(p[i1] - p[i0])
        u = (t - float(p[i0])) / h
        u2, u3 = u * u, u * u * u
        y, m = self._units_table, self._tangents
        r = ((2 * u3 - 3 * u2 + 1) * y[i0] + (u3 - 2 * u2 + u) * h * m[i0]
             + (3 * u2 - 2 * u3) * y[i1] + (u3 - u2) * h * m[i1])
        o = (1 - u) * self._o[i0] + u * self._o[i1]
        s = (1 - u) * self._s[i0] + u * self._s[i1]
        if s <= 0:  # between constant bands: the decoder's offset alone
            return np.zeros_like(r)
        r = r / s
        r[-1] -= o / s
        return r



def mix(row: np.ndarray, images: np.ndarray) -> np.ndarray:
    """mean + sum_k B_k A_k in binary64, k in increasing order, one rounding per operation (HNR.md),
    clamped to [0, 1]."""
    y = np.full(images.shape[1:], row[-1], np.float64)
    for k in range(images.shape[0]):
        y += row[k] * images[k]
    np.clip(y, 0.0, 1.0, out=y)
    return y


def akima_tangents(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Akima's (1970) tangents of the rows of y (n, m) at the increasing positions p (n,).

    Slopes d_i of the n - 1 segments, extended by two on each side linearly (d_{-1} = 2 d_0 - d_1,
    ...; with one segment, the slope itself); the tangent at knot i is
    (|d_{i+1} - d_i| d_{i-1} + |d_{i-1} - d_{i-2}| d_i) / (the sum of the two weights), or the
    mean of d_{i-1} and d_i when both weights are 0."""
    n = p.size
    if n < 2:
        return np.zeros_like(y)
    d = np.diff(y, axis=0) / np.diff(p)[:, None]
    if n == 2:
        lo1 = lo2 = hi1 = hi2 = d[0]
    else:
        lo1 = 2 * d[0] - d[1]
        lo2 = 2 * lo1 - d[0]
        hi1 = 2 * d[-1] - d[-2]
        hi2 = 2 * hi1 - d[-1]
    e = np.concatenate([lo2[None], lo1[None], d, hi1[None], hi2[None]])  # e[i + 2] = d_i
    dm2, dm1, d0, dp1 = e[:n], e[1:n + 1], e[2:n + 2], e[3:n + 3]  # d_{i-2}, d_{i-1}, d_i, d_{i+1}
    w1, w2 = np.abs(dp1 - d0), np.abs(dm1 - dm2)
    total = w1 + w2
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, (w1 * dm1 + w2 * d0) / safe, 0.5 * (dm1 + d0))
