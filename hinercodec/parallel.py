"""How many threads a compiled step may use inside the current thread.

A step that splits its work over threads (the transform codec's statistics, lifting, mixing)
uses its own count, but no more than the limit set here for the calling thread: a pool that runs
several tiles at once gives each worker its share of the cores, since more threads than cores only
slow every one down (each waits on the others at every join). The count never changes a result,
only the time (the steps give the same bits for any count). in_blocks shares numpy work on blocks
of pixels among threads within the same limit.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")

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


_POOL: list = [None, 0]  # the shared pool of in_blocks and the process that made it (a forked child makes its own)
_POOL_LOCK = threading.Lock()


def in_blocks(fn: Callable[[int], T], starts: Sequence[int]) -> Iterator[T]:
    """fn(s) for each s of `starts`, in order, the calls shared among as many threads as the cores
    and this thread's limit allow (each call then runs under limited(1): no threads inside). For
    numpy work on blocks of pixels, whose products and ufuncs release the GIL: each block's result
    is the same whichever thread makes it, and a caller that adds them up in this order gets the
    same sums as a loop."""
    threads = min(limit(), os.cpu_count() or 1, len(starts))
    if threads < 2:
        return (fn(s) for s in starts)
    with _POOL_LOCK:
        if _POOL[0] is None or _POOL[1] != os.getpid():
            from concurrent.futures import ThreadPoolExecutor

            _POOL[:] = [ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="hinerc-blocks"), os.getpid()]
        pool = _POOL[0]
    return pool.map(run_limited(fn, 1), starts)


def block_size(n: int, most: int, shares: int = 1) -> int:
    """Items per block of n items cut into blocks of at most `most`: as few blocks as that takes,
    their count rounded up to a multiple of `shares` (the cores they are shared among), all of one
    size but the last. It depends on its arguments alone, never on the thread count: so do the
    sums a caller makes block by block."""
    count = -(-n // most)
    count = -(-count // shares) * shares
    return max(1, -(-n // max(count, 1)))
