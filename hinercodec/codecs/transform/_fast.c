/* Compiled hot paths of the transform codec's coefficient coder (bitstream.py), integer arithmetic only.

   The context modelling of bitstream._walk / _groups (magnitude contexts from the parent, the spatial
   neighbours known before each pass and the same place in the previous image; sign contexts), done
   from the whole integer pyramid at once: every context the walk computes depends only on values
   coded before it, and those are the pyramid's own values, so a context is a pure function of the
   pyramid and its position. Two entry points:

   - stats(): the histogram of (context, symbol) pairs, the (positive, negative) counts of every sign
     context, the number of coded symbols and the escape bits: all that estimate_bits() needs.
     Threads over images (each thread its own histograms, summed): integers, so the result does not
     depend on the thread count.
   - groups(): the coded groups in stream order (symbols, context ids, escape low bits and bit
     counts, group boundaries) for pack().

   Everything here must match bitstream.py's numpy code exactly (tests/test_transform_speedups.py). */
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
    int mode; /* 0: statistics, 1: groups in stream order */
    int k0, k1; /* images of this worker (statistics; the LL band is counted by the worker with k0 == 0) */
    int64_t *hist; /* N_CTX * ALPHABET */
    int64_t *scount; /* N_SIGN_CTX * 2 */
    int64_t total, escape_bits;
    int too_big, failed;
    /* mode 1 */
    int64_t *sym, *ctx, *low, *nbits, *groups;
    int64_t n_sym, n_esc, n_groups;
} Out;

static inline void emit_value(Out *o, int64_t v, int64_t c, int is_signed) {
    int64_t a = iabs(v), neg = is_signed && v < 0, s;
    if (a >= ((int64_t)1 << MAX_LOG)) { o->too_big = 1; return; }
    if (a < DIRECT) {
        s = a == 0 ? 0 : 2 * a - 1 + neg;
    } else {
        int n = 63 - __builtin_clzll((unsigned long long)a);
        s = ESCAPE + 2 * (n - 4) + neg;
        o->escape_bits += n;
        if (o->mode == 1) {
            o->low[o->n_esc] = a - ((int64_t)1 << n);
            o->nbits[o->n_esc] = n;
            o->n_esc++;
        }
    }
    o->total++;
    if (o->mode == 0) {
        o->hist[c * ALPHABET + s]++;
    } else {
        o->sym[o->n_sym] = s;
        o->ctx[o->n_sym] = c;
        o->n_sym++;
    }
}

static inline void emit_sign(Out *o, int64_t v, int64_t c) {
    int64_t neg = v < 0;
    o->total++;
    if (o->mode == 0) {
        o->scount[c * 2 + neg]++;
    } else {
        o->sym[o->n_sym] = neg;
        o->ctx[o->n_sym] = c;
        o->n_sym++;
    }
}

static inline void open_group(Out *o, int is_sign) {
    if (o->mode != 1) return;
    o->groups[3 * o->n_groups] = o->n_sym;
    o->groups[3 * o->n_groups + 2] = is_sign;
}

static inline void close_group(Out *o) {
    if (o->mode != 1) return;
    o->groups[3 * o->n_groups + 1] = o->n_sym - o->groups[3 * o->n_groups];
    o->n_groups++;
}

static void walk_ll(const Pyr *P, Out *o) {
    const int K = P->K, h = P->ll.h, w = P->ll.w;
    open_group(o, 0);
    for (int k = 0; k < K; k++) {
        const int64_t *x = P->ll.p + (size_t)k * h * w;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                int64_t up = i ? x[(size_t)(i - 1) * w + j] : 0, left, ul;
                if (j) {
                    left = x[(size_t)i * w + j - 1];
                    ul = i ? x[(size_t)(i - 1) * w + j - 1] : 0;
                } else {
                    left = ul = up;
                }
                int64_t lo = up < left ? up : left, hi = up < left ? left : up;
                int64_t pred = ul >= hi ? lo : (ul <= lo ? hi : up + left - ul);
                emit_value(o, x[(size_t)i * w + j] - pred, 0, 1);
            }
    }
    close_group(o);
}

