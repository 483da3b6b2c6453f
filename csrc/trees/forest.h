/* forest.h: random forests of fm_tree: bootstrap samples, trees grown in parallel with
 * OpenMP, and prediction (class distributions averaged over trees, optionally with every
 * tree cut at a depth). A lone decision tree is a forest of one tree without bootstrap. */
#ifndef FM_FOREST_H
#define FM_FOREST_H

#include <stdint.h>

#include "trees/tree.h"

/* The seed of tree t: its bootstrap draws and its nodes' feature draws derive from it. */
uint64_t fm_forest_tree_seed(uint64_t seed, int64_t t);

/* Bootstrap multiplicities of tree t: n_draw draws with replacement from [0, n).
 * counts: (n) int32, overwritten. */
void fm_forest_bootstrap(int32_t *counts, uint64_t seed, int64_t t, int64_t n, int64_t n_draw);

/* Grow trees first_tree .. first_tree + n_trees - 1 into trees[0 .. n_trees), in parallel
 * over trees; tree t depends on (seed, t) only, never on the thread count.
 * n_draw > 0: each tree sees a bootstrap of n_draw draws (weight = multiplicity * sw);
 * n_draw == 0: every row, weight sw. sw: (n) non-negative weights or NULL (all 1).
 * codes, code_rows, edges, n_edges, y, p: as fm_tree_build. trees: (n_trees) zero-initialised; the
 * caller frees each with fm_tree_free, whatever the status. done (or NULL) counts finished
 * trees, atomically, for a progress bar; p->stop interrupts (FM_EINTR). */
int fm_forest_fit(fm_tree *trees, const uint8_t *codes, const uint8_t *code_rows,
                  const float *edges,
                  int64_t edge_stride, const int64_t *n_edges, const int64_t *y,
                  const float *sw, int64_t n, int64_t d, int64_t k, const fm_tree_params *p,
                  uint64_t seed, int64_t first_tree, int64_t n_trees, int64_t n_draw,
                  int64_t *done, int nthreads);

/* Flat forests: tree t owns nodes offsets[t] .. offsets[t + 1) of left, right, feature,
 * threshold, value; child ids are local to the tree. Returns -1 if every tree is well formed
 * (children -1 together or both after their parent inside the tree; features in [0, d) on
 * split nodes), else the first bad flat node id. offsets: (n_trees + 1). */
int64_t fm_forest_check(const int64_t *left, const int64_t *right, const int64_t *feature,
                        const int64_t *offsets, int64_t n_trees, int64_t n_nodes, int64_t d);

/* Mean over trees of the class distribution of the node each sample reaches, each tree cut
 * at every depth in depths (ascending, >= 0): out[j] is the prediction at depths[j].
 * out: (n_depths, n, k) float64; x: (n, d) float32; value: (n_nodes, k).
 * Returns FM_OK, FM_ENOMEM, or FM_EINVAL past 2^31 nodes. */
int fm_forest_predict(double *out, const float *x, const int64_t *left, const int64_t *right,
                      const int64_t *feature, const float *threshold, const float *value,
                      const int64_t *offsets, const int64_t *depths, int64_t n, int64_t d,
                      int64_t k, int64_t n_trees, int64_t n_depths, int nthreads);

/* The (tree-local) node each sample reaches in each tree cut at max_depth.
 * out: (n, n_trees) int64; x: (n, d). */
void fm_forest_apply(int64_t *out, const float *x, const int64_t *left, const int64_t *right,
                     const int64_t *feature, const float *threshold, const int64_t *offsets,
                     int64_t max_depth, int64_t n, int64_t d, int64_t n_trees, int nthreads);

/* Out-of-bag sums: for each training sample, the class distributions of the trees whose
 * bootstrap (regenerated from seed, n_draw) left it out, and how many there were.
 * out: (n, k) float64; n_oob: (n) int64; x: (n, d) the training data. */
int fm_forest_oob(double *out, int64_t *n_oob, const float *x, const int64_t *left,
                  const int64_t *right, const int64_t *feature, const float *threshold,
                  const float *value, const int64_t *offsets, uint64_t seed, int64_t n_draw,
                  int64_t n, int64_t d, int64_t k, int64_t n_trees, int nthreads);

#endif
