/*
 * hinerc lossless / near-lossless core: adaptive spectral-spatial prediction (normalised LMS in integer
 * arithmetic) and an adaptive context-modelled binary range coder.
 *
 * The core codes a band-sequential integer cube X[C][H][W] (int64 samples, band z inside its own range
 * [vmin[z], vmax[z]], vmax - vmin < 2**34) losslessly.  Everything that decides the output bytes is integer
 * arithmetic, so the bytes do not depend on the machine, the compiler or the number of threads.
 *
 * Two stages run as a pipeline, one band apart, in two threads (GIL released):
 *   prediction: X -> residuals e = x - prediction (encoder), or residuals -> X (decoder);
 *   entropy:    residuals <-> bits; its contexts depend on residuals and on the samples two bands back
 *               only, never on the prediction, so the decoder's entropy stage can run ahead of its
 *               prediction stage (by one band: see NRING).
 * The stages exchange residual planes through a ring of NRING band planes.
 *
 * Stream (version 4): u8 version, u8 P (previous bands in the predictor), u8 mu (NLMS step mu / 256), u8 Q (column
 * period of the second stage's weights, 1..MAXQ), range-coded data.  Version 3 (u8 0 in place of Q) still decodes.
 * Only the stable C API and the buffer protocol are used.
 */
#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x030B0000
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#define VERSION 4       /* 4: 14 inputs of the second stage, one weight set per column phase (x mod Q); 3 (hinerc 0.5):
                           second NLMS stage (6 inputs), level contexts, wider activity; 2: without */
#define MAXP 15         /* previous bands used by the predictor */
#define NC2 14          /* inputs of the second NLMS stage: stage-1 errors around the sample (version 3: the first 6) */
#define MU2 3           /* its step, MU2 / 256 (version 3: 2) */
#define MAXQ 16         /* column periods of the second stage's weights */
#define NSP 3           /* spatial features: directional differences N, W, NW of the current band */
#define NPD 3           /* directional differences of the previous band */
#define MAXF (NSP + NPD + MAXP)
#define WQ 15           /* weight fraction bits */
#define GQ 20           /* NLMS gain fraction bits */
#define NCTX 72         /* activity contexts */
#define NLV 4           /* level classes: the sample two bands back, in the top NLV octaves of its range */
#define KTREE 64        /* bit lengths 0..63 */
#define KUP 40
#define KUN 80
#define PBITS 16        /* probability precision */
#define RATE_A 6        /* two adaptation rates per probability, averaged */
#define RATE_B 9
#define TBITS 18        /* the predictor works on samples reduced to TBITS bits */
#define NRING 4         /* residual planes in flight between the stages (>= 4: the entropy stage reads 3); with
                           4 the decoder's entropy stage of band z runs after the prediction of band z - 2,
                           whose samples give the level classes */

/* ------------------------------------------------------------------ range coder */

typedef struct {
    uint8_t *buf;
    size_t cap, len;
    uint64_t low;
    uint32_t range;
    uint8_t cache;
    uint64_t csize;
    int oom;
} Enc;

static void enc_init(Enc *e, size_t cap) {
    e->cap = cap < 64 ? 64 : cap;
    e->buf = (uint8_t *)malloc(e->cap);
    e->oom = e->buf == NULL;
    e->len = 0;
    e->low = 0;
    e->range = 0xFFFFFFFFu;
    e->cache = 0;
    e->csize = 1;
}

static inline void enc_put(Enc *e, uint8_t b) {
    if (e->len == e->cap) {
        if (e->oom) return;
        size_t nc = e->cap * 2;
        uint8_t *nb = (uint8_t *)realloc(e->buf, nc);
        if (!nb) { e->oom = 1; return; }
        e->buf = nb;
        e->cap = nc;
    }
    e->buf[e->len++] = b;
}

static inline void enc_shift_low(Enc *e) {
    if ((uint32_t)e->low < 0xFF000000u || (e->low >> 32) != 0) {
        uint8_t carry = (uint8_t)(e->low >> 32);
        uint8_t temp = e->cache;
        do {
            enc_put(e, (uint8_t)(temp + carry));
            temp = 0xFF;
        } while (--e->csize != 0);
        e->cache = (uint8_t)(e->low >> 24);
    }
    e->csize++;
    e->low = (e->low & 0x00FFFFFFu) << 8;
}

typedef struct { uint16_t a, b; } Prob;
static inline uint32_t prob_get(const Prob *p) { return ((uint32_t)p->a + p->b) >> 1; }
static inline void prob_upd(Prob *p, int bit) {
    if (!bit) {
        p->a = (uint16_t)(p->a + ((65536u - p->a) >> RATE_A));
        p->b = (uint16_t)(p->b + ((65536u - p->b) >> RATE_B));
    } else {
        p->a = (uint16_t)(p->a - (p->a >> RATE_A));
        p->b = (uint16_t)(p->b - (p->b >> RATE_B));
    }
}

