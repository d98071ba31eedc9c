"""Per-model encoding pipelines: size the network from the budget, fit, quantise, land the rate.

Each pipeline turns a prepared `Job` (normalised cube, band positions, byte budget, options) into
the bytes of a .hnr file whose size is inside PROTOCOL.md's rate window, or raises RequestError.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from . import __version__
from .errors import RequestError
from .fit import FitSettings, RateSettings, fit, fit_rate, refit_weights
from .formats.hnrfile import HnrFile, pack, unpack
from .formats.tensors import QuantTensor
from .models import build, family, latent, lowrank
from . import transform as transform_codec
from .quant import load_quantized, quantize_array, quantize_integer, quantize_model
from .ratecontrol import Budget, fit_step_scale, params_for_budget, width_for_params

MAX_LATENT_CHANNELS = 8
BITS_PER_LATENT = 5.0  # channels are added when the latent budget would give each latent more than this
LATENT_LADDER = ((16, 32), (12, 10), (8, 8), (6, 6), (4, 4))  # (synthesis width, most components K)
WEIGHT_SHARE = 0.35
BITS_PER_PARAM_GUESS = 0.85  # x bits: entropy-coded size of a fitted network's quantised weights


@dataclass
class Job:
    shape: tuple[int, int, int]
    dtype: np.dtype
    offset: np.ndarray  # float32 [C]
    scale: np.ndarray  # float32 [C]
    wavelengths: Optional[np.ndarray]
    target: torch.Tensor  # (C, H, W) normalised, on the fitting device
    t: torch.Tensor  # (C,) band positions, on the fitting device
    budget: Budget
    bits: int
    epochs: int
    seed: int
    report: Callable  # (stage, step, total, loss, psnr, note) -> None
    effort: int = 3  # the transform model's search breadth (the others use epochs)
    metric: str = "psnr_band"  # what the transform model maximises (transform.METRICS)

    def pack(self, config: dict, tensors: list[QuantTensor]) -> bytes:
        h, w, c = self.shape
        return pack(HnrFile(height=h, width=w, bands=c, dtype=np.dtype(self.dtype), band_offset=self.offset,
                            band_scale=self.scale,
                            wavelengths=None if self.wavelengths is None else np.asarray(self.wavelengths, np.float64),
                            model_config=config, tensors=tensors, meta={"encoder": f"hinerc {__version__}"}))

    def bpppb_of(self, n_bytes: int) -> float:
        return 8.0 * n_bytes / (self.shape[0] * self.shape[1] * self.shape[2])

    def too_low(self, model: str, smallest: int) -> RequestError:
        h, w, c = self.shape
        return RequestError(f"the rate target is too low for a {h} x {w} x {c} cube: the smallest {model} file "
                            f"is about {self.bpppb_of(smallest):.3f} bpppb")


def encode_hiner(job: Job) -> tuple[bytes, dict]:
    """HINER: width from the parameter budget, fit, then the quantisation step that fits the window."""
    torch.manual_seed(job.seed)  # the probe's random weights set its coded size: same seed, same file
    fam = family("hiner")
    probe = fam.module(fam.make_config(*job.shape, 4.0))

    def pack_model(model: torch.nn.Module, step_scale: float) -> bytes:
        return job.pack(model.cfg.to_dict(), quantize_model(model, job.bits, step_scale=step_scale))

    # Bytes that do not depend on the weights (header, per-band data, config, tables).
    overhead = len(pack_model(probe, 1.0)) - fam.count_parameters(probe.cfg) * job.bits // 8
    bits_per_param = BITS_PER_PARAM_GUESS * job.bits
    size = 0
    for attempt in range(3):
        width = width_for_params(fam, job.shape, params_for_budget(job.budget, overhead + 64, bits_per_param))
        if width is None:
            raise job.too_low("hiner", len(pack_model(probe, 4.0)))
        torch.manual_seed(job.seed)
        model = fam.module(fam.make_config(*job.shape, width)).to(job.target.device)
        n_model = fam.count_parameters(model.cfg)
        fit(model, job.target, job.t, FitSettings(epochs=job.epochs, seed=job.seed),
            lambda e, n, loss, psnr: job.report("fit", e, n, loss, psnr, f"{n_model} parameters"))
        k, size = fit_step_scale(lambda s: len(pack_model(model, s)), job.budget)
        if job.budget.floor <= size <= job.budget.bytes:
            return pack_model(model, k), {"parameters": n_model, "epochs": job.epochs, "step_scale": k,
                                          "attempts": attempt + 1}
        # Outside the window: refit with the measured cost per parameter (at full precision).
        bits_per_param = max(1.0, (len(pack_model(model, 1.0)) - overhead) * 8.0 / n_model)
        job.report("size", attempt + 1, 3, float("nan"), float("nan"),
                   f"refitting: {size} bytes vs window {job.budget.floor}..{job.budget.bytes}")
    raise RequestError(f"could not meet the rate target for this cube (last try: {job.bpppb_of(size):.4f} bpppb)")


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


def encode_transform(job: Job) -> tuple[bytes, dict]:
    """Transform model: search K, the step and the band weights for the budget (estimated sizes),
    then write the file and check its true size; re-aim below the budget if it came out over."""
    h, w, c = job.shape
    cube = job.target.detach().cpu().numpy().astype(np.float64)

    def pack_payload(config: dict, payload: bytes) -> bytes:
        return job.pack(config, [QuantTensor(shape=(len(payload),), bits=8,
                                             symbols=np.frombuffer(payload, np.uint8).astype(np.int64),
                                             offset=np.zeros(1, np.float32), step=np.ones(1, np.float32),
                                             name="payload")])

    noise = np.random.default_rng(0).bytes(1000)  # incompressible, like a real payload: stored as it is
    overhead = len(pack_payload(transform_codec.probe_config(h, w, c), noise)) - 1000  # all but the payload
    room = 0.99 * (job.budget.bytes - overhead)  # the size estimate is within ~1 %
    fill = 0.995 if job.effort >= 3 else 0.97  # how close under the budget a file must land
    best, weights, data = None, None, b""
    for attempt in range(4):
        found = transform_codec.encode_cube(
            cube, 8.0 * room, job.effort,
            lambda stage, p, n, score: job.report("search", p + 1, n, float("nan"), score, "K, step, band weights"),
            weights, job.metric)
        if found is None:
            raise job.too_low("transform", overhead + int(transform_codec.smallest_bits(cube) / 8) + 1)
        config, payload, score, weights = found
        data = pack_payload(config, payload)
        if len(data) <= job.budget.bytes and (best is None or len(data) > len(best[0])):
            best = (data, {"components": config["components"], "levels": config["levels"],
                           "step_code": config["step_code"], f"encoder_{job.metric}": round(score, 3),
                           "attempts": attempt + 1})
        if job.budget.floor <= len(data) <= job.budget.bytes and len(data) >= fill * job.budget.bytes:
            break
        # Re-aim (only the last pass runs again): over the budget, or further under it than `fill`.
        room += 0.9 * (job.budget.bytes - len(data)) if len(data) <= job.budget.bytes else \
            -(len(data) - job.budget.bytes) - 8 * (attempt + 1)
        job.report("size", attempt + 1, 4, float("nan"), float("nan"),
                   f"{len(data)} bytes for a budget of {job.budget.bytes}: re-aiming")
    if best is None:
        raise RequestError(f"could not meet the rate target for this cube (last try: {job.bpppb_of(len(data))} bpppb)")
    if len(best[0]) < job.budget.floor:
        best[1]["below_target"] = True  # every component already coded near-losslessly
    return best


PIPELINES = {"hiner": encode_hiner, "latent": encode_latent, "lowrank": encode_lowrank,
             "transform": encode_transform}

# --effort 1..9 -> epochs (passes over every band). The latent model's epoch is one optimiser step
# over the whole cube, far cheaper than a HINER epoch, so it takes many more.
EFFORT_EPOCHS = {
    "hiner": {1: 30, 2: 100, 3: 300, 4: 500, 5: 800, 6: 1200, 7: 1800, 8: 2500, 9: 3500},
    "latent": {1: 500, 2: 1500, 3: 3000, 4: 5000, 5: 8000, 6: 12000, 7: 16000, 8: 24000, 9: 32000},
    "lowrank": {1: 500, 2: 1500, 3: 3000, 4: 5000, 5: 8000, 6: 12000, 7: 16000, 8: 24000, 9: 32000},
    "transform": {e: 0 for e in range(1, 10)},  # no training: --effort sets the search (transform.EFFORT_*)
}


def default_epochs(model: str, effort: int, shape: tuple[int, int, int]) -> int:
    """Epochs for --effort: the table's count for a cube of up to REF_PIXELS pixels, fewer (down to a
    quarter) for larger images so that a default encode stays within minutes on two CPU cores (an
    epoch's cost grows with H x W)."""
    base = EFFORT_EPOCHS[model][effort]
    factor = min(1.0, max(0.25, REF_PIXELS / (shape[0] * shape[1])))
    return max(1, int(round(base * factor)))


REF_PIXELS = 128 * 128  # the Houston crop: the table's counts are sized for it

