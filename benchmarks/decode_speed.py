"""Decoder speed: bands per second and multiply-accumulates per decoded value.

    python benchmarks/decode_speed.py FILE.hnr... [--repeat 5] [--threads N] [--json OUT]

For each file: the seconds to parse and load it (entropy decoding, inverse wavelet: once per file),
the seconds to render every band afterwards (best of --repeat), bands per second of the whole
decode (load + render) scaled to a 100 x 100 band, and the decoder's multiply-accumulates per
decoded value (MACs): for the transform model K (the mix of K images per value) + the inverse
wavelet spread over the bands (about 16 MACs per pixel and image: 4 lifting steps of 2 MACs
and one scaling per sample, along both axes, over 1 + 1/4 + 1/16 ... of the image).
Machine and thread count are printed with the results.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after site-packages: the INSTALLED hinercodec

from benchmarks.machine import describe, machine_info  # noqa: E402

WAVELET_MACS = 16 * 4 / 3  # per pixel and component image, all levels


def macs_per_value(config: dict) -> float | None:
    """Decoder MACs per decoded value of a transform-model file (None for the network models)."""
    if config.get("model") not in ("transform", "transform2"):
        return None
    k, c = config["components"], config["bands"]
    return k + WAVELET_MACS * k / c


def measure(path: Path, repeat: int) -> dict:
    import numpy as np

    from hinercodec import api

    data = path.read_bytes()
    t0 = time.perf_counter()
    dec = api.Decoder(data)
    load = time.perf_counter() - t0
    h, w, c = dec.shape
    render = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = dec.bands()
        render.append(time.perf_counter() - t0)
    assert out.shape == (h, w, c) and np.isfinite(out.astype(np.float64)).all()
    total = load + min(render)
    scale = (h * w) / (100 * 100)
    config = api.info(data)["model"]
    return {"file": str(path), "shape": [h, w, c], "model": config.get("model"), "load_s": round(load, 4),
            "render_s": round(min(render), 4), "bands_per_s": round(c / total, 1),
            "bands_per_s_100x100": round(c * scale / total, 1), "macs_per_value": macs_per_value(config)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [measure(p, args.repeat) for p in args.files]
    report = {"machine": machine_info(), "torch_threads": torch.get_num_threads(), "results": rows}
    print(f"machine: {describe(report['machine'])}, torch threads {report['torch_threads']}")
    print(f"{'file':40s} {'shape':>16s} {'load s':>8s} {'render s':>9s} {'bands/s':>8s} {'(100x100)':>10s} {'MACs/value':>10s}")
    for r in rows:
        macs = "-" if r["macs_per_value"] is None else f"{r['macs_per_value']:.1f}"
        print(f"{Path(r['file']).name:40s} {'x'.join(map(str, r['shape'])):>16s} {r['load_s']:8.3f} {r['render_s']:9.3f} "
              f"{r['bands_per_s']:8.1f} {r['bands_per_s_100x100']:10.1f} {macs:>10s}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
