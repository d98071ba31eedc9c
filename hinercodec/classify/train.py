"""Training and evaluating the classifier: patches, ISI views, the loop, OA / AA / kappa.

Works on arrays only (cube H x W x C, labels, masks); reading files is data.py's job and the .hnr
decoder reaches here only as an object with `.at(t)` and `.file.band_positions()`. One seed fixes
everything: the batches (numpy Generator), the weights and dropout (torch's generator, forked so the
caller's global state is left alone) and the ISI wavelengths.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from .asw import ASW
from .data import standardise
from .spectralformer import SFConfig, SpectralFormer

ProgressFn = Callable[[int, int, float], None]  # (step, total, loss)


@dataclass
class TrainOptions:
    """Model size and schedule: small enough for a few hundred labelled pixels on one CPU thread."""

    patch: int = 3
    tokens: int = 24  # at most this many spectral tokens: groups of ceil(C / tokens) bands + 1 each side
    dim: int = 32
    depth: int = 3
    heads: int = 4
    steps: int = 300
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-2
    asw: bool = False
    beta: float = 0.1  # weight of L1(ASW(x), x)
    isi: bool = False  # train on jittered decodes too (needs `views` in fit)
    isi_prob: float = 0.5  # share of batches drawn from a jittered view
    eta: float = 0.1  # jitter half-width, in units of the local band spacing
    isi_views: int = 16  # jittered decodes made once per training (each costs a full decode)
    seed: int = 0


class WavelengthDecoder(Protocol):
    """What ISI needs from hinercodec.api.Decoder."""

    file: object

    def at(self, t: Sequence[float]) -> np.ndarray: ...


@dataclass
class Classifier:
    """A trained model with what it needs to classify new pixels of the same kind of cube."""

    model: SpectralFormer
    asw: Optional[ASW]
    stats: tuple  # per-band (mean, std) of the training cube
    classes: np.ndarray  # label value of each output index
    patch: int
    history: list = field(default_factory=list)  # training loss per step

    def predict(self, cube: np.ndarray, mask: Optional[np.ndarray] = None, batch: int = 1024) -> np.ndarray:
        """H x W label values for the pixels of `mask` (all when None); 0 elsewhere."""
        x = _padded(standardise(cube, self.stats)[0], self.patch)
        h, w = cube.shape[:2]
        mask = np.ones((h, w), dtype=bool) if mask is None else mask
        rows, cols = np.nonzero(mask)
        out = np.zeros((h, w), dtype=self.classes.dtype)
        self.model.eval()
        if self.asw is not None:
            self.asw.eval()
        with torch.no_grad():
            for i in range(0, rows.size, batch):
                p = _patches(x, rows[i:i + batch], cols[i:i + batch], self.patch)
                if self.asw is not None:
                    p = self.asw(p)
                out[rows[i:i + batch], cols[i:i + batch]] = self.classes[self.model(p).argmax(1).numpy()]
        return out


def _padded(chw: np.ndarray, patch: int) -> torch.Tensor:
    r = patch // 2
    return torch.from_numpy(np.pad(chw, ((0, 0), (r, r), (r, r)), mode="reflect" if r else "constant"))


def _patches(padded: torch.Tensor, rows: np.ndarray, cols: np.ndarray, patch: int) -> torch.Tensor:
    """B x C x P x P patches centred on (rows, cols) of the unpadded image."""
    d = torch.arange(patch)
    r = torch.as_tensor(rows)[:, None, None] + d[None, :, None]
    c = torch.as_tensor(cols)[:, None, None] + d[None, None, :]
    return padded[:, r, c].permute(1, 0, 2, 3)


def jittered_views(decoder: WavelengthDecoder, count: int, eta: float, seed: int) -> list[np.ndarray]:
    """ISI: `count` decodes of the cube with every band moved by U(-eta, eta) x its local band spacing.

    The network is continuous in wavelength, so these are plausible neighbours of the decoded cube
    that the codec never saw: the classifier learns to ignore the codec's band-to-band wobble.
    """
    pos = np.asarray(decoder.file.band_positions(), dtype=np.float64)
    order = np.argsort(pos)
    gaps = np.diff(pos[order])
    local = np.empty_like(pos)
    if gaps.size:
        local[order] = (np.concatenate([gaps[:1], gaps]) + np.concatenate([gaps, gaps[-1:]])) / 2
    else:
        local[:] = 0.0
    rng = np.random.default_rng([seed, 1])
    return [decoder.at(np.clip(pos + rng.uniform(-eta, eta, pos.size) * local, 0.0, 1.0)) for _ in range(count)]


def fit(cube: np.ndarray, labels: np.ndarray, train: np.ndarray, options: TrainOptions = TrainOptions(),
        views: Sequence[np.ndarray] = (), progress: Optional[ProgressFn] = None) -> Classifier:
    """Train SpectralFormer (and ASW when asked) on the pixels of `train`.

    `views` are cubes of the same shape standing in for `cube` in a share `isi_prob` of the batches
    (ISI's jittered decodes); they are scaled with `cube`'s statistics.
    """
    opt = options
    if opt.isi and not views:
        raise ValueError("ISI needs jittered views of the cube (jittered_views)")
    chw, stats = standardise(cube)
    sources = [_padded(chw, opt.patch)]
    sources += [_padded(standardise(v, stats)[0], opt.patch) for v in (views if opt.isi else ())]
    rows, cols = np.nonzero(train)
    classes, target = np.unique(labels[rows, cols], return_inverse=True)
    target = torch.as_tensor(target.reshape(-1))
    rng = np.random.default_rng(opt.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(opt.seed)
        stride = -(-cube.shape[2] // opt.tokens)
        cfg = SFConfig(bands=cube.shape[2], classes=classes.size, patch=opt.patch, group=stride + 2, stride=stride,
                       dim=opt.dim, depth=opt.depth, heads=opt.heads, mlp=2 * opt.dim)
        model = SpectralFormer(cfg)
        asw = ASW(cube.shape[2]) if opt.asw else None
        params = list(model.parameters()) + (list(asw.parameters()) if asw is not None else [])
        optim = torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            optim, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * s / opt.steps)))
        model.train()
        if asw is not None:
            asw.train()
        history = []
        for step in range(opt.steps):
            idx = rng.choice(rows.size, size=min(opt.batch, rows.size), replace=rows.size < opt.batch)
            source = sources[0]
            if len(sources) > 1 and rng.random() < opt.isi_prob:
                source = sources[1 + int(rng.integers(len(sources) - 1))]
            x = _patches(source, rows[idx], cols[idx], opt.patch)
            if asw is not None:
                y = asw(x)
                loss = F.cross_entropy(model(y), target[idx]) + opt.beta * F.l1_loss(y, x)
            else:
                loss = F.cross_entropy(model(x), target[idx])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
            history.append(float(loss.detach()))
            if progress is not None:
                progress(step + 1, opt.steps, history[-1])
    return Classifier(model=model, asw=asw, stats=stats, classes=classes, patch=opt.patch, history=history)


def scores(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """OA, AA (mean per-class recall) and Cohen's kappa over the given pixels, in the label values' terms."""
    truth = np.asarray(truth).reshape(-1)
    predicted = np.asarray(predicted).reshape(-1)
    classes = np.unique(np.concatenate([truth, predicted]))
    confusion = np.zeros((classes.size, classes.size), dtype=np.int64)
    np.add.at(confusion, (np.searchsorted(classes, truth), np.searchsorted(classes, predicted)), 1)
    n = confusion.sum()
    oa = float(np.trace(confusion) / n)
    present = confusion.sum(1) > 0
    recall = np.diag(confusion)[present] / confusion.sum(1)[present]
    expected = float((confusion.sum(0) * confusion.sum(1)).sum()) / (n * n)
    kappa = (oa - expected) / (1 - expected) if expected < 1 else 1.0
    return {"oa": oa, "aa": float(recall.mean()), "kappa": float(kappa),
            "per_class": {int(c): float(r) for c, r in zip(classes[present], recall)},
            "test_pixels": int(n)}


@dataclass
class Result:
    """What one classification run gives back: the map, the scores and what it took."""

    classmap: np.ndarray  # H x W label values (every pixel classified)
    scores: dict
    train_pixels: int
    seconds: float
    classifier: Classifier


def classify(cube: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
             options: TrainOptions = TrainOptions(), decoder: Optional[WavelengthDecoder] = None,
             progress: Optional[ProgressFn] = None, full_map: bool = True) -> Result:
    """Train on `train`, score on `test`, classify every pixel (only `test` when full_map is False).

    With options.isi, `decoder` is the .hnr the cube was decoded from (ISI decodes it again at
    jittered wavelengths).
    """
    started = time.perf_counter()
    if options.isi and decoder is None:
        raise ValueError("ISI needs the .hnr decoder the cube came from")
    views = jittered_views(decoder, options.isi_views, options.eta, options.seed) if options.isi else ()
    model = fit(cube, labels, train, options, views, progress)
    classmap = model.predict(cube, None if full_map else test)
    return Result(classmap=classmap, scores=scores(labels[test], classmap[test]), train_pixels=int(train.sum()),
                  seconds=time.perf_counter() - started, classifier=model)
