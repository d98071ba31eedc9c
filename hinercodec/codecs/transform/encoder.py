"""The transform model: a spectral basis continuous in wavelength times wavelet-coded component images.

Why: neighbouring bands are nearly redundant, so a cube is close to K << C images A_k mixed per
band by a basis B (C x K): X ~ mean + B A. The encoder learns B from the cube (its principal
directions, in the per-band normalised units PSNR_band is measured in), codes the images A with a
CDF 9/7 wavelet and context-modelled rANS (bitstream.py), and codes B and the mean as
integers at steps that cost the same distortion per bit as the images (reverse water-filling).
Bands get weights ~1 / their error (re-estimated over a few passes) so that the file maximises
PSNR_band, the mean of per-band PSNRs (or none, to maximise PSNR_global). The decoder
(decoder.py) rebuilds the coded bands exactly from their basis rows and any wavelength
between them from Akima splines of those rows, so bands at any wavelength come out of the same file.

Rate control is exact and cheap: every candidate is quantised and its coded size estimated in
milliseconds, so the encoder searches the number of components K and the global step for the
best score inside the rate window, then writes the file and checks its true size.

This module is the encoder (numpy only); decoder.py rebuilds the cube from the payload, bitstream.py
codes the integer pyramids, wavelet.py is the CDF 9/7 transform.
"""
from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ... import parallel
from ...entropy import rans
from ...errors import RequestError
from ..base import Budget, Job
from . import bitstream as subbands
from . import wavelet
from .decoder import (BASIS_RESOLUTION, EXP_MAX, EXP_MIN, OFFSET_RESOLUTION, STEP_RESOLUTION, WEIGHT_RANGE,
                      WEIGHT_RESOLUTION, band_steps, dequantise_pyramid, step_of, sub_step)

# What the encoder writes: MODL "transform2" (since 0.4), whose coefficient section codes the signs
# of the wavelet coefficients apart with sign contexts (bitstream.py); "transform" files
# (0.3, signs inside the symbols) still decode.
MODEL, SIGNS = "transform2", True
K_LADDER = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256)


@dataclass
class Analysis:
    """What the encoder computes once per cube: mean, principal directions and their variances."""

    cube: np.ndarray  # (C, N) the normalised cube as given (float32 or float64; not copied)
    root: np.ndarray  # (C,) sqrt(weights): the analysed values are x = root * cube (block(): float64)
    height: int
    width: int
    mean: np.ndarray  # (C,)
    basis: np.ndarray  # (C, C) eigenvectors, strongest first
    variance: np.ndarray  # (C,) per-pixel variance of each component
    constant: np.ndarray  # (C,) bool: bands with no range (decoded exactly from BNDS)
    weights: np.ndarray  # (C,) band weights: x is sqrt(w_c) * the normalised band c
    cache: dict = field(default_factory=dict)
    valid: Optional[np.ndarray] = None  # (H, W) bool: the data pixels when some are nodata (else None)
    side_share: float = 1.0  # the share of the side information's bits this cube carries (plan_sample)
    reuse: bool = False  # keep large buffers for reuse (_images_buffer, _take_storage): a tile's analysis
    refit: bool = True  # exact candidates' images by least squares on the quantised basis (else: the projection's)
    values: Optional[np.ndarray] = None  # (C, N) float64 x itself, kept when small (KEEP_VALUES_BYTES)

    @property
    def bands(self) -> int:
        return self.cube.shape[0]

    @property
    def pixels(self) -> int:
        return self.cube.shape[1]

    def block(self, p0: int, p1: int) -> np.ndarray:
        """x[:, p0:p1] in float64 (C-contiguous): the values a float64 copy of the whole weighted cube
        would hold, made block by block where they are used (no C x N float64 copy kept), or copied
        from that copy when the analysis kept it (a small cube: `values`)."""
        if self.values is not None:
            part = self.values[:, p0:p1]
            if not part.flags.c_contiguous:
                return np.array(part, order="C")
            part = part.view()
            part.flags.writeable = False  # the kept values themselves: read only
            return part
        return np.multiply(self.cube[:, p0:p1], self.root[:, None], dtype=np.float64)


KEEP_VALUES_BYTES = 1 << 25  # an analysis keeps its float64 weighted cube up to this size (a small cube's
# search makes its blocks again and again: each a conversion and a product, against a copy)


@dataclass
class Moments:
    """A cube's band statistics over its data pixels, unweighted: what every weighting's analysis
    scales (a band weighted by w has sqrt(w) times the mean, max and min, and the covariance
    sqrt(w_i w_j) times), so that a search's passes compute them once."""

    mean: np.ndarray  # (C,)
    cov: np.ndarray  # (C, C) per-pixel covariance
    top: np.ndarray  # (C,) max
    bottom: np.ndarray  # (C,) min


