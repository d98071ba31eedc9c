"""The experiments behind the transform model's design choices (issue 7, session 3).

    python benchmarks/diagnose_transform.py weights CUBE [--bpppb 0.1,0.2,0.4] [--passes 3]
    python benchmarks/diagnose_transform.py single CUBE [--bytes 4108,8204,16363]
    python benchmarks/diagnose_transform.py pack CUBE --k K --code CODE

weights: the encoder's own PSNR_band (estimated sizes, payload budget = the target less 8 C + 150
    bytes of container) with no band weights, then after each re-weighting pass (w ~ 1 / MSE_c).
single: the first principal component image alone, as 16-bit, coded with OpenJPEG's JPEG 2000
    (glymur, 9/7, 6 resolutions, the `bench` extra) and with hinerc's subband coder at the same
    bytes: how the spatial coder compares with JPEG 2000 on one image.
pack: the bytes of the subband coder for the K-component pyramid quantised at step code CODE
    (fixed integers: run it before and after a change to the coder to measure the change alone),
    without and with sign contexts (the `transform` and `transform2` coefficient sections).
Machine: whatever runs it (the figures in benchmarks/README.md: AMD EPYC, 2 cores).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after site-packages: the INSTALLED hinercodec

from hinercodec.codecs.transform import bitstream as subbands  # noqa: E402
from hinercodec.codecs.transform import encoder as tf  # noqa: E402
from hinercodec.codecs.transform import wavelet  # noqa: E402
from hinercodec.cube import normalise  # noqa: E402
from hinercodec.formats.cubeio import read_cube  # noqa: E402


def normalised(path: str) -> np.ndarray:
    return normalise(read_cube(path).data)[0]


def weights(args: argparse.Namespace) -> None:
    y = normalised(args.cube)
    c, h, w = y.shape
    for rate in args.bpppb:
        budget = 8 * (rate * h * w * c / 8 - 8 * c - 150) * 0.99
        codes = np.zeros(c, np.int64)
        scores = []
        for _ in range(args.passes + 1):
            a = tf.analyse(y, 2.0 ** (codes / tf.WEIGHT_RESOLUTION))
            cand = tf.search(a, budget)
            scores.append(f"{tf.psnr_band(cand.mse, a.constant):.2f} (K {cand.k})")
            codes = tf.weight_codes(cand.mse, a.constant)
        print(f"{Path(args.cube).name} {rate}: unweighted {scores[0]}, passes: {', '.join(scores[1:])}")


def single(args: argparse.Namespace) -> None:
    import glymur
    import imagecodecs

    y = normalised(args.cube)
    a = tf.analyse(y)
    comp = (a.basis[:, :1].T @ (a.block(0, a.pixels) - a.mean[:, None])).reshape(a.height, a.width)
    img = np.rint((comp - comp.min()) / np.ptp(comp) * 65535).astype(np.uint16)
    x = img.astype(np.float64)
    levels = wavelet.levels_for(*x.shape)
    pyr = wavelet.forward(x[None], levels)

    def ours(code: int) -> tuple[int, float]:
        steps = tf.band_steps(tf.step_of(code) * 65535, levels)
        ints, offsets = tf.quantise_pyramid(pyr, steps, 0.35)
        rec = wavelet.inverse(tf.dequantise_pyramid(ints, steps, offsets))[0]
        return len(subbands.pack(ints)), float(((np.clip(rec, 0, 65535) - x) ** 2).mean())

    for target in args.bytes:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "a.jp2")
            glymur.Jp2k(path, data=img, cratios=[img.nbytes / target], irreversible=True, numres=6)
            size = os.path.getsize(path)
            dec = imagecodecs.jpeg2k_decode(Path(path).read_bytes()).astype(np.float64)
        lo, hi = 0, 40 * tf.STEP_RESOLUTION
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if ours(mid)[0] <= size else (lo, mid)
        n, mse = ours(lo)
        j2k = 10 * np.log10(65535 ** 2 / ((dec - x) ** 2).mean())
        print(f"{Path(args.cube).name}: JPEG 2000 {size} B {j2k:.2f} dB | hinerc subband coder {n} B "
              f"{10 * np.log10(65535 ** 2 / mse):.2f} dB")


def pack(args: argparse.Namespace) -> None:
    a = tf.analyse(normalised(args.cube))
    cand = tf.evaluate(a, args.k, args.code, 0.35)
    ints = cand.parts[0]
    plain, signed = len(subbands.pack(ints)), len(subbands.pack(ints, signs=True))
    print(f"{Path(args.cube).name} K {args.k} code {args.code}: {plain} bytes "
          f"(estimate {subbands.estimate_bits(ints) / 8:.0f}); with sign contexts (transform2) {signed} bytes "
          f"(estimate {subbands.estimate_bits(ints, signs=True) / 8:.0f}), {100 * (signed / plain - 1):+.2f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("weights")
    p.add_argument("cube")
    p.add_argument("--bpppb", type=lambda s: [float(v) for v in s.split(",")], default=[0.1, 0.2, 0.4])
    p.add_argument("--passes", type=int, default=3)
    p = sub.add_parser("single")
    p.add_argument("cube")
    p.add_argument("--bytes", type=lambda s: [int(v) for v in s.split(",")], default=[4108, 8204, 16363])
    p = sub.add_parser("pack")
    p.add_argument("cube")
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--code", type=int, required=True)
    args = ap.parse_args()
    {"weights": weights, "single": single, "pack": pack}[args.what](args)


if __name__ == "__main__":
    main()
