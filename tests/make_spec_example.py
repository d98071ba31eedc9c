"""Makes the worked example of formats/HNR.md ("Worked example: a transform2 file"): a 16 x 16 x 3
uint16 crop of the Houston scene coded with the library, and prints its annotated hex dump.

    python tests/make_spec_example.py            # the annotated dump (as pasted into HNR.md)

The library (hinerc 0.5) writes the transform2 payload in the 1.1 form, as the data of a `CODE`
chunk, which is what the spec shows; `example_file()` returns the library's file unchanged
(tests/test_educational_decoder.py compares it with the dump and also decodes its 0.4-style TENS
form). The annotation is produced by parsing the file with tests/educational_decoder.py's building
blocks, so it cannot drift from the bytes.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import educational_decoder as ed

DATA = HERE.parents[1] / "shared" / "data"
ROWS, COLS, BANDS = slice(40, 56), slice(60, 76), slice(10, 13)
BPPPB = 4.5
EFFORT = 3  # the default (0.9-0.9.2 made the same bytes at effort 1; 0.9.3's effort 1 codes them otherwise)


def example_file() -> bytes:
    """The library's file of the example cube (format 1.1: the payload in a CODE chunk)."""
    from hinercodec.formats.cubeio import read_cube

    from hinercodec import api

    cube = read_cube(DATA / "houston2018_crop.mat")
    crop = np.ascontiguousarray(cube.data[ROWS, COLS, BANDS])
    wavelengths = np.array([450.0, 500.0, 550.0])  # evenly spaced: WAVE kind 1
    data = api.encode(crop, wavelengths, api.EncodeOptions(bpppb=BPPPB, effort=EFFORT)).data
    assert "CODE" in [k for k, _ in ed.read_chunks(data)], "the library no longer writes the 1.1 CODE form"
    return data


# ---------------------------------------------------------------- annotated dump

class Dump:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def field(self, offset: int, raw: bytes, note: str) -> None:
        for i in range(0, max(len(raw), 1), 16):
            part = raw[i:i + 16]
            text = " ".join(f"{b:02x}" for b in part)
            self.lines.append(f"{offset + i:04x}: {text:<47}  {note if i == 0 else ''}".rstrip())


def annotate(data: bytes) -> str:
    d = Dump()
    d.field(0, data[:8], "signature")
    pos = 8
    head = ed.Header(data)
    for kind, body in ed.read_chunks(data):
        d.field(pos, data[pos:pos + 8], f"{kind} length {len(body)}, \"{kind}\"")
        start = pos + 8
        if kind == "HHDR":
            d.field(start, body[:4], f"version {body[0]}.{body[1]}, dtype {body[2]} (uint16), reserved")
            d.field(start + 4, body[4:], f"H = {head.height}, W = {head.width}, C = {head.bands}")
        elif kind == "meta":
            d.field(start, body, "zstd frame: " + ed.zstd_frame(body).decode())
        elif kind == "BNDS":
            d.field(start, body, f"zstd frame of offset f32[3] = {list(map(float, head.offset))}, "
                                 f"scale f32[3] = {list(map(float, head.scale))}")
        elif kind == "WAVE":
            if body[0] == 1:
                first, last = struct.unpack_from("<dd", body, 1)
                d.field(start, body[:1], "kind 1: evenly spaced")
                d.field(start + 1, body[1:9], f"first f64 = {first!r}")
                d.field(start + 9, body[9:], f"last f64 = {last!r}")
            else:
                d.field(start, body, f"kind {body[0]}")
        elif kind == "MODL":
            d.field(start, body, "zstd frame of " + ed.zstd_frame(body).decode())
        elif kind in ("CODE", "TENS"):
            annotate_payload(d, start, body)
        d.field(start + len(body), data[start + len(body):start + len(body) + 4], "CRC-32")
        pos = start + len(body) + 4
    return "\n".join(d.lines)


def annotate_payload(d: Dump, base: int, p: bytes) -> None:
    """The transform payload: side section, then coefficient section (field by field)."""
    table_end = ed.read_rans_table(p, 0)[1]
    d.field(base, p[:table_end], "side: rANS table (A, params r|g|P-1, level changes)")
    size, pos = ed.varint(p, table_end)
    d.field(base + table_end, p[table_end:pos], f"side: stream length S = {size}")
    lanes = 1 << p[pos]
    d.field(base + pos, p[pos:pos + 1], f"side stream: lanes_log2 = {p[pos]} ({lanes} lane{'s' * (lanes > 1)})")
    d.field(base + pos + 1, p[pos + 1:pos + 1 + 4 * lanes], "side stream: initial lane states u32")
    d.field(base + pos + 1 + 4 * lanes, p[pos + 1 + 4 * lanes:pos + size], "side stream: words u16")
    pos += size
    raw_size, after = ed.varint(p, pos)
    d.field(base + pos, p[pos:after], f"side: raw bits length R = {raw_size}")
    if raw_size:
        d.field(base + after, p[after:after + raw_size], "side: raw bits (escape low bits)")
    c0 = after + raw_size
    q = p[c0:]
    used, pos = ed.varint(q, 0)
    ids_end = pos
    for _ in range(used):
        ids_end = ed.varint(q, ids_end)[1]
    d.field(base + c0, q[:ids_end], f"coefficients: U = {used} contexts, their gaps")
    fresh = ed.bits_msb(q, ids_end, used)
    pos = ids_end + (used + 7) // 8
    d.field(base + c0 + ids_end, q[ids_end:pos], f"fresh bits: {sum(fresh)} tables")
    n_tables = sum(fresh)
    kinds = ed.bits_msb(q, pos, n_tables)
    d.field(base + c0 + pos, q[pos:pos + (n_tables + 7) // 8], "kinds: " + "".join("P" if k else "E" for k in kinds)
            + " (P parametric, E explicit)")
    pos += (n_tables + 7) // 8
    for j, parametric in enumerate(kinds):
        end = pos + 3 if parametric else ed.read_rans_table(q, pos)[1]
        what = f"a = {q[pos]}, b = {q[pos + 1]}, top = {q[pos + 2]}" if parametric else "explicit rANS table"
        d.field(base + c0 + pos, q[pos:end], f"table {j}: {what}")
        pos = end
    n_signs, after = ed.varint(q, pos)
    listed, after2 = ed.varint(q, after)
    d.field(base + c0 + pos, q[pos:after2], f"signs N = {n_signs}, listed Q = {listed}")
    pos = after2
    if listed:
        d.field(base + c0 + pos, q[pos:pos + 17], "sign context map (136 bits)")
        d.field(base + c0 + pos + 17, q[pos + 17:pos + 17 + listed], "q of each listed sign context")
        pos += 17 + listed
    length, after = ed.varint(q, pos)
    d.field(base + c0 + pos, q[pos:after], f"stream length S = {length}")
    pos = after
    lanes = 1 << q[pos]
    d.field(base + c0 + pos, q[pos:pos + 1], f"stream: lanes_log2 = {q[pos]}")
    d.field(base + c0 + pos + 1, q[pos + 1:pos + 1 + 4 * lanes], "stream: initial lane states u32")
    d.field(base + c0 + pos + 1 + 4 * lanes, q[pos + 1 + 4 * lanes:pos + length], "stream: words u16")
    if len(q) > pos + length:
        d.field(base + c0 + pos + length, q[pos + length:], "raw bits (escape low bits)")


if __name__ == "__main__":
    example = example_file()
    print(annotate(example))
    print(f"\n{len(example)} bytes", file=sys.stderr)
