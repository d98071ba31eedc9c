"""How far each re-weighting pass moves the transform encoder's band weights: PSNR_band of the
default files (effort 3: two passes) for several settings of encoder.WEIGHT_GAIN (the first pass's
gain) and encoder.WEIGHT_GAINS (the range of the later passes' secant gain; (1, 1): gain 1).

    python benchmarks/weight_gain.py [CUBE...] [--rates 0.1,0.2,0.4,0.8] [--effort 3]
        [--settings 1:1-1:all,2.5:1-3:all,2.5:1-3] [--json OUT]

Each setting FIRST:LO-HI[:all]; 1:1-1 is the plain update of hinerc 0.9.7 and before (weights
<- 1 / MSE of the best candidate so far); ":all" climbs K in every pass, the last one too (as
hinerc 0.9.8 and before: encoder.SETTLED_LAST off), where by default the last pass searches the
step at the best K so far. One in-process `api.encode` per cube, rate and setting; prints each
file's true bpppb and PSNR_band and each setting's PSNR_band less the first setting's. Default
cubes: every scene of ../shared/data (speed.py's list).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.speed import DATA, SCENES  # noqa: E402
from hinercodec import __version__, api  # noqa: E402
from hinercodec.codecs.transform import encoder  # noqa: E402
from hinercodec.formats.cubeio import read_cube  # noqa: E402


def setting(text: str) -> tuple[float, tuple[float, float], bool]:
    """FIRST:LO-HI[:all] -> (first gain, (lo, hi), whether the last pass stays at the best K)."""
    first, _, rest = text.partition(":")
    span, _, flag = rest.partition(":")
    lo, _, hi = span.partition("-")
    if flag not in ("", "all"):
        raise SystemExit(f"weight_gain: unknown setting flag {flag!r} in {text!r}")
    return float(first), (float(lo), float(hi)), flag != "all"


def encoded(cube, rate: float, effort: int, first: float, gains: tuple[float, float], settled: bool) -> tuple[float, float]:
    """(true bpppb, PSNR_band) of the file with these gains."""
    kept = encoder.WEIGHT_GAIN, encoder.WEIGHT_GAINS, encoder.SETTLED_LAST
    encoder.WEIGHT_GAIN, encoder.WEIGHT_GAINS, encoder.SETTLED_LAST = first, gains, settled
    try:
        res = api.encode(cube.data, cube.wavelengths, bpppb=rate, effort=effort)
    finally:
        encoder.WEIGHT_GAIN, encoder.WEIGHT_GAINS, encoder.SETTLED_LAST = kept
    return res.bpppb, res.psnr_band


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cubes", nargs="*", help="cube files (default: the shared scenes)")
    ap.add_argument("--rates", default="0.1,0.2,0.4,0.8")
    ap.add_argument("--effort", type=int, default=3)
    ap.add_argument("--settings", default="1:1-1:all,2.5:1-3:all,2.5:1-3")
    ap.add_argument("--json", help="write the points as JSON")
    args = ap.parse_args()
    paths = [Path(c) for c in args.cubes] or [DATA / s for s in SCENES if (DATA / s).is_file()]
    rates = [float(r) for r in args.rates.split(",")]
    names = args.settings.split(",")
    settings = [setting(n) for n in names]
    print(f"# hinerc {__version__}, effort {args.effort}: bpppb / PSNR_band per setting FIRST:LO-HI[:all], "
          f"then PSNR_band less {names[0]}'s", flush=True)
    rows = []
    for path in paths:
        cube = read_cube(path)
        for rate in rates:
            found = [encoded(cube, rate, args.effort, *one) for one in settings]
            rows.append({"cube": path.name, "rate": rate,
                         "points": {n: {"bpppb": b, "psnr_band": p} for n, (b, p) in zip(names, found)}})
            cells = [f"{n} {b:.4f} / {p:.3f}" for n, (b, p) in zip(names, found)]
            cells += [f"{n} {p - found[0][1]:+.3f}" for n, (_, p) in zip(names[1:], found[1:])]
            print(f"{path.name:28s} {rate:4g}  " + "  ".join(cells), flush=True)
    for n in names[1:]:
        diffs = [r["points"][n]["psnr_band"] - r["points"][names[0]]["psnr_band"] for r in rows]
        print(f"{n}: mean {sum(diffs) / len(diffs):+.3f} dB, worst {min(diffs):+.3f}, best {max(diffs):+.3f}, "
              f"{sum(d > 0 for d in diffs)} of {len(diffs)} points up")
    if args.json:
        Path(args.json).write_text(json.dumps({"version": __version__, "effort": args.effort, "settings": names,
                                               "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
