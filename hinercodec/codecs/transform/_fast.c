/* Compiled hot paths of the transform codec's coefficient coder (bitstream.py), integer arithmetic only.

   The context modelling of bitstream._walk / _groups (magnitude contexts from the parent, the spatial
   neighbours known before each pass and the same place in the previous image; sign contexts), done
   from the whole integer pyramid at once: every context the walk computes depends only on values
   coded before it, and those are the pyramid's own values, so a context is a pure function of the
   pyramid and its position. Entry points, each the compiled form of bitstream.py's numpy code:

   - stats(): the histogram of (context, symbol) pairs, the (positive, negative) counts of every sign
     context, the number of coded symbols and the escape bits: all that estimate_bits() needs.
     Threads over images (each thread its own histograms, summed): integers, so the result does not
     depend on the thread count.
   - stream(): pack()'s rANS stream and escape bits straight from the pyramid.
   - unwalk(): unpack()'s walk (the decoder: contexts, rANS segments, escapes, signs).
   - estimate(), rans_encode(), rans_read(), level(), quantise(), dequantise(), mix(), restore(): the
     size estimate, the stream coder, the wavelet, the quantisers, the decoder's mix and output.

   Everything here must match bitstream.py's numpy code exactly (tests/test_transform_speedups.py,
   tests/test_transform.py). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DIRECT 16
#define ESCAPE (2 * DIRECT - 1)
#define MAX_LOG 40
#define ALPHABET (ESCAPE + 2 * (MAX_LOG - 4))
#define N_BUCKETS 12
#define PASSES 3
#define MAX_LEVELS 8
#define N_CTX (1 + (MAX_LEVELS * PASSES) * N_BUCKETS)
#define SIGN_SCORES 5
#define N_SIGN_CTX (3 * PASSES * SIGN_SCORES * 3)
#define MAX_THREADS 64

/* AVX2 where the CPU has it (4 doubles an instruction; no FMA: -ffp-contract=off keeps every
   multiply and add its own rounding, so both clones give the same bits) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default"), optimize("O3")))
#else
#define VECTOR_CLONES
#endif

static const int SIGN_POLARITY[3][2] = {{-1, 1}, {1, -1}, {-1, -1}};

static inline int bucket_of(int64_t a) {
    if (a < 3) return (int)a;
    if (a < 5) return 3;
    if (a < 8) return 4;
    if (a < 12) return 5;
    if (a < 20) return 6;
    if (a < 36) return 7;
    if (a < 64) return 8;
    if (a < 128) return 9;
    if (a < 256) return 10;
    return 11;
}

static inline int64_t iabs(int64_t v) { return v < 0 ? -v : v; }
static inline int64_t sgn(int64_t v) { return (v > 0) - (v < 0); }

typedef struct {
    int h, w;
    const int64_t *p; /* (K, h, w) */
} Band;

typedef struct {
    int K, H, W, levels, signs;
    Band ll;
    Band det[MAX_LEVELS][3];
} Pyr;

/* what a walk produces */
typedef struct {
    int mode; /* 0: statistics, 1: the stream's table entries in stream order */
    int k0, k1; /* images of this worker (statistics; the LL band is counted by the worker with k0 == 0) */
    int64_t *hist; /* N_CTX * ALPHABET */
    int64_t *scount; /* N_SIGN_CTX * 2 */
    int64_t total, escape_bits;
    int too_big, failed;
    /* mode 1: entries (each group padded to whole steps), the escapes' low bits and bit counts */
    int64_t *low, *nbits;
    int64_t n_esc, cap_esc; /* escapes written, room for them in low and nbits */
    int esc_overflow;
    const int64_t *slot, *sign_slot, *tab_off, *tab_size, *index;
    int64_t n_slot, lanes, pad_entry, group_start, n_ent, cap_ent;
    int32_t *ent;
    int bad_symbol;
} Out;

/* mode 1: the entry of symbol s of context c (slot: context -> table; index: the table's symbol -> entry) */
static inline void emit_entry(Out *o, const int64_t *slot, int64_t c, int64_t s) {
    const int64_t t = c < o->n_slot || slot == o->sign_slot ? slot[c] : -1;
    const int64_t e = t < 0 || s >= o->tab_size[t] ? -1 : o->index[o->tab_off[t] + s];
    if (e < 0 || o->n_ent >= o->cap_ent) { o->bad_symbol = 1; return; }
    o->ent[o->n_ent++] = (int32_t)e;
}

/* the stream: an escape's low bits and their count, in the caller's buffers (overflow noted) */
static inline void record_escape(Out *o, int64_t low, int n) {
    if (o->n_esc < o->cap_esc) {
        o->low[o->n_esc] = low;
        o->nbits[o->n_esc] = n;
    } else {
        o->esc_overflow = 1;
    }
    o->n_esc++;
}

static inline void emit_value(Out *o, int64_t v, int64_t c, int is_signed) {
    int64_t a = iabs(v), neg = is_signed && v < 0, s;
    if (a >= ((int64_t)1 << MAX_LOG)) { o->too_big = 1; return; }
    if (a < DIRECT) {
        s = a == 0 ? 0 : 2 * a - 1 + neg;
    } else {
        int n = 63 - __builtin_clzll((unsigned long long)a);
        s = ESCAPE + 2 * (n - 4) + neg;
        o->escape_bits += n;
        if (o->mode == 1) record_escape(o, a - ((int64_t)1 << n), n);
    }
    o->total++;
    if (o->mode == 0) {
        o->hist[c * ALPHABET + s]++;
    } else {
        emit_entry(o, o->slot, c, s);
    }
}

static inline void open_group(Out *o) {
    if (o->mode == 1) o->group_start = o->n_ent;
}

static inline void close_group(Out *o) {
    if (o->mode == 1) /* the segment padded to whole steps with the no-op entry (rans.encode_segments) */
        while ((o->n_ent - o->group_start) % o->lanes) {
            if (o->n_ent >= o->cap_ent) { o->bad_symbol = 1; return; }
            o->ent[o->n_ent++] = (int32_t)o->pad_entry;
        }
}

/* LOCO-I median prediction of x[i][j] of an image w wide from the values before it (_med_residual) */
static inline int64_t med_predict(const int64_t *x, int w, int i, int j) {
    int64_t up = i ? x[(size_t)(i - 1) * w + j] : 0, left, ul;
    if (j) {
        left = x[(size_t)i * w + j - 1];
        ul = i ? x[(size_t)(i - 1) * w + j - 1] : 0;
    } else {
        left = ul = up;
    }
    const int64_t lo = up < left ? up : left, hi = up < left ? left : up;
    return ul >= hi ? lo : (ul <= lo ? hi : up + left - ul);
}

static void walk_ll(const Pyr *P, Out *o) {
    const int K = P->K, h = P->ll.h, w = P->ll.w;
    open_group(o);
    for (int k = 0; k < K; k++) {
        const int64_t *x = P->ll.p + (size_t)k * h * w;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) emit_value(o, x[(size_t)i * w + j] - med_predict(x, w, i, j), 0, 1);
    }
    close_group(o);
}

/* Per (level, image, orientation) scratch: |band| and sign(band) with a border of zeros, and the
   parent activity (2 |p| + (sum of |p|'s 4 neighbours) // 2) at the parent's resolution, so that the
   loops below read neighbours without bounds checks. A context reads magnitudes only through its
   bucket (bucket_lut), which is the same for every activity >= ACT_CAP, and every term of an
   activity is >= 0: so the magnitudes are kept clamped at ACT_CAP and the parent activity (halved
   in some contexts) at 2 ACT_CAP, which changes no context and keeps the scratch small (16 bits). */
#define ACT_CAP 256
typedef struct {
    uint16_t *abs_; /* (h + 2) x (w + 2): min(|v|, ACT_CAP) */
    int8_t *sgn_;   /* (h + 2) x (w + 2) */
    uint16_t *pact; /* ph x pw (or NULL without a parent): min(parent activity, 2 ACT_CAP) */
    size_t cap_abs, cap_par;
    int failed;
} Scratch;

static int grow(Scratch *S, size_t n_abs, size_t n_par) {
    if (n_abs > S->cap_abs) {
        free(S->abs_);
        free(S->sgn_);
        S->abs_ = (uint16_t *)malloc(n_abs * 2);
        S->sgn_ = (int8_t *)malloc(n_abs);
        S->cap_abs = n_abs;
        if (!S->abs_ || !S->sgn_) { S->cap_abs = 0; return -1; }
    }
    if (n_par > S->cap_par) {
        free(S->pact);
        S->pact = (uint16_t *)malloc(n_par * 2);
        S->cap_par = n_par;
        if (!S->pact) { S->cap_par = 0; return -1; }
    }
    return 0;
}

static void free_scratch(Scratch *S) {
    free(S->abs_);
    free(S->sgn_);
    free(S->pact);
}

static const int64_t *parent_of(const Pyr *P, int l, int or, int k, int *ph, int *pw) {
    const Band *PB = l + 1 < P->levels && P->det[l + 1][or].h > 0 && P->det[l + 1][or].w > 0 ? &P->det[l + 1][or] : NULL;
    *ph = PB ? PB->h : 0;
    *pw = PB ? PB->w : 0;
    return PB ? PB->p + (size_t)k * *ph * *pw : NULL;
}

/* one row of the scratch: clamped magnitudes and signs of n values */
VECTOR_CLONES static void scratch_row(const int64_t *b, uint16_t *a, int8_t *g, int n) {
    for (int j = 0; j < n; j++) { /* clamped first (64-bit compares), the rest on 32-bit lanes */
        int64_t v = b[j];
        v = v < -ACT_CAP ? -ACT_CAP : v;
        v = v > ACT_CAP ? ACT_CAP : v;
        const int32_t c = (int32_t)v;
        a[j] = (uint16_t)(c < 0 ? -c : c);
        g[j] = (int8_t)((c > 0) - (c < 0));
    }
}

/* a row of parent activities, 2 |p| + (the sum of |p|'s 4 neighbours, 0 outside) // 2 for each
   coefficient p of the parent's row r (the rows above and below it: NULL at the edges), clamped at
   2 ACT_CAP; the two end columns apart, so that the loop over the others holds no branch */
static inline int64_t pact_at(const int64_t *r, const int64_t *above, const int64_t *below, int j, int pw) {
    const int64_t u = above ? iabs(above[j]) : 0, d = below ? iabs(below[j]) : 0;
    const int64_t lf = j > 0 ? iabs(r[j - 1]) : 0, rt = j + 1 < pw ? iabs(r[j + 1]) : 0;
    const int64_t act = 2 * iabs(r[j]) + (u + d + lf + rt) / 2;
    return act < 2 * ACT_CAP ? act : 2 * ACT_CAP;
}

VECTOR_CLONES static void pact_row(const int64_t *r, const int64_t *above, const int64_t *below, uint16_t *out, int pw) {
    out[0] = (uint16_t)pact_at(r, above, below, 0, pw);
    if (pw > 1) out[pw - 1] = (uint16_t)pact_at(r, above, below, pw - 1, pw);
    if (above && below)
        for (int j = 1; j < pw - 1; j++) {
            const int64_t act = 2 * iabs(r[j]) + (iabs(above[j]) + iabs(below[j]) + iabs(r[j - 1]) + iabs(r[j + 1])) / 2;
            out[j] = (uint16_t)(act < 2 * ACT_CAP ? act : 2 * ACT_CAP);
        }
    else
        for (int j = 1; j < pw - 1; j++) out[j] = (uint16_t)pact_at(r, above, below, j, pw);
}

/* the scratch of band (l, k, or); `values` 0: the parent activity only (a decoder's pass A, whose
   contexts read no neighbour of the band) */
static int prepare(const Pyr *P, Scratch *S, int l, int k, int or, int values) {
    const Band *B = &P->det[l][or];
    const int h = B->h, w = B->w, W2 = w + 2;
    int ph, pw;
    const int64_t *par = parent_of(P, l, or, k, &ph, &pw);
    if (grow(S, (size_t)(h + 2) * W2, (size_t)ph * pw + 1)) { S->failed = 1; return -1; }
    if (values) {
        memset(S->abs_, 0, (size_t)W2 * 2); /* the border: first and last rows, first and last columns */
        memset(S->sgn_, 0, (size_t)W2);
        memset(S->abs_ + (size_t)(h + 1) * W2, 0, (size_t)W2 * 2);
        memset(S->sgn_ + (size_t)(h + 1) * W2, 0, (size_t)W2);
        const int64_t *b = B->p + (size_t)k * h * w;
        for (int i = 0; i < h; i++) {
            uint16_t *a = S->abs_ + (size_t)(i + 1) * W2;
            int8_t *g = S->sgn_ + (size_t)(i + 1) * W2;
            a[0] = a[w + 1] = 0;
            g[0] = g[w + 1] = 0;
            scratch_row(b + (size_t)i * w, a + 1, g + 1, w);
        }
    }
    if (par)
        for (int i = 0; i < ph; i++)
            pact_row(par + (size_t)i * pw, i > 0 ? par + (size_t)(i - 1) * pw : NULL,
                     i + 1 < ph ? par + (size_t)(i + 1) * pw : NULL, S->pact + (size_t)i * pw, pw);
    return 0;
}

static const int8_t BUCKET_LUT[256] = {
    0, 1, 2, 3, 3, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
    9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
    9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10};

static inline int bucket_lut(int64_t a) { return a < 256 ? BUCKET_LUT[a] : 11; }

/* the sign score of a pass-D/B position from the signs of its pass-A (and D) neighbours, clipped to -2..2 */
static inline int64_t sign_score(int phase, int wx, int wy, const int8_t *up, const int8_t *mid, const int8_t *down,
                                 int j) {
    int64_t score = 0;
    if (phase == 1) score = (int64_t)(wx * wy) * (up[j - 1] + up[j + 1] + down[j - 1] + down[j + 1]);
    else if (phase == 2) score = wx * (mid[j - 1] + mid[j + 1]) + wy * (up[j] + down[j]);
    return score < -2 ? -2 : (score > 2 ? 2 : score);
}

/* statistics only (order free): a band row by row, every position of a row at once in two steps:
   context_row (data-parallel, vectorised) gives each position its (pass, bucket, symbol) bin (the
   symbol as if no escape) and its sign slot, from the scratches of the band and of the previous
   image's band and the parent activity, and count_row adds them up (an escape's symbol from its
   value) into COPIES interleaved 32-bit histograms of the level: neighbouring positions go to
   different copies, so that a run of one bin is not a chain of dependent updates of one counter.
   The copies are summed into the caller's 64-bit histograms at the end of the level (or sooner,
   before a copy could overflow). Counts do not depend on order: the same statistics as the walk. */
