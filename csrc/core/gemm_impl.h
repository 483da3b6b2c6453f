/* gemm_impl.h: what the GEMM's three files share: gemm.c (blocking, planning, threads, the
 * API), gemm_kernels.c (the micro-kernels and the choice among them) and gemm_pack.c (packing
 * operands into the panels the kernels read). Private to them; the public API is gemm.h. */
#ifndef FM_GEMM_IMPL_H
#define FM_GEMM_IMPL_H

#include <stdint.h>

#include "core/common.h"
#include "core/gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#define FM_GEMM_X86 1
#endif

/* c: (mr, nr) tile with leading dimension ldc; a: packed (kc, MR) panel; b: packed (kc, NR)
 * panel. Writes c = alpha * a b + beta * c, never reading c when beta == 0. */
typedef void (*fm_ukernel)(float *c, int64_t ldc, const float *a, const float *b,
                           int64_t kc, float alpha, float beta, int mr, int nr);

/* One micro-kernel with its register tile (mr x nr) and cache blocks. For AVX-512 on
 * Zen 4 (32 KiB L1d, 1 MiB L2 per core, 32 MiB L3): the mc x kc block of A (168 x 384,
 * 252 KiB) stays in L2 while the kernel sweeps it with one kc x 32 panel of B (48 KiB,
 * L1 and L2), and the kc x nc block of B (3 MiB) sits in L3. The kernel needs only
 * 4.6 bytes of B per cycle, which L2 streams easily: kc from 256 to 512 measured within
 * noise, and a long kc means fewer passes over C. kc is a cap: k is cut into equal
 * blocks so that none is a sliver. */
struct fm_gemm_impl {
    fm_ukernel kernel;
    int mr, nr;
    int mr_step, nr_step; /* the kernel computes tiles in multiples of these rows and columns */
    int64_t kc_max, mc_max, nc_max;
    int avx_pack; /* 1: pack with AVX transposes (the CPU has AVX2); 2: and AVX-512 copies */
};

/* The kernel family (FM_KERNEL_AUTO: the best this CPU runs) and, for AVX-512, the tile that
 * wastes least on n columns; NULL for a kernel the CPU lacks. */
const struct fm_gemm_impl *fm_gemm_impl_for(enum fm_kernel kernel, int64_t n);

/* op(A)[i0:i0+mc, p0:p0+kc] into mr-row panels, each (kc, mr) with rows past mc zeroed,
 * so the kernel reads one layout whatever the transpose; avx: the impl's avx_pack. */
void fm_gemm_pack_a(float *dst, const float *a, int64_t lda, enum fm_trans ta,
                    int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr, int avx);

/* op(B)[p0:p0+kc, j0:j0+nc] into nr-column panels, each (kc, nr), columns past nc zeroed. */
void fm_gemm_pack_b(float *dst, const float *b, int64_t ldb, enum fm_trans tb,
                    int64_t j0, int64_t nc, int64_t p0, int64_t kc, int nr, int avx);

#endif
