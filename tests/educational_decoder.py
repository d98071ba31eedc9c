"""A deliberately simple decoder of .hnr 1.x files of models `transform` and `transform2`,
written from formats/HNR.md alone (no import from hinercodec), in the spirit of zstd's
doc/educational_decoder: clarity over speed.

It reads an untiled file (format 1.0 with a TENS chunk of coder 2, or 1.1 with a CODE chunk),
decodes the transform payload (side section, coefficient section) with plain loops, and rebuilds
the cube with the reconstruction arithmetic of HNR.md ("Reconstruction"), step by step in IEEE
binary64, so that its output is bit for bit the one every conforming decoder gives.

    decode_file(data) -> H x W x C array in the file's sample type (the coded bands)
    decode_at(data, t) -> H x W array: the band at normalised wavelength t in [0, 1]

Only numpy, zstandard, zlib, json and struct. Every check HNR.md asks of a reader raises
`FormatError` (damaged) or `Unsupported` (needs a newer reader).
"""
from __future__ import annotations

import bisect
import json
import struct
import zlib

import numpy as np
import zstandard


class FormatError(ValueError):
    """The file is corrupt."""


class Unsupported(ValueError):
    """The file needs a reader of a newer version."""


def need(condition: bool, message: str) -> None:
    if not condition:
        raise FormatError(message)


# ================================================================ container (HNR.md "Chunk framing")

SIGNATURE = b"\x89HNR\r\n\x1a\n"
DTYPES = {1: "u1", 2: "i1", 3: "u2", 4: "i2", 5: "u4", 6: "i4", 7: "f2", 8: "f4", 9: "f8"}
KNOWN_CRITICAL = ("HHDR", "BNDS", "WAVE", "MODL", "TENS", "CODE", "HEND")


def read_chunks(data: bytes) -> list[tuple[str, bytes]]:
    """The (type, data) of every chunk, after checking signature, framing, CRCs and HEND."""
    need(data[:8] == SIGNATURE, "not a .hnr file (bad signature)")
    chunks, pos = [], 8
    while pos < len(data):
        need(pos + 12 <= len(data), "truncated chunk header")
        (length,) = struct.unpack_from("<I", data, pos)
        kind = data[pos + 4:pos + 8]
        need(all(65 <= b <= 90 or 97 <= b <= 122 for b in kind), "chunk type is not four letters")
        need(pos + 12 + length <= len(data), "truncated chunk")
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack_from("<I", data, pos + 8 + length)
        need(zlib.crc32(kind + body) == crc, f"checksum mismatch in chunk {kind.decode()!r} at byte {pos}")
        chunks.append((kind.decode(), body))
        pos += 12 + length
        if kind == b"HEND":
            break
    need(bool(chunks) and chunks[-1][0] == "HEND" and not chunks[-1][1], "no (empty) HEND chunk: truncated")
    need(pos == len(data), "bytes after HEND")
    return chunks


def zstd_frame(frame: bytes, size: int | None = None) -> bytes:
    """One zstd frame that declares its size (checked against `size` when given)."""
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise FormatError(f"bad zstd frame: {exc}") from None
    need(declared >= 0, "zstd frame does not declare its size")
    need(size is None or declared == size, "zstd frame has the wrong size")
    obj = zstandard.ZstdDecompressor().decompressobj()
    try:
        out = obj.decompress(frame)
    except zstandard.ZstdError as exc:
        raise FormatError(f"bad zstd frame: {exc}") from None
    need(len(out) == declared and obj.eof and not obj.unused_data, "zstd frame is damaged or followed by bytes")
    return out