def moments(cube: np.ndarray, valid: Optional[np.ndarray] = None) -> Moments:
    """Moments of a normalised cube (C, H, W) over the `valid` pixels (all when None), in float64,
    centred block by block in block order (the same sums for any thread count)."""
    c = cube.shape[0]
    flat = np.asarray(cube).reshape(c, -1)
    if valid is not None:
        flat = flat[:, valid.reshape(-1)]
    count = flat.shape[1]
    mean = np.array([flat[i].mean(dtype=np.float64) for i in range(c)])
    cov = np.zeros((c, c))
    top, bottom = np.full(c, -np.inf), np.full(c, np.inf)
    size = block_size(count, ERROR_CHUNK)

    def gram(p0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x0 = np.asarray(flat[:, p0:p0 + size], np.float64)
        most, least = x0.max(axis=1), x0.min(axis=1)
        x0 = x0 - mean[:, None]
        return x0 @ x0.T, most, least

    for part, most, least in parallel.in_blocks(gram, range(0, count, size)):
        cov += part
        np.maximum(top, most, out=top)
        np.minimum(bottom, least, out=bottom)
    cov /= count
    return Moments(mean, cov, top, bottom)


def analyse(cube: np.ndarray, weights: Optional[np.ndarray] = None, valid: Optional[np.ndarray] = None,
            stats: Optional[Moments] = None) -> Analysis:
    """cube (C, H, W) in normalised units; `weights` (C,) weight each band's squared error;
    `valid` (H, W) bool: the data pixels, the only ones the mean and the basis are learnt from;
    `stats`: moments(cube, valid) when already taken."""
    c, h, w = cube.shape
    weights = np.ones(c) if weights is None else np.asarray(weights, np.float64)
    flat, root = np.asarray(cube).reshape(c, h * w), np.sqrt(weights)
    stats = moments(cube, valid) if stats is None else stats
    mean = root * stats.mean
    cov = stats.cov * np.outer(root, root)
    var, vec = np.linalg.eigh(cov)
    order = np.argsort(var)[::-1]
    vec = vec[:, order]
    # Sign convention (deterministic files): the largest entry of each direction is positive.
    vec *= np.where(vec[np.argmax(np.abs(vec), axis=0), np.arange(c)] < 0, -1.0, 1.0)
    constant = root * stats.top - root * stats.bottom <= 0  # np.ptp's max - min
    # a small cube's float64 x, kept for the search's blocks (Analysis.block: made again and again)
    values = np.multiply(flat, root[:, None], dtype=np.float64) if 8 * c * h * w <= KEEP_VALUES_BYTES else None
    return Analysis(cube=flat, root=root, height=h, width=w, mean=mean, basis=vec,
                    variance=np.maximum(var[order], 0.0), constant=constant, weights=weights, valid=valid,
                    values=values)


# ---------------------------------------------------------------- integer side information



def _exponent(step: float, target: float) -> int:
    """Integer e with step * 2 ** (-e / BASIS_RESOLUTION) closest to target (clamped to EXP_MIN..EXP_MAX)."""
    if target <= 0 or not math.isfinite(target):
        return EXP_MAX
    return int(min(EXP_MAX, max(EXP_MIN, round(-BASIS_RESOLUTION * math.log2(target / step)))))


def _quantise_side(a: Analysis, k: int, step: float) -> tuple[np.ndarray, list[int], np.ndarray, int]:
    """Integer basis (C, K) with per-component exponents and integer mean with its exponent.

    RD: an error e in basis entry (c, k) costs e^2 * variance_k * N in band c, one in a coefficient
    costs e^2 once, so the basis step that spends bits at the same slope as the images is
    step / sqrt(variance_k * N); likewise step / sqrt(N) for the mean."""
    n = a.pixels if a.valid is None else int(np.count_nonzero(a.valid))  # the pixels that count
    exps = [_exponent(step, step / math.sqrt(max(a.variance[j], 1e-30) * n)) for j in range(k)]
    steps = np.array([sub_step(step, e) for e in exps])
    b_int = np.rint(a.basis[:, :k] / steps[None, :]).astype(np.int64)
    m_exp = _exponent(step, step / math.sqrt(n))
    m_int = np.rint(a.mean / sub_step(step, m_exp)).astype(np.int64)
    return b_int, exps, m_int, m_exp


def _side_vectors(b_int: np.ndarray, m_int: np.ndarray) -> list[np.ndarray]:
    """Second differences along the bands (spectra are smooth): what is coded."""
    res = _predict_residual(b_int)  # every column at once (integers: the same values)
    return [_predict_residual(m_int)] + [res[:, j] for j in range(b_int.shape[1])]


def _predict_residual(v: np.ndarray) -> np.ndarray:
    """v less its prediction along the first axis (v[0]: 0, v[1]: v[0], then 2 v[i - 1] - v[i - 2])."""
    pred = np.zeros_like(v)
    if v.size > 1:
        pred[1] = v[0]
    if v.size > 2:
        pred[2:] = 2 * v[1:-1] - v[:-2]
    return v - pred


# ---------------------------------------------------------------- images

def quantise_pyramid(pyr: wavelet.Pyramid, steps: tuple[float, list[float]], rounding: float,
                     offsets: bool = True, out: Optional[np.ndarray] = None) -> tuple[subbands.Pyramid, list[int]]:
    """Dead-zone quantisation (|q| = floor(|c| / step + rounding)) and the per-band-group
    reconstruction offsets (LL, then each level) that minimise the squared error. The compiled
    quantiser sums what the offsets need as it goes (the non-zeros and their |c| / step - |q|):
    no second pass over the pyramid (_offsets_of, the numpy path's). `out`: a flat int64 buffer at
    least the pyramid's size for the integers (compiled path; else fresh memory)."""
    if not (subbands.FAST and all(b.size for b in [pyr[0]] + [b for bands in pyr[1] for b in bands])):
        def q(band: np.ndarray, s: float) -> np.ndarray:
            return (np.sign(band) * np.floor(np.abs(band) / s + rounding)).astype(np.int64)

        ints = (q(pyr[0], steps[0]), [tuple(q(b, s) for b in bands) for bands, s in zip(pyr[1], steps[1])])
        return ints, (_offsets_of(pyr, ints, steps) if offsets else [])
    groups = [[pyr[0]]] + [list(bands) for bands in pyr[1]]
    if out is not None and out.size < sum(b.size for bands in groups for b in bands):
        out = None
    found, sums, used = [], [], 0
    for bands, s in zip(groups, [steps[0]] + list(steps[1])):
        num = den = 0.0
        qs = []
        for band in bands:  # compiled: the same integers, no float temporaries
            band = np.ascontiguousarray(band, np.float64)
            q = np.empty(band.shape, np.int64) if out is None else out[used:used + band.size].reshape(band.shape)
            used += band.size
            stats = np.zeros((band.shape[0], 4))
            subbands.fast_quantise(band, q, stats, band.shape[0], band.size // band.shape[0], s, rounding,
                                   divide=True)
            qs.append(q)
            num, den = num + float(stats[:, 2].sum()), den + float(stats[:, 1].sum())
        found.append(qs)
        sums.append((num, den))
    ints = (found[0][0], [tuple(qs) for qs in found[1:]])
    return ints, ([_offset_code(num, den) for num, den in sums] if offsets else [])


def _offset_code(num: float, den: float) -> int:
    """A band group's reconstruction offset: the mean of |c| / step - |q| over its `den` non-zeros
    (`num` their sum), in 1 / OFFSET_RESOLUTION, at most half a step either way."""
    return 0 if den == 0 else int(np.clip(round(OFFSET_RESOLUTION * num / den), -OFFSET_RESOLUTION // 2,
                                          OFFSET_RESOLUTION // 2))


def _offsets_of(pyr: wavelet.Pyramid, ints: subbands.Pyramid, steps: tuple[float, list[float]]) -> list[int]:
    """The reconstruction offsets that minimise the squared error of each band group."""
    def offset(bands: list[np.ndarray], qs: list[np.ndarray], s: float) -> int:
        num = den = 0.0
        for b, i in zip(bands, qs):
            nz = i != 0
            num += float((np.abs(b[nz]) / s - np.abs(i[nz])).sum())
            den += int(nz.sum())
        return _offset_code(num, den)

    found = [offset([pyr[0]], [ints[0]], steps[0])]
    found += [offset(list(b), list(i), s) for b, i, s in zip(pyr[1], ints[1], steps[1])]
    return found


# ---------------------------------------------------------------- one candidate

@dataclass
class Candidate:
    k: int
    code: int  # global step = 2 ** (-code / STEP_RESOLUTION)
    bits: float  # estimated payload bits (images + side information)
    mse: np.ndarray  # (C,) per band, normalised units
    parts: tuple  # what pack needs
    exact: bool = True  # bits is estimate_bits' own value (else the compiled approximation: see _fits)
    estimated: bool = False  # mse is _estimated's (the search's), not the exact images' (finalise)
    stats: Optional[tuple] = None  # the integer pyramid's statistics (bitstream._stats), when taken: pack's too


def evaluate(a: Analysis, k: int, code: int, rounding: float, budget_bits: Optional[float] = None,
             exact_mse: bool = True) -> Candidate:
    """The candidate (exact images, MSE, estimated bits). With `budget_bits`, its bits may be the
    compiled approximation when that is far from the budget (exact=False; see _fits, _cand_fits).
    exact_mse=False: the MSE is _estimated's (no inverse transform: nothing compares it)."""
    step = step_of(code)
    levels = wavelet.levels_for(a.height, a.width)
    steps = band_steps(step, levels)
    maps = _maps(a)
    b_int, b_exps, m_int, m_exp = _quantise_side(a, k, step)
    b_hat = b_int * np.array([sub_step(step, e) for e in b_exps])[None, :]
    m_hat = m_int * sub_step(step, m_exp)
    side = (b_int, b_exps, m_int, m_exp)
    if not a.refit:  # the search's own pyramid (the unquantised basis's projection), quantised
        # (the integers in the search's integer buffer, no longer needed by it: not fresh memory)
        ints, offsets = quantise_pyramid(_pyramid(a, k), steps, rounding, out=a.cache.pop("scratch", None))
        _drop_search_arrays(a)
        return _candidate(a, k, code, rounding, budget_bits, exact_mse, b_hat, m_hat, ints, offsets, side, steps,
                          maps)
    scratch = a.cache.pop("scratch", None)  # the search's integer buffer: the candidate's integers
    _drop_search_arrays(a)
    # Least squares with the QUANTISED basis: the images absorb part of the basis error.
    images = _least_squares(a, b_hat, m_hat, _images_buffer(a, k, levels)).reshape(k, a.height, a.width)
    storage = None
    if maps is None:
        storage = _take_storage(a, wavelet.pyramid_size(images.shape, levels))
        pyr = wavelet.forward(images, levels, storage)
        ints, offsets = quantise_pyramid(pyr, steps, rounding, out=scratch)
    else:  # nodata: the shape-adaptive wavelet of the data pixels (0 elsewhere, not coded)
        pyr = wavelet.forward_masked(images, a.valid, levels)
        ints, offsets = quantise_pyramid(pyr, steps, rounding, out=scratch)
    del pyr, images
    _give_storage(a, storage)  # the integers and offsets are made: nothing reads the pyramid again
    return _candidate(a, k, code, rounding, budget_bits, exact_mse, b_hat, m_hat, ints, offsets, side, steps, maps)


def _candidate(a: Analysis, k: int, code: int, rounding: float, budget_bits: Optional[float], exact_mse: bool,
               b_hat: np.ndarray, m_hat: np.ndarray, ints: subbands.Pyramid, offsets: list[int], side_parts: tuple,
               steps: tuple[float, list[float]], maps: Optional[subbands.Maps]) -> Candidate:
    """evaluate()'s candidate from its integer pyramid (quantised with `steps`): its MSE (exact:
    the images decoded and mixed as the decoder does; or the search's estimate) and its bits."""
    b_int, b_exps, m_int, m_exp = side_parts
    levels = len(steps[1])
    if not exact_mse:
        mse = _estimated(a, k, code, rounding).mse
    elif maps is None:
        # the coefficients in the spare pyramid memory and the images in the images buffer (a tile's
        # analysis: both idle now), not in fresh memory
        storage = _take_storage(a, wavelet.pyramid_size((k, a.height, a.width), levels))
        buf = _images_buffer(a, k, levels)
        rec = wavelet.inverse(dequantise_pyramid(ints, steps, offsets, storage=storage),
                              None if buf is None else buf.reshape(k, a.height, a.width)).reshape(k, -1)
        mse = _band_errors(a, b_hat, m_hat, rec) / a.weights
        del rec
        _give_storage(a, storage)
    else:
        rec = wavelet.inverse_masked(dequantise_pyramid(ints, steps, offsets), a.valid).reshape(k, -1)
        mse = _band_errors(a, b_hat, m_hat, rec) / a.weights
    side = _side_vectors(b_int, m_int)
    found = None if budget_bits is None or maps is not None else subbands.estimate_bits_approx(ints, SIGNS)
    if found is not None:
        approx, ties, stats = found
        approx += a.side_share * subbands.estimate_vector_bits(side)
        if not ties and abs(approx - budget_bits) > FIT_MARGIN * abs(budget_bits) + 1.0:
            return Candidate(k, code, approx, mse, (ints, offsets, b_int, b_exps, m_int, m_exp, levels), exact=False,
                             stats=stats)
        bits = subbands.estimate_bits(ints, SIGNS, stats) + a.side_share * subbands.estimate_vector_bits(side)
    else:
        stats = None
        bits = subbands.estimate_bits(ints, SIGNS, coded=maps) + a.side_share * subbands.estimate_vector_bits(side)
    return Candidate(k, code, bits, mse, (ints, offsets, b_int, b_exps, m_int, m_exp, levels), stats=stats)


ERROR_CHUNK = 1 << 13  # pixels per block of the reconstruction error (a (C, block) array stays in cache)
SOLVE_BLOCK = 1 << 12  # pixels per block of the least squares: its right-hand side stays in cache
SHARES = 2  # blocks come in multiples of this many (two cores' shares) from SHARES * MIN_BLOCK pixels up
MIN_BLOCK = 1 << 10


def block_size(n: int, most: int) -> int:
    """The pixels per block of n pixels in blocks of at most `most` (parallel.block_size), an even
    count of them from SHARES * MIN_BLOCK pixels up (an image a little larger than one block, 9025
    pixels in 8192 + 833, no longer leaves one core idle). It depends on n alone: so do the sums
    made block by block, whatever the thread count."""
    return parallel.block_size(n, most, SHARES if n >= SHARES * MIN_BLOCK else 1)


def _least_squares(a: Analysis, b_hat: np.ndarray, m_hat: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """(K, N) coefficients c minimising |x - m_hat - b_hat c| per pixel: the normal equations
    (b_hat.T b_hat) c = b_hat.T (x - m_hat), solved for SOLVE_BLOCK pixels at a time (no (K, N)
    right-hand side beside the result): an image of at most that many by one LAPACK solve, a larger
    one by the system's inverse (K x K, made once) times each block's right-hand side (a solve per
    block factored the same system again every time, a large cost of a low-rate tile in a profile;
    the system is close to the identity, the quantised basis close to orthonormal).
    `out`: a C-contiguous (K, N) float64 array that receives them."""
    k, n = b_hat.shape[1], a.pixels
    system = b_hat.T @ b_hat + 1e-12 * np.eye(k)
    shift = (b_hat.T @ m_hat)[:, None]
    if n <= SOLVE_BLOCK:
        rhs = b_hat.T @ a.block(0, n)
        rhs -= shift  # b_hat.T (x - m_hat), without a (C, N) temporary
        found = np.linalg.solve(system, rhs)
        if out is None:
            return found
        out[...] = found
        return out
    coeff = np.empty((k, n)) if out is None else out
    inverse = np.linalg.inv(system)
    size = block_size(n, SOLVE_BLOCK)

    def solve(p0: int) -> None:
        rhs = b_hat.T @ a.block(p0, p0 + size)
        rhs -= shift
        np.matmul(inverse, rhs, out=coeff[:, p0:p0 + size])

    for _ in parallel.in_blocks(solve, range(0, n, size)):
        pass
    return coeff


def _band_errors(a: Analysis, b_hat: np.ndarray, m_hat: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """(C,) mean over the (data) pixels of (clip(m_hat + b_hat rec, 0, sqrt(w)) - x) ** 2, block by
    block of pixels: no (C, N) temporaries, and each block is made and summed while in cache."""
    c, n = a.bands, a.pixels
    root = a.root[:, None]
    total = np.zeros(c)
    flat_valid = None if a.valid is None else a.valid.reshape(-1)

    size = block_size(n, ERROR_CHUNK)

    def errors(p0: int) -> np.ndarray:
        p1 = min(n, p0 + size)
        xh = b_hat @ rec[:, p0:p1]
        xh += m_hat[:, None]
        np.clip(xh, 0.0, root, out=xh)
        xh -= a.block(p0, p1)
        np.square(xh, out=xh)
        return xh.sum(axis=1) if flat_valid is None else xh[:, flat_valid[p0:p1]].sum(axis=1)

    for part in parallel.in_blocks(errors, range(0, n, size)):
        total += part  # in block order: the same sums for any thread count
    return total / (n if flat_valid is None else max(1, int(np.count_nonzero(flat_valid))))


def _cand_fits(cand: Candidate, budget_bits: float, side_share: float = 1.0) -> bool:
    """cand.bits <= budget_bits as the exact estimate decides it (an approximate cand.bits decides
    only far from the budget; near it the exact bits are computed once and kept)."""
    if not cand.exact and abs(cand.bits - budget_bits) <= FIT_MARGIN * abs(budget_bits) + 1.0:
        ints, _, b_int, _, m_int, _, _ = cand.parts
        cand.bits = (subbands.estimate_bits(ints, SIGNS)
                     + side_share * subbands.estimate_vector_bits(_side_vectors(b_int, m_int)))
        cand.exact = True
    return cand.bits <= budget_bits


METRICS = ("psnr_band", "psnr_global")  # what the encoder maximises (PROTOCOL.md's two PSNRs)


def score(mse: np.ndarray, constant: np.ndarray, metric: str = "psnr_band") -> float:
    """The figure the encoder maximises: PSNR_band (mean of per-band PSNRs) or PSNR_global."""
    if metric == "psnr_global":
        keep = ~constant
        return float("inf") if not keep.any() else float(10 * np.log10(1.0 / max(float(mse[keep].mean()), 1e-30)))
    return psnr_band(mse, constant)


def psnr_band(mse: np.ndarray, constant: np.ndarray) -> float:
    keep = ~constant
    if not keep.any():
        return float("inf")
    return float(np.mean(10 * np.log10(1.0 / np.maximum(mse[keep], 1e-30))))


PYRAMIDS_KEPT = 1  # unquantised pyramids remembered per analysis (each the size of K images: peak memory; a
# search never goes back to a K it left without its estimates, which stay: one is enough)


GROWN_BYTES = 1 << 26  # a pyramid up to this size (an untiled cube's, no nodata) is grown across K (_grown_pyramid)


def _pyramid(a: Analysis, k: int) -> wavelet.Pyramid:
    """The wavelet pyramid of the first k components (unquantised basis), remembered for the last
    PYRAMIDS_KEPT values of K; a small one grown across K instead (_grown_pyramid)."""
    if a.valid is None and not a.reuse and 8 * k * a.pixels <= GROWN_BYTES:
        return _grown_pyramid(a, k)
    key = ("pyramid", k)
    kept = a.cache.setdefault("pyramids", [])
    if key in a.cache:
        kept.remove(k)
    else:
        while len(kept) >= PYRAMIDS_KEPT:
            _release_pyramid(a, kept.pop(0))
        levels = wavelet.levels_for(a.height, a.width)
        coeff = _images_buffer(a, k, levels)
        images = _project(a, 0, k, coeff).reshape(k, a.height, a.width)
        if a.valid is None:
            storage = _take_storage(a, wavelet.pyramid_size(images.shape, levels))
            a.cache[key] = wavelet.forward(images, levels, storage)
            a.cache[("storage", k)] = storage
        else:
            a.cache[key] = wavelet.forward_masked(images, a.valid, levels)
    kept.append(k)
    return a.cache[key]


def _project(a: Analysis, lo: int, hi: int, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Component images lo..hi-1 (hi - lo, N) of the unquantised basis, the mean's projection
    taken away, in `out` when given: each row the same values whichever rows are asked for (a
    matrix product's row is the same sums for any number of rows but one, which BLAS computes as a
    vector product: at least two rows are multiplied; the mean's projection is made for every
    component at once), so that a pyramid grown across K (_grown_pyramid) is the one made whole."""
    out = np.empty((hi - lo, a.pixels)) if out is None else out
    first = max(0, min(lo, hi - 2))
    last = min(a.basis.shape[1], max(hi, first + 2))

    size = block_size(a.pixels, SOLVE_BLOCK)

    def rows(p0: int) -> None:  # a block of pixels (no (C, N) temporary)
        out[:, p0:p0 + size] = (a.basis[:, first:last].T @ a.block(p0, p0 + size))[lo - first:hi - first]

    for _ in parallel.in_blocks(rows, range(0, a.pixels, size)):
        pass
    if "mean_projection" not in a.cache:
        a.cache["mean_projection"] = a.basis.T @ a.mean
    out -= a.cache["mean_projection"][lo:hi, None]
    return out


def _grown_pyramid(a: Analysis, k: int) -> wavelet.Pyramid:
    """_pyramid of a small analysis: the pyramid of the most components asked for so far is kept,
    the first k of its images serve any smaller K, and a larger K transforms only the components
    it adds (a search climbing K from 8 to 80 projects 80 images, not the 354 of every rung): the
    same values as the pyramid made whole (_project's rows; each image transformed on its own)."""
    held = a.cache.get("grown")
    if held is None or held[0] < k:
        k0 = 0 if held is None else held[0]
        part = wavelet.forward(_project(a, k0, k).reshape(k - k0, a.height, a.width),
                               wavelet.levels_for(a.height, a.width))
        if held is not None:
            part = (np.concatenate((held[1][0], part[0])),
                    [tuple(np.concatenate(pair) for pair in zip(old, new)) for old, new in zip(held[1][1], part[1])])
        held = a.cache["grown"] = (k, part)
    if held[0] == k:
        return held[1]
    ll, details = held[1]
    return ll[:k], [tuple(b[:k] for b in level) for level in details]


FINEST_CODE = 24 * STEP_RESOLUTION  # steps below 2**-24 of a band's range code nothing a cube holds
MAX_MAGNITUDE_LOG2 = 36  # keep every quantised integer far below the coder's 2**40 (and int64)


def finest_code(a: Analysis, k: int) -> int:
    """The largest step code worth trying for K components: FINEST_CODE, or less where the largest
    coefficient (or basis entry) would quantise to more than 2**MAX_MAGNITUDE_LOG2. High rates then
    stop at the finest useful step instead of overflowing the coder (hinerc 0.4 crashed above ~2 bpppb).
    Remembered per K (a re-aim asks again once the pyramid is let go)."""
    key = ("finest", k)
    if key not in a.cache:
        a.cache[key] = _finest_code(a, k)
    return a.cache[key]


def _finest_code(a: Analysis, k: int) -> int:
    pyr = _pyramid(a, k)
    ll_gain, det_gains = wavelet.gains(len(pyr[1])) if pyr[1] else (1.0, [])
    worst = float(np.abs(pyr[0]).max(initial=0.0)) * ll_gain
    for bands, g in zip(pyr[1], det_gains):
        worst = max(worst, max(float(np.abs(b).max(initial=0.0)) for b in bands) * g)
    # side information: a basis entry (at most 1) over its sub-step, step / sqrt(variance * N)
    worst = max(worst, 4.0 * math.sqrt(max(float(a.variance[0]), 1e-30) * a.pixels), float(np.abs(a.mean).max()))
    if worst <= 0:
        return FINEST_CODE
    return int(max(0, min(FINEST_CODE, math.floor(STEP_RESOLUTION * (MAX_MAGNITUDE_LOG2 - math.log2(worst))))))


def _estimate_bits(a: Analysis, k: int, code: int, rounding: float) -> float:
    """Bits of a candidate without its exact images: the pyramid of the UNQUANTISED basis's
    projection (cached per K) quantised at this step, plus the side information. Within a fraction
    of a percent of evaluate()'s bits, at a quarter of its cost (no least squares, no inverse).
    A pure function of its arguments: remembered in a.cache (re-aimed searches ask again)."""
    key = ("bits", k, code, rounding)
    if key not in a.cache:
        a.cache[key] = _estimate_bits_of(a, k, code, rounding)
    return a.cache[key]


EVALUATED_KEPT = 2  # candidates remembered per analysis (their integer pyramids are the size of K images)


def _evaluated(a: Analysis, k: int, code: int, rounding: float, budget_bits: Optional[float] = None,
               exact_mse: bool = True) -> Candidate:
    """evaluate(), remembered for the last EVALUATED_KEPT candidates of this analysis."""
    kept = a.cache.setdefault("evaluated", {})
    key = (k, code, rounding, exact_mse)
    if not exact_mse and (k, code, rounding, True) in kept:
        key = (k, code, rounding, True)  # the exact MSE serves where the estimate was asked
    if key in kept:
        kept[key] = kept.pop(key)  # most recently used last
    else:
        kept[key] = evaluate(a, k, code, rounding, budget_bits, exact_mse)
        while len(kept) > EVALUATED_KEPT:
            kept.pop(next(iter(kept)))
    return kept[key]


def _estimate_bits_of(a: Analysis, k: int, code: int, rounding: float) -> float:
    ints, side, _ = _quantised(a, k, code, rounding)
    return subbands.estimate_bits(ints, SIGNS, coded=_maps(a)) + side


def _maps(a: Analysis) -> Optional[subbands.Maps]:
    """Where coefficients are coded (wavelet.masks of the data pixels), None without nodata."""
    if a.valid is None:
        return None
    if "maps" not in a.cache:
        a.cache["maps"] = wavelet.masks(a.valid, wavelet.levels_for(a.height, a.width))
    return a.cache["maps"]


def _quantised(a: Analysis, k: int, code: int, rounding: float) -> tuple[subbands.Pyramid, float, np.ndarray]:
    """The integer pyramid of a candidate's unquantised projection, its side information's bits and
    the squared error (K,) each component's image gets from it (an estimate: see _error_of)."""
    pyr = _pyramid(a, k)
    step = step_of(code)
    ints, err = quantise_errors(pyr, band_steps(step, len(pyr[1])), rounding, _scratch(a, pyr))
    b_int, _, m_int, _ = _quantise_side(a, k, step)
    a.cache[("error", k, code, rounding)] = err * step * step
    return ints, a.side_share * subbands.estimate_vector_bits(_side_vectors(b_int, m_int)), err * step * step


IMAGES_BUFFER_FROM = 1 << 22  # bytes: component images this large are made in the analysis's buffer


def _images_buffer(a: Analysis, k: int, levels: int) -> Optional[np.ndarray]:
    """A C-contiguous (K, N) float64 view of the analysis's buffer for component images that live
    only until their wavelet pyramid is made (the search's projections, the exact candidates'
    least squares): the same memory every time instead of fresh memory the system must clear for
    each (the largest cost of a large image's search after the coding itself). None (allocate
    afresh) for small images, without levels (forward() would return the images themselves), or
    unless the analysis is a tile's (a.reuse): tiles run two or more at a time in one process, where
    every fresh page costs more (faults and unmapping contend between the threads); one untiled
    cube gained no time from the reuse and held more memory (the CAVE scenes: peak +70-90 MB)."""
    n = a.pixels
    if not a.reuse or levels < 1 or 8 * k * n < IMAGES_BUFFER_FROM:
        return None
    buf = a.cache.get("images")
    if buf is None or buf.size < k * n:
        a.cache.pop("images", None)
        buf = a.cache["images"] = np.empty(k * n)
    return buf[:k * n].reshape(k, n)


def _take_storage(a: Analysis, n: int) -> Optional[np.ndarray]:
    """Flat float64 memory for the detail bands of a pyramid of n values (wavelet.forward's
    `storage`): the analysis's spare (the memory of the last pyramid let go) when it is large
    enough, else fresh; None (forward allocates) below IMAGES_BUFFER_FROM bytes."""
    if not a.reuse or 8 * n < IMAGES_BUFFER_FROM:
        return None
    spare = a.cache.pop("spare", None)
    return spare if spare is not None and spare.size >= n else np.empty(n)


def _give_storage(a: Analysis, storage: Optional[np.ndarray]) -> None:
    """The memory of a pyramid no longer used (no view of it is read again) becomes the spare,
    if larger than the spare already kept (one spare at most: peak memory as without it)."""
    spare = a.cache.get("spare")
    if storage is not None and (spare is None or storage.size > spare.size):
        a.cache["spare"] = storage


def _release_pyramid(a: Analysis, k: int) -> None:
    a.cache.pop(("pyramid", k), None)
    _give_storage(a, a.cache.pop(("storage", k), None))


def _drop_buffers(a: Analysis) -> None:
    """Let go of the memory kept for reuse (_images_buffer, the spare of _take_storage) once the
    analysis's search and exact candidates are done: peak memory as without it."""
    a.cache.pop("images", None)
    a.cache.pop("spare", None)


def _drop_search_arrays(a: Analysis) -> None:
    """Let go of the search's pyramids and integer buffer (each the size of K images) before an
    exact evaluation, whose own arrays then make the peak memory: a later search (a re-aim) builds
    the one pyramid it needs again (the memory of the largest kept as the spare: _take_storage)."""
    a.cache.pop("scratch", None)
    a.cache.pop("grown", None)
    for k in a.cache.pop("pyramids", []):
        _release_pyramid(a, k)


def _scratch(a: Analysis, pyr: wavelet.Pyramid) -> np.ndarray:
    """An int64 buffer of the analysis as large as the pyramid (grown when a larger K asks): the
    search's integer pyramids live only until their statistics are taken, so one buffer serves
    every probe instead of fresh memory each time (each page the system must clear once)."""
    n = pyr[0].size + sum(b.size for bands in pyr[1] for b in bands)
    buf = a.cache.get("scratch")
    if buf is None or buf.size < n:
        a.cache.pop("scratch", None)
        buf = a.cache["scratch"] = np.empty(n, np.int64)
    return buf


def quantise_errors(pyr: wavelet.Pyramid, steps: tuple[float, list[float]],
                    rounding: float, out: Optional[np.ndarray] = None) -> tuple[subbands.Pyramid, np.ndarray]:
    """The search's quantiser: quantise_pyramid's integers (but |c| * (1 / s), not |c| / s: a
    multiplication), and per component (leading axis) the squared
    quantisation error in units of the global step, each band group at its best reconstruction
    offset: sum over subbands of |c| / s - the reconstruction, squared, which is the image's
    squared error for a synthesis gain of exactly 1 / s per subband (gains(): within 8 %).
    `out`: a flat int64 buffer at least the pyramid's size that holds the integers (overwritten)."""
    groups = [[pyr[0]]] + [list(bands) for bands in pyr[1]]
    group_steps = [steps[0]] + list(steps[1])
    k = pyr[0].shape[0]
    ints: list = []
    err = np.zeros(k)
    every = [band for bands in groups for band in bands]
    every_step = [s for bands, s in zip(groups, group_steps) for _ in bands]
    parts = []  # every band's (integers, statistics)
    if subbands.FAST and k and all(band.size for band in every):  # one compiled call for them all
        n = sum(band.size for band in every)
        flat = out[:n] if out is not None and out.size >= n else np.empty(n, np.int64)
        found = np.zeros((len(every), k, 4))
        subbands.fast_quantise_bands(every, flat, found, every_step, rounding)
        starts = np.cumsum([0] + [band.size for band in every])
        parts = [(flat[at:at + band.size].reshape(band.shape), found[i]) for i, (band, at) in enumerate(zip(every, starts))]
    else:
        used = 0
        for band, s in zip(every, every_step):
            into = None if out is None else out[used:used + band.size].reshape(band.shape)
            used += band.size
            parts.append(quantise_band(band, s, rounding, into))
    at_band = iter(parts)
    for bands in groups:
        stats = np.zeros((k, 4))
        qs = []
        for _ in bands:
            q, st = next(at_band)
            qs.append(q)
            stats += st
        zero_sq, nz, sf, sf2 = stats.T
        den = float(nz.sum())
        o = 0.0 if den == 0 else float(np.clip(round(OFFSET_RESOLUTION * float(sf.sum()) / den),
                                               -OFFSET_RESOLUTION // 2, OFFSET_RESOLUTION // 2)) / OFFSET_RESOLUTION
        err += zero_sq + sf2 - 2.0 * o * sf + nz * o * o
        ints.append(qs)
    return (ints[0][0], [tuple(b) for b in ints[1:]]), err


def quantise_band(band: np.ndarray, s: float, rounding: float,
                  out: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """(integers, per component (K, 4): sum of u^2 over the zeros, non-zeros, sum of f and of f^2
    over them, u = |c| * (1 / s), f = u - |q|) of one subband (K, h, w); the integers in `out` (a
    C-contiguous int64 array of the band's shape) when given."""
    k = band.shape[0]
    band = np.ascontiguousarray(band, np.float64)
    stats = np.zeros((k, 4))
    if subbands.FAST and band.size:
        q = np.empty(band.shape, np.int64) if out is None else out
        subbands.fast_quantise(band, q, stats, k, band.size // k, s, rounding)
        return q, stats
    u = np.abs(band) * (1.0 / s)
    t = np.floor(u + rounding)
    q = (np.sign(band) * t).astype(np.int64)
    zero = (t == 0).reshape(k, -1)
    u, f = u.reshape(k, -1), (u - t).reshape(k, -1)
    stats[:, 0] = np.where(zero, u * u, 0.0).sum(axis=1)
    stats[:, 1] = (~zero).sum(axis=1)
    stats[:, 2] = np.where(zero, 0.0, f).sum(axis=1)
    stats[:, 3] = np.where(zero, 0.0, f * f).sum(axis=1)
    return q, stats


FIT_MARGIN = 1e-6  # relative: the approximate estimate decides "fits" only this far from the budget


def _fits(a: Analysis, k: int, code: int, rounding: float, budget_bits: float) -> bool:
    """_estimate_bits(a, k, code, rounding) <= budget_bits, decided by the compiled approximate
    estimate (bitstream.estimate_bits_approx, ~1e-12 relative from the exact one) when it is more
    than FIT_MARGIN from the budget and no table-merge decision was a near tie, by the exact
    estimate otherwise: the same answers as the exact estimate, so the same search and files."""
    exact = ("bits", k, code, rounding)
    if exact in a.cache:
        return a.cache[exact] <= budget_bits
    key = ("approx", k, code, rounding)
    if key not in a.cache:
        ints, side, _ = _quantised(a, k, code, rounding)
        found = subbands.estimate_bits_approx(ints, SIGNS, _maps(a))
        if found is None:
            a.cache[exact] = subbands.estimate_bits(ints, SIGNS, coded=_maps(a)) + side
            return a.cache[exact] <= budget_bits
        bits, ties, stats = found
        a.cache[key] = (bits + side, ties)
        if ties or abs(bits + side - budget_bits) <= FIT_MARGIN * abs(budget_bits) + 1.0:
            a.cache[exact] = subbands.estimate_bits(ints, SIGNS, stats) + side
            return a.cache[exact] <= budget_bits
    bits, ties = a.cache[key]
    if not ties and abs(bits - budget_bits) > FIT_MARGIN * abs(budget_bits) + 1.0:
        return bits <= budget_bits
    return _estimate_bits(a, k, code, rounding) <= budget_bits


def _known_fit(a: Analysis, k: int, code: int, rounding: float, budget_bits: float) -> Optional[bool]:
    """_fits(a, k, code, rounding, budget_bits) when the estimates already made decide it, else None."""
    exact = a.cache.get(("bits", k, code, rounding))
    if exact is not None:
        return exact <= budget_bits
    found = a.cache.get(("approx", k, code, rounding))
    if found is None or found[1] or abs(found[0] - budget_bits) <= FIT_MARGIN * abs(budget_bits) + 1.0:
        return None
    return found[0] <= budget_bits


FIRST_CODE = (270, 220)  # fit_code's first probe without a hint: code ~ a + b log2(budget bits per coefficient)
# (the codes found at K = 8 on the shared scenes at 0.1-0.8 bpppb lie within ~40 of this line)


def first_code(budget_bits: float, values: int) -> int:
    """Where a step search with nothing to go by starts (speed only: fit_code finds the same code
    from anywhere): FIRST_CODE's line at the budget's bits per coefficient."""
    a, b = FIRST_CODE
    per_value = budget_bits / max(values, 1)
    return int(round(a + b * math.log2(per_value))) if per_value > 0 else 0


LOG_SLOPE = 0.016  # typical d ln(bits) / d code near the usual rates (bits double every ~43 codes)
SLOPE_RANGE = (0.004, 0.05)  # the slopes fit_code learns are kept within this (a cube's own, about 0.01-0.02)


def fit_code(a: Analysis, k: int, budget_bits: float, rounding: float,
             hint: Optional[int] = None) -> Optional[Candidate]:
    """The estimated candidate (_estimated) at the finest step (largest code) whose estimated bits
    fit `budget_bits`, or None when even code 0 (step 1) does not fit; finalise() makes it exact.
    The first probe at `hint` (the code found for a neighbouring K, or by the plan), the second
    where the slope of log(bits) puts the budget (the slope between the first two probes of the
    last fit_code on this analysis, a.cache["slope"], or the plan's: else LOG_SLOPE), then secants of log(bits)
    against the code (close to linear) inside a bracket that shrinks at every probe, with a
    bisection step whenever the secant does not halve it: 3-4 probes instead of bisection's 8. The
    code found does not depend on the path (bits grow with the code), only the cost."""
    top = finest_code(a, k)
    lo, hi = -1, top + 1  # fits(lo) (-1: "before the start"), not fits(hi) (top + 1: "past the end")
    seen: dict[int, float] = {}

    def record(code: int, ok: bool) -> None:
        nonlocal lo, hi
        seen[code] = _bits_seen(a, k, code, rounding)
        if ok:
            lo = max(lo, code)
        else:
            hi = min(hi, code)

    def probe(code: int) -> None:
        record(code, _fits(a, k, code, rounding, budget_bits))

    # the estimates already made at this K (an earlier search, a re-aim's first file) that decide
    # without new work: a re-aim whose bracket they close needs no pyramid at all
    for code in sorted({key[2] for key in a.cache if key[0] in ("bits", "approx") and key[1] == k
                        and key[3] == rounding and 0 <= key[2] <= top}):
        ok = _known_fit(a, k, code, rounding, budget_bits)
        if ok is not None:
            record(code, ok)
    if hi - lo <= 1:
        return None if lo < 0 else _estimated(a, k, lo, rounding)
    probe(min(max(first_code(budget_bits, k * a.pixels) if hint is None else hint, lo + 1, 0), hi - 1, top))
    first = list(seen)[-1]
    step = 8  # the second probe: the nearest code past the crossing the slope of log(bits) predicts
    slope = a.cache.get("slope") or LOG_SLOPE
    if math.isfinite(seen[first]) and seen[first] > 0 and budget_bits > 0:
        d = abs(math.log(budget_bits / seen[first]) / slope)
        step = min(max(math.floor(d) + 1 if first == lo else math.ceil(d), 1), 64)
    if hi - lo > 1:
        probe(min(max(first + step if first == lo else first - step, lo + 1, 0), hi - 1, top))
        second = list(seen)[-1]
        if second != first and min(seen[first], seen[second]) > 0 and math.isfinite(seen[first] + seen[second]):
            learnt = abs(math.log(seen[second] / seen[first]) / (second - first))
            a.cache["slope"] = min(max(learnt, SLOPE_RANGE[0]), SLOPE_RANGE[1])
    while hi - lo > 1:
        width = hi - lo
        # the secant through the nearest probes on each side of the budget (the bracket's ends when
        # both were probed), its code clamped inside the bracket: a convex curve's secant stops one
        # short of the crossing, and the clamp takes that last step
        below = [c for c in seen if c <= lo and math.isfinite(seen[c])]
        above = [c for c in seen if c >= hi and math.isfinite(seen[c])]
        pts = ([max(below)] if below else []) + ([min(above)] if above else [])
        if len(pts) < 2:
            pts = sorted(seen, key=lambda c: abs(seen[c] - budget_bits))[:2]
        guess = (max(lo, 0) + hi) // 2
        if len(pts) == 2 and min(seen[pts[0]], seen[pts[1]], budget_bits) > 0:  # the secant of log(bits)
            (c1, c2), (b1, b2) = pts, (math.log(seen[pts[0]]), math.log(seen[pts[1]]))
            if c1 != c2 and (b2 - b1) * (c2 - c1) > 0:
                guess = int(math.floor(c1 + (math.log(budget_bits) - b1) * (c2 - c1) / (b2 - b1)))
        probe(min(max(guess, lo + 1, 0), hi - 1))
        if hi - lo > 1 and hi - lo > width // 2 and len(seen) >= 5:  # the secant did not halve it: bisect once
            probe((max(lo, 0) + hi) // 2)
    if lo < 0:
        return None
    return _estimated(a, k, lo, rounding)


def _bits_seen(a: Analysis, k: int, code: int, rounding: float) -> float:
    """The bits _fits computed for a candidate (exact where it computed them, else approximate)."""
    exact = a.cache.get(("bits", k, code, rounding))
    return exact if exact is not None else a.cache.get(("approx", k, code, rounding), (math.nan,))[0]


def _estimated(a: Analysis, k: int, code: int, rounding: float) -> Candidate:
    """A candidate whose per-band MSE is estimated from the quantisation errors of its unquantised
    projection's pyramid (components' errors taken as uncorrelated, the wavelet as orthogonal at
    gains()), the discarded components' variance and the side information's quantisation: no least
    squares, no inverse transform, no (C, N) reconstruction. Only the search's comparisons use it;
    the chosen candidate is then evaluated exactly (finalise)."""
    key = ("error", k, code, rounding)
    if key not in a.cache:
        _quantised(a, k, code, rounding)
    err = a.cache[key]
    step = step_of(code)
    b_int, b_exps, m_int, m_exp = _quantise_side(a, k, step)
    b_hat = b_int * np.array([sub_step(step, e) for e in b_exps])[None, :]
    m_hat = m_int * sub_step(step, m_exp)
    n = a.pixels if a.valid is None else int(np.count_nonzero(a.valid))
    mse = ((b_hat ** 2) @ err / n + (a.basis[:, k:] ** 2) @ a.variance[k:]
           + ((a.basis[:, :k] - b_hat) ** 2) @ a.variance[:k] + (a.mean - m_hat) ** 2) / a.weights
    return Candidate(k, code, float(_bits_seen(a, k, code, rounding)), mse, (), exact=False, estimated=True)


def finalise(a: Analysis, cand: Candidate, budget_bits: float, rounding: float,
             exact_mse: bool = True) -> Optional[Candidate]:
    """The exact candidate (least-squares images of the quantised basis, true MSE, exact bits) at
    the estimated candidate's K, at the finest step from its code down whose bits fit the budget;
    None when not even step code 0 fits. exact_mse=False: its MSE stays the estimate (a plan's
    candidate: no choice depends on it)."""
    code = cand.code
    while True:
        exact = _evaluated(a, cand.k, code, rounding, budget_bits, exact_mse)
        if _cand_fits(exact, budget_bits, a.side_share):
            return exact
        if code == 0:
            return None
        code -= 1


def search(a: Analysis, budget_bits: float, rounding: float = 0.35,
           ladder: tuple[int, ...] = K_LADDER, start: Optional[int] = None, metric: str = "psnr_band",
           code: Optional[int] = None, runner_up: Optional[list] = None,
           codes: Optional[dict[int, int]] = None) -> Optional[Candidate]:
    """Best `metric` over K on the ladder: hill-climbing from `start` (default K = 8), up while
    it improves, then down; each K at the finest step that fits the budget (estimated candidates:
    _estimated), the first searched from `code` (a step code found before, if any). `runner_up`:
    a list that receives the second best K's candidate, if any."""
    ks = [k for k in ladder if k <= a.bands]
    if not ks:
        return None
    i0 = min(range(len(ks)), key=lambda i: abs(ks[i] - (start or 8)))
    tried: dict[int, Optional[Candidate]] = {}
    found: list[tuple[int, int]] = []  # (K, code) found by this search, in order
    earlier = {} if codes is None else dict(codes)  # as the earlier searches left it

    def at(i: int) -> float:
        if i not in tried:
            cand = fit_code(a, ks[i], budget_bits, rounding, code_hint(ks[i], found, earlier, code))
            tried[i] = cand
            if cand is not None:
                found.append((ks[i], cand.code))
                if codes is not None:
                    codes[ks[i]] = cand.code
        cand = tried[i]
        return -math.inf if cand is None else score(cand.mse, a.constant, metric)

    while i0 > 0 and at(i0) == -math.inf:  # the start does not fit: a file of fewer components may
        i0 -= 1
    i = i0
    at(i0)
    for direction in (1, -1):
        while 0 <= i + direction < len(ks) and at(i + direction) > at(i):
            i += direction
        if i != i0:
            break
    ranked = sorted((c for c in tried.values() if c is not None), key=lambda c: -score(c.mse, a.constant, metric))
    if runner_up is not None:
        runner_up.extend(ranked[1:2])
    return ranked[0] if ranked else None


CODE_DECAY = 0.75  # how the step code's fall per octave of K shrinks from one rung to the next (code_hint)


def code_hint(k: int, found: list[tuple[int, int]], earlier: dict[int, int],
              code: Optional[int]) -> Optional[int]:
    """Where fit_code's first probe at K goes (speed only: the code it finds does not depend on it).
    With K's code from an earlier search of the same cube (another pass's weights), that code moved
    by as much as the last K this search found has moved since; else, after two K of this search,
    the code's fall per octave of K between them, shrunk by CODE_DECAY, extrapolated to K; else the
    last code found (or `code`)."""
    if k in earlier:
        for k1, c1 in reversed(found):
            if k1 in earlier:
                return earlier[k] + c1 - earlier[k1]
        return earlier[k]
    if len(found) >= 2:
        (k0, c0), (k1, c1) = found[-2:]
        if k0 != k1 and k != k1:
            per_octave = (c1 - c0) / math.log2(k1 / k0)
            if (k > k1) == (k1 > k0):
                per_octave *= CODE_DECAY
            else:
                per_octave /= CODE_DECAY
            return int(round(c1 + per_octave * math.log2(k / k1)))
    return found[-1][1] if found else code


# ---------------------------------------------------------------- the whole encoder

EFFORT_PASSES = {1: 0, 2: 1, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4, 8: 5, 9: 6}  # re-weighting passes
EFFORT_ROUNDINGS = {1: (0.35,), 2: (0.35,), 3: (0.35,), 4: (0.30, 0.38), 5: (0.30, 0.35, 0.40)}


def weight_codes(mse: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """Integer log2 band weights (1/WEIGHT_RESOLUTION octave) proportional to 1 / MSE_c.

    Why: PSNR_band averages 10 log10(1 / MSE_c) over bands, whose gradient in MSE_c is 1 / MSE_c,
    so minimising sum_c MSE_c / MSE_c* at the optimum's own MSEs optimises PSNR_band; the encoder
    iterates weights toward 1 / MSE from the previous pass (weight_step, weight_gain)."""
    keep = ~constant
    return weight_step(np.zeros(mse.size), weight_targets(mse, keep), keep, 1.0)


def weight_targets(mse: np.ndarray, live: np.ndarray) -> np.ndarray:
    """weight_codes before rounding: WEIGHT_RESOLUTION * -log2 MSE_c, centred over the `live`
    (non-constant) bands, 0 for the others."""
    t = np.zeros(mse.size)
    if live.any():
        lw = -np.log2(np.maximum(mse[live], 1e-20))
        t[live] = WEIGHT_RESOLUTION * (lw - lw.mean())
    return t


WEIGHT_GAIN = 2.5  # the first re-weighting moves the weight codes this many times the way to the targets
WEIGHT_GAINS = (1.0, 3.0)  # a later one: the gain the last two passes imply (weight_gain), within these
GAIN_GRID = 64  # ... rounded to 1/64 (a last-bit difference of a sum between machines then almost never moves it)


def weight_step(previous: np.ndarray, target: np.ndarray, live: np.ndarray, gain: float) -> np.ndarray:
    """The next pass's weight codes: from `previous` (the codes that gave the best candidate so
    far) `gain` times the way to `target` (weight_targets of that candidate's MSE), centred and
    rounded, within +-WEIGHT_RANGE; 0 for the bands not `live`. Gain 1 is the plain fixed-point
    iteration w <- 1 / MSE(w), which converges slowly: a band's MSE answers a change of its weight
    only in part, so each pass covers only part of the distance left (how large a part varies
    with the scene and the rate: weight_gain; the gains chosen in benchmarks/weight_gain.py)."""
    e = np.zeros(target.size, np.int64)
    if live.any():
        x = previous[live] + gain * (target[live] - previous[live])
        x -= x.mean()
        e[live] = np.clip(np.rint(x), -WEIGHT_RANGE, WEIGHT_RANGE)
    return e


def weight_gain(history: list[tuple[np.ndarray, np.ndarray]], live: np.ndarray) -> float:
    """The gain of the next re-weighting (weight_step): WEIGHT_GAIN for the first; after two passes
    a secant step, 1 / (1 - rho) with rho the least-squares slope of how the targets moved against
    how the codes moved between the last two passes (one slope for all bands: rho = 0 needs gain 1,
    rho -> 1 ever larger steps), within WEIGHT_GAINS, on a 1/GAIN_GRID grid."""
    if len(history) < 2:
        return WEIGHT_GAIN
    (x0, y0), (x1, y1) = history[-2:]
    dx, dy = (x1 - x0)[live], (y1 - y0)[live]
    den = float(np.sum(dx * dx))
    lo, hi = WEIGHT_GAINS
    if den <= 0:
        return lo
    rho = float(np.sum(dy * dx)) / den
    gain = hi if rho >= 1.0 - 1.0 / hi else min(max(1.0 / (1.0 - rho), lo), hi)
    return round(gain * GAIN_GRID) / GAIN_GRID


@dataclass
class Plan:
    """What the search decides besides the step: band weight codes, K and the dead-zone rounding.
    Found on the whole cube, or on a sample of it (sample_rects) and then used for every part."""

    weights: np.ndarray  # (C,) int64 band weight codes
    components: int
    rounding: float
    code: Optional[int] = None  # the step code found with it: where a part's step search starts (speed only)
    slope: Optional[float] = None  # d ln(bits) / d code the search saw there: a part's second probe (speed only)

    def as_dict(self) -> dict:
        return {"weights": [int(v) for v in self.weights], "components": int(self.components),
                "rounding": float(self.rounding), "code": None if self.code is None else int(self.code),
                "slope": None if self.slope is None else float(self.slope)}

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        code, slope = d.get("code"), d.get("slope")
        return cls(np.asarray(d["weights"], np.int64), int(d["components"]), float(d["rounding"]),
                   None if code is None else int(code), None if slope is None else float(slope))


def plan_cube(cube: np.ndarray, budget_bits: float, effort: int = 3,
              report: Optional[Callable[[str, int, int, float], None]] = None, metric: str = "psnr_band",
              valid: Optional[np.ndarray] = None, side_share: float = 1.0,
              keep: Optional[dict] = None) -> Optional[tuple[Plan, Candidate, float]]:
    """The search: re-weighting passes (effort), each a hill-climb over K with estimated candidates
    (the last one of two or more passes: the step at the best K so far, SETTLED_LAST), its best made
    exact (finalise); (plan, best exact candidate, its score) or None when not even
    one component fits. `side_share`: the share of the side information (basis, mean) this cube's
    budget carries (a sample of a larger cube: its pixel fraction). `keep`: receives the best
    pass's analysis ("analysis", "codes") for a caller coding this same cube."""
    c = cube.shape[0]
    passes = EFFORT_PASSES[min(max(effort, 1), 9)] if metric == "psnr_band" else 0
    roundings = EFFORT_ROUNDINGS.get(effort, EFFORT_ROUNDINGS[5])
    codes = np.zeros(c, np.int64)
    step_codes: dict[float, dict[int, int]] = {}  # per rounding, K -> the step code the last search found
    best: Optional[tuple[float, Candidate, np.ndarray, float]] = None
    best_a = None
    slope = None  # the last pass's (fit_code): the next pass's second probes
    stats = moments(cube, valid)  # every pass's analysis scales these
    live = stats.top > stats.bottom  # the bands with a range over the data pixels
    history: list[tuple[np.ndarray, np.ndarray]] = []  # per pass: its weight codes, the targets its MSE gives
    for p in range(passes + 1):
        mine: Optional[Candidate] = None  # this pass's best candidate
        a = analyse(cube, 2.0 ** (codes / WEIGHT_RESOLUTION), valid, stats)
        a.side_share = side_share
        a.refit = effort >= REFIT_EFFORT
        if slope is not None:
            a.cache["slope"] = slope
        for rounding in roundings:
            room = budget_bits - side_share * _weight_bits(codes)
            second: list = []
            # the last of two or more re-weighting passes fits the best K so far alone (SETTLED_LAST)
            ladder = (best[1].k,) if SETTLED_LAST and best is not None and passes >= 2 and p == passes else K_LADDER
            cand = search(a, room, rounding, ladder, start=first_k(room, a.bands, a.pixels) if best is None else best[1].k,
                          metric=metric, code=None if best is None else best[1].code, runner_up=second,
                          codes=step_codes.setdefault(rounding, {}))
            first = cand
            cand = None if cand is None else finalise(a, cand, room, rounding)
            if cand is not None and second and effort >= CLOSE_EFFORT and \
                    score(first.mse, a.constant, metric) - score(second[0].mse, a.constant, metric) < CLOSE_DB:
                # the estimate's ranking of two close K is not to be trusted: the exact scores decide
                other = finalise(a, second[0], room, rounding)
                if other is not None and score(other.mse, a.constant, metric) > score(cand.mse, a.constant, metric):
                    cand = other
            if cand is None:
                continue
            value = score(cand.mse, a.constant, metric)
            if mine is None or value > score(mine.mse, a.constant, metric):
                mine = cand
            if report is not None:
                report("search", p, passes + 1, value)
            if best is None or value > best[0]:
                best, best_a = (value, cand, codes, rounding), a  # only the best one's analysis is kept (memory)
        _drop_buffers(a)
        slope = a.cache.get("slope", slope)
        if best is None:
            return None
        if p < passes:  # the next pass's weights (accelerated: weight_gain)
            if mine is not None:
                history.append((codes.astype(np.float64), weight_targets(mine.mse, live)))
            codes = weight_step(best[2], weight_targets(best[1].mse, live), live, weight_gain(history, live))
        a = None
    value, cand, codes, rounding = best
    if keep is not None:
        keep["analysis"], keep["codes"] = best_a, codes.tobytes()
    return Plan(codes, cand.k, rounding, cand.code, best_a.cache.get("slope")), cand, value


FIRST_K_RUNGS = ((0.25, 8), (0.5, 12), (math.inf, 16))  # bits per value up to x: a search starts at K >= this
FIRST_K_SHARE = (0.25, 0.8)  # ... and at K >= this share of the bands at this many bits per value (less below)
FIRST_K_MOST = 32  # ... and never above this (a start above the best K climbs down through dearer K)


def first_k(budget_bits: float, bands: int, pixels: int) -> int:
    """Where a cube's first K climb starts (search's `start`): more bits per value and more bands
    want more components. Speed only where the score over K has one peak (the climb reaches it from
    any start, and the runner-up, a neighbour of the peak, is tried from any start too): the same
    files, with fewer small K climbed through at the higher rates (benchmarks/search_cost.py).
    Where it has several peaks, the climb keeps the one nearest its start."""
    per_value = budget_bits / max(bands * pixels, 1)
    rung = next(k for top, k in FIRST_K_RUNGS if per_value <= top)
    share, full = FIRST_K_SHARE
    return int(min(FIRST_K_MOST, max(rung, round(share * bands * min(1.0, per_value / full)))))


PLAN_NEIGHBOURS = 3  # from this effort up, a plan's K is hill-climbed from on the whole cube (else kept)
CLOSE_DB = 0.1  # estimated scores of the two best K closer than this: both are evaluated exactly
SETTLED_LAST = True  # the last of two or more re-weighting passes searches the step at the best K so far, not
# its K neighbours: by then the passes before have moved K where the weights put it (benchmarks/weight_gain.py,
# settings ":all" against without; benchmarks/search_cost.py counts the estimates it saves). After a single
# re-weighting pass (--effort 2) K still moves: that pass climbs
CLOSE_EFFORT = 2  # from this effort up
REFIT_EFFORT = 2  # from this effort up, a candidate's images are fitted to its quantised basis (least squares;
# below: the search's projection on the unquantised basis, quantised as it is)
EXPLICIT_EFFORT = 2  # from this effort up, a context's explicit rANS table is built and tried against its
# parametric one when that may win (below: parametric tables only; CAVE mosaic, effort 1: the same PSNR, a
# fifth less time)
SAMPLE_BLOCK = 128  # pixels per side of the blocks a large image's search looks at
SAMPLE_BLOCKS = 8  # how many (2**17 pixels): the search's cost no longer grows with the image
SAMPLE_FROM = 4 * SAMPLE_BLOCKS * SAMPLE_BLOCK ** 2  # images of more pixels than this are searched on a sample
SAMPLE_FROM_FAST = 2 * SAMPLE_BLOCKS * SAMPLE_BLOCK ** 2  # the same below PLAN_NEIGHBOURS effort (--effort 1, 2)


def sample_rects(height: int, width: int, blocks: Optional[int] = None,
                 block: Optional[int] = None) -> tuple[tuple[int, int], list[tuple[int, int, int, int]]]:
    """((rows, cols) of blocks, [(y0, y1, x0, x1)] row by row): `blocks` squares of `block` pixels
    spread evenly over a height x width image, in a grid of its aspect (defaults: SAMPLE_BLOCKS of
    SAMPLE_BLOCK, read when called). The mosaic of these blocks
    (rows x cols of them) is the sample the search of a large image runs on: its spectra, edges and
    textures from every part of the scene, at a fixed cost."""
    blocks = SAMPLE_BLOCKS if blocks is None else blocks
    b = min(SAMPLE_BLOCK if block is None else block, height, width)
    rows = int(min(max(1, round(math.sqrt(blocks * height / max(width, 1)))), max(1, height // b)))
    cols = int(min(max(1, blocks // rows), max(1, width // b)))
    ys = [min(height - b, max(0, round((i + 0.5) * height / rows - b / 2))) for i in range(rows)]
    xs = [min(width - b, max(0, round((j + 0.5) * width / cols - b / 2))) for j in range(cols)]
    return (rows, cols), [(y, y + b, x, x + b) for y in ys for x in xs]


def mosaic(grid: tuple[int, int], parts: list[np.ndarray]) -> np.ndarray:
    """The blocks (each (..., b, b)) of sample_rects, row by row, as one image (..., rows * b, cols * b)."""
    rows, cols = grid
    return np.concatenate([np.concatenate(parts[r * cols:(r + 1) * cols], axis=-1) for r in range(rows)], axis=-2)


def plan_sample(cube: np.ndarray, budget_bits: float, effort: int = 3, metric: str = "psnr_band",
                valid: Optional[np.ndarray] = None,
                report: Optional[Callable[[str, int, int, float], None]] = None) -> Optional[Plan]:
    """plan_cube on the mosaic of sample_rects of a large normalised cube (C, H, W), at the same
    bits per value, the side information counted at the mosaic's share of the pixels."""
    c, h, w = cube.shape
    grid, rects = sample_rects(h, w)
    part = mosaic(grid, [cube[:, y0:y1, x0:x1] for y0, y1, x0, x1 in rects])
    part_valid = None if valid is None else mosaic(grid, [valid[y0:y1, x0:x1] for y0, y1, x0, x1 in rects])
    share = part[0].size / (h * w)
    return _plan_mosaic(part, part_valid, budget_bits * share, share, effort, metric, report)


def _plan_mosaic(part: np.ndarray, valid: Optional[np.ndarray], budget_bits: float, share: float, effort: int,
                 metric: str, report: Optional[Callable] = None) -> Optional[Plan]:
    if valid is not None and not valid.any():
        return None
    found = plan_cube(part, budget_bits, effort, report, metric, None if valid is None or valid.all() else valid, share)
    return None if found is None else found[0]


def plan_reader(read: Callable[[int, int, int, int], np.ndarray], shape: tuple[int, int, int], offset: np.ndarray,
                scale: np.ndarray, valid: Optional[np.ndarray], options, part_pixels: float) -> Optional[dict]:
    """The plan (Plan.as_dict) for every tile of a large cube coded in parts of about `part_pixels`
    pixels: plan_cube on the mosaic of sample_rects over the whole cube, read with `read(y0, y1, x0,
    x1)` (H x W x C original values) and normalised with the file's (offset, scale); `valid` (H, W)
    the data pixels or None. The tiles then search only their step (Job.plan). None: no plan (each
    tile searches for itself)."""
    from ...cube import normalised

    h, w, c = shape
    grid, rects = sample_rects(h, w)
    parts, masks_ = [], []
    for y0, y1, x0, x1 in rects:
        block = normalised(read(y0, y1, x0, x1), offset, scale)
        m = None if valid is None else valid[y0:y1, x0:x1]
        if m is not None:
            block[:, ~m] = 0.0  # nodata pixels: out of every statistic (any value; not NaN)
        parts.append(block)
        masks_.append(m)
    part = mosaic(grid, parts)
    part_valid = None if valid is None else mosaic(grid, masks_)
    if part_valid is not None and not part_valid.any():
        return None
    part_valid = None if part_valid is None or part_valid.all() else part_valid
    bits = 0.99 * 8.0 * Budget.from_bpppb(options.bpppb, (part.shape[1], part.shape[2], c)).bytes
    share = part[0].size / max(part_pixels, 1.0)
    found = plan_cube(part, bits, options.effort, None, options.optimise, part_valid, share)
    if found is None:
        return None
    plan, cand, _ = found
    out = plan.as_dict()
    # the sample's true coefficient bytes over their estimate: a tile's first aim (_search_file)
    maps = None if part_valid is None else wavelet.masks(part_valid, wavelet.levels_for(*part.shape[1:]))
    prepared = prepare(cand, plan.weights, part.shape[1], part.shape[2], maps, options.effort >= EXPLICIT_EFFORT)
    _, _, b_int, _, m_int, _, _ = cand.parts
    coefficients = cand.bits - share * subbands.estimate_vector_bits(_side_vectors(b_int, m_int))
    if coefficients > 0:
        out["size_ratio"] = 8.0 * (prepared.predicted - len(prepared.side)) / coefficients
        out["side_bytes"] = len(prepared.side)
    return out


def encode_cube(cube: np.ndarray, budget_bits: float, effort: int = 3,
                report: Optional[Callable[[str, int, int, float], None]] = None,
                weights: Optional[np.ndarray] = None,
                metric: str = "psnr_band", memo: Optional[dict] = None,
                valid: Optional[np.ndarray] = None, plan: Optional[Plan] = None,
                cap_bits: Optional[float] = None, written: frozenset = frozenset(),
                slack: float = 0.0) -> Optional[tuple[Optional[Prepared], float, np.ndarray]]:
    """(the candidate ready to write (Prepared), encoder's score, band weight codes) for a
    normalised cube (C, H, W) whose payload fits `budget_bits` by the estimate; None when not even
    one component fits.
    Without a `plan` (or the `weights` of an earlier call), the search plans it: on the cube itself,
    or on a sample of it (plan_sample) when it has more than SAMPLE_FROM pixels (SAMPLE_FROM_FAST
    at low effort). With one, only the
    step is searched, at the plan's K and rounding (re-aiming the rate; the tiles of a large cube).
    metric "psnr_global" keeps every band's weight at 1 (the plain MSE of the normalised cube).
    `memo` (a dict kept by the caller across calls on the same cube): the analysis coded, with its
    cached pyramids, estimates and candidates, and the plan, for the re-aiming calls. `cap_bits`:
    a candidate whose estimated bits exceed it is not prepared (None: a re-aim that would come out
    over the budget, predicted from the last file's size). `written`: the (K, step code) of files
    already sized: such a candidate is not prepared again (None). `slack`:
    with a plan, its step is searched (estimated bits) for this much more room than the exact
    candidate then gets (finalise steps down to fit): the search's estimate of a candidate is up to
    ~0.3 % off its exact bits, and a re-aim at the budget itself should not stop a step short."""
    c, h, w = cube.shape
    memo = {} if memo is None else memo
    if weights is not None and memo.get("plan") is not None:
        plan = memo["plan"]  # a re-aim: the plan as the first call completed it (its K)
    value = None
    if plan is None and h * w > (SAMPLE_FROM if effort >= PLAN_NEIGHBOURS else SAMPLE_FROM_FAST):
        plan = plan_sample(cube, budget_bits, effort, metric, valid, report)
    if plan is None:
        found = plan_cube(cube, budget_bits, effort, report, metric, valid, keep=memo)
        if found is None:
            return None
        plan, cand, value = found
        memo["plan"] = plan
    else:
        codes = plan.weights
        memo["plan"] = plan
        if memo.get("codes") == codes.tobytes() and memo.get("analysis") is not None:
            a = memo["analysis"]
        else:
            a = analyse(cube, 2.0 ** (codes / WEIGHT_RESOLUTION), valid)
            a.reuse = bool(memo.get("tile"))
            a.refit = effort >= REFIT_EFFORT
            if plan.slope is not None:
                a.cache["slope"] = plan.slope
            memo["codes"], memo["analysis"] = codes.tobytes(), a
        room = budget_bits - _weight_bits(codes)
        ks = [k for k in K_LADDER if k <= c]
        i = min(range(len(ks)), key=lambda j: abs(ks[j] - plan.components))
        # effort >= PLAN_NEIGHBOURS: K hill-climbed on this cube from the plan's, up or down the ladder
        # while it improves (the sample's K can be a few rungs off a tile's best: its blocks are small)
        near = tuple(ks) if effort >= PLAN_NEIGHBOURS and weights is None else (ks[i],)
        second: list = []
        first = search(a, room * (1.0 + slack), plan.rounding, ladder=near, start=ks[i], metric=metric,
                       runner_up=second, code=plan.code, codes=memo.setdefault("step_codes", {}))
        close = (first is not None and second and effort >= CLOSE_EFFORT
                 and score(first.mse, a.constant, metric) - score(second[0].mse, a.constant, metric) < CLOSE_DB)
        cand = None if first is None else finalise(a, first, room, plan.rounding, exact_mse=bool(close))
        if cand is not None and close:  # as in plan_cube: two close K are compared exactly
            other = finalise(a, second[0], room, plan.rounding)
            if other is not None and score(other.mse, a.constant, metric) > score(cand.mse, a.constant, metric):
                cand = other
        if cand is None:  # the plan's K does not fit this budget: search every K
            cand = search(a, room, plan.rounding, metric=metric)
            cand = None if cand is None else finalise(a, cand, room, plan.rounding, exact_mse=False)
        if cand is None:
            return None
        plan = memo["plan"] = Plan(plan.weights, cand.k, plan.rounding, cand.code, a.cache.get("slope"))  # re-aiming keeps this K
        value = score(cand.mse, a.constant, metric)
        if report is not None:
            report("search", 0, 1, value)
    memo["bits"] = cand.bits + _weight_bits(plan.weights)  # the whole payload's estimate
    if (cap_bits is not None and memo["bits"] > cap_bits) or (cand.k, cand.code) in written:
        return None, value, plan.weights  # predicted over the budget, or written before: not written
    maps = None if valid is None else wavelet.masks(valid, wavelet.levels_for(h, w))
    memo["explicit"] = effort >= EXPLICIT_EFFORT
    return prepare(cand, plan.weights, h, w, maps, memo["explicit"]), value, plan.weights


def smallest_bits(cube: np.ndarray, valid: Optional[np.ndarray] = None) -> float:
    """Estimated bits of the smallest payload: one component at the coarsest step."""
    return evaluate(analyse(cube, valid=valid), 1, 0, 0.35).bits


WEIGHT_SHARED_BITS = 140  # what the band weight codes, coded with the other side vectors, do not add on
# their own: pack_vectors' framing and its table's fixed part (the side information pays them already)


def _weight_bits(codes: np.ndarray) -> float:
    """Estimated bits the band weight codes add to the side information."""
    return 0.0 if not codes.any() else max(0.0, subbands.estimate_vector_bits([codes]) - WEIGHT_SHARED_BITS)


PREDICT_MARGIN = 32  # bytes (plus half a byte a lane): how far a predicted payload size may be from the true one


@dataclass
class Prepared:
    """A candidate ready to write: its MODL config, its side information's bytes, and its
    coefficient section planned (bitstream.plan_section: the tables made) but not yet coded, so
    that the payload's size is known (`predicted`, within `margin` bytes) before the stream is."""

    config: dict
    side: bytes
    ints: subbands.Pyramid
    section: subbands.Section
    coded: Optional[subbands.Maps]

    @property
    def predicted(self) -> int:
        return len(self.side) + subbands.predicted_size(self.section)

    @property
    def margin(self) -> int:
        return PREDICT_MARGIN + rans.choose_lanes(self.section.total) // 2

    def payload(self) -> bytes:
        return self.side + subbands.pack(self.ints, SIGNS, self.coded, section=self.section)


def prepare(cand: Candidate, codes: np.ndarray, height: int, width: int,
            coded: Optional[subbands.Maps] = None, explicit: bool = True) -> Prepared:
    """The candidate with band weight codes `codes`, ready to write (package() writes it). With
    `coded` (wavelet.masks of a nodata mask: the pyramid is shape-adaptive) the coefficient section
    holds only those positions, and the config says so ("nodata": 1). explicit=False: parametric
    rANS tables only (bitstream.plan_section; below EXPLICIT_EFFORT)."""
    ints, offsets, b_int, b_exps, m_int, m_exp, levels = cand.parts
    side = [codes, _predict_residual(m_int)] + [_predict_residual(b_int[:, j]) for j in range(cand.k)]
    config = {"model": MODEL, "height": height, "width": width, "bands": int(codes.size),
              "components": cand.k, "levels": levels, "step_code": cand.code, "basis_exps": list(map(int, b_exps)),
              "mean_exp": int(m_exp), "offsets": list(map(int, offsets))}
    if coded is not None:
        config["nodata"] = 1
    section = subbands.plan_section(ints, SIGNS, coded, None if coded else cand.stats, explicit)
    return Prepared(config, subbands.pack_vectors(side), ints, section, coded)


def package(cand: Candidate, codes: np.ndarray, height: int, width: int,
            coded: Optional[subbands.Maps] = None) -> tuple[dict, bytes]:
    """(MODL config, payload) of a candidate (prepare(), then its stream coded)."""
    p = prepare(cand, codes, height, width, coded)
    return p.config, p.payload()


def prepare_again(memo: dict, k: int, code: int) -> Prepared:
    """The Prepared that encode_cube returned for (K, step code) with this `memo`: the same
    candidate of the same analysis (remembered, or evaluated again: evaluate is deterministic)."""
    a, plan = memo["analysis"], memo["plan"]
    cand = next((c for key, c in a.cache.get("evaluated", {}).items() if key[:3] == (k, code, plan.rounding)), None)
    if cand is None:
        cand = evaluate(a, k, code, plan.rounding, exact_mse=False)
    return prepare(cand, plan.weights, a.height, a.width, _maps(a), memo.get("explicit", True))


def finer_known_over(memo: dict, key: tuple[int, int], budget_bits: float, slack: float) -> bool:
    """True when the estimates already made show that the next finer step than `key` (K, step
    code) does not fit `budget_bits` searched with `slack` (encode_cube's re-aim at the plan's K):
    that re-aim would come back to this file or a coarser one, so it need not run."""
    a, plan = memo.get("analysis"), memo.get("plan")
    if a is None or plan is None:
        return False
    k, code = key
    if code + 1 > finest_code(a, k):
        return True
    room = (budget_bits - _weight_bits(plan.weights)) * (1.0 + slack)
    return _known_fit(a, k, code + 1, plan.rounding, room) is False


def probe_config(height: int, width: int, bands: int) -> dict:
    """A config of a typical size, to measure the container's bytes around a payload before encoding."""
    levels = wavelet.levels_for(height, width)
    k = min(bands, 16)
    return {"model": MODEL, "height": height, "width": width, "bands": bands, "components": k,
            "levels": levels, "step_code": 200, "basis_exps": [40] * k, "mean_exp": 40, "offsets": [-10] * (levels + 1)}


# ---------------------------------------------------------------- the codec

def _openblas_threads():
    """(get, set) of the OpenBLAS that numpy loaded (ctypes; None where there is none)."""
    import ctypes

    try:
        with open("/proc/self/maps") as fh:
            paths = {f for f in (line.split()[-1] for line in fh if line.strip())
                     if "openblas" in f.rsplit("/", 1)[-1].lower() and ".so" in f}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", ""), ("scipy_openblas", "")):
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                return get, put
    return None


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = [0, None]  # encoders running (tiles may run in threads), the thread count to restore


@contextlib.contextmanager
def _single_threaded_blas():
    """numpy's OpenBLAS on one thread while the encoder runs: its products here are small (C x C,
    K x N), its spinning worker threads cost more CPU than they save (measured: 1.8 s against 2.9 s
    of CPU for the Houston crop), and one thread makes the floating-point results (hence the bytes)
    independent of the BLAS thread count. The compiled coefficient statistics use both cores.
    Counted: tiles encoded in threads share one setting, restored when the last one ends."""
    found = _openblas_threads()
    if found is None:
        yield
        return
    get, put = found
    with _BLAS_LOCK:
        if _BLAS_USERS[0] == 0:
            _BLAS_USERS[1] = get()
            put(1)
        _BLAS_USERS[0] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS[0] -= 1
            if _BLAS_USERS[0] == 0:
                put(_BLAS_USERS[1])


FIRST_AIM = 0.998  # a cube's first aim: this share of the budget by the estimate (tests: within 0.5 % of the bytes)
FIRST_AIM_PARAMETRIC = 0.99  # ... below EXPLICIT_EFFORT, whose parametric tables cost more than the estimate's best
PLAN_AIM = 1.0  # a tile's first aim: this share of the budget, as the plan's size ratio predicts the bytes
CAP_MARGIN = 1.005  # the true/estimated size ratio varies ~0.5 % between candidates: skip only clear overs
REAIM_SLACK = 0.002  # a re-aim's step search: the search's estimate against the exact bits (encode_cube)


def encode(job: Job) -> tuple[bytes, dict]:
    with _single_threaded_blas():
        return _encode(job)


def _encode(job: Job) -> tuple[bytes, dict]:
    """Transform model: search K, the step and the band weights for FIRST_AIM of the budget
    (estimated sizes, which count the whole payload: usually that file is the finest step that
    fits), then size the file and re-aim if it came out over the budget or further under it than
    `fill` while a finer step may fit: at the budget itself, through the ratio of the file's true
    payload size to its estimate (which varies far less between neighbouring steps than between
    cubes and rates), so that one re-aim usually lands on the finest step that fits. A file's size
    is predicted (Prepared.predicted: its tables made, its stream not coded) and only the file kept is coded,
    unless a prediction is too close to a threshold to decide by (then that file is coded to know);
    should the file kept still come out over the budget, the search runs again coding every file."""
    for predict in (True, False):
        found = _search_file(job, predict)
        if found is not None:
            return found
    raise RequestError("could not meet the rate target for this cube")  # pragma: no cover - coded sizes decide


def _search_file(job: Job, predict: bool) -> Optional[tuple[bytes, dict]]:
    """_encode's loop; None when a predicted size proved wrong (the file kept is over the budget)."""
    h, w, c = job.shape
    cube = np.asarray(job.target)  # float32: the analysis reads it in float64 blocks (Analysis.block)
    effort, metric = job.options.effort, job.options.optimise
    valid = None if job.valid is None or job.valid.all() else np.asarray(job.valid, bool)
    plan = None if job.plan is None else Plan.from_dict(job.plan)

    noise = np.random.default_rng(0).bytes(1000)  # incompressible, like a real payload: stored as it is
    overhead = len(job.pack_payload(probe_config(h, w, c), noise)) - 1000  # all but the payload
    room = (FIRST_AIM if effort >= EXPLICIT_EFFORT else FIRST_AIM_PARAMETRIC) * (job.budget.bytes - overhead)
    if job.plan is not None and job.plan.get("size_ratio"):  # a tile: aimed by the sample's true/estimated bytes
        side = float(job.plan["side_bytes"])
        room = PLAN_AIM * ((job.budget.bytes - overhead - side) / float(job.plan["size_ratio"]) + side)
    fill = 0.995 if effort >= 3 else 0.97  # how close under the budget a first file must land
    budget = job.budget.bytes
    best, weights, size = None, None, 0
    memo: dict = {"tile": job.plan is not None}  # a part of a tiled cube (its plan made for every part)
    if job.plan is not None and job.plan.get("step_codes"):  # where another tile's searches ended (speed only)
        memo["step_codes"] = {int(k): int(c) for k, c in job.plan["step_codes"].items()}
    sizes: dict[tuple[int, int], int] = {}  # bytes of each (K, step code) sized
    cap_bits: Optional[float] = None
    last: Optional[tuple[tuple[int, int], Prepared, Optional[bytes]]] = None  # the last file sized
    for attempt in range(4):
        last = prepared = None  # its integers are as large as K images: not held through the next search
        found = encode_cube(
            cube, 8.0 * room, effort,
            lambda stage, p, n, score: job.report("search", p + 1, n, float("nan"), score, "K, step, band weights"),
            weights, metric, memo, valid, plan, cap_bits, frozenset(sizes), REAIM_SLACK if attempt else 0.0)
        if found is None:
            raise job.too_low("transform", overhead + int(smallest_bits(cube, valid) / 8) + 1)
        prepared, score, weights = found
        found = None  # (its candidate is held by `last` alone: let go before the next search)
        if prepared is None:
            break  # predicted over the budget (large images: steps are coarse), or a file sized before
        config = prepared.config
        key = (config["components"], config["step_code"])
        around = len(job.pack_payload(config, b""))  # the container's bytes: the payload is stored as it is
        payload_size, data = prepared.predicted, None
        thresholds = (budget, job.budget.floor, fill * budget)
        if not predict or min(abs(around + payload_size - t) for t in thresholds) <= prepared.margin:
            data = job.pack_payload(config, prepared.payload())  # too close to call: the true size
            payload_size = len(data) - around
        size = around + payload_size
        sizes[key] = size
        last = (key, prepared, data)
        # true payload bits over the estimate, learnt from this file: the next aim, and a re-aim
        # whose estimate times this exceeds the budget is not sized (each one of a large image
        # costs a second or more)
        ratio = 8.0 * payload_size / max(memo.get("bits", 0.0), 1.0)
        # the estimated payload bytes at which the file would fill the budget (between neighbouring
        # steps the ratio moves by less than 0.05 %: no margin; a re-aim that comes out over steps back)
        aimed = (budget - around) / ratio
        cap_bits = CAP_MARGIN * 8.0 * aimed if size <= budget else None
        if size <= budget and (best is None or size > best[0]):
            best = (size, key, data, {"components": config["components"], "levels": config["levels"],
                                      "step_code": config["step_code"], f"encoder_{metric}": round(score, 3),
                                      "attempts": attempt + 1})
        if job.budget.floor <= size <= budget and (size >= fill * budget or attempt):
            break  # in the window; after a re-aim (aimed at the budget itself), under it is enough
        k, code = key
        if (size > budget and sizes.get((k, code - 1), math.inf) <= budget) or \
                (size <= budget and sizes.get((k, code + 1), -1) > budget):
            break  # the next finer step is over the budget: no finer file fits at this K
        if size <= budget:
            room = max(aimed, memo.get("bits", 0.0) / 8.0)  # never coarser than the file just sized
            if finer_known_over(memo, key, 8.0 * room, REAIM_SLACK):
                break  # the re-aim would find this file again (or a coarser one): keep it
        else:  # over: at least below this candidate's own estimate, so that the search cannot pick it again
            room = min(aimed, memo.get("bits", math.inf) / 8.0 - 1.0)
        job.report("size", attempt + 1, 4, float("nan"), float("nan"),
                   f"{size} bytes for a budget of {budget}: re-aiming")
    if best is None:
        raise RequestError(f"could not meet the rate target for this cube (last try: {job.bpppb_of(size)} bpppb)")
    size, key, data, stats = best
    if memo.get("analysis") is not None:  # the search's buffers (kept through re-aims) are not needed to write
        _drop_buffers(memo["analysis"])
    written = last[1] if last is not None and last[0] == key else None  # the file's candidate, if still held
    last = None
    if data is None:
        written = written or prepare_again(memo, *key)
        data = job.pack_payload(written.config, written.payload())
        if len(data) > budget:
            return None  # the prediction missed by more than its margin: search again coding every file
    if job.keep is not None and written is not None and written.coded is None:
        job.keep["coefficients"] = written.ints  # what the payload codes: the caller's measure needs no decoding
    if job.keep is not None and memo.get("step_codes"):
        job.keep["step_codes"] = dict(memo["step_codes"])  # where the next tile's searches may start
    if len(data) < job.budget.floor:
        stats["below_target"] = True  # every component already coded near-losslessly
    return data, stats
