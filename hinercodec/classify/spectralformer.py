"""SpectralFormer: a transformer whose tokens are bands, not pixels.

Group-wise spectral embedding (GSE): a token is `group` neighbouring bands over the whole spatial
patch, linearly embedded; so a token sees local spectral shape (a derivative, an absorption edge),
not one isolated value. Tokens start every `stride` bands: stride 1 is the original one token per
band; a larger stride (groups overlapping by a band on each side) keeps attention affordable on one
CPU thread for cubes of 100+ bands. Cross-layer adaptive fusion (CAF):
from the third layer on, each layer's input is a learned mix of the previous layer's output and the
output of two layers back, which keeps shallow spectral detail from being washed out with depth.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class SFConfig:
    bands: int
    classes: int
    patch: int = 3  # spatial side of the input patch (odd)
    group: int = 3  # bands per token
    stride: int = 1  # bands between the starts of consecutive tokens
    dim: int = 32
    depth: int = 4
    heads: int = 4
    mlp: int = 64  # hidden width of each layer's feed-forward block
    dropout: float = 0.1


class _Layer(nn.Module):
    """Pre-norm self-attention and feed-forward block."""

    def __init__(self, cfg: SFConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = nn.MultiheadAttention(cfg.dim, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.ff = nn.Sequential(nn.Linear(cfg.dim, cfg.mlp), nn.GELU(), nn.Dropout(cfg.dropout),
                                nn.Linear(cfg.mlp, cfg.dim), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.ff(self.norm2(x))


class _Fusion(nn.Module):
    """CAF: [current, two layers back] -> one token stream; starts as 'current' (identity)."""

    def __init__(self, dim: int):
        super().__init__()
        self.mix = nn.Linear(2 * dim, dim)
        with torch.no_grad():
            self.mix.weight.zero_()
            self.mix.weight[:, :dim].copy_(torch.eye(dim))
            self.mix.bias.zero_()

    def forward(self, current: torch.Tensor, skipped: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([current, skipped], dim=-1))


class SpectralFormer(nn.Module):
    """B x C x P x P patches -> B x classes logits."""

    def __init__(self, cfg: SFConfig):
        super().__init__()
        if cfg.patch % 2 == 0 or not 1 <= cfg.stride <= cfg.group:
            raise ValueError("patch must be odd and 1 <= stride <= group")
        self.cfg = cfg
        self.count = -(-cfg.bands // cfg.stride)  # tokens per pixel
        self.embed = nn.Linear(cfg.group * cfg.patch * cfg.patch, cfg.dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, self.count + 1, cfg.dim))
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(_Layer(cfg) for _ in range(cfg.depth))
        self.fusions = nn.ModuleList(_Fusion(cfg.dim) for _ in range(max(cfg.depth - 2, 0)))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.classes)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """GSE: B x C x P x P -> B x T x (group * P * P), token k = bands around k * stride (edges repeated)."""
        b, c = x.shape[:2]
        g, s = self.cfg.group, self.cfg.stride
        left = (g - 1) // 2
        right = max(0, (self.count - 1) * s + g - c - left)
        flat = x.reshape(b, 1, c, -1)  # B x 1 x C x P*P
        padded = F.pad(flat, (0, 0, left, right), mode="replicate")[:, 0]
        groups = padded.unfold(1, g, s)[:, :self.count]  # B x T x P*P x group
        return groups.transpose(2, 3).reshape(b, self.count, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(self.tokens(x))
        z = torch.cat([self.cls.expand(z.shape[0], -1, -1), z], dim=1) + self.pos
        z = self.drop(z)
        outputs = []
        for i, layer in enumerate(self.layers):
            if i >= 2:
                z = self.fusions[i - 2](z, outputs[i - 2])
            z = layer(z)
            outputs.append(z)
        return self.head(self.norm(z[:, 0]))
