"""CDF 9/7 wavelet (the JPEG 2000 lossy filter) by lifting, on stacks of images, numpy only.

Why this filter: it is near-orthogonal, so a quantisation error in any subband costs about the same
squared error in the image (the synthesis gains below correct the rest), and its smooth synthesis
functions give the image coder its energy compaction. Any size works: the signal is split into
ceil(n/2) low and floor(n/2) high samples, with whole-sample symmetric extension at both ends.

A pyramid of `levels` levels is (LL, [(HL, LH, HH) finest first ... coarsest]): HL is high-pass
along x (columns), LH along y (rows). Every array keeps the leading stack axis of the input.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from hinercodec import parallel

try:  # compiled lifting (_fast.c): the same operations per sample, so the same bits
    from . import _fast
except ImportError:  # pragma: no cover - a build without the extension
    _fast = None
FAST = _fast is not None  # tests switch it off to compare both paths
THREADS = 2  # threads of the compiled lifting (images split: the same bits for any count)


def _threads() -> int:
    """THREADS, or fewer where the calling thread's limit is lower (hinercodec.parallel)."""
    return min(THREADS, parallel.limit())


# Lifting steps (predict, update, predict, update) and the final scaling of the CDF 9/7 filter.
_ALPHA = -1.586134342059924
_BETA = -0.052980118572961
_GAMMA = 0.882911075530934
_DELTA = 0.443506852043971
_K = 1.230174104914001
_SQRT2 = 2.0 ** 0.5  # scales both bands to unit gain: an orthonormal-like pyramid

Pyramid = tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]


def shapes(height: int, width: int, levels: int) -> tuple[tuple[int, int], list[tuple[tuple[int, int], ...]]]:
    """Shapes (of a CDF 9/7 pyramid, this module) of (LL, [(HL, LH, HH) per level, finest first]) for an H x W image."""
    h, w = height, width
    out = []
    for _ in range(levels):
        hl, hh_ = (h + 1) // 2, h // 2
        wl, wh = (w + 1) // 2, w // 2
        out.append(((hl, wh), (hh_, wl), (hh_, wh)))
        h, w = hl, wl
    return (h, w), out


def _next(a: np.ndarray, n: int) -> np.ndarray:
    """a[i+1] for i < n, the symmetric extension a[i] (mirror at the end) past it."""
    if a.shape[-1] > n:
        return a[..., 1:n + 1]
    return np.concatenate([a[..., 1:n], a[..., n - 1:n]], axis=-1) if n > 1 else a[..., :1]


def _prev(a: np.ndarray, n: int) -> np.ndarray:
    """a[i-1] for 0 < i < n, with a[-1] = a[0] (mirror at the start); n may exceed a by one."""
    left = a[..., :1]
    body = a[..., : n - 1]
    return np.concatenate([left, body], axis=-1)


def _cur(a: np.ndarray, n: int) -> np.ndarray:
    """a[i] for i < n, with a[n-1] = a[n-2] when a is one shorter (mirror at the end)."""
    if a.shape[-1] >= n:
        return a[..., :n]
    return np.concatenate([a, a[..., -1:]], axis=-1)


def _forward_1d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split along the last axis: (low ceil(n/2), high floor(n/2))."""
    n = x.shape[-1]
    s = x[..., 0::2].astype(np.float64, copy=True)
    d = x[..., 1::2].astype(np.float64, copy=True)
    if n < 2:
        return s, d
    ns, nd = s.shape[-1], d.shape[-1]
    d += _ALPHA * (s[..., :nd] + _next(s, nd))
    s += _BETA * (_prev(d, ns) + _cur(d, ns))
    d += _GAMMA * (s[..., :nd] + _next(s, nd))
    s += _DELTA * (_prev(d, ns) + _cur(d, ns))
    return s * (_SQRT2 / _K), d * (_K / _SQRT2)


def _inverse_1d(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Inverse of _forward_1d along the last axis."""
    ns, nd = s.shape[-1], d.shape[-1]
    out = np.empty(s.shape[:-1] + (ns + nd,), np.float64)
    if nd == 0:
        out[..., 0::2] = s
        return out
    s = s * (_K / _SQRT2)
    d = d * (_SQRT2 / _K)
    s -= _DELTA * (_prev(d, ns) + _cur(d, ns))
    d -= _GAMMA * (s[..., :nd] + _next(s, nd))
    s -= _BETA * (_prev(d, ns) + _cur(d, ns))
    d -= _ALPHA * (s[..., :nd] + _next(s, nd))
    out[..., 0::2] = s
    out[..., 1::2] = d
    return out