/* parent activity at child (i, j): 2 |p| + (sum of |p|'s 4 neighbours) // 2 */
static inline int64_t parent_act(const int64_t *par, int ph, int pw, int i, int j) {
    if (!par) return 0;
    int pi = i / 2 < ph - 1 ? i / 2 : ph - 1, pj = j / 2 < pw - 1 ? j / 2 : pw - 1;
    const int64_t *r = par + (size_t)pi * pw;
    int64_t around = (pi > 0 ? iabs(r[pj - pw]) : 0) + (pi + 1 < ph ? iabs(r[pj + pw]) : 0) +
                     (pj > 0 ? iabs(r[pj - 1]) : 0) + (pj + 1 < pw ? iabs(r[pj + 1]) : 0);
    return 2 * iabs(r[pj]) + around / 2;
}

static inline int64_t at(const int64_t *b, int h, int w, int i, int j) {
    return (i < 0 || j < 0 || i >= h || j >= w) ? 0 : b[(size_t)i * w + j];
}

/* Per (level, image, orientation) scratch: |band| and sign(band) with a border of zeros, and the
   parent activity (2 |p| + (sum of |p|'s 4 neighbours) // 2) at the parent's resolution, so that the
   loops below read neighbours without bounds checks. */
typedef struct {
    int64_t *abs_; /* (h + 2) x (w + 2) */
    int8_t *sgn_;  /* (h + 2) x (w + 2) */
    int64_t *pact; /* ph x pw (or NULL without a parent) */
    size_t cap_abs, cap_par;
    int failed;
} Scratch;

