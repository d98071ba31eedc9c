"""Fitting a model to one cube: Adam, warm-up + cosine schedule, several bands per step.

Model-agnostic: a model maps normalised wavelengths t (B,) to bands (B, H, W) in normalised units.
"""
from __future__ import annotations

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


def cam_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean angle (radians) between each flattened decoded band and its original band."""
    p = pred.flatten(1)
    q = target.flatten(1)
    cos = (p * q).sum(1) / (p.norm(dim=1) * q.norm(dim=1)).clamp_min(1e-8)
    return torch.arccos(cos.clamp(-1 + 1e-6, 1 - 1e-6)).mean()


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up over the first `warmup` fraction, then cosine decay to zero."""
    n_warm = max(1, int(total * warmup))
    if step < n_warm:
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
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, settings.warmup))
    gen = torch.Generator().manual_seed(settings.seed)
    model.train()
    for epoch in range(settings.epochs):
        order = torch.randperm(n_bands, generator=gen).to(target.device)
        sum_loss = 0.0
        sum_se = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * batch:(i + 1) * batch]
            pred = model(t[idx])
            ref = target[idx]
            loss = (pred - ref).abs().mean()
            if settings.gamma > 0:
                loss = loss + settings.gamma * cam_loss(pred, ref)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            sum_loss += float(loss.detach()) * idx.numel()
            sum_se += float(((pred.detach().clamp(0, 1) - ref) ** 2).sum())
        if report is not None:
            mse = sum_se / target.numel()
            report(epoch + 1, settings.epochs, sum_loss / n_bands, 10 * math.log10(1 / max(mse, 1e-12)))
    model.eval()
    return model
