"""The .hnr container: chunk framing, chunk meaning, and that damage never goes unnoticed."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from hinercodec.errors import CorruptFileError, InputError, UnsupportedFileError
from hinercodec.formats.container import SIGNATURE, Chunk, is_critical, read_chunks, write_chunks

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
READ_ERRORS = (CorruptFileError, UnsupportedFileError)


def _framed(kind: bytes, data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + kind + data + struct.pack("<I", zlib.crc32(kind + data))


# ---------------------------------------------------------------- chunk layer

def test_chunks_round_trip_and_golden_framing():
    chunks = [Chunk("HHDR", b"\x01\x02"), Chunk("abCD", b""), Chunk("HEND", b"")]
    data = write_chunks(chunks)
    assert data.hex() == ("89484e520d0a1a0a"  # signature
                          "02000000" "48484452" "0102" "f35f11b6"  # HHDR, 2 bytes
                          "00000000" "61624344" "7bc96843"  # abCD, empty
                          "00000000" "48454e44" "e707fe16")  # HEND
    assert data == SIGNATURE + _framed(b"HHDR", b"\x01\x02") + _framed(b"abCD", b"") + _framed(b"HEND", b"")
    assert read_chunks(data) == chunks
    assert read_chunks(bytearray(data)) == chunks


def test_is_critical():
    assert is_critical("HHDR") and is_critical("TILE") and is_critical("Tens")
    assert not is_critical("meta") and not is_critical("tEXT")


@pytest.mark.parametrize("chunks", [
    [], [Chunk("HHDR", b"")], [Chunk("HEND", b""), Chunk("HEND", b"")], [Chunk("HEN1", b""), Chunk("HEND", b"")],
    [Chunk("HHD", b""), Chunk("HEND", b"")], [Chunk("HEND", b"x")],
])
def test_write_chunks_refuses_unreadable_output(chunks):
    with pytest.raises(ValueError):
        write_chunks(chunks)


def test_signature_damage_is_named():
    good = write_chunks([Chunk("HEND", b"")])
    with pytest.raises(CorruptFileError, match=r"^not a \.hnr file \(bad signature\)$"):
        read_chunks(b"\x89PNG\r\n\x1a\n" + good[8:])
    with pytest.raises(CorruptFileError, match="newline"):
        read_chunks(good.replace(b"\r\n", b"\n"))
    with pytest.raises(CorruptFileError, match="7-bit"):
        read_chunks(bytes([good[0] & 0x7F]) + good[1:])
    with pytest.raises(CorruptFileError, match="truncated"):
        read_chunks(b"")


def test_chunk_layer_errors():
    good = write_chunks([Chunk("HHDR", b"abc"), Chunk("HEND", b"")])
    with pytest.raises(CorruptFileError, match=r"checksum mismatch in chunk 'HHDR' at byte 8: file is damaged"):
        read_chunks(good[:16] + b"x" + good[17:])
    with pytest.raises(CorruptFileError, match="truncated .hnr file .*without a HEND"):
        read_chunks(good[:-12])
    with pytest.raises(CorruptFileError, match="after the HEND"):
        read_chunks(good + b"\0")
    with pytest.raises(CorruptFileError, match="not empty"):
        read_chunks(SIGNATURE + _framed(b"HEND", b"x"))
    with pytest.raises(CorruptFileError, match="invalid chunk type"):  # valid CRC, foreign type bytes
        read_chunks(SIGNATURE + _framed(b"HH R", b"") + _framed(b"HEND", b""))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_read_chunks_fuzz_raises_only_corrupt(blob, signed):
    try:
        read_chunks(SIGNATURE + blob if signed else blob)
    except CorruptFileError:
        pass


# ---------------------------------------------------------------- file layer (needs formats.tensors)

@pytest.fixture(scope="module")
def tensors_mod():
    return pytest.importorskip("hinercodec.formats.tensors", reason="formats/tensors.py not importable")


@pytest.fixture(scope="module")
def hnr():
    return pytest.importorskip("hinercodec.formats.hnrfile")


@pytest.fixture(scope="module")
def houston():
    """Real houston cube (uint16, 48 bands) and its float32 wavelengths, 380-1050 nm evenly spaced."""
    if not DATA.is_dir():
        pytest.skip("../shared/data not found")
    from scipy.io import loadmat

    mat = loadmat(DATA / "houston2018_crop.mat")
    return mat["houston"], mat["wavelength_nm"].ravel()


def _tensors(mod) -> list:
    rng = np.random.default_rng(7)
    conv = mod.QuantTensor(shape=(4, 2, 3, 3), bits=8, symbols=rng.integers(0, 256, (4, 2, 3, 3)),
                           offset=rng.normal(size=4).astype(np.float32), step=np.full(4, 0.01, np.float32))
    bias = mod.QuantTensor(shape=(4,), bits=5, symbols=rng.integers(0, 32, 4),
                           offset=np.array([-0.5], np.float32), step=np.array([0.03], np.float32))
    return [conv, bias]


@pytest.fixture(scope="module")
def small_file(hnr, tensors_mod, houston):
    """A real-looking file: houston's header, band ranges and wavelengths, a tiny quantised model."""
    cube, nm = houston
    flat = cube[:8, :8].reshape(-1, cube.shape[2]).astype(np.float64)
    lo, hi = flat.min(0), flat.max(0)
    f = hnr.HnrFile(height=8, width=8, bands=cube.shape[2], dtype=cube.dtype, band_offset=lo, band_scale=hi - lo,
                    wavelengths=nm, model_config={"model": "hiner", "channels": [8, 4], "seed": 0},
                    tensors=_tensors(tensors_mod), meta={"encoder": "hinerc 0.1.0"})
    return f, hnr.pack(f)


