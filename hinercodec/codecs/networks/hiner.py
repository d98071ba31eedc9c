"""HINER: wavelength -> positional encoding -> MLP -> per-band embedding -> NeRV decoder -> band.

The network is a function of the band's normalised wavelength t in [0, 1]; it returns the band,
normalised to [0, 1], at the true H x W size (the decoder's output is cropped: nothing outside the
image is ever scored or stored). Everything needed to rebuild it is in `HinerConfig`, which is
written to the .hnr file as JSON; the weights are the quantised parameters in `named_parameters()`
order.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .layers import PositionalEncoding, UpsampleBlock


@dataclass
class HinerConfig:
    height: int
    width: int
    grid: tuple[int, int]  # embedding grid (h, w); h * prod(strides) >= height
    strides: list[int]  # upsampling factor of each decoder stage
    channels: list[int]  # embedding channels, then the output channels of each stage
    mlp_hidden: int  # width of the MLP's hidden layer (the rank of the spectral embedding)
    pe_freqs: int
    pe_base: float
    kernel: int = 3
    head_kernel: int = 3
    activation: str = "gelu"
    model: str = field(default="hiner")
    # hinerc 0.5 keys; their defaults rebuild the network of older files, whose MODL lacks them.
    stem: int = 0  # > 0: a 1x1 convolution c_0 -> stem + gelu on the embedding grid before the stages
    out: str = "linear"  # output map: "linear" (x + 0.5) or "tanh" (tanh(x) / 2 + 0.5)
    embed: bool = False  # True: the file stores each band's embedding (as the paper), not PE + MLP
    bands: int = 0  # number of stored embeddings (embed only)

    def to_dict(self) -> dict:
        """The MODL JSON. The 0.5 keys are written only when they differ from their defaults, so a
        network of the 0.4 kind is written exactly as 0.4 wrote it (and 0.4 decoders read it)."""
        d = asdict(self)
        d["grid"] = list(self.grid)
        for key, default in OPTIONAL_KEYS.items():
            if d[key] == default:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HinerConfig":
        d = dict(d)
        d["grid"] = tuple(d["grid"])
        return cls(**d)


OPTIONAL_KEYS = {"stem": 0, "out": "linear", "embed": False, "bands": 0}


class HinerNet(nn.Module):
    def __init__(self, cfg: HinerConfig):
        super().__init__()
        if cfg.activation != "gelu":
            raise ValueError(f"unsupported activation {cfg.activation!r}")
        if cfg.out not in ("linear", "tanh"):
            raise ValueError(f"unsupported output map {cfg.out!r}")
        if len(cfg.channels) != len(cfg.strides) + 1:
            raise ValueError("channels must have one entry more than strides")
        self.cfg = cfg
        gh, gw = cfg.grid
        c0 = cfg.channels[0]
        self.pe = PositionalEncoding(cfg.pe_freqs, cfg.pe_base)
        if cfg.embed:
            if cfg.bands < 1:
                raise ValueError("an embedding model needs bands >= 1")
            self.embeddings = nn.Parameter(torch.zeros(cfg.bands, c0, gh, gw))
            self.register_buffer("positions", torch.linspace(0, 1, cfg.bands), persistent=False)
            self.mlp = None
        else:
            self.mlp = nn.Sequential(
                nn.Linear(self.pe.dim, cfg.mlp_hidden),
                nn.GELU(),
                nn.Linear(cfg.mlp_hidden, c0 * gh * gw),
            )
        self.stem = None
        if cfg.stem > 0:
            self.stem = nn.Sequential(nn.Conv2d(c0, cfg.stem, 1), nn.GELU())
        self.stages = nn.ModuleList(
            UpsampleBlock(cin, cout, s, cfg.kernel)
            for cin, cout, s in zip(stage_inputs(cfg), cfg.channels[1:], cfg.strides)
        )
        self.head = nn.Conv2d(cfg.channels[-1], 1, cfg.head_kernel, padding=cfg.head_kernel // 2)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B,) normalised wavelengths -> (B, H, W) bands in normalised units (unclamped)."""
        gh, gw = self.cfg.grid
        if self.mlp is None:
            x = self.embedding_at(t)
        else:
            x = self.mlp(self.pe(t)).reshape(t.numel(), self.cfg.channels[0], gh, gw)
        if self.stem is not None:
            x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        x = self.head(x)[:, 0, : self.cfg.height, : self.cfg.width]
        if self.cfg.out == "tanh":
            return torch.tanh(x) * 0.5 + 0.5
        return x + 0.5


    def set_band_positions(self, positions: torch.Tensor) -> None:
        """The coded bands' positions t (WAVE), in band order: embedding i belongs to positions[i]."""
        if self.mlp is None:
            if positions.numel() != self.cfg.bands:
                raise ValueError(f"{positions.numel()} positions for {self.cfg.bands} embeddings")
            self.positions = positions.reshape(-1).to(self.embeddings.device, torch.float32)

    def embedding_at(self, t: torch.Tensor) -> torch.Tensor:
        """A coded band's own embedding at its position; between two coded bands, the linear
        interpolation of theirs (outside the range: the nearest end's)."""
        pos = self.positions
        order = torch.argsort(pos)
        sp = pos[order]
        t = t.reshape(-1).to(sp.dtype)
        if sp.numel() == 1:
            return self.embeddings[order[torch.zeros_like(t, dtype=torch.long)]]
        hi = torch.searchsorted(sp, t).clamp(1, sp.numel() - 1)
        lo = hi - 1
        w = ((t - sp[lo]) / (sp[hi] - sp[lo])).clamp(0, 1)
        exact_lo, exact_hi = t == sp[lo], t == sp[hi]
        w = torch.where(exact_lo, torch.zeros_like(w), torch.where(exact_hi, torch.ones_like(w), w))
        e_lo, e_hi = self.embeddings[order[lo]], self.embeddings[order[hi]]
        w = w.view(-1, 1, 1, 1)
        return torch.where(w == 0, e_lo, torch.where(w == 1, e_hi, e_lo + w * (e_hi - e_lo)))


