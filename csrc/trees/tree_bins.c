/* tree_bins.c: binning for the trees (declared in tree.h): every feature mapped once per fit
 * to at most 256 bins, exactly for uint8 and few-valued floats, by quantiles otherwise.
 * Not here: split search (tree_split.c) and the builder (tree.c). */
#include <math.h>
#include <string.h>

#include "core/common.h"
#include "trees/tree.h"

/* A threshold strictly between two neighbouring values a < b that rounds to neither side
 * wrongly: x <= edge must hold exactly for x <= a. */
static float midpoint(float a, float b)
{
    float m = (float)(((double)a + (double)b) * 0.5);
    return m >= b ? a : m;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* first index in v[0..len) with v[i] > key (v ascending) */
static int64_t upper_bound(const float *v, int64_t len, float key)
{
    int64_t lo = 0, hi = len;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v[mid] <= key) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* #{edges < x}: the bin code of x */
static int64_t code_of(const float *edges, int64_t len, float x)
{
    int64_t lo = 0, hi = len;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (edges[mid] < x) lo = mid + 1; else hi = mid;
    }
    return lo;
}

#define HASH_CAP 1024 /* open addressing for up to 256 distinct floats: load <= 1/4 */
#define HASH_EMPTY 0xFFFFFFFFu /* a NaN's bits: no finite float has this key */

static uint32_t float_key(float v)
{
    uint32_t u;
    v += 0.0f; /* -0 + 0 = +0: -0 and +0 are one value, without a branch */
    memcpy(&u, &v, 4);
    return u;
}

static uint32_t hash_slot(uint32_t u) { return (u * 2654435761u) >> 22; } /* 10 bits */

/* Bin one column. Returns FM_OK or FM_ENOMEM; `sorted` is (n) scratch. */
static int bin_column(uint8_t *code, float *edges, int64_t *n_edges, float *col, float *sorted,
                      int64_t n, int64_t max_bins)
{
    uint32_t keys[HASH_CAP];
    uint8_t id[HASH_CAP], rank[256];
    float distinct[256];
    int64_t u = 0;
    memset(keys, 0xFF, sizeof keys);
    /* one pass: each value gets the id of its first occurrence, ids become ranks once the
     * values are sorted. Almost every probe hits at once, so the loop is kept to that one
     * predictable test (a shortcut for runs of one value mispredicted on every change). */
    for (int64_t i = 0; i < n && u <= max_bins; i++) {
        uint32_t key = float_key(col[i]), s = hash_slot(key);
        while (keys[s] != key) {
            if (keys[s] == HASH_EMPTY) {
                keys[s] = key;
                if (u < max_bins) { distinct[u] = col[i] + 0.0f; id[s] = (uint8_t)u; }
                u++;
                break;
            }
            s = (s + 1) & (HASH_CAP - 1);
        }
        code[i] = id[s];
    }
    if (u <= max_bins) { /* every distinct value its own bin: exact */
        float sorted_d[256];
        memcpy(sorted_d, distinct, (size_t)u * sizeof(float));
        qsort(sorted_d, (size_t)u, sizeof(float), cmp_float);
        for (int64_t b = 0; b + 1 < u; b++) edges[b] = midpoint(sorted_d[b], sorted_d[b + 1]);
        *n_edges = u - 1;
        for (int64_t b = 0; b < u; b++) /* distinct values are few: find each one's rank */
            rank[b] = (uint8_t)(upper_bound(sorted_d, u, distinct[b]) - 1);
        for (int64_t i = 0; i < n; i++) code[i] = rank[code[i]];
        return FM_OK;
    }
    /* quantiles: cut after the value at each 1/max_bins of the sorted column */
    memcpy(sorted, col, (size_t)n * sizeof(float));
    qsort(sorted, (size_t)n, sizeof(float), cmp_float);
    int64_t ne = 0;
    for (int64_t q = 1; q < max_bins; q++) {
        int64_t pos = q * n / max_bins;
        if (pos < 1) continue;
        int64_t next = upper_bound(sorted, n, sorted[pos - 1]);
        if (next >= n) break;
        float e = midpoint(sorted[pos - 1], sorted[next]);
        if (ne == 0 || e > edges[ne - 1]) edges[ne++] = e;
    }
    *n_edges = ne;
    for (int64_t i = 0; i < n; i++) code[i] = (uint8_t)code_of(edges, ne, col[i]);
    return FM_OK;
}

#define BIN_BLOCK 16 /* columns gathered per pass over the rows */

int fm_tree_bin_f32(uint8_t *codes, float *edges, int64_t *n_edges,
                    const float *x, int64_t n, int64_t d, int64_t max_bins, int nthreads)
{
    if (max_bins < 2 || max_bins > 256 || n < 1 || d < 1) return FM_EINVAL;
    int status = FM_OK;
    int64_t n_blocks = (d + BIN_BLOCK - 1) / BIN_BLOCK;
#pragma omp parallel num_threads(FM_NTHREADS(nthreads))
    {
        float *cols = fm_alloc((size_t)(n * BIN_BLOCK) * sizeof(float));
        float *sorted = fm_alloc((size_t)n * sizeof(float));
        if (!cols || !sorted) {
#pragma omp atomic write
            status = FM_ENOMEM;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < n_blocks; blk++) {
            if (!cols || !sorted) continue;
            int64_t f0 = blk * BIN_BLOCK, nf = d - f0 < BIN_BLOCK ? d - f0 : BIN_BLOCK;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < nf; j++) cols[j * n + i] = x[i * d + f0 + j];
            for (int64_t j = 0; j < nf; j++) {
                int64_t f = f0 + j;
                bin_column(codes + f * n, edges + f * (max_bins - 1), n_edges + f,
                           cols + j * n, sorted, n, max_bins);
            }
        }
        fm_free(cols);
        fm_free(sorted);
    }
    return status;
}

int fm_tree_bin_u8(uint8_t *codes, float *edges, int64_t *n_edges,
                   const uint8_t *x, int64_t n, int64_t d, int nthreads)
{
    if (n < 1 || d < 1) return FM_EINVAL;
    int status = FM_OK;
    int64_t n_blocks = (d + 63) / 64;
#pragma omp parallel num_threads(FM_NTHREADS(nthreads))
    {
        uint8_t *seen = fm_alloc(64 * 256);
        if (!seen) {
#pragma omp atomic write
            status = FM_ENOMEM;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < n_blocks; blk++) {
            if (!seen) continue;
            int64_t f0 = blk * 64, nf = d - f0 < 64 ? d - f0 : 64;
            memset(seen, 0, 64 * 256);
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < nf; j++) seen[j * 256 + x[i * d + f0 + j]] = 1;
            for (int64_t j = 0; j < nf; j++) { /* seen -> rank of each present value */
                uint8_t *s = seen + j * 256;
                float *e = edges + (f0 + j) * 255;
                int64_t r = 0, prev = -1;
                for (int v = 0; v < 256; v++) {
                    if (!s[v]) continue;
                    if (prev >= 0) e[r - 1] = midpoint((float)prev, (float)v);
                    s[v] = (uint8_t)r++;
                    prev = v;
                }
                n_edges[f0 + j] = r - 1;
            }
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < nf; j++)
                    codes[(f0 + j) * n + i] = seen[j * 256 + x[i * d + f0 + j]];
        }
        fm_free(seen);
    }
    return status;
}

