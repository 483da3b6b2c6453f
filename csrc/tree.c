/* tree.c: CART classification trees on binned features: split search by class histograms
 * over the node's bins (doubles, int32 counts, or 16-bit class lanes when weights are whole;
 * for small nodes, also by sorting the node's codes) and the depth-first builder.
 * Not here: binning (tree_bins.c); bagging, threads over trees and prediction (forest.c). */
#include "tree.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "common.h"

void fm_tree_free(fm_tree *t)
{
    fm_free(t->left); fm_free(t->right); fm_free(t->feature); fm_free(t->n_samples);
    fm_free(t->threshold); fm_free(t->value); fm_free(t->impurity); fm_free(t->weighted_n);
    memset(t, 0, sizeof *t);
}

/* ---- the builder ------------------------------------------------------------------- */

typedef struct {
    int64_t start, end, depth, parent;
    int is_left;
    uint64_t path;
} frame;

/* Scratch reused by every tree a thread grows (fresh pages per tree cost a fifth of the
 * time in page faults). */
struct fm_tree_work {
    int64_t m_cap, d, k, keys_cap, node_hint;
    int64_t *idx, *tidx;   /* (m) the rows, grouped by node; partition scratch */
    int64_t *ys, *tys;     /* (m) their classes */
    float *ws, *tws;       /* (m) their weights */
    double *hw;            /* (2, 256, k) weighted class sums per bin, two copies */
    int32_t *hi;           /* (2, 256, k) the same as counts, when weights are whole numbers */
    int64_t *hn;           /* (256) samples per bin */
    uint8_t *seen;         /* (256) 1 for the bins a feature's fill touched */
    double *ct;            /* (6, k) class sums: node, left, right; then over the classes
                              present in the node only */
    int64_t *yl;           /* (m) a node's samples' ids among its present classes */
    double *wd;            /* (m) their weights as doubles */
    int32_t *wi;           /* (m) and as integers, when whole */
    uint64_t *inc;         /* (m) their weights in their class's 16-bit lane (lane nodes) */
    uint64_t *lanes;       /* (2, 256) class sums per bin in 16-bit lanes, two copies */
    int64_t *cmap;         /* (k) class -> id among the present ones */
    int64_t *feat, *swaps; /* (d) feature order, undo log of a node's draws */
    int64_t *slot;         /* (d) column of each drawn feature in vals, -1 if known constant */
    uint64_t *known;       /* (known_cap, words) features known constant, by depth */
    int64_t known_cap;
    uint32_t *keys;        /* (small_node + 1) code << 16 | position, for sorting small nodes */
    uint8_t *vals;         /* (max(m, ROW_BATCH * ROW_GATHER)) a node's codes of features */
    uint8_t *bestv;        /* (m) its codes of the best feature so far */
    frame *stack;
    int64_t stack_cap;
};

typedef struct {
    int64_t feature, bin;
    double proxy; /* larger is better: -(W_L imp_L + W_R imp_R) up to a node constant */
} split;

typedef struct {
    const uint8_t *codes;  /* (d, n) */
    const uint8_t *rows;   /* (n, d) the same codes row-major, or NULL */
    const float *edges;
    const int64_t *n_edges;
    const fm_tree_params *p;
    int64_t n, d, k, edge_stride;
    uint64_t seed;
    double w_total;
    int64_t *idx, *tidx, *ys, *tys; /* as in fm_tree_work */
    float *ws, *tws;
    double *hw;
    int32_t *hi;
    int whole;  /* every weight a whole number, the total below 2^31: histograms count in
                   int32, exactly */
    int pure_is_final; /* a split into two pure children ends the node's search: see
                          find_split */
    int64_t *hn;
    uint8_t *seen;
    double *ct, *cl, *cr;
    int64_t kk, kp, *yl, *cmap; /* classes present in the node (kp: rounded up to even), its
                                   samples' ids among them */
    double *wd;               /* (m) the node's weights as doubles, from its start */
    int32_t *wi;              /* (m) the same as integers, if whole */
    uint64_t *inc, *lanes;    /* as in fm_tree_work */
    double *lct, *lcl, *lcr;  /* (kk) class sums over present classes: node, left, right */
    double *hrow;             /* (kp) one histogram bin's class sums */
    int64_t *feat, *swaps, *slot;
    uint64_t *known;
    int64_t known_cap, words;
    uint32_t *keys;
    uint8_t *vals, *bestv;
    frame *stack;
    int64_t stack_len, stack_cap, node_hint;
} builder;

static double xlogx(double x) { return x > 0.0 ? x * log(x) : 0.0; }

static double impurity(const double *c, double w, int64_t k, enum fm_criterion crit)
{
    if (w <= 0.0) return 0.0;
    double s = 0.0;
    if (crit == FM_GINI) {
        for (int64_t j = 0; j < k; j++) s += c[j] * c[j];
        return 1.0 - s / (w * w);
    }
    for (int64_t j = 0; j < k; j++)
        if (c[j] > 0.0) s -= (c[j] / w) * log2(c[j] / w);
    return s;
}

