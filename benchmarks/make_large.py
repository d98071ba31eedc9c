"""Build a large real-derived cube by mirror-tiling a real scene (no made-up values).

    python benchmarks/make_large.py ../shared/data/cave_balloons.h5 --reps 4x4 -o /tmp/balloons_4x4.h5
    python benchmarks/make_large.py ../shared/data/samson.mat --reps 11x11 --crop 1000x1000 -o /tmp/samson_1000.h5

Tile (r, c) of the output is the scene flipped vertically when r is odd and horizontally when c is
odd, so that the seams of the mosaic are continuous like a real larger scene. The output is HDF5
with a chunked dataset `cube` (H x W x C, the scene's dtype) and `wavelength_nm` when the scene has
them; it is written band block by band block, so building it needs about one scene of memory.
--crop HxW keeps the top-left H x W of the mosaic (Samson 95 x 95 tiled 11 x 11, cropped to the
1000 x 1000 x 156 cube of issue 16's speed targets).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np

from hinercodec.formats import cubeio


def mirror_tile(scene: np.ndarray, reps: tuple[int, int], out: Path, wavelengths: np.ndarray | None,
                crop: tuple[int, int] | None = None) -> tuple:
    h, w, c = scene.shape
    shape = (h * reps[0], w * reps[1], c)
    if crop is not None:
        shape = (min(shape[0], crop[0]), min(shape[1], crop[1]), c)
    tmp = out.with_name(out.name + ".part")
    with h5py.File(tmp, "w") as f:
        ds = f.create_dataset("cube", shape=shape, dtype=scene.dtype, chunks=(min(256, shape[0]), min(256, shape[1]), c))
        for r in range(reps[0]):
            for q in range(reps[1]):
                block = scene[::-1] if r % 2 else scene
                block = block[:, ::-1] if q % 2 else block
                y1, x1 = min((r + 1) * h, shape[0]), min((q + 1) * w, shape[1])
                if y1 > r * h and x1 > q * w:
                    ds[r * h:y1, q * w:x1, :] = block[:y1 - r * h, :x1 - q * w]
        if wavelengths is not None:
            f["wavelength_nm"] = wavelengths
    tmp.replace(out)
    return shape


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scene", help="a cube file hinerc reads")
    ap.add_argument("--key", default=None)
    ap.add_argument("--reps", default="4x4", help="ROWSxCOLS copies (default 4x4)")
    ap.add_argument("--crop", default=None, help="HxW: keep the top-left H x W of the mosaic")
    ap.add_argument("-o", "--output", required=True, help="output .h5 (refused if it exists)")
    args = ap.parse_args(argv)
    out = Path(args.output)
    if out.exists():
        print(f"make_large: {out} exists", file=sys.stderr)
        return 6
    rows, cols = (int(v) for v in args.reps.lower().split("x"))
    cube = cubeio.read_cube(args.scene, key=args.key)
    crop = tuple(int(v) for v in args.crop.lower().split("x")) if args.crop else None
    shape = mirror_tile(cube.data, (rows, cols), out, cube.wavelengths, crop)
    print(f"{out}: {shape[0]} x {shape[1]} x {shape[2]} {cube.data.dtype} "
          f"({np.prod(shape) * cube.data.dtype.itemsize / 2**20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