#define COPIES 4
#define LEVEL_BINS (PASSES * N_BUCKETS * ALPHABET)
#define LEVEL_SIGNS (PASSES * SIGN_SCORES * 3 * 2)
#define NO_SIGN LEVEL_SIGNS /* the slot of a position without a sign (zero, or no separate signs) */
#define FLUSH_AFTER ((uint64_t)1 << 31)
typedef struct {
    uint32_t bins[COPIES][LEVEL_BINS];
    uint32_t signs[COPIES][LEVEL_SIGNS + 1];
    uint64_t counted; /* positions counted since the last flush (no copy holds more) */
    int64_t escape_bits;
    uint64_t big; /* nonzero: a magnitude of 2**MAX_LOG or more was seen */
    uint16_t *ctx, *pdup, *zeros; /* rows: bins, parent activity of each column, zeros */
    uint8_t *sidx;
    size_t cap;
    uint16_t *band_ctx[3]; /* the stream: a pass's bins and sign slots of each orientation's band */
    uint8_t *band_sidx[3];
    size_t band_cap;
} Acc;

static int acc_rows(Acc *o, size_t w) {
    if (w <= o->cap) return 0;
    free(o->ctx); free(o->pdup); free(o->zeros); free(o->sidx);
    o->ctx = (uint16_t *)malloc(w * 2);
    o->pdup = (uint16_t *)malloc(w * 2);
    o->zeros = (uint16_t *)calloc(w + 2, 2);
    o->sidx = (uint8_t *)malloc(w);
    o->cap = o->ctx && o->pdup && o->zeros && o->sidx ? w : 0;
    return o->cap ? 0 : -1;
}

static int acc_bands(Acc *o, size_t n) {
    if (n <= o->band_cap) return 0;
    o->band_cap = n;
    for (int i = 0; i < 3; i++) {
        free(o->band_ctx[i]);
        free(o->band_sidx[i]);
        o->band_ctx[i] = (uint16_t *)malloc(n * 2);
        o->band_sidx[i] = (uint8_t *)malloc(n);
        if (!o->band_ctx[i] || !o->band_sidx[i]) o->band_cap = 0;
    }
    return o->band_cap ? 0 : -1;
}

static void free_acc(Acc *o) {
    if (!o) return;
    free(o->ctx); free(o->pdup); free(o->zeros); free(o->sidx);
    for (int i = 0; i < 3; i++) {
        free(o->band_ctx[i]);
        free(o->band_sidx[i]);
    }
    free(o);
}

static void flush_level(Acc *o, Out *out, int l) {
    int64_t *h = out->hist + (int64_t)(1 + l * PASSES * N_BUCKETS) * ALPHABET;
    int64_t *s = out->scount + (int64_t)((l < 2 ? l : 2) * PASSES) * SIGN_SCORES * 3 * 2;
    for (int c = 0; c < COPIES; c++) {
        for (int i = 0; i < LEVEL_BINS; i++) h[i] += o->bins[c][i];
        for (int i = 0; i < LEVEL_SIGNS; i++) {
            s[i] += o->signs[c][i];
            out->total += o->signs[c][i]; /* each sign is a coded symbol */
        }
    }
    memset(o->bins, 0, sizeof o->bins);
    memset(o->signs, 0, sizeof o->signs);
    o->counted = 0;
}

/* row i of a band, for every column j: the bin (pass * N_BUCKETS + bucket) * ALPHABET + symbol (0
   for a magnitude of DIRECT or more: count_row adds its escape symbol) and the sign slot (NO_SIGN
   at a zero, or without separate signs). up, mid, down: the band's clamped magnitudes of rows
   i - 1, i, i + 1 (one column of border each side), g*: their signs; pa: the parent activity of
   each column; pabs, pg: the previous image's clamped magnitudes and signs at row i. The pass of
   a column is its parity's (even rows: A at even columns, B at odd ones; odd rows: B, then D),
   chosen by masks, not branches (the loop vectorises); every sum is at most 4 ACT_CAP + 2 ACT_CAP
   + ACT_CAP: 16 bits. One function per row parity. */
#define CONTEXT_ROW(NAME, ODD_ROW)                                                                            \
    VECTOR_CLONES static int NAME(const uint16_t *restrict up, const uint16_t *restrict mid,                  \
                                   const uint16_t *restrict down, const uint16_t *restrict pa,                 \
                                   const uint16_t *restrict pabs, const int8_t *restrict gup,                  \
                                   const int8_t *restrict gmid, const int8_t *restrict gdown,                  \
                                   const int8_t *restrict pg, int signs, int wx, int wy, int w,                \
                                   uint16_t *restrict ctx, uint8_t *restrict sidx) {                           \
        int escapes = 0;                                                                                      \
        const int16_t wxy = (int16_t)(wx * wy), sx = (int16_t)wx, sy = (int16_t)wy;                          \
        const int16_t yes = signs ? -1 : 0, unsigned_neg = signs ? 0 : 1;                                     \
        for (int j = 0; j < w; j++) {                                                                         \
            const int16_t m = (int16_t)-(j & 1); /* -1 at odd columns */                                     \
            const int16_t cross = (int16_t)(up[j] + down[j] + mid[j - 1] + mid[j + 1]);                       \
            const int16_t diag = (int16_t)(up[j - 1] + up[j + 1] + down[j - 1] + down[j + 1]);                \
            const int16_t p = (int16_t)pa[j], half = (int16_t)(pa[j] >> 1);                                   \
            const int16_t phase = ODD_ROW ? (int16_t)(2 + m) : (int16_t)(m & 2);                              \
            int16_t act = ODD_ROW ? (int16_t)(((cross + half) & ~m) | ((diag + half) & m))                    \
                                  : (int16_t)((p & ~m) | ((cross + half) & m));                               \
            act = (int16_t)(act + pabs[j]);                                                                    \
            const int16_t bucket = (int16_t)((act >= 1) + (act >= 2) + (act >= 3) + (act >= 5) + (act >= 8) + \
                                             (act >= 12) + (act >= 20) + (act >= 36) + (act >= 64) +          \
                                             (act >= 128) + (act >= 256));                                    \
            const int16_t a = (int16_t)mid[j], g = gmid[j];                                                   \
            const int16_t low = (int16_t)(2 * a - (a != 0) + (unsigned_neg & (g < 0)));                       \
            const int16_t sym = (int16_t)(low & -(int16_t)(a < DIRECT));                                      \
            escapes |= a >= DIRECT;                                                                           \
            ctx[j] = (uint16_t)((phase * N_BUCKETS + bucket) * ALPHABET + sym);                               \
            const int16_t s1 = (int16_t)(wxy * (gup[j - 1] + gup[j + 1] + gdown[j - 1] + gdown[j + 1]));      \
            const int16_t s2 = (int16_t)(sx * (gmid[j - 1] + gmid[j + 1]) + sy * (gup[j] + gdown[j]));        \
            int16_t score = ODD_ROW ? (int16_t)((s2 & ~m) | (s1 & m)) : (int16_t)(s2 & m);                   \
            score = score < -2 ? -2 : score;                                                                  \
            score = score > 2 ? 2 : score;                                                                    \
            const int16_t slot = (int16_t)(((phase * SIGN_SCORES + score + 2) * 3 + pg[j] + 1) * 2 + (g < 0)); \
            const int16_t has = (int16_t)(yes & -(int16_t)(g != 0));                                          \
            sidx[j] = (uint8_t)((slot & has) | (NO_SIGN & ~has));                                             \
        }                                                                                                     \
        return escapes;                                                                                       \
    }
CONTEXT_ROW(context_row_even, 0)
CONTEXT_ROW(context_row_odd, 1)
#undef CONTEXT_ROW

/* the counts of one row: context_row's bins and sign slots, with each escape's symbol and bits
   from its value (`escapes`: the row has some) */
static void count_row(Acc *o, const int64_t *row, const uint16_t *ctx, const uint8_t *sidx, int w, int signs,
                      int escapes) {
    if (!escapes) {
        for (int j = 0; j < w; j++) {
            o->bins[j & (COPIES - 1)][ctx[j]]++;
            o->signs[j & (COPIES - 1)][sidx[j]]++;
        }
        return;
    }
    int64_t escape_bits = 0;
    uint64_t big = 0;
    for (int j = 0; j < w; j++) {
        const int64_t v = row[j];
        const uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        int n = 63 - __builtin_clzll(a | 1);
        big |= a >> MAX_LOG;
        n = n < MAX_LOG ? n : MAX_LOG - 1;
        const int esc = a >= DIRECT;
        escape_bits += esc ? n : 0;
        o->bins[j & (COPIES - 1)][ctx[j] + (esc ? ESCAPE + 2 * (n - 4) + (!signs & (v < 0)) : 0)]++;
        o->signs[j & (COPIES - 1)][sidx[j]]++;
    }
    o->escape_bits += escape_bits;
    o->big |= big;
}

/* context_row of row i of band (l, k, or) into ctx, sidx (w each), from its scratch S (parent
   activity included) and the previous image's, Sp (NULL for the first image); *built: the parent
   row now in o->pdup (-1: none yet). Returns whether the row has an escape. */
static int band_row(const Pyr *P, const Scratch *S, const Scratch *Sp, Acc *o, int l, int k, int or, int i,
                    int *built, uint16_t *ctx, uint8_t *sidx) {
    const Band *B = &P->det[l][or];
    const int w = B->w, W2 = w + 2;
    int ph, pw;
    const int has_par = parent_of(P, l, or, k, &ph, &pw) != NULL;
    const int pi = has_par ? (i / 2 < ph - 1 ? i / 2 : ph - 1) : -2;
    if (pi != *built) {
        if (has_par) {
            const uint16_t *prow = S->pact + (size_t)pi * pw;
            for (int j = 0; j < w; j++) o->pdup[j] = prow[j / 2 < pw - 1 ? j / 2 : pw - 1];
        } else {
            memset(o->pdup, 0, (size_t)w * 2);
        }
        *built = pi;
    }
    const size_t r = (size_t)i * W2 + 1;
    const uint16_t *up = S->abs_ + r, *mid = up + W2, *down = mid + W2;
    const int8_t *gup = S->sgn_ + r, *gmid = gup + W2, *gdown = gmid + W2;
    return (i % 2 ? context_row_odd : context_row_even)(
        up, mid, down, o->pdup, Sp ? Sp->abs_ + r + W2 : o->zeros, gup, gmid, gdown,
        Sp ? (const int8_t *)Sp->sgn_ + r + W2 : (const int8_t *)o->zeros, P->signs, SIGN_POLARITY[or][0],
        SIGN_POLARITY[or][1], w, ctx, sidx);
}

/* the statistics of band (l, k, or) (band_row's scratches) */
static int stats_band(const Pyr *P, const Scratch *S, const Scratch *Sp, Acc *o, int l, int k, int or) {
    const Band *B = &P->det[l][or];
    const int h = B->h, w = B->w;
    const int64_t *b = B->p + (size_t)k * h * w;
    if (acc_rows(o, (size_t)w)) return -1;
    int built = -1;
    for (int i = 0; i < h; i++) {
        const int escapes = band_row(P, S, Sp, o, l, k, or, i, &built, o->ctx, o->sidx);
        count_row(o, b + (size_t)i * w, o->ctx, o->sidx, w, P->signs, escapes);
    }
    o->counted += (uint64_t)h * w;
    return 0;
}

/* The stream (mode 1) of level l: for each pass, each image, its magnitude group (the three
   orientations' positions of the pass, row by row) and its sign group, as the decoder reads them.
   Each position's bin and sign slot come from band_row (rows of the pass only), its table entry
   from the level's lookup of bin -> entry (entry[], sign_entry[]: -1 where the table has no such
   symbol), an escape's symbol and low bits from its value. */
static int stream_level(const Pyr *P, Out *o, Acc *acc, Scratch T[2][3], int l) {
    int32_t entry[LEVEL_BINS], sign_entry[LEVEL_SIGNS];
    for (int i = 0; i < LEVEL_BINS; i++) {
        const int64_t c = 1 + (int64_t)l * PASSES * N_BUCKETS + i / ALPHABET, sym = i % ALPHABET;
        const int64_t t = c < o->n_slot ? o->slot[c] : -1;
        entry[i] = t < 0 || sym >= o->tab_size[t] ? -1 : (int32_t)o->index[o->tab_off[t] + sym];
    }
    for (int i = 0; i < LEVEL_SIGNS; i++) {
        const int64_t c = (int64_t)((l < 2 ? l : 2) * PASSES) * SIGN_SCORES * 3 + i / 2, neg = i % 2;
        const int64_t t = o->sign_slot[c];
        sign_entry[i] = neg >= o->tab_size[t] ? -1 : (int32_t)o->index[o->tab_off[t] + neg];
    }
    size_t most = 0;
    for (int or = 0; or < 3; or++) {
        const size_t n = (size_t)P->det[l][or].h * P->det[l][or].w, w = (size_t)P->det[l][or].w;
        most = n > most ? n : most;
        if (acc_rows(acc, w)) return -1;
    }
    if (acc_bands(acc, most)) return -1;
    const int signs = P->signs;
    for (int phase = 0; phase < PASSES; phase++)
        for (int k = 0; k < P->K; k++) {
            for (int or = 0; or < 3; or++) { /* the bins and sign slots of the pass's rows */
                const Band *B = &P->det[l][or];
                if (!(B->h > 0 && B->w > 0)) continue;
                Scratch *cur = &T[k & 1][or], *prev = k ? &T[(k - 1) & 1][or] : NULL;
                if (prepare(P, cur, l, k, or, 1)) return -1;
                int built = -1;
                for (int i = phase == 1; i < B->h; i += phase == 2 ? 1 : 2)
                    band_row(P, cur, prev, acc, l, k, or, i, &built, acc->band_ctx[or] + (size_t)i * B->w,
                             acc->band_sidx[or] + (size_t)i * B->w);
            }
            for (int group = 0; group < 1 + signs; group++) {
                open_group(o);
                for (int or = 0; or < 3; or++) {
                    const Band *B = &P->det[l][or];
                    const int h = B->h, w = B->w;
                    if (!(h > 0 && w > 0)) continue;
                    const int64_t *b = B->p + (size_t)k * h * w;
                    for (int i = phase == 1; i < h; i += phase == 2 ? 1 : 2) {
                        const int j0 = phase == 0 ? 0 : (phase == 1 ? 1 : (i % 2 ? 0 : 1));
                        const size_t r = (size_t)i * w;
                        for (int j = j0; j < w; j += 2) {
                            const int64_t v = b[r + j];
                            int32_t e;
                            if (group == 0) {
                                const uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
                                int bin = acc->band_ctx[or][r + j];
                                if (a >= DIRECT) {
                                    if (a >= ((uint64_t)1 << MAX_LOG)) { o->too_big = 1; return 0; }
                                    const int n = 63 - __builtin_clzll(a);
                                    bin += ESCAPE + 2 * (n - 4) + (!signs & (v < 0));
                                    o->escape_bits += n;
                                    record_escape(o, (int64_t)(a - ((uint64_t)1 << n)), n);
                                }
                                e = entry[bin];
                            } else {
                                if (!v) continue;
                                e = sign_entry[acc->band_sidx[or][r + j]];
                            }
                            o->total++;
                            if (e < 0 || o->n_ent >= o->cap_ent) { o->bad_symbol = 1; return 0; }
                            o->ent[o->n_ent++] = e;
                        }
                    }
                }
                close_group(o);
            }
        }
    return 0;
}

