"""One cube (or tile), prepared, through the chosen codec's encoder: what api.encode and the
tile tasks share."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from . import __version__, registry
from .codecs.base import Budget, Job
from .cube import positions_of
from .options import EncodeOptions, Progress, ProgressFn


def run_encoder(target: Optional[np.ndarray], dtype: np.dtype, offset: np.ndarray, scale: np.ndarray,
                wavelengths: Optional[np.ndarray], budget: Budget, options: EncodeOptions,
                progress: Optional[ProgressFn] = None, seed: Optional[int] = None, note: str = "",
                cube: Optional[np.ndarray] = None, valid: Optional[np.ndarray] = None,
                plan: Optional[dict] = None, keep: Optional[dict] = None) -> tuple[bytes, dict]:
    """(stand-alone .hnr bytes, stats) of a normalised cube `target` (C, H, W) float32 (and of its
    original values `cube`, H x W x C, when the whole cube is at hand); `valid` (H x W bool): its
    data pixels when some are nodata. `target` may be None for a codec that reads `cube` only
    (registry: normalised_input=False). `plan`: the codec's search plan found for the whole cube
    (a tile's: registry.Codec.planner). `keep`: a dict the codec may leave what the file's own
    measure can use in (Job.keep)."""
    c, h, w = target.shape if target is not None else (cube.shape[2], cube.shape[0], cube.shape[1])

    def report(stage: str, step: int, total: int, loss: float, psnr: float, text: str) -> None:
        if progress is not None:
            progress(Progress(stage, step, total, loss, psnr, note + text))

    job = Job(shape=(h, w, c), dtype=np.dtype(dtype), offset=offset, scale=scale, wavelengths=wavelengths,
              target=target, t=positions_of(wavelengths, c).astype(np.float32), budget=budget, options=options,
              report=report, seed=options.seed if seed is None else seed, encoder=f"hinerc {__version__}", cube=cube,
              valid=valid, plan=plan, keep=keep)
    encode: Callable = registry.encoder(options.model)
    return encode(job)
