#!/usr/bin/env python3
"""Lossless and error-bounded coding: hinerc's `lossless` model against CCSDS 123.0-B-2 and the image /
scientific codecs of issue 19, in one run.

usage: python benchmarks/lossless.py [CUBE ...] [--data DIR] [--codecs a,b,...] [--json OUT] [--plot]
                                     [--repeat N] [--bounds 0,1,...] [--float-bounds 0,1e-4,...]

For every cube (default: every scene in ../shared/data), every bound (integer cubes: max error 0, 1, 4, 16
in the cube's units; float cubes: 0 (bit-exact) and 1e-4, 1e-3, 1e-2 of each band's range) and every codec
(benchmarks/codecs/bounded.py: hinerc, ccsds123, jpeg-ls, jpeg-xl, jpeg2000-rev, zstd-delta, lerc, sz3)
prints: bpppb (8 x bytes of the complete file / (H W C)), the max abs error of the decoded cube (checked
against the bound: a violation is reported in the row), encode / decode MB/s (input bytes of the cube in
its own dtype over wall time; hinerc: best of --repeat warm runs; the others one run; CCSDS 123: its
runner's warm runs, best of its two coders). A codec that cannot run or cannot code that point says why.
--plot writes benchmarks/results/lossless_<scene>.png (bits against max error, benchmarks/plot_lossless.py).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from benchmarks.codecs import bounded  # noqa: E402
from hinercodec.formats.cubeio import read_cube  # noqa: E402

DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data")
INT_BOUNDS = [0, 1, 4, 16]
FLOAT_BOUNDS = [0.0, 1e-4, 1e-3, 1e-2]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count()
    return f"{cpu}, {n} cores, load average {os.getloadavg()[0]:.2f} at start"


def check(cube, out, bounds, exact):
    """(max abs error, bound held) in the cube's units; exact: the same bits."""
    if out.shape != cube.shape or out.dtype != cube.dtype:
        return float("nan"), False
    if exact:
        same = np.array_equal(np.ascontiguousarray(out).view(np.uint8), np.ascontiguousarray(cube).view(np.uint8))
        d = np.abs(out.astype(np.float64) - cube.astype(np.float64))
        return (float(np.nanmax(d)) if d.size else 0.0), same
    d = np.abs(out.astype(np.float64) - cube.astype(np.float64))
    ok = bool(np.all(d <= np.broadcast_to(np.asarray(bounds, np.float64), d.shape)))
    return float(d.max()), ok


def point(codec, path, cube, bounds, b, repeat):
    name = os.path.basename(path)
    integer = cube.dtype.kind in "iu"
    row = dict(cube=name, shape=list(cube.shape), dtype=str(cube.dtype), codec=codec.name, bound=b,
               bound_units="cube units" if integer else "fraction of each band's range")
    why = codec.unsupported(cube, bounds)
    if why:
        row["unavailable"] = why
        return row
    try:
        if isinstance(codec, bounded.Ccsds123):
            r = codec.run_file(path, int(b))
            row.update(bytes=r["bytes"], max_abs_error=r["max_error"], ok=r["max_error"] <= b,
                       encode_s=r["encode_s"], decode_s=r["decode_s"], note=f"{r['coder']} coder")
        else:
            runs = max(1, repeat) if isinstance(codec, bounded.Hinerc) else 1
            if runs > 1:
                codec.decode(codec.encode(cube, bounds))  # warm
            te = td = float("inf")
            for _ in range(runs):
                data, t = bounded.timed(lambda: codec.encode(cube, bounds))
                te = min(te, t)
                out, t = bounded.timed(lambda: codec.decode(data))
                td = min(td, t)
            err, ok = check(cube, out, bounds, not np.any(bounds > 0))
            row.update(bytes=len(data), max_abs_error=err, ok=ok, encode_s=te, decode_s=td)
    except Exception as exc:  # noqa: BLE001 - an anchor failure is reported, not fatal
        row["unavailable"] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        return row
    row["bpppb"] = 8 * row["bytes"] / cube.size
    row["encode_MBps"] = cube.nbytes / row["encode_s"] / 1e6
    row["decode_MBps"] = cube.nbytes / row["decode_s"] / 1e6
    return row