static void walk_details(const Pyr *P, Out *o, int k0, int k1) {
    Scratch T[2][3]; /* each orientation's band of two images: the current and the previous */
    Acc *acc = NULL;
    memset(T, 0, sizeof T);
    for (int l = P->levels - 1; l >= 0 && !o->failed; l--) {
        int any = 0;
        for (int or = 0; or < 3; or++) any |= P->det[l][or].h > 0 && P->det[l][or].w > 0;
        if (!any) continue;
        if (o->mode == 0) { /* statistics: any order; each band's scratch built once (and the previous
                                image's kept: its magnitudes and signs are contexts) */
            if (!acc && !(acc = (Acc *)calloc(1, sizeof(Acc)))) { o->failed = 1; goto out; }
            for (int k = k0; k < k1; k++)
                for (int or = 0; or < 3; or++) {
                    const Band *B = &P->det[l][or];
                    if (!(B->h > 0 && B->w > 0)) continue;
                    Scratch *cur = &T[k & 1][or], *prev = k ? &T[(k - 1) & 1][or] : NULL;
                    if (acc->counted + (uint64_t)B->h * B->w >= FLUSH_AFTER) flush_level(acc, o, l);
                    if ((k == k0 && prev && prepare(P, prev, l, k - 1, or, 1)) || prepare(P, cur, l, k, or, 1) ||
                        stats_band(P, cur, prev, acc, l, k, or)) {
                        o->failed = 1;
                        goto out;
                    }
                    o->total += (int64_t)B->h * B->w;
                }
            flush_level(acc, o, l);
            continue;
        }
        if (!acc && !(acc = (Acc *)calloc(1, sizeof(Acc)))) { o->failed = 1; goto out; }
        if (stream_level(P, o, acc, T, l)) { o->failed = 1; goto out; } /* the stream: every image (k0 = 0) */
        if (o->too_big || o->bad_symbol) goto out;
    }
out:
    if (acc) {
        o->escape_bits += acc->escape_bits;
        o->too_big |= acc->big != 0;
        free_acc(acc);
    }
    for (int i = 0; i < 3; i++) {
        free_scratch(&T[0][i]);
        free_scratch(&T[1][i]);
    }
}

typedef struct {
    const Pyr *P;
    Out *o;
} Work;

/* fn on works[0] here and on works[1..n-1] in threads (run here when a thread cannot start), then
   joined: each work item is `size` bytes. */
static void run_parallel(void *(*fn)(void *), void *works, size_t size, int n) {
    pthread_t th[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    if (n > MAX_THREADS) n = MAX_THREADS;  /* callers never pass more */
    for (int t = 1; t < n; t++) started[t] = pthread_create(&th[t], NULL, fn, (char *)works + t * size) == 0;
    fn(works);
    for (int t = 1; t < n; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else fn((char *)works + t * size);
    }
}

static void *stats_thread(void *arg) {
    Work *wk = (Work *)arg;
    if (wk->o->k0 == 0) walk_ll(wk->P, wk->o);
    walk_details(wk->P, wk->o, wk->o->k0, wk->o->k1);
    return NULL;
}

/* ------------------------------------------------------------------ Python glue */

static int parse_pyramid_as(Pyr *P, int K, int H, int W, int levels, int signs, PyObject *bands, Py_buffer *bufs,
                            int *nbufs, int flags) {
    *nbufs = 0;
    if (K < 1 || H < 1 || W < 1 || levels < 0 || levels > MAX_LEVELS || (int64_t)K * H * W > ((int64_t)1 << 40)) {
        PyErr_SetString(PyExc_ValueError, "bad pyramid shape");
        return -1;
    }
    if (!PyTuple_Check(bands) || PyTuple_GET_SIZE(bands) != 1 + 3 * levels) {
        PyErr_SetString(PyExc_ValueError, "bands: a tuple (LL, then HL, LH, HH of each level, finest first)");
        return -1;
    }
    P->K = K; P->H = H; P->W = W; P->levels = levels; P->signs = signs;
    int h = H, w = W;
    int shp[MAX_LEVELS][3][2];
    for (int l = 0; l < levels; l++) {
        int hl = (h + 1) / 2, hh = h / 2, wl = (w + 1) / 2, wh = w / 2;
        shp[l][0][0] = hl; shp[l][0][1] = wh;
        shp[l][1][0] = hh; shp[l][1][1] = wl;
        shp[l][2][0] = hh; shp[l][2][1] = wh;
        h = hl; w = wl;
    }
    for (int n = 0; n < 1 + 3 * levels; n++) {
        int bh = n == 0 ? h : shp[(n - 1) / 3][(n - 1) % 3][0], bw = n == 0 ? w : shp[(n - 1) / 3][(n - 1) % 3][1];
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(bands, n), &bufs[n], flags) != 0) return -1;
        (*nbufs)++;
        if (bufs[n].len != (Py_ssize_t)K * bh * bw * 8) {
            PyErr_Format(PyExc_ValueError, "band %d: expected %zd bytes, got %zd", n, (Py_ssize_t)K * bh * bw * 8,
                         bufs[n].len);
            return -1;
        }
        Band *B = n == 0 ? &P->ll : &P->det[(n - 1) / 3][(n - 1) % 3];
        B->h = bh; B->w = bw; B->p = (const int64_t *)bufs[n].buf;
    }
    return 0;
}

static int parse_pyramid(Pyr *P, int K, int H, int W, int levels, int signs, PyObject *bands, Py_buffer *bufs,
                         int *nbufs) {
    return parse_pyramid_as(P, K, H, W, levels, signs, bands, bufs, nbufs, PyBUF_SIMPLE);
}

static void release(Py_buffer *bufs, int n) {
    for (int i = 0; i < n; i++) PyBuffer_Release(&bufs[i]);
}

/* stats(K, H, W, levels, signs, bands, hist_out, sign_out, nthreads) -> (symbols, escape bits) */
static PyObject *py_stats(PyObject *self, PyObject *args) {
    int K, H, W, levels, signs, nthreads;
    PyObject *bands, *ho, *so;
    (void)self;
    if (!PyArg_ParseTuple(args, "iiiipOOOi", &K, &H, &W, &levels, &signs, &bands, &ho, &so, &nthreads)) return NULL;
    Pyr P;
    Py_buffer bufs[1 + 3 * MAX_LEVELS], hb, sb;
    int nb;
    if (parse_pyramid(&P, K, H, W, levels, signs, bands, bufs, &nb)) { release(bufs, nb); return NULL; }
    if (PyObject_GetBuffer(ho, &hb, PyBUF_WRITABLE) != 0) { release(bufs, nb); return NULL; }
    if (PyObject_GetBuffer(so, &sb, PyBUF_WRITABLE) != 0) { PyBuffer_Release(&hb); release(bufs, nb); return NULL; }
    PyObject *res = NULL;
    if (hb.len != (Py_ssize_t)N_CTX * ALPHABET * 8 || sb.len != (Py_ssize_t)N_SIGN_CTX * 2 * 8) {
        PyErr_SetString(PyExc_ValueError, "histogram buffers of the wrong size");
        goto done;
    }
    if (nthreads < 1) nthreads = 1;
    if (nthreads > K) nthreads = K;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    Out outs[MAX_THREADS];
    Work works[MAX_THREADS];
    memset(outs, 0, sizeof(Out) * nthreads);
    int failed = 0;
    for (int t = 0; t < nthreads; t++) {
        outs[t].k0 = (int)((int64_t)K * t / nthreads);
        outs[t].k1 = (int)((int64_t)K * (t + 1) / nthreads);
        outs[t].hist = t == 0 ? (int64_t *)hb.buf : (int64_t *)calloc((size_t)N_CTX * ALPHABET, 8);
        outs[t].scount = t == 0 ? (int64_t *)sb.buf : (int64_t *)calloc((size_t)N_SIGN_CTX * 2, 8);
        if (!outs[t].hist || !outs[t].scount) failed = 1;
        works[t].P = &P;
        works[t].o = &outs[t];
    }
    if (!failed) {
        memset(hb.buf, 0, hb.len);
        memset(sb.buf, 0, sb.len);
        Py_BEGIN_ALLOW_THREADS
        run_parallel(stats_thread, works, sizeof works[0], nthreads);
        Py_END_ALLOW_THREADS
    }
    int64_t total = 0, esc = 0;
    int too_big = 0;
    for (int t = 0; t < nthreads; t++) {
        total += outs[t].total;
        esc += outs[t].escape_bits;
        too_big |= outs[t].too_big;
        failed |= outs[t].failed;
        if (t > 0) {
            if (!failed) {
                for (size_t i = 0; i < (size_t)N_CTX * ALPHABET; i++) ((int64_t *)hb.buf)[i] += outs[t].hist[i];
                for (size_t i = 0; i < (size_t)N_SIGN_CTX * 2; i++) ((int64_t *)sb.buf)[i] += outs[t].scount[i];
            }
            free(outs[t].hist);
            free(outs[t].scount);
        }
    }
    if (failed) { PyErr_NoMemory(); goto done; }
    if (too_big) { PyErr_Format(PyExc_ValueError, "coefficient magnitude exceeds 2**%d", MAX_LOG); goto done; }
    res = Py_BuildValue("LL", (long long)total, (long long)esc);
done:
    PyBuffer_Release(&hb);
    PyBuffer_Release(&sb);
    release(bufs, nb);
    return res;
}

static PyObject *rans_encode_core(const int32_t *e32, const int64_t *e64, Py_ssize_t n, const int64_t *freqs,
                                  const int64_t *starts, Py_ssize_t n_entries, int precision, int lanes,
                                  long long state_low, int word_bits);

/* stream(K, H, W, levels, signs, bands, slot, sign_slot, tab_off, tab_size, index, freqs, starts, precision,
          lanes, state_low, word_bits, total, low, nbits) -> (stream bytes, escapes)
   pack()'s coded groups straight into the rANS stream: each symbol's table entry (context -> table by
   slot / sign_slot, the table's symbol -> entry by index[tab_off[t] + s]), each group padded to whole
   steps with the last (no-op) entry, then rans_encode over them: the bytes of rans.encode_segments of
   bitstream._coded's segments, without their (symbol, context, table) arrays. total: the symbols (for the
   entry buffer); low, nbits: int64 buffers of one entry per escape (the escapes' low bits and counts; ValueError if too short). */
static PyObject *py_stream(PyObject *self, PyObject *args) {
    int K, H, W, levels, signs, precision, lanes, word_bits;
    long long state_low, total;
    PyObject *bands, *objs[9];
    (void)self;
    if (!PyArg_ParseTuple(args, "iiiipOOOOOOOOiiLiLOO", &K, &H, &W, &levels, &signs, &bands, &objs[0], &objs[1],
                          &objs[2], &objs[3], &objs[4], &objs[5], &objs[6], &precision, &lanes, &state_low,
                          &word_bits, &total, &objs[7], &objs[8]))
        return NULL;
    Pyr P;
    Py_buffer bufs[1 + 3 * MAX_LEVELS], ob[9];
    int nb, no = 0;
    PyObject *res = NULL, *stream = NULL;
    Out o;
    memset(&o, 0, sizeof o);
    if (parse_pyramid(&P, K, H, W, levels, signs, bands, bufs, &nb)) goto done;
    for (; no < 9; no++)
        if (PyObject_GetBuffer(objs[no], &ob[no], no >= 7 ? PyBUF_WRITABLE : PyBUF_SIMPLE) != 0) goto done;
    const Py_ssize_t n = (Py_ssize_t)K * H * W, n_tables = ob[2].len / 8, n_entries = ob[5].len / 8;
    (void)n;
    if (ob[1].len != N_SIGN_CTX * 8 || ob[3].len != ob[2].len || ob[6].len != ob[5].len || ob[7].len != ob[8].len ||
        lanes < 1 || lanes > 256 || total < 0 || n_entries < 1) {
        PyErr_SetString(PyExc_ValueError, "stream: inconsistent buffers");
        goto done;
    }
    const int64_t *tab_off = (const int64_t *)ob[2].buf, *tab_size = (const int64_t *)ob[3].buf;
    const int64_t *slot = (const int64_t *)ob[0].buf, *sign_slot = (const int64_t *)ob[1].buf;
    const Py_ssize_t n_index = ob[4].len / 8;
    int ok = 1;
    for (Py_ssize_t t = 0; ok && t < n_tables; t++)
        ok = tab_off[t] >= 0 && tab_size[t] >= 0 && tab_off[t] + tab_size[t] <= n_index;
    for (Py_ssize_t i = 0; ok && i < ob[0].len / 8; i++) ok = slot[i] >= -1 && slot[i] < n_tables;
    for (Py_ssize_t i = 0; ok && i < N_SIGN_CTX; i++) ok = sign_slot[i] >= 0 && sign_slot[i] < n_tables;
    for (Py_ssize_t i = 0; ok && i < n_index; i++) ok = ((const int64_t *)ob[4].buf)[i] < n_entries;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "stream: a slot or entry out of range");
        goto done;
    }
    o.mode = 1;
    o.slot = slot; o.sign_slot = sign_slot; o.tab_off = tab_off; o.tab_size = tab_size;
    o.index = (const int64_t *)ob[4].buf;
    o.n_slot = ob[0].len / 8;
    o.lanes = lanes;
    o.pad_entry = n_entries - 1;
    o.cap_ent = total + (int64_t)lanes * (1 + 2 * 3 * (int64_t)levels * K);
    o.ent = (int32_t *)malloc((size_t)o.cap_ent * 4);
    o.low = (int64_t *)ob[7].buf; o.nbits = (int64_t *)ob[8].buf;
    o.cap_esc = ob[7].len / 8;
    if (!o.ent) { PyErr_NoMemory(); goto done; }
    Py_BEGIN_ALLOW_THREADS
    walk_ll(&P, &o);
    walk_details(&P, &o, 0, K);
    Py_END_ALLOW_THREADS
    if (o.failed) { PyErr_NoMemory(); goto done; }
    if (o.too_big) { PyErr_Format(PyExc_ValueError, "coefficient magnitude exceeds 2**%d", MAX_LOG); goto done; }
    if (o.esc_overflow) { PyErr_SetString(PyExc_ValueError, "stream: more escapes than low and nbits hold"); goto done; }
    if (o.bad_symbol || o.total != total) {
        PyErr_SetString(PyExc_ValueError, "symbol with frequency 0 in its table (or a count other than `total`)");
        goto done;
    }
    stream = o.n_ent ? rans_encode_core(o.ent, NULL, o.n_ent, (const int64_t *)ob[5].buf, (const int64_t *)ob[6].buf,
                                        n_entries, precision, lanes, state_low, word_bits)
                     : PyBytes_FromStringAndSize(NULL, 0);
    if (stream) res = Py_BuildValue("NL", stream, (long long)o.n_esc);
done:
    free(o.ent);
    for (int i = 0; i < no; i++) PyBuffer_Release(&ob[i]);
    release(bufs, nb);
    return res;
}


