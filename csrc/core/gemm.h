/* gemm.h: the one single-precision GEMM behind logistic regression, the MLP and the CNN.
 * Row-major, BLAS semantics: C = alpha * op(A) op(B) + beta * C. */
#ifndef FM_GEMM_H
#define FM_GEMM_H

#include <stdint.h>

#include "core/common.h"

enum fm_trans { FM_NO_TRANS = 0, FM_TRANS = 1 };

/* c: (m, n) row-major with leading dimension ldc >= n
 * a: op(A) is (m, k); A is (m, k) with lda >= k, or (k, m) with lda >= m when ta = FM_TRANS
 * b: op(B) is (k, n); B is (k, n) with ldb >= n, or (n, k) with ldb >= k when tb = FM_TRANS
 * beta == 0 overwrites C without reading it (NaN in C does not propagate).
 * Threads: OpenMP over blocks, at most nthreads (<= 0: the OpenMP default).
 * Returns FM_OK, FM_EINVAL (bad sizes or a kernel the CPU lacks) or FM_ENOMEM. */
int fm_gemm(float *c, int64_t ldc,
            const float *a, int64_t lda, enum fm_trans ta,
            const float *b, int64_t ldb, enum fm_trans tb,
            int64_t m, int64_t n, int64_t k, float alpha, float beta,
            enum fm_kernel kernel, int nthreads);

/* Work fused into a GEMM: fn(ctx, c, ldc, i0, j0, rows, cols) runs on each finished region
 * of C, rows [i0, i0 + rows) and columns [j0, j0 + cols), whose final values are at c (the
 * region's first element) with leading dimension ldc, on the thread that computed it, while
 * the region is still in cache. The regions tile C, each is passed once, and different
 * threads run theirs at the same time.
 * With `scratch`, the values may be in a copy instead, and C is then not written at all:
 * for a tail that consumes the values (an optimizer step on a weight gradient) this spares
 * C's trip to memory and back. It applies when beta == 0 and k fits one of the GEMM's k
 * blocks (0 < k <= 256 always does, and alpha != 0); otherwise C is written as without it. */
typedef struct {
    void (*fn)(void *ctx, float *c, int64_t ldc, int64_t i0, int64_t j0, int64_t rows,
               int64_t cols);
    void *ctx;
    int scratch;
} fm_gemm_tail;

/* fm_gemm, then tail (NULL: none) on each finished region of C. */
int fm_gemm_fused(float *c, int64_t ldc,
                  const float *a, int64_t lda, enum fm_trans ta,
                  const float *b, int64_t ldb, enum fm_trans tb,
                  int64_t m, int64_t n, int64_t k, float alpha, float beta,
                  const fm_gemm_tail *tail, enum fm_kernel kernel, int nthreads);

/* One GEMM of fm_gemm_pair: fm_gemm_fused's arguments. */
typedef struct {
    float *c;
    int64_t ldc;
    const float *a;
    int64_t lda;
    enum fm_trans ta;
    const float *b;
    int64_t ldb;
    enum fm_trans tb;
    int64_t m, n, k;
    float alpha, beta;
    const fm_gemm_tail *tail; /* NULL: none */
} fm_gemm_args;

/* fm_gemm_fused on two independent GEMMs (neither reads what the other writes), run side by
 * side: with two or more threads each gets half of them and is split half as finely, so
 * each thread packs less of the operands that a split makes every thread pack (a dense
 * layer's dx and dw, equal in work). The results are those of two fm_gemm_fused calls.
 * second NULL: first alone, on all threads (fm_gemm_fused). Returns FM_OK, FM_EINVAL or
 * FM_ENOMEM (then neither, or only the first, may be done). */
int fm_gemm_pair(const fm_gemm_args *first, const fm_gemm_args *second, enum fm_kernel kernel,
                 int nthreads);

/* The naive triple loop with a float64 accumulator: the reference twin for tests. */
void fm_gemm_naive(float *c, int64_t ldc,
                   const float *a, int64_t lda, enum fm_trans ta,
                   const float *b, int64_t ldb, enum fm_trans tb,
                   int64_t m, int64_t n, int64_t k, float alpha, float beta);

/* The kernel FM_KERNEL_AUTO resolves to on this CPU, and its name ("avx512", "avx2", "portable"). */
enum fm_kernel fm_gemm_best_kernel(void);
const char *fm_gemm_kernel_name(enum fm_kernel kernel);

#endif
