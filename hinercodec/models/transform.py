"""The decoder of the transform model (hinercodec/transform.py): bands = mean(t) + B(t) A.

A (K, H, W) are the wavelet-decoded component images, built once when the file is loaded; the band
at a coded position is mean_c + B_c A. Between coded positions the rows [B_c | mean_c] of the band
table, taken in the cube's own units (the file's per-band offset and scale applied), are
interpolated in wavelength by Akima splines, and the band is that row times [A; 1]: C1 in
wavelength, exact at the coded bands, without the overshoot of plain cubic splines at sharp spectral
features, and as cheap as a coded band (one K-term mix). Interpolating in the cube's units, not in
each band's own [0, 1] scale, matters where neighbouring bands have very different ranges (raw sensor
counts): benchmarks/interp.py measures it against linear interpolation of the decoded bands.
Nothing here is fitted by gradient descent: the module exists so that the decoder runs every
model the same way (maps() once, then forward(t, maps) per band) on the CPU or a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .base import GridConfig


@dataclass
class TransformConfig(GridConfig):
    height: int
    width: int
    bands: int
    components: int
    levels: int
    step_code: int
    basis_exps: list
    mean_exp: int
    offsets: list
    model: str = "transform"


def make_config(height: int, width: int, bands: int, width_scale: float) -> TransformConfig:
    """Placeholder sizing (the transform encoder sizes itself from the byte budget)."""
    k = max(1, min(bands, int(width_scale)))
    return TransformConfig(height, width, bands, k, 0, 0, [0] * k, 0, [0])


def count_parameters(cfg: TransformConfig) -> int:
    return 0


class TransformNet(nn.Module):
    def __init__(self, cfg: TransformConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.components
        self.register_buffer("images", torch.zeros(k, cfg.height, cfg.width))
        self._raw = (np.zeros((cfg.bands, k)), np.zeros(cfg.bands))
        self._units = (np.zeros(cfg.bands), np.ones(cfg.bands))  # per-band offset, scale (BNDS)
        self._positions = np.arange(cfg.bands) / max(cfg.bands - 1, 1)
        self._update()

    def load_payload(self, payload: bytes) -> None:
        """Decode the model's payload (ValueError / CorruptFileError when it does not fit the config)."""
        from ..transform import decode_payload  # numpy-only; kept out of the module import

        images, basis, mean = decode_payload(self.cfg.to_dict(), payload)
        self.images.copy_(torch.from_numpy(images))
        self._raw = (basis, mean)
        self._update()

    def set_band_positions(self, positions: torch.Tensor) -> None:
        p = np.asarray(positions.detach().cpu().numpy(), np.float64)
        if p.shape != (self.cfg.bands,) or not np.isfinite(p).all() or np.unique(p).size != p.size:
            raise ValueError("band positions must be distinct finite values, one per band")
        self._positions = p
        self._update()

    def set_band_units(self, offset: np.ndarray, scale: np.ndarray) -> None:
        """The cube's per-band affine map (value = offset + scale * normalised), so that spectra are
        interpolated in the cube's units; the output stays in the decoder's normalisation, with
        offset and scale interpolated linearly between the coded bands as the decoder does."""
        o, s = (np.asarray(v, np.float64).reshape(-1) for v in (offset, scale))
        if o.shape != (self.cfg.bands,) or s.shape != (self.cfg.bands,) or not (np.isfinite(o).all() and np.isfinite(s).all()):
            raise ValueError("band offsets and scales must be finite, one per band")
        self._units = (o, s)
        self._update()

    def _update(self) -> None:
        """Sort the coded bands by position; the normalised rows (coded bands), the rows in the
        cube's units and their Akima tangents (everything between)."""
        basis, mean = self._raw
        order = np.argsort(self._positions)
        self._p = self._positions[order]
        self._table = np.concatenate([basis, mean[:, None]], axis=1)[order]  # [B | mean], normalised
        o, s = (v[order] for v in self._units)
        self._o, self._s = o, s
        units = self._table * s[:, None]
        units[:, -1] += o
        self._units_table = units
        self._tangents = akima_tangents(self._p, units)

    def maps(self) -> torch.Tensor:
        return self.images

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

    def forward(self, t: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
        """t: (B,) positions -> (B, H, W) bands in normalised units (unclamped)."""
        a = self.images if maps is None else maps
        rows = torch.from_numpy(np.stack([self.row(v) for v in t.to(torch.float64).tolist()])).to(a.device, a.dtype)
        return torch.einsum("bk,khw->bhw", rows[:, :-1], a) + rows[:, -1, None, None]


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
