"""`--model hiner`: old configurations rebuild the old network, new keys count and decode, and a
tiny encode lands in the rate window through the public path (seconds: tiny crops, a few epochs)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hinercodec import api
from hinercodec.codecs.networks import hiner
from hinercodec.codecs.networks.fit import FitSettings, band_loss, fit, lr_factor, ssim
from hinercodec.codecs.networks.models import build

# A MODL config as hinerc 0.4 wrote it (no stem/out/embed/bands keys).
OLD_CONFIG = {"height": 20, "width": 24, "grid": [3, 3], "strides": [2, 2, 2], "channels": [6, 5, 4, 4],
              "mlp_hidden": 9, "pe_freqs": 12, "pe_base": 1.3, "kernel": 3, "head_kernel": 3,
              "activation": "gelu", "model": "hiner"}
OLD_NAMES = ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias", "stages.0.conv.weight",
             "stages.0.conv.bias", "stages.1.conv.weight", "stages.1.conv.bias", "stages.2.conv.weight",
             "stages.2.conv.bias", "head.weight", "head.bias"]


def test_old_config_builds_old_network() -> None:
    net = build(OLD_CONFIG)
    assert [n for n, _ in net.named_parameters()] == OLD_NAMES
    assert net.cfg.stem == 0 and net.cfg.out == "linear" and not net.cfg.embed
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
        t = torch.tensor([0.25])
        # The 0.4 computation (formats/HNR.md): PE -> MLP -> stages -> head -> crop -> + 0.5.
        x = net.mlp(net.pe(t)).reshape(1, 6, 3, 3)
        for st in net.stages:
            x = st.act(st.shuffle(st.conv(x)))
        ref = net.head(x)[:, 0, :20, :24] + 0.5
        assert torch.equal(net(t), ref)
    assert hiner.count_parameters(net.cfg) == sum(p.numel() for p in net.parameters())
    assert net.cfg.to_dict() == OLD_CONFIG  # written back exactly as 0.4 wrote it


@pytest.mark.parametrize("style", [
    hiner.HinerStyle(),
    hiner.HinerStyle(stem=True, out="tanh", strides=(5, 3, 2, 2), embed_ch=16, taper=1 / 1.2),
    hiner.HinerStyle(embed=True, stem=True),
    hiner.HinerStyle(pe_freqs=0),
])
def test_count_matches_module(style: hiner.HinerStyle) -> None:
    for h, w, c, width in ((20, 24, 7, 6.0), (45, 37, 30, 13.5)):
        cfg = hiner.make_config(h, w, c, width, style)
        net = hiner.HinerNet(cfg)
        assert hiner.count_parameters(cfg) == sum(p.numel() for p in net.parameters())
        again = hiner.HinerConfig.from_dict(cfg.to_dict())
        assert again == cfg


def test_embedding_model_positions() -> None:
    cfg = hiner.make_config(16, 16, 5, 6.0, hiner.HinerStyle(embed=True))
    trained = hiner.HinerNet(hiner.training_config(cfg, 32))
    t = torch.tensor([0.0, 0.2, 0.5, 0.7, 1.0])
    stored = hiner.to_stored(trained, cfg, t)
    with torch.no_grad():
        assert torch.allclose(stored(t), trained(t), atol=1e-5)
        mid = stored.embedding_at(torch.tensor([0.35]))
        assert torch.allclose(mid[0], 0.5 * (stored.embeddings[1] + stored.embeddings[2]), atol=1e-6)


def test_lr_factor_default_unchanged() -> None:
    total = 200
    n_warm = int(total * 0.05)
    assert lr_factor(0, total, 0.05) == 1 / n_warm
    assert lr_factor(n_warm - 1, total, 0.05) == 1.0
    assert lr_factor(n_warm + 5, total, 0.05) == 0.5 * (1 + math.cos(math.pi * 5 / (total - n_warm)))
    assert lr_factor(0, total, 0.1, 0.1) == pytest.approx(0.1)


def _cube(h=32, w=32, c=24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(xx / 4.0 + k / 3.0) + np.cos(yy / 5.0) for k in range(c)], axis=2)
    cube = (1000 + 300 * base + rng.normal(0, 5, (h, w, c))).astype(np.uint16)
    return cube, np.linspace(450, 900, c)


@pytest.mark.parametrize("style", [None, hiner.HinerStyle(embed=True, stem=True, out="tanh", batch=1)])
def test_tiny_encode_in_window_and_decodes(style) -> None:
    cube, wl = _cube()
    saved = hiner.STYLE
    if style is not None:
        hiner.STYLE = style
    try:
        res = api.encode(cube, wl, model="hiner", bpppb=1.5, epochs=3, device="cpu")
    finally:
        hiner.STYLE = saved
    assert 0.9 * 1.5 <= res.bpppb <= 1.5
    assert np.isfinite(res.psnr_band)
    dec = api.decode(res.data)
    assert dec.shape == cube.shape
    # Between two coded bands the network still answers (embedding models interpolate embeddings).
    out = api.interp(res.data, nm=[(wl[3] + wl[4]) / 2])
    assert np.all(np.isfinite(np.asarray(out, dtype=np.float64)))


def test_losses() -> None:
    torch.manual_seed(0)
    a = torch.rand(2, 16, 16)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-6)
    assert float(band_loss(a, a, 0.01, "l1+ssim")) == pytest.approx(0.0, abs=1e-6)
    b = a + 0.1 * torch.randn_like(a)
    assert float(band_loss(b, a, 0.01, "l1")) < float(band_loss(b, a, 0.01, "l1+cam"))
    assert float(band_loss(b, a, 0.0, "l1+cam")) == float(band_loss(b, a, 0.0, "l1"))
    with pytest.raises(ValueError):
        band_loss(b, a, 0.01, "l2")


def test_guard_rolls_back_a_diverging_epoch() -> None:
    """An epoch whose mean loss is over guard x the best epoch's returns to the best epoch's weights."""
    torch.manual_seed(0)
    cfg = hiner.make_config(12, 12, 6, 6.0, hiner.HinerStyle(batch=1, taper=1.0))
    target, t = torch.rand(6, 12, 12), torch.linspace(0, 1, 6)
    model = hiner.HinerNet(cfg)
    seen = []

    def report(e, n, loss, psnr):
        seen.append((loss, [p.detach().clone() for p in model.parameters()]))

    # lr 10: Adam jumps about; the last epoch is far worse than the best one, so it is rolled back.
    fit(model, target, t, FitSettings(epochs=6, batch=1, lr=10.0, warmup=0.0, guard=1.5), report)
    best = min(range(len(seen)), key=lambda i: seen[i][0])
    assert seen[-1][0] > 1.5 * seen[best][0]
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), seen[best][1]))