/* ------------------------------------------------------------------ rANS segment decoding
   rans.SegmentDecoder.read() with the step loop compiled: for each step, each lane in order,
   key = table * M + (x & (M - 1)), e = the last entry with starts[e] <= key,
   x = freqs[e] * (x >> precision) + key - starts[e], then the lanes under STATE_LOW, in lane order,
   take the next 16-bit word. Integers only: the same symbols and states as the numpy code. */

/* rans_read(x, words, n_words, ptr, starts, freqs, symbols, which, out, precision, state_low, word_bits)
   -> new ptr (> n_words: truncated); x is updated in place */
static PyObject *py_rans_read(PyObject *self, PyObject *args) {
    PyObject *objs[7];
    Py_ssize_t n_words, ptr;
    int precision, word_bits;
    long long state_low;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOnnOOOOOiLi", &objs[0], &objs[1], &n_words, &ptr, &objs[2], &objs[3], &objs[4],
                          &objs[5], &objs[6], &precision, &state_low, &word_bits))
        return NULL;
    Py_buffer b[7];
    int nb = 0;
    PyObject *res = NULL;
    for (; nb < 7; nb++)
        if (PyObject_GetBuffer(objs[nb], &b[nb], (nb == 0 || nb == 6) ? PyBUF_WRITABLE : PyBUF_SIMPLE) != 0) goto done;
    {
        int64_t *x = (int64_t *)b[0].buf;
        const int64_t *words = (const int64_t *)b[1].buf, *starts = (const int64_t *)b[2].buf,
                      *freqs = (const int64_t *)b[3].buf, *symbols = (const int64_t *)b[4].buf,
                      *which = (const int64_t *)b[5].buf;
        int64_t *out = (int64_t *)b[6].buf;
        const Py_ssize_t lanes = b[0].len / 8, n_entries = b[2].len / 8, count = b[5].len / 8;
        const Py_ssize_t n_avail = b[1].len / 8;
        if (b[6].len / 8 < count || b[3].len / 8 != n_entries || b[4].len / 8 != n_entries || n_entries < 1 ||
            lanes < 1 || precision < 1 || precision > 24 || n_words > n_avail) {
            PyErr_SetString(PyExc_ValueError, "rans_read: inconsistent buffers");
            goto done;
        }
        const int64_t mask = ((int64_t)1 << precision) - 1;
        const int64_t pad = starts[n_entries - 1] >> precision; /* the no-op table */
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i0 = 0; i0 < count; i0 += lanes) {
            for (Py_ssize_t l = 0; l < lanes; l++) {
                const Py_ssize_t i = i0 + l;
                const int64_t key = ((i < count ? which[i] : pad) << precision) + (x[l] & mask);
                Py_ssize_t lo = 0, hi = n_entries; /* last e with starts[e] <= key */
                while (hi - lo > 1) {
                    Py_ssize_t mid = (lo + hi) / 2;
                    if (starts[mid] <= key) lo = mid;
                    else hi = mid;
                }
                x[l] = freqs[lo] * (x[l] >> precision) + (key - starts[lo]);
                if (i < count) out[i] = symbols[lo];
            }
            for (Py_ssize_t l = 0; l < lanes; l++)
                if (x[l] < state_low) {
                    x[l] = (x[l] << word_bits) | (ptr < n_words ? words[ptr] : 0);
                    ptr++;
                }
            if (ptr > n_words) break;
        }
        Py_END_ALLOW_THREADS
        res = PyLong_FromSsize_t(ptr);
    }
done:
    for (int i = 0; i < nb; i++) PyBuffer_Release(&b[i]);
    return res;
}

/* ------------------------------------------------------------------ the size estimate, approximately
   bitstream.estimate_bits() from the statistics (plan_tables with _table_cost, param_freqs, plan_signs,
   the stream's fixed costs) in C doubles: the same formulas, not the same floating-point operation
   order, so it agrees with the numpy estimate to ~1e-12 relative, not to the last bit. The encoder
   uses it only to decide "fits the budget" when it is far (> a margin) from the budget, and the exact
   estimate otherwise, so its decisions and files are those of the exact estimate. `ties` counts the
   table-merge decisions that were too close to call (the encoder then uses the exact estimate). */
#include <math.h>

#define PRECISION_BITS 12
static const int64_t FRACTIONS[16] = {65536, 62757, 60097, 57549, 55109, 52773, 50535, 48393,
                                      46341, 44376, 42495, 40693, 38968, 37316, 35734, 34219};

typedef unsigned __int128 u128;

static uint64_t fx_power(uint64_t theta, int64_t e) {
    u128 result = (u128)1 << 32, base = theta;
    while (e) {
        if (e & 1) result = (result * base) >> 32;
        base = (base * base) >> 32;
        e >>= 1;
    }
    return (uint64_t)result;
}

/* param_freqs(a, b, top, unsigned) into f[0..top]; 0 when it is None */
static int param_freqs_c(int a, int b, int top, int unsigned_, int64_t *f) {
    if (a < 0 || a > 255 || b < 0 || b > 255 || top < 0 || top >= ALPHABET) return 0;
    const uint64_t theta = (uint64_t)b << 24;
    u128 weights[ALPHABET];
    int dropped[ALPHABET];
    u128 run = (u128)1 << 32, total = 0;
    weights[0] = 0;
    dropped[0] = 0;
    for (int s = 1; s <= top; s++) {
        dropped[s] = unsigned_ && (s < ESCAPE ? s % 2 == 0 : (s - ESCAPE) % 2 == 1);
        if (s < ESCAPE) {
            weights[s] = dropped[s] ? 0 : run;
            if (s % 2 == 0) run = (run * theta) >> 32;
        } else {
            int n = (s - ESCAPE) / 2 + 4;
            int64_t den = 256 - b > 1 ? 256 - b : 1, cap = 256 / den;
            int64_t width = (int64_t)1 << n;
            weights[s] = dropped[s] ? 0 : (u128)fx_power(theta, width - 1) * (u128)(width < cap ? width : cap);
        }
        total += weights[s];
    }
    const int64_t m = (int64_t)1 << PRECISION_BITS;
    int64_t rest = (int64_t)(((u128)m * FRACTIONS[a % 16]) >> (16 + a / 16));
    if (rest < 1) rest = 1;
    int64_t sum = 0;
    for (int s = 1; s <= top; s++) {
        int64_t v;
        if (dropped[s]) v = 0;
        else if (total) {
            v = (int64_t)(((u128)rest * weights[s]) / total);
            if (v < 1) v = 1;
        } else v = 1;
        f[s] = v;
        sum += v;
    }
    f[0] = m - sum;
    return f[0] >= 1;
}

/* param_freqs(a, b, top, unsigned, out) -> bool: bitstream.param_freqs compiled (the same integers)
   into out (int64, top + 1 values); False where that returns None */
static PyObject *py_param_freqs(PyObject *self, PyObject *args) {
    int a, b, top, unsigned_;
    PyObject *oo;
    Py_buffer ob;
    (void)self;
    if (!PyArg_ParseTuple(args, "iiipO", &a, &b, &top, &unsigned_, &oo)) return NULL;
    if (top < 0 || top >= ALPHABET) Py_RETURN_FALSE;
    if (PyObject_GetBuffer(oo, &ob, PyBUF_WRITABLE) != 0) return NULL;
    if (ob.len != (Py_ssize_t)(top + 1) * 8) {
        PyBuffer_Release(&ob);
        PyErr_SetString(PyExc_ValueError, "param_freqs: out must hold top + 1 int64");
        return NULL;
    }
    int64_t f[ALPHABET];
    const int ok = param_freqs_c(a, b, top, unsigned_, f);
    if (ok) memcpy(ob.buf, f, (size_t)(top + 1) * 8);
    PyBuffer_Release(&ob);
    return PyBool_FromLong(ok);
}

static inline int64_t magnitude_of(int s) { return s < ESCAPE ? (s + 1) / 2 : (int64_t)1 << ((s - ESCAPE) / 2 + 4); }

static inline double round_half_even(double v) { return nearbyint(v); }

static double table_cost_c(const int64_t *h, int unsigned_) {
    int64_t n = 0, used = 0, top = -1, magsum = 0;
    for (int s = 0; s < ALPHABET; s++)
        if (h[s] > 0) {
            n += h[s];
            used++;
            top = s;
            magsum += h[s] * magnitude_of(s);
        }
    double overhead = 81.4 + 3.08 * (double)used - 4.09 * log2((double)n);
    if (overhead < 16.0) overhead = 16.0;
    /* bitstream._floored_entropy: no share below 2**-P but the most frequent symbol's, which gives
       up what those floors take */
    const double floor_ = 1.0 / (double)(1 << PRECISION_BITS);
    int most = 0;
    for (int s = 1; s < ALPHABET; s++)
        if (h[s] > h[most]) most = s;
    double taken = 0.0;
    int rare = 0;
    for (int s = 0; s < ALPHABET; s++)
        if (h[s] > 0 && s != most && (double)h[s] / (double)n < floor_) {
            taken += floor_ - (double)h[s] / (double)n;
            rare = 1;
        }
    const double left = (double)h[most] / (double)n - taken;
    if (!(left > 0.0)) rare = 0;
    double ent = 0.0;
    for (int s = 0; s < ALPHABET; s++) {
        if (h[s] <= 0) continue;
        const double share = (double)h[s] / (double)n;
        if (rare && s == most) ent += (double)h[s] * log2(left);
        else if (rare && share < floor_) ent -= (double)h[s] * (double)PRECISION_BITS;
        else ent += (double)h[s] * log2(share);
    }
    const double explicit_ = -ent + overhead;
    const int64_t nz = n - h[0];
    double mean = 1.0;
    int a = 255;
    if (nz) {
        mean = (double)magsum / (double)nz;
        double av = round_half_even(-16.0 * log2((double)nz / (double)n));
        a = av < 0 ? 0 : (av > 255 ? 255 : (int)av);
    }
    double bv = round_half_even(256.0 * (1.0 - 1.0 / (mean > 1.0 ? mean : 1.0)));
    int b = bv < 0 ? 0 : (bv > 255 ? 255 : (int)bv);
    int64_t f[ALPHABET];
    if (!param_freqs_c(a, b, (int)top, unsigned_, f)) return explicit_;
    double dot = 0.0;
    for (int s = 0; s <= top; s++)
        if (h[s] > 0) {
            if (f[s] == 0) return explicit_;
            dot += (double)h[s] * log2((double)f[s]);
        }
    const double param = 24.0 + (double)PRECISION_BITS * (double)n - dot;
    return param < explicit_ ? param : explicit_;
}

#define TIE 1e-9

/* estimate(hist, sign_counts, escape_bits, signs) -> (bits, ties) */
static PyObject *py_estimate(PyObject *self, PyObject *args) {
    PyObject *ho, *so;
    long long escape_bits;
    int signs;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOLp", &ho, &so, &escape_bits, &signs)) return NULL;
    Py_buffer hb, sb;
    if (PyObject_GetBuffer(ho, &hb, PyBUF_SIMPLE) != 0) return NULL;
    if (PyObject_GetBuffer(so, &sb, PyBUF_SIMPLE) != 0) { PyBuffer_Release(&hb); return NULL; }
    PyObject *res = NULL;
    if (hb.len != (Py_ssize_t)N_CTX * ALPHABET * 8 || sb.len != (Py_ssize_t)N_SIGN_CTX * 2 * 8) {
        PyErr_SetString(PyExc_ValueError, "estimate: histogram buffers of the wrong size");
        goto done;
    }
    {
        const int64_t *hist = (const int64_t *)hb.buf, *sc = (const int64_t *)sb.buf;
        int64_t merged[ALPHABET], joined[ALPHABET];
        double bits = 0.0, last = 0.0;
        int have = 0, prev = -1, ties = 0;
        for (int cid = 0; cid < N_CTX; cid++) {
            const int64_t *h = hist + (size_t)cid * ALPHABET;
            int64_t rowsum = 0;
            for (int s = 0; s < ALPHABET; s++) rowsum += h[s];
            if (!rowsum) continue;
            const int unsigned_ = signs && cid != 0;
            const int same = have && cid != 0 && prev != 0 && (cid - 1) / N_BUCKETS == (prev - 1) / N_BUCKETS;
            prev = cid;
            double alone;
            if (same) {
                for (int s = 0; s < ALPHABET; s++) joined[s] = merged[s] + h[s];
                const double c = table_cost_c(joined, unsigned_);
                alone = table_cost_c(h, unsigned_);
                const double other = last + alone;
                if (fabs(c - other) <= TIE * (fabs(c) + fabs(other) + 1.0)) ties++;
                if (c <= other) {
                    memcpy(merged, joined, sizeof merged);
                    last = c;
                    continue;
                }
            } else {
                alone = table_cost_c(h, unsigned_);
            }
            if (have) bits += last;
            memcpy(merged, h, sizeof merged);
            last = alone;
            have = 1;
        }
        if (have) bits += last;
        if (signs) {
            double sbits = 0.0, plain = 0.0;
            int listed = 0;
            for (int cid = 0; cid < N_SIGN_CTX; cid++) {
                const int64_t pos = sc[2 * cid], neg = sc[2 * cid + 1];
                plain += (double)(pos + neg);
                if (pos + neg == 0) continue;
                double qv = round_half_even(256.0 * (double)neg / (double)(pos + neg));
                int q = qv < 1 ? 1 : (qv > 255 ? 255 : (int)qv);
                const double f0 = (double)(4096 - 16 * q), f1 = (double)(16 * q);
                const double own = (double)pos * (PRECISION_BITS - log2(f0)) + (double)neg * (PRECISION_BITS - log2(f1)) + 8.0;
                if (own < (double)(pos + neg)) {
                    listed++;
                    sbits += own;
                } else {
                    sbits += (double)(pos + neg);
                }
            }
            const double map = 8.0 * ((N_SIGN_CTX + 7) / 8);
            bits += (!listed || sbits + map >= plain) ? plain + 8.0 : sbits + map + 8.0;
            bits += 24.0;
        }
        bits += (double)escape_bits; /* the stream's framing and the context list: bitstream.framing_bits */
        res = Py_BuildValue("di", bits, ties);
    }
done:
    PyBuffer_Release(&hb);
    PyBuffer_Release(&sb);
    return res;
}

/* rans_encode(e, freqs, starts, precision, lanes, state_low, word_bits) -> bytes: rans._encode_entries
   (entries e, a multiple of `lanes` long, coded from the last step to the first; the words come out
   step by step from the first, lanes in order within a step). Integers only. */
/* the rANS stream of entries e (n, a multiple of `lanes`; int32 when e32, else int64 e64): lane states
   from STATE_LOW, symbols coded last to first, 16-bit words in the order the decoder reads them */