/* Running split statistics while samples move from the right child to the left:
 * gini keeps sum_c c^2 per side, entropy sum_c c log c, each updated in O(1) per class. */
typedef struct { double wl, wr, sl, sr; int64_t nl; } running;

static void running_start(running *r, builder *b, double w, enum fm_criterion crit)
{
    r->wl = 0.0; r->wr = w; r->sl = 0.0; r->sr = 0.0; r->nl = 0;
    for (int64_t c = 0; c < b->kp; c++) {
        b->lcl[c] = 0.0;
        b->lcr[c] = b->lct[c];
        r->sr += crit == FM_GINI ? b->lct[c] * b->lct[c] : xlogx(b->lct[c]);
    }
}

static inline void running_move(running *r, builder *b, int64_t c, double h,
                                enum fm_criterion crit)
{
    double *cl = b->lcl, *cr = b->lcr;
    if (crit == FM_GINI) {
        r->sl += h * (2.0 * cl[c] + h);
        r->sr += h * (h - 2.0 * cr[c]);
    } else {
        r->sl += xlogx(cl[c] + h) - xlogx(cl[c]);
        r->sr += xlogx(cr[c] - h) - xlogx(cr[c]);
    }
    cl[c] += h;
    cr[c] -= h;
    r->wl += h;
    r->wr -= h;
}

/* Score the split "bins <= bin go left" if both sides are allowed. */
static inline void running_score(const running *r, split *best, int64_t feature, int64_t bin,
                                 int64_t n_node, int64_t min_leaf, enum fm_criterion crit)
{
    if (r->nl < min_leaf || n_node - r->nl < min_leaf || r->wl <= 0.0 || r->wr <= 0.0) return;
    double proxy;
    if (crit == FM_GINI) { /* sl/wl + sr/wr > best without dividing: most candidates lose */
        double num = r->sl * r->wr + r->sr * r->wl, den = r->wl * r->wr;
        if (!(num > best->proxy * den)) return;
        proxy = num / den;
    } else {
        proxy = r->sl - xlogx(r->wl) + r->sr - xlogx(r->wr);
    }
    if (proxy > best->proxy) {
        best->proxy = proxy;
        best->feature = feature;
        best->bin = bin;
    }
}

/* Gini scan step: move one bin's class sums h (kp entries, kp even, zero-padded) from the
 * right child to the left. The sums of squares change by sum_c h (2 cl + h) on the left and
 * sum_c h (h - 2 cr) on the right; summing each bin's change apart (two lanes, no branch)
 * keeps the running sums off the critical path. Exact in any order for integer weights. */
static inline void gini_move(running *r, double *restrict cl, double *restrict cr,
                             const double *restrict h, int64_t kp)
{
    double dl0 = 0.0, dl1 = 0.0, dr0 = 0.0, dr1 = 0.0, s0 = 0.0, s1 = 0.0;
    for (int64_t c = 0; c < kp; c += 2) {
        double a = h[c], b = h[c + 1];
        dl0 += a * (2.0 * cl[c] + a);
        dl1 += b * (2.0 * cl[c + 1] + b);
        dr0 += a * (a - 2.0 * cr[c]);
        dr1 += b * (b - 2.0 * cr[c + 1]);
        cl[c] += a; cl[c + 1] += b;
        cr[c] -= a; cr[c + 1] -= b;
        s0 += a; s1 += b;
    }
    r->sl += dl0 + dl1;
    r->sr += dr0 + dr1;
    r->wl += s0 + s1;
    r->wr -= s0 + s1;
}

/* Sums per bin of the samples' ws[j] into two histograms h1, h2 at AT(bin, j) (even and
 * odd samples: runs of one (bin, class) would otherwise chain every add on the store before
 * it), and the occupied bins into occ. */
#define FILL_TWO(h1, h2, AT, ws)                                                            \
    do {                                                                                    \
        int64_t j = 0;                                                                      \
        for (; j + 1 < m; j += 2) {                                                         \
            unsigned b0 = v[j], b1 = v[j + 1];                                              \
            h1[AT(b0, j)] += ws[j];                                                         \
            h2[AT(b1, j + 1)] += ws[j + 1];                                                 \
            seen[b0] = seen[b1] = 1;                                                        \
        }                                                                                   \
        if (j < m) {                                                                        \
            h1[AT(v[j], j)] += ws[j];                                                       \
            seen[v[j]] = 1;                                                                 \
        }                                                                                   \
    } while (0)

