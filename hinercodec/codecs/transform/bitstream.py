"""Lossless coding of integer wavelet pyramids (stacks of K images) with context-selected rANS tables.

Why contexts: a wavelet coefficient is large where its neighbours and its parent (the coefficient
at the same place one level coarser) are large, so the coder keeps one table per "how busy is
it here" bucket instead of one per subband, at no cost in speed because every context is known
before decoding its group (numpy, no per-symbol Python).

Order: the LL band first (per image, the residual of the LOCO-I median predictor), then each level
from the coarsest to the finest in three passes: A (even rows and columns) with the parent as
context, D (odd rows and columns) with the parent and the four diagonal A neighbours, B (the rest)
with the parent and the four direct neighbours; within a pass, image after image, with the same
place in the previous image as context too. All groups share one rANS stream (formats/rans.py),
read segment by segment, whose symbols pick their table by context.

Symbols: a value v with |v| < 16 is one symbol (0; 2|v| - 1 for v > 0; 2|v| for v < 0); larger
values are an escape symbol 31 + 2 (n - 4) + (v < 0), n = floor(log2 |v|), followed by the n low
bits of |v| in the raw bit section after the stream (MSB first, in the order symbols are decoded).

Payload (byte layout in formats/HNR.md, model `transform`, "Coefficient section"): the contexts
that occur, which share a table, the tables (explicit or parametric), the stream, the raw bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

import numpy as np

from hinercodec import parallel
from hinercodec.errors import CorruptFileError

from ...entropy import huffman, rans
from .wavelet import shapes

try:  # the compiled context modelling (_fast.c); the numpy code below is the reference it must match
    from . import _fast
except ImportError:  # pragma: no cover - a build without the extension
    _fast = None
FAST = _fast is not None  # tests switch it off to compare both paths
THREADS = 2  # threads of the compiled statistics (integer histograms: the result does not depend on it)


def _threads() -> int:
    """THREADS, or fewer where the calling thread's limit is lower (hinercodec.parallel)."""
    return min(THREADS, parallel.limit())

DIRECT = 16  # |v| below this is a symbol of its own
ESCAPE = 2 * DIRECT - 1  # first escape symbol (|v| in [16, 32))
MAX_LOG = 40  # |v| < 2**40
ALPHABET = ESCAPE + 2 * (MAX_LOG - 4)
# activity -> bucket: 0, 1, 2, 3-4, 5-7, 8-11, 12-19, 20-35, 36-63, 64-127, 128-255, 256+
BUCKETS = np.array([0, 1, 2, 3, 3, 4, 4, 4, 5, 5, 5, 5] + [6] * 8 + [7] * 16 + [8] * 28 + [9] * 64 + [10] * 128)
N_BUCKETS = 12  # bucket 11: activity >= 256
CROSS = 1  # weight of the same place in the previous image in a coefficient's activity
MAX_LEVELS = 8
LL_CONTEXT = 0

Pyramid = tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]


# ---------------------------------------------------------------- symbols

