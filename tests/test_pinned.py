"""Pinned SHA-256 of encoder output on real scenes: the bytes a given hinerc writes for a given
input and options must not change silently (same files on every machine and run). A change of
these hashes is a change of the codec: bump the version, say why in CHANGELOG.md and HNR.md's
change list, and re-pin. The files carry the encoder's version (the meta chunk), so every version
bump re-pins them too; the file sizes beside the hashes must then stay the same."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from hinercodec import api
from hinercodec.formats.cubeio import read_cube

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

PINS = [  # scene, crop side (None: whole), options, bytes, sha256
    ("houston2018_crop.mat", 64, dict(bpppb=0.3, effort=1), 7333,
     "59c0400ad335d3dcb38a0c538311f9105904d80d08ad5cf47a014904d206e945"),
    ("samson.mat", 48, dict(bpppb=0.2, effort=2), 8935, "83c783a6bde17aa3d9be0a48fe7a5b35b059acc4084ff0b6f8a7a9fba6754f69"),
    ("pavia_centre_crop_v73.mat", 40, dict(bpppb=0.5, effort=1), 10200,
     "4306bcc3baa21737dca6d2fe39fba9797d139d3fa29feb187033a1dc5bfa6b9a"),
    ("houston2018_crop.mat", None, dict(lossless=True), 650543,
     "4ad0050dbfe0aa4d2c9c95094ac9031bc09eff3fbccd3ff3c391eea4a931ca6f"),
    ("houston2018_crop.mat", None, dict(max_error=4), 344035,
     "6b1abb4c78e8ad4c41dff4020d397e64e6ab61fe45762a0433f6872c37953f1a"),
    ("samson.mat", None, dict(lossless=True), 452390, "b7448a489b1b45ababe3bb9434f2ec35348946322a9f5d50d408139dfc69cb70"),
    pytest.param("houston2018_crop.mat", None, dict(bpppb=0.2, effort=3), 19579,
                 "db1a0d630cffb42b8123a77914aacd988fffa3463ced26f2c82170ffa93d2444", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("scene,crop,options,size,digest", PINS)
def test_encoder_output_is_pinned(scene: str, crop, options: dict, size: int, digest: str) -> None:
    if not (DATA / scene).is_file():
        pytest.skip(f"{DATA / scene} not found (the shared real scenes are needed for pinned hashes)")
    cube = read_cube(DATA / scene)
    x = cube.data if crop is None else np.ascontiguousarray(cube.data[:crop, :crop])
    data = api.encode(x, cube.wavelengths, **options).data
    assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest)
