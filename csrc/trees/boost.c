/* boost.c: multiclass gradient boosting (boost.h): softmax gradients, one tree per class a
 * round grown leaf-wise on histograms (the roots' of every class in one pass over the rows,
 * the larger child's by subtraction), each tree by one thread; and the prediction walk.
 * Not here: the histogram and scan kernels (boost_hist.c).
 *
 * One tree per class rather than one tree with a vector of k leaf values (CatBoost's
 * MultiClass): measured with XGBoost 3.2's two strategies (hist, 31 leaves, learning rate
 * 0.1, one thread) on 12,000 study training images, 5,000 test images: per-class trees
 * 0.848 / 0.866 / 0.869 after 20 / 40 / 60 rounds in 145 s, vector leaves 0.822 / 0.842 /
 * 0.856 in 245 s. A vector tree has one partition for all classes, so its 31 leaves fit
 * the classes worse than 10 x 31 do; and per-class trees are LightGBM's, the yardstick. */
#include "trees/boost.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/cpu.h"
#include "core/parallel.h"
#include "trees/boost_hist.h"
#include "trees/tree.h"

enum fm_kernel fm_boost_best_kernel(void)
{
    return fm_cpu_has(FM_CPU_AVX512BW) ? FM_KERNEL_AVX512 : FM_KERNEL_PORTABLE;
}

/* A leaf while its tree grows: its rows idx[start..end), its sums (g, h, count), the
 * histogram slot it keeps (-1: none) and its best split. */
typedef struct {
    int64_t start, end, depth, node, slot, feature, bin;
    double sum[3], left[3], score, gain;
} leaf;

/* One thread's scratch for growing a tree. */
typedef struct {
    double *slots;     /* (n_slots + 1, total_bins, 2): the last slot is a spare */
    int *free_slot;    /* stack of free slot ids */
    int n_free;
    double *scan;      /* (FM_BOOST_SCAN_SCRATCH) */
    int64_t *idx, *tmp; /* (n): the tree's rows, grouped by leaf; (max(n, d)): scratch */
    double *ogh;       /* (n, 2): a leaf's gradients in the order of its rows */
    leaf *leaves;      /* (num_leaves) */
    int64_t *feats, *node_feats; /* (d) */
} thread_work;

struct fm_boost_work {
    int64_t n, d, k, num_leaves, total_bins, n_slots;
    int n_threads;
    int64_t *hoff;   /* (d + 1): feature f's bins are hoff[f] .. hoff[f] + nbins[f) */
    int64_t *nbins;  /* (d) */
    double *gh;      /* (k, n, 2): every row's (g, h) per class */
    int64_t *bag;    /* (n): this round's rows, ascending */
    uint8_t *in_bag; /* (n) */
    double *delta;   /* (n, k): this round's leaf value of each row */
    /* the roots' histograms of every class in one pass (fm_boost_hist_root), or NULL
     * (k > FM_BOOST_ROOT_MAX_K or no root_pass): comb (total_bins, stride) and ghr
     * (n, stride), each row's (g, h) of every class, zero-padded to stride = 2k rounded
     * up to 8 */
    double *comb, *ghr;
    int64_t stride;
    thread_work *tw;
};

/* histogram slots a thread keeps: one per leaf, within 256 MB */
#define SLOT_BUDGET ((int64_t)256 << 20)

static void thread_work_free(thread_work *t)
{
    fm_free(t->slots); fm_free(t->free_slot); fm_free(t->scan);
    fm_free(t->idx); fm_free(t->tmp); fm_free(t->ogh); fm_free(t->leaves); fm_free(t->feats);
    fm_free(t->node_feats);
}

void fm_boost_work_free(fm_boost_work *w)
{
    if (!w) return;
    if (w->tw)
        for (int t = 0; t < w->n_threads; t++) thread_work_free(&w->tw[t]);
    fm_free(w->tw); fm_free(w->hoff); fm_free(w->nbins); fm_free(w->gh); fm_free(w->bag); fm_free(w->in_bag);
    fm_free(w->delta); fm_free(w->comb); fm_free(w->ghr);
    fm_free(w);
}