_CONSTS = None


def _consts() -> np.ndarray:
    global _CONSTS
    if _CONSTS is None:
        _CONSTS = np.array([_ALPHA, _BETA, _GAMMA, _DELTA, _SQRT2 / _K, _K / _SQRT2], np.float64)
    return _CONSTS


def _fast_level(x: np.ndarray, take: Callable[[tuple], np.ndarray] = np.empty
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One forward level (ll, hl, lh, hh) of a stack (..., H, W), H and W >= 2: _forward_1d along x,
    then along y of each half, compiled as one pass per image (_fast.level: the same bits).
    `take(shape)`: where the detail bands go (a C-contiguous float64 array of that shape)."""
    x = np.ascontiguousarray(x, np.float64)
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    k = int(np.prod(lead, dtype=np.int64))
    hs, hd, ws, wd = (h + 1) // 2, h // 2, (w + 1) // 2, w // 2
    ll, hl = np.empty(lead + (hs, ws)), take(lead + (hs, wd))
    lh, hh = take(lead + (hd, ws)), take(lead + (hd, wd))
    _fast.level(x, ll, hl, lh, hh, k, h, w, False, _consts(), _threads())
    return ll, hl, lh, hh


def _fast_unlevel(ll: np.ndarray, hl: np.ndarray, lh: np.ndarray, hh: np.ndarray,
                  out: Optional[np.ndarray] = None) -> np.ndarray:
    """The inverse of _fast_level (the subbands are not modified); `out`: a C-contiguous float64
    array of the result's shape that receives it (sharing no memory with the subbands)."""
    ll, hl, lh, hh = (np.ascontiguousarray(a, np.float64) for a in (ll, hl, lh, hh))
    lead = ll.shape[:-2]
    h, w = ll.shape[-2] + lh.shape[-2], ll.shape[-1] + hl.shape[-1]
    if out is None or out.shape != lead + (h, w):
        out = np.empty(lead + (h, w))
    _fast.level(out, ll, hl, lh, hh, int(np.prod(lead, dtype=np.int64)), h, w, True, _consts(), _threads())
    return out


def _mergeable(ll: np.ndarray, hl: np.ndarray, lh: np.ndarray, hh: np.ndarray) -> bool:
    """The shapes of one level that the compiled inverse takes (every sane pyramid of >= 2 x 2)."""
    if not FAST or min(a.ndim for a in (ll, hl, lh, hh)) < 2:
        return False
    lead = ll.shape[:-2]
    return (hl.shape[:-2] == lead and lh.shape[:-2] == lead and hh.shape[:-2] == lead
            and min(lh.shape[-2], hh.shape[-2], hl.shape[-1], hh.shape[-1]) >= 1
            and ll.shape[-2] - lh.shape[-2] in (0, 1) and hl.shape[-2] - hh.shape[-2] in (0, 1)
            and ll.shape[-1] == lh.shape[-1] and hl.shape[-1] == hh.shape[-1] and ll.shape[-2] == hl.shape[-2]
            and ll.shape[-1] - hl.shape[-1] in (0, 1))


def pyramid_size(shape: tuple, levels: int) -> int:
    """Values in the detail bands of forward()'s pyramid of a stack of images of this shape (..., H, W)."""
    lead = int(np.prod(shape[:-2], dtype=np.int64))
    h, w, n = int(shape[-2]), int(shape[-1]), 0
    for _ in range(levels):
        n += lead * (h * w - ((h + 1) // 2) * ((w + 1) // 2))
        h, w = (h + 1) // 2, (w + 1) // 2
    return n


def forward(images: np.ndarray, levels: int, storage: Optional[np.ndarray] = None) -> Pyramid:
    """Pyramid of `levels` levels of a stack of images (..., H, W). `storage`: a flat float64
    array of at least pyramid_size() values that the detail bands are made in (views of it, in
    order: the memory of an earlier pyramid used again); the compiled levels only."""
    ll = np.asarray(images, np.float64)
    details = []
    used = 0

    def take(shape: tuple) -> np.ndarray:
        nonlocal used
        n = int(np.prod(shape, dtype=np.int64))
        if storage is None or used + n > storage.size:
            return np.empty(shape)
        view = storage[used:used + n].reshape(shape)
        used += n
        return view

    for _ in range(levels):
        if FAST and ll.ndim >= 2 and ll.shape[-1] >= 2 and ll.shape[-2] >= 2:
            ll, hl, lh, hh = _fast_level(ll, take)  # along x, then along y
            details.append((hl, lh, hh))
            continue
        lo, hi = _forward_1d(ll)  # along x
        ll_, lh = _forward_1d(np.swapaxes(lo, -1, -2))  # along y
        hl, hh = _forward_1d(np.swapaxes(hi, -1, -2))
        ll = np.swapaxes(ll_, -1, -2)
        details.append((np.swapaxes(hl, -1, -2), np.swapaxes(lh, -1, -2), np.swapaxes(hh, -1, -2)))
    return ll, details


def inverse_work_size(images: int, height: int, width: int, levels: int) -> int:
    """Values of the float64 `work` memory inverse() carves the levels before the last out of (each
    level's images, about a third of the pyramid's values in all)."""
    (h, w), det = shapes(height, width, levels)
    total = 0
    for hl, lh, _ in reversed(det[1:]):  # every level's output but the last (the images)
        h, w = h + lh[0], w + hl[1]
        total += images * h * w
    return total


def inverse(pyramid: Pyramid, out: Optional[np.ndarray] = None, work: Optional[np.ndarray] = None) -> np.ndarray:
    """Images back from a pyramid made by forward. `out`: a C-contiguous float64 array of the
    images' shape, sharing no memory with the pyramid, that the compiled last level writes them in;
    `work`: a flat float64 array of at least inverse_work_size() values, sharing no memory with the
    pyramid or `out`, that the compiled levels before the last write theirs in (not fresh memory)."""
    ll, details = pyramid
    used = 0
    for n, (hl, lh, hh) in enumerate(reversed(details)):
        if _mergeable(ll, hl, lh, hh):
            into = out if n == len(details) - 1 else None
            size = ll.shape[-1] + hl.shape[-1]
            shape = ll.shape[:-2] + (ll.shape[-2] + lh.shape[-2], size)
            count = int(np.prod(shape, dtype=np.int64))
            if into is None and n < len(details) - 1 and work is not None and used + count <= work.size:
                into = work[used:used + count].reshape(shape)
                used += count
            ll = _fast_unlevel(ll, hl, lh, hh, into)
            continue
        lo = np.swapaxes(_inverse_1d(np.swapaxes(ll, -1, -2), np.swapaxes(lh, -1, -2)), -1, -2)
        hi = np.swapaxes(_inverse_1d(np.swapaxes(hl, -1, -2), np.swapaxes(hh, -1, -2)), -1, -2)
        ll = _inverse_1d(lo, hi)
    return ll


def levels_for(height: int, width: int, smallest: int = 8, most: int = 6) -> int:
    """Levels until the LL band's shorter side would drop below `smallest` (at most `most`)."""
    n, side = 0, min(height, width)
    while n < most and (side + 1) // 2 >= smallest:
        side = (side + 1) // 2
        n += 1
    return n


# Synthesis gains, sqrt(energy of the image made by one unit coefficient), rounded to 6 decimals
# and fixed here (the format uses these numbers): the detail bands of level l (the three
# orientations differ by < 2 %, they share one), and the LL band of an L-level pyramid.
DETAIL_GAINS = (1.021095, 0.988119, 1.043775, 1.069557, 1.077244, 1.079272, 1.079787, 1.079916)
LL_GAINS = (1.0, 0.982954, 1.030602, 1.052093, 1.058473, 1.060154, 1.060581, 1.060688, 1.060715)


def gains(levels: int) -> tuple[float, list[float]]:
    """(LL gain, detail gains finest first) of a pyramid of `levels` levels (at most 8): a
    quantisation step of delta / gain makes every subband cost about the same image error."""
    return LL_GAINS[levels], list(DETAIL_GAINS[:levels])


def measured_gains(levels: int) -> tuple[float, list[float]]:
    """The gains measured from impulse responses at the centre of a 16 * 2**levels square image
    (how the tables above were made; a test checks them)."""
    size = 16 << levels
    (lh_, lw_), det = shapes(size, size, levels)
    zero = forward(np.zeros((size, size)), levels)

    def energy(which: int, level: int) -> float:
        ll = np.zeros_like(zero[0])
        details = [tuple(np.zeros_like(b) for b in d) for d in zero[1]]
        if which < 0:
            ll[lh_ // 2, lw_ // 2] = 1.0
        else:
            band = details[level][which]
            band[band.shape[0] // 2, band.shape[1] // 2] = 1.0
        return float((inverse((ll, details)) ** 2).sum())

    ll_gain = energy(-1, levels - 1) ** 0.5 if levels else 1.0
    return ll_gain, [float(np.mean([energy(o, l) for o in range(3)]) ** 0.5) for l in range(levels)]


# ---------------------------------------------------------------- shape-adaptive (nodata masks)
#
# With a nodata mask the transform runs on the data pixels alone: along each row (then each column
# of the two halves) every run of consecutive data samples is lifted on its own, with whole-sample
# symmetric extension at the run's two ends, samples at even positions of the row becoming low
# coefficients and odd ones high (the place they hold in the pyramid is the same as without a
# mask); a run of one sample is copied unchanged. The pyramid then has exactly one coefficient per
# data pixel, at the positions masks() gives; the others are 0 and are not coded. (HNR.md,
# "Nodata: the shape-adaptive wavelet".)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of `mask` (R, N): for the samples in runs of >= 2 data samples, their flat index,
    the flat index of their left and right neighbours (reflected inside the run at its ends)."""
    r, n = mask.shape
    idx = np.broadcast_to(np.arange(n), (r, n))
    prev = np.zeros_like(mask)
    prev[:, 1:] = mask[:, :-1]
    nxt = np.zeros_like(mask)
    nxt[:, :-1] = mask[:, 1:]
    start = np.maximum.accumulate(np.where(mask & ~prev, idx, -1), axis=1)
    end = np.minimum.accumulate(np.where(mask & ~nxt, idx, n)[:, ::-1], axis=1)[:, ::-1]
    live = mask & (end > start)
    left = np.where(idx - 1 >= start, idx - 1, idx + 1)
    right = np.where(idx + 1 <= end, idx + 1, idx - 1)
    base = (np.arange(r) * n)[:, None]
    rows, cols = np.nonzero(live)
    flat = rows * n + cols
    return flat, (base + left)[live], (base + right)[live]


def _lift_masked(x: np.ndarray, mask: np.ndarray, inverse: bool) -> np.ndarray:
    """The 1-D lifting (forward or inverse) along the last axis of x (..., R, N), run by run of `mask` (R, N)."""
    lead = x.shape[:-2]
    v = np.array(x, np.float64).reshape(lead + (-1,))
    flat, left, right = _runs(mask)
    odd = (flat % mask.shape[1]) % 2 == 1
    steps = [(odd, _ALPHA), (~odd, _BETA), (odd, _GAMMA), (~odd, _DELTA)]
    lo_scale, hi_scale = _SQRT2 / _K, _K / _SQRT2
    if inverse:
        v[..., flat[~odd]] *= hi_scale
        v[..., flat[odd]] *= lo_scale
        for which, c in reversed(steps):
            v[..., flat[which]] -= c * (v[..., left[which]] + v[..., right[which]])
    else:
        for which, c in steps:
            v[..., flat[which]] += c * (v[..., left[which]] + v[..., right[which]])
        v[..., flat[~odd]] *= lo_scale
        v[..., flat[odd]] *= hi_scale
    return v.reshape(x.shape)


def masks(valid: np.ndarray, levels: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Where the shape-adaptive pyramid of a mask has coefficients: (LL, [(HL, LH, HH) finest first]) bool."""
    m = np.asarray(valid, bool)
    out = []
    for _ in range(levels):
        lo, hi = m[:, 0::2], m[:, 1::2]
        out.append((hi[0::2], lo[1::2], hi[1::2]))
        m = lo[0::2]
    return m, out


def forward_masked(images: np.ndarray, valid: np.ndarray, levels: int) -> Pyramid:
    """The shape-adaptive pyramid of a stack of images (..., H, W) over the data pixels `valid` (H, W)."""
    ll = np.where(valid, np.asarray(images, np.float64), 0.0)
    m = np.asarray(valid, bool)
    details = []
    for _ in range(levels):
        x = _lift_masked(ll, m, False)
        lo, hi, lo_m, hi_m = x[..., 0::2], x[..., 1::2], m[:, 0::2], m[:, 1::2]
        lo = np.swapaxes(_lift_masked(np.swapaxes(lo, -1, -2), lo_m.T, False), -1, -2)
        hi = np.swapaxes(_lift_masked(np.swapaxes(hi, -1, -2), hi_m.T, False), -1, -2)
        details.append((hi[..., 0::2, :], lo[..., 1::2, :], hi[..., 1::2, :]))
        ll, m = lo[..., 0::2, :], lo_m[0::2]
    return np.ascontiguousarray(ll), [tuple(np.ascontiguousarray(b) for b in d) for d in details]


def inverse_masked(pyramid: Pyramid, valid: np.ndarray) -> np.ndarray:
    """Images back from a pyramid made by forward_masked (0 at the nodata pixels)."""
    ll, details = pyramid
    levels = len(details)
    ms = [np.asarray(valid, bool)]
    for _ in range(levels):
        ms.append(ms[-1][0::2, 0::2])
    for level in range(levels - 1, -1, -1):
        hl, lh, hh = details[level]
        m = ms[level]
        h, w = m.shape
        lead = ll.shape[:-2]
        lo = np.empty(lead + (h, (w + 1) // 2), np.float64)
        hi = np.empty(lead + (h, w // 2), np.float64)
        lo[..., 0::2, :], lo[..., 1::2, :] = ll, lh
        hi[..., 0::2, :], hi[..., 1::2, :] = hl, hh
        lo = np.swapaxes(_lift_masked(np.swapaxes(lo, -1, -2), m[:, 0::2].T, True), -1, -2)
        hi = np.swapaxes(_lift_masked(np.swapaxes(hi, -1, -2), m[:, 1::2].T, True), -1, -2)
        x = np.empty(lead + (h, w), np.float64)
        x[..., 0::2], x[..., 1::2] = lo, hi
        ll = np.where(m, _lift_masked(x, m, True), 0.0)
    return ll
