/* tree_split.h: what the tree builder (tree.c) shares with its split search
 * (tree_split.c): the node frame, the split, the builder's state and scratch views.
 * Private to those two files; the public tree API is tree.h. */
#ifndef FM_TREE_SPLIT_H
#define FM_TREE_SPLIT_H

#include <stdint.h>

#include "trees/tree.h"

/* Gini nodes with whole weights and at most LANE_CLASSES classes count into 16-bit class
 * lanes, LANE_WORDS uint64 words a bin (see tree_split.c). */
#define LANE_WORDS 3
#define LANE_CLASSES (4 * LANE_WORDS)

/* Nodes of at most ROW_GATHER samples read their codes from the row-major copy, ROW_BATCH
 * features per pass: one pass touches each row's few cache lines once, where the
 * column-major codes would cost a cache miss per sample and feature. */
#define ROW_GATHER 2048
#define ROW_BATCH 16

typedef struct {
    int64_t start, end, depth, parent;
    int is_left;
    uint64_t path;
} frame;

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
    double min_weight_leaf; /* p->min_weight_fraction_leaf * w_total */
    int64_t *idx, *tidx, *ys, *tys; /* as in fm_tree_work */
    float *ws, *tws;
    double *hw;
    int32_t *hi;
    int whole;  /* every weight a whole number, the total below 2^31: histograms count in
                   int32, exactly */
    int pure_is_final; /* a split into two pure children ends the node's search: see
                          fm_tree_find_split */
    int avx2;          /* the lane scan runs its AVX2 kernel */
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

/* The best split of the node fr (total weight w) over the features it draws, into best
 * (feature -1 if none); b->bestv gets its codes of the best feature, b->ct must hold the
 * node's class sums. Returns FM_OK or FM_ENOMEM. */
int fm_tree_find_split(builder *b, const frame *fr, double w, split *best);

#endif
