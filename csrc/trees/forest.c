/* forest.c: bagging of CART trees (tree.c) with OpenMP over trees, and the prediction
 * walks: averaged class distributions, leaf ids, out-of-bag sums. Not here: split search. */
#include "trees/forest.h"

#include <string.h>

#include "core/common.h"

uint64_t fm_forest_tree_seed(uint64_t seed, int64_t t)
{
    uint64_t x = seed ^ ((uint64_t)t * 0xD1B54A32D192ED03ULL) ^ 0x7F4A7C159E3779B9ULL;
    return fm_splitmix64(&x);
}

void fm_forest_bootstrap(int32_t *counts, uint64_t seed, int64_t t, int64_t n, int64_t n_draw)
{
    fm_rng rng;
    fm_rng_seed(&rng, fm_forest_tree_seed(seed, t), 0);
    memset(counts, 0, (size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n_draw; i++) counts[fm_rng_below(&rng, (uint64_t)n)]++;
}

/* Rows and weights of tree t: the bootstrap's distinct rows ascending, weight multiplicity
 * times sw; returns how many. */
static int64_t tree_rows(int64_t *rows, float *w, int32_t *counts, const float *sw,
                         uint64_t seed, int64_t t, int64_t n, int64_t n_draw)
{
    int64_t m = 0;
    if (n_draw <= 0) {
        for (int64_t i = 0; i < n; i++) { rows[i] = i; w[i] = sw ? sw[i] : 1.0f; }
        return n;
    }
    fm_forest_bootstrap(counts, seed, t, n, n_draw);
    for (int64_t i = 0; i < n; i++)
        if (counts[i] > 0) {
            rows[m] = i;
            w[m++] = (float)counts[i] * (sw ? sw[i] : 1.0f);
        }
    return m;
}

int fm_forest_fit(fm_tree *trees, const uint8_t *codes, const uint8_t *code_rows,
                  const float *edges,
                  int64_t edge_stride, const int64_t *n_edges, const int64_t *y,
                  const float *sw, int64_t n, int64_t d, int64_t k, const fm_tree_params *p,
                  uint64_t seed, int64_t first_tree, int64_t n_trees, int64_t n_draw,
                  int64_t *done, int nthreads)
{
    int status = FM_OK;
#pragma omp parallel num_threads(FM_NTHREADS(nthreads))
    {
        int64_t *rows = fm_alloc((size_t)n * sizeof(int64_t));
        float *w = fm_alloc((size_t)n * sizeof(float));
        int32_t *counts = fm_alloc((size_t)n * sizeof(int32_t));
        fm_tree_work *work = fm_tree_work_new(n, d, k, p->small_node);
        if (!rows || !w || !counts || !work) {
#pragma omp atomic write
            status = FM_ENOMEM;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < n_trees; i++) {
            int s;
#pragma omp atomic read
            s = status;
            if (s != FM_OK) continue;
            int64_t t = first_tree + i;
            int64_t m = tree_rows(rows, w, counts, sw, seed, t, n, n_draw);
            s = fm_tree_build(&trees[i], work, codes, code_rows, edges, edge_stride, n_edges, y, rows, w, n, m,
                              d, k, p, fm_forest_tree_seed(seed, t));
            if (s != FM_OK) {
#pragma omp atomic write
                status = s;
            } else if (done) {
#pragma omp atomic update
                *done += 1;
            }
        }
        fm_free(rows);
        fm_free(w);
        fm_free(counts);
        fm_tree_work_free(work);
    }
    return status;
}

int64_t fm_forest_check(const int64_t *left, const int64_t *right, const int64_t *feature,
                        const int64_t *offsets, int64_t n_trees, int64_t n_nodes, int64_t d)
{
    if (offsets[0] != 0 || offsets[n_trees] != n_nodes) return 0;
    for (int64_t t = 0; t < n_trees; t++) {
        int64_t base = offsets[t], size = offsets[t + 1] - base;
        if (size < 1 || offsets[t + 1] > n_nodes) return base;
        for (int64_t j = 0; j < size; j++) {
            int64_t l = left[base + j], r = right[base + j];
            if (l == FM_TREE_LEAF && r == FM_TREE_LEAF) continue;
            if (l <= j || l >= size || r <= j || r >= size || feature[base + j] < 0 ||
                feature[base + j] >= d)
                return base + j;
        }
    }
    return -1;
}

/* A node as the walk reads it: one 16-byte load instead of four arrays. */
typedef struct {
    int32_t left, right, feature;
    float threshold;
} packed_node;

static packed_node *pack(const int64_t *left, const int64_t *right, const int64_t *feature,
                         const float *threshold, int64_t n_nodes, int nthreads)
{
    packed_node *p = fm_alloc((size_t)n_nodes * sizeof(packed_node));
    if (!p) return NULL;
#pragma omp parallel for schedule(static) num_threads(FM_NTHREADS(nthreads))
    for (int64_t j = 0; j < n_nodes; j++)
        p[j] = (packed_node){(int32_t)left[j], (int32_t)right[j],
                             left[j] < 0 ? 0 : (int32_t)feature[j], threshold[j]};
    return p;
}

static inline int64_t walk_packed(const float *x, const packed_node *t, int64_t node,
                                  int64_t *depth, int64_t limit)
{
    while (*depth < limit && t[node].left >= 0) {
        packed_node q = t[node];
        node = x[q.feature] <= q.threshold ? q.left : q.right;
        ++*depth;
    }
    return node;
}

/* The node x reaches from `node` (tree-local) going at most to depth `limit`. */
static inline int64_t walk(const float *x, const int64_t *left, const int64_t *right,
                           const int64_t *feature, const float *threshold, int64_t node,
                           int64_t *depth, int64_t limit)
{
    while (*depth < limit && left[node] >= 0) {
        node = x[feature[node]] <= threshold[node] ? left[node] : right[node];
        ++*depth;
    }
    return node;
}

#define PREDICT_BLOCK 64 /* samples walked through one tree before the next tree */

int fm_forest_predict(double *out, const float *x, const int64_t *left, const int64_t *right,
                      const int64_t *feature, const float *threshold, const float *value,
                      const int64_t *offsets, const int64_t *depths, int64_t n, int64_t d,
                      int64_t k, int64_t n_trees, int64_t n_depths, int nthreads)
{
    if (offsets[n_trees] > INT32_MAX) return FM_EINVAL;
    /* Packing every node of the forest pays off over a block of samples; fewer samples
     * (a deployed model's one image) walk the arrays as they are, on one thread: the same
     * nodes reached, and no pass over millions of nodes or thread wake-up per call. */
    packed_node *nodes = NULL;
    if (n >= PREDICT_BLOCK && !(nodes = pack(left, right, feature, threshold, offsets[n_trees],
                                              nthreads)))
        return FM_ENOMEM;
    int64_t n_blocks = (n + PREDICT_BLOCK - 1) / PREDICT_BLOCK;
    double scale = n_trees > 0 ? 1.0 / (double)n_trees : 0.0;
#pragma omp parallel for schedule(dynamic, 4) num_threads(FM_NTHREADS(n_blocks > 1 ? nthreads : 1))
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        int64_t i0 = blk * PREDICT_BLOCK, i1 = i0 + PREDICT_BLOCK < n ? i0 + PREDICT_BLOCK : n;
        for (int64_t j = 0; j < n_depths; j++)
            memset(out + (j * n + i0) * k, 0, (size_t)((i1 - i0) * k) * sizeof(double));
        for (int64_t t = 0; t < n_trees; t++) {
            int64_t base = offsets[t];
            const float *v = value + base * k;
            for (int64_t i = i0; i < i1; i++) {
                int64_t node = 0, depth = 0;
                for (int64_t j = 0; j < n_depths; j++) {
                    node = nodes ? walk_packed(x + i * d, nodes + base, node, &depth, depths[j])
                                 : walk(x + i * d, left + base, right + base, feature + base,
                                        threshold + base, node, &depth, depths[j]);
                    double *o = out + (j * n + i) * k;
                    const float *vn = v + node * k;
                    for (int64_t c = 0; c < k; c++) o[c] += vn[c];
                }
            }
        }
        for (int64_t j = 0; j < n_depths; j++)
            for (int64_t q = (j * n + i0) * k; q < (j * n + i1) * k; q++) out[q] *= scale;
    }
    fm_free(nodes);
    return FM_OK;
}

