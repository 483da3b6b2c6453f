/* u8dot.h: exact int32 dot products between rows of bytes, the k-nearest-neighbour
 * search's tiles (AMX-INT8, AVX-512 VNNI, AVX2, portable: knn_tile.c) offered to any family
 * that needs a block of them (the SVM's kernel rows on uint8 pixels). One packing of the
 * many rows, then any number of blocks against it:
 *
 *     void *bp = fm_alloc(fm_u8dot_packed_size(n, d, FM_KERNEL_AUTO));
 *     fm_u8dot_pack(bp, b, n, d, FM_KERNEL_AUTO);
 *     fm_u8dot_block(out, n, a, bp, m, n, d, FM_KERNEL_AUTO);   (out[i, j] = a_i . b_j)
 *
 * Exact for d <= 32768 (32768 * 255^2 < 2^31); the same integers from every kernel. The
 * caller owns every buffer. */
#ifndef FM_U8DOT_H
#define FM_U8DOT_H

#include <stdint.h>

#include "core/common.h"

/* Bytes fm_u8dot_pack writes for n rows of d bytes for `kernel` (FM_KERNEL_AUTO: the best
 * this CPU has); 0 for bad sizes or a kernel the CPU lacks. */
int64_t fm_u8dot_packed_size(int64_t n, int64_t d, enum fm_kernel kernel);

/* Rows of `a` one micro-kernel covers (FM_KERNEL_AUTO: the best this CPU has): 32 for AMX,
 * 6 for the vector kernels; a block of up to that many rows costs what one row does. 0 for
 * a kernel the CPU lacks. */
int64_t fm_u8dot_tile_rows(enum fm_kernel kernel);

/* bp: fm_u8dot_packed_size(n, d, kernel) bytes: b's rows in the kernel's tile layout and
 * their sums. b: (n, d) row-major. Returns FM_OK or FM_EINVAL (bad sizes, kernel lacking). */
int fm_u8dot_pack(void *bp, const uint8_t *b, int64_t n, int64_t d, enum fm_kernel kernel);

/* out: (m, n) int32, leading dimension ldo >= n: out[i, j] = a_i . b_j.
 * a: (m, d) row-major; bp: n rows of d bytes packed by fm_u8dot_pack for the same kernel.
 * One thread (call it from several on disjoint outputs); allocates m rows packed.
 * Returns FM_OK, FM_EINVAL or FM_ENOMEM. */
int fm_u8dot_block(int32_t *out, int64_t ldo, const uint8_t *a, const void *bp, int64_t m,
                   int64_t n, int64_t d, enum fm_kernel kernel);

#endif
