"""Makes the worked example of formats/HNR.md ("Worked example: a lossless file"): an 8 x 8 x 4 uint16
crop of the Houston scene (rows 40-47, columns 60-67, bands 10-13, given the wavelengths 450, 500, 550
and 600 nm) coded with `--lossless`, and prints its annotated hex dump and the first samples' trace.

    python tests/make_lossless_example.py            # the annotated dump (as pasted into HNR.md)

The annotation is parsed from the file's bytes (tests/educational_decoder.py's container layer and
tests/lossless_educational.py's payload reader), so it cannot drift from them;
tests/test_lossless.py checks that the library still writes this file (but for `meta`) and that the
educational decoder reads it back exactly.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import educational_decoder as ed  # noqa: E402
import lossless_educational as le  # noqa: E402

DATA = HERE.parents[1] / "shared" / "data"
ROWS, COLS, BANDS = slice(40, 48), slice(60, 68), slice(10, 14)
WAVELENGTHS = np.array([450.0, 500.0, 550.0, 600.0])


def example_cube() -> np.ndarray:
    from hinercodec.formats.cubeio import read_cube

    return np.ascontiguousarray(read_cube(DATA / "houston2018_crop.mat").data[ROWS, COLS, BANDS])


def example_file() -> bytes:
    from hinercodec import api

    return api.encode(example_cube(), WAVELENGTHS, api.EncodeOptions(lossless=True)).data


class Dump:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def field(self, offset: int, raw: bytes, note: str) -> None:
        for i in range(0, max(len(raw), 1), 16):
            text = " ".join(f"{b:02x}" for b in raw[i:i + 16])
            self.lines.append(f"{offset + i:04x}: {text:<47}  {note if i == 0 else ''}".rstrip())


def annotate(data: bytes) -> str:
    d = Dump()
    d.field(0, data[:8], "signature")
    pos = 8
    for kind, body in ed.read_chunks(data):
        d.field(pos, data[pos:pos + 8], f"{kind} length {len(body)}, \"{kind}\"")
        start = pos + 8
        if kind == "HHDR":
            h, w, c = struct.unpack_from("<III", body, 4)
            d.field(start, body[:4], f"version {body[0]}.{body[1]}, dtype {body[2]} (uint16), reserved")
            d.field(start + 4, body[4:], f"H = {h}, W = {w}, C = {c}")
        elif kind == "meta":
            d.field(start, body, "zstd frame: " + ed.zstd_frame(body).decode())
        elif kind == "BNDS":
            raw = ed.zstd_frame(body)
            n = len(raw) // 8
            off = [float(v) for v in np.frombuffer(raw, "<f4", n, 0)]
            sc = [float(v) for v in np.frombuffer(raw, "<f4", n, 4 * n)]
            d.field(start, body, f"zstd frame of offset f32[{n}] = {off}, scale f32[{n}] = {sc} (not used)")
        elif kind == "WAVE":
            d.field(start, body[:1], f"kind {body[0]}: evenly spaced")
            first, last = struct.unpack_from("<dd", body, 1)
            d.field(start + 1, body[1:9], f"first f64 = {first!r}")
            d.field(start + 9, body[9:], f"last f64 = {last!r}")
        elif kind == "MODL":
            d.field(start, body, "zstd frame of " + ed.zstd_frame(body).decode())
        elif kind == "CODE":
            annotate_payload(d, start, body)
        d.field(start + len(body), data[start + len(body):start + len(body) + 4], "CRC-32")
        pos = start + len(body) + 4
    return "\n".join(d.lines)


def annotate_payload(d: Dump, base: int, p: bytes) -> None:
    """Integer payload (kind 0): magic, kind, C, bound flag and bounds, off, vmin, span, stream."""
    r = le.Reader(p[:-4])

    def field(note, read):
        start = r.p
        value = read()
        d.field(base + start, p[start:r.p], note.format(value))
        return value

    field("payload: magic \"HNL1\"", lambda: r.take(4))
    field("kind {} (integer)", r.u8)
    field("C = {} (varint)", r.uv)
    flag = field("bound flag {} (one bound for every band)", r.u8)
    for _ in range(1 if flag == 0 else 0):
        field("E = {} (varint)", r.uv)
    field("off = {} (zigzag varint)", r.sv)
    lo = field("vmin = {} (zigzag varint)", r.sv)
    span = field("span = {} (varint): every band's samples in [vmin, vmin + span]", r.uv)
    n = field("core stream length = {} (varint)", r.uv)
    s = r.p
    d.field(base + s, p[s:s + 4], f"core stream: version {p[s]}, P = {p[s + 1]}, mu = {p[s + 2]}, Q = {p[s + 3]}")
    d.field(base + s + 4, p[s + 4:s + n], f"core stream: range-coded bits ({n - 4} bytes)")
    d.field(base + s + n, p[s + n:], "payload CRC-32 (of everything before it)")
    assert s + n + 4 == len(p) and lo is not None and span is not None


def trace_lines(data: bytes, count: int = 6) -> list[str]:
    trace: list = []
    le.decode_file(data, trace)
    return [f"band {z}, y {y}, x {x}: prediction {pv}, residual {e}, ctx {ctx}, k {k}"
            for z, y, x, pv, e, ctx, k in trace[:count]]


if __name__ == "__main__":
    example = example_file()
    print(annotate(example))
    print()
    print("\n".join(trace_lines(example)))
    print(f"\n{len(example)} bytes", file=sys.stderr)