def varint(buf: bytes, pos: int, limit: int = 1 << 63) -> tuple[int, int]:
    """Unsigned LEB128, minimal, at most `limit`: (value, position after it)."""
    value, shift = 0, 0
    while True:
        need(pos < len(buf), "truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            need(not (byte == 0 and shift > 7), "non-minimal varint")
            break
        need(shift <= 63, "varint too long")
    need(value <= limit, "varint out of range")
    return value, pos


class Header:
    """What the chunks before the payload say: shape, type, BNDS, band positions, model, payload."""

    def __init__(self, data: bytes):
        chunks = read_chunks(bytes(data))
        need(chunks[0][0] == "HHDR", "the first chunk is not HHDR")
        hhdr = chunks[0][1]
        need(len(hhdr) >= 2, "HHDR too short")
        major, minor = hhdr[0], hhdr[1]
        if major != 1:
            raise Unsupported(f"format version {major}.{minor}: this reader reads 1.x untiled files")
        need(len(hhdr) == 16 or (minor > 1 and len(hhdr) > 16), "HHDR has the wrong length")
        code = hhdr[2]
        if code not in DTYPES:
            raise Unsupported(f"sample type code {code}")
        self.dtype = np.dtype("<" + DTYPES[code])
        self.height, self.width, self.bands = struct.unpack_from("<III", hhdr, 4)
        need(min(self.height, self.width, self.bands) >= 1, "empty cube")
        critical = [(kind, body) for kind, body in chunks if kind[0].isupper()]
        for kind, _ in critical:
            if kind not in KNOWN_CRITICAL:
                raise Unsupported(f"unknown critical chunk {kind!r}")
        order = [kind for kind, _ in critical]
        payload_chunk = "CODE" if "CODE" in order else "TENS"
        need(order == ["HHDR", "BNDS", "WAVE", "MODL", payload_chunk, "HEND"], f"critical chunks {order}")
        need(payload_chunk == "TENS" or minor >= 1, "a CODE chunk in a 1.0 file")
        body = dict(critical)
        c = self.bands
        bnds = zstd_frame(body["BNDS"], 8 * c)
        self.offset = np.frombuffer(bnds, "<f4", c, 0).astype(np.float64)  # binary32, widened exactly
        self.scale = np.frombuffer(bnds, "<f4", c, 4 * c).astype(np.float64)
        need(bool(np.isfinite(self.offset).all() and np.isfinite(self.scale).all()), "BNDS not finite")
        self.positions = wave_positions(body["WAVE"], c)
        self.model = json.loads(zstd_frame(body["MODL"]).decode("utf-8"),
                                parse_constant=lambda name: need(False, f"{name} in JSON"))
        need(isinstance(self.model, dict), "MODL is not a JSON object")
        if self.model.get("model") not in ("transform", "transform2"):
            raise Unsupported(f"model {self.model.get('model')!r} (this reader: transform, transform2)")
        self.payload = body["CODE"] if payload_chunk == "CODE" else stored_tens_payload(body["TENS"])
        # Nodata (hinerc 0.5): the `mask` chunk (which pixels are data) and `smta`'s nodata value.
        masks = [b for kind, b in chunks if kind == "mask"]
        need(len(masks) <= 1, "more than one mask chunk")
        self.valid = read_mask(masks[0], self.height, self.width) if masks else None
        smta = [b for kind, b in chunks if kind == "smta"]
        self.nodata = 0.0
        if smta:
            value = json.loads(zstd_frame(smta[0]).decode("utf-8")).get("nodata", 0.0)
            self.nodata = float(value)  # a number, or "nan" / "inf" / "-inf"


def read_mask(body: bytes, h: int, w: int) -> np.ndarray:
    """HNR.md "mask": H x W bool, True where a pixel is data. Version 2: per row, edges coded against
    the row above; version 1: run lengths (nodata, data, nodata, ...)."""
    need(len(body) >= 1, "empty mask chunk")
    if body[0] == 2:
        return read_mask_edges(zstd_frame(body[1:]), h, w)
    if body[0] != 1:
        raise Unsupported(f"mask version {body[0]}")
    runs = np.frombuffer(zstd_frame(body[1:]), "<u4")
    need(int(runs.sum(dtype=np.int64)) == h * w, "mask runs do not add up to H W")
    flat = np.repeat(np.arange(runs.size) % 2 == 1, runs)
    return flat.reshape(h, w)


def wave_positions(wave: bytes, c: int) -> np.ndarray:
    """Normalised band positions t_i (binary64), HNR.md "WAVE"."""
    need(len(wave) >= 1, "empty WAVE")
    kind = wave[0]
    if kind == 0:
        need(len(wave) == 1, "WAVE kind 0 with data")
        return np.arange(c) / max(c - 1, 1)
    if kind == 1:
        need(len(wave) == 17 and c >= 2, "WAVE kind 1 of the wrong size")
        first, last = struct.unpack_from("<dd", wave, 1)
        nm = first + np.arange(c) * ((last - first) / (c - 1))
        nm[-1] = last
    elif kind == 2:
        nm = np.frombuffer(zstd_frame(wave[1:], 8 * c), "<f8").astype(np.float64)
    else:
        raise Unsupported(f"WAVE kind {kind}")
    need(bool(np.isfinite(nm).all()), "wavelengths not finite")
    if c == 1:
        return np.zeros(1)
    need({nm[0], nm[-1]} == {nm.min(), nm.max()} and nm[0] != nm[-1], "first/last wavelength not the extremes")
    return (nm - nm[0]) / (nm[-1] - nm[0])


def stored_tens_payload(tens: bytes) -> bytes:
    """A TENS payload of coder 2 holding one 8-bit, 1-D tensor: its bytes (HNR.md "Stored section")."""
    need(len(tens) >= 1, "empty TENS")
    if tens[0] != 2:
        raise Unsupported(f"TENS coder {tens[0]}: this reader decodes the stored coder (2) only")
    count, pos = varint(tens, 1)
    need(count == 1, "the transform model has exactly one tensor")
    need(pos < len(tens) and tens[pos] == 0x27, "the transform payload is one 8-bit, 1-D tensor")
    n, pos = varint(tens, pos + 1, 1 << 40)
    need(n >= 1, "zero dimension")
    offset_step = struct.unpack_from("<ff", tens, pos)  # not used: the bytes are the payload
    need(all(np.isfinite(offset_step)), "offset/step not finite")
    pos += 8
    need(len(tens) - pos == n, "stored section of the wrong length")
    return tens[pos:]


# ================================================================ rANS (HNR.md "rANS section")

M_BITS = 12  # every table of a transform payload: P = 12
M = 1 << M_BITS
LOW = 1 << 16


class Table:
    """Frequencies of symbols 0..A-1 summing to M; `start[s]` their cumulative starts."""

    def __init__(self, freq: list[int]):
        need(sum(freq) == M and min(freq) >= 0, "table does not sum to M")
        self.freq = freq
        self.start = [0] * len(freq)
        for s in range(1, len(freq)):
            self.start[s] = self.start[s - 1] + freq[s - 1]

    def find(self, slot: int) -> int:
        return bisect.bisect_right(self.start, slot) - 1  # the last s with start[s] <= slot (freq > 0)


class Bits:
    """A bit reader, most significant bit first."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.bit = data, 8 * pos

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            need(self.bit < 8 * len(self.data), "bits run out")
            value = 2 * value + ((self.data[self.bit // 8] >> (7 - self.bit % 8)) & 1)
            self.bit += 1
        return value

    def end(self) -> int:
        """Check the padding to the next byte (zero bits): the byte position after it."""
        while self.bit % 8:
            need(self.read(1) == 0, "nonzero padding bit")
        return self.bit // 8


def level_value(c: int, r: int) -> int:
    if c < 1 << (r + 1):
        return c
    return ((1 << r) + (c % (1 << r))) << (c // (1 << r) - 1)


def read_rans_table(buf: bytes, pos: int) -> tuple[Table, int]:
    """An explicit rANS table (varint A, params, Exp-Golomb level changes): (table, next pos)."""
    a, pos = varint(buf, pos, 1 << 16)
    need(a >= 1 and pos < len(buf), "empty or truncated rANS table")
    params = buf[pos]
    r, g, p = params & 3, (params >> 2) & 3, (params >> 4) + 1
    need(p == M_BITS, f"table precision {p}: a transform payload uses P = 12")
    cap = (17 - r) << r
    bits = Bits(buf, pos + 1)
    levels, c = [], 0
    for _ in range(a):
        k = 0
        while bits.read(1):
            k += 1
            need(k <= 16, "invalid level code")
        z = (((1 << k) - 1 + bits.read(k)) << g) + bits.read(g)
        need(z <= 2 * cap, "invalid level code")
        c += z // 2 if z % 2 == 0 else -(z + 1) // 2
        need(0 <= c <= cap, "level out of range")
        levels.append(c)
    need(levels[-1] != 0, "the alphabet must end at a used symbol")
    pos = bits.end()
    implicit = levels.index(max(levels))
    freq = [level_value(c, r) if c else 0 for c in levels]
    freq[implicit] = 0
    freq[implicit] = M - sum(freq)
    need(freq[implicit] >= 1, "frequencies overfill M")
    return Table(freq), pos


class RansStream:
    """A coder-1 stream read group by group: lane of a group's i-th symbol is i mod K."""

    def __init__(self, data: bytes, total: int):
        need(total <= 4096 * len(data), "stream too short for its symbols")
        need(len(data) >= 1 and data[0] <= 8, "bad lane count")
        self.lanes = 1 << data[0]
        need(len(data) >= 1 + 4 * self.lanes and (len(data) - 1) % 2 == 0, "truncated stream")
        self.state = list(struct.unpack_from(f"<{self.lanes}I", data, 1))
        need(min(self.state) >= LOW, "a lane starts below 2**16")
        self.words = struct.unpack_from(f"<{(len(data) - 1 - 4 * self.lanes) // 2}H", data, 1 + 4 * self.lanes)
        self.next_word = 0

    def group(self, tables: list[Table]) -> list[int]:
        """Decode one group: symbol i with tables[i], in lane i mod K (each group starts at lane 0;
        the padding that fills the group's last step changes no state)."""
        out = []
        for i, table in enumerate(tables):
            lane = i % self.lanes
            x = self.state[lane]
            slot = x % M
            s = table.find(slot)
            x = table.freq[s] * (x // M) + slot - table.start[s]
            if x < LOW:
                need(self.next_word < len(self.words), "stream runs out of words")
                x = x * 65536 + self.words[self.next_word]
                self.next_word += 1
            self.state[lane] = x
            out.append(s)
        return out

    def finish(self) -> None:
        need(self.next_word == len(self.words), "words left after the last symbol")
        need(all(x == LOW for x in self.state), "a lane does not end in state 2**16")


# ================================================================ value symbols

ESCAPE = 31


def value_of(symbol: int, raw: Bits) -> int:
    """Value symbol -> integer (escapes take their n low bits from the raw bits)."""
    if symbol < ESCAPE:
        magnitude = (symbol + 1) // 2
        return -magnitude if symbol and symbol % 2 == 0 else magnitude
    n = (symbol - ESCAPE) // 2 + 4
    magnitude = (1 << n) + raw.read(n)
    return -magnitude if (symbol - ESCAPE) % 2 else magnitude


# ================================================================ side section

def read_side(payload: bytes, c: int, k: int) -> tuple[list[int], list[int], list[list[int]], int]:
    """(weight codes, mean integers, basis integers per component, position after the section)."""
    table, pos = read_rans_table(payload, 0)
    size, pos = varint(payload, pos, len(payload))
    need(pos + size <= len(payload), "side stream runs past the end")
    count = 2 * c + k * c
    stream = RansStream(payload[pos:pos + size], count)
    symbols = stream.group([table] * count)
    stream.finish()
    pos += size
    size, pos = varint(payload, pos, len(payload))
    need(pos + size <= len(payload), "side bits run past the end")
    raw = Bits(payload[pos:pos + size])
    values = [value_of(s, raw) for s in symbols]
    need(raw.end() == size, "trailing bytes after the side bits")
    weights = values[:c]
    need(all(abs(w) <= 96 for w in weights), "band weight out of range")
    restored = [restore_second_order(values[c + i * c:c + (i + 1) * c]) for i in range(k + 1)]
    return weights, restored[0], restored[1:], pos + size


def restore_second_order(residuals: list[int]) -> list[int]:
    v: list[int] = []
    for i, r in enumerate(residuals):
        prediction = 0 if i == 0 else v[0] if i == 1 else 2 * v[i - 1] - v[i - 2]
        v.append(r + prediction)
        need(abs(v[-1]) <= 1 << 53, "side value out of range")
    return v


# ================================================================ coefficient section

F16 = (65536, 62757, 60097, 57549, 55109, 52773, 50535, 48393, 46341, 44376, 42495, 40693, 38968, 37316,
       35734, 34219)
N_SIGN_CONTEXTS = 135


def is_negative_symbol(s: int) -> bool:
    return (s < ESCAPE and s > 0 and s % 2 == 0) or (s >= ESCAPE and (s - ESCAPE) % 2 == 1)


def parametric_table(a: int, b: int, top: int, magnitudes: bool) -> Table:
    """HNR.md "parametric table", integers only."""
    need(top <= 102, "parametric table too long")
    one, theta = 1 << 32, b << 24

    def power(e: int) -> int:
        result, base = one, theta
        while e:
            if e & 1:
                result = (result * base) >> 32
            base = (base * base) >> 32
            e >>= 1
        return result

    weights, dropped, run = [0], [False], one
    for s in range(1, top + 1):
        dropped.append(magnitudes and is_negative_symbol(s))
        if s < ESCAPE:
            weights.append(0 if dropped[-1] else run)
            if s % 2 == 0:
                run = (run * theta) >> 32
        else:
            n = (s - ESCAPE) // 2 + 4
            weights.append(0 if dropped[-1] else power((1 << n) - 1) * min(1 << n, 256 // max(1, 256 - b)))
    rest = max(1, (M * F16[a % 16]) >> (16 + a // 16))
    total = sum(weights)
    freq = [0] + [0 if d else (max(1, rest * w // total) if total else 1) for w, d in zip(weights[1:], dropped[1:])]
    freq[0] = M - sum(freq)
    need(freq[0] >= 1, "invalid parametric table")
    return Table(freq)


def bits_msb(buf: bytes, pos: int, count: int) -> list[bool]:
    need(pos + (count + 7) // 8 <= len(buf), "truncated bit field")
    return [bool((buf[pos + i // 8] >> (7 - i % 8)) & 1) for i in range(count)]


def band_shapes(h: int, w: int, levels: int) -> tuple[tuple[int, int], list[list[tuple[int, int]]]]:
    """(LL shape, per level finest first: shapes of HL, LH, HH)."""
    out = []
    for _ in range(levels):
        out.append([((h + 1) // 2, w // 2), (h // 2, (w + 1) // 2), (h // 2, w // 2)])
        h, w = (h + 1) // 2, (w + 1) // 2
    return (h, w), out


BUCKET_EDGES = (0, 1, 2, 3, 5, 8, 12, 20, 36, 64, 128, 256)


def bucket(act: int) -> int:
    return bisect.bisect_right(BUCKET_EDGES, act) - 1


def sign(v: int) -> int:
    return (v > 0) - (v < 0)


def read_mask_edges(raw: bytes, h: int, w: int) -> np.ndarray:
    """Mask version 2: for each row, d (the change of its edge count), then each edge as a signed
    difference from its reference (zigzag: u even -> u / 2, odd -> -(u + 1) / 2)."""
    def signed(u: int) -> int:
        return u // 2 if u % 2 == 0 else -(u + 1) // 2

    out = np.zeros((h, w), bool)
    pos, above = 0, []
    for y in range(h):
        d, pos = varint(raw, pos)
        n = len(above) + signed(d)
        need(0 <= n <= w + 1 and n % 2 == 0, "mask: bad edge count")
        edges = []
        for i in range(n):
            u, pos = varint(raw, pos)
            ref = above[i] if i < len(above) else (edges[i - 1] if i else 0)
            edges.append(ref + signed(u))
            need(0 <= edges[-1] <= w and (i == 0 or edges[-1] > edges[-2]), "mask: edges out of order")
        for start, end in zip(edges[0::2], edges[1::2]):
            out[y, start:end] = True
        above = edges
    need(pos == len(raw), "mask: bytes after the last row")
    return out


def band_masks(valid: np.ndarray, levels: int):
    """HNR.md "Nodata": where the shape-adaptive pyramid has coefficients: LL, [[HL, LH, HH] per level]."""
    m, out = valid, []
    for _ in range(levels):
        lo, hi = m[:, 0::2], m[:, 1::2]
        out.append([hi[0::2], lo[1::2], hi[1::2]])
        m = lo[0::2]
    return m, out


def read_coefficients(data: bytes, k: int, h: int, w: int, levels: int, signs: bool, present=None):
    """The integer pyramid: LL (k, lh, lw) and per level finest first [HL, LH, HH] (k, rows, cols).
    `present` (band_masks of a nodata mask): only those positions are coded, the others are 0."""
    need(0 <= levels <= 8, "too many levels")
    used, pos = varint(data, 0, 4096)
    ids, prev = [], -1
    for _ in range(used):
        gap, pos = varint(data, pos, 4096)
        prev += gap + 1
        ids.append(prev)
    fresh = bits_msb(data, pos, used)
    pos += (used + 7) // 8
    need(used > 0 and fresh[0], "no tables, or the first context shares a table")
    n_tables = sum(fresh)
    kinds = bits_msb(data, pos, n_tables)
    pos += (n_tables + 7) // 8
    tables: list[Table] = []
    table_of: dict[int, Table] = {}
    for cid, new in zip(ids, fresh):
        if new:
            if kinds[len(tables)]:
                need(pos + 3 <= len(data), "truncated parametric table")
                a, b, top = data[pos:pos + 3]
                tables.append(parametric_table(a, b, top, signs and cid != 0))
                pos += 3
            else:
                table, pos = read_rans_table(data, pos)
                tables.append(table)
        table_of[cid] = tables[-1]
    if present is None:
        total = k * h * w
    else:
        total = k * (int(present[0].sum()) + sum(int(m.sum()) for ms in present[1] for m in ms))
    n_signs, sign_table = 0, {}
    half = Table([M // 2, M // 2])
    if signs:
        n_signs, pos = varint(data, pos, total)
        listed, pos = varint(data, pos, N_SIGN_CONTEXTS)
        contexts = []
        if listed:
            bitmap = bits_msb(data, pos, 136)
            pos += 17
            contexts = [i for i, bit in enumerate(bitmap) if bit]
            need(len(contexts) == listed and contexts[-1] < N_SIGN_CONTEXTS, "sign map does not match its count")
        need(pos + listed <= len(data), "truncated sign tables")
        for cid, q in zip(contexts, data[pos:pos + listed]):
            need(q >= 1, "sign table q = 0")
            sign_table[cid] = Table([M - 16 * q, 16 * q])
        pos += listed
    length, pos = varint(data, pos, len(data))
    need(pos + length <= len(data), "stream runs past the end")
    stream = RansStream(data[pos:pos + length], total + n_signs)
    raw = Bits(data[pos + length:])

    def context_table(cid: int) -> Table:
        need(cid in table_of, "a context without a table")
        return table_of[cid]

    # 1. LL residuals of all images, context 0, then the LOCO-I median predictor undone.
    (lh, lw), det_shapes = band_shapes(h, w, levels)
    ll_present = np.ones((lh, lw), bool) if present is None else present[0]
    res = iter([value_of(s, raw) for s in stream.group([context_table(0)] * (k * int(ll_present.sum())))])
    ll = np.zeros((k, lh, lw), np.int64)
    for img in range(k):
        for i in range(lh):
            for j in range(lw):
                if not ll_present[i, j]:
                    continue  # not coded: 0
                b = int(ll[img, i - 1, j]) if i else 0
                if j == 0:
                    a = c = b
                else:
                    a = int(ll[img, i, j - 1])
                    c = int(ll[img, i - 1, j - 1]) if i else 0
                if c >= max(a, b):
                    pred = min(a, b)
                elif c <= min(a, b):
                    pred = max(a, b)
                else:
                    pred = a + b - c
                ll[img, i, j] = next(res) + pred

    # 2. Detail bands, coarsest level first; passes A, D, B; image by image.
    details: list = [None] * levels
    signs_read = 0
    for lev in range(levels - 1, -1, -1):
        bands = [np.zeros((k,) + shp, np.int64) for shp in det_shapes[lev]]
        parents = details[lev + 1] if lev + 1 < levels else None

        def parent_activity(parents: list | None, o: int, img: int, i: int, j: int) -> int:
            if parents is None:
                return 0
            p = parents[o]
            need(p.shape[1] > 0 and p.shape[2] > 0, "a detail band without a parent band")
            pi, pj = min(i // 2, p.shape[1] - 1), min(j // 2, p.shape[2] - 1)
            around = 0
            for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                if 0 <= pi + di < p.shape[1] and 0 <= pj + dj < p.shape[2]:
                    around += abs(int(p[img, pi + di, pj + dj]))
            return 2 * abs(int(p[img, pi, pj])) + around // 2

        def at(band: np.ndarray, img: int, i: int, j: int) -> int:
            return int(band[img, i, j]) if 0 <= i < band.shape[1] and 0 <= j < band.shape[2] else 0

        for phase in range(3):  # A: i, j even; D: i, j odd; B: i + j odd
            for img in range(k):
                places, tabs = [], []  # (orientation, i, j) in coding order
                for o, band in enumerate(bands):
                    if band.size == 0:
                        continue
                    for i in range(band.shape[1]):
                        for j in range(band.shape[2]):
                            if present is not None and not present[1][lev][o][i, j]:
                                continue
                            if (phase == 0 and i % 2 == 0 and j % 2 == 0) or (phase == 1 and i % 2 and j % 2) \
                                    or (phase == 2 and (i + j) % 2):
                                act = parent_activity(parents, o, img, i, j)
                                if phase == 1:
                                    act = act // 2 + sum(abs(at(band, img, i + di, j + dj))
                                                         for di in (-1, 1) for dj in (-1, 1))
                                elif phase == 2:
                                    act = act // 2 + sum(abs(at(band, img, i + di, j + dj))
                                                         for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)))
                                if img:
                                    act += abs(int(band[img - 1, i, j]))
                                places.append((o, i, j))
                                tabs.append(context_table(1 + (3 * lev + phase) * 12 + bucket(act)))
                symbols = stream.group(tabs)
                values = [value_of(s, raw) for s in symbols]
                if signs:
                    need(not any(is_negative_symbol(s) for s in symbols), "a negative magnitude")
                    nonzero = [n for n, v in enumerate(values) if v]
                    sign_tabs = []
                    for n in nonzero:
                        o, i, j = places[n]
                        band = bands[o]
                        wx, wy = ((-1, 1), (1, -1), (-1, -1))[o]
                        if phase == 0:
                            score = 0
                        elif phase == 1:
                            score = wx * wy * sum(sign(at(band, img, i + di, j + dj)) for di in (-1, 1) for dj in (-1, 1))
                        else:
                            score = (wx * (sign(at(band, img, i, j - 1)) + sign(at(band, img, i, j + 1)))
                                     + wy * (sign(at(band, img, i - 1, j)) + sign(at(band, img, i + 1, j))))
                        score = max(-2, min(2, score))
                        prev = sign(int(band[img - 1, i, j])) if img else 0
                        sctx = ((3 * min(lev, 2) + phase) * 5 + score + 2) * 3 + prev + 1
                        sign_tabs.append(sign_table.get(sctx, half))
                    signs_read += len(nonzero)
                    need(signs_read <= n_signs, "more nonzero coefficients than signs")
                    for n, s in zip(nonzero, stream.group(sign_tabs)):
                        values[n] = -values[n] if s else values[n]
                for (o, i, j), v in zip(places, values):
                    bands[o][img, i, j] = v
        details[lev] = bands
    need(signs_read == n_signs, "fewer nonzero coefficients than signs")
    stream.finish()
    need(raw.end() == len(raw.data), "trailing bytes after the raw bits")
    return ll, details


# ================================================================ reconstruction (binary64)

DETAIL_GAINS = (1.021095, 0.988119, 1.043775, 1.069557, 1.077244, 1.079272, 1.079787, 1.079916)
LL_GAINS = (1.0, 0.982954, 1.030602, 1.052093, 1.058473, 1.060154, 1.060581, 1.060688, 1.060715)
ALPHA, BETA, GAMMA, DELTA, K97 = -1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971, \
    1.230174104914001
SQRT2 = float(np.sqrt(2.0))


def dequantise(q: np.ndarray, offset: int, step: float) -> np.ndarray:
    return np.sign(q) * (np.abs(q) + offset / 64) * step


def inverse_1d(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Inverse CDF 9/7 lifting along the last axis: low s (ns), high d (nd = ns or ns - 1)."""
    ns, nd = s.shape[-1], d.shape[-1]
    out = np.empty(s.shape[:-1] + (ns + nd,))
    if nd == 0:
        out[..., 0::2] = s
        return out
    s = s * (K97 / SQRT2)
    d = d * (SQRT2 / K97)

    def d_left(i: int) -> np.ndarray:  # d[i - 1], d[-1] = d[0]
        return d[..., max(i - 1, 0)]

    def d_here(i: int) -> np.ndarray:  # d[i], d[nd] = d[nd - 1] (n odd)
        return d[..., min(i, nd - 1)]

    def s_next(i: int) -> np.ndarray:  # s[i + 1], s[ns] = s[ns - 1] (n even)
        return s[..., min(i + 1, ns - 1)]

    for i in range(ns):
        s[..., i] = s[..., i] - DELTA * (d_left(i) + d_here(i))
    for i in range(nd):
        d[..., i] = d[..., i] - GAMMA * (s[..., i] + s_next(i))
    for i in range(ns):
        s[..., i] = s[..., i] - BETA * (d_left(i) + d_here(i))
    for i in range(nd):
        d[..., i] = d[..., i] - ALPHA * (s[..., i] + s_next(i))
    out[..., 0::2] = s
    out[..., 1::2] = d
    return out


def inverse_runs(x: np.ndarray, present: np.ndarray) -> np.ndarray:
    """HNR.md "Nodata": the inverse lifting along the last axis of x (..., n), run by run of the
    samples `present` (n bools); a run of one sample is kept, absent samples are 0."""
    x = np.where(present, x, 0.0)
    n = present.size
    p = 0
    while p < n:
        if not present[p]:
            p += 1
            continue
        a = p
        while p + 1 < n and present[p + 1]:
            p += 1
        b = p
        p += 1
        if a == b:
            continue

        def near(q: int) -> np.ndarray:  # x_{q-1} + x_{q+1}, mirrored inside the run
            left = q - 1 if q - 1 >= a else q + 1
            right = q + 1 if q + 1 <= b else q - 1
            return x[..., left] + x[..., right]

        for q in range(a, b + 1):
            x[..., q] = x[..., q] * ((K97 / SQRT2) if q % 2 == 0 else (SQRT2 / K97))
        for parity, c in ((0, DELTA), (1, GAMMA), (0, BETA), (1, ALPHA)):
            for q in range(a, b + 1):
                if q % 2 == parity:
                    x[..., q] = x[..., q] - c * near(q)
    return x


def images_of(model: dict, payload: bytes, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A (K, H, W), B (C, K), mean (C)) in binary64, HNR.md "Reconstruction" steps 1-5 (and
    "Nodata" for a model with "nodata": 1, given the file's mask `valid`)."""
    keys = {"model", "height", "width", "bands", "components", "levels", "step_code", "basis_exps", "mean_exp",
            "offsets"}
    shape_adaptive = "nodata" in model
    need(set(model) - {"nodata"} == keys, "MODL keys")
    need(not shape_adaptive or (model["nodata"] == 1 and type(model["nodata"]) is int
                                and model["model"] == "transform2"), "MODL nodata is 1 in transform2")
    need(not shape_adaptive or (valid is not None and valid.shape == (model["height"], model["width"])),
         "a shape-adaptive model without a mask of its size")
    h, w, c, k, levels = (model[n] for n in ("height", "width", "bands", "components", "levels"))
    code, exps, mean_exp, offsets = model["step_code"], model["basis_exps"], model["mean_exp"], model["offsets"]
    need(all(type(v) is int for v in (h, w, c, k, levels, code, mean_exp, *exps, *offsets)), "MODL values")
    need(1 <= k <= c and 0 <= levels <= 8 and 0 <= code <= 4096 and len(exps) == k
         and len(offsets) == levels + 1 and all(-64 <= e <= 255 for e in exps + [mean_exp])
         and all(-32 <= o <= 32 for o in offsets) and h >= 1 and w >= 1, "MODL values out of range")
    weights, mean_int, basis_int, pos = read_side(payload, c, k)
    present = band_masks(valid, levels) if shape_adaptive else None
    ll, details = read_coefficients(payload[pos:], k, h, w, levels, model["model"] == "transform2", present)

    step = 2.0 ** (-code / 64)  # the correctly rounded binary64 value (see HNR.md, Appendix)
    root = np.sqrt(2.0 ** (np.array(weights) / 8))
    basis = np.empty((c, k))
    for j in range(k):
        basis[:, j] = np.array(basis_int[j], np.float64) * (step * 2.0 ** (-exps[j] / 4)) / root
    mean = np.array(mean_int, np.float64) * (step * 2.0 ** (-mean_exp / 4)) / root

    image = dequantise(ll, offsets[0], step / LL_GAINS[levels])
    if shape_adaptive:
        return inverse_shape_adaptive(image, details, offsets, step, valid), basis, mean
    for lev in range(levels - 1, -1, -1):
        hl, lh, hh = (dequantise(b, offsets[1 + lev], step / DETAIL_GAINS[lev]) for b in details[lev])
        # along y (rows are the second-to-last axis): LL with LH, HL with HH; then along x.
        lo = np.swapaxes(inverse_1d(np.swapaxes(image, 1, 2), np.swapaxes(lh, 1, 2)), 1, 2)
        hi = np.swapaxes(inverse_1d(np.swapaxes(hl, 1, 2), np.swapaxes(hh, 1, 2)), 1, 2)
        image = inverse_1d(lo, hi)
    return image, basis, mean


def inverse_shape_adaptive(image: np.ndarray, details: list, offsets: list, step: float,
                           valid: np.ndarray) -> np.ndarray:
    """HNR.md "Nodata" step 4: level by level, columns then rows, run by run of the level's mask."""
    levels = len(details)
    ms = [valid]
    for _ in range(levels):
        ms.append(ms[-1][0::2, 0::2])
    for lev in range(levels - 1, -1, -1):
        hl, lh, hh = (dequantise(b, offsets[1 + lev], step / DETAIL_GAINS[lev]) for b in details[lev])
        m = ms[lev]
        n_rows, n_cols = m.shape
        k = image.shape[0]
        lo = np.zeros((k, n_rows, (n_cols + 1) // 2))
        hi = np.zeros((k, n_rows, n_cols // 2))
        lo[:, 0::2], lo[:, 1::2], hi[:, 0::2], hi[:, 1::2] = image, lh, hl, hh
        for j in range(lo.shape[2]):  # along y, each column of the low half with its samples' mask
            lo[:, :, j] = inverse_runs(lo[:, :, j], m[:, 2 * j])
        for j in range(hi.shape[2]):
            hi[:, :, j] = inverse_runs(hi[:, :, j], m[:, 2 * j + 1])
        image = np.zeros((k, n_rows, n_cols))
        image[:, :, 0::2], image[:, :, 1::2] = lo, hi
        for i in range(n_rows):  # along x, each row
            image[:, i, :] = inverse_runs(image[:, i, :], m[i])
    return image


def to_units(y: np.ndarray, scale: float, offset: float, dtype: np.dtype) -> np.ndarray:
    """Clamp to [0, 1], then value = y * scale + offset (binary64), then the sample type."""
    y = np.where(y < 0.0, 0.0, np.where(y > 1.0, 1.0, y))
    v = y * scale + offset
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(v), info.min, info.max).astype(dtype)
    return v.astype(dtype)


def mix(row: np.ndarray, images: np.ndarray) -> np.ndarray:
    """y = mean, then y = y + B_k A_k for k = 0..K-1 (row = [B_0 .. B_{K-1}, mean])."""
    y = np.full(images.shape[1:], row[-1])
    for j in range(images.shape[0]):
        y = y + row[j] * images[j]
    return y


def decode_file(data: bytes) -> np.ndarray:
    """The cube, H x W x C in the file's sample type."""
    head = Header(data)
    images, basis, mean = images_of(head.model, head.payload, head.valid)
    need(images.shape[1:] == (head.height, head.width) and basis.shape[0] == head.bands, "MODL does not fit HHDR")
    out = np.empty((head.height, head.width, head.bands), head.dtype.newbyteorder("="))
    for c in range(head.bands):
        row = np.append(basis[c], mean[c])
        out[:, :, c] = to_units(mix(row, images), head.scale[c], head.offset[c], out.dtype)
    return with_nodata(out, head)


def with_nodata(out: np.ndarray, head: Header) -> np.ndarray:
    """HNR.md "mask": every band of a nodata pixel is the nodata value in the sample type."""
    if head.valid is not None:
        if out.dtype.kind == "f":
            out[~head.valid] = head.nodata
        else:
            out[~head.valid] = int(head.nodata) if head.nodata == head.nodata else 0
    return out


def akima_tangents(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Tangents at the knots p (n) of the rows u (n, K + 1), HNR.md "Between coded bands"."""
    n = p.size
    d = [(u[i + 1] - u[i]) / (p[i + 1] - p[i]) for i in range(n - 1)]
    if n == 2:
        lo2 = lo1 = hi1 = hi2 = d[0]
    else:
        lo1 = 2 * d[0] - d[1]
        lo2 = 2 * lo1 - d[0]
        hi1 = 2 * d[-1] - d[-2]
        hi2 = 2 * hi1 - d[-1]
    e = [lo2, lo1] + d + [hi1, hi2]  # e[i + 2] = d_i
    out = np.empty_like(u)
    for i in range(n):
        dm2, dm1, d0, dp1 = e[i], e[i + 1], e[i + 2], e[i + 3]
        w1, w2 = np.abs(dp1 - d0), np.abs(dm1 - dm2)
        total = w1 + w2
        safe = np.where(total > 0, total, 1.0)
        out[i] = np.where(total > 0, (w1 * dm1 + w2 * d0) / safe, 0.5 * (dm1 + d0))
    return out


def decode_at(data: bytes, t: float) -> np.ndarray:
    """The band at normalised wavelength t (binary64, in [0, 1]): H x W in the file's sample type."""
    head = Header(data)
    images, basis, mean = images_of(head.model, head.payload, head.valid)
    t = float(t)
    need(0.0 <= t <= 1.0, "t outside [0, 1]")
    order = sorted(range(head.bands), key=lambda c: head.positions[c])
    p = head.positions[order]
    table = np.concatenate([basis, mean[:, None]], axis=1)[order]
    o, s = head.offset[order], head.scale[order]
    dtype = head.dtype.newbyteorder("=")
    exact = [i for i in range(p.size) if p[i] == t]
    if exact or p.size == 1:
        i = exact[0] if exact else 0
        return with_nodata(to_units(mix(table[i], images), s[i], o[i], dtype)[:, :, None], head)[:, :, 0]
    i0 = max(i for i in range(p.size) if p[i] < t)
    i1 = i0 + 1
    units = table * s[:, None]
    units[:, -1] = units[:, -1] + o
    m = akima_tangents(p, units)
    h = p[i1] - p[i0]
    u = (t - p[i0]) / h
    u2 = u * u
    u3 = u2 * u
    h00, h10, h01, h11 = 2 * u3 - 3 * u2 + 1, (u3 - 2 * u2 + u) * h, 3 * u2 - 2 * u3, (u3 - u2) * h
    row = h00 * units[i0] + h10 * m[i0] + h01 * units[i1] + h11 * m[i1]
    ot = (1 - u) * o[i0] + u * o[i1]
    st = (1 - u) * s[i0] + u * s[i1]
    if st <= 0:
        row = np.zeros_like(row)
    else:
        row = row / st
        row[-1] = row[-1] - ot / st
    return with_nodata(to_units(mix(row, images), st, ot, dtype)[:, :, None], head)[:, :, 0]