void fm_forest_apply(int64_t *out, const float *x, const int64_t *left, const int64_t *right,
                     const int64_t *feature, const float *threshold, const int64_t *offsets,
                     int64_t max_depth, int64_t n, int64_t d, int64_t n_trees, int nthreads)
{
#pragma omp parallel for schedule(static) num_threads(FM_NTHREADS(nthreads))
    for (int64_t i = 0; i < n; i++)
        for (int64_t t = 0; t < n_trees; t++) {
            int64_t base = offsets[t], depth = 0;
            out[i * n_trees + t] = walk(x + i * d, left + base, right + base, feature + base,
                                        threshold + base, 0, &depth, max_depth);
        }
}

int fm_forest_oob(double *out, int64_t *n_oob, const float *x, const int64_t *left,
                  const int64_t *right, const int64_t *feature, const float *threshold,
                  const float *value, const int64_t *offsets, uint64_t seed, int64_t n_draw,
                  int64_t n, int64_t d, int64_t k, int64_t n_trees, int nthreads)
{
    uint8_t *inbag = fm_alloc((size_t)(n_trees * n));
    if (!inbag) return FM_ENOMEM;
    int status = FM_OK;
#pragma omp parallel num_threads(FM_NTHREADS(nthreads))
    {
        int32_t *counts = fm_alloc((size_t)n * sizeof(int32_t));
        if (!counts) {
#pragma omp atomic write
            status = FM_ENOMEM;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < n_trees; t++) {
            if (!counts) continue;
            fm_forest_bootstrap(counts, seed, t, n, n_draw);
            for (int64_t i = 0; i < n; i++) inbag[t * n + i] = counts[i] > 0;
        }
        fm_free(counts);
#pragma omp barrier
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double *o = out + i * k;
            memset(o, 0, (size_t)k * sizeof(double));
            n_oob[i] = 0;
            if (status != FM_OK) continue;
            for (int64_t t = 0; t < n_trees; t++) {
                if (inbag[t * n + i]) continue;
                int64_t base = offsets[t], depth = 0;
                int64_t node = walk(x + i * d, left + base, right + base, feature + base,
                                    threshold + base, 0, &depth, INT64_MAX);
                const float *v = value + (base + node) * k;
                for (int64_t c = 0; c < k; c++) o[c] += v[c];
                n_oob[i]++;
            }
        }
    }
    fm_free(inbag);
    return status;
}