fm_boost_work *fm_boost_work_new(const int64_t *n_edges, int64_t n, int64_t d, int64_t k,
                                 int64_t num_leaves, int root_pass, int nthreads)
{
    fm_boost_work *w = fm_alloc(sizeof *w);
    if (!w) return NULL;
    memset(w, 0, sizeof *w);
    w->n = n; w->d = d; w->k = k; w->num_leaves = num_leaves;
    w->n_threads = FM_NTHREADS(nthreads);
    if (w->n_threads > k) w->n_threads = (int)k;
    w->hoff = fm_alloc((size_t)(d + 1) * sizeof(int64_t));
    w->nbins = fm_alloc((size_t)d * sizeof(int64_t));
    w->gh = fm_alloc((size_t)(k * n * FM_BOOST_LANES) * sizeof(double));
    w->bag = fm_alloc((size_t)n * sizeof(int64_t));
    w->in_bag = fm_alloc((size_t)n);
    w->delta = fm_alloc((size_t)(n * k) * sizeof(double));
    w->tw = fm_alloc((size_t)w->n_threads * sizeof(thread_work));
    if (!w->hoff || !w->nbins || !w->gh || !w->bag || !w->in_bag || !w->delta || !w->tw) goto fail;
    memset(w->tw, 0, (size_t)w->n_threads * sizeof(thread_work));
    fm_boost_layout(w->hoff, w->nbins, n_edges, d);
    w->total_bins = w->hoff[d];
    if (root_pass && k <= FM_BOOST_ROOT_MAX_K) {
        w->stride = FM_BOOST_ROOT_STRIDE(k);
        w->comb = fm_alloc((size_t)(w->total_bins * w->stride) * sizeof(double));
        w->ghr = fm_alloc((size_t)(n * w->stride) * sizeof(double));
        if (!w->comb || !w->ghr) goto fail;
        memset(w->ghr, 0, (size_t)(n * w->stride) * sizeof(double)); /* the padding stays 0 */
    }
    int64_t slot_bytes = w->total_bins * FM_BOOST_LANES * (int64_t)sizeof(double);
    w->n_slots = SLOT_BUDGET / slot_bytes < num_leaves ? SLOT_BUDGET / slot_bytes : num_leaves;
    if (w->n_slots < 1) w->n_slots = 1;
    for (int t = 0; t < w->n_threads; t++) {
        thread_work *tw = &w->tw[t];
        tw->slots = fm_alloc((size_t)((w->n_slots + 1) * slot_bytes));
        tw->free_slot = fm_alloc((size_t)w->n_slots * sizeof(int));
        tw->scan = fm_alloc(FM_BOOST_SCAN_SCRATCH * sizeof(double));
        tw->idx = fm_alloc((size_t)n * sizeof(int64_t));
        tw->tmp = fm_alloc((size_t)(n > d ? n : d) * sizeof(int64_t));
        tw->ogh = fm_alloc((size_t)(n * FM_BOOST_LANES) * sizeof(double));
        tw->leaves = fm_alloc((size_t)num_leaves * sizeof(leaf));
        tw->feats = fm_alloc((size_t)d * sizeof(int64_t));
        tw->node_feats = fm_alloc((size_t)d * sizeof(int64_t));
        if (!tw->slots || !tw->free_slot || !tw->scan || !tw->idx || !tw->tmp ||
            !tw->ogh || !tw->leaves || !tw->feats || !tw->node_feats)
            goto fail;
    }
    return w;
fail:
    fm_boost_work_free(w);
    return NULL;
}

/* ---- one tree ------------------------------------------------------------------------ */

typedef struct {
    const fm_boost_work *w;
    thread_work *t;
    const uint8_t *codes, *code_rows;
    const double *gh; /* (n, 2) this class's */
    const double *root; /* every class's root histograms (fm_boost_hist_root), or NULL */
    const fm_boost_params *p;
    fm_boost_limits lim;
    uint64_t seed;   /* the tree's */
    int64_t n_feats;
    enum fm_kernel kernel;
} grower;

