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

PINS = [  # scene, crop side (None: whole), options, bytes, sha256 (hinerc 0.9.7: every hash re-pinned for the version
    # string in the meta chunk, every size unchanged; 0.9.3 changed --effort 1's sizes: its rANS tables are
    # parametric only (encoder.EXPLICIT_EFFORT) and its images the search's projections (encoder.REFIT_EFFORT),
    # 7333 -> 7361 and 10200 -> 10166 bytes)
    ("houston2018_crop.mat", 64, dict(bpppb=0.3, effort=1), 7361,
     "29595b794a76966b7b94259b1ba45fe91cdaed3d94c12bbe41ca20f8f34fbfae"),
    ("samson.mat", 48, dict(bpppb=0.2, effort=2), 8935, "0c8d185ef43c4e458f1e8ba47a5cb01095504bdefb31d942589606aa973614cf"),
    ("pavia_centre_crop_v73.mat", 40, dict(bpppb=0.5, effort=1), 10166,
     "8dfd8f1e56f3ca3012f65ebe2fc960ac3f976493b7a2633e9cb85140f5acce32"),
    # lossless core stream version 4 (second stage of 14 inputs, step 3/256, column period Q; Q = 1 on these):
    # re-pinned, -0.7 % / -1.2 % / -0.7 % against version 3 (645623, 339699, 448942 bytes)
    ("houston2018_crop.mat", None, dict(lossless=True), 641326,
     "1c2592d76cc2c2f26ce53633f3d8e57b527ef7f0873bdac8753eb195b5351c05"),
    ("houston2018_crop.mat", None, dict(max_error=4), 335708,
     "9c04f3f38c13ed259529fb41ed8611d358d4bab6498d1c56e996af5396f0a3b0"),
    ("samson.mat", None, dict(lossless=True), 445601, "c90f807435da8da702b40ea2cd3da8ccd371d69ec85f75f52d23677f3824a795"),
    pytest.param("houston2018_crop.mat", None, dict(bpppb=0.2, effort=3), 19579,
                 "0736c3f92d21085f8ee7451429704d43adcc0f7a9b73e08dde6048e895c86047", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("scene,crop,options,size,digest", PINS)
def test_encoder_output_is_pinned(scene: str, crop, options: dict, size: int, digest: str) -> None:
    if not (DATA / scene).is_file():
        pytest.skip(f"{DATA / scene} not found (the shared real scenes are needed for pinned hashes)")
    cube = read_cube(DATA / scene)
    x = cube.data if crop is None else np.ascontiguousarray(cube.data[:crop, :crop])
    data = api.encode(x, cube.wavelengths, **options).data
    assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest)
