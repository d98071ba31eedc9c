"""Rate-distortion plots: PSNR_band against true bpppb, one PNG per cube (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path

from .anchors import hiner_points


def plot_cube(cube: dict, points: list[dict], out: Path) -> None:
    """One line per codec (hollow markers: rate target not met) plus PROTOCOL.md's HINER anchors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for codec in dict.fromkeys(p["codec"] for p in points):
        pts = sorted((p for p in points if p["codec"] == codec and "psnr_band" in p), key=lambda p: p["bpppb"])
        if not pts:
            continue
        (line,) = ax.plot([p["bpppb"] for p in pts], [p["psnr_band"] for p in pts], "o-", label=codec)
        for p in pts:
            if not p["met"]:
                ax.plot(p["bpppb"], p["psnr_band"], "o", color=line.get_color(), markerfacecolor="white")
    for i, (rate, psnr, where) in enumerate(hiner_points(cube["name"])):
        ax.plot(rate, psnr, "k*", markersize=11, label="HINER reference (PROTOCOL.md)" if i == 0 else None)
        # stacked labels: nearly coincident points (the same run on H100 and CPU) stay readable
        ax.annotate(where, (rate, psnr), textcoords="offset points", xytext=(6, -10 - 9 * i), fontsize=8)
    h, w, c = cube["shape"]
    ax.set_title(f"{cube['name']} ({h} x {w} x {c})")
    ax.set_xlabel("true bpppb (8 x file bytes / (H W C))")
    ax.set_ylabel("PSNR_band (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.99, 0.01, "hollow marker: rate target not met", ha="right", fontsize=7, alpha=0.7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_paths(target: str, names: list[str]) -> list[Path]:
    """Where each cube's PNG goes: `target` itself for one cube and a .png path, else DIR/<stem>.png."""
    path = Path(target)
    if path.suffix.lower() == ".png":
        if len(names) == 1:
            return [path]
        return [path.with_name(f"{path.stem}_{Path(n).stem}.png") for n in names]
    return [path / f"{Path(n).stem}.png" for n in names]


def main() -> None:
    """Plot several rd.py --json reports together (e.g. hinerc and the classical codecs run apart):
    python -m benchmarks.plot A.json B.json[=LABEL] ... --out DIR
    (=LABEL renames that report's hinerc points, to tell versions or options apart)"""
    import argparse
    import json

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("json", nargs="+")
    ap.add_argument("--out", required=True, help="a directory (one PNG per cube)")
    args = ap.parse_args()
    reports, points = [], []
    for arg in args.json:
        path, _, label = arg.partition("=")
        report = json.loads(Path(path).read_text())
        reports.append(report)
        points += [{**p, "codec": label} if label and p.get("codec") == "hinerc" else p for p in report["points"]]
    cubes = {c["name"]: c for r in reports for c in r["cubes"]}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for name, cube in cubes.items():
        out = Path(args.out) / f"{Path(name).stem}.png"
        plot_cube(cube, [p for p in points if p["cube"] == name], out)
        print(f"plot: {out}")


if __name__ == "__main__":
    main()
