"""A deliberately simple decoder of the `lossless` model's payload (formats/HNR.md, "Model `lossless`"),
written from the spec's text (no import from hinercodec), clarity over speed: plain Python integers and
loops, one sample at a time. Use it on small cubes only (about 20k samples a second).

    decode_payload(payload, (H, W, C), dtype) -> H x W x C array
    decode_file(data) -> H x W x C array of a .hnr file of model `lossless` (format 1.1, CODE chunk)

`trace` (a list) collects (band, y, x, prediction, residual, ctx, k) of every sample of the first core
stream when given, for the worked example.
"""
from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import educational_decoder as ed  # the container layer (HNR.md "Chunk framing"), shared with the transform reader

FormatError = ed.FormatError
need = ed.need


# ---------------------------------------------------------------- payload fields

class Reader:
    def __init__(self, buf: bytes):
        self.b, self.p = buf, 0

    def take(self, n: int) -> bytes:
        need(self.p + n <= len(self.b), "lossless payload truncated")
        out = self.b[self.p:self.p + n]
        self.p += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def uv(self) -> int:  # unsigned LEB128
        value = shift = 0
        while True:
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            need(shift <= 70, "bad varint")

    def sv(self) -> int:  # zigzag: 0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 ...
        n = self.uv()
        return n >> 1 if n % 2 == 0 else -((n + 1) >> 1)

    def f64(self) -> float:
        return struct.unpack("<d", self.take(8))[0]


# ---------------------------------------------------------------- range decoder

