#!/usr/bin/env python3
"""What core stream version 4 and its column period are worth: the `lossless` payload, version against version.

usage: python benchmarks/lossless_core.py [CUBE ...] [--data DIR] [--json OUT]

For every cube (default: every scene of ../shared/data) and bound (integer cubes: max error 0, 1, 4, 16;
float cubes: 0 and 1e-4, 1e-3, 1e-2 of each band's range), coder.encode's payload with its core streams
written as version 3 (hinerc 0.5.0's), as version 4 with Q = 1, and as version 4 with the encoder's Q;
prints bpppb of the payload (8 x bytes / values; the container adds a few hundred bytes) and version 4
against version 3. Every payload is decoded and checked against its bound. Q: the encoder's choice on the
integer cube (float cubes: chosen on the planes coder.py derives, not shown).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from hinercodec.codecs.lossless import _lossless, coder  # noqa: E402
from hinercodec.formats.cubeio import read_cube  # noqa: E402


class _Core:
    """coder.py's core calls, with the core stream version and column period forced (None: the encoder's)."""

    def __init__(self, version, q):
        self.version, self.q = version, q
        self.decode = _lossless.decode

    def encode(self, planes, c, h, w, lo, hi, p, mu, nthreads, q=1):
        return _lossless.encode(planes, c, h, w, lo, hi, p, mu, nthreads, q if self.q is None else self.q, self.version)


def payload_bytes(cube, bounds, version, q):
    real = coder._lossless
    coder._lossless = _Core(version, q)
    try:
        data = coder.encode(cube, bounds)
    finally:
        coder._lossless = real
    out = coder.decode(data, cube.shape, cube.dtype)
    d = np.abs(out.astype(np.float64) - cube.astype(np.float64))
    assert np.all(d <= np.broadcast_to(bounds, cube.shape)), "bound violated"
    return len(data)


def main(argv=None):
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("cubes", nargs="*")
    a.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    a.add_argument("--json", dest="json_out")
    args = a.parse_args(argv)
    paths = args.cubes or sorted(glob.glob(os.path.join(args.data, "*.mat")) + glob.glob(os.path.join(args.data, "*.h5")))
    rows = []
    print("| cube | bound | v3 | v4, Q = 1 | v4, encoder's Q | Q | v4 / v3 |")
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        cube = read_cube(path).data
        integer = cube.dtype.kind in "iu"
        f = cube.reshape(-1, cube.shape[2])
        rng = f.max(0).astype(np.float64) - f.min(0).astype(np.float64)
        for b in ([0, 1, 4, 16] if integer else [0.0, 1e-4, 1e-3, 1e-2]):
            bounds = np.full(cube.shape[2], b, np.int64) if integer else b * rng
            q = coder._column_period(np.ascontiguousarray(np.moveaxis(cube, 2, 0)).astype(np.int64)) if integer else None
            out = {name: 8 * payload_bytes(cube, bounds, ver, qq) / cube.size
                   for name, (ver, qq) in {"v3": (3, 1), "v4q1": (4, 1), "v4": (4, None)}.items()}
            row = dict(cube=os.path.basename(path), bound=b, q=q, **out)
            rows.append(row)
            label = str(b) if integer else f"{b:g} x range"
            print(f"| {row['cube']} | {label} | {out['v3']:.4f} | {out['v4q1']:.4f} | {out['v4']:.4f} | "
                  f"{q if q is not None else '-'} | {100 * (out['v4'] / out['v3'] - 1):+.2f} % |", flush=True)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(dict(command="python benchmarks/lossless_core.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                           rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
