"""Rate control: size the network from the byte budget, then land the coded file in the window.

PROTOCOL.md: a target X is met when 8 * file bytes / (H W C) is <= X and >= 0.9 X. Before fitting
we pick the network width whose parameter count fills the budget at an estimated cost per
parameter; after fitting we quantise with a step multiplier found by bisection (coarser steps,
fewer bits) so that the real file fits; if the file is too small even at full precision, the
caller refits a wider network (the measured bits per parameter make the second guess close).
"""
from __future__ import annotations

import math
from typing import Callable

from ..base import Budget
from .models import ModelFamily

AIM = 0.96  # where the first guess aims, leaving room for estimation error


def width_for_params(fam: ModelFamily, shape: tuple[int, int, int], n_params: float) -> float | None:
    """Largest width scale whose network has at most `n_params` parameters (None if none fits)."""
    h, w, c = shape
    lo, hi = 4.0, 512.0
    if fam.count_parameters(fam.make_config(h, w, c, lo)) > n_params:
        return None
    if fam.count_parameters(fam.make_config(h, w, c, hi)) <= n_params:
        return hi
    for _ in range(40):
        mid = (lo + hi) / 2
        if fam.count_parameters(fam.make_config(h, w, c, mid)) <= n_params:
            lo = mid
        else:
            hi = mid
    return lo


def params_for_budget(budget: Budget, overhead: int, bits_per_param: float) -> float:
    return max(0.0, (AIM * budget.bytes - overhead) * 8.0 / bits_per_param)


def fit_step_scale(size_at: Callable[[float], int], budget: Budget, max_scale: float = 16.0) -> tuple[float, int]:
    """Smallest step multiplier k >= 1 whose coded size fits the budget (bisection on log k).

    Returns (k, size). Size falls (almost) monotonically with k; if even `max_scale` does not
    fit, returns (max_scale, size) and the caller must refit a smaller network.
    """
    size = size_at(1.0)
    if size <= budget.bytes:
        return 1.0, size
    lo, hi = 0.0, math.log(max_scale)
    hi_size = size_at(max_scale)
    if hi_size > budget.bytes:
        return max_scale, hi_size
    best = (max_scale, hi_size)
    for _ in range(14):
        mid = (lo + hi) / 2
        s = size_at(math.exp(mid))
        if s <= budget.bytes:
            hi, best = mid, (math.exp(mid), s)
        else:
            lo = mid
    return best