def training_config(cfg: HinerConfig, hidden: int) -> HinerConfig:
    """The network an embedding model is fitted as: the same decoder behind a PE + MLP of `hidden`
    units that generates the embeddings (the MLP is dropped from the file, `to_stored`)."""
    return dataclasses.replace(cfg, embed=False, bands=0, mlp_hidden=hidden)


def to_stored(trained: "HinerNet", cfg: HinerConfig, t: torch.Tensor) -> "HinerNet":
    """The embedding model of `cfg` with the trained decoder and the MLP's embeddings at t."""
    gh, gw = cfg.grid
    stored = HinerNet(cfg).to(t.device)
    with torch.no_grad():
        emb = trained.mlp(trained.pe(t)).reshape(t.numel(), cfg.channels[0], gh, gw)
        stored.embeddings.copy_(emb)
        own = dict(stored.named_parameters())
        for name, p in trained.named_parameters():
            if not name.startswith("mlp."):
                own[name].copy_(p)
    stored.set_band_positions(t)
    return stored


def stage_inputs(cfg: HinerConfig) -> list[int]:
    """Input channels of each upsampling stage: the embedding (or the stem's) width, then the
    previous stage's output."""
    first = cfg.stem if cfg.stem > 0 else cfg.channels[0]
    return [first] + list(cfg.channels[1:-1])


def _stride_lists(max_stages: int = 7) -> list[tuple[int, ...]]:
    out = set()
    for n in range(2, max_stages + 1):
        for combo in itertools.combinations_with_replacement((5, 4, 3, 2), n):
            out.add(tuple(sorted(combo, reverse=True)))
    return sorted(out)


def choose_layout(height: int, width: int) -> tuple[tuple[int, int], list[int]]:
    """Pick the embedding grid and decoder strides from the image size alone.

    Minimises the padded area (decoded but cropped away) first, then prefers an embedding grid of
    about 16 cells, then small strides (a stage costs 9 * c_in * c_out * s^2 weights, so several x2
    stages are cheaper than one x4); users never choose strides.
    """
    best = None
    for strides in _stride_lists():
        s = math.prod(strides)
        gh, gw = math.ceil(height / s), math.ceil(width / s)
        if min(gh, gw) < 1 or max(gh, gw) > 10:
            continue
        if min(gh, gw) < 2 and max(height, width) >= 2 * s:
            continue
        pad = (gh * s * gw * s - height * width) / (height * width)
        cost = sum(x * x for x in strides) + 8.0 * abs(math.log((gh * gw) / 16.0))
        key = (round(pad, 3), round(cost, 3), strides)
        if best is None or key < best[0]:
            best = (key, (gh, gw), list(strides))
    if best is None:
        raise ValueError(f"no decoder layout for a {height} x {width} image")
    return best[1], best[2]


@dataclass
class HinerStyle:
    """How `make_config` shapes a network of a given width, and how it is fitted: the knobs that
    benchmarks/hiner_ablation.py varies one at a time. `STYLE` is what the encoder uses."""

    pe_freqs: int = 12
    pe_base: float = 0.0  # 0: from the band count, so the top frequency resolves one band
    strides: tuple = ()  # () : choose_layout (least padding); else these strides, grid from the size
    embed_ch: int = 0  # 0: the width; else this many embedding channels
    stem: bool = False  # a 1x1 convolution to the width on the embedding grid (the official code's first layer)
    taper: float = 0.8  # channel ratio from one stage to the next
    min_width: int = 4
    hidden: float = 1.5  # MLP hidden width as a multiple of the width (< 0: -hidden, fixed)
    out: str = "linear"
    lr: float = 1e-2
    batch: int = 4
    warmup: float = 0.05
    warmup_start: float = 0.0  # lr factor at the first step of the warm-up
    gamma: float = 0.01  # CAM weight (radians)
    loss: str = "l1+cam"  # fit.band_loss: "l1", "l1+cam", "l1+ssim"
    guard: float = 0.0  # fit.FitSettings.guard: roll back an epoch whose loss is over guard x the best
    embed: bool = False  # store per-band embeddings (the MLP only generates them while fitting)
    train_hidden: int = 320  # the MLP's hidden width while fitting an embedding model
    quant: str = "tensor"  # "tensor": one (offset, step) a tensor; "best": per channel where it pays
    qat_epochs: float = 0.0  # quantisation-aware fine-tuning, as a fraction of the epochs
    qat_lr: float = 0.1  # its learning rate, as a fraction of lr
    tune_epochs: float = 0.0  # embed: further epochs (fraction of the fit) on the stored embeddings


