#!/usr/bin/env python3
"""The lossy R-D curves extended up to lossless, with CCSDS 123.0-B-2 on them (issue 19): one plot a scene of
PSNR_band against bpppb.

usage: python benchmarks/rd_lossless.py [CUBE ...] [--data DIR] [--rd JSON ...] [--auto-rates R,R,...]
                                        [--no-ccsds] [--json OUT] [--plot-only JSON]

Per scene (default: every scene in ../shared/data):
- transform codec: its points from benchmarks/rd.py's JSON files (--rd; default the 0.5 reruns
  results/rd_hinerc_v05_cpu.json and results/rd_hinerc_cave_v05_cpu.json), low rates;
- hinerc `--bpppb R` (the default path, which from 1 bpppb also tries the error-bounded codec and keeps the
  better file) at --auto-rates (default 1,2,4), high rates;
- hinerc `lossless` model at fixed bounds: integer scenes max error 64, 16, 4, 1, 0; float scenes 1e-2,
  1e-3, 1e-4 of each band's range and 0 (bit-exact); the complete file of benchmarks/codecs/bounded.py;
- CCSDS 123.0-B-2 (integer scenes, the shared runner, hybrid coder, 3 prediction bands) at E = 64, 16, 4, 1, 0.
Every point is decoded here and measured (PSNR_band of hinercodec.metrics; the runner's own PSNR_band for
CCSDS, same definition, PROTOCOL.md). Lossless points (infinite PSNR) sit on a line at the top of the plot.
Writes benchmarks/results/rd_lossless_<scene>.png and the points (--json).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from benchmarks.codecs import bounded  # noqa: E402
from hinercodec import api  # noqa: E402
from hinercodec.formats.cubeio import read_cube  # noqa: E402
from hinercodec.metrics import distortion  # noqa: E402

RESULTS = os.path.join(HERE, "results")
DEFAULT_RD = [os.path.join(RESULTS, "rd_hinerc_v05_cpu.json"), os.path.join(RESULTS, "rd_hinerc_cave_v05_cpu.json")]
INT_BOUNDS = [64, 16, 4, 1, 0]
FLOAT_BOUNDS = [1e-2, 1e-3, 1e-4, 0.0]


def measured(cube, out, nbytes, **kw):
    d = distortion(cube, out)
    err = float(np.max(np.abs(out.astype(np.float64) - cube.astype(np.float64))))
    return dict(bpppb=8 * nbytes / cube.size, psnr_band=d.psnr_band if err > 0 else math.inf, max_abs_error=err, **kw)


def points(path, rd_rows, auto_rates, ccsds):
    name = os.path.basename(path)
    cube = read_cube(path)
    x = cube.data
    rows = [dict(series="transform (rd.py)", bpppb=r["bpppb"], psnr_band=r["psnr_band"], target=r["target_bpppb"])
            for r in rd_rows if r.get("cube") == name and r.get("codec") == "hinerc" and "psnr_band" in r]
    for rate in auto_rates:
        t = time.perf_counter()
        data = api.encode(x, cube.wavelengths, bpppb=rate).data
        te = time.perf_counter() - t
        out = api.decode(data)
        model = api.info(data).get("model", "?")
        model = model.get("model", "?") if isinstance(model, dict) else model
        rows.append(measured(x, out, len(data), series="hinerc --bpppb", target=rate, model=model, encode_s=te))
        print(name, rows[-1], flush=True)
    integer = x.dtype.kind in "iu"
    f = x.reshape(-1, x.shape[2]).astype(np.float64)
    rng = f.max(0) - f.min(0)
    hn = bounded.Hinerc()
    for b in (INT_BOUNDS if integer else FLOAT_BOUNDS):
        bounds = np.full(x.shape[2], b, np.int64) if integer else b * rng
        data = hn.encode(x, bounds)
        rows.append(measured(x, hn.decode(data), len(data), series="hinerc lossless model", bound=b))
        print(name, rows[-1], flush=True)
    if integer and ccsds:
        runner = bounded.CCSDS_RUNNER
        for b in INT_BOUNDS:
            r = subprocess.run([sys.executable, runner, path, "--max-error", str(b), "--coder", "hybrid"],
                               capture_output=True, text=True, timeout=7200)
            if r.returncode != 0:
                print(name, "ccsds123 failed:", r.stderr.strip()[-300:], flush=True)
                continue
            o = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append(dict(series="CCSDS 123.0-B-2 (hybrid)", bound=b, bpppb=8 * o["bytes"] / x.size,
                             psnr_band=math.inf if o["max_error"] == 0 else o["psnr_band"], max_abs_error=o["max_error"]))
            print(name, rows[-1], flush=True)
    return dict(cube=name, shape=list(x.shape), dtype=str(x.dtype), rows=rows)


STYLE = {"transform (rd.py)": dict(color="C0", marker="o"), "hinerc --bpppb": dict(color="C2", marker="D"),
         "hinerc lossless model": dict(color="C3", marker="o"), "CCSDS 123.0-B-2 (hybrid)": dict(color="k", marker="s")}


def plot(scene, outdir=RESULTS):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = scene["rows"]
    finite = [r["psnr_band"] for r in rows if math.isfinite(r["psnr_band"])]
    top = max(finite) + 6 if finite else 100
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    for series in dict.fromkeys(r["series"] for r in rows):
        pts = sorted((r["bpppb"], r["psnr_band"] if math.isfinite(r["psnr_band"]) else top, r.get("bound"))
                     for r in rows if r["series"] == series)
        st = STYLE.get(series, dict(color="C5", marker="^"))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=series, lw=1.6, ms=5, **st)
        if series != "transform (rd.py)":
            for bx, by, b in pts:
                if b is not None:
                    ax.annotate(f"{b:g}", (bx, by), textcoords="offset points", xytext=(3, -10), fontsize=7,
                                color=st["color"])
    ax.axhline(top, color="0.6", ls=":", lw=1)
    ax.annotate("lossless (max error 0)", (0.01, top), xycoords=("axes fraction", "data"), xytext=(0, 3),
                textcoords="offset points", fontsize=8, color="0.4")
    ax.set_xscale("log")
    ax.set_xlabel("bpppb (complete file; log scale)")
    ax.set_ylabel("PSNR_band (dB)")
    h, w, c = scene["shape"]
    ax.set_title(f"{scene['cube']} ({h} x {w} x {c} {scene['dtype']}): low rates to lossless\n"
                 "labels: max abs error (integer: cube units; float: fraction of band range)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    os.makedirs(outdir, exist_ok=True)
    out = os.path.join(outdir, f"rd_lossless_{os.path.splitext(scene['cube'])[0]}.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cubes", nargs="*")
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    p.add_argument("--rd", nargs="*", default=DEFAULT_RD)
    p.add_argument("--auto-rates", default="1,2,4")
    p.add_argument("--no-ccsds", action="store_true")
    p.add_argument("--json", dest="json_out")
    p.add_argument("--plot-only", help="plot the points of an earlier --json file")
    a = p.parse_args()
    if a.plot_only:
        with open(a.plot_only) as f:
            for scene in json.load(f)["scenes"]:
                print("wrote", plot(scene))
        return
    rd_rows = []
    for path in a.rd:
        with open(path) as f:
            rd_rows += json.load(f)["points"]
    cubes = a.cubes or sorted(glob.glob(os.path.join(a.data, "*.mat")) + glob.glob(os.path.join(a.data, "*.h5")))
    rates = [float(r) for r in a.auto_rates.split(",") if r]
    scenes = []
    for path in cubes:
        scenes.append(points(path, rd_rows, rates, not a.no_ccsds))
        print("wrote", plot(scenes[-1]), flush=True)
        if a.json_out:
            with open(a.json_out, "w") as f:
                json.dump(dict(command=" ".join(sys.argv), machine=bounded_machine(), scenes=scenes), f, indent=1)


def bounded_machine():
    from benchmarks.lossless import machine
    return machine()


if __name__ == "__main__":
    main()