static PyObject *rans_encode_core(const int32_t *e32, const int64_t *e64, Py_ssize_t n, const int64_t *freqs,
                                  const int64_t *starts, Py_ssize_t n_entries, int precision, int lanes,
                                  long long state_low, int word_bits) {
    PyObject *res = NULL;
    uint16_t *buf = NULL;
    Py_ssize_t *first = NULL;
    int64_t *x = NULL;
    if (lanes < 1 || lanes > 256 || (lanes & (lanes - 1)) || n % lanes || precision < 1 || precision > 24 ||
        word_bits != 16) {
        PyErr_SetString(PyExc_ValueError, "rans_encode: bad arguments");
        return NULL;
    }
#define ENTRY(i) (e32 ? (int64_t)e32[i] : e64[i])
    for (Py_ssize_t i = 0; i < n; i++)
        if (ENTRY(i) < 0 || ENTRY(i) >= n_entries || freqs[ENTRY(i)] < 1) {
            PyErr_SetString(PyExc_ValueError, "rans_encode: entry out of range");
            return NULL;
        }
    const Py_ssize_t steps = n / lanes;
    buf = (uint16_t *)malloc((size_t)(n ? n : 1) * 2);
    first = (Py_ssize_t *)malloc((size_t)(steps + 1) * sizeof(Py_ssize_t));
    x = (int64_t *)malloc((size_t)lanes * 8);
    if (!buf || !first || !x) { PyErr_NoMemory(); goto done; }
    const int64_t mask = ((int64_t)1 << precision) - 1;
    for (int l = 0; l < lanes; l++) x[l] = state_low;
    Py_ssize_t nw = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = steps - 1; j >= 0; j--) {
        first[j] = nw;
        for (int l = 0; l < lanes; l++) {
            const int64_t ej = ENTRY(j * lanes + l), f = freqs[ej];
            if (x[l] >= (f << (32 - precision))) {
                buf[nw++] = (uint16_t)(x[l] & 0xFFFF);
                x[l] >>= word_bits;
            }
            const int64_t q = x[l] / f;
            x[l] = (q << precision) + (x[l] - q * f) + (starts[ej] & mask);
        }
    }
    Py_END_ALLOW_THREADS
#undef ENTRY
    first[steps] = nw;
    res = PyBytes_FromStringAndSize(NULL, 1 + 4 * (Py_ssize_t)lanes + 2 * nw);
    if (!res) goto done;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(res);
    int lg = 0;
    while ((1 << lg) < lanes) lg++;
    *out++ = (unsigned char)lg;
    for (int l = 0; l < lanes; l++) {
        uint32_t v = (uint32_t)x[l];
        *out++ = v & 0xFF; *out++ = (v >> 8) & 0xFF; *out++ = (v >> 16) & 0xFF; *out++ = (v >> 24) & 0xFF;
    }
    /* steps in increasing order; a step's words were emitted at first[j] .. (its end) */
    for (Py_ssize_t j = 0; j < steps; j++) {
        const Py_ssize_t a = first[j], b = j > 0 ? first[j - 1] : nw;
        for (Py_ssize_t i = a; i < b; i++) {
            *out++ = buf[i] & 0xFF;
            *out++ = buf[i] >> 8;
        }
    }
done:
    free(buf);
    free(first);
    free(x);
    return res;
}

static PyObject *py_rans_encode(PyObject *self, PyObject *args) {    PyObject *eo, *fo, *so;
    int precision, lanes, word_bits;
    long long state_low;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOiiLi", &eo, &fo, &so, &precision, &lanes, &state_low, &word_bits)) return NULL;
    Py_buffer eb, fb, sb;
    if (PyObject_GetBuffer(eo, &eb, PyBUF_SIMPLE) != 0) return NULL;
    if (PyObject_GetBuffer(fo, &fb, PyBUF_SIMPLE) != 0) { PyBuffer_Release(&eb); return NULL; }
    if (PyObject_GetBuffer(so, &sb, PyBUF_SIMPLE) != 0) { PyBuffer_Release(&eb); PyBuffer_Release(&fb); return NULL; }
    PyObject *res = NULL;
    if (sb.len != fb.len) PyErr_SetString(PyExc_ValueError, "rans_encode: bad arguments");
    else res = rans_encode_core(NULL, (const int64_t *)eb.buf, eb.len / 8, (const int64_t *)fb.buf,
                                (const int64_t *)sb.buf, fb.len / 8, precision, lanes, state_low, word_bits);
    PyBuffer_Release(&eb);
    PyBuffer_Release(&fb);
    PyBuffer_Release(&sb);
    return res;
}

/* ------------------------------------------------------------------ CDF 9/7 lifting (wavelet.py)
   _forward_1d / _inverse_1d along the last axis (rows) or the one before it (columns), the same
   operations in the same order per sample as the numpy code (t = a + b; u = c * t; x = x + u, each
   one IEEE rounding; compiled with -ffp-contract=off: no fused multiply-add), so the same bits.
   Constants come from wavelet.py (LIFT = alpha, beta, gamma, delta, the two scales). */

/* One line: s (ns samples) and d (nd, ns - nd in {0, 1}, nd >= 1), contiguous, lifted in place
   (forward / inverse). The boundary samples (the symmetric extension: a missing neighbour is the
   nearest one) are done apart from the loops over the others, which then hold no branch and
   vectorise; every sample sees the same operations in the same order (t = a + b; u = c * t;
   x = x +- u, each one rounding), so the same bits. */
VECTOR_CLONES static void lift_d(double *restrict d, const double *restrict s, Py_ssize_t ns, Py_ssize_t nd,
                                 double cp, int minus) {
    const Py_ssize_t m = ns > nd ? nd : nd - 1; /* d[i] with a right neighbour s[i + 1] */
    if (minus)
        for (Py_ssize_t i = 0; i < m; i++) d[i] = d[i] - cp * (s[i] + s[i + 1]);
    else
        for (Py_ssize_t i = 0; i < m; i++) d[i] = d[i] + cp * (s[i] + s[i + 1]);
    if (m < nd) d[nd - 1] = minus ? d[nd - 1] - cp * (s[nd - 1] + s[ns - 1]) : d[nd - 1] + cp * (s[nd - 1] + s[ns - 1]);
}

VECTOR_CLONES static void lift_s(double *restrict s, const double *restrict d, Py_ssize_t ns, Py_ssize_t nd,
                                 double cu, int minus) {
    s[0] = minus ? s[0] - cu * (d[0] + d[0]) : s[0] + cu * (d[0] + d[0]);
    if (minus)
        for (Py_ssize_t i = 1; i < nd; i++) s[i] = s[i] - cu * (d[i - 1] + d[i]);
    else
        for (Py_ssize_t i = 1; i < nd; i++) s[i] = s[i] + cu * (d[i - 1] + d[i]);
    if (ns > nd && nd >= 1) /* the last s, past the last d: both neighbours d[nd - 1] */
        s[nd] = minus ? s[nd] - cu * (d[nd - 1] + d[nd - 1]) : s[nd] + cu * (d[nd - 1] + d[nd - 1]);
}

VECTOR_CLONES static void scale_line(double *restrict x, Py_ssize_t n, double k) {
    for (Py_ssize_t i = 0; i < n; i++) x[i] = x[i] * k;
}

static void lift_fwd_line(double *s, Py_ssize_t ns, double *d, Py_ssize_t nd, const double *c) {
    for (int step = 0; step < 4; step += 2) {
        lift_d(d, s, ns, nd, c[step], 0);
        lift_s(s, d, ns, nd, c[step + 1], 0);
    }
    scale_line(s, ns, c[4]);
    scale_line(d, nd, c[5]);
}

static void lift_inv_line(double *s, Py_ssize_t ns, double *d, Py_ssize_t nd, const double *c) {
    scale_line(s, ns, c[5]);
    scale_line(d, nd, c[4]);
    for (int step = 2; step >= 0; step -= 2) {
        lift_s(s, d, ns, nd, c[step + 1], 1);
        lift_d(d, s, ns, nd, c[step], 1);
    }
}

static int get_doubles(PyObject *o, Py_buffer *b, Py_ssize_t n, int writable, const char *what) {
    if (PyObject_GetBuffer(o, b, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) != 0) return -1;
    if (b->len != n * 8) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd doubles, got %zd bytes", what, n, b->len);
        PyBuffer_Release(b);
        return -1;
    }
    return 0;
}


/* the column lifting of a level: S (ns rows) and D (nd rows) of W samples each, forward or inverse, in place: every sample's operations in the order of lift_fwd_line /
   lift_inv_line, a row of samples at a time */
VECTOR_CLONES static void col_lift(double *S, double *D, Py_ssize_t W, Py_ssize_t ns, Py_ssize_t nd, const double *c, int inverse) {
    if (!inverse) {
        for (int step = 0; step < 4; step += 2) {
            const double cp = c[step], cu = c[step + 1];
            for (Py_ssize_t i = 0; i < nd; i++) {
                double *d = D + i * W;
                const double *s0 = S + i * W, *s1 = S + (i + 1 < ns ? i + 1 : ns - 1) * W;
                for (Py_ssize_t j = 0; j < W; j++) d[j] = d[j] + cp * (s0[j] + s1[j]);
            }
            for (Py_ssize_t i = 0; i < ns; i++) {
                double *sr = S + i * W;
                const double *p = D + (i ? i - 1 : 0) * W, *q = D + (i < nd ? i : nd - 1) * W;
                for (Py_ssize_t j = 0; j < W; j++) sr[j] = sr[j] + cu * (p[j] + q[j]);
            }
        }
        for (Py_ssize_t i = 0; i < ns; i++)
            for (Py_ssize_t j = 0; j < W; j++) S[i * W + j] = S[i * W + j] * c[4];
        for (Py_ssize_t i = 0; i < nd; i++)
            for (Py_ssize_t j = 0; j < W; j++) D[i * W + j] = D[i * W + j] * c[5];
        return;
    }
    for (Py_ssize_t i = 0; i < ns; i++)
        for (Py_ssize_t j = 0; j < W; j++) S[i * W + j] = S[i * W + j] * c[5];
    for (Py_ssize_t i = 0; i < nd; i++)
        for (Py_ssize_t j = 0; j < W; j++) D[i * W + j] = D[i * W + j] * c[4];
    for (int step = 2; step >= 0; step -= 2) {
        const double cp = c[step], cu = c[step + 1];
        for (Py_ssize_t i = 0; i < ns; i++) {
            double *sr = S + i * W;
            const double *p = D + (i ? i - 1 : 0) * W, *q = D + (i < nd ? i : nd - 1) * W;
            for (Py_ssize_t j = 0; j < W; j++) sr[j] = sr[j] - cu * (p[j] + q[j]);
        }
        for (Py_ssize_t i = 0; i < nd; i++) {
            double *d = D + i * W;
            const double *s0 = S + i * W, *s1 = S + (i + 1 < ns ? i + 1 : ns - 1) * W;
            for (Py_ssize_t j = 0; j < W; j++) d[j] = d[j] - cp * (s0[j] + s1[j]);
        }
    }
}

#define LIFT_THREAD_MIN 65536 /* samples: below this a call runs in one thread */

/* ------------------------------------------------------------------ one 2-D level (wavelet.forward / inverse)
   level(x, ll, hl, lh, hh, K, H, W, inverse, consts, threads): x (K, H, W) <-> ll (K, ceil H/2, ceil W/2),
   lh (K, floor H/2, ceil W/2), hl (K, ceil H/2, floor W/2), hh (K, floor H/2, floor W/2); H, W >= 2. The
   operations of wavelet._forward_1d along x, then along y of each half (forward; the inverse in reverse), each sample's
   in the same order, so the same bits; but an image at a time through a per-thread scratch, without the
   two (K, H, W / 2) intermediates (memory to allocate and clear). Threads take images. */
typedef struct {
    double *x, *ll, *hl, *lh, *hh;
    const double *c;
    Py_ssize_t H, W, k0, k1;
    int inverse, failed;
} LevelWork;

static void *level_thread(void *arg) {
    LevelWork *L = (LevelWork *)arg;
    const Py_ssize_t H = L->H, W = L->W, hs = (H + 1) / 2, hd = H / 2, ws = (W + 1) / 2, wd = W / 2;
    const double *c = L->c;
    double *R = (double *)malloc((size_t)H * W * 8), *S = NULL, *D = NULL;
    if (L->inverse) {
        S = (double *)malloc((size_t)hs * ws * 8);
        D = (double *)malloc((size_t)(hd ? hd : 1) * ws * 8);
    }
    if (!R || (L->inverse && (!S || !D))) {
        L->failed = 1;
        free(R); free(S); free(D);
        return NULL;
    }
    for (Py_ssize_t k = L->k0; k < L->k1; k++) {
        double *x = L->x + k * H * W, *ll = L->ll + k * hs * ws, *lh = L->lh + k * hd * ws, *hl = L->hl + k * hs * wd,
               *hh = L->hh + k * hd * wd;
        if (!L->inverse) {
            for (Py_ssize_t i = 0; i < H; i++) { /* rows: split into [lo | hi], lift */
                const double *src = x + i * W;
                double *lo = R + i * W, *hi = lo + ws;
                for (Py_ssize_t t = 0; t < wd; t++) {
                    lo[t] = src[2 * t];
                    hi[t] = src[2 * t + 1];
                }
                if (ws > wd) lo[ws - 1] = src[W - 1];
                lift_fwd_line(lo, ws, hi, wd, c);
            }
            for (Py_ssize_t i = 0; i < H; i++) { /* columns: even rows -> ll / hl, odd -> lh / hh */
                memcpy((i % 2 ? lh + (i / 2) * ws : ll + (i / 2) * ws), R + i * W, ws * 8);
                memcpy((i % 2 ? hh + (i / 2) * wd : hl + (i / 2) * wd), R + i * W + ws, wd * 8);
            }
            col_lift(ll, lh, ws, hs, hd, c, 0);
            col_lift(hl, hh, wd, hs, hd, c, 0);
        } else {
            for (int half = 0; half < 2; half++) { /* columns of each half back into R's rows */
                const Py_ssize_t w = half ? wd : ws, off = half ? ws : 0;
                memcpy(S, half ? hl : ll, hs * w * 8);
                memcpy(D, half ? hh : lh, hd * w * 8);
                col_lift(S, D, w, hs, hd, c, 1);
                for (Py_ssize_t i = 0; i < H; i++)
                    memcpy(R + i * W + off, (i % 2 ? D + (i / 2) * w : S + (i / 2) * w), w * 8);
            }
            for (Py_ssize_t i = 0; i < H; i++) { /* rows: lift back, interleave */
                double *lo = R + i * W, *hi = lo + ws, *dst = x + i * W;
                lift_inv_line(lo, ws, hi, wd, c);
                for (Py_ssize_t t = 0; t < wd; t++) {
                    dst[2 * t] = lo[t];
                    dst[2 * t + 1] = hi[t];
                }
                if (ws > wd) dst[W - 1] = lo[ws - 1];
            }
        }
    }
    free(R); free(S); free(D);
    return NULL;
}

