"""Encoders of the network codecs: size the network from the budget, fit, quantise, land the rate.

Each turns a prepared `Job` (codecs/base.py) into the bytes of a .hnr file whose size is inside
PROTOCOL.md's rate window, or raises RequestError. The latent and lowrank encoders (experimental)
live in hinercodec/experimental/latent_encoders.py; their decoders are the same networks as here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...device import resolve_device
from ...errors import RequestError
from ..base import Job
from .fit import FitSettings, fit, fit_quantised
from .hiner import HinerStyle
from . import hiner as hiner_net
from .models import family
from .quant import quantize_array, quantize_best, quantize_model
from .ratecontrol import fit_step_scale, params_for_budget, width_for_params

BITS_PER_PARAM_GUESS = 0.85  # x bits: entropy-coded size of a fitted network's quantised weights


@dataclass
class NetJob:
    """The torch side of a job: the normalised cube and positions on the fitting device."""

    job: Job
    target: torch.Tensor  # (C, H, W)
    t: torch.Tensor  # (C,)
    bits: int
    epochs: int

    @classmethod
    def of(cls, job: Job, model: str) -> "NetJob":
        opts = job.options
        device = resolve_device(opts.device)
        epochs = opts.epochs if opts.epochs is not None else default_epochs(model, opts.effort, job.shape)
        return cls(job, torch.from_numpy(np.ascontiguousarray(job.target, np.float32)).to(device),
                   torch.from_numpy(np.asarray(job.t, np.float32)).to(device), opts.bits, epochs)


def quantize_model_tensor(p: torch.Tensor, bits: int, per_channel):
    w = p.detach().cpu().numpy()
    return quantize_best(w, bits) if per_channel == "best" else quantize_array(w, bits, bool(per_channel))


def hiner_fit_settings(epochs: int, seed: int, style: HinerStyle | None = None) -> FitSettings:
    st = hiner_net.STYLE if style is None else style
    return FitSettings(epochs=epochs, batch=st.batch, lr=st.lr, warmup=st.warmup, gamma=st.gamma, seed=seed,
                       warmup_start=st.warmup_start, loss=st.loss, guard=st.guard)


def fit_hiner(cfg, net: NetJob, job: Job, n_model: int) -> torch.nn.Module:
    """Fit the network of `cfg`; an embedding model (cfg.embed) is fitted behind a PE + MLP that
    generates its embeddings, then stores them (and may tune them further, STYLE.tune_epochs)."""
    st = hiner_net.STYLE
    settings = hiner_fit_settings(net.epochs, job.seed)

    def report(e, n, loss, psnr):
        job.report("fit", e, n, loss, psnr, f"{n_model} parameters")

    if not cfg.embed:
        return fit(hiner_net.HinerNet(cfg).to(net.target.device), net.target, net.t, settings, report)
    trained = fit(hiner_net.HinerNet(hiner_net.training_config(cfg, st.train_hidden)).to(net.target.device),
                  net.target, net.t, settings, report)
    model = hiner_net.to_stored(trained, cfg, net.t)
    tune = int(round(st.tune_epochs * net.epochs))
    if tune > 0:
        fit(model, net.target, net.t, FitSettings(epochs=tune, batch=settings.batch, lr=settings.lr * 0.1,
                                                  warmup=0.0, gamma=settings.gamma, seed=job.seed + 1,
                                                  loss=settings.loss))
    return model


def encode_hiner(job: Job) -> tuple[bytes, dict]:
    """HINER: width from the parameter budget, fit, then the quantisation step that fits the window."""
    net = NetJob.of(job, "hiner")
    torch.manual_seed(job.seed)  # the probe's random weights set its coded size: same seed, same file
    fam = family("hiner")
    probe = fam.module(fam.make_config(*job.shape, 4.0))

    def pack_model(model: torch.nn.Module, step_scale: float) -> bytes:
        per_channel = "best" if hiner_net.STYLE.quant == "best" else False
        return job.pack(model.cfg.to_dict(), quantize_model(model, net.bits, per_channel, step_scale=step_scale))

    # Bytes that do not depend on the weights (header, per-band data, config, tables).
    overhead = len(pack_model(probe, 1.0)) - fam.count_parameters(probe.cfg) * net.bits // 8
    bits_per_param = BITS_PER_PARAM_GUESS * net.bits
    size = 0
    for attempt in range(3):
        width = width_for_params(fam, job.shape, params_for_budget(job.budget, overhead + 64, bits_per_param))
        if width is None:
            raise job.too_low("hiner", len(pack_model(probe, 4.0)))
        torch.manual_seed(job.seed)
        cfg = fam.make_config(*job.shape, width)
        n_model = fam.count_parameters(cfg)
        model = fit_hiner(cfg, net, job, n_model)
        qat = int(round(hiner_net.STYLE.qat_epochs * net.epochs))
        if qat > 0:
            st = hiner_net.STYLE
            per_channel = "best" if st.quant == "best" else False

            def dequantised(p: torch.Tensor) -> torch.Tensor:
                qt = quantize_model_tensor(p, net.bits, per_channel)
                return torch.from_numpy(qt.dequantize()).to(p.device, p.dtype)

            fit_quantised(model, net.target, net.t,
                          FitSettings(epochs=qat, batch=st.batch, lr=st.lr * st.qat_lr, gamma=st.gamma,
                                      seed=job.seed + 2, loss=st.loss), dequantised)
        k, size = fit_step_scale(lambda s: len(pack_model(model, s)), job.budget)
        if job.budget.floor <= size <= job.budget.bytes:
            return pack_model(model, k), {"parameters": n_model, "epochs": net.epochs, "step_scale": k,
                                          "attempts": attempt + 1}
        # Outside the window: refit with the measured cost per parameter (at full precision).
        bits_per_param = max(1.0, (len(pack_model(model, 1.0)) - overhead) * 8.0 / n_model)
        job.report("size", attempt + 1, 3, float("nan"), float("nan"),
                   f"refitting: {size} bytes vs window {job.budget.floor}..{job.budget.bytes}")
    raise RequestError(f"could not meet the rate target for this cube (last try: {job.bpppb_of(size):.4f} bpppb)")



# --effort 1..9 -> epochs (passes over every band). The latent model's epoch is one optimiser step
# over the whole cube, far cheaper than a HINER epoch, so it takes many more.
EFFORT_EPOCHS = {
    "hiner": {1: 30, 2: 100, 3: 300, 4: 500, 5: 800, 6: 1200, 7: 1800, 8: 2500, 9: 3500},
    "latent": {1: 500, 2: 1500, 3: 3000, 4: 5000, 5: 8000, 6: 12000, 7: 16000, 8: 24000, 9: 32000},
    "lowrank": {1: 500, 2: 1500, 3: 3000, 4: 5000, 5: 8000, 6: 12000, 7: 16000, 8: 24000, 9: 32000},
}


def default_epochs(model: str, effort: int, shape: tuple[int, int, int]) -> int:
    """Epochs for --effort: the table's count for a cube of up to REF_PIXELS pixels, fewer (down to a
    quarter) for larger images so that a default encode stays within minutes on two CPU cores (an
    epoch's cost grows with H x W)."""
    base = EFFORT_EPOCHS[model][effort]
    factor = min(1.0, max(0.25, REF_PIXELS / (shape[0] * shape[1])))
    return max(1, int(round(base * factor)))


REF_PIXELS = 128 * 128  # the Houston crop: the table's counts are sized for it