/* The bins marked in seen (256 bytes of 0 or 1) as a bitmask occ; returns the number of
 * occupied bins (the scans clear their marks). Bytes rather than bits while filling: setting a bit is a
 * load, an or and a store, and runs of one bin chain each sample's on the store before it.
 * A multiply gathers 8 flag bytes into 8 bits (each byte lands on its own bit of the top
 * byte, without carries). */
static inline int occupancy(uint64_t *occ, uint8_t *seen)
{
    int n = 0;
    for (int q = 0; q < 4; q++) {
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) {
            uint64_t x;
            memcpy(&x, seen + 64 * q + 8 * i, 8);
            bits |= ((x * 0x0102040810204080ULL) >> 56) << (8 * i);
        }
        occ[q] = bits;
        n += __builtin_popcountll(bits);
    }
    return n;
}

#define AT_CLASS(bin, j) ((bin) * k + ys[j])
#define AT_BIN(bin, j) (bin)

/* Best split of one feature by a class histogram over its bins; only occupied bins are
 * visited (a 256-bit occupancy mask), so sparse nodes do not pay for 256 bins. Rows of the
 * histogram have b->kp (the present classes, rounded up to even) entries. Whole weights
 * (bootstrap counts) are summed in int32: exact, a shorter chain per add and half the
 * cache (two copies of 256 x 10 doubles overflow a 32 KB L1); each occupied row becomes
 * doubles before the scan, so both ways score identical numbers.
 * Returns 1 if the feature is not constant in the node. */
static int split_by_histogram(builder *b, const frame *fr, const uint8_t *v, int64_t f, double w,
                              split *best)
{
    const int64_t k = b->kp, *ys = b->yl;
    double *hw = b->hw;
    int32_t *hi = b->hi;
    int64_t *hn = b->hn, m = fr->end - fr->start;
    int counts = b->p->min_samples_leaf > 1; /* else any occupied bin makes a valid side */
    uint64_t occ[4];
    uint8_t *seen = b->seen;
    const int32_t *restrict wi = b->wi;
    const double *restrict wd = b->wd;
    if (b->whole) FILL_TWO(hi, (hi + 256 * k), AT_CLASS, wi);
    else FILL_TWO(hw, (hw + 256 * k), AT_CLASS, wd);
    if (counts)
        for (int64_t j = 0; j < m; j++) hn[v[j]]++;
    int n_occ = occupancy(occ, seen);
    enum fm_criterion crit = b->p->criterion;
    running r = {0, 0, 0, 0, 0};
    if (n_occ > 1) running_start(&r, b, w, crit);
    int scanned = 0;
    double *row = b->hrow; /* the bin's two copies summed, which are zeroed for the next use */
    for (int q = 0; q < 4; q++) {
        for (uint64_t bits = occ[q]; bits; bits &= bits - 1) {
            int64_t bin = q * 64 + __builtin_ctzll(bits);
            if (b->whole) {
                int32_t *i1 = hi + bin * k, *i2 = i1 + 256 * k;
                for (int64_t c = 0; c < k; c++) {
                    row[c] = (double)(i1[c] + i2[c]);
                    i1[c] = i2[c] = 0;
                }
            } else {
                double *d1 = hw + bin * k, *d2 = d1 + 256 * k;
                for (int64_t c = 0; c < k; c++) {
                    row[c] = d1[c] + d2[c];
                    d1[c] = d2[c] = 0.0;
                }
            }
            if (n_occ > 1) {
                if (crit == FM_GINI) {
                    gini_move(&r, b->lcl, b->lcr, row, k);
                } else {
                    for (int64_t c = 0; c < b->kk; c++)
                        if (row[c] != 0.0) running_move(&r, b, c, row[c], crit);
                }
                r.nl += counts ? hn[bin] : 1;
                if (++scanned < n_occ)
                    running_score(&r, best, f, bin, m, b->p->min_samples_leaf, crit);
            }
            hn[bin] = 0;
            seen[bin] = 0;
        }
    }
    return n_occ > 1;
}

/* Gini, whole weights, at most LANE_CLASSES classes in the node and less than 2^16 weight:
 * a bin's class counts fit the 16-bit lanes of LANE_WORDS uint64 words (class c in lane
 * c % 4 of word c / 4; no carry can cross a lane), so a sample costs one add into a small
 * histogram (b->inc holds its weight shifted to its class's lane). The scan keeps the left
 * child's counts in lanes too (the right child's are the node's minus them, lane by lane
 * without borrows) and takes each side's weight and sum of squares from the lanes, without
 * a branch on which classes the bin holds. These are the exact integers the histogram
 * path's running sums reach, so the scores are identical. Needs min_samples_leaf 1 (no
 * sample counts). Returns 1 if the feature is not constant in the node. */
#define LANE_WORDS 2
#define LANE_CLASSES (4 * LANE_WORDS)
#define AT_WORD(bin, j) ((bin) * nw + (ys[j] >> 2))