static PyObject *py_level(PyObject *self, PyObject *args) {
    PyObject *o[6];
    Py_ssize_t K, H, W;
    int inverse, threads;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOnnnpOi", &o[0], &o[1], &o[2], &o[3], &o[4], &K, &H, &W, &inverse, &o[5],
                          &threads))
        return NULL;
    if (K < 0 || H < 2 || W < 2) {
        PyErr_SetString(PyExc_ValueError, "level: bad shape (H, W >= 2)");
        return NULL;
    }
    const Py_ssize_t hs = (H + 1) / 2, hd = H / 2, ws = (W + 1) / 2, wd = W / 2;
    const Py_ssize_t n[6] = {K * H * W, K * hs * ws, K * hs * wd, K * hd * ws, K * hd * wd, 6};
    Py_buffer b[6];
    int nb = 0;
    for (; nb < 6; nb++)
        if (get_doubles(o[nb], &b[nb], n[nb], nb < 5 && (nb == 0) == (inverse != 0), "level")) break;
    if (nb < 6) {
        for (int i = 0; i < nb; i++) PyBuffer_Release(&b[i]);
        return NULL;
    }
    if (threads < 1 || K * H * W < LIFT_THREAD_MIN) threads = 1;
    if (threads > K) threads = K > 0 ? (int)K : 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    LevelWork works[MAX_THREADS];
    for (int t = 0; t < threads; t++)
        works[t] = (LevelWork){(double *)b[0].buf, (double *)b[1].buf, (double *)b[2].buf, (double *)b[3].buf,
                               (double *)b[4].buf, (const double *)b[5].buf, H, W, K * t / threads,
                               K * (t + 1) / threads, inverse, 0};
    Py_BEGIN_ALLOW_THREADS
    run_parallel(level_thread, works, sizeof works[0], threads);
    Py_END_ALLOW_THREADS
    int failed = 0;
    for (int t = 0; t < threads; t++) failed |= works[t].failed;
    for (int i = 0; i < 6; i++) PyBuffer_Release(&b[i]);
    if (failed) return PyErr_NoMemory();
    Py_RETURN_NONE;
}


/* One row of quantise(): four partial sums of each statistic, element i of the row in lane i % 4, added
   ((lane 0 + lane 1) + (lane 2 + lane 3)) at the end: a fixed order, the same bits from the AVX2 kernel
   (a lane a vector element) and the portable one. `by`: the step when `divide` (|x| / step), else
   1 / step (|x| * (1 / step)). Every value: u = |x| op by; t = floor(u + rounding) (u + rounding >= 0
   and below 2**40: finest_code); q = sign(x) t; a zero adds u * u to its lane's zero_sq, a non-zero 1
   to its count and f = u - t, f * f to the others. */
static inline void quantise_lane(double v, double by, double rounding, int divide, int64_t *out, double *acc) {
    const double u = divide ? fabs(v) / by : fabs(v) * by;
    const int64_t t = (int64_t)(u + rounding);
    *out = v < 0 ? -t : t;
    if (t == 0) {
        acc[0] += u * u;
    } else {
        const double f = u - (double)t;
        acc[4] += 1.0;
        acc[8] += f;
        acc[12] += f * f;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define QUANTISE_AVX2 1
/* whether the AVX2 kernels run: the CPU has AVX2 and HINERC_PORTABLE is not set in the environment (the
   tests' way to run the portable kernels on any machine and compare the bits); set at import */
static int use_avx2 = 0;
/* the AVX2 kernel of quantise_row's whole groups of four (x 32-byte aligned or not): the same operations
   in the same lanes; t as a double (trunc of a value below 2**52 is exact) and its int64 by the 2**52
   bias (exact below 2**52) */
__attribute__((target("avx2"))) static Py_ssize_t quantise_avx2(const double *x, int64_t *q, Py_ssize_t n,
                                                                 double by, double rounding, int divide,
                                                                 double *acc) {
    const __m256d sign = _mm256_set1_pd(-0.0), vby = _mm256_set1_pd(by), vr = _mm256_set1_pd(rounding);
    const __m256d bias = _mm256_set1_pd(4503599627370496.0), one = _mm256_set1_pd(1.0), zero = _mm256_setzero_pd();
    const __m256i ibias = _mm256_castpd_si256(bias);
    __m256d zs = _mm256_loadu_pd(acc), nzs = _mm256_loadu_pd(acc + 4);
    __m256d sfs = _mm256_loadu_pd(acc + 8), sf2s = _mm256_loadu_pd(acc + 12);
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d v = _mm256_loadu_pd(x + i), a = _mm256_andnot_pd(sign, v);
        const __m256d u = divide ? _mm256_div_pd(a, vby) : _mm256_mul_pd(a, vby);
        const __m256d t = _mm256_round_pd(_mm256_add_pd(u, vr), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        const __m256i ti = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(t, bias)), ibias);
        const __m256i neg = _mm256_castpd_si256(_mm256_cmp_pd(v, zero, _CMP_LT_OQ));
        _mm256_storeu_si256((__m256i *)(q + i), _mm256_sub_epi64(_mm256_xor_si256(ti, neg), neg));
        const __m256d z = _mm256_cmp_pd(t, zero, _CMP_EQ_OQ);
        const __m256d f = _mm256_sub_pd(u, t);
        /* the lanes a value does not add to add +0.0: the portable kernel's sums (x + 0.0 = x for x >= 0) */
        zs = _mm256_add_pd(zs, _mm256_and_pd(z, _mm256_mul_pd(u, u)));
        nzs = _mm256_add_pd(nzs, _mm256_andnot_pd(z, one));
        sfs = _mm256_add_pd(sfs, _mm256_andnot_pd(z, f));
        sf2s = _mm256_add_pd(sf2s, _mm256_andnot_pd(z, _mm256_mul_pd(f, f)));
    }
    _mm256_storeu_pd(acc, zs); _mm256_storeu_pd(acc + 4, nzs);
    _mm256_storeu_pd(acc + 8, sfs); _mm256_storeu_pd(acc + 12, sf2s);
    return i;
}
#endif

static void quantise_row(const double *x, int64_t *q, Py_ssize_t n, double by, double rounding, int divide,
                         double *st) {
    double acc[16] = {0};  /* zero_sq, count, sum f, sum f^2: four lanes each */
    Py_ssize_t i = 0;
#ifdef QUANTISE_AVX2
    if (use_avx2) i = quantise_avx2(x, q, n, by, rounding, divide, acc);
#endif
    for (; i < n; i++) quantise_lane(x[i], by, rounding, divide, q + i, acc + (i & 3));
    for (int s = 0; s < 4; s++) st[s] = (acc[4 * s] + acc[4 * s + 1]) + (acc[4 * s + 2] + acc[4 * s + 3]);
}

/* quantise(x, q, outer, n, step, rounding, stats, divide): dead-zone quantisation of x (outer, n) doubles
   into q (outer, n) int64, q = sign(x) floor(|x| * (1 / step) + rounding) (with `divide`: |x| / step, the
   file's quantiser, encoder.quantise_pyramid, bit for bit), and per
   row in stats (outer, 4) doubles, in units of the step (u = |x| * (1 / step)): the sum of u^2 over the zeros,
   the count of non-zeros, the sums of f = u - |q| and of f^2 over them (what the squared error is at any
   reconstruction offset: the encoder's distortion estimate). */
static PyObject *py_quantise(PyObject *self, PyObject *args) {
    PyObject *xo, *qo, *so;
    Py_ssize_t outer, n;
    double step, rounding;
    int divide = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOnndd|p", &xo, &qo, &so, &outer, &n, &step, &rounding, &divide)) return NULL;
    if (outer < 0 || n < 0 || !(step > 0)) {
        PyErr_SetString(PyExc_ValueError, "quantise: bad shape or step");
        return NULL;
    }
    Py_buffer xb, qb, sb;
    if (get_doubles(xo, &xb, outer * n, 0, "x")) return NULL;
    if (get_doubles(qo, &qb, outer * n, 1, "q")) { PyBuffer_Release(&xb); return NULL; }
    if (get_doubles(so, &sb, outer * 4, 1, "stats")) { PyBuffer_Release(&xb); PyBuffer_Release(&qb); return NULL; }
    const double *x = (const double *)xb.buf;
    int64_t *q = (int64_t *)qb.buf;
    double *st = (double *)sb.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t o = 0; o < outer; o++) {
        if (divide) quantise_row(x + o * n, q + o * n, n, step, rounding, 1, st + 4 * o);
        else quantise_row(x + o * n, q + o * n, n, 1.0 / step, rounding, 0, st + 4 * o);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&xb); PyBuffer_Release(&qb); PyBuffer_Release(&sb);
    Py_RETURN_NONE;
}

/* quantise_bands(bands, q, stats, steps, K, rounding, threads): quantise() (|x| * (1 / step)) of every band
   of a pyramid at once: bands a tuple of N C-contiguous float64 arrays (K, ...), band n quantised with
   steps[n] into the flat int64 q, the bands one after another, and its per-component statistics into stats
   (N, K, 4): the same rows as N quantise() calls, the components shared among `threads` threads (each row
   on its own: the same bits for any count). */
#define QB_MAX 64
typedef struct {
    const double *x[QB_MAX];
    int64_t *q[QB_MAX];
    Py_ssize_t n[QB_MAX];
    double by[QB_MAX];
    double *st, rounding;
    int N, K, k0, k1;
} QuantWork;

static void *quantise_bands_thread(void *arg) {
    const QuantWork *w = (const QuantWork *)arg;
    for (int b = 0; b < w->N; b++)
        for (int k = w->k0; k < w->k1; k++)
            quantise_row(w->x[b] + k * w->n[b], w->q[b] + k * w->n[b], w->n[b], w->by[b], w->rounding, 0,
                         w->st + 4 * ((Py_ssize_t)b * w->K + k));
    return NULL;
}

static PyObject *py_quantise_bands(PyObject *self, PyObject *args) {
    PyObject *bands, *qo, *so, *steps;
    int K, threads;
    double rounding;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOidi", &bands, &qo, &so, &steps, &K, &rounding, &threads)) return NULL;
    if (!PyTuple_Check(bands) || !PyTuple_Check(steps) || PyTuple_GET_SIZE(bands) != PyTuple_GET_SIZE(steps) ||
        PyTuple_GET_SIZE(bands) < 1 || PyTuple_GET_SIZE(bands) > QB_MAX || K < 1) {
        PyErr_SetString(PyExc_ValueError, "quantise_bands: bands and steps, tuples of 1 to 64 of them, K >= 1");
        return NULL;
    }
    const int N = (int)PyTuple_GET_SIZE(bands);
    Py_buffer bb[QB_MAX], qb, sb;
    int got = 0;
    PyObject *res = NULL;
    QuantWork w0;
    memset(&w0, 0, sizeof w0);
    Py_ssize_t total = 0;
    for (; got < N; got++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(bands, got), &bb[got], PyBUF_C_CONTIGUOUS) != 0) goto done;
        const double by = PyFloat_AsDouble(PyTuple_GET_ITEM(steps, got));
        if (PyErr_Occurred()) { got++; goto done; }
        if (bb[got].len % (8 * (Py_ssize_t)K) != 0 || !(by > 0)) {
            got++;
            PyErr_SetString(PyExc_ValueError, "quantise_bands: a band not of K rows of doubles, or a step not above 0");
            goto done;
        }
        w0.x[got] = (const double *)bb[got].buf;
        w0.n[got] = bb[got].len / 8 / K;
        w0.by[got] = 1.0 / by;
        total += bb[got].len / 8;
    }
    if (get_doubles(qo, &qb, total, 1, "q")) goto done;
    if (get_doubles(so, &sb, (Py_ssize_t)N * K * 4, 1, "stats")) { PyBuffer_Release(&qb); goto done; }
    {
        int64_t *q = (int64_t *)qb.buf;
        for (int b = 0; b < N; b++) {
            w0.q[b] = q;
            q += w0.n[b] * K;
        }
        w0.st = (double *)sb.buf;
        w0.rounding = rounding;
        w0.N = N;
        w0.K = K;
        if (threads < 1 || (Py_ssize_t)total < LIFT_THREAD_MIN) threads = 1;
        if (threads > K) threads = K;
        if (threads > MAX_THREADS) threads = MAX_THREADS;
        QuantWork works[MAX_THREADS];
        for (int t = 0; t < threads; t++) {
            works[t] = w0;
            works[t].k0 = (int)((int64_t)K * t / threads);
            works[t].k1 = (int)((int64_t)K * (t + 1) / threads);
        }
        Py_BEGIN_ALLOW_THREADS
        run_parallel(quantise_bands_thread, works, sizeof works[0], threads);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&qb);
    PyBuffer_Release(&sb);
    res = Py_None;
    Py_INCREF(res);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&bb[i]);
    return res;
}

/* mix(rows, images, out, T, K, H, W, y0, y1, x0, x1, threads): out[t, y - y0, x - x0] =
   clip(rows[t, K] + sum_k rows[t, k] images[k, y, x], 0, 1) over the rectangle rows y0:y1, columns x0:x1 of
   images (K, H, W), for T rows (T, K + 1) of [B(t) | mean(t)]: in binary64, k in increasing order, one
   rounding per operation (HNR.md; decoder.mix is the reference), a run of at most MIX_BLOCK pixels of
   one image row at a time (the images' run stays in cache for every band), the image rows shared among
   `threads` threads. */
typedef struct { const double *rows, *img; double *out; Py_ssize_t T, K, H, W, y0, y1, x0, x1, r0, r1; } MixWork;
#define MIX_BLOCK 256

VECTOR_CLONES static void *mix_thread(void *arg) {
    const MixWork *w = (const MixWork *)arg;
    double acc[MIX_BLOCK];
    const Py_ssize_t plane = w->H * w->W, ow = w->x1 - w->x0, oplane = (w->y1 - w->y0) * ow;
    for (Py_ssize_t y = w->r0; y < w->r1; y++) {
        for (Py_ssize_t x = w->x0; x < w->x1; x += MIX_BLOCK) {
            const Py_ssize_t n = (x + MIX_BLOCK <= w->x1 ? MIX_BLOCK : w->x1 - x);
            const double *base = w->img + y * w->W + x;
            for (Py_ssize_t t = 0; t < w->T; t++) {
                const double *r = w->rows + t * (w->K + 1);
                for (Py_ssize_t i = 0; i < n; i++) acc[i] = r[w->K];
                for (Py_ssize_t k = 0; k < w->K; k++) {
                    const double c = r[k], *a = base + k * plane;
                    for (Py_ssize_t i = 0; i < n; i++) acc[i] = acc[i] + c * a[i];
                }
                double *o = w->out + t * oplane + (y - w->y0) * ow + (x - w->x0);
                for (Py_ssize_t i = 0; i < n; i++) o[i] = acc[i] < 0.0 ? 0.0 : (acc[i] > 1.0 ? 1.0 : acc[i]);
            }
        }
    }
    return NULL;
}

