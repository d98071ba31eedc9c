"""The spectral PCA shared by pca-jpeg2000 and pca-x265.

Bands are normalised to [0, 1] (min/max float32) and centred (means float32); the principal axes
are stored as float16 and the encoder projects with exactly the float16 basis the decoder will use,
so the only losses are the basis truncation and the coding of the component images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from .base import ClassicalCodec, band_range, from_unit, to_unit

# k tried by the PCA codecs (PROTOCOL.md: best k of 2 to 128), capped at the band count.
K_CHOICES = (2, 4, 6, 8, 12, 16, 20, 24, 32, 48, 64, 96, 128)


@dataclass
class Pca:
    rng: np.ndarray  # 2 x C float32: per-band min, max
    mean: np.ndarray  # C float32: band means of the normalised cube
    basis: np.ndarray  # C x C float16: principal axes, strongest first
    centred: np.ndarray  # (H*W) x C float64: normalised cube minus the stored means


def fit(cube: np.ndarray) -> Pca:
    """Principal axes of the per-band normalised cube."""
    rng = band_range(cube)
    unit = to_unit(cube, rng).reshape(-1, cube.shape[2])
    mean = unit.mean(axis=0).astype(np.float32)
    centred = unit - mean.astype(np.float64)
    eigval, eigvec = np.linalg.eigh(centred.T @ centred)
    basis = eigvec[:, np.argsort(eigval)[::-1]].astype(np.float16)
    return Pca(rng, mean, basis, centred)


def k_choices(shape: tuple[int, int, int], budget: int) -> list[int]:
    """The k to try: at most the band (and pixel) count, and none whose float16 basis alone would
    exceed the byte budget (it could not win) -- but always the smallest, to report "not met"."""
    h, w, c = shape
    limit = min(c, h * w)
    ks = [k for k in K_CHOICES if k <= limit] or [limit]
    return [k for k in ks if 2 * c * k < budget] or ks[:1]


def side_info(p: Pca, k: int) -> list[bytes]:
    """What the decoder needs besides the component images: min/max, means, k basis vectors."""
    return [p.rng.tobytes(), p.mean.tobytes(), np.ascontiguousarray(p.basis[:, :k]).tobytes()]


def components(p: Pca, k: int, shape: tuple[int, int, int]) -> np.ndarray:
    """The first k component images, H x W x k float64."""
    return (p.centred @ p.basis[:, :k].astype(np.float64)).reshape(shape[0], shape[1], k)


def reconstruct(side: list[bytes], comps: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cube (original dtype) from the side-info parts of `side_info` and H x W x k components."""
    h, w, k = comps.shape
    rng = np.frombuffer(side[0], dtype=np.float32).reshape(2, -1)
    c = rng.shape[1]
    mean = np.frombuffer(side[1], dtype=np.float32).astype(np.float64)
    basis = np.frombuffer(side[2], dtype=np.float16).reshape(c, k).astype(np.float64)
    unit = comps.reshape(-1, k) @ basis.T + mean
    return from_unit(unit.reshape(h, w, c), rng, dtype)


class PcaCodec(ClassicalCodec):
    """A classical codec of the PCA component images: the basis is fitted once per cube and every
    k of K_CHOICES that the budget allows is tried (subclasses code the components)."""

    def prepare(self, cube: np.ndarray) -> Any:
        return cube, fit(cube)

    def candidates(self, cube: np.ndarray, budget: int) -> Iterable[dict]:
        return [{"k": k} for k in k_choices(cube.shape, budget)]

