/* tree.c: CART classification trees on binned features: the depth-first builder, the node
 * array and the partition of a node's rows; the split search is tree_split.c.
 * Not here: binning (tree_bins.c); bagging, threads over trees and prediction (forest.c). */
#include "trees/tree.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/common.h"
#include "trees/tree_split.h"

void fm_tree_free(fm_tree *t)
{
    fm_free(t->left); fm_free(t->right); fm_free(t->feature); fm_free(t->n_samples);
    fm_free(t->threshold); fm_free(t->value); fm_free(t->impurity); fm_free(t->weighted_n);
    memset(t, 0, sizeof *t);
}

/* ---- the builder ------------------------------------------------------------------- */
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
static uint64_t child_path(uint64_t path, int right)
{
    uint64_t x = path ^ (right ? 0xA5A5A5A5DEADBEEFULL : 0x5A5A5A5A0BADF00DULL);
    return fm_splitmix64(&x);
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
        w < 2.0 * b->min_weight_leaf || imp <= DBL_EPSILON)
        return FM_OK;
    split best;
    if (fm_tree_find_split(b, &fr, w, &best) != FM_OK) return FM_ENOMEM;
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
    enum fm_kernel kernel = p->kernel == FM_KERNEL_AUTO ? fm_tree_best_kernel() : p->kernel;
    if (m < 1 || m > work->m_cap || d != work->d || k != work->k ||
        p->small_node >= work->keys_cap || p->max_features < 1 ||
        !(p->min_weight_fraction_leaf >= 0.0 && p->min_weight_fraction_leaf <= 0.5) ||
        (kernel != FM_KERNEL_PORTABLE && kernel != fm_tree_best_kernel()))
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
    b.min_weight_leaf = p->min_weight_fraction_leaf * b.w_total;
    b.pure_is_final = b.whole && p->criterion == FM_GINI && b.w_total <= 131072.0;
    b.avx2 = kernel == FM_KERNEL_AVX2;
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
