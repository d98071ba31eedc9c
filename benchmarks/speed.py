"""Encode and decode speed of hinerc against PCA + JPEG 2000 (and optionally PCA + x265), as issue 16 asks.

    python benchmarks/speed.py [CUBE...] [--rates 0.2] [--large] [--baselines pca-jpeg2000,pca-x265]
                               [--k 16] [--effort-one] [--repeat N] [--json OUT] [--workdir DIR]
    python benchmarks/speed.py --plot OUT.png RESULTS.json [RESULTS.json ...]

For every cube and rate target, each codec runs as its own process, timed whole (wall clock from the
process start to its exit: interpreter start-up, imports, reading the cube, rate search, writing the
file), as PROTOCOL.md "Time" asks:
- hinerc: `python -m hinercodec.cli.main encode CUBE --bpppb X` with default settings, then
  `hinerc decode FILE -o OUT.npy`;
- a baseline (benchmarks/codecs adapters, unchanged): the cube read with hinerc's reader, the PCA fitted
  and the adapter's own rate bisection run for ONE k (--k, capped at the band count) to the same
  target, every candidate encoded, the file written; decoding reads the file and writes OUT.npy.
Reported per process: wall seconds, MB/s (input MB = H * W * C * the stored dtype's bytes, 10**6; of
the input for encoding, of the decoded output for decoding), peak resident memory (the child's own
ru_maxrss from wait4), the file's bpppb and PSNR_band (measured afterwards, not timed), and the
ratios hinerc / baseline. On the shared CPU machines compare ratios measured in one run only.
--effort-one also encodes (and decodes) each cube with `--effort 1` right after the default encode,
and prints the default's encode time over effort 1's (issue 16 asks for at least 3), beside what 3x
would ask of effort 1's process and the part of that process spent outside the encode itself (wall
time less the summary's seconds from reading the cube to the file on disk: start-up, imports, exit).
--repeat N runs every process of a cube and rate N times in turn and reports, for each, the run
with the median wall time (the machines are shared virtual ones: the run reports how much CPU time
was stolen).

Default cubes: every scene of ../shared/data plus a 512 x 512 crop of cave_balloons.h5; --large adds
the 1000 x 1000 x 156 mirror-tiled Samson and the 2048 x 2560 x 20 mirror-tiled CAVE balloons
(benchmarks/make_large.py; minutes each).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SCENES = ("samson.mat", "houston2018_crop.mat", "pavia_centre_crop_v73.mat", "muufl_crop_v73.mat",
          "cave_balloons.h5", "cave_oil_painting.h5")
BASELINES = ("pca-jpeg2000", "pca-x265")


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


TIME = "/usr/bin/time"  # GNU time: the child's own peak RSS (wait4 on a child forked from this process would
# report at least this process's RSS: Linux keeps the pre-exec high-water mark in ru_maxrss)


def timed(cmd: list[str], summary: bool = False) -> dict:
    """Run cmd; wall seconds, the child's peak RSS (MB), CPU seconds and its exit status. `summary`:
    cmd is a `hinerc encode --json` whose summary (stdout) gives the seconds from reading the cube
    to the file on disk ("inside_s"): the rest of the wall time is the process's start-up (the
    interpreter, imports, argument checks) and exit."""
    rss_file = None
    if os.access(TIME, os.X_OK):
        fd, rss_file = tempfile.mkstemp(suffix=".rss")
        os.close(fd)
        cmd = [TIME, "-f", "%M %U %S", "-o", rss_file] + cmd
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE if summary else subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=_child_env())
    wall = time.perf_counter() - t0
    out: dict = {"s": wall}
    if summary and proc.returncode == 0:
        out["inside_s"] = float(json.loads(proc.stdout)["seconds"])
    if rss_file is not None:
        try:
            fields = Path(rss_file).read_text().split()[-3:]
            out["rss_mb"] = int(fields[0]) / 1024.0
            out["cpu_s"] = float(fields[1]) + float(fields[2])
        except (OSError, ValueError, IndexError):
            out["rss_mb"] = float("nan")
        finally:
            os.unlink(rss_file)
    else:
        out["rss_mb"] = float("nan")
    if proc.returncode != 0:
        out["error"] = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
    return out


# ---------------------------------------------------------------- the baseline's own processes

def _baseline_encode(codec_name: str, cube_path: str, rate: float, k: int, out: str) -> None:
    from benchmarks.codecs import make_codec
    from benchmarks.codecs.base import bisect_knob, target_bytes
    from hinercodec.formats.cubeio import read_cube

    codec = make_codec(codec_name)
    cube = read_cube(cube_path).data
    budget = target_bytes(rate, cube.shape)
    prep = codec.prepare(cube)
    settings = {"k": min(k, cube.shape[2])}
    trial = bisect_knob(lambda v: codec.encode_prepared(prep, {**settings, codec.knob: v}), *codec.knob_range, budget,
                        log_scale=codec.knob_log)
    Path(out).write_bytes(trial.data)


def _baseline_decode(codec_name: str, path: str, out: str) -> None:
    import numpy as np

    from benchmarks.codecs import make_codec

    np.save(out, make_codec(codec_name).decode_bytes(Path(path).read_bytes()))


# ---------------------------------------------------------------- cubes

def prepare_cubes(cubes: list[str], large: bool, workdir: Path) -> list[Path]:
    import numpy as np

    from hinercodec.formats.cubeio import read_cube

    if cubes:
        return [Path(c) for c in cubes]
    out = [DATA / s for s in SCENES if (DATA / s).is_file()]
    crop = workdir / "cave_balloons_512.npy"
    if (DATA / "cave_balloons.h5").is_file():
        if not crop.exists():
            np.save(crop, np.ascontiguousarray(read_cube(DATA / "cave_balloons.h5").data[:512, :512]))
        out.append(crop)
    if large:
        for scene, reps, name in (("samson.mat", "11x11", "samson_1045.h5"), ("cave_balloons.h5", "4x4", "balloons_4x4.h5")):
            path = workdir / name
            if not path.exists() and (DATA / scene).is_file():
                subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_large.py"), str(DATA / scene), "--reps",
                                reps, "-o", str(path)] + (["--crop", "1000x1000"] if scene == "samson.mat" else []),
                               check=True, env=_child_env())
            if path.exists():
                out.append(path)
    return out


def _measure(original, path: Path, decoded: Path) -> dict:
    import numpy as np

    from hinercodec.metrics import distortion

    h, w, c = original.shape
    out = {"bytes": path.stat().st_size, "bpppb": 8.0 * path.stat().st_size / (h * w * c)}
    if decoded.exists():
        out["psnr_band"] = distortion(original, np.load(decoded)).psnr_band
    return out


def median_run(results: list[dict]) -> dict:
    """Of several timed() runs of one command, the one with the median wall time (the lower of the
    two middle ones for an even count), its repetitions' wall times beside it."""
    ok = sorted((r for r in results if "error" not in r), key=lambda r: r["s"])
    if not ok:
        return results[-1]
    pick = dict(ok[(len(ok) - 1) // 2])
    if len(results) > 1:
        pick["runs_s"] = [round(r["s"], 3) for r in results]
    return pick


def run(cubes: list[Path], rates: list[float], baselines: list[str], k: int, workdir: Path,
        effort_one: bool = False, repeat: int = 1) -> list[dict]:
    """Every cube at every rate: each codec's encode and decode timed whole, `repeat` times in turn
    (every process of a repetition before the next: a slow spell of the machine falls on all of
    them), each figure the run with the median wall time; sizes and PSNR_band from the last files."""
    import numpy as np  # noqa: F401

    from hinercodec.formats.cubeio import read_cube

    py = sys.executable
    rows = []
    for cube_path in cubes:
        cube = read_cube(cube_path).data
        mb = cube.size * cube.dtype.itemsize / 1e6
        for rate in rates:
            row: dict = {"cube": cube_path.name, "shape": list(cube.shape), "dtype": str(cube.dtype), "mb": mb,
                         "rate": rate}
            stem = workdir / f"{cube_path.stem}.{rate:g}"
            hnr, dec = stem.with_suffix(".hnr"), Path(f"{stem}.hinerc.npy")
            e1, d1 = stem.with_suffix(".e1.hnr"), Path(f"{stem}.hinerc-e1.npy")
            jobs = [("hinerc", hnr, dec, ["--bpppb", str(rate)])]
            if effort_one:
                jobs.append(("hinerc_effort1", e1, d1, ["--bpppb", str(rate), "--effort", "1"]))
            runs: dict = {}
            for _ in range(max(1, repeat)):
                for name, coded, decoded, args in jobs:
                    for f in (coded, decoded):
                        f.unlink(missing_ok=True)
                    runs.setdefault((name, "encode"), []).append(
                        timed([py, "-m", "hinercodec.cli.main", "encode", str(cube_path)] + args + ["-o", str(coded),
                                                                                                   "--quiet", "--json"],
                              summary=True))
                    if coded.exists():
                        runs.setdefault((name, "decode"), []).append(
                            timed([py, "-m", "hinercodec.cli.main", "decode", str(coded), "-o", str(decoded)]))
                for name in baselines:
                    f, d = Path(f"{stem}.{name}.bin"), Path(f"{stem}.{name}.npy")
                    for g in (f, d):
                        g.unlink(missing_ok=True)
                    runs.setdefault((name, "encode"), []).append(
                        timed([py, str(Path(__file__).resolve()), "--_encode", name, str(cube_path), str(rate), str(k),
                               str(f)]))
                    if f.exists():
                        runs.setdefault((name, "decode"), []).append(
                            timed([py, str(Path(__file__).resolve()), "--_decode", name, str(f), str(d)]))
            for (name, what), results in runs.items():
                row.setdefault(name, {})[what] = median_run(results)
            for name, coded, decoded, _ in jobs:
                if coded.exists() and name in row:
                    row[name].update(_measure(cube, coded, decoded))
            for name in baselines:
                f, d = Path(f"{stem}.{name}.bin"), Path(f"{stem}.{name}.npy")
                if f.exists() and name in row:
                    row[name].update(_measure(cube, f, d))
            for f in workdir.glob(f"{stem.name}.*.npy"):
                f.unlink()
            rows.append(row)
            print_row(row, baselines)
    return rows


def _cell(res: Optional[dict], what: str, mb: float) -> str:
    if not res or what not in res:
        return f"{'-':>22s}"
    r = res[what]
    if "error" in r:
        return f"{'error':>22s}"
    return f"{r['s']:6.2f} {r.get('cpu_s', float('nan')):5.2f} {mb / r['s']:6.2f} {r['rss_mb']:5.0f}"


HEADER_DONE = [False]


def print_row(row: dict, baselines: list[str]) -> None:
    if not HEADER_DONE[0]:
        cols = ["hinerc enc s cpu MB/s RSS", "hinerc dec s cpu MB/s RSS"]
        for b in baselines:
            cols += [f"{b} enc", f"{b} dec", "ratio enc", "ratio dec"]
        print(f"{'cube':28s} {'MB':>7s} {'rate':>5s} {'bpppb/PSNR hinerc':>17s} " + " ".join(f"{c:>22s}" for c in cols))
        HEADER_DONE[0] = True
    h = row["hinerc"]
    q = f"{h.get('bpppb', float('nan')):.3f}/{h.get('psnr_band', float('nan')):.2f}"
    cells = [_cell(h, "encode", row["mb"]), _cell(h, "decode", row["mb"])]
    for b in baselines:
        r = row.get(b, {})
        cells += [_cell(r, "encode", row["mb"]), _cell(r, "decode", row["mb"])]
        for what in ("encode", "decode"):
            try:
                cpu = h[what].get("cpu_s", float("nan")) / r[what].get("cpu_s", float("nan"))
                cells.append(f"{h[what]['s'] / r[what]['s']:12.2f} (cpu {cpu:4.2f})")
            except (KeyError, ZeroDivisionError):
                cells.append(f"{'-':>22s}")
        q += f" | {b} {r.get('bpppb', float('nan')):.3f}/{r.get('psnr_band', float('nan')):.2f}"
    print(f"{row['cube'][:28]:28s} {row['mb']:7.2f} {row['rate']:5g} {q.split(' | ')[0]:>17s} " + " ".join(cells),
          flush=True)
    if len(q.split(" | ")) > 1:
        print(f"{'':28s} {'':7s} {'':5s}   (bpppb/PSNR_band: {' | '.join(q.split(' | ')[1:])})", flush=True)
    e1 = row.get("hinerc_effort1")
    if e1:
        try:
            faster = f"{h['encode']['s'] / e1['encode']['s']:.2f}"
            # what 3x asks of effort 1's whole process, beside the part of it that is not the encode
            # itself (start-up, imports, exit: the same in any effort's process)
            third = (f"; 3x: effort 1 in {h['encode']['s'] / 3:.2f} s, its process outside the encode "
                     f"{e1['encode']['s'] - e1['encode']['inside_s']:.2f} s")
        except (KeyError, ZeroDivisionError):
            faster, third = "-", ""
        print(f"{'':28s} {'':7s} {'':5s}   (--effort 1: {e1.get('bpppb', float('nan')):.3f}/"
              f"{e1.get('psnr_band', float('nan')):.2f}, encode {_cell(e1, 'encode', row['mb']).strip()}, "
              f"decode {_cell(e1, 'decode', row['mb']).strip()}; default / effort 1 encode time {faster}{third})",
              flush=True)


def plot(jsons: list[str], out: str) -> None:
    """Log-log plot of wall time against input MB, encode and decode, one series per codec and rate,
    from the JSON files of earlier runs (the slope shows how cost grows with the cube's size); where
    two files hold the same cube, codec and rate, the later file's figure is plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict = {}
    for path in jsons:
        for row in json.loads(Path(path).read_text())["rows"]:
            for codec, res in row.items():
                if not isinstance(res, dict) or "encode" not in res:
                    continue
                for what in ("encode", "decode"):
                    r = res.get(what)
                    if r and "error" not in r:  # a later file's run of the same cube replaces an earlier one's
                        series.setdefault((what, codec, row["rate"]), {})[row["cube"]] = (row["mb"], r["s"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, what in zip(axes, ("encode", "decode")):
        for (w, codec, rate), pts in sorted(series.items()):
            if w != what:
                continue
            pts = sorted(pts.values())
            x, y = [p[0] for p in pts], [p[1] for p in pts]
            style = "o-" if codec == "hinerc" else ("^:" if codec.startswith("hinerc") else "s--")  # effort 1: dotted
            ax.loglog(x, y, style, label=f"{codec} {rate:g}", alpha=0.8)
        ax.set_xlabel("cube size (MB, stored dtype)")
        ax.set_ylabel(f"{what} wall time (s, whole process)")
        ax.set_title(what)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_encode"]:
        sys.path.insert(0, str(ROOT))
        _baseline_encode(argv[1], argv[2], float(argv[3]), int(argv[4]), argv[5])
        return 0
    if argv[:1] == ["--_decode"]:
        sys.path.insert(0, str(ROOT))
        _baseline_decode(argv[1], argv[2], argv[3])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cubes", nargs="*", help="cube files (default: the shared scenes and a 512 x 512 CAVE crop)")
    ap.add_argument("--rates", default="0.2", help="comma-separated bpppb targets (default 0.2)")
    ap.add_argument("--large", action="store_true", help="add the two large mirror-tiled cubes (minutes each)")
    ap.add_argument("--baselines", default="pca-jpeg2000", help=f"comma-separated, of {', '.join(BASELINES)}")
    ap.add_argument("--k", type=int, default=16, help="the baselines' one k (capped at the band count)")
    ap.add_argument("--effort-one", action="store_true", help="also time hinerc encode --effort 1 (and its decode)")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="time every process N times in turn and report each one's median run (default 1)")
    ap.add_argument("--json", metavar="OUT", help="save the results as JSON")
    ap.add_argument("--workdir", metavar="DIR", help="where files go (default: a temporary directory)")
    ap.add_argument("--plot", nargs="+", metavar=("PNG", "JSON"), help="only plot: PNG from the JSON files of "
                    "earlier runs (log-log wall time against cube size)")
    args = ap.parse_args(argv)
    if args.plot:
        if len(args.plot) < 2:
            ap.error("--plot needs PNG and at least one JSON")
        plot(args.plot[1:], args.plot[0])
        return 0
    sys.path.insert(0, str(ROOT))
    from benchmarks.machine import describe as _describe, machine_info

    def describe() -> str:
        return _describe(machine_info())

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="hinerc-speed-"))
    workdir.mkdir(parents=True, exist_ok=True)
    baselines = [b for b in args.baselines.split(",") if b]
    for b in baselines:
        if b not in BASELINES:
            ap.error(f"unknown baseline {b!r}")
    from benchmarks.machine import compile_sources, cpu_ticks, stolen_share

    compile_sources(ROOT)  # bytecode, as an installed package has it
    cubes = prepare_cubes(args.cubes, args.large, workdir)
    print(f"# {describe()}; load average {os.getloadavg()[0]:.2f} at start; cells: wall s, CPU s, MB/s (wall), peak RSS MB; "
          f"ratio = hinerc / baseline wall time (CPU time) (below 1: hinerc faster)", flush=True)
    ticks = cpu_ticks()
    rows = run(cubes, [float(r) for r in args.rates.split(",")], baselines, args.k, workdir, args.effort_one,
               args.repeat)
    stolen = stolen_share(ticks, cpu_ticks())
    if stolen is not None:  # a virtual machine's cores, shared: the wall times hold this much waiting
        print(f"# CPU time stolen by the hypervisor during the run: {100 * stolen:.1f} % of all CPU time", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": describe(), "load_end": os.getloadavg(), "stolen": stolen,
                                               "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