static PyObject *py_mix(PyObject *self, PyObject *args) {
    PyObject *ro, *io, *oo;
    Py_ssize_t T, K, H, W, y0, y1, x0, x1;
    int threads;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOnnnnnnnni", &ro, &io, &oo, &T, &K, &H, &W, &y0, &y1, &x0, &x1, &threads))
        return NULL;
    if (T < 0 || K < 0 || H < 0 || W < 0 || y0 < 0 || x0 < 0 || y1 < y0 || x1 < x0 || y1 > H || x1 > W) {
        PyErr_SetString(PyExc_ValueError, "mix: bad shape");
        return NULL;
    }
    Py_buffer rb, ib, ob;
    if (get_doubles(ro, &rb, T * (K + 1), 0, "rows")) return NULL;
    if (get_doubles(io, &ib, K * H * W, 0, "images")) { PyBuffer_Release(&rb); return NULL; }
    if (get_doubles(oo, &ob, T * (y1 - y0) * (x1 - x0), 1, "out")) {
        PyBuffer_Release(&rb); PyBuffer_Release(&ib);
        return NULL;
    }
    const Py_ssize_t lines = y1 - y0;
    if (threads < 1) threads = 1;
    if (threads > 16) threads = 16;
    if (threads > lines) threads = lines > 0 ? (int)lines : 1;
    MixWork works[16];
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < threads; t++) {
        works[t] = (MixWork){(const double *)rb.buf, (const double *)ib.buf, (double *)ob.buf, T, K, H, W,
                             y0, y1, x0, x1, y0 + lines * t / threads, y0 + lines * (t + 1) / threads};
    }
    run_parallel(mix_thread, works, sizeof works[0], threads);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&rb); PyBuffer_Release(&ib); PyBuffer_Release(&ob);
    Py_RETURN_NONE;
}

/* restore(y, out, T, N, scale, offset, in_double, out_kind, threads): the decoded bands y (T, N) in [0, 1]
   (float32 or float64) to out (N, T) in the cube's units and type, as cube.restore does it (binary64
   y * scale + offset; integer types: round half to even, clip to the type's range). out_kind: 0 float64,
   1 float32, 2 uint8, 3 uint16, 4 int16, 5 int32, 6 uint32, 7 int8. Pixel blocks shared among threads. */
typedef struct {
    const void *y; void *out; const double *scale, *offset; Py_ssize_t T, N, p0, p1; int in_double, kind;
} RestoreWork;

VECTOR_CLONES static void *restore_thread(void *arg) {
    const RestoreWork *w = (const RestoreWork *)arg;
    const Py_ssize_t T = w->T, N = w->N;
    static const double lo[8] = {0, 0, 0, 0, -32768.0, -2147483648.0, 0, -128.0};
    static const double hi[8] = {0, 0, 255.0, 65535.0, 32767.0, 2147483647.0, 4294967295.0, 127.0};
    for (Py_ssize_t b = w->p0; b < w->p1; b += 64) {
        const Py_ssize_t e = b + 64 < w->p1 ? b + 64 : w->p1;
        for (Py_ssize_t t = 0; t < T; t++) {
            const double sc = w->scale[t], of = w->offset[t];
            for (Py_ssize_t p = b; p < e; p++) {
                const double v = (w->in_double ? ((const double *)w->y)[t * N + p] : (double)((const float *)w->y)[t * N + p]);
                double x = v * sc;
                x = x + of;
                const Py_ssize_t o = p * T + t;
                if (w->kind == 0) { ((double *)w->out)[o] = x; continue; }
                if (w->kind == 1) { ((float *)w->out)[o] = (float)x; continue; }
                x = nearbyint(x);
                x = x < lo[w->kind] ? lo[w->kind] : (x > hi[w->kind] ? hi[w->kind] : x);
                switch (w->kind) {
                    case 2: ((uint8_t *)w->out)[o] = (uint8_t)x; break;
                    case 3: ((uint16_t *)w->out)[o] = (uint16_t)x; break;
                    case 4: ((int16_t *)w->out)[o] = (int16_t)x; break;
                    case 5: ((int32_t *)w->out)[o] = (int32_t)x; break;
                    case 6: ((uint32_t *)w->out)[o] = (uint32_t)x; break;
                    default: ((int8_t *)w->out)[o] = (int8_t)x; break;
                }
            }
        }
    }
    return NULL;
}

static PyObject *py_restore(PyObject *self, PyObject *args) {
    PyObject *yo, *oo, *so, *fo;
    Py_ssize_t T, N;
    int in_double, kind, threads;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOnnOOiii", &yo, &oo, &T, &N, &so, &fo, &in_double, &kind, &threads)) return NULL;
    static const int size_of[8] = {8, 4, 1, 2, 2, 4, 4, 1};
    if (T < 0 || N < 0 || kind < 0 || kind > 7) {
        PyErr_SetString(PyExc_ValueError, "restore: bad arguments");
        return NULL;
    }
    Py_buffer yb, ob, sb, fb;
    if (PyObject_GetBuffer(yo, &yb, PyBUF_SIMPLE) != 0) return NULL;
    if (PyObject_GetBuffer(oo, &ob, PyBUF_WRITABLE) != 0) { PyBuffer_Release(&yb); return NULL; }
    if (yb.len != T * N * (in_double ? 8 : 4) || ob.len != T * N * size_of[kind]) {
        PyBuffer_Release(&yb); PyBuffer_Release(&ob);
        PyErr_SetString(PyExc_ValueError, "restore: buffer sizes");
        return NULL;
    }
    if (get_doubles(so, &sb, T, 0, "scale")) { PyBuffer_Release(&yb); PyBuffer_Release(&ob); return NULL; }
    if (get_doubles(fo, &fb, T, 0, "offset")) {
        PyBuffer_Release(&yb); PyBuffer_Release(&ob); PyBuffer_Release(&sb);
        return NULL;
    }
    if (threads < 1) threads = 1;
    if (threads > 16) threads = 16;
    RestoreWork works[16];
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < threads; t++)
        works[t] = (RestoreWork){yb.buf, ob.buf, (const double *)sb.buf, (const double *)fb.buf, T, N,
                                 N * t / threads, N * (t + 1) / threads, in_double, kind};
    run_parallel(restore_thread, works, sizeof works[0], threads);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&yb); PyBuffer_Release(&ob); PyBuffer_Release(&sb); PyBuffer_Release(&fb);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ the decoding walk
   bitstream.unpack() of a section without nodata maps, compiled: the walk of bitstream._walk (LL
   residuals, then each level coarsest first, passes A, D, B, image after image) with each group's
   contexts computed from the values decoded before it (the contexts of the encoder's
   context_row, position by position: every context reads only values of earlier groups), its symbols read
   from the shared rANS stream as one segment (padded to whole steps with the no-op table, as
   rans.SegmentDecoder.read does), the escapes' low bits from the raw bit section (MSB first), and
   with signs the segment of its nonzero values' signs. Table lookup: one int32 entry index per key
   (table * M + slot) instead of a binary search. The numpy walk stays the reference: the same
   values, states and stream positions (tests/test_transform.py). */

typedef struct {
    int64_t freq, start; /* the entry's frequency and first key */
    int32_t symbol, unused;
} Entry; /* an entry's three numbers in one place (one cache line, not three) */

typedef struct {
    int64_t *x; /* lane states, updated in place */
    int lanes, precision, word_bits;
    const int64_t *words;
    const Entry *entries;
    int64_t n_words, ptr, pad, state_low;
    int32_t *lut;
} Rans;

static int rans_segment(Rans *R, const int32_t *which, int64_t count, int32_t *out) {
    const int64_t mask = ((int64_t)1 << R->precision) - 1;
    const int64_t whole = count - count % R->lanes; /* the steps with a symbol in every lane */
    for (int64_t i0 = 0; i0 < whole; i0 += R->lanes) {
        for (int l = 0; l < R->lanes; l++) {
            const int64_t key = ((int64_t)which[i0 + l] << R->precision) + (R->x[l] & mask);
            const Entry *e = &R->entries[R->lut[key]];
            R->x[l] = e->freq * (R->x[l] >> R->precision) + (key - e->start);
            out[i0 + l] = e->symbol;
        }
        for (int l = 0; l < R->lanes; l++)
            if (R->x[l] < R->state_low) {
                R->x[l] = (R->x[l] << R->word_bits) | (R->ptr < R->n_words ? R->words[R->ptr] : 0);
                R->ptr++;
            }
        if (R->ptr > R->n_words) return -1;
    }
    for (int64_t i0 = whole; i0 < count; i0 += R->lanes) { /* the last step, padded */
        for (int l = 0; l < R->lanes; l++) {
            const int64_t i = i0 + l;
            const int64_t key = ((i < count ? (int64_t)which[i] : R->pad) << R->precision) + (R->x[l] & mask);
            const Entry *e = &R->entries[R->lut[key]];
            R->x[l] = e->freq * (R->x[l] >> R->precision) + (key - e->start);
            if (i < count) out[i] = e->symbol;
        }
        for (int l = 0; l < R->lanes; l++)
            if (R->x[l] < R->state_low) {
                R->x[l] = (R->x[l] << R->word_bits) | (R->ptr < R->n_words ? R->words[R->ptr] : 0);
                R->ptr++;
            }
        if (R->ptr > R->n_words) return -1;
    }
    return 0;
}

typedef struct {
    Pyr P;
    Rans R;
    const uint8_t *raw;
    int64_t raw_bits, bitpos;
    const int64_t *lookup, *sign_slot;
    int64_t n_lookup, n_signs_max, n_signs;
    int32_t *which, *sym; /* a group's tables (entry indices of lookup / sign_slot) and decoded symbols */
    size_t cap;
    const char *error;
} Dec;

static int dec_fail(Dec *D, const char *msg) {
    if (!D->error) D->error = msg;
    return -1;
}

static int dec_grow(Dec *D, size_t n) {
    if (n <= D->cap) return 0;
    free(D->which);
    free(D->sym);
    D->which = (int32_t *)malloc(n * 4);
    D->sym = (int32_t *)malloc(n * 4);
    D->cap = n;
    if (!D->which || !D->sym) { D->cap = 0; return dec_fail(D, "out of memory"); }
    return 0;
}

/* the value of symbol s (signed: the sign in its parity; else a magnitude), escape bits read */
static int dec_value(Dec *D, int64_t s, int is_signed, int64_t *v) {
    int64_t a, neg;
    if (s < ESCAPE) {
        a = (s + 1) / 2;
        neg = s > 0 && s % 2 == 0;
    } else {
        if (s >= ALPHABET) return dec_fail(D, "transform payload: a symbol outside the coefficient alphabet");
        const int n = (int)((s - ESCAPE) / 2) + 4;
        if (D->bitpos + n > D->raw_bits) return dec_fail(D, "transform payload: the raw bit section is truncated");
        int64_t low = 0;
        if ((D->bitpos >> 3) + 8 <= (D->raw_bits >> 3)) { /* eight whole bytes from the first one (n <= 39) */
            uint64_t word;
            memcpy(&word, D->raw + (D->bitpos >> 3), 8);
            low = (int64_t)((__builtin_bswap64(word) << (D->bitpos & 7)) >> (64 - n));
            D->bitpos += n;
        } else {
            for (int b = 0; b < n; b++, D->bitpos++)
                low = (low << 1) | ((D->raw[D->bitpos >> 3] >> (7 - (D->bitpos & 7))) & 1);
        }
        a = ((int64_t)1 << n) + low;
        neg = (s - ESCAPE) % 2 == 1;
    }
    if (neg && !is_signed) return dec_fail(D, "transform payload: a negative magnitude in a section with sign contexts");
    *v = neg ? -a : a;
    return 0;
}

static int dec_ll(Dec *D) {
    Pyr *P = &D->P;
    const int K = P->K, h = P->ll.h, w = P->ll.w;
    const int64_t n = (int64_t)K * h * w;
    if (n == 0) return 0;
    if (D->n_lookup < 1 || D->lookup[0] < 0) return dec_fail(D, "transform payload: a context without a table");
    if (dec_grow(D, (size_t)n)) return -1;
    for (int64_t i = 0; i < n; i++) D->which[i] = (int32_t)D->lookup[0];
    if (rans_segment(&D->R, D->which, n, D->sym)) return dec_fail(D, "rANS stream is truncated");
    int64_t *x = (int64_t *)P->ll.p, m = 0;
    for (int k = 0; k < K; k++) {
        int64_t *img = x + (size_t)k * h * w;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                int64_t res;
                if (dec_value(D, D->sym[m++], 1, &res)) return -1;
                img[(size_t)i * w + j] = res + med_predict(img, w, i, j);
            }
    }
    return 0;
}

static inline int first_column(int phase, int i, int w) {
    return phase == 0 ? (i % 2 ? w : 0) : (phase == 1 ? (i % 2 ? 1 : w) : (i % 2 ? 0 : 1));
}

/* the decoded symbols D->sym of group (l, phase, k) into place: values (counting the nonzero ones),
   or with `signs_pass` the signs of the nonzero values */
static int dec_place(Dec *D, int l, int phase, int k, int signs_pass, int64_t *nonzero) {
    const Pyr *P = &D->P;
    int64_t m = 0, bad = 0, count = 0;
    for (int or = 0; or < 3; or++) {
        const Band *B = &P->det[l][or];
        if (!(B->h > 0 && B->w > 0)) continue;
        const int h = B->h, w = B->w;
        int64_t *b = (int64_t *)B->p + (size_t)k * h * w;
        for (int i = phase == 1; i < h; i += phase == 2 ? 1 : 2)
            for (int j = first_column(phase, i, w); j < w; j += 2) {
                int64_t *v = &b[(size_t)i * w + j];
                if (!signs_pass) {
                    const int64_t sym = D->sym[m++];
                    if (__builtin_expect(sym < ESCAPE, 1)) { /* dec_value's direct symbols, inline */
                        const int64_t a = (sym + 1) >> 1, neg = (sym > 0) & !(sym & 1);
                        bad |= neg & (P->signs != 0); /* a sign in a magnitude */
                        *v = neg ? -a : a;
                    } else if (dec_value(D, sym, !P->signs, v)) {
                        return -1;
                    }
                    count += *v != 0;
                } else { /* no branch on the values: a zero reads no symbol (its slot is not kept) */
                    const int64_t nz = *v != 0, s = D->sym[m] & -nz;
                    bad |= (uint64_t)s > 1;
                    *v = s ? -*v : *v;
                    m += nz;
                }
            }
    }
    *nonzero += count;
    if (bad) return dec_fail(D, signs_pass ? "transform payload: a sign symbol other than 0 or 1"
                                           : "transform payload: a negative magnitude in a section with sign contexts");
    return 0;
}

/* the tables of the positions of pass `phase` of band (l, k, or), in walk order, into which[m...]
   (returns the new m; *missing: a bucket without a table was met); inlined with the pass known,
   one loop per pass */