static inline void lane_sums(uint64_t x, uint64_t *sum, uint64_t *squares)
{
    for (int c = 0; c < 4; c++, x >>= 16) {
        uint64_t h = x & 0xFFFF;
        *sum += h;
        *squares += h * h;
    }
}

static int split_by_lanes(builder *b, const frame *fr, const uint8_t *v, int64_t f, split *best)
{
    const int64_t nw = (b->kk + 3) / 4, *ys = b->yl, m = fr->end - fr->start;
    uint64_t *h1 = b->lanes, *h2 = b->lanes + 256 * LANE_WORDS, occ[4];
    uint8_t *seen = b->seen;
    const uint64_t *restrict inc = b->inc;
    if (nw == 1) FILL_TWO(h1, h2, AT_BIN, inc);
    else FILL_TWO(h1, h2, AT_WORD, inc);
    int n_occ = occupancy(occ, seen);
    uint64_t node[LANE_WORDS] = {0}, left[LANE_WORDS] = {0};
    for (int64_t c = 0; c < b->kk; c++) node[c >> 2] |= (uint64_t)b->lct[c] << (16 * (c & 3));
    int scanned = 0;
    for (int q = 0; q < 4; q++) {
        for (uint64_t bits = occ[q]; bits; bits &= bits - 1) {
            int64_t bin = q * 64 + __builtin_ctzll(bits);
            uint64_t *x1 = h1 + bin * nw, *x2 = h2 + bin * nw, wl = 0, sl = 0, wr = 0, sr = 0;
            for (int64_t j = 0; j < nw; j++) {
                left[j] += x1[j] + x2[j];
                x1[j] = x2[j] = 0;
                lane_sums(left[j], &wl, &sl);
                lane_sums(node[j] - left[j], &wr, &sr);
            }
            seen[bin] = 0;
            if (++scanned == n_occ) continue; /* the last bin leaves no right child */
            running r = {(double)wl, (double)wr, (double)sl, (double)sr, scanned};
            running_score(&r, best, f, bin, m, 1, FM_GINI);
        }
    }
    return n_occ > 1;
}

#define INSERTION_MAX 32 /* below, insertion sort beats counting sort's pass over 256 bins */

/* Best split of one feature on a small node: sort the node's codes (insertion sort when
 * tiny, else counting sort) and scan samples in order, O(1) per sample instead of O(k) per
 * bin. Same splits as the histogram. */
static int split_by_sorting(builder *b, const frame *fr, const uint8_t *v, int64_t f, double w,
                            split *best)
{
    int64_t m = fr->end - fr->start;
    uint32_t *keys = b->keys;
    uint32_t lo = 255, hi = 0;
    for (int64_t j = 0; j < m; j++) {
        uint32_t c = v[j];
        lo = c < lo ? c : lo;
        hi = c > hi ? c : hi;
        keys[j] = c << 16 | (uint32_t)j;
    }
    if (lo == hi) return 0;
    if (m <= INSERTION_MAX) {
        for (int64_t j = 1; j < m; j++) {
            uint32_t key = keys[j];
            int64_t i = j - 1;
            while (i >= 0 && keys[i] > key) { keys[i + 1] = keys[i]; i--; }
            keys[i + 1] = key;
        }
    } else {
        uint32_t start[256];
        memset(start + lo, 0, (hi - lo + 1) * sizeof(uint32_t));
        for (int64_t j = 0; j < m; j++) start[v[j]]++;
        for (uint32_t c = lo, pos = 0; c <= hi; c++) {
            uint32_t cnt = start[c];
            start[c] = pos;
            pos += cnt;
        }
        for (int64_t j = 0; j < m; j++) keys[start[v[j]]++] = (uint32_t)v[j] << 16 | (uint32_t)j;
    }
    enum fm_criterion crit = b->p->criterion;
    running r = {0, 0, 0, 0, 0};
    running_start(&r, b, w, crit);
    const int64_t *yl = b->yl, min_leaf = b->p->min_samples_leaf;
    const double *wd = b->wd;
    for (int64_t j = 0; j + 1 < m; j++) {
        int64_t pos = keys[j] & 0xFFFF;
        running_move(&r, b, yl[pos], wd[pos], crit);
        r.nl++;
        if ((keys[j] >> 16) != (keys[j + 1] >> 16))
            running_score(&r, best, f, keys[j] >> 16, m, min_leaf, crit);
    }
    return 1;
}

/* Nodes of at most ROW_GATHER samples read their codes from the row-major copy, ROW_BATCH
 * features per pass: one pass touches each row's few cache lines once, where the
 * column-major codes would cost a cache miss per sample and feature. */
#define ROW_GATHER 2048
#define ROW_BATCH 16

static uint64_t child_path(uint64_t path, int right)
{
    uint64_t x = path ^ (right ? 0xA5A5A5A5DEADBEEFULL : 0x5A5A5A5A0BADF00DULL);
    return fm_splitmix64(&x);
}