class RangeDecoder:
    def __init__(self, data: bytes):
        need(len(data) >= 5 and data[0] == 0, "core stream: bad start")
        self.d, self.pos, self.over = data, 0, 0
        self.range = 0xFFFFFFFF
        self.code = 0
        for _ in range(5):
            self.code = ((self.code << 8) | self.byte()) & 0xFFFFFFFF

    def byte(self) -> int:
        if self.pos < len(self.d):
            self.pos += 1
            return self.d[self.pos - 1]
        self.over += 1
        return 0

    def normalise(self) -> None:
        while self.range < (1 << 24):
            self.range = (self.range << 8) & 0xFFFFFFFF
            self.code = ((self.code << 8) | self.byte()) & 0xFFFFFFFF

    def bit(self, p: list) -> int:
        bound = (self.range >> 16) * ((p[0] + p[1]) >> 1)
        if self.code < bound:
            self.range, bit = bound, 0
        else:
            self.code -= bound
            self.range -= bound
            bit = 1
        if bit == 0:
            p[0] += (65536 - p[0]) >> 6
            p[1] += (65536 - p[1]) >> 9
        else:
            p[0] -= p[0] >> 6
            p[1] -= p[1] >> 9
        self.normalise()
        return bit

    def direct(self, n: int) -> int:
        self.range >>= n
        q = min(self.code // self.range, (1 << n) - 1)
        self.code -= q * self.range
        self.normalise()
        return q


def new_prob() -> list:
    return [32768, 32768]


def bitlen(v: int) -> int:
    return v.bit_length()


def sgn(v: int) -> int:
    return (v > 0) - (v < 0)


# ---------------------------------------------------------------- core stream

def decode_core(stream: bytes, c: int, h: int, w: int, vmin: list, vmax: list, trace=None) -> list:
    """The C x H x W integer samples of one core stream (lists of lists of rows)."""
    version = stream[0] if len(stream) >= 9 else 0
    need(version in (3, 4) and stream[1] <= 15 and stream[2] >= 1
         and (stream[3] == 0 if version == 3 else 1 <= stream[3] <= 16), "core stream header")
    P, mu = stream[1], stream[2]
    Q = stream[3] if version == 4 else 1  # column period of the second stage's weights
    nc2, mu2 = (14, 3) if version == 4 else (6, 2)
    rc = RangeDecoder(stream[4:])
    nf = 6 + P
    # predictor state
    wgt = [0] * nf
    v0 = 7 << 12
    for j in range(P):
        wgt[6 + j] = v0
        v0 >>= 3
    w2 = [[0] * nc2 for _ in range(Q)]  # second stage: one weight set per column phase x mod Q
    R = {}  # band -> H x W first-stage errors (quarter samples)
    D = {}  # band -> H x W central local differences
    # entropy state
    pk = [[new_prob() for _ in range(80)] for _ in range(72 * 4)]
    pm1 = [[new_prob() for _ in range(64)] for _ in range(72 * 4)]
    pm2 = [[new_prob() for _ in range(2)] for _ in range(64)]
    psg = [new_prob() for _ in range(243)]
    shift = [max(0, bitlen(vmax[z] - vmin[z]) - 18) for z in range(c)]
    X, E = [], []
    for z in range(c):
        span = vmax[z] - vmin[z]
        kmax = bitlen(span)
        # 1. the band's residuals (entropy decoding; contexts from residuals only)
        Ez = [[0] * w for _ in range(h)]
        Ep = E[z - 1] if z > 0 else None
        Ep2 = E[z - 2] if z > 1 else None
        ctxs = [[0] * w for _ in range(h)]
        X2 = X[z - 2] if z > 1 else None
        lsh = bitlen(vmax[z - 2] - vmin[z - 2]) - 4 if z > 1 else 0
        for y in range(h):
            for x in range(w):
                if y > 0:
                    aN = abs(Ez[y - 1][x])
                    aNW = abs(Ez[y - 1][x - 1]) if x > 0 else aN
                    aNE = abs(Ez[y - 1][x + 1]) if x < w - 1 else aN
                    aW = abs(Ez[y][x - 1]) if x > 0 else aN
                elif x > 0:
                    aW = abs(Ez[y][x - 1])
                    aN = aNW = aNE = aW
                else:
                    aW = aN = aNW = aNE = abs(Ep[y][x]) if Ep else 0
                if Ep:
                    aP = abs(Ep[y][x])
                    ae = abs(Ep[y][x + 1]) if x < w - 1 else aP
                    aw = abs(Ep[y][x - 1]) if x > 0 else aP
                    an = abs(Ep[y - 1][x]) if y > 0 else aP
                    as_ = abs(Ep[y + 1][x]) if y < h - 1 else aP
                    aQ = ae + aw + an + as_
                else:
                    aP, aQ = aW, 4 * aW
                aP2 = abs(Ep2[y][x]) if Ep2 else aP
                aWW = abs(Ez[y][x - 2]) if x > 1 else aW
                aNN = abs(Ez[y - 2][x]) if y > 1 else aN
                aNE2 = abs(Ez[y - 1][x + 2]) if (y > 0 and x < w - 2) else aNE
                act = 2 * (aW + aN) + aNW + aNE + 3 * aP + aQ + 2 * aP2 + (2 * (aWW + aNN + aNE2)) // 3
                sW = sgn(Ez[y][x - 1]) if x > 0 else 0
                sP = sgn(Ep[y][x]) if Ep else 0
                sN = sgn(Ez[y - 1][x]) if y > 0 else 0
                sP2 = sgn(Ep2[y][x]) if Ep2 else 0
                sX = sgn(Ep[y][x + 1]) if (Ep and x < w - 1) else 0
                sidx = 81 * (sX + 1) + 27 * (sP2 + 1) + 9 * (sN + 1) + 3 * (sW + 1) + (sP + 1)
                L = bitlen(act)
                ctx = min(L if L < 2 else 2 * L - 2 + ((act >> (L - 2)) & 1), 71)
                kb = min(max((ctx + 2) // 2 - 3, 0), kmax)
                lv = min(max(bitlen(X2[y][x] - vmin[z - 2]) - lsh, 0), 3) if X2 else 0
                cl = ctx + 72 * lv
                p = pk[cl]
                if kb == 0 or rc.bit(p[0]):
                    k, i = kb, 0
                    while kb + i < kmax and rc.bit(p[1 + i]):
                        k += 1
                        i += 1
                else:
                    k, i = kb - 1, 0
                    while kb - 1 - i > 0 and rc.bit(p[41 + i]):
                        k -= 1
                        i += 1
                m = 0
                if k >= 1:
                    m = 1
                    if k >= 2:
                        b1 = rc.bit(pm1[cl][k])
                        m = 2 * m + b1
                        if k >= 3:
                            m = 2 * m + rc.bit(pm2[k][b1])
                    n = k - 3
                    if n > 0:
                        while n > 16:
                            n -= 16
                            m = (m << 16) | rc.direct(16)
                        m = (m << n) | rc.direct(n)
                    need(m <= span, "residual out of range")
                    Ez[y][x] = -m if rc.bit(psg[sidx]) else m
                ctxs[y][x] = (ctx, k)
            need(rc.over <= 16, "core stream overrun")
        E.append(Ez)
        # 2. the band's samples (prediction)
        vmn, vmx, sh = vmin[z], vmax[z], shift[z]
        tmax = span >> sh
        p4max = (4 * tmax) << 15
        half = ((1 << (15 + sh - 1)) if sh else 0) + (1 << 14)
        wl = 1 << 18
        Xz = [[0] * w for _ in range(h)]
        Xp = X[z - 1] if z > 0 else None
        mp, sp = (vmin[z - 1], shift[z - 1]) if z > 0 else (0, 0)
        Dz = [[0] * w for _ in range(h)]
        Rz = [[0] * w for _ in range(h)]
        Rp = R.get(z - 1)
        Rp2 = R.get(z - 2)

        def t(v):
            return (v - vmn) >> sh

        def tp(v):
            return (v - mp) >> sp

        for y in range(h):
            for x in range(w):
                if y > 0:
                    tN = t(Xz[y - 1][x])
                    tNW = t(Xz[y - 1][x - 1]) if x > 0 else tN
                    tNE = t(Xz[y - 1][x + 1]) if x < w - 1 else tN
                    tW = t(Xz[y][x - 1]) if x > 0 else tN
                elif x > 0:
                    tW = t(Xz[y][x - 1])
                    tN = tNW = tNE = tW
                else:
                    t0 = tmax >> 1
                    if Xp:
                        t0 = t(min(max(Xp[0][0], vmn), vmx))
                    tW = tN = tNW = tNE = t0
                sigma = tW + tN + tNW + tNE
                u = [4 * tN - sigma, 4 * tW - sigma, 4 * tNW - sigma, 0, 0, 0]
                if Xp and y > 0:
                    qN = tp(Xp[y - 1][x])
                    qNW = tp(Xp[y - 1][x - 1]) if x > 0 else qN
                    qNE = tp(Xp[y - 1][x + 1]) if x < w - 1 else qN
                    qW = tp(Xp[y][x - 1]) if x > 0 else qN
                    q4 = qN + qNW + qNE + qW
                    u[3:6] = [4 * qN - q4, 4 * qW - q4, 4 * qNW - q4]
                u += [D[z - 1 - j][y][x] if z - 1 - j >= 0 else 0 for j in range(P)]
                p4 = (sigma << 15) + sum(wf * uf for wf, uf in zip(wgt, u))
                p4 = min(max(p4, 0), p4max)
                v2 = [Rz[y][x - 1] if x > 0 else 0, Rz[y - 1][x] if y > 0 else 0,
                      Rz[y - 1][x - 1] if x > 0 and y > 0 else 0, Rz[y - 1][x + 1] if y > 0 and x < w - 1 else 0,
                      Rp[y][x] if Rp else 0, Rp[y][x + 1] if Rp and x < w - 1 else 0]
                if version == 4:
                    v2 += [Rp[y + 1][x] if Rp and y < h - 1 else 0, Rp[y - 1][x] if Rp and y > 0 else 0,
                           Rp[y][x - 1] if Rp and x > 0 else 0, Rp2[y][x] if Rp2 else 0,
                           Rz[y][x - 2] if x > 1 else 0, Rz[y - 2][x] if y > 1 else 0,
                           Rz[y][x - 3] if x > 2 else 0, Rz[y - 1][x + 2] if y > 0 and x < w - 2 else 0]
                ww = w2[x % Q]
                p4c = min(max(p4 + sum(a * b for a, b in zip(ww, v2)), 0), p4max)
                pv = min(vmn + ((((p4c >> 2) << sh) + half) >> 15), vmx)
                v = pv + Ez[y][x]
                need(vmn <= v <= vmx, "sample out of its band's range")
                Xz[y][x] = v
                if trace is not None:
                    trace.append((z, y, x, pv, Ez[y][x]) + ctxs[y][x])
                tv = (v - vmn) >> sh
                Dz[y][x] = 4 * tv - sigma
                err = ((4 * tv) << 15) - p4
                Rz[y][x] = err >> 15
                err2 = ((4 * tv) << 15) - p4c
                n2 = 1 + sum(v * v for v in v2)
                g2 = abs(err2 << 20) // n2 * sgn(err2)
                for f in range(nc2):
                    ww[f] = min(max(ww[f] + ((g2 * v2[f] * mu2) >> 28), -wl), wl)
                norm = 1 + sum(uf * uf for uf in u)
                g = abs(err << 20) // norm * sgn(err)  # C division: truncation toward zero
                for f in range(nf):
                    nw = wgt[f] + ((g * u[f] * mu) >> 28)
                    wgt[f] = min(max(nw, -wl), wl)
        X.append(Xz)
        D[z] = Dz
        R[z] = Rz
        R.pop(z - 3, None)
        D.pop(z - P - 1, None)
    need(rc.over <= 8, "core stream overrun")
    return X


# ---------------------------------------------------------------- payload

def f32_bits(v: int) -> int:
    m = v + (1 << 31)
    return m & 0x7FFFFFFF if m & 0x80000000 else (~m) & 0xFFFFFFFF


def f64_bits(hi: int, lo: int) -> int:
    m = (hi << 32) | lo
    return m & ((1 << 63) - 1) if m >> 63 else (~m) & ((1 << 64) - 1)


def decode_payload(payload: bytes, shape, dtype, trace=None) -> np.ndarray:
    h, w, c = shape
    dt = np.dtype(dtype)
    need(len(payload) >= 10, "payload truncated")
    body = payload[:-4]
    need(zlib.crc32(body) == struct.unpack("<I", payload[-4:])[0], "payload CRC mismatch")
    r = Reader(body)
    need(r.take(4) == b"HNL1", "bad magic")
    kind = r.u8()
    need(kind == (0 if dt.kind in "iu" else 1 if dt == np.float32 else 2 if dt == np.float64 else -1),
         "kind does not match the sample type")
    need(r.uv() == c, "band count")
    out = np.zeros((h, w, c), dt)
    if kind == 0:
        flag = r.u8()
        need(flag in (0, 1), "bad bound flag")
        e = [r.uv() for _ in range(1 if flag == 0 else c)]
        e = e * c if flag == 0 else e
        off, lo, span = r.sv(), r.sv(), r.uv()
        need(span < 2 ** 34 and abs(lo) <= 2 ** 40 and abs(off) <= 2 ** 40 and max(e) < 2 ** 40, "ranges")
        n = r.uv()
        stream = r.take(n)
        need(r.p == len(body), "trailing bytes")
        X = decode_core(stream, c, h, w, [lo] * c, [lo + span] * c, trace)
        info = np.iinfo(dt)
        for z in range(c):
            for y in range(h):
                for x in range(w):
                    q = X[z][y][x]
                    v = q if e[z] == 0 else min(max(off + q * (2 * e[z] + 1), int(info.min)), int(info.max))
                    need(info.min <= v <= info.max, "value outside the sample type")
                    out[y, x, z] = v
        return out
    modes, vmin, vmax = [], [], []
    for z in range(c):
        r.f64()  # the band's bound (informative)
        mode = r.u8()
        if mode == 1:
            a, b = r.f64(), r.f64()
            modes.append((1, a, b))
        elif mode == 2:
            n_, ek, off = r.f64(), r.uv(), r.sv()
            modes.append((2, n_, (ek, off)))
        else:
            need(mode == 0, "bad band mode")
            modes.append((0, None, None))
        lo = r.sv()
        vmin.append(lo)
        vmax.append(lo + r.uv())
    nlow = sum(1 for m in modes if m[0] == 0) if kind == 2 else 0
    lmin, lmax = [], []
    for _ in range(nlow):
        lo = r.sv()
        lmin.append(lo)
        lmax.append(lo + r.uv())
    lens = [r.uv() for _ in range(2 if nlow else 1)]
    streams = [r.take(n) for n in lens]
    need(r.p == len(body), "trailing bytes")
    X = decode_core(streams[0], c, h, w, vmin, vmax, trace)
    L = decode_core(streams[1], nlow, h, w, lmin, lmax) if nlow else None
    li = 0
    for z in range(c):
        mode, a, b = modes[z]
        for y in range(h):
            for x in range(w):
                q = X[z][y][x]
                if mode == 1:
                    out[y, x, z] = dt.type(a + float(q) * b)
                elif mode == 2:
                    ek, off = b
                    k = q if ek == 0 else off + q * (2 * ek + 1)
                    out[y, x, z] = dt.type(float(k) / a)
                elif kind == 1:
                    out[y, x, z] = np.array([f32_bits(q)], np.uint32).view(np.float32)[0]
                else:
                    out[y, x, z] = np.array([f64_bits(q, L[li][y][x])], np.uint64).view(np.float64)[0]
        li += mode == 0 and kind == 2
    return out


def decode_file(data: bytes, trace=None) -> np.ndarray:
    chunks = ed.read_chunks(bytes(data))
    hhdr = chunks[0][1]
    need(chunks[0][0] == "HHDR" and hhdr[0] == 1 and hhdr[1] >= 1, "a 1.1 file")
    dt = np.dtype("<" + ed.DTYPES[hhdr[2]])
    h, w, c = struct.unpack_from("<III", hhdr, 4)
    body = dict(chunks)
    model = json.loads(ed.zstd_frame(body["MODL"]))
    need(model.get("model") == "lossless" and set(model) == {"model", "height", "width", "bands", "max_error"},
         "MODL of model lossless")
    need((model["height"], model["width"], model["bands"]) == (h, w, c), "MODL shape differs from HHDR")
    return decode_payload(body["CODE"], (h, w, c), dt, trace)
