"""The educational decoder (tests/educational_decoder.py, written from formats/HNR.md alone) and the
library's decoder agree BIT FOR BIT: on the golden transform files, on the worked example of
HNR.md, and on freshly encoded real scenes, for the coded bands and between them (interp).

Bit for bit is the point of HNR.md's "Reconstruction" section: two correct decoders give the same
samples (for float sample types the same bits), not samples within a tolerance."""
from __future__ import annotations

import ast
import re
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import educational_decoder as ed

DATA = HERE.parents[1] / "shared" / "data"
SPEC = HERE.parent / "formats" / "HNR.md"
POSITIONS = (0.0, 0.3, 0.5, 0.77, 1.0)


def golden_files() -> dict[str, bytes]:
    """GOLDEN_TRANSFORM and GOLDEN_TRANSFORM2 of tests/test_transform.py, read from its source
    (importing it would import torch and hypothesis)."""
    tree = ast.parse((HERE / "test_transform.py").read_text())
    out = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in ("GOLDEN_TRANSFORM", "GOLDEN_TRANSFORM2")):
            out[node.targets[0].id] = bytes.fromhex(ast.literal_eval(node.value.args[0]))
    assert len(out) == 2, "the golden transform files moved out of tests/test_transform.py"
    return out


def spec_example() -> bytes:
    """The bytes of HNR.md's worked transform2 example, from its hex dump."""
    text = SPEC.read_text()
    start = text.index("## Worked example: a transform2 file")
    block = text[start:].split("```")[1]
    out = bytearray()
    for line in block.splitlines():
        m = re.match(r"^([0-9a-f]{4}): ((?:[0-9a-f]{2} )*[0-9a-f]{2})", line)
        if m:
            assert int(m.group(1), 16) == len(out), f"dump offset {m.group(1)}"
            out += bytes.fromhex(m.group(2))
    return bytes(out)


def as_tens_file(data: bytes) -> bytes:
    """The 1.0 form of a 1.1 file: its CODE payload stored as a TENS chunk of coder 2 (what hinerc
    0.3-0.4 write), which both decoders still read."""
    def chunk(kind: str, body: bytes) -> bytes:
        return struct.pack("<I", len(body)) + kind.encode() + body + struct.pack("<I", zlib.crc32(kind.encode() + body))

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    out = bytearray(data[:8])
    for kind, body in ed.read_chunks(data):
        if kind == "HHDR":
            body = body[:1] + b"\x00" + body[2:]
        elif kind == "CODE":
            kind, body = "TENS", b"\x02\x01\x27" + varint(len(body)) + struct.pack("<ff", 0.0, 1.0) + body
        out += chunk(kind, body)
    return bytes(out)


def library_decode(data: bytes, t: float | None = None) -> np.ndarray:
    from hinercodec import api

    return api.decode(data) if t is None else api.interp(data, lambdas=[t])[:, :, 0]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8))


def check_agree(data: bytes) -> None:
    mine = ed.decode_file(data)
    theirs = library_decode(data)
    assert same_bits(mine, theirs), f"coded bands differ by up to {np.abs(mine.astype(float) - theirs).max()}"
    for t in POSITIONS:
        mine, theirs = ed.decode_at(data, t), library_decode(data, t)
        assert same_bits(mine, theirs), f"band at t = {t} differs by up to {np.abs(mine.astype(float) - theirs).max()}"


@pytest.mark.parametrize("name", ["GOLDEN_TRANSFORM", "GOLDEN_TRANSFORM2"])
def test_golden_files_bit_for_bit(name: str) -> None:
    check_agree(golden_files()[name])


def test_spec_example_bit_for_bit() -> None:
    data = spec_example()
    assert ed.Header(data).model["model"] == "transform2"
    check_agree(data)


def test_spec_example_is_what_the_script_makes() -> None:
    """The dump in HNR.md is the library's file of the example (what tests/make_spec_example.py
    prints), up to the meta chunk, which names the encoder's version."""
    if not (DATA / "houston2018_crop.mat").exists():
        pytest.skip(f"{DATA / 'houston2018_crop.mat'} is not available (the shared data folder)")
    import make_spec_example

    made = make_spec_example.example_file()
    strip = [(k, b) for k, b in ed.read_chunks(made) if k != "meta"]
    assert strip == [(k, b) for k, b in ed.read_chunks(spec_example()) if k != "meta"]


def test_tens_form_bit_for_bit() -> None:
    """A 0.4-style file (HHDR 1.0, the payload in a TENS chunk of coder 2): both decoders read it,
    and it decodes to the same samples as its 1.1 CODE form."""
    data = spec_example()
    tens = as_tens_file(data)
    assert [k for k, _ in ed.read_chunks(tens) if k[0].isupper()] == ["HHDR", "BNDS", "WAVE", "MODL", "TENS", "HEND"]
    check_agree(tens)
    assert same_bits(ed.decode_file(tens), ed.decode_file(data))


SCENES = {"samson": ("samson.mat", np.s_[:48, :48], 0.3), "houston": ("houston2018_crop.mat", np.s_[:64, :80], 0.3)}


@pytest.mark.parametrize("scene", list(SCENES))
def test_real_scene_bit_for_bit(scene: str) -> None:
    fname, crop, bpppb = SCENES[scene]
    if not (DATA / fname).exists():
        pytest.skip(f"{DATA / fname} is not available (the shared data folder)")
    from hinercodec.formats.cubeio import read_cube

    from hinercodec import api

    cube = read_cube(DATA / fname)
    data = api.encode(np.ascontiguousarray(cube.data[crop]), cube.wavelengths,
                      api.EncodeOptions(bpppb=bpppb, effort=1)).data
    check_agree(data)


def test_damage_is_refused() -> None:
    data = bytearray(spec_example())
    data[len(data) // 2] ^= 0x10
    with pytest.raises(ed.FormatError):
        ed.decode_file(bytes(data))
