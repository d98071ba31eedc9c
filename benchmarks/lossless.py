#!/usr/bin/env python3
"""Lossless and error-bounded coding: hinerc's predictive coder against CCSDS 123.0-B-2, in one run.

usage: python benchmarks/lossless.py [CUBE ...] [--data DIR] [--json OUT] [--repeat N] [--no-ccsds]

For every cube (default: every scene in ../shared/data) and every bound (integer cubes: max error 0, 1, 4,
16; float cubes: 0 and 1e-4, 1e-3, 1e-2 of each band's range) prints: our bpppb (every payload byte over
H x W x C), CCSDS 123's bpppb (the shared runner `../shared/anchors/ccsds123_run.py`, hybrid coder, 3
prediction bands; integer cubes only), their ratio, the max abs error of our decoded cube (checked against
the bound), and encode / decode MB/s (input bytes of the cube in its own dtype, warm, best of --repeat
runs) of both.  CCSDS times are its runner's warm runs.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from hinercodec.codecs.lossless import decode, encode  # noqa: E402
from hinercodec.formats.cubeio import read_cube  # noqa: E402

DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data")
CCSDS = os.path.join(ROOT, "..", "shared", "anchors", "ccsds123_run.py")


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


def best_time(fn, repeat):
    fn()  # warm
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def ccsds(path, e):
    if not os.path.exists(CCSDS):
        return None
    try:
        r = subprocess.run([sys.executable, CCSDS, path, "--max-error", str(int(e))], capture_output=True,
                           text=True, timeout=1800)
        return json.loads(r.stdout.strip().splitlines()[-1])
    except Exception as exc:  # noqa: BLE001 - an anchor failure is reported, not fatal
        print(f"  ccsds123 failed on {os.path.basename(path)} E={e}: {exc}", file=sys.stderr)
        return None


def bench(path, repeat, with_ccsds):
    cube = read_cube(path).data
    name = os.path.basename(path)
    h, w, c = cube.shape
    integer = cube.dtype.kind in "iu"
    f = cube.reshape(-1, c).astype(np.float64)
    rng = f.max(0) - f.min(0)
    rows = []
    bounds = [0, 1, 4, 16] if integer else [0.0, 1e-4, 1e-3, 1e-2]
    for b in bounds:
        e = b if integer else b * rng
        payload, te = best_time(lambda: encode(cube, e), repeat)
        out, td = best_time(lambda: decode(payload, cube.shape, cube.dtype), repeat)
        if integer:
            err = int(np.abs(out.astype(np.int64) - cube.astype(np.int64)).max())
            ok = err <= b
        else:
            d = np.abs(out.astype(np.float64) - cube.astype(np.float64))
            err = float(d.max())
            ok = bool(np.all(d <= np.broadcast_to(e, d.shape))) if b else \
                np.array_equal(np.ascontiguousarray(out).view(np.uint8), np.ascontiguousarray(cube).view(np.uint8))
        if not ok:
            raise SystemExit(f"BOUND VIOLATED: {name} E={b} max error {err}")
        row = dict(cube=name, shape=[h, w, c], dtype=str(cube.dtype), bound=b,
                   bound_units="cube units" if integer else "fraction of each band's range",
                   bytes=len(payload), bpppb=8 * len(payload) / cube.size, max_abs_error=err,
                   encode_MBps=cube.nbytes / te / 1e6, decode_MBps=cube.nbytes / td / 1e6,
                   encode_s=te, decode_s=td)
        if integer and with_ccsds:
            r = ccsds(path, b)
            if r:
                row.update(ccsds_bpppb=r["bpppb"], ccsds_bytes=r["bytes"], ccsds_max_error=r["max_error"],
                           ccsds_encode_MBps=cube.nbytes / r["encode_s"] / 1e6,
                           ccsds_decode_MBps=cube.nbytes / r["decode_s"] / 1e6,
                           ratio=row["bpppb"] / r["bpppb"])
        rows.append(row)
        print(fmt(row), flush=True)
    return rows


HEAD = ("| cube | bound | bpppb | CCSDS 123 bpppb | ratio | max abs error | enc MB/s | dec MB/s | "
        "CCSDS enc MB/s | CCSDS dec MB/s |\n|---|---|---|---|---|---|---|---|---|---|")


def fmt(r):
    def g(k, f="%.2f"):
        return f % r[k] if k in r else "-"
    b = r["bound"] if r["dtype"][0] in "iu" else (f"{r['bound']:g} x range" if r["bound"] else "0 (bit-exact)")
    err = f"{r['max_abs_error']}" if isinstance(r["max_abs_error"], int) else f"{r['max_abs_error']:.3g}"
    return (f"| {r['cube']} | {b} | {r['bpppb']:.3f} | {g('ccsds_bpppb', '%.3f')} | {g('ratio', '%.3f')} | {err} | "
            f"{r['encode_MBps']:.1f} | {r['decode_MBps']:.1f} | {g('ccsds_encode_MBps', '%.1f')} | "
            f"{g('ccsds_decode_MBps', '%.1f')} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cubes", nargs="*", help="cube files (default: every scene in --data)")
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--json", dest="json_out")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-ccsds", action="store_true")
    a = p.parse_args(argv)
    paths = a.cubes or sorted(glob.glob(os.path.join(a.data, "*.mat")) + glob.glob(os.path.join(a.data, "*.h5")))
    if not paths:
        raise SystemExit(f"no cubes found in {a.data}")
    print("machine:", machine())
    print(HEAD)
    rows = []
    for path in paths:
        rows += bench(path, a.repeat, not a.no_ccsds)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(dict(machine=machine(), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
