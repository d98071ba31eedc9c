"""Fitting a model to one cube: Adam, warm-up + cosine schedule, several bands per step.

Model-agnostic: a model maps normalised wavelengths t (B,) to bands (B, H, W) in normalised units.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn


@dataclass
class FitSettings:
    epochs: int
    batch: int = 4  # bands per optimiser step
    lr: float = 1e-2
    warmup: float = 0.05  # fraction of steps with a linear ramp
    gamma: float = 0.01  # weight of the spectral-angle (CAM) term
    seed: int = 0
    warmup_start: float = 0.0  # lr factor at the start of the warm-up (0: ramp from 1 / n_warm)
    loss: str = "l1+cam"  # "l1", "l1+cam" (L1 + gamma x CAM) or "l1+ssim" (0.7 L1 + 0.3 (1 - SSIM))
    guard: float = 0.0  # > 0: an epoch whose mean loss exceeds guard x the best epoch's rolls back


def cam_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean angle (radians) between each flattened decoded band and its original band."""
    p = pred.flatten(1)
    q = target.flatten(1)
    cos = (p * q).sum(1) / (p.norm(dim=1) * q.norm(dim=1)).clamp_min(1e-8)
    return torch.arccos(cos.clamp(-1 + 1e-6, 1 - 1e-6)).mean()


