#!/usr/bin/env python3
"""Bits against max error, one plot a scene, from benchmarks/lossless.py's rows (or its --json file).

usage: python benchmarks/plot_lossless.py RESULTS.json      # writes benchmarks/results/lossless_<scene>.png

x: the bound (integer scenes: max error in the cube's units; float scenes: fraction of each band's range),
on a symmetric-log axis so that lossless (0) sits at the left; y: bpppb of the complete file.
"""
from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
STYLE = {"hinerc": dict(color="C3", marker="o", lw=2.2), "ccsds123": dict(color="k", marker="s", lw=1.8)}


def plot_all(rows, outdir=RESULTS):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for cube in dict.fromkeys(r["cube"] for r in rows):
        mine = [r for r in rows if r["cube"] == cube and "bpppb" in r]
        if not mine:
            continue
        integer = mine[0]["dtype"][0] in "iu"
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for i, codec in enumerate(dict.fromkeys(r["codec"] for r in mine)):
            pts = sorted((r["bound"], r["bpppb"]) for r in mine if r["codec"] == codec)
            others = ["C0", "C1", "C2", "C4", "C5", "C6", "C8", "C9"]  # C3 (red) is hinerc's
            style = STYLE.get(codec, dict(color=others[i % len(others)], marker="^", lw=1.2))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=codec, ms=5, **style)
        if integer:
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlabel("max abs error E (cube units; 0 = lossless)")
        else:
            ax.set_xscale("symlog", linthresh=1e-4)
            ax.set_xlabel("max abs error / band range (0 = bit-exact)")
        ax.set_ylabel("bpppb (complete file)")
        h, w, c = mine[0]["shape"]
        ax.set_title(f"{cube} ({h} x {w} x {c} {mine[0]['dtype']})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        os.makedirs(outdir, exist_ok=True)
        out = os.path.join(outdir, f"lossless_{os.path.splitext(cube)[0]}.png")
        fig.savefig(out, dpi=110)
        plt.close(fig)
        written.append(out)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        for path in plot_all(json.load(f)["rows"]):
            print("wrote", path)
