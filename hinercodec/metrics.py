"""Distortion metrics exactly as ../shared/PROTOCOL.md defines them.

One implementation, used by `hinerc encode`, `hinerc eval` and the benchmarks, so that every
figure the project reports is computed the same way. Pure numpy (no torch).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from .parallel import block_size


@dataclass
class Distortion:
    psnr_band: float  # mean over non-constant bands of per-band PSNR (peak 1 after normalisation)
    psnr_global: float  # PSNR over all values of the normalised cubes
    sam_deg: float  # mean spectral angle in degrees, original units, all-zero pixels left out
    constant_bands: list[int]  # bands left out of psnr_band (max == min in the original)
    max_abs_error: float = float("nan")  # largest |decoded - original| in the cube's own units

    def as_dict(self) -> dict:
        return asdict(self)


def _normalise_pair(original: np.ndarray, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map both cubes with the ORIGINAL's per-band min/max; returns (orig_n, dec_n, constant mask)."""
    x = np.asarray(original, dtype=np.float64)
    y = np.asarray(decoded, dtype=np.float64)
    lo = x.min(axis=(0, 1))
    hi = x.max(axis=(0, 1))
    rng = hi - lo
    constant = rng <= 0
    scale = np.where(constant, 1.0, rng)
    return (x - lo) / scale, (y - lo) / scale, constant


def _psnr(mse: np.ndarray | float) -> np.ndarray | float:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / np.maximum(mse, 1e-30))


def psnr_per_band(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """PSNR of each band (peak 1 after per-band normalisation); NaN for constant bands."""
    xn, yn, constant = _normalise_pair(original, decoded)
    mse = ((xn - yn) ** 2).mean(axis=(0, 1))
    out = np.asarray(_psnr(mse), dtype=np.float64)
    out[constant] = np.nan
    return out


def sam_degrees(original: np.ndarray, decoded: np.ndarray) -> float:
    """Mean spectral angle (degrees) over pixels whose original spectrum is not all zero."""
    x = np.asarray(original, dtype=np.float64).reshape(-1, original.shape[-1])
    y = np.asarray(decoded, dtype=np.float64).reshape(-1, decoded.shape[-1])
    nx = np.linalg.norm(x, axis=1)
    ny = np.linalg.norm(y, axis=1)
    keep = nx > 0
    if not keep.any():
        return float("nan")
    cos = (x[keep] * y[keep]).sum(axis=1) / np.maximum(nx[keep] * ny[keep], 1e-300)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean())


STRIP_VALUES = 1 << 20  # values per strip of rows when a whole cube is measured (stays in cache, no cube-size copies)
MIN_STRIP_VALUES = 1 << 16  # ... and from twice this many values up, an even number of strips of one size


def distortion(original: np.ndarray, decoded: np.ndarray, threads: int = 1) -> Distortion:
    """All PROTOCOL.md distortion figures of `decoded` against `original` (both H x W x C): the
    streaming accumulation below, over the whole cube at once (its strips in `threads` threads:
    the same figures for any count)."""
    if original.shape != decoded.shape:
        raise ValueError(f"shape mismatch: original {original.shape} vs decoded {decoded.shape}")
    h, w, c = original.shape
    acc = StreamingDistortion(original.min(axis=(0, 1)) if original.size else np.zeros(c),
                              original.max(axis=(0, 1)) if original.size else np.zeros(c))
    acc.add(original, decoded, threads)
    return acc.result()


def bpppb(n_bytes: int, shape: tuple[int, ...]) -> float:
    """True rate: 8 * file bytes / (H * W * C), PROTOCOL.md's only definition of rate."""
    h, w, c = shape
    return 8.0 * n_bytes / float(h * w * c)


