#!/usr/bin/env python3
"""Issue 19's designs (b) and (c) against (a), hinerc's predictive coder, at max error E = 0, 4, 16.

usage: python benchmarks/lossless_designs.py [CUBE ...] [--rates 0.25,0.5,1,2] [--bounds 0,4,16] [--json OUT]
                                             [--side]

(a) the cube coded by the lossless coder (hinercodec.codecs.lossless.coder) under the bound.
(b) the transform codec's file at rate R (hinercodec.api, --model transform) plus its reconstruction's
    residual x - x_R coded by the same lossless coder under the same bound: every value within E; bits =
    both files. Best R of --rates reported, and every R.
(c) the transform reconstruction as the predictor's side information, with --side: a variant of the
    core (benchmarks/_lossless_side.c, the package's core plus side inputs, built here on the fly into
    build/lossless_side/) whose first NLMS stage has two more inputs per sample, 4 s - sigma and
    4 s - sigma_s (s: the side value at the sample, sigma: the four causal neighbours' sum, sigma_s: the
    side values' sum at those places); bits = transform file + that stream (+16 bytes of payload header).
(c2) (b) and (c) together: the residual x - x_R coded with the reconstruction's local detail
    4 s - sigma_s as one more NLMS input.
Every design is decoded and checked (exact, or within the bound). Integer cubes only (the scenes of the
measurement: Houston and CAVE). Printed per bound: (a) | (b) at each rate | (c) at each rate | (c2) at
each rate, in bpppb.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from hinercodec import api  # noqa: E402
from hinercodec.codecs.lossless import coder  # noqa: E402
from hinercodec.formats.cubeio import read_cube  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data")


def transform(cube, rate):
    data = api.encode(cube, None, api.EncodeOptions(bpppb=rate, model="transform", effort=1)).data
    rec = api.decode(data)
    return data, rec


def quantise(x, off, e):
    return x if e == 0 else (x - off + e) // (2 * e + 1)


def design_a(cube, e):
    p = coder.encode(cube, e)
    out = coder.decode(p, cube.shape, cube.dtype)
    assert np.abs(out.astype(np.int64) - cube).max() <= e
    return len(p)


def design_b(cube, e, tfile, rec):
    r = (cube.astype(np.int64) - rec.astype(np.int64)).astype(np.int32)
    p = coder.encode(r, e)
    back = rec.astype(np.int64) + coder.decode(p, r.shape, r.dtype)
    assert np.abs(back - cube).max() <= e, "design (b) broke the bound"
    return len(tfile) + len(p)


# ---------------------------------------------------------------- design (c): a side-information core

def side_module():
    src = os.path.join(HERE, "_lossless_side.c")
    build = os.path.join(ROOT, "build", "lossless_side")
    os.makedirs(build, exist_ok=True)
    so = os.path.join(build, "_lossless_side" + sysconfig.get_config_var("EXT_SUFFIX"))
    if not os.path.exists(so) or os.path.getmtime(so) < os.path.getmtime(src):
        inc = sysconfig.get_paths()["include"]
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-pthread", f"-I{inc}", src, "-o", so], check=True)
    sys.path.insert(0, build)
    import _lossless_side
    return _lossless_side


def design_c(cube, e, tfile, rec, mod):
    """Transform file + the q planes coded with the side planes (the reconstruction, quantised alike)."""
    x = np.moveaxis(cube, 2, 0).astype(np.int64)
    s = np.moveaxis(rec, 2, 0).astype(np.int64)
    off = int(x.min())
    q = quantise(x, off, e)
    qs = np.clip(quantise(s, off, e), q.min(), q.max())
    c, h, w = q.shape
    lo, hi = int(q.min()), int(q.max())
    vmin, vmax = np.full(c, lo, np.int64), np.full(c, hi, np.int64)
    stream = mod.encode(np.ascontiguousarray(q), c, h, w, vmin, vmax, np.ascontiguousarray(qs), 4, 8)
    back = np.frombuffer(mod.decode(stream, c, h, w, vmin, vmax, np.ascontiguousarray(qs)), np.int64).reshape(c, h, w)
    assert np.array_equal(back, q), "design (c) core is not lossless"
    header = 16  # bound, offset, range, length: what the real payload adds (about)
    return len(tfile) + len(stream) + header


def design_c2(cube, e, tfile, rec, mod):
    """(b) with side information: the residual x - x_R coded with the reconstruction's local detail
    (4 s - sigma_s, on the same quantisation grid) as one more NLMS input."""
    x = np.moveaxis(cube, 2, 0).astype(np.int64)
    s = np.moveaxis(rec, 2, 0).astype(np.int64)
    r = x - s
    off = int(r.min())
    q = quantise(r, off, e)
    qs = s // (2 * e + 1)
    c, h, w = q.shape
    lo, hi = int(q.min()), int(q.max())
    vmin, vmax = np.full(c, lo, np.int64), np.full(c, hi, np.int64)
    stream = mod.encode(np.ascontiguousarray(q), c, h, w, vmin, vmax, np.ascontiguousarray(qs), 4, 8, 1)
    back = np.frombuffer(mod.decode(stream, c, h, w, vmin, vmax, np.ascontiguousarray(qs), 1),
                         np.int64).reshape(c, h, w)
    assert np.array_equal(back, q), "design (c2) core is not lossless"
    return len(tfile) + len(stream) + 16


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cubes", nargs="*")
    p.add_argument("--rates", default="0.25,0.5,1,2")
    p.add_argument("--bounds", default="0,4,16")
    p.add_argument("--side", action="store_true", help="measure design (c) too")
    p.add_argument("--json", dest="json_out")
    a = p.parse_args(argv)
    paths = a.cubes or [os.path.join(DATA, "houston2018_crop.mat"), os.path.join(DATA, "cave_balloons.h5")]
    rates = [float(r) for r in a.rates.split(",")]
    bounds = [int(b) for b in a.bounds.split(",")]
    mod = side_module() if a.side else None
    rows = []
    for path in paths:
        cube = read_cube(path).data
        n = cube.size
        name = os.path.basename(path)
        trans = {}
        for r in rates:
            t = time.time()
            trans[r] = transform(cube, r)
            print(f"{name}: transform at {r} bpppb: {8 * len(trans[r][0]) / n:.3f} bpppb ({time.time() - t:.0f} s)",
                  file=sys.stderr, flush=True)
        for e in bounds:
            row = dict(cube=name, bound=e, a=8 * design_a(cube, e) / n, b={}, c={}, c2={})
            for r in rates:
                row["b"][r] = 8 * design_b(cube, e, *trans[r]) / n
                if mod:
                    row["c"][r] = 8 * design_c(cube, e, *trans[r], mod) / n
                    row["c2"][r] = 8 * design_c2(cube, e, *trans[r], mod) / n
            rows.append(row)
            line = f"| {name} | {e} | {row['a']:.3f} | " + " ".join(f"{row['b'][r]:.3f}" for r in rates)
            if mod:
                line += " | " + " ".join(f"{row['c'][r]:.3f}" for r in rates)
                line += " | " + " ".join(f"{row['c2'][r]:.3f}" for r in rates)
            print(line + " |", flush=True)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(dict(rates=rates, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