static double *slot_at(const grower *g, int64_t slot)
{
    return g->t->slots + (size_t)slot * (size_t)(g->w->total_bins * FM_BOOST_LANES);
}

static int64_t slot_take(grower *g)
{
    return g->t->n_free > 0 ? g->t->free_slot[--g->t->n_free] : -1;
}

static void slot_give(grower *g, leaf *lf)
{
    if (lf->slot >= 0) g->t->free_slot[g->t->n_free++] = (int)lf->slot;
    lf->slot = -1;
}

/* k of the n values in from[] (ascending), drawn with rng, into to[] ascending. */
static int64_t draw_features(int64_t *to, const int64_t *from, int64_t n, double frac, fm_rng *rng,
                             int64_t *scratch)
{
    int64_t want = (int64_t)(frac * (double)n + 0.5);
    if (want < 1) want = 1;
    if (want >= n) {
        memcpy(to, from, (size_t)n * sizeof(int64_t));
        return n;
    }
    memcpy(scratch, from, (size_t)n * sizeof(int64_t));
    for (int64_t i = 0; i < want; i++) { /* partial Fisher-Yates, then sort the pick */
        int64_t j = i + (int64_t)fm_rng_below(rng, (uint64_t)(n - i)), v = scratch[j];
        scratch[j] = scratch[i];
        scratch[i] = v;
    }
    for (int64_t i = 1; i < want; i++) {
        int64_t v = scratch[i], j = i - 1;
        while (j >= 0 && scratch[j] > v) { scratch[j + 1] = scratch[j]; j--; }
        scratch[j + 1] = v;
    }
    memcpy(to, scratch, (size_t)want * sizeof(int64_t));
    return want;
}

static double leaf_score(const double *sum, double lambda)
{
    return sum[0] * sum[0] / (sum[1] + lambda);
}

/* The leaf's histogram into `hist`: the tree's features' bins from its rows; and parent
 * (or NULL) -= it, the sibling's histogram. */
static void build_hist(grower *g, const leaf *lf, double *hist, double *parent,
                       int root_in_order)
{
    int64_t m = lf->end - lf->start;
    const int64_t *rows = g->t->idx + lf->start;
    const double *gh = g->gh;
    if (!root_in_order) {
        double *o = g->t->ogh;
        for (int64_t j = 0; j < m; j++) {
            o[2 * j] = g->gh[2 * rows[j]];
            o[2 * j + 1] = g->gh[2 * rows[j] + 1];
        }
        gh = o;
    }
    fm_boost_hist_build(hist, parent, g->code_rows, root_in_order ? NULL : rows, gh, g->t->feats,
                        g->w->hoff, g->w->nbins, m, g->w->d, g->n_feats, g->kernel);
}

/* The best split of a leaf whose histogram is `hist`, among the node's features. */
static void find_split(grower *g, leaf *lf, const double *hist)
{
    const fm_boost_work *w = g->w;
    const fm_boost_params *p = g->p;
    lf->feature = -1;
    lf->gain = 0.0;
    lf->score = -INFINITY;
    if (lf->depth >= p->max_depth || lf->sum[2] < 2.0 * g->lim.min_count) return;
    int64_t nf = g->n_feats;
    const int64_t *feats = g->t->feats;
    if (p->colsample_bynode < 1.0) {
        fm_rng rng;
        fm_rng_seed(&rng, g->seed, (uint64_t)lf->node + 1);
        nf = draw_features(g->t->node_feats, feats, nf, p->colsample_bynode, &rng, g->t->tmp);
        feats = g->t->node_feats;
    }
    fm_boost_scan_features(&lf->score, &lf->bin, lf->left, &lf->feature, hist, feats, w->hoff,
                           w->nbins, nf, lf->sum, &g->lim, g->t->scan, g->kernel);
    if (lf->feature < 0) return;
    lf->gain = lf->score - leaf_score(lf->sum, g->lim.lambda);
    if (!(lf->gain > p->min_split_gain)) lf->feature = -1;
}

