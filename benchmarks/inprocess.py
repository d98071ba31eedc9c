"""In-process encode time and quality of hinerc's `api.encode` (no process start-up, no file I/O),
for comparing two versions or settings on the same machine in one run.

    python benchmarks/inprocess.py CUBE... [--rates 0.2] [--effort 3] [--root DIR] [--crop HxW]

--root runs the hinercodec found in DIR (another checkout, for example
`git worktree add /tmp/old <commit>` built with `python setup.py build_ext --inplace`), so that one
shell loop measures both versions back to back. Prints per rate: seconds, true bpppb, PSNR_band,
and the transform model's K, step code and attempts, on the machine printed first.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cubes", nargs="+")
    ap.add_argument("--rates", default="0.2")
    ap.add_argument("--effort", type=int, default=3)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="the checkout to import")
    ap.add_argument("--crop", default=None, help="HxW: the top-left H x W of each cube")
    args = ap.parse_args(argv)
    sys.path.insert(0, args.root)
    from hinercodec import api
    from hinercodec.formats.cubeio import read_cube

    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
    from benchmarks.machine import describe, machine_info

    import hinercodec
    print(f"# {describe(machine_info())}; hinercodec {hinercodec.__version__} from {args.root}; effort {args.effort}")
    for path in args.cubes:
        cube = read_cube(path)
        x = cube.data
        if args.crop:
            h, w = (int(v) for v in args.crop.lower().split("x"))
            x = x[:h, :w]
        for rate in (float(r) for r in args.rates.split(",")):
            t0 = time.perf_counter()
            r = api.encode(x, cube.wavelengths, bpppb=rate, effort=args.effort)
            s = r.stats
            print(f"{Path(path).name} {rate} {time.perf_counter() - t0:.2f} s bpppb {r.bpppb:.4f} PSNR_band "
                  f"{r.psnr_band:.3f} K {s.get('components')} step {s.get('step_code')} attempts {s.get('attempts')}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
