"""The transform encoder's planned search (0.7): a large image searched on a sample, tiles coded with
one plan, tiles fitted in threads. Same bytes for any thread count; rates in the window."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hinercodec import api
from hinercodec.codecs.transform import encoder as transform
from hinercodec.formats.cubeio import read_cube

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def samson() -> np.ndarray:
    path = DATA / "samson.mat"
    if not path.is_file():
        pytest.skip(f"{path} not found (the shared real scenes are needed)")
    return read_cube(path).data


def test_sample_rects_spread_over_the_image() -> None:
    grid, rects = transform.sample_rects(1000, 2000)
    assert grid[0] * grid[1] == len(rects) <= transform.SAMPLE_BLOCKS
    assert all(0 <= y0 < y1 <= 1000 and 0 <= x0 < x1 <= 2000 and y1 - y0 == x1 - x0 == 128 for y0, y1, x0, x1 in rects)
    ys, xs = {r[0] for r in rects}, {r[2] for r in rects}
    assert min(ys) < 250 and max(ys) > 500 and min(xs) < 300 and max(xs) > 1400  # every part of the scene
    grid, rects = transform.sample_rects(40, 30)  # smaller than one block: one block as wide as the image
    assert grid == (1, 1) and len(rects) == 1 and rects[0][2:] == (0, 30) and 0 <= rects[0][0] <= 10
    parts = [np.full((2, 30, 30), i) for i in range(len(rects))]
    assert transform.mosaic(grid, parts).shape == (2, 30, 30)


def test_tiles_in_threads_give_the_same_file(samson: np.ndarray) -> None:
    """Tiles share one plan (searched on a sample of the whole cube) and are fitted in threads:
    the file does not depend on the thread count."""
    one = api.encode(samson, bpppb=0.3, tile=48, threads=1)
    two = api.encode(samson, bpppb=0.3, tile=48, threads=2)
    assert one.stats["tiles"] == 4 and one.data == two.data
    assert 0.9 * 0.3 <= one.bpppb <= 0.3 and one.psnr_band > 40


def test_tile_hints_change_no_file(samson: np.ndarray, monkeypatch) -> None:
    """Tiles fitted in threads start their step searches from the codes of the tile HINT_LAG before
    them (tiling.Hints): 9 tiles in 3 threads give the file of one thread (no hints), and the hinted
    searches probe fewer steps than the same tiles searched from the plan's code (counted over two
    rates: on tiles this small one rate can come out even, 0.9.8's 0.5 bpppb one probe over)."""
    from hinercodec import tiling

    probes = {"n": 0}
    fits = transform._fits

    def counting(*args, **kwargs):
        probes["n"] += 1
        return fits(*args, **kwargs)

    monkeypatch.setattr(transform, "_fits", counting)
    alone = hinted = 0
    for rate in (0.4, 0.5):
        probes["n"] = 0
        one = api.encode(samson, bpppb=rate, tile=32, threads=1)
        alone += probes["n"]
        probes["n"] = 0
        three = api.encode(samson, bpppb=rate, tile=32, threads=3)
        hinted += probes["n"]
        assert one.stats["tiles"] == 9 and one.data == three.data
    assert hinted < alone

    hints = tiling.Hints()
    assert hints.before(1) is None  # the first HINT_LAG tiles start from the plan
    hints.post(0, {8: 300})
    hints.post(0, None)  # (a second post of a tile changes nothing)
    assert hints.before(tiling.HINT_LAG) == {8: 300}


def test_a_large_image_is_searched_on_a_sample(samson: np.ndarray, monkeypatch) -> None:
    """An image over SAMPLE_FROM pixels plans on the mosaic of sample_rects (here made small), then
    codes the whole image with that plan: in the rate window, close to the full search."""
    full = api.encode(samson, bpppb=0.2)
    calls = []
    plan_sample = transform.plan_sample

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return plan_sample(*args, **kwargs)

    monkeypatch.setattr(transform, "plan_sample", spy)
    monkeypatch.setattr(transform, "SAMPLE_FROM", 4000)
    monkeypatch.setattr(transform, "SAMPLE_BLOCK", 32)
    sampled = api.encode(samson, bpppb=0.2)
    assert calls and 0.9 * 0.2 <= sampled.bpppb <= 0.2
    assert sampled.psnr_band > full.psnr_band - 1.0


def test_threads_option_is_checked() -> None:
    from hinercodec.errors import UsageError

    with pytest.raises(UsageError):
        api.encode(np.zeros((8, 8, 3), np.float32), bpppb=0.5, threads=0)


def test_tile_plan_carries_the_size_ratio(samson: np.ndarray, monkeypatch) -> None:
    """The plan handed to tiles carries the sample's true/estimated coefficient bytes (a tile's
    first aim), and tiles hill-climb K from the plan's over the whole ladder: a plan whose K is far
    off still gives the file of a plan at the tile's own best K."""
    plans = []
    plan_reader = transform.plan_reader

    def spy(*args, **kwargs):
        plans.append(plan_reader(*args, **kwargs))
        return plans[-1]

    monkeypatch.setattr(transform, "plan_reader", spy)
    monkeypatch.setattr(transform, "SAMPLE_BLOCK", 32)
    good = api.encode(samson, bpppb=0.3, tile=48)
    assert len(plans) == 1 and 0.95 < plans[0]["size_ratio"] < 1.05 and plans[0]["side_bytes"] > 0
    assert 0.9 * 0.3 <= good.bpppb <= 0.3

    def far_off(*args, **kwargs):  # the plan's K two rungs low
        found = plan_reader(*args, **kwargs)
        ks = list(transform.K_LADDER)
        return {**found, "components": ks[max(0, ks.index(found["components"]) - 2)]}

    monkeypatch.setattr(transform, "plan_reader", far_off)
    off = api.encode(samson, bpppb=0.3, tile=48)
    assert 0.9 * 0.3 <= off.bpppb <= 0.3 and off.psnr_band > good.psnr_band - 0.1