static void set_leaf_node(fm_boost_tree *tr, const leaf *lf)
{
    int64_t i = lf->node;
    tr->left[i] = tr->right[i] = FM_TREE_LEAF;
    tr->feature[i] = tr->bin[i] = FM_TREE_UNDEFINED;
    tr->threshold[i] = (float)FM_TREE_UNDEFINED;
    tr->gain[i] = 0.0;
    tr->value[i] = 0.0f;
    tr->count[i] = (int64_t)lf->sum[2];
    tr->hess[i] = lf->sum[1];
}

/* Histograms and best splits of two new leaves a, b (a the smaller) of a parent whose
 * slot is `parent_slot` (-1: none, both are built). */
static void children(grower *g, leaf *a, leaf *b, int64_t parent_slot)
{
    double *spare = slot_at(g, g->w->n_slots);
    a->slot = slot_take(g);
    double *ha = a->slot >= 0 ? slot_at(g, a->slot) : spare;
    if (parent_slot >= 0) {
        b->slot = parent_slot;
        double *hb = slot_at(g, b->slot);
        build_hist(g, a, ha, hb, 0); /* and hb = the parent's - a's */
        find_split(g, a, ha);
        find_split(g, b, hb);
    } else {
        build_hist(g, a, ha, NULL, 0);
        find_split(g, a, ha);
        b->slot = slot_take(g);
        double *hb = b->slot >= 0 ? slot_at(g, b->slot) : spare;
        build_hist(g, b, hb, NULL, 0);
        find_split(g, b, hb);
    }
    if (a->feature < 0) slot_give(g, a);
    if (b->feature < 0) slot_give(g, b);
}