class StreamingDistortion:
    """The same figures as `distortion`, accumulated window by window (tiled cubes larger than memory).

    Needs the original's per-band min and max up front (one streaming pass over the original);
    add() windows of the original and the decoded cube in any order, each pixel once.
    """

    def __init__(self, band_min: np.ndarray, band_max: np.ndarray):
        self.lo = np.asarray(band_min, dtype=np.float64)
        rng = np.asarray(band_max, dtype=np.float64) - self.lo
        self.constant = rng <= 0
        self.scale = np.where(self.constant, 1.0, rng)
        self.sse = np.zeros_like(self.lo)
        self.pixels = 0
        self.angle_sum = 0.0
        self.angle_count = 0
        self.max_abs = 0.0

    def add(self, original: np.ndarray, decoded: np.ndarray, threads: int = 1) -> None:
        """One window of both cubes (H x W x C), strip by strip of rows (cache-sized float64 copies),
        the strips' sums taken in `threads` threads and added in strip order (the same figures for
        any thread count)."""
        h, w = original.shape[:2]
        rows = max(1, STRIP_VALUES // max(1, original[0].size))
        if h > 1 and original.size >= 2 * MIN_STRIP_VALUES:  # an even count of strips of one size: two cores' shares
            rows = block_size(h, rows, 2)
        strips = [(original[y0:y0 + rows], decoded[y0:y0 + rows]) for y0 in range(0, h, rows)]
        if threads > 1 and len(strips) > 1:
            with ThreadPoolExecutor(min(threads, len(strips))) as pool:  # numpy releases the GIL
                sums = list(pool.map(lambda s: self._strip(*s), strips))
        else:
            sums = [self._strip(*s) for s in strips]
        for part in sums:
            self.add_sums(part)

    def add_sums(self, part: tuple) -> None:
        """Add the sums of another window (a strip's, or sums() of another accumulator over other pixels)."""
        sse, pixels, max_abs, angle_sum, angle_count = part
        self.sse += np.asarray(sse, np.float64)
        self.pixels += int(pixels)
        self.max_abs = max(self.max_abs, float(max_abs))
        self.angle_sum += float(angle_sum)
        self.angle_count += int(angle_count)

    def sums(self) -> tuple[np.ndarray, int, float, float, int]:
        """(per-band sum of squared normalised errors, pixels, largest |error|, sum of spectral
        angles, pixels with an angle) so far: what add_sums() of another accumulator takes."""
        return self.sse.copy(), self.pixels, self.max_abs, self.angle_sum, self.angle_count

    def _strip(self, original: np.ndarray, decoded: np.ndarray) -> tuple[np.ndarray, int, float, float, int]:
        """(per-band sum of squared normalised errors, pixels, largest |error|, sum of spectral
        angles in degrees, pixels with an angle) of one strip."""
        x = np.asarray(original, dtype=np.float64)
        y = np.asarray(decoded, dtype=np.float64)
        xs, ys = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        diff = xs - ys  # the error (the band minimum, subtracted from both, does not change it)
        max_abs = float(max(diff.max(initial=0.0), -diff.min(initial=0.0)))
        diff /= self.scale
        sse = np.einsum("ij,ij->j", diff, diff)  # per band; the einsums: no (pixels, bands) temporaries
        nx, ny = np.sqrt(np.einsum("ij,ij->i", xs, xs)), np.sqrt(np.einsum("ij,ij->i", ys, ys))
        keep = nx > 0
        cos = np.einsum("ij,ij->i", xs, ys)[keep] / np.maximum(nx[keep] * ny[keep], 1e-300)
        angles = float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).sum())
        return sse, x.shape[0] * x.shape[1], max_abs, angles, int(keep.sum())

    def result(self) -> Distortion:
        mse_band = self.sse / max(self.pixels, 1)
        psnr_b = np.asarray(_psnr(mse_band), dtype=np.float64)
        keep = ~self.constant
        return Distortion(
            psnr_band=float(psnr_b[keep].mean()) if keep.any() else float("nan"),
            psnr_global=float(_psnr(mse_band.mean())),
            sam_deg=self.angle_sum / self.angle_count if self.angle_count else float("nan"),
            constant_bands=[int(i) for i in np.flatnonzero(self.constant)],
            max_abs_error=self.max_abs,
        )
