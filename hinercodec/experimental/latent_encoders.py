"""Encoders of the experimental latent and lowrank models (hinerc 0.1-0.2), kept out of the main
path: reached only by `--model latent` / `--model lowrank`. Their decoders are the networks in
hinercodec/codecs/networks (files of 0.1-0.2 still decode); the default transform codec beats them
at every measured point (benchmarks/README.md).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..codecs.base import Budget, Job
from ..codecs.networks import latent, lowrank
from ..codecs.networks.encoder import NetJob
from ..codecs.networks.fit import RateSettings, fit_rate, refit_weights
from ..codecs.networks.models import build, family
from ..codecs.networks.quant import load_quantized, quantize_array, quantize_integer
from ..errors import RequestError
from ..formats.hnrfile import unpack

MAX_LATENT_CHANNELS = 8
BITS_PER_LATENT = 5.0  # channels are added when the latent budget would give each latent more than this
LATENT_LADDER = ((16, 32), (12, 10), (8, 8), (6, 6), (4, 4))  # (synthesis width, most components K)
WEIGHT_SHARE = 0.35


class _NetView:
    """The job with the torch tensors, bits and epochs of its NetJob (what these encoders read)."""

    def __init__(self, job: Job, model: str):
        net = NetJob.of(job, model)
        self._job = job
        self.target, self.t, self.bits, self.epochs = net.target, net.t, net.bits, net.epochs

    def __getattr__(self, name: str):
        return getattr(self._job, name)


def pack_latent(job: Job, model: torch.nn.Module, gain: float) -> bytes:
    """Latents scaled by `gain` and rounded (what reads them compensates: the latent model's first
    synthesis layer divided by the gain, the low-rank model's steps), weights quantised."""
    tensors = []
    for name, p in model.named_parameters():
        w = p.detach().cpu().numpy().astype(np.float64)
        if name.startswith("latents."):
            tensors.append(quantize_integer(np.rint(w * gain)))
        else:
            if name == "synth.0.weight":
                w = w / gain
            elif name == "log_step":
                w = w - math.log(gain)
            tensors.append(quantize_array(w, job.bits, per_channel=False))
    return job.pack(model.cfg.to_dict(), tensors)


def _gain_for_window(size_at: Callable[[float], int], budget: Budget) -> tuple[float, int]:
    """The largest latent gain whose file fits the budget (size grows with the gain).

    Bisection on log gain; returns (gain, size) of the biggest file found under the budget, which
    may still be under the window's floor when the model cannot fill the budget.
    """
    lo, hi = math.log(0.05), math.log(256.0)
    best: tuple[float, int] | None = None
    for _ in range(18):
        mid = (lo + hi) / 2
        s = size_at(math.exp(mid))
        if s <= budget.bytes:
            if best is None or s > best[1]:
                best = (math.exp(mid), s)
            lo = mid
            if s >= budget.floor and budget.bytes - s <= 0.005 * budget.bytes:
                break  # within half a percent of the budget: close enough
        else:
            hi = mid
    return best if best is not None else (math.exp(lo), size_at(math.exp(lo)))


def _mse(job: Job, data: bytes) -> float:
    """MSE (normalised units) of the network stored in `data`, as the decoder will run it."""
    f = unpack(data)
    model = build(f.model_config)
    load_quantized(model, f.tensors)
    model.to(job.target.device).eval()
    if hasattr(model, "set_band_positions"):
        model.set_band_positions(job.t)
    with torch.no_grad():
        maps = model.maps()
        return float(sum(((model(job.t[i:i + 1], maps).clamp(0, 1) - job.target[i:i + 1]) ** 2).sum()
                         for i in range(len(job.t))) / job.target.numel())


def _latent_config(job: Job) -> tuple[latent.LatentConfig, float]:
    """The network for the budget, and the latent bits to aim at.

    Components follow the bits per pixel (about one map per 2 bits, 12..32, as PCA needs more
    components at higher rates); the synthesis is the largest of the ladder whose weights take at
    most WEIGHT_SHARE of the budget; fine grids are dropped when they cannot get about 1.5 bits a
    latent, and channels are added when one would need more than ~5 bits a latent.
    """
    h, w, c = job.shape
    components = int(min(32, max(12, round(job.budget.bytes * 8 / (h * w) / 2))))

    def weight_bytes(cfg: latent.LatentConfig) -> int:
        probe = latent.LatentNet(cfg)
        return len(job.pack(cfg.to_dict(), [quantize_array(p.detach().numpy(), job.bits, False)
                                            for n, p in probe.named_parameters() if not n.startswith("latents.")]))

    for width, k_max in LATENT_LADDER:
        cfg = latent.make_config(h, w, c, width_scale=width, components=min(components, k_max))
        weights = weight_bytes(cfg)
        if weights <= WEIGHT_SHARE * job.budget.bytes:
            break
    latent_bits = (job.budget.bytes * 0.97 - weights - 16) * 8
    while cfg.first_level < cfg.levels - 1 and latent_bits < 1.5 * latent.latent_count(cfg):
        cfg.first_level += 1
    if latent_bits < 1.2 * latent.latent_count(cfg):
        raise job.too_low("latent", int(weights + latent.latent_count(cfg) / 8 * 1.2))
    cfg.channels = int(min(MAX_LATENT_CHANNELS,
                           max(1, math.ceil(latent_bits / (BITS_PER_LATENT * latent.latent_count(cfg))))))
    return cfg, latent_bits / 1.03  # the coders spend a little over the entropy (tables, Huffman rounding)


def encode_latent(job: Job) -> tuple[bytes, dict]:
    """Latent model: fit for rate and distortion at the budget, then check the window."""
    job = _NetView(job, "latent")
    torch.manual_seed(job.seed)  # the probes' random weights set the bit target: same seed, same file
    cfg, target_bits = _latent_config(job)
    return _encode_for_rate(job, cfg, target_bits, latent)


def _lowrank_config(job: Job) -> tuple[lowrank.LowRankConfig, float]:
    """K from the bits per pixel (about one component per 2 bits a pixel, 8..32, at most C), the
    rest of the budget to the latents."""
    h, w, c = job.shape
    k = int(min(c, 32, max(8, round(job.budget.bytes * 8 / (h * w) / 2))))
    cfg = lowrank.make_config(h, w, c, width_scale=k)
    probe = lowrank.LowRankNet(cfg)
    weights = len(job.pack(cfg.to_dict(), [quantize_array(p.detach().numpy(), job.bits, False)
                                           for n, p in probe.named_parameters() if not n.startswith("latents.")]))
    latent_bits = (job.budget.bytes * 0.97 - weights - 16) * 8
    if latent_bits < 0.05 * lowrank.latent_count(cfg):
        raise job.too_low("lowrank", int(weights + lowrank.latent_count(cfg) * 0.05 / 8))
    return cfg, latent_bits / 1.03


def encode_lowrank(job: Job) -> tuple[bytes, dict]:
    """Low-rank model: fit for rate and distortion at the budget, then check the window."""
    job = _NetView(job, "lowrank")
    torch.manual_seed(job.seed)
    cfg, target_bits = _lowrank_config(job)
    return _encode_for_rate(job, cfg, target_bits, lowrank)


def _encode_for_rate(job: Job, cfg, target_bits: float, mod) -> tuple[bytes, dict]:
    """Fit a model with entropy-coded integer latents for the budget; `mod` is its module
    (models.latent or models.lowrank: latent_count, count_parameters)."""
    best = None  # (bytes, stats) of the largest file under the budget
    for attempt in range(3):
        torch.manual_seed(job.seed)
        model = family(cfg.model).module(cfg).to(job.target.device)
        if hasattr(model, "set_band_positions"):
            model.set_band_positions(job.t)
        fit_rate(model, job.target, job.t, RateSettings(steps=job.epochs, target_bits=target_bits, seed=job.seed),
                 lambda e, n, loss, psnr: job.report("fit", e, n, loss, psnr, f"{mod.latent_count(cfg)} latents"))
        gain, size = 1.0, len(pack_latent(job, model, 1.0))
        small = pack_latent(job, model, 1.0) if size < job.budget.floor else None
        if size > job.budget.bytes or small is not None:
            # Outside the window: rescale the latents to the gain that fits, freeze them at their new
            # integers and let the weights adapt (rounding at a new scale alone costs several dB).
            # (aiming 1.5 % under the budget: refitted weights code to a slightly different size)
            room = Budget(bytes=int(0.985 * job.budget.bytes), floor=job.budget.floor)
            gain, size = _gain_for_window(lambda g: len(pack_latent(job, model, g)), room)
            model.rescale_latents(gain)
            with torch.no_grad():
                for z in model.latents:
                    z.copy_(torch.round(z))
            job.report("size", attempt + 1, 3, float("nan"), float("nan"), f"latents rescaled by {gain:.3f}")
            refit_weights(model, job.target, job.t, max(20, job.epochs // 10))
            size = len(pack_latent(job, model, 1.0))
        stats = {"latents": mod.latent_count(cfg), "epochs": job.epochs, "latent_gain": gain,
                 "components": cfg.components, "channels": getattr(cfg, "channels", cfg.components),
                 "first_level": getattr(cfg, "first_level", 0),
                 "parameters": mod.count_parameters(cfg) + mod.latent_count(cfg), "attempts": attempt + 1}
        if job.budget.floor <= size <= job.budget.bytes:
            data = pack_latent(job, model, 1.0)
            if small is not None and _mse(job, small) < 0.5 * _mse(job, data):
                # The rate window is the contract, but not at any price: when filling it by rescaling
                # would lose over 3 dB, the smaller (and better) file is kept and reported as such.
                best = (small, {**stats, "latent_gain": 1.0, "below_target": True})
                break
            return data, stats
        if size <= job.budget.bytes and (best is None or size > len(best[0])):
            best = (pack_latent(job, model, 1.0), {**stats, "below_target": True})
        if size < job.budget.floor:
            # Under the window: the latents could not use the budget; give them more room.
            if getattr(cfg, "channels", MAX_LATENT_CHANNELS) >= MAX_LATENT_CHANNELS:
                break
            cfg.channels = min(MAX_LATENT_CHANNELS, 2 * cfg.channels)
        target_bits *= max(0.5, min(2.0, job.budget.bytes * 0.97 / max(1.0, size)))
        job.report("size", attempt + 1, 3, float("nan"), float("nan"),
                   f"refitting: {size} bytes vs window {job.budget.floor}..{job.budget.bytes}")
    if best is not None:
        # The model cannot spend the whole budget on this cube (a very high rate for its size):
        # a smaller file is better than no file; the summary shows its true rate.
        job.report("size", 3, 3, float("nan"), float("nan"),
                   f"the latent model cannot use more than {job.bpppb_of(len(best[0])):.4f} bpppb here")
        return best
    raise RequestError(f"could not meet the rate target for this cube (last try: {job.bpppb_of(size):.4f} bpppb)")