/* Grow class c's tree on the bag; every bagged row's leaf value into delta[:, c]. */
static int grow_tree(fm_boost_tree *tr, grower *g, const float *edges, int64_t edge_stride,
                     int64_t m, int64_t c, double *delta)
{
    const fm_boost_work *w = g->w;
    const fm_boost_params *p = g->p;
    thread_work *t = g->t;
    int64_t n = w->n, d = w->d, k = w->k;
    memcpy(t->idx, w->bag, (size_t)m * sizeof(int64_t));
    t->n_free = (int)w->n_slots;
    for (int s = 0; s < t->n_free; s++) t->free_slot[s] = (int)w->n_slots - 1 - s;
    for (int64_t f = 0; f < d; f++) t->node_feats[f] = f;
    g->n_feats = d;
    if (p->colsample_bytree < 1.0) {
        fm_rng rng;
        fm_rng_seed(&rng, g->seed, 0);
        g->n_feats = draw_features(t->feats, t->node_feats, d, p->colsample_bytree, &rng, t->tmp);
    } else {
        memcpy(t->feats, t->node_feats, (size_t)d * sizeof(int64_t));
    }
    leaf *lv = t->leaves;
    leaf *root = &lv[0];
    memset(root, 0, sizeof *root);
    root->end = m;
    for (int64_t j = 0; j < m; j++) {
        const double *x = g->gh + FM_BOOST_LANES * t->idx[j];
        root->sum[0] += x[0];
        root->sum[1] += x[1];
    }
    root->sum[2] = (double)m;
    root->slot = slot_take(g);
    tr->n_nodes = 1;
    set_leaf_node(tr, root);
    if (p->num_leaves > 1) {
        double *h = slot_at(g, root->slot);
        if (g->root)
            fm_boost_hist_root_class(h, g->root, w->stride, c, root->sum, w->hoff, w->nbins, d);
        else
            build_hist(g, root, h, NULL, m == n);
        find_split(g, root, h);
        if (root->feature < 0) slot_give(g, root);
    }
    int64_t n_leaves = 1;
    while (n_leaves < p->num_leaves) {
        if (p->stop && *p->stop) return FM_EINTR;
        int64_t best = -1;
        for (int64_t i = 0; i < n_leaves; i++)
            if (lv[i].feature >= 0 && (best < 0 || lv[i].gain > lv[best].gain)) best = i;
        if (best < 0) break;
        leaf *lf = &lv[best], *rt = &lv[n_leaves];
        int64_t f = lf->feature, bin = lf->bin, node = lf->node;
        /* stable partition: left rows first, both halves stay ascending */
        const uint8_t *col = g->codes + f * n;
        int64_t nl = 0, nr = 0;
        for (int64_t j = lf->start; j < lf->end; j++) {
            int64_t r = t->idx[j];
            if (col[r] <= bin) t->idx[lf->start + nl++] = r;
            else t->tmp[nr++] = r;
        }
        memcpy(t->idx + lf->start + nl, t->tmp, (size_t)nr * sizeof(int64_t));
        int64_t li = tr->n_nodes, ri = tr->n_nodes + 1;
        tr->n_nodes += 2;
        tr->left[node] = li;
        tr->right[node] = ri;
        tr->feature[node] = f;
        tr->bin[node] = bin;
        tr->threshold[node] = edges[f * edge_stride + bin];
        tr->gain[node] = lf->gain;
        int64_t parent_slot = lf->slot, depth = lf->depth + 1;
        double ls[3] = {lf->left[0], lf->left[1], lf->left[2]};
        double rs[3] = {lf->sum[0] - ls[0], lf->sum[1] - ls[1], lf->sum[2] - ls[2]};
        *rt = (leaf){lf->start + nl, lf->end, depth, ri, -1, -1, 0, {rs[0], rs[1], rs[2]},
                     {0, 0, 0}, -INFINITY, 0.0};
        *lf = (leaf){lf->start, lf->start + nl, depth, li, -1, -1, 0, {ls[0], ls[1], ls[2]},
                     {0, 0, 0}, -INFINITY, 0.0};
        rt->sum[2] = (double)nr; /* the rows themselves, where the scan's counts are estimates */
        lf->sum[2] = (double)nl;
        set_leaf_node(tr, lf);
        set_leaf_node(tr, rt);
        n_leaves++;
        if (n_leaves < p->num_leaves) { /* the last split's children are not split again */
            if (nl <= nr) children(g, lf, rt, parent_slot);
            else children(g, rt, lf, parent_slot);
        } else if (parent_slot >= 0) {
            t->free_slot[t->n_free++] = (int)parent_slot;
        }
    }
    for (int64_t i = 0; i < n_leaves; i++) {
        const leaf *lf = &lv[i];
        float v = (float)(-lf->sum[0] / (lf->sum[1] + g->lim.lambda) * p->learning_rate);
        if (!isfinite(v)) return FM_EDIVERGED; /* a learning rate far too large */
        tr->value[lf->node] = v;
        for (int64_t j = lf->start; j < lf->end; j++) delta[t->idx[j] * k + c] = (double)v;
    }
    return FM_OK;
}

/* The leaf value of row i in a tree, walking the bin codes. */
static float walk_codes(const fm_boost_tree *tr, const uint8_t *codes, int64_t n, int64_t i)
{
    int64_t j = 0;
    while (tr->left[j] >= 0)
        j = codes[tr->feature[j] * n + i] <= tr->bin[j] ? tr->left[j] : tr->right[j];
    return tr->value[j];
}

/* ---- one round ----------------------------------------------------------------------- */

/* gh[c][i] = (w (p_c - [y_i = c]), w k/(k-1) p_c (1 - p_c)), p = softmax(score_i):
 * LightGBM's multiclass hessian, scaled so a one-hot start is not over-confident. */
