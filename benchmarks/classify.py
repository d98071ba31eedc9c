"""Does a hinerc-compressed scene still classify like the original? (issue 5: SF, SF*, +ASW, +ISI)

    python benchmarks/classify.py                       # Houston 2018 crop and Samson, CR 20/50/100, 5 seeds
    python benchmarks/classify.py --scene indian_pines.mat --key cube \\
        --labels standard_label_maps.npz:indian_pines --per-class 20 --crs 20,50 --seeds 3

For each scene the cube is encoded with the library defaults at bpppb = 16 / CR (cached under
benchmarks/results/classify/), then SpectralFormer is trained on the fixed training mask and scored
on the test mask (OA, AA, kappa; mean and std over the seeds), four ways:
  SF              trained and tested on the original cube
  SF*             trained and tested on the decoded cube
  SF*+ASW         with adaptive spectral weighting in front of the classifier
  SF*+ASW+ISI     and training batches drawn half the time from decodes at jittered wavelengths
and, as a control, SF+ASW on the original cube: ASW adds a little capacity of its own, and this says
how much of its gain on decoded cubes is repair of coding damage rather than a better classifier.
Rates are the files' true rates: bpppb = 8 * bytes / (H * W * C), CR = 16 / bpppb.
Writes OUT.json (every run) and OUT.txt / OUT.md (tables).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repo root
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after site-packages: the INSTALLED hinercodec

from benchmarks.machine import describe, machine_info  # noqa: E402
from hinercodec import api  # noqa: E402
from hinercodec.classify import (TrainOptions, classify, load_labels, load_mask, split_by_mask,  # noqa: E402
                                 split_per_class)
from hinercodec.formats import cubeio  # noqa: E402
from hinercodec.metrics import bpppb, distortion  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "benchmarks" / "results" / "classify"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "classify_cpu"
DEFAULT_SCENES = [(DATA / "houston2018_crop.mat", "labels", ROOT / "benchmarks" / "masks" / "houston2018_crop.npz"),
                  (DATA / "samson.mat", "labels", ROOT / "benchmarks" / "masks" / "samson.npz")]
METHODS = {"SF*": {}, "SF*+ASW": {"asw": True}, "SF*+ASW+ISI": {"asw": True, "isi": True}}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def encoded(path: Path, cube: cubeio.Cube, cr: float) -> bytes:
    """The scene coded at 16 / cr bpppb with the library defaults; cached, since encoding dominates."""
    cached = CACHE / f"{path.stem}_cr{cr:g}.hnr"
    if not cached.exists():
        log(f"encoding {path.name} at {16 / cr:.4g} bpppb (CR {cr:g}) ...")
        result = api.encode(cube.data, cube.wavelengths, api.EncodeOptions(bpppb=16 / cr))
        cached.parent.mkdir(parents=True, exist_ok=True)
        cubeio.atomic_write_bytes(cached, result.data)
    return cached.read_bytes()


def _run(cube: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int, steps: int,
         decoder: Optional[api.Decoder] = None, **flags) -> dict:
    res = classify(cube, labels, train, test, TrainOptions(seed=seed, steps=steps, **flags), decoder, full_map=False)
    return {"seed": seed, "oa": res.scores["oa"], "aa": res.scores["aa"], "kappa": res.scores["kappa"],
            "seconds": res.seconds}


def scene(path: Path, key: Optional[str], labels_spec: str, masks: Optional[Path], per_class: int,
          crs: list[float], seeds: int, steps: int) -> dict:
    """Every run on one scene: {'SF': runs, 'rates': [{'cr', 'bpppb', 'psnr_band', methods: runs}]}."""
    cube = cubeio.read_cube(path, key=key)
    labels = load_labels(labels_spec, cube.data.shape[:2])
    if masks is not None:
        train, test = split_by_mask(labels, load_mask(f"{masks}:train", labels.shape))
    else:
        train, test = split_per_class(labels, per_class, seed=0)
    out = {"scene": path.name, "shape": list(cube.data.shape), "train_pixels": int(train.sum()),
           "test_pixels": int(test.sum()), "masks": None if masks is None else str(masks), "rates": []}
    log(f"{path.name}: {out['train_pixels']} training and {out['test_pixels']} test pixels")
    out["SF"] = [_run(cube.data, labels, train, test, s, steps) for s in range(seeds)]
    out["SF+ASW"] = [_run(cube.data, labels, train, test, s, steps, asw=True) for s in range(seeds)]
    log(f"  original: SF OA {_mean(out['SF'], 'oa'):.2f} %, SF+ASW OA {_mean(out['SF+ASW'], 'oa'):.2f} %")
    for cr in crs:
        data = encoded(path, cube, cr)
        decoder = api.Decoder(data)
        decoded = decoder.bands()
        rate = bpppb(len(data), cube.data.shape)
        row = {"target_cr": cr, "bpppb": rate, "cr": 16 / rate, "bytes": len(data),
               "psnr_band": distortion(cube.data, decoded).psnr_band}
        for name, flags in METHODS.items():
            row[name] = [_run(decoded, labels, train, test, s, steps, decoder, **flags) for s in range(seeds)]
            log(f"  CR {row['cr']:.1f} {name}: OA {_mean(row[name], 'oa'):.2f} %")
        out["rates"].append(row)
    return out


def _mean(runs: list[dict], metric: str) -> float:
    scale = 1.0 if metric == "kappa" else 100.0
    return float(np.mean([r[metric] for r in runs])) * scale


def _cell(runs: list[dict], metric: str) -> str:
    scale = 1.0 if metric == "kappa" else 100.0
    values = np.array([r[metric] for r in runs]) * scale
    digits = 3 if metric == "kappa" else 2
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def tables(results: list[dict], machine: str, command: str) -> tuple[str, str]:
    """(plain text with OA, AA and kappa; markdown with OA) of every scene and rate."""
    names = ["SF", *METHODS, "SF+ASW (control)"]
    md = [f"| scene | target CR | true bpppb | true CR | PSNR_band (dB) | {' | '.join(names)} |",
          "|---|---|---|---|---|" + "---|" * len(names)]
    text = []
    for res in results:
        text.append(f"{res['scene']} {' x '.join(map(str, res['shape']))}: {res['train_pixels']} train / "
                    f"{res['test_pixels']} test pixels")
        for name in ("SF", "SF+ASW"):
            text.append(f"  {'original':<28} {name:<11} OA {_cell(res[name], 'oa')}  AA {_cell(res[name], 'aa')}  "
                        f"kappa {_cell(res[name], 'kappa')}")
        for row in res["rates"]:
            where = f"CR {row['cr']:.1f} ({row['bpppb']:.4f} bpppb)"
            for name in METHODS:
                text.append(f"  {where:<28} {name:<11} OA {_cell(row[name], 'oa')}  AA {_cell(row[name], 'aa')}  "
                            f"kappa {_cell(row[name], 'kappa')}")
            md.append(f"| {res['scene']} | {row['target_cr']:g} | {row['bpppb']:.4f} | {row['cr']:.1f} | "
                      f"{row['psnr_band']:.2f} | {_cell(res['SF'], 'oa')} | "
                      + " | ".join(_cell(row[n], "oa") for n in METHODS) + f" | {_cell(res['SF+ASW'], 'oa')} |")
    footer = [f"machine: {machine}", f"command: {command}",
              "OA in %, mean ± std over seeds (fixed train/test masks); SF and SF+ASW (control) on the original cube"]
    return "\n".join(text + footer) + "\n", "\n".join(md + [""] + footer) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", type=Path, help="cube file (default: the two shared scenes)")
    parser.add_argument("--key", help="variable holding the cube in --scene")
    parser.add_argument("--labels", metavar="FILE[:VAR]", help="label map of --scene (0 = unlabelled)")
    parser.add_argument("--masks", type=Path, help=".npz with a 'train' mask (default: --per-class random split)")
    parser.add_argument("--per-class", type=int, default=20, help="training pixels per class without --masks")
    parser.add_argument("--crs", default="20,50,100", help="compression ratios 16 / bpppb to encode at")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=TrainOptions.steps)
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT, help="OUT(.json/.txt/.md)")
    args = parser.parse_args()
    if (args.scene is None) != (args.labels is None):
        parser.error("--scene and --labels go together")
    jobs = DEFAULT_SCENES if args.scene is None else [(args.scene, None, args.masks)]
    crs = [float(x) for x in args.crs.split(",")]
    started = time.perf_counter()
    results = []
    for path, var, masks in jobs:
        spec = f"{path}:{var}" if var else args.labels
        results.append(scene(path, args.key, spec, masks, args.per_class, crs, args.seeds, args.steps))
    info = machine_info()
    command = "OMP_NUM_THREADS=1 python benchmarks/classify.py " + " ".join(sys.argv[1:])
    text, md = tables(results, describe(info), command.strip())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(
        {"machine": info, "command": command, "seconds": time.perf_counter() - started, "results": results},
        indent=1))
    args.output.with_suffix(".txt").write_text(text)
    args.output.with_suffix(".md").write_text(md)
    print(text, end="")


if __name__ == "__main__":
    main()
