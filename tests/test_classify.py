"""Downstream classification: labels and splits, SpectralFormer/ASW/ISI training, class map, `hinerc classify`.

Runs on a 32 x 32 crop of the real Houston 2018 scene (4 classes) with a few dozen training steps,
so the whole file takes seconds; the benchmark (benchmarks/classify.py) does the full-size runs.
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner

from hinercodec.errors import InputError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HOUSTON = DATA / "houston2018_crop.mat"
CROP = (slice(64, 96), slice(64, 96))  # classes 1, 2, 6, 7 with 29..149 pixels each
STEPS = 40


@pytest.fixture(scope="module")
def scene():
    if not HOUSTON.exists():
        pytest.skip("../shared/data not found")
    mat = scipy.io.loadmat(HOUSTON)
    return {"cube": np.ascontiguousarray(mat["houston"][CROP]), "labels": mat["labels"][CROP].astype(np.int64),
            "wavelengths": mat["wavelength_nm"].reshape(-1).astype(np.float64)}


@pytest.fixture(scope="module")
def hnr(scene):
    """A quickly fitted (low-quality) .hnr of the crop: enough to exercise decoding and ISI."""
    from hinercodec import api

    return api.encode(scene["cube"], scene["wavelengths"], api.EncodeOptions(bpppb=1.0, model="latent", epochs=20)).data


def _options(**kw):
    from hinercodec.classify import TrainOptions

    return TrainOptions(steps=STEPS, batch=32, **kw)


# ----------------------------------------------------------------------------------------------- labels


def test_split_per_class_keeps_a_test_pixel_per_class_and_is_seeded():
    from hinercodec.classify import split_per_class

    labels = np.zeros((6, 6), dtype=np.int64)
    labels[0, :5] = 1  # 5 pixels
    labels[1, :2] = 2  # 2 pixels: 1 train, 1 test
    train, test = split_per_class(labels, 3, seed=7)
    assert (train & test).sum() == 0 and ((train | test) == (labels > 0)).all()
    assert train[labels == 1].sum() == 3 and train[labels == 2].sum() == 1 and test[labels == 2].sum() == 1
    again, _ = split_per_class(labels, 3, seed=7)
    assert (again == train).all()


def test_bad_labels_are_refused_with_one_line(tmp_path):
    from hinercodec.classify import check_labels, load_labels, split_by_mask, split_per_class

    labels = np.zeros((8, 8), dtype=np.int64)
    with pytest.raises(InputError, match="no labelled pixel"):
        check_labels(labels)
    labels[0, 0] = 3
    labels[1, :4] = 1
    with pytest.raises(InputError, match=r"class 3 has a single labelled pixel \(row 0, column 0\)"):
        split_per_class(labels, 2, seed=0)
    np.save(tmp_path / "gt.npy", labels)
    with pytest.raises(InputError, match="the labels are 8 x 8 but the cube is 9 x 8"):
        load_labels(str(tmp_path / "gt.npy"), (9, 8))
    np.save(tmp_path / "neg.npy", -labels)
    with pytest.raises(InputError, match=">= 0"):
        load_labels(str(tmp_path / "neg.npy"))
    with pytest.raises(InputError, match="no training pixel"):
        split_by_mask(labels, labels == 1)
    np.savez(tmp_path / "maps.npz", gt=labels)
    with pytest.raises(InputError, match="has no variable 'nope'"):
        load_labels(f"{tmp_path / 'maps.npz'}:nope")


def test_labels_from_real_files(scene, tmp_path):
    from hinercodec.classify import load_labels, load_mask

    full = load_labels(str(HOUSTON), (128, 128))  # the only 2-D array of the .mat: 'labels'
    assert full.shape == (128, 128) and set(np.unique(full)) == set(range(13))
    np.savez(tmp_path / "maps.npz", gt=scene["labels"], other=scene["labels"] * 0, train=scene["labels"] == 1)
    assert (load_labels(f"{tmp_path / 'maps.npz'}:gt", (32, 32)) == scene["labels"]).all()
    assert load_mask(str(tmp_path / "maps.npz"), (32, 32)).sum() == (scene["labels"] == 1).sum()  # 'train'


def test_scores_match_hand_computed_kappa():
    from hinercodec.classify import scores

    truth = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    pred = np.array([1, 1, 1, 2, 2, 2, 2, 2])
    s = scores(truth, pred)
    assert s["oa"] == pytest.approx(7 / 8) and s["aa"] == pytest.approx((3 / 4 + 1) / 2)
    expected = (4 * 3 + 4 * 5) / 64  # chance agreement from the marginals
    assert s["kappa"] == pytest.approx((7 / 8 - expected) / (1 - expected))


# ----------------------------------------------------------------------------------------------- training


def test_spectralformer_and_asw_shapes():
    import torch

    from hinercodec.classify import ASW, SFConfig, SpectralFormer

    x = torch.randn(5, 48, 3, 3)
    for stride in (1, 2, 5):
        model = SpectralFormer(SFConfig(bands=48, classes=4, stride=stride, group=stride + 2))
        assert model.tokens(x).shape == (5, -(-48 // stride), (stride + 2) * 9)
        assert model(x).shape == (5, 4)
    assert torch.equal(ASW(48)(x), x)  # identity at initialisation: training starts from plain SF


@pytest.mark.slow
def test_training_end_to_end_is_deterministic(scene):
    from hinercodec.classify import classify, split_per_class

    train, test = split_per_class(scene["labels"], 10, seed=0)
    a = classify(scene["cube"], scene["labels"], train, test, _options(seed=3))
    b = classify(scene["cube"], scene["labels"], train, test, _options(seed=3))
    assert a.scores == b.scores and (a.classmap == b.classmap).all()
    assert set(np.unique(a.classmap)) <= {1, 2, 6, 7} and a.train_pixels == 40
    assert a.scores["oa"] > 0.5  # 4 classes: chance is about 0.25-0.4
    assert a.classifier.history[-1] < a.classifier.history[0]


def test_asw_and_isi_on_a_decoded_cube(scene, hnr):
    from hinercodec.api import Decoder
    from hinercodec.classify import classify, jittered_views, split_per_class

    decoder = Decoder(hnr)
    cube = decoder.bands()
    views = jittered_views(decoder, 2, 0.1, seed=0)
    assert views[0].shape == cube.shape and views[0].dtype == cube.dtype and not np.array_equal(views[0], views[1])
    train, test = split_per_class(scene["labels"], 10, seed=0)
    runs = [classify(cube, scene["labels"], train, test, _options(asw=True, isi=True, isi_views=2, seed=1),
                     decoder=decoder) for _ in range(2)]
    assert runs[0].scores == runs[1].scores and runs[0].classifier.asw is not None
    with pytest.raises(ValueError, match="ISI needs"):
        classify(cube, scene["labels"], train, test, _options(isi=True))


# ----------------------------------------------------------------------------------------------- class map


def _png_pixels(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    w, h = size
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + 3 * w)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(h, w, 3)


def test_class_map_png_has_map_and_legend():
    from hinercodec.classify import class_map_png, palette

    classmap = np.array([[1, 2], [12, 1]])
    img = _png_pixels(class_map_png(classmap, [1, 2, 12]))
    colours = palette(3)
    assert img.shape[0] >= 256 and img.shape[1] > 256  # enlarged map + legend on the right
    assert (img[0, 0] == colours[0]).all() and (img[0, 200] == colours[1]).all() and (img[200, 0] == colours[2]).all()
    legend = img[:, 256:]
    for colour in colours:
        assert (legend == colour).all(axis=2).sum() == 14 * 14  # one swatch per class
    assert (legend == 0).all(axis=2).sum() > 3 * 64  # frames and digits drawn in black


# ----------------------------------------------------------------------------------------------- CLI


def _cli():
    from hinercodec.cli._errors import HinercGroup
    from hinercodec.cli.classify import classify

    group = HinercGroup("hinerc")  # the lead registers the command on `hinerc` itself
    group.add_command(classify)
    return group


def test_cli_classify_hnr_writes_png_and_json(scene, hnr, tmp_path):
    (tmp_path / "s.hnr").write_bytes(hnr)
    np.save(tmp_path / "gt.npy", scene["labels"])
    args = ["classify", str(tmp_path / "s.hnr"), "--labels", str(tmp_path / "gt.npy"), "--train-per-class", "8",
            "--steps", "20", "--json", "-q"]
    res = CliRunner().invoke(_cli(), args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["asw"] and summary["isi"] and summary["train_pixels"] == 32
    assert summary["output"].endswith("s_classes.png") and 0 <= summary["oa"] <= 1
    assert _png_pixels((tmp_path / "s_classes.png").read_bytes()).shape[0] >= 256
    again = CliRunner().invoke(_cli(), args)
    assert again.exit_code == 6 and "exists" in again.stderr


def test_cli_classify_cube_npy_map_and_errors(scene, tmp_path):
    np.save(tmp_path / "cube.npy", scene["cube"])
    np.save(tmp_path / "gt.npy", scene["labels"])
    np.save(tmp_path / "small.npy", scene["labels"][:16])
    base = ["classify", str(tmp_path / "cube.npy"), "-q"]
    res = CliRunner().invoke(_cli(), base + ["--labels", str(tmp_path / "gt.npy"), "--steps", "10",
                                             "-o", str(tmp_path / "map.npy")])
    assert res.exit_code == 0, res.output
    assert "OA" in res.stdout and "SpectralFormer" in res.stdout and "ASW" not in res.stdout
    assert np.load(tmp_path / "map.npy").shape == (32, 32)
    bad = CliRunner().invoke(_cli(), base + ["--labels", str(tmp_path / "small.npy"), "-o", str(tmp_path / "x.png")])
    assert bad.exit_code == 3 and bad.stderr.count("\n") == 1 and "16 x 32 but the cube is 32 x 32" in bad.stderr
    usage = CliRunner().invoke(_cli(), base + ["--labels", str(tmp_path / "gt.npy"), "--isi"])
    assert usage.exit_code == 2 and "needs a .hnr" in usage.stderr
    both = CliRunner().invoke(_cli(), base + ["--labels", "x", "--train-mask", "y", "--train-per-class", "3"])
    assert both.exit_code == 2
