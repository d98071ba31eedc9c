"""PSNR_band of hinerc's default files across versions, point by point, as a Markdown table.

    python benchmarks/rd_compare.py LABEL=RESULT.json [LABEL=RESULT.json ...] [--codec hinerc]

Each RESULT is a JSON that benchmarks/rd.py (its "points") or benchmarks/speed.py (its "rows",
hinerc's default encode) wrote. For every cube and target rate found in the first, one row: each
version's true bpppb / PSNR_band, and each later version's PSNR_band less the first's (issue 16:
no point may drop by more than 0.05 dB against 0.4.0's table; rates land in [0.9 X, X]).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def points(path: Path, codec: str) -> dict[tuple[str, float], tuple[float, float]]:
    """(cube, target) -> (bpppb, PSNR_band) of `codec`'s points in an rd.py or speed.py JSON."""
    data = json.loads(Path(path).read_text())
    found: dict[tuple[str, float], tuple[float, float]] = {}
    for p in data.get("points", []):
        if p.get("codec") == codec and "psnr_band" in p:
            found[(p["cube"], float(p["target_bpppb"]))] = (float(p["bpppb"]), float(p["psnr_band"]))
    for row in data.get("rows", []):
        res = row.get(codec)
        if isinstance(res, dict) and "psnr_band" in res:
            found[(row["cube"], float(row["rate"]))] = (float(res["bpppb"]), float(res["psnr_band"]))
    return found


def table(runs: list[tuple[str, dict]]) -> list[str]:
    labels = [label for label, _ in runs]
    head = ["cube", "target"] + [f"{lab} bpppb / PSNR_band" for lab in labels] + [f"{lab} - {labels[0]}" for lab in labels[1:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    first = runs[0][1]
    for (cube, rate) in first:
        cells = [cube, f"{rate:g}"]
        for _, pts in runs:
            p = pts.get((cube, rate))
            cells.append("-" if p is None else f"{p[0]:.4f} / {p[1]:.2f}")
        for _, pts in runs[1:]:
            p = pts.get((cube, rate))
            cells.append("-" if p is None else f"{p[1] - first[(cube, rate)][1]:+.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="LABEL=RESULT.json")
    ap.add_argument("--codec", default="hinerc")
    args = ap.parse_args()
    runs = []
    for spec in args.runs:
        label, _, path = spec.partition("=")
        if not path:
            ap.error(f"expected LABEL=RESULT.json, got {spec!r}")
        runs.append((label, points(Path(path), args.codec)))
    print("\n".join(table(runs)))


if __name__ == "__main__":
    main()
