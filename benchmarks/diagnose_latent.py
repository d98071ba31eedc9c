"""Why the latent model loses to PCA + JPEG 2000: the experiments behind benchmarks/README.md.

    python benchmarks/diagnose_latent.py pca CUBE                      # PSNR_band of exact rank-k PCA
    python benchmarks/diagnose_latent.py ceiling CUBE [--width 16] [--channels 8] [--table] [--latent-lr 0.05]
    python benchmarks/diagnose_latent.py free CUBE [--k 32]            # free A (K x H x W) x B (C x K), Adam
    python benchmarks/diagnose_latent.py encode CUBE --bpppb 0.2 [--model latent|lowrank]
        [--bits-per-latent 5] [--max-channels 8] [--lam 1e-4]          # a real encode with changed knobs
    python benchmarks/diagnose_latent.py hybrid CUBE --bpppb 0.2 [--channels 4] [--first 0]

`ceiling` and `free` fit with no rate term and unquantised latents (3000 steps, cosine schedule):
the best the representation can do, whatever the rate. `encode` is `api.encode` with module
constants changed for the run only. `hybrid` is a prototype (latent synthesis maps plus per-component
pyramids from level `first` up), fitted for rate; it reports the entropy estimate, not a file.
"""
from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hinercodec import api, fit, pipelines  # noqa: E402
from hinercodec.formats import cubeio  # noqa: E402
from hinercodec.models import latent, lowrank  # noqa: E402


def _load(path: str) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, object]:
    cube = cubeio.read_cube(path)
    y, _, _ = api._normalise(cube.data)
    t = api._positions_of(cube.wavelengths, y.shape[0]).astype(np.float32)
    return cube, torch.from_numpy(y), torch.from_numpy(t), cube.wavelengths


def _psnr_band(pred: torch.Tensor, target: torch.Tensor) -> float:
    mse = ((pred.clamp(0, 1) - target) ** 2).mean(dim=(1, 2)).numpy()
    return float(np.mean(10 * np.log10(1 / np.maximum(mse, 1e-30))))


def _train(params: list, groups_lr: list[float], loss_fn, steps: int) -> None:
    opt = torch.optim.Adam([{"params": p, "lr": lr, "base": lr} for p, lr in zip(params, groups_lr)])
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = g["base"] * 0.5 * (1 + math.cos(math.pi * s / steps))
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()


def pca(args) -> str:
    cube = cubeio.read_cube(args.cube).data.astype(np.float64)
    lo, hi = cube.min(axis=(0, 1)), cube.max(axis=(0, 1))
    y = ((cube - lo) / np.where(hi > lo, hi - lo, 1)).reshape(-1, cube.shape[2])
    mu = y.mean(axis=0)
    _, _, vt = np.linalg.svd(y - mu, full_matrices=False)
    out = []
    for k in (2, 4, 8, 12, 16, 24, 32):
        if k > y.shape[1]:
            break
        rec = (y - mu) @ vt[:k].T @ vt[:k] + mu
        mse = ((rec - y) ** 2).mean(axis=0)
        out.append(f"k={k}: {np.mean(10 * np.log10(1 / np.maximum(mse, 1e-30))):.1f}")
    return "PCA rank-k PSNR_band " + ", ".join(out)


def ceiling(args) -> str:
    _, target, t, _ = _load(args.cube)
    c, h, w = target.shape
    torch.manual_seed(0)
    model = latent.LatentNet(latent.make_config(h, w, c, width_scale=args.width, components=32, channels=args.channels))
    table = nn.Parameter(torch.zeros(c, 32))
    if args.table:
        base = model.mix
        model.mix = lambda tt: base(tt) + table
    others = [p for n, p in model.named_parameters() if not n.startswith("latents.")] + [table]
    _train([list(model.latents), others], [args.latent_lr, 1e-2], lambda: ((model(t) - target) ** 2).mean(), args.steps)
    with torch.no_grad():
        return f"latent model, no rate, unquantised: PSNR_band {_psnr_band(model(t), target):.2f}"


def free(args) -> str:
    _, target, _, _ = _load(args.cube)
    c, h, w = target.shape
    torch.manual_seed(0)
    a, b = nn.Parameter(0.01 * torch.randn(args.k, h, w)), nn.Parameter(0.01 * torch.randn(c, args.k))
    _train([[a, b]], [1e-2], lambda: ((torch.einsum("ck,khw->chw", b, a) + 0.5 - target) ** 2).mean(), args.steps)
    with torch.no_grad():
        return f"free rank-{args.k} factorisation: PSNR_band {_psnr_band(torch.einsum('ck,khw->chw', b, a) + 0.5, target):.2f}"


