"""`Spare`: arrays let go of, kept for the next user of the same shape.

A large decode builds a row of tile models, renders it and lets it go, then builds the next row:
each model's float64 component images are tens of MB, and fresh memory costs the kernel a page
clear for every page first touched (a fifth of a CAVE mosaic decode's CPU time, measured with
perf). The decoder hands a model's released images to the next model of the same shape instead.
The values decoded do not depend on it.
"""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np


class Spare:
    """A thread-safe pool of arrays: give() one let go of, take() one of a shape and dtype (or None)."""

    def __init__(self) -> None:
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def give(self, array: Optional[np.ndarray]) -> None:
        if array is not None:
            with self._lock:
                self._free.append(array)

    def take(self, shape: tuple, dtype: np.dtype) -> Optional[np.ndarray]:
        with self._lock:
            for i, a in enumerate(self._free):
                if a.shape == shape and a.dtype == dtype:
                    return self._free.pop(i)
        return None

    def clear(self, keep: tuple = (), most: int = 0) -> None:
        """Let go of every array not taken (their memory goes back to the system), but the `most`
        flat (1-D) arrays given last of each dtype in `keep`."""
        with self._lock:
            kept = []
            for kind in (np.dtype(d) for d in keep) if most > 0 else ():
                kept += [a for a in self._free if a.dtype == kind and a.ndim == 1][-most:]
            self._free = [a for a in self._free if any(a is b for b in kept)]

    def __len__(self) -> int:
        return len(self._free)
