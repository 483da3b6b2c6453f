/* knn_tile.h: the uint8 distance tiles behind knn.c, one family per kernel: how rows are
 * packed and the micro-kernel that turns FM_KNN_MR queries x `width` training rows into
 * exact int32 distances. Internal to csrc/neighbors/. */
#ifndef FM_KNN_TILE_H
#define FM_KNN_TILE_H

#include <stdint.h>

#include "core/common.h"
#include "neighbors/knn.h"

/* Queries a micro-kernel covers. */
#define FM_KNN_MR 6

struct fm_knn_u8_impl {
    int64_t width; /* training rows a micro-kernel covers (divides 64) */
    int64_t elem;  /* bytes a packed value takes: 1, or 2 (AVX2 Euclidean's int16) */
    /* dst: packed rows [0, round_up(n, width)) of x (n, d), missing rows zero; dp >= d is
     * a multiple of 8, columns past d zero */
    void (*pack_x)(void *dst, const uint8_t *x, int64_t n, int64_t d, int64_t dp);
    /* dst: rows [0, rows) of q (n, d) packed row-major with dp columns, past n zero */
    void (*pack_q)(void *dst, const uint8_t *q, int64_t n, int64_t rows, int64_t d, int64_t dp);
    /* dt: (FM_KNN_MR, width) int32, leading dimension ldd: squared Euclidean (or Manhattan)
     * distances between packed queries qp and packed training rows xp.
     * qsq: (FM_KNN_MR,) queries' sum of squares; xsq, xsum: (width,) training rows' sum of
     * squares and sum (Manhattan reads neither) */
    void (*tile)(int32_t *dt, int64_t ldd, const void *qp, const void *xp, int64_t dp,
                 const int32_t *qsq, const int32_t *xsq, const int32_t *xsum);
};

/* The family for (kernel, metric); cosine uses Euclidean's. NULL when the CPU lacks it
 * (FM_KERNEL_AVX512 needs AVX-512 VNNI, FM_KERNEL_AVX2 needs AVX2). */
const struct fm_knn_u8_impl *fm_knn_u8_impl(enum fm_kernel kernel, enum fm_knn_metric metric);

#endif
