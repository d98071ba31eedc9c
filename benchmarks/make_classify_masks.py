"""Make the fixed train/test masks of the classification benchmark (benchmarks/masks/*.npz).

    python benchmarks/make_classify_masks.py [--labels FILE[:VAR] -o OUT.npz] [--per-class 20] [--seed 2024]

Published in the repository so that every run, and every reader, trains and tests on the same
pixels; regenerating with the same labels, count and seed gives the same masks. Without --labels
the masks of the two shared scenes (Houston 2018 crop, Samson) are written.
Each .npz holds `train` and `test` (bool H x W), `per_class` and `seed`.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repo root
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after site-packages: the INSTALLED hinercodec

from hinercodec.classify.data import load_labels, split_per_class  # noqa: E402
from hinercodec.formats.cubeio import atomic_write_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MASKS = ROOT / "benchmarks" / "masks"
SCENES = {"houston2018_crop": "houston2018_crop.mat:labels", "samson": "samson.mat:labels"}
PER_CLASS = 20
SEED = 2024


def make(labels_spec: str, per_class: int, seed: int) -> bytes:
    """The .npz bytes of the split of `labels_spec`."""
    train, test = split_per_class(load_labels(labels_spec), per_class, seed)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, train=train, test=test, per_class=np.int64(per_class), seed=np.int64(seed))
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", metavar="FILE[:VAR]", help="label map (default: the shared scenes)")
    parser.add_argument("-o", "--output", help="output .npz (with --labels)")
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    if (args.labels is None) != (args.output is None):
        parser.error("--labels and -o go together")
    jobs = {args.output: args.labels} if args.labels else \
        {str(MASKS / f"{name}.npz"): str(DATA / spec) for name, spec in SCENES.items()}
    for out, spec in jobs.items():
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, make(spec, args.per_class, args.seed), force=True)
        print(f"{spec} -> {out}")


if __name__ == "__main__":
    main()
