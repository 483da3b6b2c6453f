/* tree.h: CART classification trees on binned features (uint8 bin codes, at most 256
 * bins a feature): binning, histogram / sort split search, the node array, the builder.
 * Bagging, parallel fitting and prediction live in forest.h. */
#ifndef FM_TREE_H
#define FM_TREE_H

#include <stdint.h>

#include "core/common.h"

#ifdef _OPENMP
#include <omp.h>
/* 0: OpenMP's default; a request past 4 threads a processor is capped (each thread owns
 * scratch, so an absurd n_jobs must not turn into gigabytes) */
#define FM_NTHREADS(n) \
    ((n) > 0 ? ((n) < 4 * omp_get_num_procs() ? (n) : 4 * omp_get_num_procs()) : omp_get_max_threads())
#else
#define FM_NTHREADS(n) ((void)(n), 1)
#endif

#define FM_TREE_LEAF (-1)      /* children of a leaf, as in scikit-learn */
#define FM_TREE_UNDEFINED (-2) /* feature and threshold of a leaf */

enum fm_criterion { FM_GINI = 0, FM_ENTROPY = 1 };

typedef struct {
    enum fm_criterion criterion;
    int64_t max_depth;         /* root has depth 0 */
    int64_t min_samples_split;
    int64_t min_samples_leaf;
    int64_t max_features;      /* non-constant features examined per node, 1..d */
    double min_impurity_decrease;
    int64_t small_node;        /* nodes of at most this many samples sort instead of filling
                                  histograms; at most FM_TREE_SMALL_MAX */
    const volatile int64_t *stop; /* or NULL: polled between nodes; nonzero ends the build
                                     with FM_EINTR (set by another thread on Ctrl-C) */
    enum fm_kernel kernel;     /* the lane scan's: FM_KERNEL_AUTO, _PORTABLE or _AVX2 (the
                                  same trees, the test of one against the other) */
    double min_weight_fraction_leaf; /* every leaf weighs at least this fraction of the tree's
                                        total weight (0..0.5, as in scikit-learn) */
} fm_tree_params;

/* FM_KERNEL_AVX2 or FM_KERNEL_PORTABLE: the fastest tree kernel this CPU runs. */
enum fm_kernel fm_tree_best_kernel(void);

#define FM_TREE_SMALL_MAX 4096

/* A tree: nodes in depth-first preorder (children have larger ids than their parent).
 * Arrays of `cap` entries, n_nodes used; value is (cap, k) class fractions. Owned by the
 * tree: release with fm_tree_free. */
typedef struct {
    int64_t *left, *right, *feature, *n_samples;
    float *threshold, *value;
    double *impurity, *weighted_n;
    int64_t n_nodes, cap, k, max_depth;
} fm_tree;

void fm_tree_free(fm_tree *t);

/* Bin float features: per feature, at most max_bins bins from its distinct values (each its
 * own bin when there are few enough), else from quantiles of the sorted column.
 * codes: (d, n) column-major uint8 bin codes; edges: (d, max_bins - 1) float32 thresholds,
 * code(x) = #{edges < x}, so x <= edges[b] <=> code(x) <= b; n_edges: (d).
 * x: (n, d) row-major float32, finite. 2 <= max_bins <= 256. */
int fm_tree_bin_f32(uint8_t *codes, float *edges, int64_t *n_edges,
                    const float *x, int64_t n, int64_t d, int64_t max_bins, int nthreads);

/* The same for uint8 features: every distinct value is its own bin (exact), so codes are
 * the ranks of the values and X / 255 as float32 gets identical codes.
 * edges: (d, 255). x: (n, d) row-major uint8. */
int fm_tree_bin_u8(uint8_t *codes, float *edges, int64_t *n_edges,
                   const uint8_t *x, int64_t n, int64_t d, int nthreads);

/* Scratch for growing trees of up to m rows; reuse it for every tree a thread grows. */
typedef struct fm_tree_work fm_tree_work;
fm_tree_work *fm_tree_work_new(int64_t m, int64_t d, int64_t k, int64_t small_node);
void fm_tree_work_free(fm_tree_work *w);

/* Grow one tree depth-first on the rows rows[0..m) with weights w[0..m).
 * Node randomness (the features examined) comes from (seed, the node's path from the
 * root), never from a running stream, so a tree grown deeper extends a shallower one.
 * codes: (d, n) bin codes; code_rows: (n, d) the same row-major (faster small nodes) or
 * NULL; edges: (d, edge_stride), n_edges: (d) from fm_tree_bin_*;
 * y: (n) classes in [0, k); rows: (m) distinct indices in [0, n), ascending for speed;
 * w: (m) non-negative weights; work from fm_tree_work_new(>= m, d, k, >= p->small_node).
 * t is zero-initialised on entry and owned by the caller. FM_EINVAL for a kernel the CPU
 * lacks. */
int fm_tree_build(fm_tree *t, fm_tree_work *work, const uint8_t *codes, const uint8_t *code_rows,
                  const float *edges, int64_t edge_stride,
                  const int64_t *n_edges, const int64_t *y, const int64_t *rows, const float *w,
                  int64_t n, int64_t m, int64_t d, int64_t k, const fm_tree_params *p,
                  uint64_t seed);

#endif