static inline void enc_bit(Enc *e, Prob *p, int bit) {
    uint32_t bound = (e->range >> PBITS) * prob_get(p);
    if (!bit) {
        e->range = bound;
    } else {
        e->low += bound;
        e->range -= bound;
    }
    prob_upd(p, bit);
    while (e->range < (1u << 24)) {
        e->range <<= 8;
        enc_shift_low(e);
    }
}

/* n equiprobable bits at once (n <= 16) */
static inline void enc_direct(Enc *e, uint32_t v, int n) {
    e->range >>= n;
    e->low += (uint64_t)v * e->range;
    while (e->range < (1u << 24)) {
        e->range <<= 8;
        enc_shift_low(e);
    }
}

static void enc_flush(Enc *e) {
    for (int i = 0; i < 5; i++) enc_shift_low(e);
}

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    uint32_t range, code;
    size_t over;
} Dec;

static inline uint8_t dec_byte(Dec *d) {
    if (d->pos < d->len) return d->buf[d->pos++];
    d->over++;
    return 0;
}

static int dec_init(Dec *d, const uint8_t *buf, size_t len) {
    d->buf = buf;
    d->len = len;
    d->pos = 0;
    d->over = 0;
    d->range = 0xFFFFFFFFu;
    d->code = 0;
    if (len < 5 || buf[0] != 0) return -1;
    for (int i = 0; i < 5; i++) d->code = (d->code << 8) | dec_byte(d);
    return 0;
}

static inline int dec_bit(Dec *d, Prob *p) {
    uint32_t bound = (d->range >> PBITS) * prob_get(p);
    int bit;
    if (d->code < bound) {
        d->range = bound;
        bit = 0;
    } else {
        d->code -= bound;
        d->range -= bound;
        bit = 1;
    }
    prob_upd(p, bit);
    while (d->range < (1u << 24)) {
        d->range <<= 8;
        d->code = (d->code << 8) | dec_byte(d);
    }
    return bit;
}

static inline uint32_t dec_direct(Dec *d, int n) {
    d->range >>= n;
    uint32_t q = d->code / d->range;
    const uint32_t lim = (1u << n) - 1;
    if (q > lim) q = lim;  /* only in damaged streams */
    d->code -= q * d->range;
    while (d->range < (1u << 24)) {
        d->range <<= 8;
        d->code = (d->code << 8) | dec_byte(d);
    }
    return q;
}

/* ------------------------------------------------------------------ models */

typedef struct {
    Prob pk[NCTX * NLV][KUN];  /* bit length k of |e| per level class and activity context: [0] k >= kb, [1 + i] k > kb + i,
                               [KUP + 1 + i] k < kb - 1 - i (kb: the typical k of the context) */
    Prob pm1[NCTX * NLV][KTREE];  /* first bit under the leading one, per level class, context and bit length */
    Prob pm2[KTREE][2];     /* second bit, per bit length and first bit */
    Prob psg[243];          /* sign, per signs of the residuals W, N (this band), same place and east (previous
                               band), same place (band before) */
} EModel;

static void emodel_init(EModel *m) {
    const Prob h = {32768, 32768};
    for (int c = 0; c < NCTX * NLV; c++) {
        for (int k = 0; k < KTREE; k++) m->pm1[c][k] = h;
        for (int k = 0; k < KUN; k++) m->pk[c][k] = h;
    }
    for (int k = 0; k < KTREE; k++) m->pm2[k][0] = m->pm2[k][1] = h;
    for (int k = 0; k < 243; k++) m->psg[k] = h;
}

