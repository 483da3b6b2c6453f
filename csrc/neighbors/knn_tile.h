/* knn_tile.h: the uint8 distance tiles behind knn.c, one family per kernel: how rows are
 * packed and the micro-kernel that turns FM_KNN_MR queries x `width` training rows into
 * exact int32 distances. Internal to csrc/neighbors/. */
#ifndef FM_KNN_TILE_H
#define FM_KNN_TILE_H

#include <stdint.h>

#include "core/common.h"
#include "neighbors/knn.h"

/* Queries the vector families' micro-kernels cover (AMX covers 32). */
#define FM_KNN_MR 6

struct fm_knn_u8_impl {
    int64_t mr;     /* queries a micro-kernel covers (FM_KNN_MR, or 32 for AMX) */
    int64_t width;  /* training rows a micro-kernel covers (divides 64) */
    int64_t elem;   /* bytes a packed value takes: 1, or 2 (AVX2 Euclidean's int16) */
    int64_t kalign; /* the packed row length dp is a multiple of this (8, or 64 for AMX) */
    /* dst: packed rows [0, round_up(n, width)) of x (n, d), missing rows zero; dp >= d,
     * columns past d zero */
    void (*pack_x)(void *dst, const uint8_t *x, int64_t n, int64_t d, int64_t dp);
    /* dst: rows [0, rows) of q (n, d) packed row-major with dp columns, past n zero */
    void (*pack_q)(void *dst, const uint8_t *q, int64_t n, int64_t rows, int64_t d, int64_t dp);
    /* dt: (mr, width) int32, leading dimension ldd: the exact dot products q.x (Euclidean's
     * family; the caller makes |q|^2 + |x|^2 - 2 q.x of them) or the Manhattan distances
     * between packed queries qp and packed training rows xp.
     * xsum: (width,) the training rows' sums (read by AVX-512 VNNI's dot products only) */
    void (*tile)(int32_t *dt, int64_t ldd, const void *qp, const void *xp, int64_t dp,
                 const int32_t *xsum);
    /* row: (n,) one query's tile output made its integer keys in place (Euclidean: the dot
     * products become squared distances |q|^2 + |x|^2 - 2 q.x, in wrapping 32-bit
     * arithmetic, exact as every distance fits; Manhattan: as they are); returns 1 when a
     * key is below lim, else 0 (nothing in the row can enter the query's list).
     * qsq: the query's sum of squares; xsq: (n,) the rows' */
    int (*keys)(int32_t *row, int64_t n, int32_t qsq, const int32_t *xsq, int32_t lim);
    /* NULL, or called by a thread before its first tile (AMX: loading the tile
     * configuration) and after its last (releasing the tiles) */
    void (*begin)(void), (*end)(void);
};

/* sq, sum: (n,) each row's sum of squares and sum (either may be NULL); x: (n, d) */
void fm_knn_row_sums(int32_t *sq, int32_t *sum, const uint8_t *x, int64_t n, int64_t d);

/* The family for (kernel, metric); cosine uses Euclidean's. NULL when the CPU lacks it
 * (FM_KERNEL_AMX needs AMX-INT8 granted by the OS and serves the dot products only:
 * Manhattan takes AVX-512's; FM_KERNEL_AVX512 needs AVX-512 VNNI, FM_KERNEL_AVX2 AVX2).
 * FM_KERNEL_AUTO: AMX, else AVX-512 VNNI, AVX2, portable. */
const struct fm_knn_u8_impl *fm_knn_u8_impl(enum fm_kernel kernel, enum fm_knn_metric metric);

#endif
