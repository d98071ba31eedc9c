"""How many threads a compiled step may use inside the current thread.

A step that splits its work over threads (the transform codec's statistics, lifting, mixing)
uses its own count, but no more than the limit set here for the calling thread: a pool that runs
several tiles at once gives each worker its share of the cores, since more threads than cores only
slow every one down (each waits on the others at every join). The count never changes a result,
only the time (the steps give the same bits for any count).
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator

_local = threading.local()


def limit() -> int:
    """The most threads a step started from this thread may use (a large number when unset)."""
    return getattr(_local, "limit", 1 << 16)


def share(workers: int) -> int:
    """The threads each of `workers` workers running at once may use: the cores split between them."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


@contextlib.contextmanager
def limited(n: int) -> Iterator[None]:
    """Steps started from this thread use at most `n` threads inside the block."""
    old = getattr(_local, "limit", None)
    _local.limit = max(1, int(n))
    try:
        yield
    finally:
        if old is None:
            del _local.limit
        else:
            _local.limit = old


def run_limited(fn, n: int):
    """`fn` wrapped to run under limited(n) (for a pool's map)."""
    def run(*args, **kwargs):
        with limited(n):
            return fn(*args, **kwargs)
    return run