static inline int bitlen64(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

static inline uint64_t uabs64(int64_t v) { return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; }

/* The coding context of a sample from the residuals around it: this band (causal: W, N, NW, NE), the previous
 * band (same place and its four neighbours) and the band before (same place).  ctx: activity class; sidx: sign
 * context.  Depends on residuals only (the entropy stage adds the level class from the samples two bands back). */
static inline __attribute__((always_inline)) void context_at(const int64_t *er, const int64_t *eu,
                                                             const int64_t *pr, const int64_t *p2r, int x, int y,
                                                             int W, int H, int *ctx_out, int *sidx_out) {
    /* activity: residual magnitudes around the sample, this band (causal) and the previous band (all) */
    uint64_t aW, aN, aNW, aNE, aP, aQ;
    if (eu) {
        aN = uabs64(eu[x]);
        aNW = x > 0 ? uabs64(eu[x - 1]) : aN;
        aNE = x < W - 1 ? uabs64(eu[x + 1]) : aN;
        aW = x > 0 ? uabs64(er[x - 1]) : aN;
    } else if (x > 0) {
        aW = uabs64(er[x - 1]);
        aN = aNW = aNE = aW;
    } else {
        aW = aN = aNW = aNE = pr ? uabs64(pr[x]) : 0;
    }
    if (pr) {
        aP = uabs64(pr[x]);
        uint64_t pe = x < W - 1 ? uabs64(pr[x + 1]) : aP;
        uint64_t pw = x > 0 ? uabs64(pr[x - 1]) : aP;
        uint64_t pn = y > 0 ? uabs64(pr[x - W]) : aP;
        uint64_t ps = y < H - 1 ? uabs64(pr[x + W]) : aP;
        aQ = pe + pw + pn + ps;
    } else {
        aP = aW;
        aQ = 4 * aW;
    }
    const uint64_t aP2 = p2r ? uabs64(p2r[x]) : aP;
    /* and three more of this band, further out */
    const uint64_t aWW = x > 1 ? uabs64(er[x - 2]) : aW;
    const uint64_t aNN = (eu && y > 1) ? uabs64(eu[x - W]) : aN;
    const uint64_t aNE2 = (eu && x < W - 2) ? uabs64(eu[x + 2]) : aNE;
    const uint64_t act = 2 * (aW + aN) + aNW + aNE + 3 * aP + aQ + 2 * aP2 + (2 * (aWW + aNN + aNE2)) / 3;
    const int sW = x > 0 ? (er[x - 1] > 0) - (er[x - 1] < 0) : 0;
    const int sP = pr ? (pr[x] > 0) - (pr[x] < 0) : 0;
    const int sN = eu ? (eu[x] > 0) - (eu[x] < 0) : 0;
    const int sP2 = p2r ? (p2r[x] > 0) - (p2r[x] < 0) : 0;
    const int sX = (pr && x < W - 1) ? (pr[x + 1] > 0) - (pr[x + 1] < 0) : 0;
    *sidx_out = 81 * (sX + 1) + 27 * (sP2 + 1) + 9 * (sN + 1) + 3 * (sW + 1) + sP + 1;
    const int L = bitlen64(act);
    int ctx = L < 2 ? L : 2 * L - 2 + (int)((act >> (L - 2)) & 1);
    if (ctx >= NCTX) ctx = NCTX - 1;
    *ctx_out = ctx;
}

/* ------------------------------------------------------------------ job */

typedef struct {
    int C, H, W, P, mu, decode;
    int version, Q;           /* core stream version (3 or 4), column period of the second stage (version 3: 1) */
    int64_t *X;               /* samples, C x H x W */
    const int64_t *vmin, *vmax;
    int *shift;
    int64_t *ring;            /* NRING residual planes */
    uint8_t *cring, *sring;   /* encoder: contexts of the even rows, computed by the prediction stage */
    Enc enc;
    Dec dec;
    int sync;
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    int done_pred, done_ent;  /* bands finished by each stage */
    int failed;
} Job;

static void publish(Job *J, int *ctr, int v) {
    if (!J->sync) { *ctr = v; return; }
    pthread_mutex_lock(&J->mtx);
    *ctr = v;
    pthread_cond_broadcast(&J->cv);
    pthread_mutex_unlock(&J->mtx);
}

/* wait until *ctr >= v; returns 0 when the job failed meanwhile */
static int wait_ge(Job *J, const int *ctr, int v) {
    if (!J->sync) return *ctr >= v && !J->failed;
    pthread_mutex_lock(&J->mtx);
    while (*ctr < v && !J->failed) pthread_cond_wait(&J->cv, &J->mtx);
    int ok = *ctr >= v && !J->failed;
    pthread_mutex_unlock(&J->mtx);
    return ok;
}

static void fail(Job *J) {
    if (!J->sync) { J->failed = 1; return; }
    pthread_mutex_lock(&J->mtx);
    J->failed = 1;
    pthread_cond_broadcast(&J->cv);
    pthread_mutex_unlock(&J->mtx);
}

/* ------------------------------------------------------------------ prediction stage */

typedef struct {
    int64_t w[MAXF];
    int64_t w2[MAXQ][NC2];    /* second stage, one set per column phase x mod Q */
    int32_t *dc;              /* (P + 1) planes of central local differences, a ring over bands */
    int64_t *r1;              /* 3 planes of stage-1 errors (this band, the two before) */
} PState;

static int pred_init(Job *J, PState *S) {
    const size_t plane = (size_t)J->H * J->W;
    memset(S->w, 0, sizeof(S->w));
    int64_t w = (int64_t)7 << (WQ - 3);
    for (int j = 0; j < J->P; j++) {
        S->w[NSP + NPD + j] = w;
        w >>= 3;
    }
    memset(S->w2, 0, sizeof(S->w2));
    S->dc = (int32_t *)malloc(sizeof(int32_t) * (size_t)(J->P + 1) * plane);
    S->r1 = (int64_t *)calloc(3 * plane, sizeof(int64_t));
    return S->dc != NULL && S->r1 != NULL;
}

/* one band of the prediction stage; returns 0 on a damaged stream (decoder).  nc2, mu2: the second stage's inputs
 * and step (constants of the stream version, inlined per version) */
static inline __attribute__((always_inline)) int pred_band_v(Job *J, PState *S, int z, const int nc2, const int mu2) {
    const int H = J->H, W = J->W, P = J->P, MU = J->mu, dec = J->decode;
    const size_t plane = (size_t)H * W;
    const int nf = NSP + NPD + P;
    const int64_t vmn = J->vmin[z], vmx = J->vmax[z];
    const int sh = J->shift[z];
    const int64_t tmax = (vmx - vmn) >> sh;
    const int64_t p4max = (4 * tmax) << WQ;
    const int64_t half = (sh ? ((int64_t)1 << (WQ + sh - 1)) : 0) + ((int64_t)1 << (WQ - 1));
    const int64_t wl = (int64_t)1 << (WQ + 3);
    int64_t *Xz = J->X + (size_t)z * plane;
    const int64_t *Xp = z > 0 ? Xz - plane : NULL;
    const int64_t mp = z > 0 ? J->vmin[z - 1] : 0;
    const int sp = z > 0 ? J->shift[z - 1] : 0;
    int64_t *Ez = J->ring + (size_t)(z % NRING) * plane;
    const int64_t *Ep = z > 0 ? J->ring + (size_t)((z - 1) % NRING) * plane : NULL;
    const int64_t *Ep2 = z > 1 ? J->ring + (size_t)((z - 2) % NRING) * plane : NULL;
    uint8_t *cz = (!dec && J->cring) ? J->cring + (size_t)(z % NRING) * plane : NULL;
    uint8_t *sz = cz ? J->sring + (size_t)(z % NRING) * plane : NULL;
    int32_t *Dz = S->dc + (size_t)(z % (P + 1)) * plane;
    const int32_t *Dp[MAXP];
    for (int j = 1; j <= P; j++) Dp[j - 1] = z - j >= 0 ? S->dc + (size_t)((z - j) % (P + 1)) * plane : NULL;
    int64_t u[MAXF], v2[NC2];
    int64_t *w = S->w;
    const int Q = J->Q;
    int64_t *R = S->r1 + (size_t)(z % 3) * plane;
    const int64_t *Rp = z > 0 ? S->r1 + (size_t)((z - 1) % 3) * plane : NULL;
    const int64_t *Rp2 = z > 1 ? S->r1 + (size_t)((z - 2) % 3) * plane : NULL;

    for (int y = 0; y < H; y++) {
        int64_t *row = Xz + (size_t)y * W;
        const int64_t *up = y > 0 ? row - W : NULL;
        const int64_t *prow = Xp ? Xp + (size_t)y * W : NULL;
        const int64_t *pup = (Xp && y > 0) ? prow - W : NULL;
        for (int x = 0; x < W; x++) {
            const size_t i = (size_t)y * W + x;
            int64_t *w2 = S->w2[Q > 1 ? x % Q : 0];
            int64_t tW, tN, tNW, tNE;
            if (up) {
                tN = (up[x] - vmn) >> sh;
                tNW = x > 0 ? (up[x - 1] - vmn) >> sh : tN;
                tNE = x < W - 1 ? (up[x + 1] - vmn) >> sh : tN;
                tW = x > 0 ? (row[x - 1] - vmn) >> sh : tN;
            } else if (x > 0) {
                tW = (row[x - 1] - vmn) >> sh;
                tN = tNW = tNE = tW;
            } else {
                int64_t t0 = tmax >> 1;
                if (prow) {
                    int64_t v = prow[x];
                    v = v < vmn ? vmn : (v > vmx ? vmx : v);
                    t0 = (v - vmn) >> sh;
                }
                tW = tN = tNW = tNE = t0;
            }
            const int64_t sigma = tW + tN + tNW + tNE;
            u[0] = 4 * tN - sigma;
            u[1] = 4 * tW - sigma;
            u[2] = 4 * tNW - sigma;
            if (pup) {
                int64_t qN = (pup[x] - mp) >> sp;
                int64_t qNW = x > 0 ? (pup[x - 1] - mp) >> sp : qN;
                int64_t qNE = x < W - 1 ? (pup[x + 1] - mp) >> sp : qN;
                int64_t qW = x > 0 ? (prow[x - 1] - mp) >> sp : qN;
                int64_t q4 = qN + qNW + qNE + qW;
                u[3] = 4 * qN - q4;
                u[4] = 4 * qW - q4;
                u[5] = 4 * qNW - q4;
            } else {
                u[3] = u[4] = u[5] = 0;
            }
            for (int j = 0; j < P; j++) u[NSP + NPD + j] = Dp[j] ? (int64_t)Dp[j][i] : 0;
            int64_t acc = 0;
            for (int f = 0; f < nf; f++) acc += w[f] * u[f];
            int64_t p4 = (sigma << WQ) + acc;
            if (p4 < 0) p4 = 0;
            if (p4 > p4max) p4 = p4max;
            /* second stage: NLMS on the first stage's errors around the sample corrects p4: W, N, NW, NE of this
               band; same place and east in the previous band (version 3: these 6); version 4 adds south, north
               and west in the previous band, same place two bands back, WW, NN, WWW and NE + 1 of this band */
            v2[0] = x > 0 ? R[i - 1] : 0;
            v2[1] = y > 0 ? R[i - W] : 0;
            v2[2] = (x > 0 && y > 0) ? R[i - W - 1] : 0;
            v2[3] = (y > 0 && x < W - 1) ? R[i - W + 1] : 0;
            v2[4] = Rp ? Rp[i] : 0;
            v2[5] = (Rp && x < W - 1) ? Rp[i + 1] : 0;
            if (nc2 > 6) {
                v2[6] = (Rp && y < H - 1) ? Rp[i + W] : 0;
                v2[7] = (Rp && y > 0) ? Rp[i - W] : 0;
                v2[8] = (Rp && x > 0) ? Rp[i - 1] : 0;
                v2[9] = Rp2 ? Rp2[i] : 0;
                v2[10] = x > 1 ? R[i - 2] : 0;
                v2[11] = y > 1 ? R[i - 2 * W] : 0;
                v2[12] = x > 2 ? R[i - 3] : 0;
                v2[13] = (y > 0 && x < W - 2) ? R[i - W + 2] : 0;
            }
            int64_t acc2 = 0;
            for (int f = 0; f < nc2; f++) acc2 += w2[f] * v2[f];
            int64_t p4c = p4 + acc2;
            if (p4c < 0) p4c = 0;
            if (p4c > p4max) p4c = p4max;
            int64_t pv = vmn + ((((p4c >> 2) << sh) + half) >> WQ);
            if (pv > vmx) pv = vmx;

            int64_t v;
            if (!dec) {
                v = row[x];
                Ez[i] = v - pv;
                if (cz && !(y & 1)) {
                    int cx, sx;
                    context_at(Ez + (size_t)y * W, y > 0 ? Ez + (size_t)(y - 1) * W : NULL,
                               Ep ? Ep + (size_t)y * W : NULL, Ep2 ? Ep2 + (size_t)y * W : NULL, x, y, W, H, &cx, &sx);
                    cz[i] = (uint8_t)cx;
                    sz[i] = (uint8_t)sx;
                }
            } else {
                v = pv + Ez[i];
                if (v < vmn || v > vmx) return 0;
                row[x] = v;
            }

            /* NLMS update */
            const int64_t t = (v - vmn) >> sh;
            Dz[i] = (int32_t)(4 * t - sigma);
            const int64_t err = ((4 * t) << WQ) - p4;
            R[i] = err >> WQ;
            {
                const int64_t err2 = ((4 * t) << WQ) - p4c;
                int64_t n2 = 1;
                for (int f = 0; f < nc2; f++) n2 += v2[f] * v2[f];
                const int64_t g2 = (err2 * ((int64_t)1 << GQ)) / n2;
                for (int f = 0; f < nc2; f++) {
                    int64_t nw = w2[f] + ((g2 * v2[f] * mu2) >> (GQ + 8));
                    w2[f] = nw > wl ? wl : (nw < -wl ? -wl : nw);
                }
            }
            int64_t norm = 1;
            for (int f = 0; f < nf; f++) norm += u[f] * u[f];
            const int64_t g = (err * ((int64_t)1 << GQ)) / norm;
            for (int f = 0; f < nf; f++) {
                int64_t nw = w[f] + ((g * u[f] * MU) >> (GQ + 8));
                w[f] = nw > wl ? wl : (nw < -wl ? -wl : nw);
            }
        }
    }
    return 1;
}

static int pred_band(Job *J, PState *S, int z) {
    return J->version == 3 ? pred_band_v(J, S, z, 6, 2) : pred_band_v(J, S, z, NC2, MU2);
}

/* ------------------------------------------------------------------ entropy stage */

static int ent_band(Job *J, EModel *M, int z) {
    const int H = J->H, W = J->W, dec = J->decode;
    const size_t plane = (size_t)H * W;
    const uint64_t span = (uint64_t)(J->vmax[z] - J->vmin[z]);
    const int kmax = bitlen64(span);
    int64_t *Ez = J->ring + (size_t)(z % NRING) * plane;
    const int64_t *Ep = z > 0 ? J->ring + (size_t)((z - 1) % NRING) * plane : NULL;
    const int64_t *Ep2 = z > 1 ? J->ring + (size_t)((z - 2) % NRING) * plane : NULL;
    Enc *E = &J->enc;
    Dec *D = &J->dec;
    /* level classes: the sample two bands back (decoded before this band's residuals, see NRING) */
    const int64_t *X2 = z >= 2 ? J->X + (size_t)(z - 2) * plane : NULL;
    const int64_t m2 = z >= 2 ? J->vmin[z - 2] : 0;
    const int lsh = z >= 2 ? bitlen64((uint64_t)(J->vmax[z - 2] - J->vmin[z - 2])) - NLV : 0;

    for (int y = 0; y < H; y++) {
        int64_t *er = Ez + (size_t)y * W;
        const int64_t *eu = y > 0 ? er - W : NULL;
        const int64_t *pr = Ep ? Ep + (size_t)y * W : NULL;
        const int64_t *p2r = Ep2 ? Ep2 + (size_t)y * W : NULL;
        /* encoder: the prediction stage computed the contexts of the even rows (splits the work evenly) */
        const uint8_t *cr = (!dec && J->cring && !(y & 1)) ? J->cring + (size_t)(z % NRING) * plane + (size_t)y * W
                                                           : NULL;
        const uint8_t *sr = cr ? J->sring + (size_t)(z % NRING) * plane + (size_t)y * W : NULL;
        for (int x = 0; x < W; x++) {
            int ctx, sidx;
            if (cr) {
                ctx = cr[x];
                sidx = sr[x];
            } else {
                context_at(er, eu, pr, p2r, x, y, W, H, &ctx, &sidx);
            }
            Prob *psg = &M->psg[sidx];
            int lv = X2 ? bitlen64((uint64_t)(X2[(size_t)y * W + x] - m2)) - lsh : 0;
            if (lv < 0) lv = 0;
            if (lv > NLV - 1) lv = NLV - 1;
            const int cl = ctx + NCTX * lv;
            int kb = (ctx + 2) / 2 - 3;  /* about the bit length of act / 15, the typical |e| here */
            if (kb < 0) kb = 0;
            if (kb > kmax) kb = kmax;

            if (!dec) {
                const int64_t e = er[x];
                const uint64_t m = uabs64(e);
                const int k = bitlen64(m);
                Prob *pk = M->pk[cl];
                if (kb == 0 || k >= kb) {
                    if (kb > 0) enc_bit(E, &pk[0], 1);
                    for (int i = 0; kb + i < kmax; i++) {
                        enc_bit(E, &pk[1 + i], k > kb + i);
                        if (k == kb + i) break;
                    }
                } else {
                    enc_bit(E, &pk[0], 0);
                    for (int i = 0; kb - 1 - i > 0; i++) {
                        enc_bit(E, &pk[KUP + 1 + i], k < kb - 1 - i);
                        if (k == kb - 1 - i) break;
                    }
                }
                if (k >= 2) {
                    int b1 = (int)((m >> (k - 2)) & 1);
                    enc_bit(E, &M->pm1[cl][k], b1);
                    if (k >= 3) enc_bit(E, &M->pm2[k][b1], (int)((m >> (k - 3)) & 1));
                }
                if (k > 3) {
                    /* the bits below the two modelled ones, as equiprobable bits */
                    int n = k - 3;
                    while (n > 16) {
                        n -= 16;
                        enc_direct(E, (uint32_t)(m >> n) & 0xFFFFu, 16);
                    }
                    enc_direct(E, (uint32_t)m & ((1u << n) - 1), n);
                }
                if (m) enc_bit(E, psg, e < 0);
            } else {
                Prob *pk = M->pk[cl];
                int k;
                if (kb == 0 || dec_bit(D, &pk[0])) {
                    k = kb;
                    for (int i = 0; kb + i < kmax && dec_bit(D, &pk[1 + i]); i++) k++;
                } else {
                    k = kb - 1;
                    for (int i = 0; kb - 1 - i > 0 && dec_bit(D, &pk[KUP + 1 + i]); i++) k--;
                }
                uint64_t m = 0;
                if (k >= 1) {
                    m = 1;
                    if (k >= 2) {
                        int b1 = dec_bit(D, &M->pm1[cl][k]);
                        m = (m << 1) | (uint64_t)b1;
                        if (k >= 3) m = (m << 1) | (uint64_t)dec_bit(D, &M->pm2[k][b1]);
                    }
                    if (k > 3) {
                        int n = k - 3;
                        while (n > 16) {
                            n -= 16;
                            m = (m << 16) | dec_direct(D, 16);
                        }
                        m = (m << n) | dec_direct(D, n);
                    }
                    if (m > span) return 0;
                    er[x] = dec_bit(D, psg) ? -(int64_t)m : (int64_t)m;
                } else {
                    er[x] = 0;
                }
            }
        }
        if (dec && D->over > 16) return 0;
        if (!dec && E->oom) return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ driver */

/* stage 0 = prediction, 1 = entropy; the first stage of the pipeline is prediction when encoding */
static void run_stage(Job *J, int stage) {
    const int first = J->decode ? 1 : 0;
    int ok = 1;
    if (stage == 0) {
        PState S;
        S.dc = NULL;
        S.r1 = NULL;
        if (!pred_init(J, &S)) { free(S.dc); free(S.r1); fail(J); return; }
        for (int z = 0; z < J->C && ok; z++) {
            /* ring slot free: the entropy stage reads bands z' - 2 .. z' while coding band z' */
            if (first == 0) ok = wait_ge(J, &J->done_ent, z - NRING + 3);
            else ok = wait_ge(J, &J->done_ent, z + 1);                      /* residuals decoded */
            if (ok) ok = pred_band(J, &S, z);
            if (ok) publish(J, &J->done_pred, z + 1);
        }
        free(S.dc);
        free(S.r1);
    } else {
        EModel *M = (EModel *)malloc(sizeof(EModel));
        if (!M) { fail(J); return; }
        emodel_init(M);
        for (int z = 0; z < J->C && ok; z++) {
            if (first == 0) ok = wait_ge(J, &J->done_pred, z + 1);          /* residuals ready */
            else ok = wait_ge(J, &J->done_pred, z - NRING + 3);             /* ring slot free */
            if (ok) ok = ent_band(J, M, z);
            if (ok) publish(J, &J->done_ent, z + 1);
        }
        free(M);
    }
    if (!ok) fail(J);
}

static void *stage_thread(void *arg) {
    Job *J = (Job *)arg;
    run_stage(J, J->decode ? 0 : 1);
    return NULL;
}

/* interleaved single-thread run: band by band, first stage then second stage */
static void run_serial(Job *J) {
    J->sync = 0;
    PState S;
    EModel *M = (EModel *)malloc(sizeof(EModel));
    S.dc = NULL;
    S.r1 = NULL;
    if (!M || !pred_init(J, &S)) { free(M); free(S.dc); free(S.r1); J->failed = 1; return; }
    emodel_init(M);
    for (int z = 0; z < J->C; z++) {
        int ok = J->decode ? ent_band(J, M, z) && pred_band(J, &S, z) : pred_band(J, &S, z) && ent_band(J, M, z);
        if (!ok) { J->failed = 1; break; }
    }
    free(S.dc);
    free(S.r1);
    free(M);
}

static void run_job(Job *J, int nthreads) {
    J->failed = 0;
    J->done_pred = J->done_ent = 0;
    if (nthreads < 2 || J->C < 2) { run_serial(J); return; }
    J->sync = 1;
    pthread_mutex_init(&J->mtx, NULL);
    pthread_cond_init(&J->cv, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, stage_thread, J) != 0) {
        pthread_mutex_destroy(&J->mtx);
        pthread_cond_destroy(&J->cv);
        run_serial(J);
        return;
    }
    run_stage(J, J->decode ? 1 : 0);
    pthread_join(th, NULL);
    pthread_mutex_destroy(&J->mtx);
    pthread_cond_destroy(&J->cv);
}

/* ------------------------------------------------------------------ Python glue */

static int get_buf(PyObject *o, Py_buffer *b, Py_ssize_t need, const char *what) {
    if (PyObject_GetBuffer(o, b, PyBUF_SIMPLE) != 0) return -1;
    if (need >= 0 && b->len != need) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd bytes, got %zd", what, need, b->len);
        PyBuffer_Release(b);
        return -1;
    }
    return 0;
}

static int setup_job(Job *J) {
    const int C = J->C;
    J->shift = (int *)malloc(sizeof(int) * (size_t)C);
    J->ring = (int64_t *)malloc(sizeof(int64_t) * NRING * (size_t)J->H * J->W);
    if (!J->decode) {
        J->cring = (uint8_t *)malloc(NRING * (size_t)J->H * J->W);
        J->sring = (uint8_t *)malloc(NRING * (size_t)J->H * J->W);
        if (!J->cring || !J->sring) { PyErr_NoMemory(); return -1; }
    }
    if (!J->shift || !J->ring) { PyErr_NoMemory(); return -1; }
    for (int z = 0; z < C; z++) {
        const int64_t a = J->vmin[z], b = J->vmax[z];
        if (b < a || a < -((int64_t)1 << 40) || b > ((int64_t)1 << 40) || b - a >= ((int64_t)1 << 34)) {
            PyErr_SetString(PyExc_ValueError, "band range out of bounds");
            return -1;
        }
        int n = bitlen64((uint64_t)(b - a));
        J->shift[z] = n > TBITS ? n - TBITS : 0;
    }
    return 0;
}

static void free_job(Job *J) {
    if (!J) return;
    free(J->shift);
    free(J->ring);
    free(J->cring);
    free(J->sring);
    free(J->enc.buf);
    free(J);
}

static int check_shape(int C, int H, int W) {
    if (C < 1 || H < 1 || W < 1 || (int64_t)C * H * W > ((int64_t)1 << 40) ||
        (int64_t)H * W * NRING > ((int64_t)1 << 36)) {
        PyErr_SetString(PyExc_ValueError, "bad shape");
        return -1;
    }
    return 0;
}

static PyObject *py_encode(PyObject *self, PyObject *args) {
    PyObject *xo, *mno, *mxo;
    int C, H, W, P, mu, nthreads, Q = 1, version = VERSION;
    (void)self;
    if (!PyArg_ParseTuple(args, "OiiiOOiii|ii", &xo, &C, &H, &W, &mno, &mxo, &P, &mu, &nthreads, &Q, &version))
        return NULL;
    if (P < 0 || P > MAXP || mu < 1 || mu > 255 || Q < 1 || Q > MAXQ || (version != 3 && version != 4) ||
        (version == 3 && Q != 1)) {
        PyErr_SetString(PyExc_ValueError, "bad coder parameters");
        return NULL;
    }
    if (check_shape(C, H, W)) return NULL;
    Py_buffer xb, mnb, mxb;
    const Py_ssize_t n = (Py_ssize_t)C * H * W;
    if (get_buf(xo, &xb, n * 8, "samples")) return NULL;
    if (get_buf(mno, &mnb, (Py_ssize_t)C * 8, "vmin")) { PyBuffer_Release(&xb); return NULL; }
    if (get_buf(mxo, &mxb, (Py_ssize_t)C * 8, "vmax")) { PyBuffer_Release(&xb); PyBuffer_Release(&mnb); return NULL; }
    PyObject *res = NULL;
    Job *J = (Job *)calloc(1, sizeof(Job));
    if (!J) { PyErr_NoMemory(); goto out; }
    J->C = C; J->H = H; J->W = W; J->P = P; J->mu = mu; J->decode = 0; J->version = version; J->Q = Q;
    J->X = (int64_t *)xb.buf;
    J->vmin = (const int64_t *)mnb.buf;
    J->vmax = (const int64_t *)mxb.buf;
    if (setup_job(J)) goto out;
    for (int z = 0; z < C; z++) {
        const int64_t *p = J->X + (size_t)z * H * W;
        for (size_t i = 0; i < (size_t)H * W; i++)
            if (p[i] < J->vmin[z] || p[i] > J->vmax[z]) {
                PyErr_SetString(PyExc_ValueError, "sample outside its band range");
                goto out;
            }
    }
    enc_init(&J->enc, (size_t)n + 64);
    if (J->enc.oom) { PyErr_NoMemory(); goto out; }
    Py_BEGIN_ALLOW_THREADS
    run_job(J, nthreads);
    if (!J->failed) enc_flush(&J->enc);
    Py_END_ALLOW_THREADS
    if (J->failed || J->enc.oom) { PyErr_NoMemory(); goto out; }
    res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(4 + J->enc.len));
    if (!res) goto out;
    {
        uint8_t *o = (uint8_t *)PyBytes_AsString(res);
        o[0] = (uint8_t)version; o[1] = (uint8_t)P; o[2] = (uint8_t)mu; o[3] = (uint8_t)(version == 3 ? 0 : Q);
        memcpy(o + 4, J->enc.buf, J->enc.len);
    }
out:
    free_job(J);
    PyBuffer_Release(&xb); PyBuffer_Release(&mnb); PyBuffer_Release(&mxb);
    return res;
}