def _same_tensors(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert tuple(x.shape) == tuple(y.shape) and x.bits == y.bits
        np.testing.assert_array_equal(x.symbols, y.symbols)
        np.testing.assert_array_equal(x.offset, y.offset)
        np.testing.assert_array_equal(x.step, y.step)


def test_round_trip(hnr, small_file):
    f, data = small_file
    g = hnr.unpack(data)
    assert g.shape == f.shape == (8, 8, 48) and g.dtype == np.uint16 and g.version == (1, 0)
    np.testing.assert_array_equal(g.band_offset, np.float32(f.band_offset))
    np.testing.assert_array_equal(g.band_scale, np.float32(f.band_scale))
    assert g.band_offset.dtype == g.band_scale.dtype == np.float32
    np.testing.assert_array_equal(g.wavelengths.astype(np.float32), f.wavelengths)
    assert g.model_config == f.model_config and g.meta == f.meta
    _same_tensors(g.tensors, f.tensors)
    assert sum(g.chunk_sizes.values()) + len(SIGNATURE) == len(data)
    assert list(g.chunk_sizes) == ["HHDR", "meta", "BNDS", "WAVE", "MODL", "TENS", "HEND"]
    assert hnr.pack(f) == data  # deterministic
    t = g.band_positions()
    assert t[0] == 0 and t[-1] == 1 and np.allclose(np.diff(t), 1 / 47)


def test_wave_kinds(hnr, tensors_mod, houston):
    def wave_of(nm, bands):
        f = hnr.HnrFile(1, 1, bands, np.float32, np.zeros(bands), np.ones(bands), nm, {}, [])
        data = hnr.pack(f)
        return read_chunks(data)[2].data, hnr.unpack(data)

    wave, g = wave_of(houston[1], 48)  # float32 evenly spaced 380..1050 nm -> kind 1, 17 bytes
    assert wave == b"\x01" + struct.pack("<dd", 380.0, 1050.0)
    np.testing.assert_array_equal(g.wavelengths.astype(np.float32), houston[1])
    assert wave_of(houston[1][None, :], 48)[0][0] == 1  # a MATLAB 1 x C row vector is fine too
    if not (DATA / "aviris_indian_pines_wavelengths.npz").exists():
        pytest.skip("../shared/data not found")
    aviris = np.load(DATA / "aviris_indian_pines_wavelengths.npz")["wavelength_nm_220"]
    wave, g = wave_of(aviris, 220)  # irregular and overlapping spectrometers -> explicit table
    assert wave[0] == 2
    np.testing.assert_array_equal(g.wavelengths, aviris)
    t = g.band_positions()
    assert t.min() == 0 and t.max() == 1 and np.all(np.diff(t)[:30] > 0) and np.diff(t)[30] < 0
    wave, g = wave_of(None, 5)
    assert wave == b"\x00" and g.wavelengths is None
    np.testing.assert_array_equal(g.band_positions(), [0, 0.25, 0.5, 0.75, 1])
    wave, g = wave_of(np.array([900.0, 700.0, 500.0]), 3)  # decreasing, even
    assert wave[0] == 1 and list(g.band_positions()) == [0, 0.5, 1]
    wave, g = wave_of(np.array([550.0]), 1)  # one band: explicit, position 0
    assert wave[0] == 2 and list(g.wavelengths) == [550.0] and list(g.band_positions()) == [0]


@pytest.mark.parametrize("nm, bands", [
    (np.array([400.0, np.nan, 600.0]), 3), (np.array([400.0, 500.0]), 3),
    (np.array([400.0, 700.0, 600.0]), 3), (np.array([500.0, 500.0]), 2),
])
def test_pack_refuses_bad_wavelengths(hnr, tensors_mod, nm, bands):
    f = hnr.HnrFile(1, 1, bands, np.uint8, np.zeros(bands), np.ones(bands), nm, {}, [])
    with pytest.raises(InputError):
        hnr.pack(f)


def test_pack_refuses_bad_fields(hnr, tensors_mod):
    with pytest.raises(InputError, match="int64"):
        hnr.pack(hnr.HnrFile(1, 1, 1, np.int64, [0.0], [1.0], None, {}, []))
    with pytest.raises(ValueError):
        hnr.pack(hnr.HnrFile(1, 1, 2, np.uint8, [0.0], [1.0, 1.0], None, {}, []))
    with pytest.raises(ValueError):
        hnr.pack(hnr.HnrFile(1, 1, 1, np.uint8, [np.inf], [1.0], None, {}, []))
    with pytest.raises(ValueError):
        hnr.pack(hnr.HnrFile(0, 1, 1, np.uint8, [0.0], [1.0], None, {}, []))
    for dtype in ["uint8", "int8", ">u2", "<i2", "uint32", "int32", "float16", ">f4", "float64"]:
        f = hnr.HnrFile(1, 1, 1, np.dtype(dtype), [0.0], [1.0], None, {}, [])
        assert hnr.unpack(hnr.pack(f)).dtype == np.dtype(dtype).newbyteorder("=")


def _edit(data: bytes, fn) -> bytes:
    """Rewrite a file's chunk list with valid framing, as a buggy or newer writer would."""
    return write_chunks(fn(read_chunks(data)))


def _replace(chunks: list, kind: str, payload: bytes) -> list:
    return [Chunk(c.type, payload) if c.type == kind else c for c in chunks]


@pytest.mark.parametrize("fn, message", [
    (lambda c: [c[0], c[1], c[3], c[2], *c[4:]], "out of order"),  # BNDS <-> WAVE
    (lambda c: [c[1], c[0], *c[2:]], "first chunk is 'meta'"),
    (lambda c: [c[0], *c[2:4], *c[5:]], "missing MODL"),
    (lambda c: [*c[:-1], c[-2], c[-1]], "duplicate TENS"),
    (lambda c: [*c[:-1], c[1], c[-1]], "duplicate meta"),
    (lambda c: _replace(c, "HHDR", c[0].data + b"\0"), "HHDR chunk is 17 bytes"),
    (lambda c: _replace(c, "HHDR", c[0].data[:4] + b"\0" * 4 + c[0].data[8:]), "empty cube"),
    (lambda c: _replace(c, "BNDS", c[2].data[:-1]), "BNDS"),
    (lambda c: _replace(c, "BNDS", zstandard.ZstdCompressor().compress(b"\0" * 383)), "383 bytes, expected 384"),
    (lambda c: _replace(c, "BNDS", c[2].data + b"\0"), "extra bytes"),
    (lambda c: _replace(c, "BNDS", zstandard.ZstdCompressor().compress(b"\xff" * 384)), "non-finite"),
    (lambda c: _replace(c, "BNDS", zstandard.ZstdCompressor(write_content_size=False).compress(b"\0" * 384)),
     "does not declare"),
    (lambda c: _replace(c, "WAVE", c[3].data + b"\0"), "WAVE"),
    (lambda c: _replace(c, "WAVE", b"\x01" + struct.pack("<dd", 1.0, 1.0)), "invalid even spacing"),
    (lambda c: _replace(c, "MODL", zstandard.ZstdCompressor().compress(b"[1,2]")), "not an object"),
    (lambda c: _replace(c, "MODL", zstandard.ZstdCompressor().compress(b'{"a":NaN}')), "valid UTF-8 JSON"),
    (lambda c: _replace(c, "MODL", zstandard.ZstdCompressor().compress(b"[" * 100000)), "valid UTF-8 JSON"),
    (lambda c: _replace(c, "meta", zstandard.ZstdCompressor().compress(b"\xff{}")), "valid UTF-8 JSON"),
    (lambda c: _replace(c, "MODL", b"{}"), "does not hold a zstd frame"),
])
def test_inconsistent_files_are_corrupt(hnr, small_file, fn, message):
    with pytest.raises(CorruptFileError, match=message):
        hnr.unpack(_edit(small_file[1], fn))


def test_unknown_chunks(hnr, small_file):
    data = small_file[1]
    extra = _edit(data, lambda c: [c[0], Chunk("tIME", b"whenever"), *c[1:-1], Chunk("zzzz", b""), c[-1]])
    g = hnr.unpack(extra)
    assert g.chunk_sizes["tIME"] == 20 and g.chunk_sizes["zzzz"] == 12
    _same_tensors(g.tensors, small_file[0].tensors)
    tiled = _edit(data, lambda c: [*c[:-2], Chunk("TILE", b"\0" * 8), *c[-2:]])
    with pytest.raises(UnsupportedFileError, match=r"^needs a newer hinerc: unknown critical chunk 'TILE'$"):
        hnr.unpack(tiled)
    wave3 = _edit(data, lambda c: _replace(c, "WAVE", b"\x03"))
    with pytest.raises(UnsupportedFileError, match="WAVE kind 3"):
        hnr.unpack(wave3)
    dtype = _edit(data, lambda c: _replace(c, "HHDR", c[0].data[:2] + b"\x0a" + c[0].data[3:]))
    with pytest.raises(UnsupportedFileError, match="sample type code 10"):
        hnr.unpack(dtype)


def test_versions(hnr, small_file):
    data = small_file[1]
    header = read_chunks(data)[0].data
    v3 = _edit(data, lambda c: _replace(c, "HHDR", b"\x03\x00" + b"whatever a 3.0 header holds"))
    with pytest.raises(UnsupportedFileError, match=r"^format version 3\.0 is newer than this hinerc reads "
                                                   r"\(1\.x and 2\.x\); upgrade hinerc$"):
        hnr.unpack(v3)
    with pytest.raises(UnsupportedFileError):
        hnr.unpack(_edit(data, lambda c: _replace(c, "HHDR", b"\x00\x09" + header[2:])))
    # A newer minor may append HHDR fields and add ancillary chunks: still read.
    v13 = _edit(data, lambda c: [_replace(c, "HHDR", b"\x01\x03" + header[2:] + b"new")[0],
                                 Chunk("sPEC", b"new ancillary"), *c[1:]])
    g = hnr.unpack(v13)
    assert g.version == (1, 3) and g.shape == (8, 8, 48)


def test_every_bit_flip_is_detected(hnr, small_file):
    data = small_file[1]
    assert len(data) < 2000  # keeps the 8 * len(data) decodes fast
    buf = bytearray(data)
    for pos in range(len(buf)):
        for bit in range(8):
            buf[pos] ^= 1 << bit
            with pytest.raises(READ_ERRORS):
                hnr.unpack(bytes(buf))
            buf[pos] ^= 1 << bit


def test_every_truncation_and_trailing_garbage(hnr, small_file):
    data = small_file[1]
    for n in range(len(data)):
        with pytest.raises(CorruptFileError, match="truncated|bad signature"):
            hnr.unpack(data[:n])
    for tail in [b"\0", b"\n", b"HEND", data]:
        with pytest.raises(CorruptFileError, match="after the HEND"):
            hnr.unpack(data + tail)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzzed_chunk_payloads_raise_only_file_errors(hnr, small_file, draw):
    """Payloads with valid CRCs (a buggy writer, or a crafted file) still give only file errors."""
    chunks = read_chunks(small_file[1])
    i = draw.draw(st.integers(0, len(chunks) - 2))
    payload = bytearray(chunks[i].data)
    if payload and draw.draw(st.booleans()):
        for _ in range(draw.draw(st.integers(1, 4))):
            payload[draw.draw(st.integers(0, len(payload) - 1))] = draw.draw(st.integers(0, 255))
        payload = payload[:draw.draw(st.integers(0, len(payload)))] + draw.draw(st.binary(max_size=4))
    else:
        payload = draw.draw(st.binary(max_size=64))
    chunks[i] = Chunk(chunks[i].type, bytes(payload))
    try:
        hnr.unpack(write_chunks(chunks))
    except READ_ERRORS:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_unpack_fuzz_raises_only_file_errors(hnr, tensors_mod, blob):
    for data in (blob, SIGNATURE + blob):
        with pytest.raises(READ_ERRORS):
            hnr.unpack(data)


def test_json_is_compact_and_sorted(hnr, small_file):
    modl = read_chunks(small_file[1])[4]
    raw = zstandard.ZstdDecompressor().decompress(modl.data)
    assert raw == b'{"channels":[8,4],"model":"hiner","seed":0}'
    assert json.loads(raw) == small_file[0].model_config


GOLDEN = bytes.fromhex(  # the worked example of HNR.md
    "89484e520d0a1a0a100000004848445201000300040000000500000003000000"
    "13f90b47230000006d65746128b52ffd201ad100007b22656e636f646572223a"
    "2268696e65726320302e312e30227dda487c9821000000424e445328b52ffd20"
    "18c100000000c8420000f0420000b44200007a4500c0734500208045fed9fbd4"
    "1100000057415645010000000000207c400000000000508440c25aca2c1a0000"
    "004d4f444c28b52ffd20118900007b226d6f64656c223a2268696e6572227d45"
    "bd58011300000054454e530001430203000080bf0000803e0104f624de005c8a"
    "94670000000048454e44e707fe16")


def test_golden_file(hnr, tensors_mod):
    """Readers must keep reading these bytes; writers must keep writing them (else: a format change)."""
    g = hnr.unpack(GOLDEN)
    assert g.shape == (4, 5, 3) and g.dtype == np.uint16 and g.version == (1, 0)
    assert list(g.band_offset) == [100, 120, 90] and list(g.band_scale) == [4000, 3900, 4100]
    assert list(g.wavelengths) == [450, 550, 650] and list(g.band_positions()) == [0, 0.5, 1]
    assert g.model_config == {"model": "hiner"} and g.meta == {"encoder": "hinerc 0.1.0"}
    assert len(g.tensors) == 1
    np.testing.assert_array_equal(g.tensors[0].dequantize(), [[-1, -0.75, -0.5], [-0.25, -0.25, -0.25]])
    t = tensors_mod.QuantTensor((2, 3), 4, np.array([[0, 1, 2], [3, 3, 3]]), np.array([-1.0], np.float32),
                                np.array([0.25], np.float32))
    f = hnr.HnrFile(4, 5, 3, np.uint16, [100, 120, 90], [4000, 3900, 4100], [450.0, 550.0, 650.0],
                    {"model": "hiner"}, [t], meta={"encoder": "hinerc 0.1.0"})
    assert hnr.pack(f) == GOLDEN


def test_container_modules_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, hinercodec.formats.container, hinercodec.formats.hnrfile; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.just(0.0), st.floats(1e-30, 1e6), st.floats(-1e6, -1e-30)),
       st.one_of(st.just(0.0), st.floats(1e-30, 1e6)))  # within f32's normal range
def test_band_normalisation_holds_the_range_with_few_bits(lo: float, span: float) -> None:
    """BNDS values keep hnrfile.BNDS_BITS significant bits, hold [lo, hi], pass it by little and
    never cross zero; a constant band keeps its value exactly."""
    from hinercodec.formats.hnrfile import BNDS_BITS, band_normalisation

    hi = lo + span
    offset, scale = band_normalisation(np.array([lo]), np.array([hi]))
    o, s = float(offset[0]), float(scale[0])
    if hi <= lo:
        assert s == 0.0 and o == float(np.float32(lo))
        return
    assert o <= lo and o + s >= hi
    assert lo - o <= abs(lo) * 2.0 ** -BNDS_BITS
    assert s <= (hi - o) * (1 + 2.0 ** -BNDS_BITS)
    assert (o >= 0) == (lo >= 0) or o == 0.0
    for v in (o, s):  # few significant bits: the low bytes of the f32 are zero
        m, _ = np.frexp(v)
        assert v == 0.0 or float(m * 2 ** (BNDS_BITS + 1)).is_integer()
