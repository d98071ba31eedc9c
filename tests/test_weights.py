"""The band weights of the transform encoder's re-weighting passes (encoder.weight_step, weight_gain)."""
from __future__ import annotations

import numpy as np

from hinercodec.codecs.transform import encoder
from hinercodec.codecs.transform.decoder import WEIGHT_RANGE, WEIGHT_RESOLUTION


def test_gain_one_from_zero_is_the_plain_update() -> None:
    rng = np.random.default_rng(3)
    mse = 10.0 ** rng.uniform(-7, -3, 40)
    constant = np.zeros(40, bool)
    constant[[5, 17]] = True
    codes = encoder.weight_codes(mse, constant)
    lw = -np.log2(mse[~constant])
    expected = np.clip(np.rint(WEIGHT_RESOLUTION * (lw - lw.mean())), -WEIGHT_RANGE, WEIGHT_RANGE)
    assert np.array_equal(codes[~constant], expected) and not codes[constant].any()
    target = encoder.weight_targets(mse, ~constant)
    assert np.array_equal(encoder.weight_step(np.zeros(40), target, ~constant, 1.0), codes)


def test_a_step_moves_gain_times_the_way_centred_and_clipped() -> None:
    live = np.ones(6, bool)
    previous = np.array([0.0, 8, -8, 0, 4, -4])
    target = np.array([4.0, 8, -12, 0, 4, -4])  # moves of 4, 0, -4, 0, 0, 0
    step = encoder.weight_step(previous, target, live, 2.5)
    assert np.array_equal(step, [10, 8, -18, 0, 4, -4])
    far = encoder.weight_step(np.zeros(3), np.array([100.0, 0, -100]), np.ones(3, bool), 3.0)
    assert np.array_equal(far, [WEIGHT_RANGE, 0, -WEIGHT_RANGE])


def test_the_gain_is_the_secant_of_the_last_two_passes() -> None:
    live = np.ones(30, bool)
    rng = np.random.default_rng(0)
    x0, y0 = np.zeros(30), rng.normal(0, 8, 30)
    assert encoder.weight_gain([(x0, y0)], live) == encoder.WEIGHT_GAIN  # one pass: the first step's gain
    x1 = encoder.WEIGHT_GAIN * y0
    for rho, gain in ((0.5, 2.0), (0.0, 1.0), (-0.5, 1.0), (0.6, 2.5), (0.9, 3.0), (1.2, 3.0)):
        y1 = y0 + rho * (x1 - x0)  # targets that follow the codes at slope rho
        assert encoder.weight_gain([(x0, y0), (x1, y1)], live) == gain
    assert encoder.weight_gain([(x0, y0), (x0.copy(), y0)], live) == encoder.WEIGHT_GAINS[0]  # no move: no slope
    y1 = y0 + 0.3 * (x1 - x0)  # 1 / 0.7 = 1.4286: on the 1/64 grid
    assert encoder.weight_gain([(x0, y0), (x1, y1)], live) * encoder.GAIN_GRID == round(64 / 0.7)


def test_the_last_of_two_passes_keeps_the_best_k(monkeypatch) -> None:
    """encoder.SETTLED_LAST: at effort 3 (two re-weighting passes) the last pass searches one K, the
    best so far; at effort 2 (one pass) that pass still climbs K."""
    rng = np.random.default_rng(5)
    spectra = rng.normal(size=(6, 24))
    cube = np.einsum("hwk,kc->chw", rng.normal(size=(32, 32, 6)), spectra) * 0.05 + 0.5
    ladders: list = []
    search = encoder.search

    def recording(a, budget_bits, rounding=0.35, ladder=encoder.K_LADDER, *args, **kwargs):
        ladders.append(tuple(ladder))
        return search(a, budget_bits, rounding, ladder, *args, **kwargs)

    monkeypatch.setattr(encoder, "search", recording)
    budget = 0.5 * cube.size
    for effort, passes in ((3, 2), (2, 1)):
        ladders.clear()
        plan, cand, _ = encoder.plan_cube(cube, budget, effort)
        assert len(ladders) == passes + 1 and all(len(lad) > 1 for lad in ladders[:passes])
        assert (ladders[-1] == (cand.k,)) == (passes >= 2) and plan.components == cand.k