def bench(path, codecs, repeat, int_bounds=INT_BOUNDS, float_bounds=FLOAT_BOUNDS):
    cube = read_cube(path).data
    integer = cube.dtype.kind in "iu"
    f = cube.reshape(-1, cube.shape[2])
    rng = f.max(0).astype(np.float64) - f.min(0).astype(np.float64)
    rows = []
    for b in (int_bounds if integer else float_bounds):
        bounds = np.full(cube.shape[2], b, np.int64) if integer else b * rng
        for codec in codecs:
            row = point(codec, path, cube, bounds, b, repeat)
            rows.append(row)
            print(fmt(row), flush=True)
    return rows


HEAD = ("| cube | bound | codec | bpppb | max abs error | enc MB/s | dec MB/s | note |\n"
        "|---|---|---|---|---|---|---|---|")


def bound_label(r):
    if r["dtype"][0] in "iu":
        return str(r["bound"])
    return f"{r['bound']:g} x range" if r["bound"] else "0 (bit-exact)"


def fmt(r):
    if "unavailable" in r:
        return f"| {r['cube']} | {bound_label(r)} | {r['codec']} | - | - | - | - | {r['unavailable']} |"
    err = r["max_abs_error"]
    err = f"{int(err)}" if r["dtype"][0] in "iu" else f"{err:.3g}"
    note = r.get("note", "") + ("" if r["ok"] else " BOUND VIOLATED")
    return (f"| {r['cube']} | {bound_label(r)} | {r['codec']} | {r['bpppb']:.3f} | {err} | {r['encode_MBps']:.1f} | "
            f"{r['decode_MBps']:.1f} | {note.strip()} |")


def summary(rows):
    """One line per cube and bound: bpppb of every codec, and hinerc / CCSDS 123."""
    names = [c for c in bounded.CODECS if any(r["codec"] == c and "bpppb" in r for r in rows)]
    out = ["| cube | bound | " + " | ".join(names) + " | hinerc / CCSDS |", "|---|---|" + "---|" * (len(names) + 1)]
    keys = []
    for r in rows:
        if (r["cube"], r["bound"]) not in keys:
            keys.append((r["cube"], r["bound"]))
    for cube, b in keys:
        at = {r["codec"]: r for r in rows if r["cube"] == cube and r["bound"] == b}
        cells = []
        for n in names:
            r = at.get(n)
            cells.append("-" if r is None or "bpppb" not in r else
                         (f"{r['bpppb']:.3f}" + ("" if r["ok"] else " (violated)")))
        h, c = at.get("hinerc", {}), at.get("ccsds123", {})
        ratio = f"{h['bpppb'] / c['bpppb']:.3f}" if "bpppb" in h and "bpppb" in c else "-"
        out.append(f"| {cube} | {bound_label(next(iter(at.values())))} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cubes", nargs="*", help="cube files (default: every scene in --data)")
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--codecs", default=",".join(bounded.CODECS), help="comma-separated (default: all)")
    p.add_argument("--json", dest="json_out")
    p.add_argument("--plot", action="store_true", help="write benchmarks/results/lossless_<scene>.png")
    p.add_argument("--repeat", type=int, default=3, help="hinerc's timed runs (best of)")
    p.add_argument("--bounds", help="integer cubes' bounds, comma-separated (default 0,1,4,16)")
    p.add_argument("--float-bounds", help="float cubes' bounds as fractions of each band's range (default 0,1e-4,1e-3,1e-2)")
    a = p.parse_args(argv)
    ib = [int(v) for v in a.bounds.split(",")] if a.bounds else INT_BOUNDS
    fb = [float(v) for v in a.float_bounds.split(",")] if a.float_bounds else FLOAT_BOUNDS
    paths = a.cubes or sorted(glob.glob(os.path.join(a.data, "*.mat")) + glob.glob(os.path.join(a.data, "*.h5")))
    if not paths:
        raise SystemExit(f"no cubes found in {a.data}")
    codecs = [bounded.make(n) for n in a.codecs.split(",") if n]
    m = machine()
    print("machine:", m)
    print(HEAD)
    rows = []
    t0 = time.time()
    for path in paths:
        rows += bench(path, codecs, a.repeat, ib, fb)
    print()
    print(summary(rows))
    print(f"\n({time.time() - t0:.0f} s)")
    result = dict(machine=m, command="python benchmarks/lossless.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                  rows=rows)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(result, f, indent=1)
    if a.plot:
        from benchmarks.plot_lossless import plot_all
        for out in plot_all(rows):
            print("wrote", out)
    bad = [r for r in rows if r.get("codec") == "hinerc" and not r.get("ok", True)]
    if bad:
        raise SystemExit(f"hinerc BOUND VIOLATED: {bad}")


if __name__ == "__main__":
    main()
