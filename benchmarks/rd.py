"""Rate-distortion benchmark of hinerc against classical codecs, as ../shared/PROTOCOL.md defines it.

    python benchmarks/rd.py CUBE... [--rates 0.1,0.2,0.4,0.8] [--codecs hinerc,hiner,jpeg2000,...]
                            [--json out.json] [--plot out.png|DIR] [--hinerc-args "..."] [--workdir DIR]

For every cube, codec and rate target: the codec's settings are searched, the file is written and
timed, read back from disk and timed, and measured (true bpppb from the file size, PSNR_band,
PSNR_global, SAM from hinercodec.metrics). Results table on stdout, progress on stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repo root
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after site-packages: the INSTALLED hinercodec

from benchmarks.anchors import classical_point  # noqa: E402
from benchmarks.codecs import CODEC_NAMES, Codec, CodecError, Job, make_codec  # noqa: E402
from benchmarks.codecs.base import log  # noqa: E402
from benchmarks.machine import describe, machine_info  # noqa: E402
from hinercodec.errors import HinercError  # noqa: E402
from hinercodec.metrics import bpppb, distortion  # noqa: E402


def rate_met(rate: float, target: float) -> bool:
    """PROTOCOL.md: a target X is met when the file's bpppb is <= X and >= 0.9 X."""
    return 0.9 * target <= rate <= target + 1e-12


def measure_point(codec: Codec, job: Job, name: str, target: float) -> dict:
    """Search, encode (timed), decode from the file (timed) and measure one rate point."""
    point: dict = {"cube": name, "codec": codec.name, "target_bpppb": target}
    try:
        t0 = time.perf_counter()
        settings = codec.search(job, target)
        point["search_s"] = time.perf_counter() - t0
        point["settings"] = settings
        out = job.workdir / f"{job.path.stem}.{codec.name}.{target:g}{codec.suffix}"
        t0 = time.perf_counter()
        codec.encode(job, settings, out)
        point["encode_s"] = time.perf_counter() - t0
        point["file"] = str(out)
        point["n_bytes"] = out.stat().st_size
        t0 = time.perf_counter()
        decoded = codec.decode(out, job.workdir)
        point["decode_s"] = time.perf_counter() - t0
        if decoded.shape != job.cube.shape:
            raise CodecError(f"decoded shape {decoded.shape} != original {job.cube.shape}")
    except Exception as exc:  # noqa: BLE001 - one failing point must not end the whole benchmark
        point["error"] = f"{type(exc).__name__}: {exc}"
        return point
    point["bpppb"] = bpppb(point["n_bytes"], job.cube.shape)
    point["met"] = rate_met(point["bpppb"], target)
    point["dtype_restored"] = decoded.dtype == job.cube.dtype
    point.update(distortion(job.cube, decoded).as_dict())
    ref = classical_point(name, codec.name, target)
    if ref is not None:
        point["protocol_ref"] = {"bpppb": ref[0], "psnr_band": ref[1]}
    return point


def _fmt(value: Optional[float], digits: int) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def format_table(report: dict) -> str:
    """Fixed-width results table (one row per point; unavailable codecs listed below it)."""
    head = ("cube", "codec", "target", "bpppb", "met", "PSNR_band", "PSNR_glob", "SAM_deg", "enc_s", "dec_s",
            "ref(PROTOCOL)", "settings")
    rows = [head]
    for p in report["points"]:
        if "error" in p:
            rows.append((p["cube"], p["codec"], f"{p['target_bpppb']:g}", "-", "-", "-", "-", "-", "-", "-", "-",
                         "ERROR " + p["error"]))
            continue
        ref = p.get("protocol_ref")
        settings = ",".join(f"{k}={_fmt(v, 3) if isinstance(v, float) else v}" for k, v in p["settings"].items())
        rows.append((p["cube"], p["codec"], f"{p['target_bpppb']:g}", _fmt(p["bpppb"], 4),
                     "yes" if p["met"] else "NO", _fmt(p["psnr_band"], 2), _fmt(p["psnr_global"], 2),
                     _fmt(p["sam_deg"], 3), _fmt(p["encode_s"], 2), _fmt(p["decode_s"], 2),
                     f"{ref['bpppb']:.3f}/{ref['psnr_band']:.2f}" if ref else "-", settings))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    for u in report["unavailable"]:
        lines.append(f"{u['codec']}: unavailable: {u['reason']}")
    lines.append(f"machine: {describe(report['machine'])}")
    lines.append("times: classical = one in-process encode/decode at the chosen settings (search excluded, "
                 "see search_s); hinerc/hiner = wall clock of the CLI processes")
    return "\n".join(lines)