static int grow(Scratch *S, size_t n_abs, size_t n_par) {
    if (n_abs > S->cap_abs) {
        free(S->abs_);
        free(S->sgn_);
        S->abs_ = (int64_t *)malloc(n_abs * 8);
        S->sgn_ = (int8_t *)malloc(n_abs);
        S->cap_abs = n_abs;
        if (!S->abs_ || !S->sgn_) { S->cap_abs = 0; return -1; }
    }
    if (n_par > S->cap_par) {
        free(S->pact);
        S->pact = (int64_t *)malloc(n_par * 8);
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

static int prepare(const Pyr *P, Scratch *S, int l, int k, int or) {
    const Band *B = &P->det[l][or];
    const int h = B->h, w = B->w, W2 = w + 2;
    int ph, pw;
    const int64_t *par = parent_of(P, l, or, k, &ph, &pw);
    if (grow(S, (size_t)(h + 2) * W2, (size_t)ph * pw + 1)) { S->failed = 1; return -1; }
    memset(S->abs_, 0, (size_t)(h + 2) * W2 * 8);
    memset(S->sgn_, 0, (size_t)(h + 2) * W2);
    const int64_t *b = B->p + (size_t)k * h * w;
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            int64_t v = b[(size_t)i * w + j];
            S->abs_[(size_t)(i + 1) * W2 + j + 1] = iabs(v);
            S->sgn_[(size_t)(i + 1) * W2 + j + 1] = (int8_t)sgn(v);
        }
    if (par)
        for (int i = 0; i < ph; i++)
            for (int j = 0; j < pw; j++) S->pact[(size_t)i * pw + j] = parent_act(par, ph, pw, 2 * i, 2 * j);
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

/* one (level, pass, image, orientation) with its scratch: the magnitude group (or signed values
   without signs) */
static void walk_values(const Pyr *P, const Scratch *S, Out *o, int l, int phase, int k, int or) {
    const Band *B = &P->det[l][or];
    const int h = B->h, w = B->w, W2 = w + 2;
    const int64_t *b = B->p + (size_t)k * h * w, *prev = k ? b - (size_t)h * w : NULL;
    int ph, pw;
    const int has_par = parent_of(P, l, or, k, &ph, &pw) != NULL;
    const int64_t cbase = 1 + (int64_t)(l * PASSES + phase) * N_BUCKETS;
    const int64_t *A = S->abs_;
    for (int i = 0; i < h; i++) {
        int j0 = phase == 0 ? (i % 2 ? w : 0) : (phase == 1 ? (i % 2 ? 1 : w) : (i % 2 ? 0 : 1));
        const int pi = i / 2 < ph - 1 ? i / 2 : ph - 1;
        const int64_t *prow = has_par ? S->pact + (size_t)pi * pw : NULL;
        const int64_t *up = A + (size_t)i * W2 + 1, *mid = up + W2, *down = mid + W2;
        for (int j = j0; j < w; j += 2) {
            int64_t pa = has_par ? prow[j / 2 < pw - 1 ? j / 2 : pw - 1] : 0, act;
            if (phase == 0) act = pa;
            else if (phase == 1) act = up[j - 1] + up[j + 1] + down[j - 1] + down[j + 1] + pa / 2;
            else act = up[j] + down[j] + mid[j - 1] + mid[j + 1] + pa / 2;
            if (prev) act += iabs(prev[(size_t)i * w + j]);
            emit_value(o, b[(size_t)i * w + j], cbase + bucket_lut(act), !P->signs);
        }
    }
}

static void walk_signs(const Pyr *P, const Scratch *S, Out *o, int l, int phase, int k, int or) {
    const Band *B = &P->det[l][or];
    const int h = B->h, w = B->w, W2 = w + 2;
    const int64_t *b = B->p + (size_t)k * h * w, *prev = k ? b - (size_t)h * w : NULL;
    const int wx = SIGN_POLARITY[or][0], wy = SIGN_POLARITY[or][1];
    const int64_t base = (int64_t)((l < 2 ? l : 2) * PASSES + phase) * SIGN_SCORES;
    const int8_t *G = S->sgn_;
    for (int i = 0; i < h; i++) {
        int j0 = phase == 0 ? (i % 2 ? w : 0) : (phase == 1 ? (i % 2 ? 1 : w) : (i % 2 ? 0 : 1));
        const int8_t *up = G + (size_t)i * W2 + 1, *mid = up + W2, *down = mid + W2;
        for (int j = j0; j < w; j += 2) {
            int64_t v = b[(size_t)i * w + j];
            if (!v) continue;
            int64_t score = 0;
            if (phase == 1) score = (int64_t)(wx * wy) * (up[j - 1] + up[j + 1] + down[j - 1] + down[j + 1]);
            else if (phase == 2) score = wx * (mid[j - 1] + mid[j + 1]) + wy * (up[j] + down[j]);
            if (score < -2) score = -2;
            if (score > 2) score = 2;
            int64_t pv = prev ? sgn(prev[(size_t)i * w + j]) : 0;
            emit_sign(o, v, (base + score + 2) * 3 + pv + 1);
        }
    }
}

/* statistics only (order free): every pass of one (level, image, orientation) in one sweep, row by
   row and, within a row, the columns of one pass after the other (pass known at compile time) */
typedef struct {
    int64_t *hist, *scount;
    int64_t escape_bits, signs_seen;
    int too_big;
} Acc;

static inline __attribute__((always_inline)) void stats_at(Acc *o, const int phase, int l, int signs, int wx, int wy,
                                                           int64_t sbase, const int64_t *up, const int64_t *mid,
                                                           const int64_t *down, const int8_t *gup, const int8_t *gmid,
                                                           const int8_t *gdown, const int64_t *row,
                                                           const int64_t *prow_img, const int64_t *prow, int pw,
                                                           int j) {
    const int64_t pa = prow ? prow[j / 2 < pw - 1 ? j / 2 : pw - 1] : 0;
    int64_t act;
    if (phase == 0) act = pa;
    else if (phase == 1) act = up[j - 1] + up[j + 1] + down[j - 1] + down[j + 1] + pa / 2;
    else act = up[j] + down[j] + mid[j - 1] + mid[j + 1] + pa / 2;
    const int64_t pv = prow_img ? prow_img[j] : 0;
    act += pv < 0 ? -pv : pv;
    const int64_t v = row[j];
    const int64_t c = 1 + (int64_t)(l * PASSES + phase) * N_BUCKETS + bucket_lut(act);
    const int64_t a = v < 0 ? -v : v;
    int64_t sym;
    if (a < DIRECT) {
        sym = a == 0 ? 0 : 2 * a - 1 + (!signs && v < 0);
    } else {
        if (a >= ((int64_t)1 << MAX_LOG)) { o->too_big = 1; return; }
        int n = 63 - __builtin_clzll((unsigned long long)a);
        sym = ESCAPE + 2 * (n - 4) + (!signs && v < 0);
        o->escape_bits += n;
    }
    o->hist[c * ALPHABET + sym]++;
    if (signs) {
        int64_t score = 0;
        if (phase == 1) score = (int64_t)(wx * wy) * (gup[j - 1] + gup[j + 1] + gdown[j - 1] + gdown[j + 1]);
        else if (phase == 2) score = wx * (gmid[j - 1] + gmid[j + 1]) + wy * (gup[j] + gdown[j]);
        score = score < -2 ? -2 : (score > 2 ? 2 : score);
        const int64_t sc = (sbase + phase * SIGN_SCORES + score + 2) * 3 + (pv > 0) - (pv < 0) + 1;
        const int64_t nz = v != 0;
        o->scount[sc * 2 + (v < 0)] += nz;
        o->signs_seen += nz;
    }
}

static void stats_band(const Pyr *P, const Scratch *S, Out *out, int l, int k, int or) {
    const Band *B = &P->det[l][or];
    const int h = B->h, w = B->w, W2 = w + 2;
    const int64_t *b = B->p + (size_t)k * h * w, *prev = k ? b - (size_t)h * w : NULL;
    int ph, pw;
    const int has_par = parent_of(P, l, or, k, &ph, &pw) != NULL;
    const int64_t *A = S->abs_;
    const int8_t *G = S->sgn_;
    const int wx = SIGN_POLARITY[or][0], wy = SIGN_POLARITY[or][1];
    const int64_t sbase = (int64_t)((l < 2 ? l : 2) * PASSES) * SIGN_SCORES;
    const int signs = P->signs;
    Acc o = {out->hist, out->scount, 0, 0, 0};
    for (int i = 0; i < h; i++) {
        const int pi = i / 2 < ph - 1 ? i / 2 : ph - 1;
        const int64_t *prow = has_par ? S->pact + (size_t)pi * pw : NULL;
        const int64_t *up = A + (size_t)i * W2 + 1, *mid = up + W2, *down = mid + W2;
        const int8_t *gup = G + (size_t)i * W2 + 1, *gmid = gup + W2, *gdown = gmid + W2;
        const int64_t *row = b + (size_t)i * w, *prow_img = prev ? prev + (size_t)i * w : NULL;
#define AT(PHASE, J) stats_at(&o, PHASE, l, signs, wx, wy, sbase, up, mid, down, gup, gmid, gdown, row, prow_img, prow, pw, J)
        if (i % 2 == 0) {
            for (int j = 0; j < w; j += 2) AT(0, j);
            for (int j = 1; j < w; j += 2) AT(2, j);
        } else {
            for (int j = 0; j < w; j += 2) AT(2, j);
            for (int j = 1; j < w; j += 2) AT(1, j);
        }
#undef AT
    }
    out->escape_bits += o.escape_bits;
    out->total += (int64_t)h * w + o.signs_seen;
    out->too_big |= o.too_big;
}

static void walk_details(const Pyr *P, Out *o, int k0, int k1) {
    Scratch S[3];
    memset(S, 0, sizeof S);
    for (int l = P->levels - 1; l >= 0 && !o->failed; l--) {
        int any = 0;
        for (int or = 0; or < 3; or++) any |= P->det[l][or].h > 0 && P->det[l][or].w > 0;
        if (!any) continue;
        if (o->mode == 0) { /* statistics: any order; each band's scratch built once */
            for (int k = k0; k < k1; k++)
                for (int or = 0; or < 3; or++) {
                    if (!(P->det[l][or].h > 0 && P->det[l][or].w > 0)) continue;
                    if (prepare(P, &S[0], l, k, or)) { o->failed = 1; goto out; }
                    stats_band(P, &S[0], o, l, k, or);
                }
            continue;
        }
        for (int phase = 0; phase < PASSES; phase++)
            for (int k = k0; k < k1; k++) {
                for (int or = 0; or < 3; or++)
                    if (P->det[l][or].h > 0 && P->det[l][or].w > 0 && prepare(P, &S[or], l, k, or)) {
                        o->failed = 1;
                        goto out;
                    }
                open_group(o, 0);
                for (int or = 0; or < 3; or++)
                    if (P->det[l][or].h > 0 && P->det[l][or].w > 0) walk_values(P, &S[or], o, l, phase, k, or);
                close_group(o);
                if (P->signs) {
                    open_group(o, 1);
                    for (int or = 0; or < 3; or++)
                        if (P->det[l][or].h > 0 && P->det[l][or].w > 0) walk_signs(P, &S[or], o, l, phase, k, or);
                    close_group(o);
                }
            }
    }
out:
    for (int i = 0; i < 3; i++) free_scratch(&S[i]);
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

static int parse_pyramid(Pyr *P, int K, int H, int W, int levels, int signs, PyObject *bands, Py_buffer *bufs,
                         int *nbufs) {
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
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(bands, n), &bufs[n], PyBUF_SIMPLE) != 0) return -1;
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

/* groups(K, H, W, levels, signs, bands, sym, ctx, low, nbits, groups) -> (symbols, escapes, groups)
   sym, ctx: int64 buffers of at least 2 K H W; low, nbits: K H W; groups: 3 * (1 + 2 * 3 * levels * K) */
static PyObject *py_groups(PyObject *self, PyObject *args) {
    int K, H, W, levels, signs;
    PyObject *bands, *objs[5];
    (void)self;
    if (!PyArg_ParseTuple(args, "iiiipOOOOOO", &K, &H, &W, &levels, &signs, &bands, &objs[0], &objs[1], &objs[2],
                          &objs[3], &objs[4]))
        return NULL;
    Pyr P;
    Py_buffer bufs[1 + 3 * MAX_LEVELS], ob[5];
    int nb, no = 0;
    PyObject *res = NULL;
    if (parse_pyramid(&P, K, H, W, levels, signs, bands, bufs, &nb)) goto done;
    const Py_ssize_t n = (Py_ssize_t)K * H * W;
    const Py_ssize_t need[5] = {2 * n * 8, 2 * n * 8, n * 8, n * 8, 3 * (1 + 2 * 3 * (Py_ssize_t)levels * K) * 8};
    for (; no < 5; no++) {
        if (PyObject_GetBuffer(objs[no], &ob[no], PyBUF_WRITABLE) != 0) goto done;
        if (ob[no].len < need[no]) {
            no++;
            PyErr_SetString(PyExc_ValueError, "output buffer too small");
            goto done;
        }
    }
    Out o;
    memset(&o, 0, sizeof o);
    o.mode = 1;
    o.sym = (int64_t *)ob[0].buf; o.ctx = (int64_t *)ob[1].buf; o.low = (int64_t *)ob[2].buf;
    o.nbits = (int64_t *)ob[3].buf; o.groups = (int64_t *)ob[4].buf;
    Py_BEGIN_ALLOW_THREADS
    walk_ll(&P, &o);
    walk_details(&P, &o, 0, K);
    Py_END_ALLOW_THREADS
    if (o.failed) { PyErr_NoMemory(); goto done; }
    if (o.too_big) { PyErr_Format(PyExc_ValueError, "coefficient magnitude exceeds 2**%d", MAX_LOG); goto done; }
    res = Py_BuildValue("LLL", (long long)o.n_sym, (long long)o.n_esc, (long long)o.n_groups);
done:
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
    double ent = 0.0;
    for (int s = 0; s < ALPHABET; s++)
        if (h[s] > 0) ent += (double)h[s] * log2((double)h[s] / (double)n);
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

/* estimate(hist, sign_counts, total, escape_bits, signs) -> (bits, ties) */
static PyObject *py_estimate(PyObject *self, PyObject *args) {
    PyObject *ho, *so;
    long long total, escape_bits;
    int signs;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOLLp", &ho, &so, &total, &escape_bits, &signs)) return NULL;
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
        int have = 0, prev = -1, ties = 0, n_used = 0;
        for (int cid = 0; cid < N_CTX; cid++) {
            const int64_t *h = hist + (size_t)cid * ALPHABET;
            int64_t rowsum = 0;
            for (int s = 0; s < ALPHABET; s++) rowsum += h[s];
            if (!rowsum) continue;
            n_used++;
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
        int k = 0;
        while (k < 8 && (total + ((int64_t)1 << k) - 1) / ((int64_t)1 << k) > 8192) k++;
        bits += (double)escape_bits + 32.0 * (double)(1 << k) + 24.0 + 2.0 * n_used;
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
static PyObject *py_rans_encode(PyObject *self, PyObject *args) {
    PyObject *eo, *fo, *so;
    int precision, lanes, word_bits;
    long long state_low;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOiiLi", &eo, &fo, &so, &precision, &lanes, &state_low, &word_bits)) return NULL;
    Py_buffer eb, fb, sb;
    if (PyObject_GetBuffer(eo, &eb, PyBUF_SIMPLE) != 0) return NULL;
    if (PyObject_GetBuffer(fo, &fb, PyBUF_SIMPLE) != 0) { PyBuffer_Release(&eb); return NULL; }
    if (PyObject_GetBuffer(so, &sb, PyBUF_SIMPLE) != 0) { PyBuffer_Release(&eb); PyBuffer_Release(&fb); return NULL; }
    PyObject *res = NULL;
    uint16_t *buf = NULL;
    Py_ssize_t *first = NULL;
    int64_t *x = NULL;
    const Py_ssize_t n = eb.len / 8, n_entries = fb.len / 8;
    if (lanes < 1 || lanes > 256 || (lanes & (lanes - 1)) || n % lanes || sb.len / 8 != n_entries || precision < 1 ||
        precision > 24 || word_bits != 16) {
        PyErr_SetString(PyExc_ValueError, "rans_encode: bad arguments");
        goto done;
    }
    {
        const int64_t *e = (const int64_t *)eb.buf, *freqs = (const int64_t *)fb.buf, *starts = (const int64_t *)sb.buf;
        const Py_ssize_t steps = n / lanes;
        for (Py_ssize_t i = 0; i < n; i++)
            if (e[i] < 0 || e[i] >= n_entries || freqs[e[i]] < 1) {
                PyErr_SetString(PyExc_ValueError, "rans_encode: entry out of range");
                goto done;
            }
        buf = (uint16_t *)malloc((size_t)(n ? n : 1) * 2);
        first = (Py_ssize_t *)malloc((size_t)(steps + 1) * sizeof(Py_ssize_t));
        x = (int64_t *)malloc((size_t)lanes * 8);
        if (!buf || !first || !x) { PyErr_NoMemory(); goto done; }
        const int64_t mask = ((int64_t)1 << precision) - 1;
        for (int l = 0; l < lanes; l++) x[l] = state_low;
        Py_ssize_t nw = 0;
        for (Py_ssize_t j = steps - 1; j >= 0; j--) {
            first[j] = nw;
            const int64_t *ej = e + j * lanes;
            for (int l = 0; l < lanes; l++) {
                const int64_t f = freqs[ej[l]];
                if (x[l] >= (f << (32 - precision))) {
                    buf[nw++] = (uint16_t)(x[l] & 0xFFFF);
                    x[l] >>= word_bits;
                }
                const int64_t q = x[l] / f;
                x[l] = (q << precision) + (x[l] - q * f) + (starts[ej[l]] & mask);
            }
        }
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
    }
done:
    free(buf);
    free(first);
    free(x);
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

/* one line: s (ns samples at stride ss), d (nd at stride ds); forward lifting in place */
static inline void lift_fwd_line(double *s, Py_ssize_t ss, Py_ssize_t ns, double *d, Py_ssize_t ds, Py_ssize_t nd,
                                 const double *c) {
    for (int step = 0; step < 4; step += 2) {
        const double cp = c[step], cu = c[step + 1];
        for (Py_ssize_t i = 0; i < nd; i++) {
            const double nx = i + 1 < ns ? s[(i + 1) * ss] : s[(ns - 1) * ss];
            d[i * ds] = d[i * ds] + cp * (s[i * ss] + nx);
        }
        for (Py_ssize_t i = 0; i < ns; i++) {
            const double pv = i ? d[(i - 1) * ds] : d[0];
            const double cv = i < nd ? d[i * ds] : d[(nd - 1) * ds];
            s[i * ss] = s[i * ss] + cu * (pv + cv);
        }
    }
    for (Py_ssize_t i = 0; i < ns; i++) s[i * ss] = s[i * ss] * c[4];
    for (Py_ssize_t i = 0; i < nd; i++) d[i * ds] = d[i * ds] * c[5];
}

static inline void lift_inv_line(double *s, Py_ssize_t ss, Py_ssize_t ns, double *d, Py_ssize_t ds, Py_ssize_t nd,
                                 const double *c) {
    for (Py_ssize_t i = 0; i < ns; i++) s[i * ss] = s[i * ss] * c[5];
    for (Py_ssize_t i = 0; i < nd; i++) d[i * ds] = d[i * ds] * c[4];
    for (int step = 2; step >= 0; step -= 2) {
        const double cp = c[step], cu = c[step + 1];
        for (Py_ssize_t i = 0; i < ns; i++) {
            const double pv = i ? d[(i - 1) * ds] : d[0];
            const double cv = i < nd ? d[i * ds] : d[(nd - 1) * ds];
            s[i * ss] = s[i * ss] - cu * (pv + cv);
        }
        for (Py_ssize_t i = 0; i < nd; i++) {
            const double nx = i + 1 < ns ? s[(i + 1) * ss] : s[(ns - 1) * ss];
            d[i * ds] = d[i * ds] - cp * (s[i * ss] + nx);
        }
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

/* lift(x, lo, hi, outer, n, inner, inverse, consts): x is (outer, n, inner) contiguous; the transform runs
   along n. Forward: x -> lo (outer, ceil(n/2), inner), hi (outer, floor(n/2), inner). Inverse: lo, hi -> x. */
static PyObject *py_lift(PyObject *self, PyObject *args) {
    PyObject *xo, *lo_o, *hi_o, *co;
    Py_ssize_t outer, n, inner;
    int inverse;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOnnnpO", &xo, &lo_o, &hi_o, &outer, &n, &inner, &inverse, &co)) return NULL;
    if (outer < 0 || n < 2 || inner < 1) {
        PyErr_SetString(PyExc_ValueError, "lift: bad shape");
        return NULL;
    }
    const Py_ssize_t ns = (n + 1) / 2, nd = n / 2;
    Py_buffer xb, lb, hb, cb;
    if (get_doubles(xo, &xb, outer * n * inner, inverse, "x")) return NULL;
    if (get_doubles(lo_o, &lb, outer * ns * inner, !inverse, "lo")) { PyBuffer_Release(&xb); return NULL; }
    if (get_doubles(hi_o, &hb, outer * nd * inner, !inverse, "hi")) {
        PyBuffer_Release(&xb); PyBuffer_Release(&lb);
        return NULL;
    }
    if (get_doubles(co, &cb, 6, 0, "constants")) {
        PyBuffer_Release(&xb); PyBuffer_Release(&lb); PyBuffer_Release(&hb);
        return NULL;
    }
    double *x = (double *)xb.buf, *lo = (double *)lb.buf, *hi = (double *)hb.buf;
    const double *c = (const double *)cb.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t o = 0; o < outer; o++) {
        double *xo_ = x + o * n * inner, *lo_ = lo + o * ns * inner, *hi_ = hi + o * nd * inner;
        if (!inverse) { /* split even / odd samples */
            if (inner == 1) {
                for (Py_ssize_t i = 0; i < nd; i++) {
                    lo_[i] = xo_[2 * i];
                    hi_[i] = xo_[2 * i + 1];
                }
                if (ns > nd) lo_[ns - 1] = xo_[n - 1];
            } else {
                for (Py_ssize_t i = 0; i < n; i++)
                    memcpy((i % 2 ? hi_ + (i / 2) * inner : lo_ + (i / 2) * inner), xo_ + i * inner, inner * 8);
            }
        }
        if (inner == 1) {
            if (inverse) lift_inv_line(lo_, 1, ns, hi_, 1, nd, c);
            else lift_fwd_line(lo_, 1, ns, hi_, 1, nd, c);
        } else { /* columns: the same per-sample operations, a row of samples at a time */
            const Py_ssize_t W = inner;
            double *S = lo_, *D = hi_;
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
                for (Py_ssize_t i = 0; i < ns * W; i++) S[i] = S[i] * c[4];
                for (Py_ssize_t i = 0; i < nd * W; i++) D[i] = D[i] * c[5];
            } else {
                for (Py_ssize_t i = 0; i < ns * W; i++) S[i] = S[i] * c[5];
                for (Py_ssize_t i = 0; i < nd * W; i++) D[i] = D[i] * c[4];
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
        }
        if (inverse) {
            if (inner == 1) {
                for (Py_ssize_t i = 0; i < nd; i++) {
                    xo_[2 * i] = lo_[i];
                    xo_[2 * i + 1] = hi_[i];
                }
                if (ns > nd) xo_[n - 1] = lo_[ns - 1];
            } else {
                for (Py_ssize_t i = 0; i < n; i++)
                    memcpy(xo_ + i * inner, (i % 2 ? hi_ + (i / 2) * inner : lo_ + (i / 2) * inner), inner * 8);
            }
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&xb); PyBuffer_Release(&lb); PyBuffer_Release(&hb); PyBuffer_Release(&cb);
    Py_RETURN_NONE;
}


/* quantise(x, q, outer, n, step, rounding, stats): dead-zone quantisation of x (outer, n) doubles into q
   (outer, n) int64, q = sign(x) floor(|x| * (1 / step) + rounding), and per
   row in stats (outer, 4) doubles, in units of the step (u = |x| * (1 / step)): the sum of u^2 over the zeros,
   the count of non-zeros, the sums of f = u - |q| and of f^2 over them (what the squared error is at any
   reconstruction offset: the encoder's distortion estimate). */
static PyObject *py_quantise(PyObject *self, PyObject *args) {
    PyObject *xo, *qo, *so;
    Py_ssize_t outer, n;
    double step, rounding;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOnndd", &xo, &qo, &so, &outer, &n, &step, &rounding)) return NULL;
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
    const double inv = 1.0 / step;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t o = 0; o < outer; o++) {
        const double *xr = x + o * n;
        int64_t *qr = q + o * n;
        double zero_sq = 0.0, nz = 0.0, sf = 0.0, sf2 = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            /* u + rounding >= 0 and below 2**40 (finest_code): truncation is floor */
            const double v = xr[i], u = fabs(v) * inv;
            const int64_t t = (int64_t)(u + rounding);
            qr[i] = v < 0 ? -t : t;
            const double z = t == 0, f = (u - (double)t) * (1.0 - z);
            zero_sq += z * u * u;
            nz += 1.0 - z;
            sf += f;
            sf2 += f * f;
        }
        st[4 * o] = zero_sq; st[4 * o + 1] = nz; st[4 * o + 2] = sf; st[4 * o + 3] = sf2;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&xb); PyBuffer_Release(&qb); PyBuffer_Release(&sb);
    Py_RETURN_NONE;
}

/* mix(rows, images, out, T, K, H, W, y0, y1, x0, x1, threads): out[t, y - y0, x - x0] =
   clip(rows[t, K] + sum_k rows[t, k] images[k, y, x], 0, 1) over the rectangle rows y0:y1, columns x0:x1 of
   images (K, H, W), for T rows (T, K + 1) of [B(t) | mean(t)]: in binary64, k in increasing order, one
   rounding per operation (HNR.md; decoder.mix is the reference), a run of at most MIX_BLOCK pixels of
   one image row at a time (the images' run stays in cache for every band), the image rows shared among
   `threads` threads. */
typedef struct { const double *rows, *img; double *out; Py_ssize_t T, K, H, W, y0, y1, x0, x1, r0, r1; } MixWork;
#define MIX_BLOCK 256

static void *mix_thread(void *arg) {
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

static void *restore_thread(void *arg) {
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

static PyMethodDef methods[] = {
    {"stats", py_stats, METH_VARARGS,
     "stats(K, H, W, levels, signs, bands, hist_out, sign_out, nthreads) -> (symbols, escape bits)"},
    {"groups", py_groups, METH_VARARGS,
     "groups(K, H, W, levels, signs, bands, sym, ctx, low, nbits, groups) -> (symbols, escapes, groups)"},
    {"estimate", py_estimate, METH_VARARGS, "estimate(hist, sign_counts, total, escape_bits, signs) -> (bits, ties)"},
    {"quantise", py_quantise, METH_VARARGS,
     "quantise(x, q, stats, outer, n, step, rounding): dead-zone quantisation with error statistics"},
    {"mix", py_mix, METH_VARARGS,
     "mix(rows, images, out, T, K, H, W, y0, y1, x0, x1, threads): decoder.mix of T rows over a rectangle"},
    {"restore", py_restore, METH_VARARGS,
     "restore(y, out, T, N, scale, offset, in_double, out_kind, threads): cube.restore, compiled"},
    {"lift", py_lift, METH_VARARGS, "lift(x, lo, hi, outer, n, inner, inverse, consts): CDF 9/7 lifting along n"},
    {"rans_encode", py_rans_encode, METH_VARARGS,
     "rans_encode(e, freqs, starts, precision, lanes, state_low, word_bits) -> bytes"},
    {"rans_read", py_rans_read, METH_VARARGS,
     "rans_read(x, words, n_words, ptr, starts, freqs, symbols, which, out, precision, state_low, word_bits) -> ptr"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_fast", "hinerc transform coder core", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fast(void) { return PyModule_Create(&moddef); }