/* Draw features in a random order (from the node's own generator) until max_features
 * non-constant ones were examined, as scikit-learn does; undo the draws afterwards so the
 * next node's order depends on its path only. */
static int ensure_known(builder *b, int64_t depth)
{
    if (depth < b->known_cap) return FM_OK;
    int64_t cap = 2 * (depth + 1);
    uint64_t *k = fm_alloc((size_t)(cap * b->words) * sizeof(uint64_t));
    if (!k) return FM_ENOMEM;
    if (b->known) memcpy(k, b->known, (size_t)(b->known_cap * b->words) * sizeof(uint64_t));
    else memset(k, 0, (size_t)b->words * sizeof(uint64_t)); /* the root knows nothing */
    fm_free(b->known);
    b->known = k;
    b->known_cap = cap;
    return FM_OK;
}

/* Draw features in a random order (from the node's own generator) until max_features
 * non-constant ones were examined, as scikit-learn does; undo the draws afterwards so the
 * next node's order depends on its path only. Features constant in an ancestor are
 * constant here: they are drawn but not read. known[depth] holds them; this node's
 * children get known[depth + 1] = known[depth] plus the ones found here (depth-first
 * order means no pending node still needs the slot being overwritten). */
static int find_split(builder *b, const frame *fr, double w, split *best)
{
    fm_rng rng;
    fm_rng_seed(&rng, b->seed, fr->path);
    int64_t d = b->d, drawn = 0, visited = 0, m = fr->end - fr->start, words = b->words;
    int small = m <= b->p->small_node, by_rows = b->rows && m <= ROW_GATHER;
    int64_t batch_start = 0, batch_end = 0, want = by_rows ? ROW_BATCH : 1;
    const int64_t *idx = b->idx + fr->start;
    best->feature = -1;
    best->bin = 0;
    best->proxy = -INFINITY;
    /* only the classes present in the node: deep nodes hold two or three of them, and a
     * histogram bin then costs two or three steps instead of k */
    b->kk = 0;
    for (int64_t c = 0; c < b->k; c++) {
        b->cmap[c] = b->ct[c] > 0.0 ? b->kk : 0;
        if (b->ct[c] > 0.0) b->lct[b->kk++] = b->ct[c];
    }
    b->kp = (b->kk + 1) & ~(int64_t)1;
    b->lct[b->kk] = 0.0; /* the padding class, if any: always empty */
    for (int64_t j = 0; j < m; j++) {
        b->yl[j] = b->cmap[b->ys[fr->start + j]];
        b->wd[j] = b->ws[fr->start + j];
    }
    int lanes = b->whole && b->p->criterion == FM_GINI && b->p->min_samples_leaf == 1 &&
                b->kk <= LANE_CLASSES && w < 65536.0;
    if (lanes)
        for (int64_t j = 0; j < m; j++)
            b->inc[j] = (uint64_t)b->ws[fr->start + j] << (16 * (b->yl[j] & 3));
    else if (b->whole && !small)
        for (int64_t j = 0; j < m; j++) b->wi[j] = (int32_t)b->ws[fr->start + j];
    if (ensure_known(b, fr->depth + 1) != FM_OK) return FM_ENOMEM;
    const uint64_t *known = b->known + fr->depth * words;
    uint64_t *found = b->known + (fr->depth + 1) * words;
    memcpy(found, known, (size_t)words * sizeof(uint64_t));
    /* With gini and whole weights totalling at most 2^17, every proxy is a ratio of exact
     * integers (w^3 < 2^53): two pure children score exactly w, any other split less (by at
     * least 1 / w^2, far above rounding), and a later candidate must score strictly more.
     * So once a pure split is found nothing can replace it, and the features left to draw
     * need not be read (the children are leaves: their known-constant sets are not used). */
    while (drawn < d && visited < b->p->max_features && !(b->pure_is_final && best->proxy == w)) {
        if (drawn == batch_end) { /* draw ahead; the order of the draws is unchanged */
            int64_t got = 0, fs[ROW_BATCH];
            batch_start = drawn;
            for (batch_end = drawn; batch_end < d && got < want; batch_end++) {
                int64_t q = batch_end, j = q + (int64_t)fm_rng_below(&rng, (uint64_t)(d - q));
                int64_t f = b->feat[j];
                b->feat[j] = b->feat[q];
                b->feat[q] = f;
                b->swaps[q] = j;
                int skip = (known[f >> 6] >> (f & 63)) & 1;
                b->slot[q - batch_start] = skip ? -1 : got;
                if (!skip) fs[got++] = f;
            }
            uint8_t *restrict out = b->vals;
            if (by_rows) {
                const uint8_t *restrict rows = b->rows;
                for (int64_t i = 0; i < m; i++) {
                    const uint8_t *row = rows + idx[i] * d;
                    for (int64_t q = 0; q < got; q++) out[q * m + i] = row[fs[q]];
                }
            } else if (got) {
                const uint8_t *restrict col = b->codes + fs[0] * b->n;
                for (int64_t i = 0; i < m; i++) out[i] = col[idx[i]];
            }
        }
        int64_t f = b->feat[drawn], slot = b->slot[drawn - batch_start];
        drawn++;
        if (slot < 0) continue;
        const uint8_t *v = b->vals + slot * m;
        double before = best->proxy;
        int varies = lanes   ? split_by_lanes(b, fr, v, f, best)
                     : small ? split_by_sorting(b, fr, v, f, w, best)
                             : split_by_histogram(b, fr, v, f, w, best);
        if (best->proxy != before) memcpy(b->bestv, v, (size_t)m);
        if (!varies) found[f >> 6] |= 1ULL << (f & 63);
        visited += varies;
    }
    for (drawn = batch_end; drawn-- > 0;) {
        int64_t j = b->swaps[drawn], f = b->feat[j];
        b->feat[j] = b->feat[drawn];
        b->feat[drawn] = f;
    }
    return FM_OK;
}