def ssim(pred: torch.Tensor, target: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of (B, H, W) images with values in [0, 1] (Gaussian window, valid region only; a
    window larger than the image shrinks to it)."""
    size = min(size, pred.shape[-1], pred.shape[-2])
    x = torch.arange(size, dtype=pred.dtype, device=pred.device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :]).view(1, 1, size, size)

    def blur(v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(v, win)

    p, q = pred.unsqueeze(1), target.unsqueeze(1)
    mp, mq = blur(p), blur(q)
    vp, vq, cpq = blur(p * p) - mp**2, blur(q * q) - mq**2, blur(p * q) - mp * mq
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mp * mq + c1) * (2 * cpq + c2)) / ((mp**2 + mq**2 + c1) * (vp + vq + c2))
    return s.mean()


def band_loss(pred: torch.Tensor, ref: torch.Tensor, gamma: float, kind: str = "l1+cam") -> torch.Tensor:
    """HINER's loss: L1 plus gamma times the mean spectral angle between decoded and original bands
    ("l1+cam"); "l1" alone; "l1+ssim": 0.7 L1 + 0.3 (1 - SSIM), the official code's default mix."""
    loss = (pred - ref).abs().mean()
    if kind == "l1+ssim":
        return 0.7 * loss + 0.3 * (1 - ssim(pred, ref))
    if kind == "l1":
        return loss
    if kind != "l1+cam":
        raise ValueError(f"unknown loss {kind!r}")
    return loss + gamma * cam_loss(pred, ref) if gamma > 0 else loss


def lr_factor(step: int, total: int, warmup: float, start: float = 0.0) -> float:
    """Linear warm-up over the first `warmup` fraction (from `start`), then cosine decay to zero."""
    n_warm = max(1, int(total * warmup))
    if step < n_warm:
        if start > 0:
            return start + (1.0 - start) * step / n_warm
        return (step + 1) / n_warm
    progress = (step - n_warm) / max(1, total - n_warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def fit(model: nn.Module, target: torch.Tensor, t: torch.Tensor, settings: FitSettings,
        report: Optional[Callable[[int, int, float, float], None]] = None) -> nn.Module:
    """Fit `model` so that model(t[i]) ~ target[i]; target is (C, H, W) on the model's device.

    `report(epoch, epochs, loss, psnr)` is called once per epoch (psnr over the epoch's batches, on
    the unquantised model: a progress figure, never a reported result).
    """
    n_bands = target.shape[0]
    batch = max(1, min(settings.batch, n_bands))
    steps_per_epoch = math.ceil(n_bands / batch)
    total = settings.epochs * steps_per_epoch
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    damp = [1.0]  # the guard halves it at each roll-back
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: damp[0] * lr_factor(s, total, settings.warmup, settings.warmup_start))
    gen = torch.Generator().manual_seed(settings.seed)
    best_loss, best_state = math.inf, None
    model.train()
    for epoch in range(settings.epochs):
        order = torch.randperm(n_bands, generator=gen).to(target.device)
        sum_loss = 0.0
        sum_se = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * batch:(i + 1) * batch]
            pred = model(t[idx])
            ref = target[idx]
            loss = band_loss(pred, ref, settings.gamma, settings.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            sum_loss += float(loss.detach()) * idx.numel()
            sum_se += float(((pred.detach().clamp(0, 1) - ref) ** 2).sum())
        if report is not None:
            mse = sum_se / target.numel()
            report(epoch + 1, settings.epochs, sum_loss / n_bands, 10 * math.log10(1 / max(mse, 1e-12)))
        if settings.guard > 0:
            # Divergence guard: one band a step at a high learning rate now and then jumps out of
            # its basin (Samson, 156 bands: 26 -> 16 dB in one epoch, never fully recovered). Keep
            # the weights and optimiser state of the best epoch; an epoch whose mean loss is over
            # guard x the best returns to them and halves the learning rate for the rest of the fit.
            epoch_loss = sum_loss / n_bands
            if epoch_loss < best_loss:
                best_loss = epoch_loss
                best_state = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
            elif epoch_loss > settings.guard * best_loss and best_state is not None:
                model.load_state_dict(best_state[0])
                opt.load_state_dict(best_state[1])
                damp[0] *= 0.5
    model.eval()
    return model


@dataclass
class RateSettings:
    """Rate-distortion fitting of a model with entropy-coded integer latents (models.latent)."""

    steps: int
    target_bits: float  # latent bits to aim at; the rate weight follows it by dual ascent
    lr: float = 1e-2  # network weights
    latent_lr: float = 0.5  # latents live in units of the quantisation step: they need big moves
    ste_from: float = 0.8  # noise proxy before this fraction of the steps, straight-through rounding after
    lam: float = 1e-4  # initial rate weight (per bit per value, against MSE)
    seed: int = 0


def laplace_bits(z_hat: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Bits of integer latents under a zero-mean Laplace of scale exp(log_scale) (mass of each bin)."""
    b = torch.exp(log_scale).clamp_min(0.02)

    def cdf(v: torch.Tensor) -> torch.Tensor:
        return 0.5 + 0.5 * torch.sign(v) * (1 - torch.exp(-v.abs() / b))

    p = (cdf(z_hat + 0.5) - cdf(z_hat - 0.5)).clamp_min(1e-9)
    return -torch.log2(p).sum()


def empirical_bits(latents: list[torch.Tensor]) -> float:
    """Zeroth-order entropy (bits) of the rounded latents, each grid with its own histogram."""
    total = 0.0
    for z in latents:
        _, counts = torch.unique(torch.round(z.detach()), return_counts=True)
        p = counts.double() / counts.sum()
        total += float(-(counts.double() * torch.log2(p)).sum())
    return total


def refit_weights(model: nn.Module, target: torch.Tensor, t: torch.Tensor, steps: int, lr: float = 2e-3) -> nn.Module:
    """Adapt the network weights to latents that were frozen at new integer values (rate control)."""
    for z in model.latents:
        z.requires_grad_(False)
    others = [p for n, p in model.named_parameters() if not n.startswith("latents.")]
    opt = torch.optim.Adam(others, lr=lr)
    model.quantise = None
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = ((model(t) - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for z in model.latents:
        z.requires_grad_(True)
    model.eval()
    return model


def fit_rate(model: nn.Module, target: torch.Tensor, t: torch.Tensor, settings: RateSettings,
             report: Optional[Callable[[int, int, float, float], None]] = None) -> nn.Module:
    """Minimise MSE + lam * bits / values over all bands at once; lam tracks `target_bits`.

    Quantisation is simulated by additive uniform noise first (a smooth proxy), then by rounding
    with a straight-through gradient, so the final latents are trained as they will be coded.
    """
    torch.manual_seed(settings.seed)
    latents = list(model.latents)
    others = [p for n, p in model.named_parameters() if not n.startswith("latents.")]
    log_scales = nn.Parameter(torch.zeros(len(latents), 1, device=target.device))  # a Laplace scale per grid
    opt = torch.optim.Adam([
        {"params": latents, "lr": settings.latent_lr, "base": settings.latent_lr},
        {"params": others + [log_scales], "lr": settings.lr, "base": settings.lr},
    ])
    n_values = target.numel()
    lam = settings.lam
    ste_step = int(settings.steps * settings.ste_from)
    every = max(1, settings.steps // 100)
    model.train()
    for step in range(settings.steps):
        if step < ste_step:
            model.quantise = lambda z: z + (torch.rand_like(z) - 0.5)
        else:
            model.quantise = lambda z: z + (torch.round(z) - z).detach()
        factor = 0.5 * (1 + math.cos(math.pi * step / settings.steps))
        for group in opt.param_groups:
            group["lr"] = group["base"] * factor
        pred = model(t)
        mse = ((pred - target) ** 2).mean()
        bits = sum(laplace_bits(model.quantise(z), s.view(1, -1, 1, 1)) for z, s in zip(latents, log_scales))
        loss = mse + lam * bits / n_values
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # Dual ascent: raise the rate weight while the estimate is over the target, lower it under.
        # Once latents are rounded, the empirical entropy of the integers (what the coder will
        # spend, near enough) replaces the Laplace estimate, so the file lands on the target.
        spent = float(bits.detach()) if step < ste_step else empirical_bits(latents)
        ratio = spent / max(settings.target_bits, 1.0)
        lam = float(min(max(lam * math.exp(0.05 * (ratio - 1.0)), 1e-9), 1.0))
        if report is not None and ((step + 1) % every == 0 or step + 1 == settings.steps):
            report(step + 1, settings.steps, float(loss.detach()),
                   10 * math.log10(1 / max(float(mse.detach()), 1e-12)))
    model.quantise = None
    model.eval()
    return model


def fit_quantised(model: nn.Module, target: torch.Tensor, t: torch.Tensor, settings: FitSettings,
                  dequantised: Callable[[torch.Tensor], torch.Tensor]) -> nn.Module:
    """Quantisation-aware fine-tuning: each step runs forward and backward with the parameters
    replaced by `dequantised(p)` (what the file will hold) and applies the gradient to the float
    parameters (straight-through), at a constant small learning rate with a cosine decay."""
    n_bands = target.shape[0]
    batch = max(1, min(settings.batch, n_bands))
    steps_per_epoch = math.ceil(n_bands / batch)
    total = max(1, settings.epochs * steps_per_epoch)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=settings.lr)
    gen = torch.Generator().manual_seed(settings.seed)
    model.train()
    step = 0
    for _ in range(settings.epochs):
        order = torch.randperm(n_bands, generator=gen).to(target.device)
        for i in range(steps_per_epoch):
            idx = order[i * batch:(i + 1) * batch]
            floats = [p.detach().clone() for p in params]
            with torch.no_grad():
                for p in params:
                    p.copy_(dequantised(p))
            pred = model(t[idx])
            ref = target[idx]
            loss = band_loss(pred, ref, settings.gamma, settings.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                for p, f in zip(params, floats):
                    p.copy_(f)
            for group in opt.param_groups:
                group["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            opt.step()
            step += 1
    model.eval()
    return model