static PyObject *py_decode(PyObject *self, PyObject *args) {
    PyObject *so, *mno, *mxo;
    int C, H, W, nthreads;
    (void)self;
    if (!PyArg_ParseTuple(args, "OiiiOOi", &so, &C, &H, &W, &mno, &mxo, &nthreads)) return NULL;
    if (check_shape(C, H, W)) return NULL;
    Py_buffer sb, mnb, mxb;
    if (get_buf(so, &sb, -1, "stream")) return NULL;
    if (get_buf(mno, &mnb, (Py_ssize_t)C * 8, "vmin")) { PyBuffer_Release(&sb); return NULL; }
    if (get_buf(mxo, &mxb, (Py_ssize_t)C * 8, "vmax")) { PyBuffer_Release(&sb); PyBuffer_Release(&mnb); return NULL; }
    PyObject *res = NULL, *out = NULL;
    Job *J = (Job *)calloc(1, sizeof(Job));
    const uint8_t *in = (const uint8_t *)sb.buf;
    const size_t len = (size_t)sb.len;
    if (!J) { PyErr_NoMemory(); goto done; }
    if (len < 9 || in[1] > MAXP || in[2] < 1 || !((in[0] == 3 && in[3] == 0) || (in[0] == 4 && in[3] >= 1 && in[3] <= MAXQ))) {
        PyErr_SetString(PyExc_ValueError, "damaged lossless stream (header)");
        goto done;
    }
    J->C = C; J->H = H; J->W = W; J->P = in[1]; J->mu = in[2]; J->decode = 1;
    J->version = in[0]; J->Q = in[0] == 3 ? 1 : in[3];
    J->vmin = (const int64_t *)mnb.buf;
    J->vmax = (const int64_t *)mxb.buf;
    if (dec_init(&J->dec, in + 4, len - 4)) {
        PyErr_SetString(PyExc_ValueError, "damaged lossless stream (start)");
        goto done;
    }
    if (setup_job(J)) goto done;
    out = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)C * H * W * 8);
    if (!out) goto done;
    J->X = (int64_t *)PyByteArray_AsString(out);
    Py_BEGIN_ALLOW_THREADS
    run_job(J, nthreads);
    Py_END_ALLOW_THREADS
    if (J->failed || J->dec.over > 8) {
        PyErr_SetString(PyExc_ValueError, "damaged lossless stream (data)");
        goto done;
    }
    res = out;
    out = NULL;
done:
    Py_XDECREF(out);
    free_job(J);
    PyBuffer_Release(&sb); PyBuffer_Release(&mnb); PyBuffer_Release(&mxb);
    return res;
}

static PyMethodDef methods[] = {
    {"encode", py_encode, METH_VARARGS,
     "encode(samples_int64, C, H, W, vmin_int64, vmax_int64, P, mu, nthreads, Q=1, version=4) -> bytes"},
    {"decode", py_decode, METH_VARARGS,
     "decode(stream, C, H, W, vmin_int64, vmax_int64, nthreads) -> bytearray of int64 samples"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_lossless", "hinerc lossless core", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__lossless(void) { return PyModule_Create(&moddef); }