static void gradients(fm_boost_work *w, const double *score, const int64_t *y, const float *sw,
                      int nt)
{
    int64_t n = w->n, k = w->k;
    double factor = (double)k / (double)(k - 1 > 0 ? k - 1 : 1);
    double *gh = w->gh;
    fm_parallel_region reg = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&reg);
        double pr[256];
        FM_OMP(omp for schedule(static))
        for (int64_t i = 0; i < n; i++) {
            const double *s = score + i * k;
            double mx = s[0], z = 0.0, wi = sw ? (double)sw[i] : 1.0;
            for (int64_t c = 1; c < k; c++) mx = s[c] > mx ? s[c] : mx;
            for (int64_t c = 0; c < k; c++) z += (pr[c] = exp(s[c] - mx));
            for (int64_t c = 0; c < k; c++) {
                double pc = pr[c] / z;
                double *x = gh + FM_BOOST_LANES * (c * n + i), h = wi * factor * pc * (1.0 - pc);
                x[0] = wi * (pc - (y[i] == c ? 1.0 : 0.0));
                x[1] = h > 1e-16 ? h : 1e-16;
                if (w->ghr) memcpy(w->ghr + i * w->stride + FM_BOOST_LANES * c, x, 2 * sizeof(double));
            }
        }
    }
    fm_parallel_join(&reg);
}

static uint64_t round_seed(uint64_t seed, int64_t round, int64_t task)
{
    uint64_t x = seed ^ ((uint64_t)round * 0x9E3779B97F4A7C15ULL) ^
                 ((uint64_t)task * 0xD1B54A32D192ED03ULL);
    return fm_splitmix64(&x);
}

int fm_boost_round(fm_boost_tree *trees, double *score, fm_boost_work *w,
                   const uint8_t *codes, const uint8_t *code_rows, const float *edges, int64_t edge_stride,
                   const int64_t *n_edges, const int64_t *y, const float *sw, int64_t n,
                   int64_t d, int64_t k, const fm_boost_params *p, uint64_t seed,
                   int64_t round, int nthreads)
{
    (void)n_edges;
    if (n != w->n || d != w->d || k != w->k || k > 256 || p->num_leaves > w->num_leaves ||
        p->num_leaves < 2)
        return FM_EINVAL;
    enum fm_kernel kernel = p->kernel == FM_KERNEL_AUTO ? fm_boost_best_kernel() : p->kernel;
    if (kernel == FM_KERNEL_AVX512 && fm_boost_best_kernel() != FM_KERNEL_AVX512) return FM_EINVAL;
    if (kernel != FM_KERNEL_AVX512) kernel = FM_KERNEL_PORTABLE;
    int nt = fm_parallel_threads(nthreads);
    if (nt > w->n_threads) nt = w->n_threads;
    gradients(w, score, y, sw, fm_parallel_threads_for(n * k, 4096, nt));
    int64_t m = 0;
    if (p->subsample < 1.0) {
        fm_rng rng;
        fm_rng_seed(&rng, round_seed(seed, round, 0), 0);
        for (int64_t i = 0; i < n; i++) {
            w->in_bag[i] = fm_rng_uniform(&rng) < (float)p->subsample;
            if (w->in_bag[i]) w->bag[m++] = i;
        }
        if (m == 0) { w->bag[m++] = 0; w->in_bag[0] = 1; }
    } else {
        for (int64_t i = 0; i < n; i++) w->bag[i] = i;
        m = n;
    }
    /* every class's root histogram in one pass, the features' blocks among the threads */
    const double *root = NULL;
    if (w->comb && p->colsample_bytree >= 1.0) {
        int64_t nblocks = (d + FM_BOOST_ROOT_BLOCK - 1) / FM_BOOST_ROOT_BLOCK;
        fm_parallel_region reg = fm_parallel_fork();
        FM_OMP(omp parallel num_threads(nt) if (nt > 1))
        {
            fm_parallel_arrive(&reg);
            FM_OMP(omp for schedule(dynamic, 1))
            for (int64_t b = 0; b < nblocks; b++) {
                int64_t f1 = (b + 1) * FM_BOOST_ROOT_BLOCK;
                fm_boost_hist_root(w->comb, code_rows, m < n ? w->bag : NULL, w->ghr, w->stride,
                                   w->hoff, m, d, b * FM_BOOST_ROOT_BLOCK, f1 < d ? f1 : d, kernel);
            }
        }
        fm_parallel_join(&reg);
        root = w->comb;
    }
    int status = FM_OK;
    FM_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1))
    for (int64_t c = 0; c < k; c++) {
        int s;
        FM_OMP(omp atomic read)
        s = status;
        if (s != FM_OK) continue;
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        grower g = {w, &w->tw[tid], codes, code_rows, w->gh + FM_BOOST_LANES * c * n, root, p,
                    {(double)p->min_child_samples, p->min_child_weight, p->reg_lambda},
                    round_seed(seed, round, c + 1), 0, kernel};
        s = grow_tree(&trees[c], &g, edges, edge_stride, m, c, w->delta);
        if (s == FM_OK && m < n)
            for (int64_t i = 0; i < n; i++)
                if (!w->in_bag[i]) w->delta[i * k + c] = (double)walk_codes(&trees[c], codes, n, i);
        if (s != FM_OK) {
            FM_OMP(omp atomic write)
            status = s;
        }
    }
    if (status != FM_OK) return status;
    for (int64_t j = 0; j < n * k; j++) score[j] += w->delta[j];
    return FM_OK;
}