# The encoder's choices (benchmarks/hiner_ablation.py; benchmarks/README.md, "`--model hiner`
# fidelity"): one band a step (+1.4 dB on the Houston crop at equal epochs and true rate) and the
# same width at every stage instead of narrowing by 0.8 a stage (+4.4 dB more): the full-resolution
# stages are where a band's detail is drawn. HinerStyle()'s own defaults are hinerc 0.4's.
# 0.5 fitted that network at 0.4's lr of 1e-2 (FIDELITY_STYLE): fine for 48 bands, but on Samson
# (156 bands, so 46,800 steps of one band) the fit jumped out of its basin when the warm-up reached
# 1e-2 (26 -> 16 dB in one epoch) and its weights then grew from 0.7 to 8 in magnitude, so that
# 8-bit steps lost 0.8 dB more: 38.13 dB after 300 epochs. One band a step is four times the steps
# of 0.4's four: half the learning rate (the square-root rule for Adam's batch size) keeps the
# weights within 1.8 and gave 46.58 dB at 0.3400 on Samson, 43.16 at 0.4816 on Houston. The guard
# (fit.FitSettings.guard) rolls back any epoch whose loss is over 1.5 x the best, halving the
# learning rate: it never fired in those two fits, and it is there for cubes of more bands.
# At 300 epochs the 8-bit weights cost 0.4-0.55 dB against the float model; 10 % more epochs of
# quantisation-aware fine-tuning (qat_epochs, at a tenth of the lr) win back +0.47 dB on Houston
# (43.63 at 0.4818) and +0.50 on Samson (47.08 at 0.3395) at the same rate.
FIDELITY_STYLE = HinerStyle(batch=1, taper=1.0)  # hinerc 0.5's variant (lr 1e-2, no guard)
STYLE = HinerStyle(batch=1, taper=1.0, lr=5e-3, guard=1.5, qat_epochs=0.1)


def make_config(height: int, width: int, bands: int, width_scale: float,
                style: HinerStyle | None = None) -> HinerConfig:
    """A HINER configuration of a given size: `width_scale` sets every layer's width.

    The rate controller searches `width_scale` to meet a parameter budget; the shape of the network
    (grid, strides, channel taper) depends only on the image size and the style.
    """
    st = STYLE if style is None else style
    if st.strides:
        strides = list(st.strides)
        s = math.prod(strides)
        grid = (math.ceil(height / s), math.ceil(width / s))
    else:
        grid, strides = choose_layout(height, width)
    w = max(4, round(width_scale))
    c0 = st.embed_ch if st.embed_ch > 0 else w
    channels = [c0] + [max(st.min_width, round(width_scale * st.taper ** (i + 1))) for i in range(len(strides))]
    hidden = max(8, round(width_scale * st.hidden)) if st.hidden > 0 else int(-st.hidden)
    n_freqs = st.pe_freqs
    if st.pe_base > 0:
        base = st.pe_base
    elif n_freqs > 1:
        base = max(1.05, (max(bands, 4) / 2.0) ** (1.0 / (n_freqs - 1)))
    else:
        base = 1.0
    return HinerConfig(height=height, width=width, grid=grid, strides=strides, channels=channels,
                       mlp_hidden=hidden, pe_freqs=n_freqs, pe_base=float(round(base, 6)),
                       stem=w if st.stem else 0, out=st.out, embed=st.embed,
                       bands=bands if st.embed else 0)


def count_parameters(cfg: HinerConfig) -> int:
    gh, gw = cfg.grid
    if cfg.embed:
        n = cfg.bands * cfg.channels[0] * gh * gw
    else:
        pe_dim = 2 * cfg.pe_freqs if cfg.pe_freqs > 0 else 1
        n = (pe_dim + 1) * cfg.mlp_hidden + (cfg.mlp_hidden + 1) * cfg.channels[0] * gh * gw
    if cfg.stem > 0:
        n += (cfg.channels[0] + 1) * cfg.stem
    for cin, cout, s in zip(stage_inputs(cfg), cfg.channels[1:], cfg.strides):
        n += (cin * cfg.kernel**2 + 1) * cout * s * s
    n += cfg.channels[-1] * cfg.head_kernel**2 + 1
    return n