static int tree_reserve(fm_tree *t, int64_t hint)
{
    if (t->n_nodes < t->cap) return FM_OK;
    int64_t cap = t->cap ? 2 * t->cap : (hint > 64 ? hint : 64), k = t->k;
#define GROW(field, type, per)                                                              \
    do {                                                                                    \
        type *p_ = fm_alloc((size_t)(cap * (per)) * sizeof(type));                          \
        if (!p_) return FM_ENOMEM;                                                          \
        if (t->field) memcpy(p_, t->field, (size_t)(t->n_nodes * (per)) * sizeof(type));    \
        fm_free(t->field);                                                                  \
        t->field = p_;                                                                      \
    } while (0)
    GROW(left, int64_t, 1); GROW(right, int64_t, 1); GROW(feature, int64_t, 1);
    GROW(n_samples, int64_t, 1); GROW(threshold, float, 1); GROW(value, float, k);
    GROW(impurity, double, 1); GROW(weighted_n, double, 1);
#undef GROW
    t->cap = cap;
    return FM_OK;
}

static int push(builder *b, frame fr)
{
    if (b->stack_len == b->stack_cap) {
        int64_t cap = b->stack_cap ? 2 * b->stack_cap : 64;
        frame *s = fm_alloc((size_t)cap * sizeof(frame));
        if (!s) return FM_ENOMEM;
        if (b->stack) memcpy(s, b->stack, (size_t)b->stack_len * sizeof(frame));
        fm_free(b->stack);
        b->stack = s;
        b->stack_cap = cap;
    }
    b->stack[b->stack_len++] = fr;
    return FM_OK;
}

/* Rows going left keep their order in place, the others follow them: a stable partition,
 * so rows stay ascending and column reads stay forward. The codes are the ones the split
 * search kept (b->bestv): read in order, where the column would cost a cache miss a row.
 * Sums the left rows' class weights into b->cl on the way. Returns the left count. */
static int64_t partition(builder *b, const frame *fr, int64_t bin)
{
    const uint8_t *v = b->bestv;
    int64_t *restrict idx = b->idx, *restrict ys = b->ys, *restrict tidx = b->tidx,
            *restrict tys = b->tys;
    float *restrict ws = b->ws, *restrict tws = b->tws;
    double *restrict cl = b->cl;
    int64_t nl = fr->start, nr = 0;
    for (int64_t c = 0; c < b->k; c++) cl[c] = 0.0;
    for (int64_t j = fr->start; j < fr->end; j++) {
        if (v[j - fr->start] <= bin) {
            idx[nl] = idx[j]; ys[nl] = ys[j]; ws[nl] = ws[j];
            cl[ys[j]] += ws[j];
            nl++;
        } else {
            tidx[nr] = idx[j]; tys[nr] = ys[j]; tws[nr] = ws[j];
            nr++;
        }
    }
    memcpy(idx + nl, tidx, (size_t)nr * sizeof(int64_t));
    memcpy(ys + nl, tys, (size_t)nr * sizeof(int64_t));
    memcpy(ws + nl, tws, (size_t)nr * sizeof(float));
    return nl - fr->start;
}