/* ---- prediction ---------------------------------------------------------------------- */

typedef struct {
    int32_t left, right, feature;
    float threshold;
} packed_node;

#define PREDICT_BLOCK 64

int fm_boost_predict(double *out, const float *x, const int64_t *left, const int64_t *right,
                     const int64_t *feature, const float *threshold, const float *value,
                     const int64_t *offsets, const double *base, const int64_t *stages,
                     int64_t n, int64_t d, int64_t k, int64_t n_trees, int64_t n_stages,
                     int nthreads)
{
    int64_t n_nodes = offsets[n_trees];
    if (n_nodes > INT32_MAX) return FM_EINVAL;
    packed_node *pk = fm_alloc((size_t)n_nodes * sizeof(packed_node));
    if (!pk) return FM_ENOMEM;
    for (int64_t j = 0; j < n_nodes; j++)
        pk[j] = (packed_node){(int32_t)left[j], (int32_t)right[j],
                              left[j] < 0 ? 0 : (int32_t)feature[j], threshold[j]};
    int64_t n_blocks = (n + PREDICT_BLOCK - 1) / PREDICT_BLOCK;
    int nt = fm_parallel_threads_for(n, PREDICT_BLOCK, nthreads);
    int status = FM_OK;
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        double *acc = fm_alloc((size_t)(PREDICT_BLOCK * k) * sizeof(double));
        if (!acc) {
            FM_OMP(omp atomic write)
            status = FM_ENOMEM;
        }
        FM_OMP(omp for schedule(dynamic, 4))
        for (int64_t blk = 0; blk < n_blocks; blk++) {
            if (!acc) continue;
            int64_t i0 = blk * PREDICT_BLOCK, rows = n - i0 < PREDICT_BLOCK ? n - i0 : PREDICT_BLOCK;
            for (int64_t r = 0; r < rows; r++) memcpy(acc + r * k, base, (size_t)k * sizeof(double));
            int64_t s = 0;
            for (int64_t t = 0; t <= n_trees; t++) {
                if (t % k == 0)
                    for (; s < n_stages && stages[s] * k == t; s++)
                        for (int64_t r = 0; r < rows; r++)
                            memcpy(out + (s * n + i0 + r) * k, acc + r * k, (size_t)k * sizeof(double));
                if (t == n_trees) break;
                const packed_node *tree = pk + offsets[t];
                const float *val = value + offsets[t];
                int64_t c = t % k;
                for (int64_t r = 0; r < rows; r++) {
                    const float *xr = x + (i0 + r) * d;
                    int32_t j = 0;
                    while (tree[j].left >= 0)
                        j = xr[tree[j].feature] <= tree[j].threshold ? tree[j].left : tree[j].right;
                    acc[r * k + c] += (double)val[j];
                }
            }
        }
        fm_free(acc);
    }
    fm_free(pk);
    return status;
}