def to_symbols(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(symbols, escape magnitudes' low bits, their bit counts) of integer values."""
    v = np.asarray(values, np.int64).ravel()
    a = np.abs(v)
    if a.size and a.max() >= 1 << MAX_LOG:
        raise ValueError(f"coefficient magnitude {int(a.max())} exceeds 2**{MAX_LOG}")
    neg = (v < 0).astype(np.int64)
    sym = np.where(a == 0, 0, 2 * a - 1 + neg)
    big = a >= DIRECT
    n = np.zeros_like(a)
    if big.any():
        n[big] = np.floor(np.log2(a[big])).astype(np.int64)
        n[big] -= (1 << n[big]) > a[big]  # guard float rounding
        n[big] += (1 << (n[big] + 1)) <= a[big]
        sym[big] = ESCAPE + 2 * (n[big] - 4) + neg[big]
    return sym, (a - (1 << n))[big], n[big]


def _escape_bits(sym: np.ndarray) -> np.ndarray:
    """Bit count n of each escape symbol (0 for direct symbols)."""
    return np.where(sym >= ESCAPE, (sym - ESCAPE) // 2 + 4, 0)


def from_symbols(sym: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Inverse of to_symbols, given the low bits of the escapes in order."""
    sym = np.asarray(sym, np.int64)
    a = (sym + 1) // 2
    neg = (sym > 0) & (sym % 2 == 0)
    esc = sym >= ESCAPE
    if esc.any():
        n = _escape_bits(sym[esc])
        a[esc] = (1 << n) + low
        neg = np.where(esc, (sym - ESCAPE) % 2 == 1, neg)
    return np.where(neg, -a, a)


def _write_bits(values: np.ndarray, counts: np.ndarray) -> bytes:
    """Concatenate the `counts` low bits of each value, MSB first, zero-padded to a byte."""
    if not values.size:
        return b""
    width = int(counts.max())
    shifts = np.arange(width - 1, -1, -1)
    bits = (values[:, None] >> shifts) & 1
    keep = shifts[None, :] < counts[:, None]
    return np.packbits(bits[keep].astype(np.uint8)).tobytes()


class _BitReader:
    def __init__(self, data: bytes):
        self.bits = np.unpackbits(np.frombuffer(data, np.uint8))
        self.pos = 0

    def read(self, counts: np.ndarray) -> np.ndarray:
        total = int(counts.sum())
        if self.pos + total > self.bits.size:
            raise CorruptFileError("transform payload: the raw bit section is truncated")
        if not counts.size:
            return np.zeros(0, np.int64)
        chunk = self.bits[self.pos:self.pos + total].astype(np.int64)
        self.pos += total
        owner = np.repeat(np.arange(counts.size), counts)
        start = np.cumsum(counts) - counts
        place = counts[owner] - 1 - (np.arange(total) - start[owner])
        return np.bincount(owner, weights=chunk << place, minlength=counts.size).astype(np.int64)

    def finish(self) -> None:
        rest = self.bits[self.pos:]
        if rest.size >= 8 or rest.any():
            raise CorruptFileError("transform payload: trailing or nonzero padding bits in the raw bit section")


def _encode_segments(segments, tables) -> bytes:
    """rans.encode_segments, its coding loop compiled when _fast is built (the same bytes)."""
    return rans.encode_segments(segments, tables, kernel=_fast.rans_encode if FAST else None)


def _segment_decoder(data: bytes, tables, total: int) -> rans.SegmentDecoder:
    """rans.SegmentDecoder, its step loop compiled when _fast is built (the same symbols and checks)."""
    return rans.SegmentDecoder(data, tables, total, kernel=_fast.rans_read if FAST else None)


def _rans_decode(data: bytes, tables, count: int, which: Optional[np.ndarray] = None) -> np.ndarray:
    """rans.decode, its step loop compiled when _fast is built."""
    return rans.decode(data, tables, count, which, kernel=_fast.rans_read if FAST else None)


# ---------------------------------------------------------------- contexts




def _med_residual(ll: np.ndarray) -> np.ndarray:
    """LOCO-I median prediction residual of each image of a stack (K, h, w)."""
    x = np.asarray(ll, np.int64)
    up = np.zeros_like(x)
    left = np.zeros_like(x)
    ul = np.zeros_like(x)
    up[:, 1:] = x[:, :-1]
    left[:, :, 1:] = x[:, :, :-1]
    ul[:, 1:, 1:] = x[:, :-1, :-1]
    left[:, :, 0] = up[:, :, 0]  # first column: predict from above
    ul[:, :, 0] = up[:, :, 0]
    return x - _med(up, left, ul)


def _med(up: np.ndarray, left: np.ndarray, ul: np.ndarray) -> np.ndarray:
    lo, hi = np.minimum(up, left), np.maximum(up, left)
    return np.where(ul >= hi, lo, np.where(ul <= lo, hi, up + left - ul))


def _med_restore(res: np.ndarray, skipped: Optional[np.ndarray] = None) -> np.ndarray:
    """Inverse of _med_residual (row by row, vectorised over the stack and columns' dependence).
    `skipped` (h, w) bool: positions not coded, whose values are 0 (the residuals there unused)."""
    k, h, w = res.shape
    x = np.zeros((k, h, w), np.int64)
    for i in range(h):
        up = x[:, i - 1] if i else np.zeros((k, w), np.int64)
        for j in range(w):
            if skipped is not None and skipped[i, j]:
                continue
            if j == 0:
                x[:, i, 0] = res[:, i, 0] + up[:, 0]
            else:
                ul = up[:, j - 1]
                x[:, i, j] = res[:, i, j] + _med(up[:, j], x[:, i, j - 1], ul)
    return x


# ---------------------------------------------------------------- nodata: the coefficients not coded

Maps = tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]  # wavelet.masks: where coefficients are


def coded_count(images: int, coded: Maps) -> int:
    """How many coefficients a section with these maps codes."""
    return images * (int(coded[0].sum()) + sum(int(m.sum()) for ms in coded[1] for m in ms))


def _parent_activity(parent: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """2 |parent| + (sum of |parent|'s 4 neighbours) // 2 at each child position (0 without parent)."""
    k, h, w = shape
    if parent is None:
        return np.zeros(shape, np.int64)
    p = np.abs(parent)
    pad = np.pad(p, ((0, 0), (1, 1), (1, 1)))
    around = pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1] + pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:]
    act = 2 * p + around // 2
    ii = np.minimum(np.arange(h) // 2, p.shape[1] - 1)
    jj = np.minimum(np.arange(w) // 2, p.shape[2] - 1)
    return act[:, ii][:, :, jj]


def _neighbour_sum(values: np.ndarray) -> np.ndarray:
    """|up| + |down| + |left| + |right| (zero outside the image)."""
    pad = np.pad(np.abs(values), ((0, 0), (1, 1), (1, 1)))
    return pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1] + pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:]


def _bucket(activity: np.ndarray) -> np.ndarray:
    return np.where(activity >= BUCKETS.size, N_BUCKETS - 1, BUCKETS[np.minimum(activity, BUCKETS.size - 1)])


PASSES = 3  # A: even rows and columns; D: odd rows and columns (diagonal to A); B: the rest


def _pass_masks(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Positions of passes A (i, j even), D (i, j odd) and B (i + j odd) of an h x w band."""
    h, w = shape[-2:]
    i, j = np.arange(h)[:, None] % 2, np.arange(w)[None, :] % 2
    return [(i == 0) & (j == 0), (i == 1) & (j == 1), (i + j) % 2 == 1]


def _diagonal_sum(values: np.ndarray) -> np.ndarray:
    """Sum of |values| at the four diagonal neighbours (zero outside the image)."""
    pad = np.pad(np.abs(values), ((0, 0), (1, 1), (1, 1)))
    return pad[:, :-2, :-2] + pad[:, :-2, 2:] + pad[:, 2:, :-2] + pad[:, 2:, 2:]


def context_id(level: int, phase: int, bucket: np.ndarray) -> np.ndarray:
    """1 + (level * PASSES + pass) * N_BUCKETS + bucket (0 is the LL table). The
    three orientations of a level share their contexts: separate HH tables cost small files more
    in table bytes than they save (measured: -1.7 % on the Houston crop at 0.1 bpppb)."""
    return 1 + (level * PASSES + phase) * N_BUCKETS + bucket


Take = Callable[[np.ndarray, Optional[list]], np.ndarray]

# Sign contexts (the `transform2` coefficient section): the signs of the wavelet coefficients of a
# band are not independent. Along its high-pass direction neighbouring coefficients of a band
# mostly have opposite signs, along the other direction mostly the same (the filters' overlap; an
# edge crossing the band), and the same place in the previous component image agrees or disagrees
# depending on the scene. A sign is coded with the probability of its context: the level (0, 1, 2
# and coarser), the pass, a score of the signs already known around it, and the sign at the same
# place in the previous image (-, 0, +). The score sums the signs of the pass-A/D neighbours times
# each orientation's expected polarity (SIGN_POLARITY: along x, along y), clipped to -2..2.
SIGN_POLARITY = ((-1, 1), (1, -1), (-1, -1))  # orientation 0 (high-pass along x), 1 (along y), 2 (both)
SIGN_SCORES = 5
N_SIGN_CONTEXTS = 3 * PASSES * SIGN_SCORES * 3


def sign_context(band: np.ndarray, orientation: int, k: int, level: int, phase: int, mask: np.ndarray) -> np.ndarray:
    """Sign context ids (0..N_SIGN_CONTEXTS - 1) of image k's positions `mask` in `band` (K, h, w),
    from the signs known before this pass of image k: its pass-A (and D) neighbours, image k - 1."""
    base = sign_bases(band[k:k + 1], orientation, level, phase, mask)[0]
    return base + (np.sign(band[k - 1][mask]) if k else 0)


def sign_bases(band: np.ndarray, orientation: int, level: int, phase: int, mask: np.ndarray) -> np.ndarray:
    """sign_context without its image k - 1 term, for every image of `band` (K, h, w) at once:
    (K, positions of `mask`). A pass reads only the passes before it in its own image (pass D the
    A neighbours, pass B the A and D ones), so these are the same at the start of the pass as when
    each image's turn comes (the walk computes them once per pass)."""
    wx, wy = SIGN_POLARITY[orientation]
    n = int(mask.sum())
    if phase == 0:
        score = np.zeros((band.shape[0], n), np.int64)
    else:
        pad = np.pad(np.sign(band), ((0, 0), (1, 1), (1, 1)))
        if phase == 1:  # the four diagonal pass-A neighbours
            around = pad[:, :-2, :-2] + pad[:, :-2, 2:] + pad[:, 2:, :-2] + pad[:, 2:, 2:]
            score = (wx * wy) * around[:, mask]
        else:  # the four direct neighbours (passes A and D)
            score = (wx * (pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:]) + wy * (pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1]))[:, mask]
        score = np.clip(score, -2, 2)
    return ((min(level, 2) * PASSES + phase) * SIGN_SCORES + score + 2) * 3 + 1


def _walk(images: int, height: int, width: int, levels: int, take: Take,
          take_signs: Optional[Take] = None, coded: Optional[Maps] = None) -> Pyramid:
    """Visit every coefficient in coding order and build the pyramid from what `take` returns.

    take(contexts, picks) gives the values of the next group: the encoder returns the known
    values at `picks` (a list of (level, orientation, image, mask); None for the LL residuals)
    and records them, the decoder decodes len(contexts) symbols. Both see the same contexts, as
    each depends only on values taken before: the parent (one level coarser), for pass B the four
    pass-A neighbours, and the same place in the image before (the component images share edges).
    With `take_signs` (the `transform2` section), a detail group's values are magnitudes, and
    take_signs(sign contexts, picks) then gives the signs (+-1) of its nonzero ones, in order.
    With `coded` (wavelet.masks of a nodata mask), only the positions it marks are visited; the others are 0."""
    (lh, lw), det_shapes = shapes(height, width, levels)
    if coded is None:
        ll = _med_restore(take(np.full(images * lh * lw, LL_CONTEXT), None).reshape(images, lh, lw))
    else:
        res = np.zeros((images, lh, lw), np.int64)
        res[:, coded[0]] = take(np.full(images * int(coded[0].sum()), LL_CONTEXT), None).reshape(images, -1)
        ll = _med_restore(res, ~coded[0])
    details: list = [None] * levels
    for l in range(levels - 1, -1, -1):
        parents = details[l + 1] if l + 1 < levels else (None, None, None)
        bands = [np.zeros((images,) + shp, np.int64) for shp in det_shapes[l]]
        acts = [_parent_activity(parents[o], band.shape) for o, band in enumerate(bands)]
        masks = [_pass_masks(band.shape) for band in bands]
        if coded is not None:
            masks = [[m & coded[1][l][o] for m in ms] for o, ms in enumerate(masks)]
        for phase in range(PASSES):
            spatial = (None, _diagonal_sum, _neighbour_sum)[phase]
            near = acts if spatial is None else [spatial(band) + act // 2 for band, act in zip(bands, acts)]
            bases = None if take_signs is None else [sign_bases(band, o, l, phase, masks[o][phase]) if band.size else None
                                                     for o, band in enumerate(bands)]
            for k in range(images):
                ctx, picks = [], []
                for o, band in enumerate(bands):
                    if band.size == 0:
                        continue
                    mask = masks[o][phase]
                    if coded is not None and not mask.any():
                        continue
                    act = near[o][k][mask] + (CROSS * np.abs(band[k - 1][mask]) if k else 0)
                    ctx.append(context_id(l, phase, _bucket(act)))
                    picks.append((l, o, k, mask))
                if not picks:
                    continue
                values = take(np.concatenate(ctx), picks)
                sizes = np.cumsum([int(m.sum()) for _, _, _, m in picks])[:-1]
                parts = np.split(values, sizes)
                if take_signs is not None:
                    if (values < 0).any():  # an explicit table may give a negative symbol a frequency
                        raise ValueError("a negative magnitude in a section with sign contexts")
                    nonzero = [part != 0 for part in parts]
                    sctx = [(bases[o][k] + (np.sign(bands[o][k - 1][mask]) if k else 0))[nz]
                            for (_, o, _, mask), nz in zip(picks, nonzero)]
                    signs = take_signs(np.concatenate(sctx), picks)
                    for part, nz, sg in zip(parts, nonzero, np.split(signs, np.cumsum([int(nz.sum()) for nz in nonzero])[:-1])):
                        part[nz] *= sg
                for (_, o, _, mask), part in zip(picks, parts):
                    bands[o][k][mask] = part
        details[l] = tuple(bands)
    return ll, details


def _groups(pyramid: Pyramid, signs: bool = False, coded: Optional[Maps] = None) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """(values, context ids, is a sign group) of every coded group in stream order. With `signs`,
    a detail group holds magnitudes and is followed by the group of its nonzero values' signs
    (1 for negative, 0 for positive; sign context ids)."""
    ll, details = pyramid
    out: list[tuple[np.ndarray, np.ndarray, bool]] = []
    last: list = [None]

    def take(ctx: np.ndarray, picks: Optional[list]) -> np.ndarray:
        if picks is None:
            values = _med_residual(ll).ravel() if coded is None else _med_residual(ll)[:, coded[0]].ravel()
        else:
            values = np.concatenate([details[l][o][k][mask] for l, o, k, mask in picks])
            last[0] = values
            if signs:
                values = np.abs(values)
        out.append((values, ctx, False))
        return values.copy()  # the walk puts the signs back in place

    def take_signs(ctx: np.ndarray, picks: Optional[list]) -> np.ndarray:
        v = last[0][last[0] != 0]
        out.append(((v < 0).astype(np.int64), ctx, True))
        return np.sign(v)

    _walk(ll.shape[0], *_image_shape(pyramid), len(details), take, take_signs if signs else None, coded)
    return out


def _image_shape(pyramid: Pyramid) -> tuple[int, int]:
    """H, W of the images a pyramid was made from."""
    ll, details = pyramid
    if not details:
        return ll.shape[1], ll.shape[2]
    hl, lh, _ = details[0]
    return lh.shape[1] + hl.shape[1], hl.shape[2] + lh.shape[2]


# ---------------------------------------------------------------- size estimate and packing

PRECISION = 12  # every table of a coefficient section sums to 2**12
PARAM_BITS = 24  # a parametric table: three bytes


_FRACTIONS = (65536, 62757, 60097, 57549, 55109, 52773, 50535, 48393, 46341, 44376, 42495, 40693,
              38968, 37316, 35734, 34219)  # round(2**16 * 2**(-i/16)): 2**(-a/16) in integers


@lru_cache(maxsize=1 << 16)
def param_freqs(a: int, b: int, top: int, unsigned: bool = False) -> Optional[np.ndarray]:
    """Frequencies (summing to 2**PRECISION, each >= 1) of symbols 0..top under the two-parameter
    model of a dead-zone quantised Laplacian: P(v != 0) ~ 2**(-a / 16) (a log scale: the sparse
    fine subbands need P(0) near 1), and |v| = m >= 1 with weight
    theta ** (m - 1), theta = b / 256 (escape classes: the weight of their first value times the
    smaller of their width and 1 / (1 - theta)). Integer arithmetic only (2**-32 fixed point), so
    encoder and decoder build the same table on any machine. None when the table cannot hold a
    frequency for every symbol (the encoder then keeps an explicit table). `unsigned` (magnitudes
    of the `transform2` section): the negative values' symbols get frequency 0, their weight goes
    to the positive ones. Compiled where the coder is (_fast.param_freqs: the same integers;
    param_freqs_reference is this function's own arithmetic)."""
    if not (0 <= a <= 255 and 0 <= b <= 255 and 0 <= top < ALPHABET):
        return None
    if FAST:
        out = np.empty(top + 1, np.int64)
        if not _fast.param_freqs(a, b, top, bool(unsigned), out):
            return None
        out.flags.writeable = False  # cached: shared by every caller
        return out
    return param_freqs_reference(a, b, top, unsigned)


def param_freqs_reference(a: int, b: int, top: int, unsigned: bool = False) -> Optional[np.ndarray]:
    """param_freqs in Python integers (the reference of the compiled one)."""
    if not (0 <= a <= 255 and 0 <= b <= 255 and 0 <= top < ALPHABET):
        return None
    one = 1 << 32
    theta = b << 24

    def power(e: int) -> int:  # theta ** e in fixed point, by squaring (truncating each product)
        result, base = one, theta
        while e:
            if e & 1:
                result = (result * base) >> 32
            base = (base * base) >> 32
            e >>= 1
        return result

    weights = [0]
    dropped = [False]  # unsigned: the symbols of negative values
    run = one  # theta ** (m - 1) for the direct magnitudes m = 1, 2, ...
    for s in range(1, top + 1):
        dropped.append(unsigned and (s % 2 == 0 if s < ESCAPE else (s - ESCAPE) % 2 == 1))
        if s < ESCAPE:
            weights.append(0 if dropped[-1] else run)
            if s % 2 == 0:
                run = (run * theta) >> 32
        else:
            n = (s - ESCAPE) // 2 + 4
            weights.append(0 if dropped[-1] else power((1 << n) - 1) * min(1 << n, 256 // max(1, 256 - b)))
    m = 1 << PRECISION
    rest = max(1, (m * _FRACTIONS[a % 16]) >> (16 + a // 16))
    total = sum(weights)
    freqs = [0] + [0 if d else (max(1, rest * w // total) if total else 1) for w, d in zip(weights[1:], dropped[1:])]
    freqs[0] = m - sum(freqs)
    if freqs[0] < 1:
        return None
    out = np.array(freqs, np.int64)
    out.flags.writeable = False  # cached: shared by every caller
    return out


_MAGNITUDES = np.where(np.arange(ALPHABET) < ESCAPE, (np.arange(ALPHABET) + 1) // 2,
                       1 << np.maximum((np.arange(ALPHABET) - ESCAPE) // 2 + 4, 0))


def _param_fit(hist: np.ndarray, search: bool = True, unsigned: bool = False) -> tuple[float, tuple[int, int, int]]:
    """(bits, (a, b, top)) of the best parametric table near the moment estimates of `hist`
    (search=False: at the moment estimates only, for the encoder's quick size estimates)."""
    used = np.flatnonzero(hist)
    top = int(used[-1])
    counts = hist[used]
    n = int(counts.sum())
    nz = n - int(hist[0])
    mean = float(np.dot(counts, _MAGNITUDES[used])) / nz if nz else 1.0
    a0 = min(255, max(0, round(-16 * math.log2(nz / n)))) if nz else 255
    b0 = min(255, max(0, round(256 * (1 - 1 / max(mean, 1.0)))))
    best = (math.inf, (a0, b0, top))
    for a in sorted({min(255, max(0, a0 + d)) for d in ((0, -2, 2) if search else (0,))}):
        for b in sorted({min(255, max(0, b0 + d)) for d in ((0, -3, 3) if search else (0,))}):
            f = param_freqs(a, b, top, unsigned)
            if f is None or (f[used] == 0).any():  # a negative symbol in an unsigned table
                continue
            bits = PARAM_BITS + PRECISION * n - float(np.dot(counts, np.log2(f[used])))
            if bits < best[0]:
                best = (bits, (a, b, top))
    return best


def _table_cost_reference(hist: np.ndarray, unsigned: bool = False) -> float:
    """Estimated bits of symbols with `hist` under their own table, the table included: the
    cheaper of an explicit table and a parametric one (the reference _table_cost follows)."""
    used = hist > 0
    n = hist.sum()
    # Explicit table bytes plus the coder's loss over the entropy, fitted on real component
    # images: ~81 bits a table + 3.1 a used symbol, less for tables that code many symbols.
    overhead = max(16.0, 81.4 + 3.08 * int(used.sum()) - 4.09 * math.log2(n))
    explicit = _floored_entropy(hist[used], int(n)) + overhead
    return min(explicit, _param_fit(hist, search=False, unsigned=unsigned)[0])


def _floored_entropy(counts: np.ndarray, n: int) -> float:
    """The bits of symbols with these counts (n in all) under an explicit table's probabilities:
    their own shares, but none below 2**-PRECISION, the table's least frequency, except the most
    frequent symbol's, which gives up what those floors take (a context where nearly every symbol
    is one value pays this; the plain entropy would miss it)."""
    share = counts / n
    bits = -(counts * np.log2(share))
    floor = 2.0 ** -PRECISION
    rare = share < floor
    top = int(np.argmax(counts))
    rare[top] = False
    if rare.any():
        left = float(share[top]) - float((floor - share[rare]).sum())
        if left > 0:
            bits[rare] = counts[rare] * float(PRECISION)
            bits[top] = -float(counts[top]) * math.log2(left)
    return float(bits.sum())


def _table_cost(hist: np.ndarray, unsigned: bool = False) -> float:
    """_table_cost_reference with fewer numpy calls (the estimator calls it ~300 times a candidate):
    the same floating-point operations on the same arrays, so the same bits to the last one."""
    idx = np.flatnonzero(hist)
    counts = hist[idx]
    n = int(counts.sum())
    overhead = max(16.0, 81.4 + 3.08 * idx.size - 4.09 * math.log2(n))
    explicit = _floored_entropy(counts, n) + overhead
    # _param_fit(hist, search=False, unsigned)
    nz = n - int(hist[0])
    if nz:
        mean = float(np.dot(counts, _MAGNITUDES[idx])) / nz
        a = min(255, max(0, round(-16 * math.log2(nz / n))))
    else:
        mean, a = 1.0, 255
    b = min(255, max(0, round(256 * (1 - 1 / max(mean, 1.0)))))
    f = param_freqs(a, b, int(idx[-1]), unsigned)
    if f is None:
        return explicit
    fu = f[idx]
    if not fu.all():
        return explicit
    return min(explicit, PARAM_BITS + PRECISION * n - float(np.dot(counts, np.log2(fu))))


def _histograms(pyramid: Pyramid, signs: bool = False, coded: Optional[Maps] = None) -> tuple[list, np.ndarray, np.ndarray]:
    """Per group in stream order (symbols, escape low bits, escape bit counts, context ids, is a sign
    group), the histogram of every magnitude/value context id (rows) over the alphabet, and the
    (positive, negative) counts of every sign context (zeros without `signs`)."""
    out = []
    sign_counts = np.zeros((N_SIGN_CONTEXTS, 2), np.int64)
    for v, c, is_sign in _groups(pyramid, signs, coded):
        if is_sign:
            out.append((v, np.zeros(0, np.int64), np.zeros(0, np.int64), c, True))
            np.add.at(sign_counts, (c, v), 1)
        else:
            out.append(to_symbols(v) + (c, False))
    n_ctx = 1 + int(context_id(MAX_LEVELS - 1, PASSES - 1, N_BUCKETS - 1))
    flat = [c * ALPHABET + s for s, _, _, c, is_sign in out if not is_sign]
    flat = np.concatenate(flat) if flat else np.zeros(0, np.int64)
    hist = np.bincount(flat, minlength=n_ctx * ALPHABET).reshape(n_ctx, ALPHABET)
    return out, hist, sign_counts


def plan_tables(hist: np.ndarray, signs: bool = False) -> tuple[np.ndarray, list[np.ndarray], float]:
    """Which table each used context codes with: neighbouring buckets of one (level, pass,
    orientation) share a table while that saves bits (greedy, in bucket order). Returns (used
    context ids, a table slot per used id, the merged histograms, estimated bits). With `signs`,
    the detail contexts' tables are of magnitudes (param_freqs unsigned)."""
    used = np.flatnonzero(hist.sum(axis=1))
    slots = np.zeros(used.size, np.int64)
    merged: list[np.ndarray] = []
    costs: list[float] = []
    for i, cid in enumerate(used):
        h = hist[cid]
        unsigned = signs and cid != LL_CONTEXT
        prev = used[i - 1] if i else -1
        same_group = i and cid != LL_CONTEXT and prev != LL_CONTEXT and (cid - 1) // N_BUCKETS == (prev - 1) // N_BUCKETS
        if same_group:
            joined = merged[-1] + h
            c = _table_cost(joined, unsigned)
            alone = _table_cost(h, unsigned)
            if c <= costs[-1] + alone:
                merged[-1], costs[-1] = joined, c
                slots[i] = len(merged) - 1
                continue
        else:
            alone = _table_cost(h, unsigned)
        merged.append(h.copy())
        costs.append(alone)
        slots[i] = len(merged) - 1
    return used, slots, merged, float(sum(costs))


SIGN_STEP = 16  # a sign table is one byte q in 1..255: P(negative) = 16 q / 4096


def _sign_freqs(q: int) -> np.ndarray:
    return np.array([(1 << PRECISION) - SIGN_STEP * q, SIGN_STEP * q], np.int64)


SIGN_MAP_BYTES = (N_SIGN_CONTEXTS + 7) // 8


def plan_signs(counts: np.ndarray) -> tuple[list[tuple[int, int]], float]:
    """The sign contexts worth a table of their own, [(context id, q)], and the estimated bits of
    all signs (tables and map included). The others code at P = 1/2 (exactly one bit a sign);
    none is listed when the tables would not pay for their map."""
    listed, bits, plain = [], 0.0, float(counts.sum())
    for cid in np.flatnonzero(counts.sum(axis=1)):
        pos, neg = (int(v) for v in counts[cid])
        q = min(255, max(1, round(256 * neg / (pos + neg))))
        f = _sign_freqs(q)
        own = pos * (PRECISION - math.log2(f[0])) + neg * (PRECISION - math.log2(f[1])) + 8
        if own < pos + neg:
            listed.append((int(cid), q))
            bits += own
        else:
            bits += pos + neg
    if not listed or bits + 8 * SIGN_MAP_BYTES >= plain:
        return [], plain + 8
    return listed, bits + 8 * SIGN_MAP_BYTES + 8


def _fast_args(pyramid: Pyramid, signs: bool) -> tuple:
    ll, details = pyramid
    h, w = _image_shape(pyramid)
    bands = tuple(np.ascontiguousarray(b, np.int64) for b in [ll] + [b for level in details for b in level])
    return ll.shape[0], h, w, len(details), bool(signs), bands


def _stats(pyramid: Pyramid, signs: bool = False, coded: Optional[Maps] = None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(histogram of context x symbol, sign context counts, coded symbols, escape bits) of a pyramid
    (with `coded`: of its coded positions; the compiled statistics count every position, then
    _absent takes away what the positions outside the maps added)."""
    if FAST and pyramid[0].size and coded is not None:
        hist, sign_counts, total, escape_bits = _stats(pyramid, signs)
        absent, count, bits = _absent(pyramid, coded)
        return hist - absent, sign_counts, total - count, escape_bits - bits
    if FAST and pyramid[0].size and coded is None:
        hist = np.zeros((1 + int(context_id(MAX_LEVELS - 1, PASSES - 1, N_BUCKETS - 1)), ALPHABET), np.int64)
        sign_counts = np.zeros((N_SIGN_CONTEXTS, 2), np.int64)
        total, escape_bits = _fast.stats(*_fast_args(pyramid, signs), hist, sign_counts, _threads())
        return hist, sign_counts, total, escape_bits
    groups, hist, sign_counts = _histograms(pyramid, signs, coded)
    return hist, sign_counts, sum(g[0].size for g in groups), sum(int(g[2].sum()) for g in groups)


def estimate_bits(pyramid: Pyramid, signs: bool = False, stats: Optional[tuple] = None,
                  coded: Optional[Maps] = None) -> float:
    """Bits of pack(pyramid, signs) within a few percent, without building tables or streams:
    empirical conditional entropy of the planned tables + their cost (_table_cost) + escape bits +
    the signs (plan_signs) + the stream's lane states. `stats`: _stats(pyramid, signs) if known."""
    hist, sign_counts, total, escape_bits = _stats(pyramid, signs, coded) if stats is None else stats
    _, _, _, bits = plan_tables(hist, signs)
    if signs:
        bits += plan_signs(sign_counts)[1] + 24.0
    bits += float(escape_bits)
    return bits + framing_bits(hist, total, bits)


def _varint_bytes(values: np.ndarray) -> np.ndarray:
    """len(huffman.write_varint(v)) of each non-negative integer v."""
    v = np.asarray(values, np.int64)
    return 1 + (v >= 1 << 7) + (v >= 1 << 14) + (v >= 1 << 21) + (v >= 1 << 28)


def framing_bits(hist: np.ndarray, total: int, bits: float) -> float:
    """What a section holds besides its tables, symbols, signs and escape bits (`bits`, their
    estimate), in bits: the context list (the count and a gap before each used context, varints;
    the two flag maps, a bit a used context each in whole bytes) and the stream's framing: its varint
    length, the lane byte and each lane's four flushed state bytes less the ~8 bits of symbols a
    state holds, the last 16-bit word half empty and the escape bits' last byte half full on
    average (predicted_size, pack)."""
    used = np.flatnonzero(hist.any(axis=1))
    listing = int(_varint_bytes(np.diff(used, prepend=-1) - 1).sum()) + int(_varint_bytes(used.size)) + 2 * (-(-used.size // 8))
    lanes = rans.choose_lanes(total)
    stream = int(_varint_bytes(int(max(bits, 0.0) / 8.0) + 3 * lanes))
    return 8.0 * (listing + stream + 1 + 3 * lanes) + 8.0 + 4.0


def _absent(pyramid: Pyramid, coded: Maps) -> tuple[np.ndarray, int, int]:
    """What the positions outside `coded` add to the statistics of the whole pyramid: (histogram of
    context x symbol, symbols, escape bits). Their values are 0 (no sign) but their contexts, and
    the LL predictor's residuals there, are what the walk would compute: the same activities, from
    the same final values (every neighbour a context reads is decoded before it)."""
    ll, details = pyramid
    n_ctx = 1 + int(context_id(MAX_LEVELS - 1, PASSES - 1, N_BUCKETS - 1))
    hist = np.zeros(n_ctx * ALPHABET, np.int64)
    count = bits = 0
    out = ~coded[0]
    if out.any():
        sym, _, nbits = to_symbols(_med_residual(ll)[:, out])
        hist += np.bincount(LL_CONTEXT * ALPHABET + sym, minlength=hist.size)
        count, bits = count + sym.size, bits + int(nbits.sum())
    for l, bands in enumerate(details):
        parents = details[l + 1] if l + 1 < len(details) else (None, None, None)
        for o, band in enumerate(bands):
            out = ~coded[1][l][o]
            if band.size == 0 or not out.any():
                continue
            act = _parent_activity(parents[o], band.shape)
            a, d, b = _pass_masks(band.shape)
            both = np.where(a, act, np.where(d, _diagonal_sum(band), _neighbour_sum(band)) + act // 2)
            both[1:] += CROSS * np.abs(band[:-1])
            phase = np.where(a, 0, np.where(d, 1, 2))
            ctx = context_id(l, phase[None], _bucket(both))[:, out]
            hist += np.bincount(ctx.ravel() * ALPHABET, minlength=hist.size)
            count += ctx.size
    return hist.reshape(n_ctx, ALPHABET), count, bits


def fast_quantise(band: np.ndarray, q: np.ndarray, stats: np.ndarray, rows: int, n: int, step: float,
                  rounding: float, divide: bool = False) -> None:
    """The compiled dead-zone quantiser (_fast.quantise; encoder.quantise_errors is its reference;
    with `divide`, |c| / step: encoder.quantise_pyramid's integers)."""
    _fast.quantise(band, q, stats, rows, n, step, rounding, divide)


def fast_quantise_bands(bands: list, q: np.ndarray, stats: np.ndarray, steps: list, rounding: float) -> None:
    """fast_quantise (|c| * (1 / step)) of every band (K, ...) at once, into the flat int64 q (the bands
    one after another) and stats (bands, K, 4), each band at its step; the compiled threads share the
    components (the same bits for any count)."""
    _fast.quantise_bands(tuple(np.ascontiguousarray(b, np.float64) for b in bands), q, stats,
                         tuple(float(s) for s in steps), int(bands[0].shape[0]), float(rounding), _threads())


def fast_mix(rows: np.ndarray, images: np.ndarray, out: np.ndarray, rect: tuple[int, int, int, int]) -> None:
    """The compiled decoder.mix of rows (T, K + 1) over the rectangle (y0, y1, x0, x1) of the
    C-contiguous float64 images (K, H, W), into out (T, y1 - y0, x1 - x0)."""
    k, h, w = images.shape
    _fast.mix(rows, images, out, rows.shape[0], k, h, w, *rect, _threads())


RESTORE_KINDS = (np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.uint16),
                 np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.uint32), np.dtype(np.int8))


def fast_restore(y: np.ndarray, offset: np.ndarray, scale: np.ndarray, dtype: np.dtype,
                 out: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """cube.restore compiled (_fast.restore): H x W x K in `dtype` from y (K, H, W) float32/64 (into
    `out` when given: a C-contiguous array of that shape and dtype), or None where it does not apply
    (no compiled coder, another type)."""
    if not FAST or dtype not in RESTORE_KINDS or y.ndim != 3 or y.dtype not in (np.float32, np.float64):
        return None
    k, h, w = y.shape
    y = np.ascontiguousarray(y)
    if out is None or out.shape != (h, w, k) or out.dtype != dtype or not out.flags.c_contiguous:
        out = np.empty((h, w, k), dtype)
    _fast.restore(y, out, k, h * w, np.ascontiguousarray(scale, np.float64), np.ascontiguousarray(offset, np.float64),
                  y.dtype == np.float64, RESTORE_KINDS.index(dtype), _threads())
    return out


def fast_dequantise(q: np.ndarray, step: float, frac: float, in_place: bool = False,
                    out: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """decoder.dequantise_pyramid of one integer band compiled (_fast.dequantise: the same binary64
    operations), or None without the compiled coder. `in_place`: the values overwrite q's memory
    (q, C-contiguous int64, is then gone; no new memory to clear); `out`: a C-contiguous float64
    array of q's shape that receives them."""
    if not FAST:
        return None
    in_place = in_place and q.dtype == np.int64 and q.flags.c_contiguous and q.flags.writeable
    q = np.ascontiguousarray(q, np.int64)
    if out is None:
        out = q.view(np.float64) if in_place else np.empty(q.shape, np.float64)
    _fast.dequantise(q, out, float(step), float(frac), _threads())
    return out


def estimate_bits_approx(pyramid: Pyramid, signs: bool = False,
                         coded: Optional[Maps] = None) -> Optional[tuple[float, int, tuple]]:
    """(estimate_bits to ~1e-12 relative, not to the last bit; how many table-merge decisions were
    too close to call; the statistics) from the compiled code, or None without it. For decisions
    far from a threshold only: the encoder falls back on estimate_bits(stats=...) near one."""
    if not (FAST and pyramid[0].size):
        return None
    stats = _stats(pyramid, signs, coded)
    bits, ties = _fast.estimate(stats[0], stats[1], stats[3], bool(signs))
    return bits + framing_bits(stats[0], stats[2], bits), ties, stats


def _coded(pyramid: Pyramid, signs: bool, coded: Optional[Maps] = None) -> tuple[list, np.ndarray, np.ndarray]:
    """What pack codes: ([(symbols, context ids, is a sign group)] in stream order, escape low bits,
    their bit counts), the histogram of context x symbol, the sign context counts (numpy: the
    reference of the compiled _fast_stream)."""
    groups, hist, sign_counts = _histograms(pyramid, signs, coded)
    return ([(g[0], g[3], g[4]) for g in groups], np.concatenate([g[1] for g in groups]),
            np.concatenate([g[2] for g in groups])), hist, sign_counts


def _entropy_bits(hist: np.ndarray) -> float:
    """The empirical entropy of a histogram in bits (a lower bound of any table's coded bits)."""
    h = hist[hist > 0].astype(np.float64)
    return float(-(h * np.log2(h / h.sum())).sum())


def _fast_stream(pyramid: Pyramid, signs: bool, slot: np.ndarray, sign_slot: np.ndarray, tables: list,
                 total: int, escapes: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """(rANS stream, escape low bits, their bit counts) of pack's groups, compiled (_fast.stream: the
    bytes of _encode_segments over _coded's segments, without their per-symbol arrays). `escapes`:
    how many escape symbols the pyramid has (its statistics' count)."""
    index, offsets, sizes, starts, freqs = rans.entry_index(tables)
    args = _fast_args(pyramid, signs)
    low, nbits = np.empty(escapes, np.int64), np.empty(escapes, np.int64)
    stream, n_esc = _fast.stream(*args, slot, sign_slot, offsets, sizes, index, freqs, starts, PRECISION,
                                 rans.choose_lanes(total), rans.STATE_LOW, rans.WORD_BITS, total, low, nbits)
    rans.check_density(total, stream)
    return stream, low[:n_esc], nbits[:n_esc]


@dataclass
class Section:
    """What pack() decides before coding the stream (plan_section): the section's bytes before the
    stream (context list, table sharing, tables, sign tables), the tables and each context's table
    slot, and what predicts the stream's size."""

    head: bytes
    tables: list
    slot: np.ndarray  # table of each magnitude/value context id (-1: unused)
    sign_slot: np.ndarray  # table of each sign context
    total: int  # coded symbols
    escapes: int  # escape symbols among them
    escape_bits: int  # raw escape bits after the stream
    ideal_bits: float  # the symbols' ideal code lengths under their tables (the stream's size, less the coder's few bytes)
    coded: Optional[tuple] = None  # the numpy path's (groups, low, nbits) (with `coded` maps, or without _fast)


def plan_section(pyramid: Pyramid, signs: bool = False, coded: Optional[Maps] = None,
                 stats: Optional[tuple] = None, explicit: bool = True) -> Section:
    """pack()'s decisions for a pyramid (everything but the stream): the same tables and bytes.
    `stats`: _stats(pyramid, signs) when already taken (an estimate's), without `coded`.
    explicit=False: a context's table is parametric wherever one fits its symbols (no explicit
    table is built to compare: the encoder's low efforts, a little larger, much sooner)."""
    if len(pyramid[1]) > MAX_LEVELS:
        raise ValueError(f"at most {MAX_LEVELS} levels")
    groups = None
    if FAST and pyramid[0].size and coded is None:  # the stream straight from the pyramid
        hist, sign_counts, total, escape_bits = _stats(pyramid, signs) if stats is None else stats
    else:
        groups, hist, sign_counts = _coded(pyramid, signs, coded)
        total, escape_bits = sum(g[0].size for g in groups[0]), int(groups[2].sum())
    used, slots, merged, _ = plan_tables(hist, signs)
    tables, bodies, kinds = [], [], []
    ideal = 0.0
    for cid, h in zip([used[i] for i in range(used.size) if i == 0 or slots[i] != slots[i - 1]], merged):
        unsigned = signs and cid != LL_CONTEXT
        bits, params = _param_fit(h, unsigned=unsigned)
        # an explicit table costs at least the histogram's entropy, its size and parameter bytes and
        # a bit a symbol of level changes (rans.write_table): below that the parametric table wins
        # without building the explicit one
        size = int(np.flatnonzero(h)[-1]) + 1
        floor = _entropy_bits(h) + 8 * (len(huffman.write_varint(size)) + 1 + -(-size // 8))
        parametric = bits < floor * (1 - 1e-9) - 1e-6 or (not explicit and math.isfinite(bits))
        if not parametric:
            explicit = rans.build_table(h, PRECISION)
            body = rans.write_table(explicit)
            explicit_bits = rans.coded_bits(explicit, h)
            parametric = bits < 8 * len(body) + explicit_bits
        if parametric:
            tables.append(rans.Table(np.zeros(0, np.int64), 0, 0, PRECISION, param_freqs(*params, unsigned)))
            bodies.append(bytes(params))
            kinds.append(True)
            ideal += bits - PARAM_BITS
        else:
            tables.append(explicit)
            bodies.append(body)
            kinds.append(False)
            ideal += explicit_bits
    slot = np.full(hist.shape[0], -1, np.int64)
    slot[used] = slots
    out = bytearray(huffman.write_varint(used.size))
    prev = -1
    for cid in used:
        out += huffman.write_varint(int(cid - prev - 1))
        prev = cid
    fresh = np.ones(used.size, bool)
    fresh[1:] = slots[1:] != slots[:-1]
    out += np.packbits(fresh).tobytes()
    out += np.packbits(np.array(kinds, bool)).tobytes() + b"".join(bodies)
    sign_slot = np.zeros(N_SIGN_CONTEXTS, np.int64)  # (unused without signs)
    if signs:
        listed, _ = plan_signs(sign_counts)
        sign_slot = np.full(N_SIGN_CONTEXTS, len(tables), np.int64)  # the P = 1/2 table
        tables.append(rans.Table(np.zeros(0, np.int64), 0, 0, PRECISION, _sign_freqs(128)))
        out += huffman.write_varint(int(sign_counts.sum())) + huffman.write_varint(len(listed))
        ideal += float(sign_counts.sum())  # one bit a sign, less where a context has its own table
        if listed:
            bitmap = np.zeros(8 * SIGN_MAP_BYTES, bool)
            for cid, q in listed:
                bitmap[cid] = True
                sign_slot[cid] = len(tables)
                f = _sign_freqs(q)
                tables.append(rans.Table(np.zeros(0, np.int64), 0, 0, PRECISION, f))
                pos, neg = (int(v) for v in sign_counts[cid])
                ideal += pos * (PRECISION - math.log2(f[0])) + neg * (PRECISION - math.log2(f[1])) - pos - neg
            out += np.packbits(bitmap).tobytes() + bytes(q for _, q in listed)
    escapes = int(hist[:, ESCAPE:].sum())
    return Section(bytes(out), tables, slot, sign_slot, int(total), escapes, int(escape_bits), ideal, groups)


def predicted_size(section: Section) -> int:
    """pack()'s bytes for this section, predicted without coding the stream: exact but for the
    stream's length, which the ideal code lengths predict to within about a byte a lane (each lane's
    final state holds between 0 and 16 bits not yet written as words: half of that on average)."""
    lanes = rans.choose_lanes(section.total)
    words = max(0, math.ceil((section.ideal_bits - 8.0 * lanes) / rans.WORD_BITS))
    stream = 1 + 4 * lanes + 2 * words
    return len(section.head) + len(huffman.write_varint(stream)) + stream + -(-section.escape_bits // 8)


def pack(pyramid: Pyramid, signs: bool = False, coded: Optional[Maps] = None,
         stats: Optional[tuple] = None, section: Optional[Section] = None) -> bytes:
    """The coefficient section (formats/HNR.md, model `transform`; with `signs`, model
    `transform2`) of an integer pyramid (LL (K, h, w), details finest first); with `coded`
    (wavelet.masks), of its coded positions only (the pyramid must be 0 elsewhere). `stats`:
    _stats(pyramid, signs) when already taken (an estimate's), without `coded`; `section`:
    plan_section(pyramid, signs, coded) when already made."""
    s = plan_section(pyramid, signs, coded, stats) if section is None else section
    if s.coded is None:
        stream, low, nbits = _fast_stream(pyramid, signs, s.slot, s.sign_slot, s.tables, s.total, s.escapes)
    else:
        groups, low, nbits = s.coded
        stream = _encode_segments([(sym, s.sign_slot[ctx] if is_sign else s.slot[ctx]) for sym, ctx, is_sign in groups],
                                  s.tables)
    raw = _write_bits(low, nbits)
    return s.head + huffman.write_varint(len(stream)) + stream + raw


def unpack(data: bytes, images: int, height: int, width: int, levels: int, signs: bool = False,
           coded: Optional[Maps] = None, storage: Optional[np.ndarray] = None) -> Pyramid:
    """Inverse of pack(pyramid, signs, coded) for a pyramid of `levels` levels of `images` images of
    H x W. CorruptFileError on anything that does not decode to exactly that. `storage`: a flat
    C-contiguous int64 array of images * H * W values that the compiled path decodes the pyramid
    into (its subbands are views of it, in order; cleared first), instead of fresh memory."""
    if not 0 <= levels <= MAX_LEVELS:
        raise CorruptFileError(f"transform payload: {levels} levels (at most {MAX_LEVELS})")
    data = bytes(data)
    try:
        n_used, pos = huffman.read_varint(data, 0, 1 << 12)
        ids, prev = [], -1
        for _ in range(n_used):
            gap, pos = huffman.read_varint(data, pos, 1 << 12)
            prev += gap + 1
            ids.append(prev)
        n_flag = (n_used + 7) // 8
        if pos + n_flag > len(data):
            raise CorruptFileError("transform payload: truncated table map")
        fresh = np.unpackbits(np.frombuffer(data, np.uint8, n_flag, pos))[:n_used].astype(bool)
        pos += n_flag
        if n_used and not fresh[0]:
            raise CorruptFileError("transform payload: the first context shares a table that does not exist")
        slot = dict(zip(ids, (np.cumsum(fresh) - 1).tolist()))
        tables = []
        n_tables = int(fresh.sum())
        n_flag = (n_tables + 7) // 8
        if pos + n_flag > len(data):
            raise CorruptFileError("transform payload: truncated table kinds")
        kinds = np.unpackbits(np.frombuffer(data, np.uint8, n_flag, pos))[:n_tables].astype(bool)
        pos += n_flag
        first_ids = [cid for cid, f in zip(ids, fresh) if f]
        for cid, parametric in zip(first_ids, kinds):
            if parametric:
                if pos + 3 > len(data):
                    raise CorruptFileError("transform payload: truncated parametric table")
                freqs = param_freqs(*data[pos:pos + 3], signs and cid != LL_CONTEXT)
                if freqs is None:
                    raise CorruptFileError("transform payload: invalid parametric table")
                tables.append(rans.Table(np.zeros(0, np.int64), 0, 0, PRECISION, freqs))
                pos += 3
            else:
                table, pos = rans.read_table(data, pos)
                tables.append(table)
        if not tables or any(t.precision != PRECISION for t in tables):
            raise CorruptFileError(f"transform payload: tables missing or of a precision other than {PRECISION}")
        # every coded coefficient is one symbol
        total = images * (height * width) if coded is None else coded_count(images, coded)
        n_signs = 0
        if signs:
            n_signs, pos = huffman.read_varint(data, pos, total)
            n_listed, pos = huffman.read_varint(data, pos, N_SIGN_CONTEXTS)
            sign_slot = np.full(N_SIGN_CONTEXTS, len(tables), np.int64)
            tables.append(rans.Table(np.zeros(0, np.int64), 0, 0, tables[0].precision, _sign_freqs(128)))
            listed: list = []
            if n_listed:
                if pos + SIGN_MAP_BYTES > len(data):
                    raise CorruptFileError("transform payload: truncated sign table map")
                bitmap = np.unpackbits(np.frombuffer(data, np.uint8, SIGN_MAP_BYTES, pos))
                listed = np.flatnonzero(bitmap).tolist()
                pos += SIGN_MAP_BYTES
                if len(listed) != n_listed or (listed and listed[-1] >= N_SIGN_CONTEXTS):
                    raise CorruptFileError("transform payload: the sign table map does not match its count")
            if pos + n_listed > len(data):
                raise CorruptFileError("transform payload: truncated sign tables")
            for cid, q in zip(listed, data[pos:pos + n_listed]):
                if q == 0:
                    raise CorruptFileError("transform payload: invalid sign table")
                sign_slot[cid] = len(tables)
                tables.append(rans.Table(np.zeros(0, np.int64), 0, 0, tables[0].precision, _sign_freqs(q)))
            pos += n_listed
        length, pos = huffman.read_varint(data, pos, len(data))
        if pos + length > len(data):
            raise CorruptFileError("transform payload: the stream runs past the end of the chunk")
        decoder = _segment_decoder(data[pos:pos + length], tables, total + n_signs)
        lookup = np.full(1 + max(slot, default=0), -1, np.int64)
        lookup[list(slot)] = list(slot.values())
        if FAST and coded is None and decoder.total:
            return _unwalk(decoder, data[pos + length:], (images, height, width, levels), signs, lookup,
                           sign_slot if signs else np.zeros(N_SIGN_CONTEXTS, np.int64), n_signs, storage)
        bits = _BitReader(data[pos + length:])

        def values(count: int, ctx: np.ndarray) -> np.ndarray:
            if count == 0:
                return np.zeros(0, np.int64)
            if ctx.max() >= lookup.size or (lookup[ctx] < 0).any():
                raise CorruptFileError("transform payload: a context without a table")
            sym = decoder.read(count, lookup[ctx])
            return from_symbols(sym, bits.read(_escape_bits(sym)[sym >= ESCAPE]))

        decoded_signs = [0]

        def take_signs(ctx: np.ndarray, picks: Optional[list]) -> np.ndarray:
            decoded_signs[0] += ctx.size
            if decoded_signs[0] > n_signs:
                raise CorruptFileError("transform payload: more nonzero coefficients than signs")
            return 1 - 2 * decoder.read(ctx.size, sign_slot[ctx])

        ll, details = _walk(images, height, width, levels, lambda ctx, picks: values(ctx.size, ctx),
                            take_signs if signs else None, coded)
        if decoded_signs[0] != n_signs:
            raise CorruptFileError("transform payload: fewer nonzero coefficients than signs")
        decoder.finish()
        bits.finish()
        return ll, details
    except (ValueError, IndexError) as exc:
        raise CorruptFileError(f"transform payload: damaged coefficient data ({exc})") from None


def _unwalk(decoder: rans.SegmentDecoder, raw: bytes, shape: tuple[int, int, int, int], signs: bool,
            lookup: np.ndarray, sign_slot: np.ndarray, n_signs: int, storage: Optional[np.ndarray] = None) -> Pyramid:
    """The rest of unpack (the walk, the stream's and the raw bits' end checks) in compiled code
    (_fast.unwalk): the same pyramid and the same checks as the numpy walk, which is its reference.
    The pyramid starts zeroed: in `storage` (unpack) when it is one of the right size, else fresh."""
    images, height, width, levels = shape
    (lh, lw), det_shapes = shapes(height, width, levels)
    total = images * height * width  # a critically sampled pyramid: as many coefficients as pixels
    if (storage is not None and storage.dtype == np.int64 and storage.ndim == 1 and storage.size == total
            and storage.flags.c_contiguous and storage.flags.writeable):
        storage.fill(0)
    else:
        storage = np.zeros(total, np.int64)
    used = 0

    def carve(shp: tuple[int, int]) -> np.ndarray:
        nonlocal used
        n = images * shp[0] * shp[1]
        used += n
        return storage[used - n:used].reshape((images,) + shp)

    ll = carve((lh, lw))
    details = [tuple(carve(shp) for shp in det_shapes[l]) for l in range(levels)]
    try:
        ptr, bits_read, signs_read = _fast.unwalk(
            images, height, width, levels, bool(signs), (ll,) + tuple(b for level in details for b in level),
            decoder.x, decoder.words, decoder.n_words, decoder.ptr, decoder.starts, decoder.freqs, decoder.symbols,
            lookup, np.ascontiguousarray(sign_slot, np.int64), raw, decoder.precision, rans.STATE_LOW,
            rans.WORD_BITS, n_signs)
    except ValueError as exc:
        raise CorruptFileError(str(exc)) from None
    decoder.ptr = ptr
    if signs_read != n_signs:
        raise CorruptFileError("transform payload: fewer nonzero coefficients than signs")
    decoder.finish()
    rest = 8 * len(raw) - bits_read
    if rest >= 8 or (rest and raw[-1] & ((1 << rest) - 1)):
        raise CorruptFileError("transform payload: trailing or nonzero padding bits in the raw bit section")
    return ll, details


# ---------------------------------------------------------------- small integer vectors

VECTOR_FRAMING_BITS = 60  # pack_vectors' bits around its table and symbols: two varint lengths, the lane's state
VECTOR_GAP_BITS = 3  # an explicit table's bits for an unused symbol below its last used one (a level change)


def estimate_vector_bits(vectors: list[np.ndarray]) -> float:
    """Bits of pack_vectors(vectors), within 2 % on the encoder's side information (tests):
    the symbols' entropy, their explicit table (the overhead _table_cost fits, and
    VECTOR_GAP_BITS for each unused symbol below the last used one), the escape bits and
    VECTOR_FRAMING_BITS."""
    sym, _, nbits = to_symbols(np.concatenate([np.asarray(v).ravel() for v in vectors]))
    hist = np.bincount(sym, minlength=1)
    counts = hist[hist > 0]
    overhead = max(16.0, 81.4 + 3.08 * counts.size + VECTOR_GAP_BITS * (hist.size - counts.size)
                   - 4.09 * math.log2(max(sym.size, 1)))
    return float(-(counts * np.log2(counts / sym.size)).sum() + overhead + nbits.sum() + VECTOR_FRAMING_BITS)


def pack_vectors(vectors: list[np.ndarray]) -> bytes:
    """Integer vectors (lengths known to the reader) with one rANS table and raw escape bits:
    table, varint stream length, stream, varint raw length, raw bits."""
    sym, low, nbits = to_symbols(np.concatenate([np.asarray(v).ravel() for v in vectors]))
    table = rans.build_table(np.bincount(sym), rans.DEFAULT_PRECISION)
    stream = rans.encode(sym, table, kernel=_fast.rans_encode if FAST else None)
    raw = _write_bits(low, nbits)
    return rans.write_table(table) + huffman.write_varint(len(stream)) + stream + huffman.write_varint(len(raw)) + raw


def unpack_vectors(data: bytes, pos: int, lengths: list[int]) -> tuple[list[np.ndarray], int]:
    """Inverse of pack_vectors starting at data[pos]: (vectors, position after them)."""
    try:
        table, pos = rans.read_table(data, pos)
        n, pos = huffman.read_varint(data, pos, len(data))
        if pos + n > len(data):
            raise CorruptFileError("transform payload: side information stream runs past the end")
        sym = _rans_decode(data[pos:pos + n], table, int(sum(lengths)))
        pos += n
        n, pos = huffman.read_varint(data, pos, len(data))
        if pos + n > len(data):
            raise CorruptFileError("transform payload: side information bits run past the end")
        bits = _BitReader(data[pos:pos + n])
        values = from_symbols(sym, bits.read(_escape_bits(sym)[sym >= ESCAPE]))
        bits.finish()
    except (ValueError, IndexError) as exc:
        raise CorruptFileError(f"transform payload: damaged side information ({exc})") from None
    return np.split(values, np.cumsum(lengths)[:-1]), pos + n