static int grow_node(builder *b, fm_tree *t, frame fr)
{
    const fm_tree_params *p = b->p;
    int64_t k = b->k, m = fr.end - fr.start;
    enum fm_criterion crit = p->criterion;
    double w = 0.0;
    for (int64_t c = 0; c < k; c++) b->ct[c] = 0.0;
    for (int64_t j = fr.start; j < fr.end; j++) b->ct[b->ys[j]] += b->ws[j];
    for (int64_t c = 0; c < k; c++) w += b->ct[c];
    double imp = impurity(b->ct, w, k, crit);

    if (tree_reserve(t, b->node_hint) != FM_OK) return FM_ENOMEM;
    int64_t id = t->n_nodes++;
    if (fr.parent >= 0) (fr.is_left ? t->left : t->right)[fr.parent] = id;
    t->left[id] = t->right[id] = FM_TREE_LEAF;
    t->feature[id] = FM_TREE_UNDEFINED;
    t->threshold[id] = (float)FM_TREE_UNDEFINED;
    t->n_samples[id] = m;
    t->weighted_n[id] = w;
    t->impurity[id] = imp;
    for (int64_t c = 0; c < k; c++)
        t->value[id * k + c] = w > 0.0 ? (float)(b->ct[c] / w) : 1.0f / (float)k;
    if (fr.depth > t->max_depth) t->max_depth = fr.depth;

    if (fr.depth >= p->max_depth || m < p->min_samples_split || m < 2 * p->min_samples_leaf ||
        imp <= DBL_EPSILON)
        return FM_OK;
    split best;
    if (find_split(b, &fr, w, &best) != FM_OK) return FM_ENOMEM;
    if (best.feature < 0) return FM_OK;

    /* the exact improvement, weighted as scikit-learn's min_impurity_decrease, from the left
     * class sums the partition adds up in its one pass over the rows (a second pass was
     * 3% of a forest fit's profile); if the gain falls short the node stays a leaf, and the order
     * of its rows no longer matters */
    int64_t nl = partition(b, &fr, best.bin);
    double wl = 0.0;
    for (int64_t c = 0; c < k; c++) { b->cr[c] = b->ct[c] - b->cl[c]; wl += b->cl[c]; }
    double wr = w - wl;
    double gain = (w / b->w_total) * (imp - wl / w * impurity(b->cl, wl, k, crit)
                                      - wr / w * impurity(b->cr, wr, k, crit));
    if (gain + DBL_EPSILON < p->min_impurity_decrease) return FM_OK;

    t->feature[id] = best.feature;
    t->threshold[id] = best.bin < b->n_edges[best.feature]
                           ? b->edges[best.feature * b->edge_stride + best.bin] : FLT_MAX;
    frame left = {fr.start, fr.start + nl, fr.depth + 1, id, 1, child_path(fr.path, 0)};
    frame right = {fr.start + nl, fr.end, fr.depth + 1, id, 0, child_path(fr.path, 1)};
    if (push(b, right) != FM_OK || push(b, left) != FM_OK) return FM_ENOMEM;
    return FM_OK;
}

void fm_tree_work_free(fm_tree_work *w)
{
    if (!w) return;
    fm_free(w->idx); fm_free(w->tidx); fm_free(w->ys); fm_free(w->tys); fm_free(w->ws);
    fm_free(w->tws); fm_free(w->hw); fm_free(w->hi); fm_free(w->hn); fm_free(w->seen); fm_free(w->ct);
    fm_free(w->yl); fm_free(w->wd); fm_free(w->wi); fm_free(w->inc); fm_free(w->lanes);
    fm_free(w->cmap); fm_free(w->feat);
    fm_free(w->swaps); fm_free(w->slot); fm_free(w->known); fm_free(w->keys); fm_free(w->vals); fm_free(w->bestv); fm_free(w->stack);
    fm_free(w);
}

