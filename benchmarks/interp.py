"""Spectral interpolation benchmark: can hinerc rebuild bands it never saw?

    python benchmarks/interp.py CUBE [--bpppb 0.2] [--hinerc-args "..."] [--workdir DIR] [--json OUT]

The odd bands are dropped (the kept ones keep their wavelengths), the rest is coded with
`hinerc encode`, and `hinerc interp` asks the file for the dropped wavelengths. Their PSNR_band
against the true dropped bands is printed next to linear interpolation between the two decoded
neighbours (`hinerc decode`) and, as a ceiling for linear interpolation, between the two original
neighbours. Only dropped bands with a kept neighbour on both sides are scored.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repo root
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after site-packages: the INSTALLED hinercodec

from benchmarks.codecs.base import CodecError, log  # noqa: E402
from benchmarks.codecs.hinerc import run_hinerc  # noqa: E402
from benchmarks.machine import machine_info  # noqa: E402
from hinercodec.errors import HinercError  # noqa: E402
from hinercodec.metrics import bpppb, distortion  # noqa: E402


def _numbers(values: np.ndarray) -> str:
    return ",".join(repr(float(v)) for v in values)


def linear_between(left: np.ndarray, right: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(1 - w) * left + w * right per band, in float64 (H x W x K each; w has length K)."""
    return (1.0 - weight) * left.astype(np.float64) + weight * right.astype(np.float64)


def run(path: str, rate: float, hinerc_args: list[str], workdir: Path) -> dict:
    from hinercodec.formats.cubeio import read_cube, write_cube

    cube = read_cube(path)
    x, wl = cube.data, cube.wavelengths
    c = x.shape[2]
    if c < 3:
        raise CodecError(f"{path} has {c} bands; at least 3 are needed")
    kept = np.arange(0, c, 2)
    dropped = np.arange(1, c - 1, 2)  # a kept neighbour on both sides
    sub = workdir / "kept.npz"  # the kept bands and their wavelengths (nm), found by the CLI itself
    write_cube(sub, np.ascontiguousarray(x[:, :, kept]), None if wl is None else wl[kept], force=True)
    encode_args = ["encode", str(sub), "-o", str(workdir / "kept.hnr"), "--bpppb", repr(rate), "--quiet", "-f"]
    log(f"hinerc encode of the {len(kept)} kept bands of {Path(path).name} at {rate:g} bpppb ...")
    t0 = time.perf_counter()
    run_hinerc([*encode_args, *hinerc_args])
    encode_s = time.perf_counter() - t0
    hnr = workdir / "kept.hnr"
    run_hinerc(["decode", str(hnr), "-o", str(workdir / "kept_decoded.npy"), "-f"])
    decoded = np.load(workdir / "kept_decoded.npy")

    if wl is not None:
        where = ["--nm", _numbers(wl[dropped])]
        weight = (wl[dropped] - wl[dropped - 1]) / (wl[dropped + 1] - wl[dropped - 1])
    else:  # no wavelengths: 0..1 spans the kept bands, evenly spaced by band index
        where = ["--lambda", _numbers(dropped / kept[-1])]
        weight = np.full(len(dropped), 0.5)
    log(f"hinerc interp of {len(dropped)} dropped bands ...")
    run_hinerc(["interp", str(hnr), *where, "-o", str(workdir / "interp.npy"), "-f"])
    interp = np.load(workdir / "interp.npy").reshape(x.shape[0], x.shape[1], len(dropped))

    truth = x[:, :, dropped]
    left, right = (dropped - 1) // 2, (dropped + 1) // 2  # positions of the neighbours among the kept bands
    lin_dec = linear_between(decoded[:, :, left], decoded[:, :, right], weight)
    lin_orig = linear_between(x[:, :, dropped - 1], x[:, :, dropped + 1], weight)
    return {
        "cube": Path(path).name,
        "shape": list(x.shape),
        "kept_bands": len(kept),
        "dropped_bands_scored": len(dropped),
        "wavelengths": "nm" if wl is not None else "none (normalised band index)",
        "target_bpppb": rate,
        "bpppb": bpppb(hnr.stat().st_size, (x.shape[0], x.shape[1], len(kept))),
        "encode_s": encode_s,
        "kept_psnr_band": distortion(x[:, :, kept], decoded).psnr_band,
        "hinerc_interp_psnr_band": distortion(truth, interp).psnr_band,
        "linear_decoded_psnr_band": distortion(truth, lin_dec).psnr_band,
        "linear_original_psnr_band": distortion(truth, lin_orig).psnr_band,
        "machine": machine_info(),
    }


def format_report(r: dict) -> str:
    return "\n".join([
        f"{r['cube']} {tuple(r['shape'])}: {r['kept_bands']} kept bands coded at {r['bpppb']:.4f} bpppb "
        f"(target {r['target_bpppb']:g}) in {r['encode_s']:.1f} s; kept bands PSNR_band {r['kept_psnr_band']:.2f} dB",
        f"dropped bands scored: {r['dropped_bands_scored']} (wavelengths: {r['wavelengths']})",
        f"  hinerc interp                         PSNR_band {r['hinerc_interp_psnr_band']:.2f} dB",
        f"  linear between decoded neighbours     PSNR_band {r['linear_decoded_psnr_band']:.2f} dB",
        f"  linear between original neighbours    PSNR_band {r['linear_original_psnr_band']:.2f} dB (no coding)",
    ])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cube", metavar="CUBE")
    parser.add_argument("--bpppb", type=float, default=0.2, help="rate target of the kept bands (default 0.2)")
    parser.add_argument("--hinerc-args", default="", metavar="ARGS", help='extra `hinerc encode` options')
    parser.add_argument("--workdir", metavar="DIR", help="keep the files here (default: a temp dir, removed)")
    parser.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="hinerc-interp-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = run(args.cube, args.bpppb, shlex.split(args.hinerc_args), workdir)
    except (CodecError, HinercError) as exc:
        print(f"interp.py: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
