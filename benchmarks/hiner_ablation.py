"""Where `--model hiner` loses dB against the official HINER code: one difference at a time.

Every run goes through the library's public path (`hinercodec.api.encode(..., model="hiner")`), so
the rate is the written file's and PSNR_band is measured on the decoded file (PROTOCOL.md); a
variant only changes `hinercodec.codecs.networks.hiner.STYLE` (network shape and fitting) for the
duration of the run.

    .venv/bin/python -m benchmarks.hiner_ablation --scene houston2018_crop.mat --bpppb 0.5 --epochs 80 \\
        --variant base --variant official --out results/hiner_ablation.json
    .venv/bin/python -m benchmarks.hiner_ablation --list

A variant is a name from VARIANTS, or `name+name` (applied left to right), or `key=value,...` overrides
of HinerStyle's fields (e.g. `lr=1e-3,batch=1`). Runs one encode at a time on one thread (shared
machines: run it under `nice`).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hinercodec import api
from hinercodec.codecs.networks import hiner
from hinercodec.formats.cubeio import read_cube

DATA = Path(os.environ.get("HINERC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# Each entry: HinerStyle overrides. "official" = the published code's choices as far as they map
# onto hinerc's network (PE 1.25/80, 16-channel 3 x 3 embedding grid with a 1x1 stem, strides
# 5-3-2-2, taper 1/1.2, tanh output, Adam 1e-3 with a 10 % warm-up from 0.1, one band a step).
VARIANTS: dict[str, dict] = {
    "base": {},  # hinerc 0.4's choices (HinerStyle()'s defaults)
    "lib": {k: v for k, v in dataclasses.asdict(hiner.STYLE).items()
            if v != getattr(hiner.HinerStyle(), k)},  # the library's current choices
    "fidelity": {k: v for k, v in dataclasses.asdict(hiner.FIDELITY_STYLE).items()
                 if v != getattr(hiner.HinerStyle(), k)},  # 0.5's batch 1 + constant width at lr 1e-2
    "pe": {"pe_freqs": 80, "pe_base": 1.25},
    "lr3": {"lr": 1e-3},
    "lr3w": {"lr": 1e-3, "warmup": 0.1, "warmup_start": 0.1},
    "lr5": {"lr": 5e-3},
    "b1": {"batch": 1},
    "tanh": {"out": "tanh"},
    "strides": {"strides": (5, 3, 2, 2)},
    "stem": {"stem": True},
    "emb16": {"embed_ch": 16},
    "taper": {"taper": 1 / 1.2},
    "cam_deg": {"gamma": 0.01 / np.pi},  # 0.01 x degrees / 180 = 0.01 / pi x radians
    "nocam": {"gamma": 0.0},
    "hidden3": {"hidden": 3.0},
    # The paper's own ablations (its Table 4, Fig. 11, Table 2 case 1): the loss, the wavelength
    # encoding, and `shuffle` (not a style: the bands are permuted before coding while the
    # wavelengths stay in order, so the network must map neighbouring wavelengths to unrelated bands).
    "l1": {"loss": "l1"},
    "ssim": {"loss": "l1+ssim"},
    "nope": {"pe_freqs": 0},
    "shuffle": {},
    "guard": {"guard": 1.5},
    "lr5g": {"lr": 5e-3, "guard": 1.5},  # `fidelity+lr5g+qat` is the library's default (`lib`)
    "embed": {"embed": True},
    "tune": {"tune_epochs": 0.25},
    "qbest": {"quant": "best"},
    "qat": {"qat_epochs": 0.1},
    "offarch": {"pe_freqs": 80, "pe_base": 1.25, "embed_ch": 16, "stem": True, "strides": (5, 3, 2, 2),
                "taper": 1 / 1.2, "out": "tanh"},
    "offtrain": {"lr": 1e-3, "warmup": 0.1, "warmup_start": 0.1, "batch": 1, "gamma": 0.01 / np.pi},
    "official": {"pe_freqs": 80, "pe_base": 1.25, "embed_ch": 16, "stem": True, "strides": (5, 3, 2, 2),
                 "taper": 1 / 1.2, "out": "tanh", "lr": 1e-3, "warmup": 0.1, "warmup_start": 0.1,
                 "batch": 1, "gamma": 0.01 / np.pi, "embed": True},
}


def parse_variant(spec: str) -> dict:
    out: dict = {}
    for part in spec.split("+"):
        if "=" in part:
            for kv in part.split(","):
                k, v = kv.split("=", 1)
                field = {f.name: f for f in dataclasses.fields(hiner.HinerStyle)}[k]
                if k == "strides":
                    out[k] = tuple(int(x) for x in v.split("-")) if v else ()
                elif field.type in ("bool", bool):
                    out[k] = v.lower() in ("1", "true", "yes")
                elif field.type in ("str", str):
                    out[k] = v
                elif field.type in ("int", int):
                    out[k] = int(v)
                else:
                    out[k] = float(v)
        else:
            out.update(VARIANTS[part])
    return out


def run(scene: str, bpppb: float, epochs: int, spec: str, seed: int = 0) -> dict:
    cube = read_cube(DATA / scene)
    overrides = parse_variant(spec)
    data = cube.data
    if "shuffle" in spec.split("+"):
        perm = np.random.default_rng(seed).permutation(data.shape[2])
        data = np.ascontiguousarray(data[:, :, perm])
    saved = hiner.STYLE
    hiner.STYLE = dataclasses.replace(hiner.HinerStyle(), **overrides)
    epochs_seen = []
    try:
        start = time.perf_counter()
        stamps = []

        def progress(p) -> None:
            if getattr(p, "stage", None) == "fit":
                stamps.append(time.perf_counter())
                epochs_seen.append(p)

        res = api.encode(data, cube.wavelengths, model="hiner", bpppb=bpppb, epochs=epochs, device="cpu",
                         seed=seed, progress=progress)
        seconds = time.perf_counter() - start
    finally:
        style = hiner.STYLE
        hiner.STYLE = saved
    # Seconds an epoch: the median gap between epoch reports (the first epoch and refits excluded).
    gaps = np.diff(stamps) if len(stamps) > 2 else np.array([float("nan")])
    return {"scene": scene, "variant": spec, "epochs": epochs, "target": bpppb, "bpppb": round(res.bpppb, 4),
            "psnr_band": round(res.psnr_band, 3), "psnr_global": round(res.stats.get("psnr_global", float("nan")), 3),
            "sam_deg": round(res.stats.get("sam_deg", float("nan")), 3),
            # The last epoch's PSNR of the float model while fitting (global, not per band): against
            # psnr_global it shows what quantisation costs.
            "fit_psnr_global": round(float(epochs_seen[-1].psnr), 3) if epochs_seen else None,
            "parameters": res.stats.get("parameters"),
            "sha256": hashlib.sha256(res.data).hexdigest(),  # against `hinerc encode` at the same settings
            "attempts": res.stats.get("attempts"), "step_scale": res.stats.get("step_scale"),
            "seconds": round(seconds, 1), "s_per_epoch": round(float(np.median(gaps)), 3),
            "load_before": os.getloadavg()[0], "style": {k: (list(v) if isinstance(v, tuple) else v)
                                                         for k, v in dataclasses.asdict(style).items()}}


def trace(scene: str, bpppb: float, epochs: int, spec: str, seed: int, every: int, log: str) -> dict:
    """`run`, logging every epoch of every fit (JSON lines to `log`): the learning rate, the epoch's
    training loss and PSNR, the largest |weight|, the last step's gradient norm, and every `every`
    epochs the whole cube's PSNR (global and per band) of the float model and of its 8-bit per-tensor
    quantisation (step scale 1): where a long fit degrades, and whether it is the fit or the file."""
    import copy
    import math

    from hinercodec.codecs.networks import encoder as enc
    from hinercodec.codecs.networks.fit import lr_factor
    from hinercodec.codecs.networks.quant import load_quantized, quantize_model

    original_fit = enc.fit
    out = open(log, "a", buffering=1)
    fits = [0]

    def evaluate(model, target, t) -> tuple[float, float]:
        with torch.no_grad():
            pred = torch.cat([model(t[i:i + 16]) for i in range(0, t.numel(), 16)]).clamp(0, 1)
        se = ((pred - target) ** 2).flatten(1).mean(1).clamp_min(1e-12)
        return 10 * math.log10(1 / float(se.mean())), float((-10 * torch.log10(se)).mean())

    def traced_fit(model, target, t, settings, report=None):
        fits[0] += 1
        start = time.perf_counter()
        steps = math.ceil(target.shape[0] / max(1, min(settings.batch, target.shape[0])))

        def rep(e, n, loss, psnr):
            params = list(model.parameters())
            grads = [p.grad for p in params if p.grad is not None]
            row = {"fit": fits[0], "epoch": e, "s": round(time.perf_counter() - start, 1),
                   "lr": settings.lr * lr_factor(e * steps - 1, n * steps, settings.warmup, settings.warmup_start),
                   "loss": loss, "train_psnr": round(psnr, 3),
                   "wmax": round(max(float(p.detach().abs().max()) for p in params), 4),
                   "gnorm": round(float(torch.sqrt(sum((g ** 2).sum() for g in grads))), 5) if grads else None}
            if e % every == 0 or e == n or e == 1:
                model.eval()
                row["psnr_global"], row["psnr_band"] = (round(x, 3) for x in evaluate(model, target, t))
                q = copy.deepcopy(model)
                load_quantized(q, quantize_model(model, 8, False))
                row["q8_psnr_global"], row["q8_psnr_band"] = (round(x, 3) for x in evaluate(q, target, t))
                model.train()
            out.write(json.dumps(row) + "\n")
            if report is not None:
                report(e, n, loss, psnr)

        return original_fit(model, target, t, settings, rep)

    enc.fit = traced_fit
    try:
        row = run(scene, bpppb, epochs, spec, seed)
    finally:
        enc.fit = original_fit
    out.write(json.dumps({k: v for k, v in row.items() if k != "style"}) + "\n")
    out.close()
    return row


def epoch_times(variants: list[str], repeats: int = 2, epochs: int = 2) -> list[dict]:
    """Seconds an epoch at the official settings (one band a step, 48 random 128 x 128 bands, lr 1e-3),
    side by side in one process: a replica of the official network (hinerc's HinerNet configured as
    it: 16 x 3 x 3 embedding from a 160-320-144 MLP, 1x1 stem to 13, strides 5-3-2-2, 180 x 180
    output, tanh) and each variant's network at the 54k parameters of Houston at 0.5 bpppb."""
    from hinercodec.codecs.networks.fit import FitSettings, fit
    from hinercodec.codecs.networks.models import family
    from hinercodec.codecs.networks.ratecontrol import width_for_params
    fam = family("hiner")
    nets = {"official replica": (hiner.HinerConfig(height=180, width=180, grid=(3, 3), strides=[5, 3, 2, 2],
                                                  channels=[16, 11, 9, 8, 7], mlp_hidden=320, pe_freqs=80,
                                                  pe_base=1.25, stem=13, out="tanh"), 180)}
    for spec in variants:
        saved = hiner.STYLE
        hiner.STYLE = dataclasses.replace(hiner.HinerStyle(), **parse_variant(spec))
        try:
            cfg = hiner.make_config(128, 128, 48, width_for_params(fam, (128, 128, 48), 54124))
        finally:
            hiner.STYLE = saved
        nets[spec] = (cfg, 128)
    best: dict = {}
    for _ in range(repeats):
        for name, (cfg, side) in nets.items():
            torch.manual_seed(0)
            model = hiner.HinerNet(cfg)
            target, t = torch.rand(48, side, side), torch.linspace(0, 1, 48)
            start = time.perf_counter()
            fit(model, target, t, FitSettings(epochs=epochs, batch=1, lr=1e-3))
            best[name] = min(best.get(name, float("inf")), (time.perf_counter() - start) / epochs)
    return [{"network": k, "channels": nets[k][0].channels, "parameters": hiner.count_parameters(nets[k][0]),
             "s_per_epoch": round(v, 3), "load_before": os.getloadavg()[0]} for k, v in best.items()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", default="houston2018_crop.mat")
    ap.add_argument("--bpppb", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--timing", action="store_true", help="epoch times of the variants beside an official replica")
    ap.add_argument("--trace", default="", help="log every epoch of each variant's fit to this JSON-lines file")
    ap.add_argument("--every", type=int, default=10, help="--trace: whole-cube PSNR every this many epochs")
    a = ap.parse_args(argv)
    if a.list:
        for k, v in VARIANTS.items():
            print(f"{k:10s} {v}")
        return 0
    torch.set_num_threads(a.threads)
    if a.timing:
        for row in epoch_times(a.variant or ["base", "lib"]):
            print(json.dumps(row), flush=True)
        return 0
    rows = []
    for spec in a.variant or ["base"]:
        if a.trace:
            row = trace(a.scene, a.bpppb, a.epochs, spec, a.seed, a.every, a.trace)
        else:
            row = run(a.scene, a.bpppb, a.epochs, spec, a.seed)
        row["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {a.threads}"
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "style"}), flush=True)
        if a.out:
            path = Path(a.out)
            old = json.loads(path.read_text()) if path.exists() else []
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(old + [row], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