static inline __attribute__((always_inline)) int64_t dec_contexts(const Pyr *P, const Scratch *S, int l,
                                                                  const int phase, int k, int or,
                                                                  const int32_t *table, int32_t *which, int64_t m,
                                                                  int64_t *missing) {
    const Band *B = &P->det[l][or];
    const int h = B->h, w = B->w, W2 = w + 2;
    const int64_t *prev = k ? B->p + (size_t)(k - 1) * h * w : NULL;
    int ph, pw;
    const int has_par = parent_of(P, l, or, k, &ph, &pw) != NULL;
    const uint16_t *A = S->abs_;
    int32_t bad = 0;
    for (int i = phase == 1; i < h; i += phase == 2 ? 1 : 2) {
        const int pi = i / 2 < ph - 1 ? i / 2 : ph - 1;
        const uint16_t *prow = has_par ? S->pact + (size_t)pi * pw : NULL;
        const uint16_t *up = A + (size_t)i * W2 + 1, *mid = up + W2, *down = mid + W2;
        const int64_t *prow_img = prev ? prev + (size_t)i * w : NULL;
        for (int j = first_column(phase, i, w); j < w; j += 2) {
            const uint64_t pa = has_par ? prow[j / 2 < pw - 1 ? j / 2 : pw - 1] : 0;
            uint64_t act;
            if (phase == 0) act = pa;
            else if (phase == 1) act = (uint64_t)up[j - 1] + up[j + 1] + down[j - 1] + down[j + 1] + pa / 2;
            else act = (uint64_t)up[j] + down[j] + mid[j - 1] + mid[j + 1] + pa / 2;
            if (prev) {
                const int64_t v = prow_img[j];
                const uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
                act += a < ACT_CAP ? a : ACT_CAP;
            }
            const int32_t t = table[act < 256 ? BUCKET_LUT[act] : 11];
            bad |= t;
            which[m++] = t;
        }
    }
    *missing |= bad < 0;
    return m;
}

static int dec_group(Dec *D, Scratch *S, int l, int phase, int k) {
    Pyr *P = &D->P;
    int64_t count = 0;
    for (int or = 0; or < 3; or++) {
        const Band *B = &P->det[l][or];
        if (!(B->h > 0 && B->w > 0)) continue;
        if (prepare(P, &S[or], l, k, or, phase != 0)) return dec_fail(D, "out of memory");
        count += (int64_t)B->h * B->w; /* more than any pass holds */
    }
    if (dec_grow(D, (size_t)count)) return -1;
    int64_t m = 0, missing = 0;
    int32_t table[N_BUCKETS]; /* the table of each bucket of this (level, pass) (-1: none) */
    for (int u = 0; u < N_BUCKETS; u++) {
        const int64_t c = 1 + (int64_t)(l * PASSES + phase) * N_BUCKETS + u;
        table[u] = c < D->n_lookup ? (int32_t)D->lookup[c] : -1;
    }
    for (int or = 0; or < 3; or++) { /* magnitude contexts */
        const Band *B = &P->det[l][or];
        if (!(B->h > 0 && B->w > 0)) continue;
        if (phase == 0) m = dec_contexts(P, &S[or], l, 0, k, or, table, D->which, m, &missing);
        else if (phase == 1) m = dec_contexts(P, &S[or], l, 1, k, or, table, D->which, m, &missing);
        else m = dec_contexts(P, &S[or], l, 2, k, or, table, D->which, m, &missing);
    }
    if (missing) return dec_fail(D, "transform payload: a context without a table");
    count = m;
    if (rans_segment(&D->R, D->which, count, D->sym)) return dec_fail(D, "rANS stream is truncated");
    int64_t nonzero = 0;
    if (dec_place(D, l, phase, k, 0, &nonzero)) return -1;
    if (!P->signs || !nonzero) return 0;
    D->n_signs += nonzero;
    if (D->n_signs > D->n_signs_max) return dec_fail(D, "transform payload: more nonzero coefficients than signs");
    m = 0;
    for (int or = 0; or < 3; or++) { /* sign contexts */
        const Band *B = &P->det[l][or];
        if (!(B->h > 0 && B->w > 0)) continue;
        const int h = B->h, w = B->w, W2 = w + 2;
        const int64_t *b = B->p + (size_t)k * h * w, *prev = k ? b - (size_t)h * w : NULL;
        const int wx = SIGN_POLARITY[or][0], wy = SIGN_POLARITY[or][1];
        const int64_t base = (int64_t)((l < 2 ? l : 2) * PASSES + phase) * SIGN_SCORES;
        const int8_t *G = S[or].sgn_;
        for (int i = phase == 1; i < h; i += phase == 2 ? 1 : 2) {
            const int8_t *up = G + (size_t)i * W2 + 1, *mid = up + W2, *down = mid + W2;
            for (int j = first_column(phase, i, w); j < w; j += 2) { /* every position written, the
                nonzero ones kept (no branch on the values; `which` holds a slot per position) */
                const int64_t score = sign_score(phase, wx, wy, up, mid, down, j);
                const int64_t pv = prev ? sgn(prev[(size_t)i * w + j]) : 0;
                D->which[m] = (int32_t)D->sign_slot[(base + score + 2) * 3 + pv + 1];
                m += b[(size_t)i * w + j] != 0;
            }
        }
    }
    if (rans_segment(&D->R, D->which, m, D->sym)) return dec_fail(D, "rANS stream is truncated");
    return dec_place(D, l, phase, k, 1, &nonzero);
}

static void dec_walk(Dec *D) {
    Scratch S[3];
    memset(S, 0, sizeof S);
    if (dec_ll(D)) goto out;
    for (int l = D->P.levels - 1; l >= 0; l--)
        for (int phase = 0; phase < PASSES; phase++)
            for (int k = 0; k < D->P.K; k++)
                if (dec_group(D, S, l, phase, k)) goto out;
out:
    for (int i = 0; i < 3; i++) free_scratch(&S[i]);
}

/* unwalk(K, H, W, levels, signs, bands, x, words, n_words, ptr, starts, freqs, symbols, lookup, sign_slot,
          raw, precision, state_low, word_bits, n_signs_max) -> (ptr, raw bits read, signs read)
   bands: the zeroed int64 pyramid (LL, then HL, LH, HH of each level, finest first), filled in place;
   x: the lane states (updated); lookup: table of each context id (-1: none); sign_slot: table of each
   sign context. ValueError with the reason on damaged data. */
static PyObject *py_unwalk(PyObject *self, PyObject *args) {
    int K, H, W, levels, signs, precision, word_bits;
    Py_ssize_t n_words, ptr, n_signs_max;
    long long state_low;
    PyObject *bands, *objs[8];
    (void)self;
    if (!PyArg_ParseTuple(args, "iiiipOOOnnOOOOOOiLin", &K, &H, &W, &levels, &signs, &bands, &objs[0], &objs[1],
                          &n_words, &ptr, &objs[2], &objs[3], &objs[4], &objs[5], &objs[6], &objs[7], &precision,
                          &state_low, &word_bits, &n_signs_max))
        return NULL;
    Dec D;
    memset(&D, 0, sizeof D);
    Py_buffer bufs[1 + 3 * MAX_LEVELS], b[8];
    int nb = 0, no = 0;
    PyObject *res = NULL;
    if (parse_pyramid_as(&D.P, K, H, W, levels, signs, bands, bufs, &nb, PyBUF_WRITABLE)) goto done;
    for (; no < 8; no++)
        if (PyObject_GetBuffer(objs[no], &b[no], no == 0 ? PyBUF_WRITABLE : PyBUF_SIMPLE) != 0) goto done;
    {
        const Py_ssize_t lanes = b[0].len / 8, n_entries = b[2].len / 8;
        if (lanes < 1 || lanes > 256 || n_entries < 1 || b[3].len != b[2].len || b[4].len != b[2].len ||
            precision < 1 || precision > 16 || n_words < 0 || ptr < 0 || b[1].len / 8 < n_words ||
            b[6].len != N_SIGN_CTX * 8) {
            PyErr_SetString(PyExc_ValueError, "unwalk: inconsistent buffers");
            goto done;
        }
        const int64_t *starts = (const int64_t *)b[2].buf, *freqs = (const int64_t *)b[3].buf;
        const int64_t M = (int64_t)1 << precision, n_keys = starts[n_entries - 1] + M, n_tables = n_keys / M - 1;
        D.lookup = (const int64_t *)b[5].buf;
        D.n_lookup = b[5].len / 8;
        D.sign_slot = (const int64_t *)b[6].buf;
        int ok = starts[0] == 0 && n_keys % M == 0 && n_tables >= 1 && n_keys < ((int64_t)1 << 31);
        for (Py_ssize_t e = 0; ok && e < n_entries; e++)
            ok = freqs[e] >= 1 && (e + 1 < n_entries ? starts[e + 1] == starts[e] + freqs[e] : freqs[e] == M) &&
                 ((const int64_t *)b[4].buf)[e] >= 0 && ((const int64_t *)b[4].buf)[e] <= INT32_MAX;
        for (int64_t i = 0; ok && i < D.n_lookup; i++) ok = D.lookup[i] >= -1 && D.lookup[i] < n_tables;
        for (int64_t i = 0; ok && i < N_SIGN_CTX; i++) ok = D.sign_slot[i] >= 0 && D.sign_slot[i] < n_tables;
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "unwalk: tables that do not cover their keys, or slots out of range");
            goto done;
        }
        int32_t *lut = (int32_t *)malloc((size_t)n_keys * 4);
        if (!lut) { PyErr_NoMemory(); goto done; }
        Entry *entries = (Entry *)malloc((size_t)n_entries * sizeof(Entry));
        if (!entries) { free(lut); PyErr_NoMemory(); goto done; }
        const int64_t *symbols = (const int64_t *)b[4].buf;
        for (Py_ssize_t e = 0; e < n_entries; e++) {
            entries[e] = (Entry){freqs[e], starts[e], (int32_t)symbols[e], 0};
            for (int64_t key = starts[e]; key < starts[e] + freqs[e]; key++) lut[key] = (int32_t)e;
        }
        D.R = (Rans){(int64_t *)b[0].buf, (int)lanes, precision, word_bits, (const int64_t *)b[1].buf, entries,
                     n_words, ptr, n_tables, state_low, lut};
        D.raw = (const uint8_t *)b[7].buf;
        D.raw_bits = (int64_t)b[7].len * 8;
        D.n_signs_max = n_signs_max;
        Py_BEGIN_ALLOW_THREADS
        dec_walk(&D);
        Py_END_ALLOW_THREADS
        free(lut);
        free(entries);
        free(D.which);
        free(D.sym);
        if (D.error) {
            PyErr_SetString(PyExc_ValueError, D.error);
            goto done;
        }
        res = Py_BuildValue("LLL", (long long)D.R.ptr, (long long)D.bitpos, (long long)D.n_signs);
    }
done:
    for (int i = 0; i < no; i++) PyBuffer_Release(&b[i]);
    release(bufs, nb);
    return res;
}

/* ------------------------------------------------------------------ dequantisation (decoder.py)
   decoder.dequantise_pyramid of one band: out = sign(i) * (|i| + o / 64) * step, in that order in
   binary64 (HNR.md), so the same bits as numpy; threads take ranges of values. */
typedef struct {
    const int64_t *q;
    double *out;
    double step, frac;
    Py_ssize_t i0, i1;
} DequantWork;

VECTOR_CLONES static void *dequant_thread(void *arg) {
    const DequantWork *D = (const DequantWork *)arg;
    for (Py_ssize_t i = D->i0; i < D->i1; i++) {
        const int64_t v = D->q[i];
        const double a = (double)(v < 0 ? -v : v) + D->frac, r = ((double)((v > 0) - (v < 0)) * a) * D->step;
        memcpy(&D->out[i], &r, 8); /* out may be q itself (in place): value i is read before it is written */
    }
    return NULL;
}

/* dequantise(q, out, step, frac, threads): q int64, out float64, the same length (or the same memory) */
static PyObject *py_dequantise(PyObject *self, PyObject *args) {
    PyObject *qo, *oo;
    double step, frac;
    int threads;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOddi", &qo, &oo, &step, &frac, &threads)) return NULL;
    Py_buffer qb, ob;
    if (PyObject_GetBuffer(qo, &qb, PyBUF_SIMPLE) != 0) return NULL;
    if (PyObject_GetBuffer(oo, &ob, PyBUF_WRITABLE) != 0) { PyBuffer_Release(&qb); return NULL; }
    if (qb.len != ob.len || qb.len % 8) {
        PyErr_SetString(PyExc_ValueError, "dequantise: q (int64) and out (float64) of different lengths");
        PyBuffer_Release(&qb); PyBuffer_Release(&ob);
        return NULL;
    }
    const Py_ssize_t n = qb.len / 8;
    if (threads < 1 || n < 65536) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    DequantWork works[MAX_THREADS];
    for (int t = 0; t < threads; t++)
        works[t] = (DequantWork){(const int64_t *)qb.buf, (double *)ob.buf, step, frac, n * t / threads,
                                 n * (t + 1) / threads};
    Py_BEGIN_ALLOW_THREADS
    run_parallel(dequant_thread, works, sizeof works[0], threads);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&qb); PyBuffer_Release(&ob);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"stats", py_stats, METH_VARARGS,
     "stats(K, H, W, levels, signs, bands, hist_out, sign_out, nthreads) -> (symbols, escape bits)"},
    {"stream", py_stream, METH_VARARGS,
     "stream(K, H, W, levels, signs, bands, slot, sign_slot, tab_off, tab_size, index, freqs, starts, precision, "
     "lanes, state_low, word_bits, total, low, nbits) -> (stream bytes, escapes)"},
    {"param_freqs", py_param_freqs, METH_VARARGS,
     "param_freqs(a, b, top, unsigned, out) -> bool: bitstream.param_freqs into out"},
    {"estimate", py_estimate, METH_VARARGS, "estimate(hist, sign_counts, escape_bits, signs) -> (bits, ties)"},
    {"quantise_bands", py_quantise_bands, METH_VARARGS,
     "quantise_bands(bands, q, stats, steps, K, rounding, threads): quantise() of every band of a pyramid at once"},
    {"quantise", py_quantise, METH_VARARGS,
     "quantise(x, q, stats, outer, n, step, rounding[, divide]): dead-zone quantisation with error statistics"},
    {"mix", py_mix, METH_VARARGS,
     "mix(rows, images, out, T, K, H, W, y0, y1, x0, x1, threads): decoder.mix of T rows over a rectangle"},
    {"restore", py_restore, METH_VARARGS,
     "restore(y, out, T, N, scale, offset, in_double, out_kind, threads): cube.restore, compiled"},
    {"level", py_level, METH_VARARGS,
     "level(x, ll, hl, lh, hh, K, H, W, inverse, consts, threads): one 2-D CDF 9/7 level, forward or inverse"},
    {"rans_encode", py_rans_encode, METH_VARARGS,
     "rans_encode(e, freqs, starts, precision, lanes, state_low, word_bits) -> bytes"},
    {"dequantise", py_dequantise, METH_VARARGS,
     "dequantise(q, out, step, frac, threads): out = sign(q) * (|q| + frac) * step in binary64"},
    {"unwalk", py_unwalk, METH_VARARGS,
     "unwalk(K, H, W, levels, signs, bands, x, words, n_words, ptr, starts, freqs, symbols, lookup, sign_slot, raw, "
     "precision, state_low, word_bits, n_signs_max) -> (ptr, raw bits read, signs read)"},
    {"rans_read", py_rans_read, METH_VARARGS,
     "rans_read(x, words, n_words, ptr, starts, freqs, symbols, which, out, precision, state_low, word_bits) -> ptr"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_fast", "hinerc transform coder core", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fast(void) {
#ifdef QUANTISE_AVX2
    const char *portable = getenv("HINERC_PORTABLE");
    use_avx2 = __builtin_cpu_supports("avx2") && !(portable && *portable && strcmp(portable, "0"));
#endif
    return PyModule_Create(&moddef);
}
