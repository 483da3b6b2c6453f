/* boost.h: gradient-boosted trees for multiclass softmax on binned features (uint8 bin
 * codes from fm_tree_bin_*): one round grows one tree per class, leaf-wise, on
 * gradient/hessian histograms; prediction sums leaf values into raw class scores.
 * The histogram and split-scan kernels are in boost_hist.h. */
#ifndef FM_BOOST_H
#define FM_BOOST_H

#include <stdint.h>

#include "core/common.h"

typedef struct {
    int64_t num_leaves;        /* >= 2 */
    int64_t max_depth;         /* a leaf at this depth (root 0) is not split; >= 1 */
    int64_t min_child_samples; /* rows in each child, >= 1 */
    double min_child_weight;   /* hessian sum in each child, >= 0 */
    double reg_lambda;         /* L2 on leaf values, >= 0 */
    double min_split_gain;     /* a split must gain more than this, >= 0 */
    double learning_rate;      /* > 0: leaf values are scaled by it */
    double subsample;          /* (0, 1]: each row joins a round with this probability */
    double colsample_bytree;   /* (0, 1]: fraction of features a tree may use */
    double colsample_bynode;   /* (0, 1]: fraction of the tree's features each node tries */
    const volatile int64_t *stop; /* or NULL: polled between nodes; nonzero ends the round
                                     with FM_EINTR (set by another thread on Ctrl-C) */
    enum fm_kernel kernel;     /* histograms and split scan: FM_KERNEL_AUTO, _PORTABLE or _AVX512 (the same
                                  trees; the test of one against the other) */
} fm_boost_params;

/* FM_KERNEL_AVX512 (AVX-512 F and BW) or FM_KERNEL_PORTABLE: the fastest boosting kernel
 * this CPU runs. */
enum fm_kernel fm_boost_best_kernel(void);

/* One tree, in arrays of at least 2 num_leaves - 1 entries owned by the caller. Node 0 is
 * the root; a split node's children have larger ids; leaves have left = right = -1 and
 * feature = -2. A row goes left when its code <= bin (x <= threshold). gain: the split's
 * loss reduction (0 on leaves); count, hess: rows and hessian sum in the node (this
 * round's rows only); value: the leaf's output, learning rate included (0 on split
 * nodes). */
typedef struct {
    int64_t *left, *right, *feature, *bin, *count;
    float *threshold, *value;
    double *gain, *hess;
    int64_t n_nodes;
} fm_boost_tree;

/* Scratch for rounds on n rows, d features, k classes: gradients and, per thread,
 * histogram slots for the leaves of a tree. Reuse it for every round of a fit.
 * root_pass: build every class's root histogram in one pass (k <= FM_BOOST_ROOT_MAX_K and
 * rounds with colsample_bytree = 1 only); 0 leaves its buffers out. */
typedef struct fm_boost_work fm_boost_work;
fm_boost_work *fm_boost_work_new(const int64_t *n_edges, int64_t n, int64_t d, int64_t k,
                                 int64_t num_leaves, int root_pass, int nthreads);
void fm_boost_work_free(fm_boost_work *w);

/* One boosting round: softmax gradients of score, then k trees (tree c fits class c's),
 * grown in parallel over classes (each by one thread: the same trees for any thread
 * count), and score += each row's leaf values. Rows and features drawn from (seed, round).
 * trees: (k) with arrays as above; score: (n, k) float64 raw scores, updated;
 * codes: (d, n) bin codes and code_rows: (n, d) the same row-major; edges: (d, edge_stride), n_edges: (d) from fm_tree_bin_*;
 * y: (n) classes in [0, k); sw: (n) positive weights or NULL; work from
 * fm_boost_work_new with the same n, d, k, n_edges and >= num_leaves.
 * On an error (FM_EINTR, FM_ENOMEM, FM_EDIVERGED: a leaf value overflowed) score is left
 * unchanged. */
int fm_boost_round(fm_boost_tree *trees, double *score, fm_boost_work *work,
                   const uint8_t *codes, const uint8_t *code_rows, const float *edges, int64_t edge_stride,
                   const int64_t *n_edges, const int64_t *y, const float *sw, int64_t n,
                   int64_t d, int64_t k, const fm_boost_params *p, uint64_t seed,
                   int64_t round, int nthreads);

/* Raw scores of flat boosted trees: tree t adds its leaf's value to class t % k. Trees
 * own nodes offsets[t] .. offsets[t + 1) (child ids tree-local, checked by
 * fm_forest_check). out[s] holds base + the first rounds[s] * k trees' sums.
 * out: (n_stages, n, k) float64; x: (n, d) float32; base: (k); stages: (n_stages)
 * ascending round counts in [0, n_trees / k]. */
int fm_boost_predict(double *out, const float *x, const int64_t *left, const int64_t *right,
                     const int64_t *feature, const float *threshold, const float *value,
                     const int64_t *offsets, const double *base, const int64_t *stages,
                     int64_t n, int64_t d, int64_t k, int64_t n_trees, int64_t n_stages,
                     int nthreads);

#endif
