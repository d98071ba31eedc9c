"""Large scenes: tiled encode and decode with peak memory, window reads, seams, budget split.

    python benchmarks/make_large.py ../shared/data/cave_balloons.h5 --reps 4x4 -o /tmp/big.h5
    python benchmarks/scale.py /tmp/big.h5 --tile 512 --bpppb 0.2 --effort 1 --json big.json

Every figure comes from the `hinerc` command run as a child process: wall-clock seconds and peak
resident memory (the child's own ru_maxrss, what `/usr/bin/time -v` reports) of encode, full decode
and a window decode, next to the size of the cube. Seams: PSNR_band (PROTOCOL.md normalisation) over
the pixels within `--seam-width` of an inner tile border, against the pixels further inside the
tiles; a visible seam shows as a lower border figure.
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

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repo root
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after site-packages: the INSTALLED hinercodec

from benchmarks.machine import machine_info  # noqa: E402
from hinercodec.api import Decoder  # noqa: E402
from hinercodec.formats import cubeio  # noqa: E402


def run_child(args: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, stdout) of `hinerc ARGS` in a fresh process; raises on failure."""
    cmd = [sys.executable, "-m", "hinercodec.cli.main", *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {err.read().decode()[-2000:]}")
        return seconds, usage.ru_maxrss / 1024.0, out.read().decode()


def seam_psnr(original: cubeio.CubeReader, decoded: np.ndarray, y_edges: list[int], x_edges: list[int],
              width: int, rows: int = 256) -> dict:
    """PSNR_band over pixels near inner tile borders vs the rest, row block by row block."""
    h, w, c = original.shape
    near_y = np.zeros(h, bool)
    near_x = np.zeros(w, bool)
    for e in y_edges[1:-1]:
        near_y[max(0, e - width):e + width] = True
    for e in x_edges[1:-1]:
        near_x[max(0, e - width):e + width] = True
    lo = np.full(c, np.inf)
    hi = np.full(c, -np.inf)
    for y0 in range(0, h, rows):
        x = original.read(y0, min(h, y0 + rows), 0, w).astype(np.float64)
        lo, hi = np.minimum(lo, x.min(axis=(0, 1))), np.maximum(hi, x.max(axis=(0, 1)))
    scale = np.where(hi > lo, hi - lo, 1.0)
    sse = {"border": np.zeros(c), "interior": np.zeros(c)}
    count = {"border": 0, "interior": 0}
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        err = ((original.read(y0, y1, 0, w).astype(np.float64) - decoded[y0:y1].astype(np.float64)) / scale) ** 2
        mask = near_y[y0:y1, None] | near_x[None, :]
        for name, m in (("border", mask), ("interior", ~mask)):
            sse[name] += err[m].sum(axis=0)
            count[name] += int(m.sum())
    keep = hi > lo
    out = {}
    for name in sse:
        if count[name]:
            mse = sse[name][keep] / count[name]
            out[name] = float(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-30))))
            out[name + "_pixels"] = count[name]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cube")
    ap.add_argument("--key", default=None)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--bpppb", type=float, default=0.2)
    ap.add_argument("--effort", type=int, default=1)
    ap.add_argument("--split", default="equal", choices=["equal", "difficulty"])
    ap.add_argument("--window", default=None, help="Y0:Y1,X0:X1 for the window decode (default: the first tile)")
    ap.add_argument("--seam-width", type=int, default=2)
    ap.add_argument("--workdir", default=None, help="keep the .hnr and decoded files here")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        hnr, dec_path, win_path = work / "scene.hnr", work / "decoded.npy", work / "window.npy"
        for p in (hnr, dec_path, win_path):
            p.unlink(missing_ok=True)
        with cubeio.open_cube(args.cube, key=args.key) as reader:
            shape, dtype = reader.shape, reader.dtype
        cube_mib = float(np.prod(shape)) * dtype.itemsize / 2**20
        enc_cmd = ["encode", args.cube, "-o", str(hnr), "--tile", str(args.tile), "--bpppb", str(args.bpppb),
                   "--effort", str(args.effort), "--split", args.split, "--json", "-q"]
        if args.key:
            enc_cmd += ["--key", args.key]
        enc_s, enc_rss, enc_out = run_child(enc_cmd)
        summary = json.loads(enc_out)
        dec_s, dec_rss, _ = run_child(["decode", str(hnr), "-o", str(dec_path)])
        with open(hnr, "rb") as fh:
            dec = Decoder(fh)
            grid = dec.grid
            window = args.window or "{}:{},{}:{}".format(*grid.rect(0))
            y0, y1, x0, x1 = (int(v) for part in window.split(",") for v in part.split(":"))
            dec.bands([0], window=(y0, y1, x0, x1))
            tiles_read = dec.tile_reads
        win_s, win_rss, _ = run_child(["decode", str(hnr), "--window", window, "-o", str(win_path)])
        decoded = np.load(dec_path, mmap_mode="r")
        assert np.array_equal(np.load(win_path), decoded[y0:y1, x0:x1]), "window decode differs from full decode"
        with cubeio.open_cube(args.cube, key=args.key) as reader:
            seams = seam_psnr(reader, decoded, list(grid.y_edges), list(grid.x_edges), args.seam_width)
        result = {
            "cube": args.cube, "shape": list(shape), "dtype": str(dtype), "cube_mib": round(cube_mib, 1),
            "tile": args.tile, "grid": list(grid.shape), "split": args.split, "effort": args.effort,
            "target_bpppb": args.bpppb, "bpppb": summary["bpppb"], "bytes": summary["bytes"],
            "psnr_band": summary["psnr_band"],
            "encode_s": round(enc_s, 1), "encode_peak_rss_mib": round(enc_rss, 1),
            "decode_s": round(dec_s, 1), "decode_peak_rss_mib": round(dec_rss, 1),
            "window": window, "window_tiles_read": tiles_read, "tiles": len(grid),
            "window_decode_s": round(win_s, 2), "window_peak_rss_mib": round(win_rss, 1),
            "seams": seams, "tile_seconds": summary["stats"].get("tile_seconds"),
            "machine": machine_info(),
        }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