def encode(args) -> str:
    cube = cubeio.read_cube(args.cube)
    pipelines.BITS_PER_LATENT = args.bits_per_latent
    pipelines.MAX_LATENT_CHANNELS = args.max_channels
    pipelines.RateSettings = functools.partial(fit.RateSettings, lam=args.lam)
    r = api.encode(cube.data, cube.wavelengths, api.EncodeOptions(bpppb=args.bpppb, model=args.model))
    keys = ("components", "channels", "latent_gain", "below_target")
    return f"{r.bpppb:.4f} bpppb, PSNR_band {r.psnr_band:.2f} dB, {r.seconds:.0f} s, " + \
        ", ".join(f"{k}={r.stats.get(k)}" for k in keys)


class _Hybrid(nn.Module):
    def __init__(self, lcfg, rcfg, t: torch.Tensor, first: int):
        super().__init__()
        self.a, self.b = latent.LatentNet(lcfg), lowrank.LowRankNet(rcfg)
        self.b.set_band_positions(t)
        k = rcfg.components
        self.latents = list(self.a.latents) + [z for i, z in enumerate(self.b.latents) if i // k >= first]
        for i, z in enumerate(self.b.latents):
            z.requires_grad_(i // k >= first)
        for p in self.b.spectral.parameters():
            p.requires_grad_(False)
        self.quantise = None

    def named_parameters(self, *args, **kw):
        ids = {id(z) for z in self.latents}
        for n, p in super().named_parameters(*args, **kw):
            yield (("latents." + n) if id(p) in ids else n), p

    def maps(self) -> torch.Tensor:
        self.a.quantise = self.b.quantise = self.quantise
        return self.a.maps() + self.b.maps()

    def forward(self, t: torch.Tensor, maps=None) -> torch.Tensor:
        a = self.maps() if maps is None else maps
        return torch.einsum("bk,khw->bhw", self.a.mix(t) + self.b._table_at(t), a) + 0.5


def hybrid(args) -> str:
    _, target, t, _ = _load(args.cube)
    c, h, w = target.shape
    torch.manual_seed(0)
    k = int(min(c, 32, max(8, round(args.bpppb * c / 2))))
    lcfg = latent.make_config(h, w, c, width_scale=16, components=k, channels=args.channels)
    rcfg = lowrank.make_config(h, w, c, width_scale=k)
    model = _Hybrid(lcfg, rcfg, t, args.first)
    weight_bits = 8 * (latent.count_parameters(lcfg) + c * k + rcfg.levels * k)
    target_bits = (args.bpppb * h * w * c * 0.97 - weight_bits * 0.85) / 1.03
    fit.fit_rate(model, target, t, fit.RateSettings(steps=args.steps, target_bits=target_bits, seed=0))
    with torch.no_grad():
        model.quantise = torch.round
        psnr = _psnr_band(model(t), target)
    bits = fit.empirical_bits(model.latents)
    est = (bits * 1.03 + weight_bits * 0.85) / (h * w * c)
    return f"hybrid: estimated {est:.4f} bpppb, PSNR_band {psnr:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    for name in ("pca", "ceiling", "free", "encode", "hybrid"):
        p = sub.add_parser(name)
        p.add_argument("cube")
        p.add_argument("--steps", type=int, default=3000)
        if name == "ceiling":
            p.add_argument("--width", type=float, default=16)
            p.add_argument("--channels", type=int, default=8)
            p.add_argument("--table", action="store_true")
            p.add_argument("--latent-lr", type=float, default=0.05)
        if name == "free":
            p.add_argument("--k", type=int, default=32)
        if name in ("encode", "hybrid"):
            p.add_argument("--bpppb", type=float, default=0.2)
        if name == "encode":
            p.add_argument("--model", default="latent")
            p.add_argument("--bits-per-latent", type=float, default=pipelines.BITS_PER_LATENT)
            p.add_argument("--max-channels", type=int, default=pipelines.MAX_LATENT_CHANNELS)
            p.add_argument("--lam", type=float, default=fit.RateSettings.lam)
        if name == "hybrid":
            p.add_argument("--channels", type=int, default=4)
            p.add_argument("--first", type=int, default=0)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    text = {"pca": pca, "ceiling": ceiling, "free": free, "encode": encode, "hybrid": hybrid}[args.what](args)
    print(f"{args.cube}: {text} ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