fm_tree_work *fm_tree_work_new(int64_t m, int64_t d, int64_t k, int64_t small_node)
{
    if (m < 1 || d < 1 || k < 1 || small_node < 0 || small_node > FM_TREE_SMALL_MAX) return NULL;
    fm_tree_work *w = fm_alloc(sizeof *w);
    if (!w) return NULL;
    memset(w, 0, sizeof *w);
    *w = (fm_tree_work){.m_cap = m, .d = d, .k = k, .keys_cap = small_node + 1};
    w->idx = fm_alloc((size_t)m * sizeof(int64_t));
    w->tidx = fm_alloc((size_t)m * sizeof(int64_t));
    w->ys = fm_alloc((size_t)m * sizeof(int64_t));
    w->tys = fm_alloc((size_t)m * sizeof(int64_t));
    w->ws = fm_alloc((size_t)m * sizeof(float));
    w->tws = fm_alloc((size_t)m * sizeof(float));
    w->hw = fm_alloc((size_t)(2 * 256 * (k + 1)) * sizeof(double));
    w->hi = fm_alloc((size_t)(2 * 256 * (k + 1)) * sizeof(int32_t));
    w->hn = fm_alloc(256 * sizeof(int64_t));
    w->seen = fm_alloc(256);
    /* ct, cl, cr: k each; lct, lcl, lcr, hrow: k + 1 each (padded to an even count) */
    w->ct = fm_alloc((size_t)(7 * (k + 1)) * sizeof(double));
    w->yl = fm_alloc((size_t)m * sizeof(int64_t));
    w->wd = fm_alloc((size_t)m * sizeof(double));
    w->wi = fm_alloc((size_t)m * sizeof(int32_t));
    w->inc = fm_alloc((size_t)m * sizeof(uint64_t));
    w->lanes = fm_alloc(2 * 256 * LANE_WORDS * sizeof(uint64_t));
    w->cmap = fm_alloc((size_t)k * sizeof(int64_t));
    w->feat = fm_alloc((size_t)d * sizeof(int64_t));
    w->swaps = fm_alloc((size_t)d * sizeof(int64_t));
    w->slot = fm_alloc((size_t)d * sizeof(int64_t));
    w->keys = fm_alloc((size_t)w->keys_cap * sizeof(uint32_t));
    w->vals = fm_alloc((size_t)(m > ROW_BATCH * ROW_GATHER ? m : ROW_BATCH * ROW_GATHER));
    w->bestv = fm_alloc((size_t)m);
    if (!w->idx || !w->tidx || !w->ys || !w->tys || !w->ws || !w->tws || !w->hw || !w->hi ||
        !w->hn || !w->seen || !w->ct || !w->yl || !w->wd || !w->wi || !w->inc || !w->lanes || !w->cmap ||
        !w->feat || !w->swaps || !w->slot || !w->keys || !w->vals || !w->bestv) {
        fm_tree_work_free(w);
        return NULL;
    }
    /* the histogram and feature order are restored after every use */
    memset(w->hw, 0, (size_t)(2 * 256 * (k + 1)) * sizeof(double));
    memset(w->hi, 0, (size_t)(2 * 256 * (k + 1)) * sizeof(int32_t));
    memset(w->hn, 0, 256 * sizeof(int64_t));
    memset(w->seen, 0, 256);
    memset(w->lanes, 0, 2 * 256 * LANE_WORDS * sizeof(uint64_t));
    for (int64_t f = 0; f < d; f++) w->feat[f] = f;
    return w;
}

int fm_tree_build(fm_tree *t, fm_tree_work *work, const uint8_t *codes, const uint8_t *code_rows,
                  const float *edges, int64_t edge_stride,
                  const int64_t *n_edges, const int64_t *y, const int64_t *rows, const float *w,
                  int64_t n, int64_t m, int64_t d, int64_t k, const fm_tree_params *p,
                  uint64_t seed)
{
    if (m < 1 || m > work->m_cap || d != work->d || k != work->k ||
        p->small_node >= work->keys_cap || p->max_features < 1)
        return FM_EINVAL;
    builder b = {.codes = codes, .rows = code_rows, .edges = edges, .n_edges = n_edges, .p = p,
                 .n = n, .d = d, .k = k, .edge_stride = edge_stride, .seed = seed,
                 .idx = work->idx, .tidx = work->tidx, .ys = work->ys, .tys = work->tys,
                 .ws = work->ws, .tws = work->tws, .hw = work->hw, .hi = work->hi,
                 .hn = work->hn, .seen = work->seen,
                 .ct = work->ct, .cl = work->ct + k, .cr = work->ct + 2 * k,
                 .lct = work->ct + 3 * k, .lcl = work->ct + 4 * k + 1,
                 .lcr = work->ct + 5 * k + 2, .hrow = work->ct + 6 * k + 3, .yl = work->yl,
                 .wd = work->wd, .wi = work->wi, .inc = work->inc, .lanes = work->lanes,
                 .cmap = work->cmap, .feat = work->feat,
                 .swaps = work->swaps, .slot = work->slot, .known = work->known,
                 .known_cap = work->known_cap, .words = (d + 63) / 64, .keys = work->keys, .vals = work->vals, .bestv = work->bestv,
                 .stack = work->stack, .stack_cap = work->stack_cap,
                 .node_hint = work->node_hint};
    t->k = k;
    b.whole = 1;
    for (int64_t j = 0; j < m; j++) {
        b.idx[j] = rows[j];
        b.ys[j] = y[rows[j]];
        b.ws[j] = w[j];
        b.w_total += w[j];
        b.whole &= w[j] == floorf(w[j]);
    }
    b.whole &= b.w_total <= (double)INT32_MAX;
    b.pure_is_final = b.whole && p->criterion == FM_GINI && b.w_total <= 131072.0;
    int status = push(&b, (frame){0, m, 0, -1, 0, 1});
    while (b.stack_len > 0 && status == FM_OK) {
        if (p->stop && *p->stop) status = FM_EINTR;
        else status = grow_node(&b, t, b.stack[--b.stack_len]);
    }
    work->known = b.known;
    work->known_cap = b.known_cap;
    work->stack = b.stack;
    work->stack_cap = b.stack_cap;
    work->node_hint = t->n_nodes + t->n_nodes / 8;
    return status;
}
