"""The default codec (`--model transform`) over the whole range of rates.

Below HIGH_RATE bpppb it is the transform codec alone. From HIGH_RATE up, the error-bounded
codec is tried beside it: when the budget holds the exact (lossless) file, that file is written
(there is nothing better); otherwise both land in the rate window and the one with the better
score (PSNR_band, or PSNR_global with --optimise psnr_global) is kept, so that quality keeps
rising with the rate from the transform codec's low rates up to lossless.
"""
from __future__ import annotations

import numpy as np

from ..decoder import Decoder
from ..errors import RequestError
from ..metrics import distortion
from .base import Job
from .lossless import codec as lossless
from .transform import encoder as transform

HIGH_RATE = 1.0  # bpppb


def encode(job: Job) -> tuple[bytes, dict]:
    if job.cube is None or job.options.bpppb < HIGH_RATE:
        return transform.encode(job)
    exact = lossless.land(job, job.cube, exact_only=True)
    if exact is not None:
        job.report("size", 1, 1, float("nan"), float("inf"), "the budget holds the exact cube: lossless")
        return exact
    candidates, refused = [], []
    for name, run in (("transform", transform.encode), ("lossless", lossless.encode)):
        try:
            data, stats = run(job)
        except RequestError as exc:
            refused.append(exc)
            continue
        d = distortion(job.cube, Decoder(data, "cpu").bands())
        value = d.psnr_global if job.options.optimise == "psnr_global" else d.psnr_band
        in_window = job.budget.floor <= len(data) <= job.budget.bytes
        candidates.append(((in_window, value), data, {**stats, "codec": name}))
        job.report("size", len(candidates), 2, float("nan"), value, f"{name}: {8 * len(data) / job.cube.size:.4f} bpppb")
    if not candidates:  # the transform codec's reason (a rate too low for its smallest file, say) first
        raise refused[0]
    _, data, stats = max(candidates, key=lambda c: (c[0][0], c[0][1] if np.isfinite(c[0][1]) else 1e9))
    return data, stats
