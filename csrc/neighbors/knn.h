/* knn.h: exact k-nearest-neighbour search, blocked (query tile x training tile) with a
 * running top-k list per query; the whole distance matrix is never held.
 *
 * uint8 rows get exact integer distances (AMX-INT8 tiles, AVX-512 VNNI and VPSADBW, AVX2,
 * portable);
 * float32 rows go through the packed SGEMM and every candidate near the k-th distance is
 * re-ranked in float64. Ties: the smaller training index first, so results do not depend
 * on the thread count or on how the caller splits the training set into chunks. */
#ifndef FM_KNN_H
#define FM_KNN_H

#include <stdint.h>

#include "core/common.h"

/* The keys ranked: squared Euclidean distance (returned as its square root by
 * fm_knn_finish), Manhattan distance, cosine distance 1 - x.y / sqrt(|x|^2 |y|^2) (1 when
 * either row is all zeros). */
enum fm_knn_metric { FM_KNN_EUCLIDEAN = 0, FM_KNN_MANHATTAN = 1, FM_KNN_COSINE = 2 };

/* key, idx: (n, k) running lists, emptied: keys +inf, indices -1. */
void fm_knn_init(double *key, int64_t *idx, int64_t n, int64_t k);

/* Merges training rows [x0, x0 + nx) into the lists of nq queries, ascending by (key,
 * index): a chunk at a time, in order, gives the lists of the whole training set.
 * key, idx: (nq, k) lists from fm_knn_init or an earlier chunk
 * q: (nq, d) row-major; x: (x0 + nx, d) row-major (the whole training set; row indices are
 * global). Extra memory: the chunk packed (nx * d bytes, twice that for AVX2 Euclidean)
 * and about 0.5 MB a thread.
 * kernel: FM_KERNEL_AMX needs AMX-INT8 (uint8 dot products; float32 rows take the GEMM's
 * best kernel), FM_KERNEL_AVX512 needs AVX-512 VNNI (uint8) or AVX-512F (float32, the
 * GEMM's), FM_KERNEL_AVX2 needs AVX2 with FMA. Threads: OpenMP over query tiles, at most nthreads
 * (<= 0: the OpenMP default); the lists are identical for any count.
 * Returns FM_OK, FM_EINVAL (bad sizes or a kernel the CPU lacks) or FM_ENOMEM. */
int fm_knn_search_u8(double *key, int64_t *idx, const uint8_t *q, const uint8_t *x,
                     int64_t nq, int64_t x0, int64_t nx, int64_t d, int64_t k,
                     enum fm_knn_metric metric, enum fm_kernel kernel, int nthreads);
int fm_knn_search_f32(double *key, int64_t *idx, const float *q, const float *x,
                      int64_t nq, int64_t x0, int64_t nx, int64_t d, int64_t k,
                      enum fm_knn_metric metric, enum fm_kernel kernel, int nthreads);

/* key: (len,) keys to distances in place (Euclidean: the square root). */
void fm_knn_finish(double *key, int64_t len, enum fm_knn_metric metric);

/* The uint8 kernel family FM_KERNEL_AUTO picks on this CPU. */
enum fm_kernel fm_knn_best_kernel(void);

#endif
