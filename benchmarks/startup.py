"""Decode start-up of a small file against a bare `python -c "import numpy"` (issue 16's target:
`hinerc decode` of a 100 x 100 x 198 file within three times the bare import plus 0.5 s).

    python benchmarks/startup.py [--scene ../shared/data/pavia_centre_crop_v73.mat] [--repeat 7] [--workdir DIR]

The 100 x 100 x 198 cube is the scene's top-left 100 x 100 pixels with its bands mirrored until
there are 198 (real values, an AVIRIS-like band count), encoded once at 0.2 bpppb by the CLI; then
`--repeat` times each, alternating: the CLI decoding it to .npy, and the bare import. Wall seconds
of whole processes (min and median) and the target, on the machine printed with them.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.append(str(ROOT))  # after site-packages: the INSTALLED hinercodec

from benchmarks.machine import compile_sources, describe, machine_info  # noqa: E402
from hinercodec.formats.cubeio import read_cube  # noqa: E402


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scene", default=str(ROOT.parent / "shared" / "data" / "pavia_centre_crop_v73.mat"))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="hinerc_startup_"))
    work.mkdir(parents=True, exist_ok=True)
    cube = read_cube(args.scene).data[:100, :100]
    bands = cube
    while bands.shape[2] < 198:
        bands = np.concatenate([bands, bands[:, :, ::-1]], axis=2)
    src, hnr, out = work / "cube_100x100x198.npy", work / "cube.hnr", work / "decoded.npy"
    np.save(src, np.ascontiguousarray(bands[:, :, :198]))
    compile_sources(ROOT)  # bytecode, as an installed package has it
    hinerc = [sys.executable, "-m", "hinercodec.cli.main"]
    subprocess.run(hinerc + ["encode", str(src), "-o", str(hnr), "--bpppb", "0.2", "-f", "-q"], check=True)
    dec, bare = [], []
    for _ in range(args.repeat):
        dec.append(wall(hinerc + ["decode", str(hnr), "-o", str(out), "-f"]))
        bare.append(wall([sys.executable, "-c", "import numpy"]))
    target = 3 * min(bare) + 0.5
    print(f"# {describe(machine_info())}; {args.repeat} runs each, alternating")
    print(f"hinerc decode 100 x 100 x 198 -> .npy: min {min(dec):.3f} s, median {statistics.median(dec):.3f} s")
    print(f"python -c 'import numpy':           min {min(bare):.3f} s, median {statistics.median(bare):.3f} s")
    print(f"target 3 x bare + 0.5 s = {target:.3f} s: {'met' if min(dec) <= target else 'missed'} "
          f"(median {'met' if statistics.median(dec) <= 3 * statistics.median(bare) + 0.5 else 'missed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