def run(cubes: list[str], rates: list[float], codec_names: list[str], hinerc_args: list[str], workdir: Path,
        plot: Optional[str]) -> dict:
    """The whole benchmark as a JSON-serialisable report."""
    from hinercodec.formats.cubeio import read_cube

    codecs, unavailable = [], []
    for name in codec_names:
        codec = make_codec(name, hinerc_args)
        reason = codec.unavailable()
        if reason is None:
            codecs.append(codec)
        else:
            unavailable.append({"codec": name, "reason": reason})
            log(f"{name}: unavailable: {reason}")
    report: dict = {"machine": machine_info(), "rates": rates, "cubes": [], "points": [],
                    "unavailable": unavailable}
    for i, path in enumerate(cubes):
        cube = read_cube(path)
        name = Path(path).name
        sub = workdir / (Path(path).stem if i == 0 or not (workdir / Path(path).stem).exists()
                         else f"{Path(path).stem}-{i}")
        sub.mkdir(parents=True, exist_ok=True)
        job = Job(cube.data, Path(path), sub)
        report["cubes"].append({"name": name, "path": str(path), "shape": list(cube.data.shape),
                                "dtype": str(cube.data.dtype)})
        for codec in codecs:
            for target in rates:
                log(f"[{name}] {codec.name} @ {target:g} bpppb ...")
                point = measure_point(codec, job, name, target)
                log(f"[{name}] {codec.name} @ {target:g}: "
                    + (point["error"] if "error" in point else
                       f"{point['bpppb']:.4f} bpppb, {point['psnr_band']:.2f} dB"
                       + ("" if point["met"] else " (target not met)")))
                report["points"].append(point)
    if plot:
        from benchmarks.plot import plot_cube, plot_paths

        outs = plot_paths(plot, [c["name"] for c in report["cubes"]])
        for cube_info, out in zip(report["cubes"], outs):
            out.parent.mkdir(parents=True, exist_ok=True)
            plot_cube(cube_info, [p for p in report["points"] if p["cube"] == cube_info["name"]], out)
            log(f"plot: {out}")
    return report


def _rates(text: str) -> list[float]:
    try:
        rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rates wants numbers like 0.1,0.2, got {text!r}")
    if not rates or any(not (r > 0) for r in rates):
        raise argparse.ArgumentTypeError("--rates must be positive numbers")
    return rates


def _codecs(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in CODEC_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown codec(s) {', '.join(unknown)}; known: {', '.join(CODEC_NAMES)}")
    return names


def _finite(value):
    """NaN/inf as null, so that the JSON is strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cubes", nargs="+", metavar="CUBE", help="cube files (.mat v5/v7.3, .h5, .npy, .npz)")
    parser.add_argument("--rates", type=_rates, default=[0.1, 0.2, 0.4, 0.8], help="bpppb targets (default 0.1,0.2,0.4,0.8)")
    parser.add_argument("--codecs", type=_codecs, default=list(CODEC_NAMES), help=f"default {','.join(CODEC_NAMES)}")
    parser.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    parser.add_argument("--plot", metavar="PNG|DIR", help="PSNR_band vs bpppb, one PNG per cube")
    parser.add_argument("--hinerc-args", default="", metavar="ARGS", help='extra `hinerc encode` options, e.g. "--effort 1"')
    parser.add_argument("--workdir", metavar="DIR", help="keep the compressed files here (default: a temp dir, removed)")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="hinerc-rd-"))
    try:
        report = run(args.cubes, args.rates, args.codecs, shlex.split(args.hinerc_args), workdir, args.plot)
    except HinercError as exc:
        print(f"rd.py: error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if not args.workdir:
        for p in report["points"]:
            p.pop("file", None)  # removed with the temp dir
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(_finite(report), indent=2) + "\n")
        log(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
