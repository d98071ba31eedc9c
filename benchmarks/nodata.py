"""Nodata benchmark: what a large nodata border costs (issue 17).

    python benchmarks/nodata.py [CUBE] [--key VAR] [--rates 0.1,0.2,0.4,0.8] [--angle 20] [--effort 3] [--json OUT]

The scene (default ../shared/data/samson.mat) is embedded in a frame of nodata rotated by
--angle degrees (1.5 x its side: an orthorectified swath looks like this): NaN for a float cube,
0 (declared as the nodata value) for an integer one (Houston's uint16). It is coded four ways at
each rate, each file given the SAME number of bytes as the plain scene's file at that rate:

- plain: the scene alone (`hinerc encode` of the cube), the reference;
- framed: the framed scene with its border as nodata (hinerc's nodata path: the mask chunk, the
  transform codec's shape-adaptive wavelet over the data pixels, HNR.md "Nodata");
- mean-filled: the border filled with each band's mean and coded as data (no mask: the mean fill
  alone, what a simpler nodata wrapper would do);
- 0-filled: the border filled with 0 and coded as data (what a user got before).

What the rotation alone costs, nodata apart: the largest centred square of the framed scene that
holds no nodata (rotated content) against the same-size centred square of the scene itself, each
coded alone at the rate ("rotation only" column: the first's PSNR_band minus the second's).

PSNR_band is over the scene's own (valid) pixels in every column (PROTOCOL.md "Nodata"). "bits/valid"
is 8 * file bytes / (valid pixels x bands): the same budget for the three files.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.ndimage

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repo root
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after site-packages: the INSTALLED hinercodec

from hinercodec import api  # noqa: E402
from hinercodec.formats import cubeio  # noqa: E402
from hinercodec.formats.container import read_chunks  # noqa: E402
from hinercodec.metrics import distortion  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "samson.mat"


def framed(cube: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """(cube inside a rotated frame of NaN (0 for an integer cube), valid mask). Nearest-neighbour
    rotation: values unchanged."""
    h, w, c = cube.shape
    size = int(1.5 * max(h, w))
    index = np.full((size, size), -1, np.int64)
    y0, x0 = (size - h) // 2, (size - w) // 2
    index[y0:y0 + h, x0:x0 + w] = np.arange(h * w).reshape(h, w)
    index = scipy.ndimage.rotate(index, angle, reshape=False, order=0, cval=-1)
    valid = index >= 0
    if cube.dtype.kind in "ui":
        out = np.zeros((size, size, c), cube.dtype)
    else:
        out = np.full((size, size, c), np.nan, np.float32 if cube.dtype != np.float64 else np.float64)
    out[valid] = cube.reshape(-1, c)[index[valid]]
    return out, valid


def inscribed(valid: np.ndarray) -> int:
    """Side of the largest centred square of `valid` that is all True."""
    size = valid.shape[0]
    k = size
    while k > 0:
        o = (size - k) // 2
        if valid[o:o + k, o:o + k].all():
            return k
        k -= 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cube", nargs="?", default=str(DEFAULT))
    parser.add_argument("--key", default=None)
    parser.add_argument("--rates", default="0.1,0.2,0.4,0.8")
    parser.add_argument("--angle", type=float, default=20.0)
    parser.add_argument("--effort", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    src = cubeio.read_cube(args.cube, key=args.key)
    cube = src.data
    frame, valid = framed(cube, args.angle)
    nodata = 0 if cube.dtype.kind in "ui" else None  # NaN pixels are nodata without saying so
    zero = np.nan_to_num(frame, nan=0.0)
    mean = frame.copy()
    mean[~valid] = np.rint(frame[valid].mean(axis=0)) if cube.dtype.kind in "ui" else frame[valid].mean(axis=0)
    n_scene, n_frame = cube.shape[0] * cube.shape[1], valid.size
    side = min(inscribed(valid), cube.shape[0], cube.shape[1])
    o, oy, ox = (frame.shape[0] - side) // 2, (cube.shape[0] - side) // 2, (cube.shape[1] - side) // 2
    rotated, straight = frame[o:o + side, o:o + side], cube[oy:oy + side, ox:ox + side]
    c = cube.shape[2]
    rows = []
    print(f"{Path(args.cube).name} ({cube.dtype}): {cube.shape[0]} x {cube.shape[1]} x {c} in a {frame.shape[0]} x "
          f"{frame.shape[1]} frame rotated {args.angle:g} deg ({100 * (1 - valid.sum() / n_frame):.1f} % nodata); "
          f"effort {args.effort}")
    print(f"{'rate':>5} | {'plain: bits/valid':>17} {'PSNR_band':>9} | {'framed+nodata':>13} {'PSNR_band':>9} "
          f"{'mask B':>6} | {'mean-filled':>11} {'PSNR_band':>9} | {'0-filled':>8} {'PSNR_band':>9} | "
          f"rotation only ({side} x {side})")
    for rate in (float(r) for r in args.rates.split(",")):
        t0 = time.perf_counter()
        plain = api.encode(cube, src.wavelengths, bpppb=rate, effort=args.effort)
        budget = len(plain.data)
        # The framed files get the same bytes: their bpppb target is over the frame's pixels.
        frame_rate = 8.0 * budget / (n_frame * c)
        nod = api.encode(frame, src.wavelengths, bpppb=frame_rate, effort=args.effort, nodata=nodata)
        zer = api.encode(zero, src.wavelengths, bpppb=frame_rate, effort=args.effort)
        avg = api.encode(mean, src.wavelengths, bpppb=frame_rate, effort=args.effort)
        mpsnr = distortion(frame[valid][:, None], api.decode(avg.data)[valid][:, None]).psnr_band
        mask_bytes = sum(len(ch.data) + 12 for ch in read_chunks(nod.data) if ch.type in ("mask", "smta"))
        zdec = api.decode(zer.data)
        zpsnr = distortion(frame[valid][:, None], zdec[valid][:, None]).psnr_band
        rot = api.encode(rotated, src.wavelengths, bpppb=rate, effort=args.effort)
        ref = api.encode(straight, src.wavelengths, bpppb=rate, effort=args.effort)
        row = {"rate": rate, "plain_bytes": budget, "plain_psnr_band": plain.psnr_band,
               "plain_bits_per_valid": 8.0 * budget / (n_scene * c),
               "framed_bytes": len(nod.data), "framed_psnr_band": nod.psnr_band,
               "framed_bits_per_valid": 8.0 * len(nod.data) / (n_scene * c), "mask_and_smta_bytes": mask_bytes,
               "mean_bytes": len(avg.data), "mean_psnr_band": mpsnr,
               "zero_bytes": len(zer.data), "zero_psnr_band": zpsnr,
               "zero_bits_per_valid": 8.0 * len(zer.data) / (n_scene * c),
               "rotated_square_psnr_band": rot.psnr_band, "straight_square_psnr_band": ref.psnr_band,
               "rotation_only_loss": rot.psnr_band - ref.psnr_band, "square_side": side,
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(f"{rate:5.2f} | {row['plain_bits_per_valid']:17.4f} {plain.psnr_band:9.2f} | "
              f"{row['framed_bits_per_valid']:13.4f} {nod.psnr_band:9.2f} {mask_bytes:6d} | "
              f"{8.0 * len(avg.data) / (n_scene * c):11.4f} {mpsnr:9.2f} | "
              f"{row['zero_bits_per_valid']:8.4f} {zpsnr:9.2f} | {rot.psnr_band - ref.psnr_band:+.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"cube": args.cube, "dtype": str(cube.dtype), "angle": args.angle,
                                               "effort": args.effort,
                                               "frame": list(frame.shape), "valid_pixels": int(valid.sum()),
                                               "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
