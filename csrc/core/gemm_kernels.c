/* gemm_kernels.c: the GEMM's micro-kernels (portable, AVX2 6 x 16, AVX-512 14 x 32 and
 * 28 x 16), each computing one register tile of C from packed panels, with its tile and
 * cache blocks, and the choice among them at run time. Not here: packing (gemm_pack.c),
 * blocking and threads (gemm.c). */
#include "core/gemm_impl.h"

#include <string.h>

#include "core/cpu.h"

#ifdef FM_GEMM_X86
#include <immintrin.h>
#endif

/* ---------------------------------------------------------------- portable kernel */

#define P_MR 4
#define P_NR 8

/* Plain loops over a fixed tile: the compiler vectorises the inner j loop (SSE2, NEON). */
static void ukernel_portable(float *c, int64_t ldc, const float *a, const float *b,
                             int64_t kc, float alpha, float beta, int mr, int nr)
{
    float acc[P_MR][P_NR];
    memset(acc, 0, sizeof acc);
    for (int64_t p = 0; p < kc; p++) {
        const float *ap = a + p * P_MR, *bp = b + p * P_NR;
        for (int i = 0; i < P_MR; i++)
            for (int j = 0; j < P_NR; j++) acc[i][j] += ap[i] * bp[j];
    }
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            for (int j = 0; j < nr; j++) ci[j] = alpha * acc[i][j];
        else
            for (int j = 0; j < nr; j++) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
}

#ifdef FM_GEMM_X86

/* ---------------------------------------------------------------- AVX2 kernel: 6 x 16 */

#define A2_MR 6
#define A2_NR 16

/* Twelve ymm accumulators, two B loads and six broadcasts per k step. mr is a constant
 * at every call site so the row loops unroll and the accumulators live in registers;
 * columns past nr are masked off in the write-back. */
static inline __attribute__((always_inline, target("avx2,fma")))
void avx2_tile(const int mr, float *c, int64_t ldc, const float *a, const float *b,
               int64_t kc, float alpha, float beta, int nr)
{
    __m256 c0[A2_MR], c1[A2_MR];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) { c0[i] = _mm256_setzero_ps(); c1[i] = _mm256_setzero_ps(); }
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
        }
        a += A2_MR;
        b += A2_NR;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), iota);
    __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), iota);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        __m256 r0 = _mm256_mul_ps(va, c0[i]), r1 = _mm256_mul_ps(va, c1[i]);
        if (beta != 0.0f) {
            r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci, m0), r0);
            r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci + 8, m1), r1);
        }
        _mm256_maskstore_ps(ci, m0, r0);
        _mm256_maskstore_ps(ci + 8, m1, r1);
    }
}

__attribute__((target("avx2,fma")))
static void ukernel_avx2(float *c, int64_t ldc, const float *a, const float *b,
                         int64_t kc, float alpha, float beta, int mr, int nr)
{
    switch (mr) {
    case 6: avx2_tile(6, c, ldc, a, b, kc, alpha, beta, nr); break;
    case 5: avx2_tile(5, c, ldc, a, b, kc, alpha, beta, nr); break;
    case 4: avx2_tile(4, c, ldc, a, b, kc, alpha, beta, nr); break;
    case 3: avx2_tile(3, c, ldc, a, b, kc, alpha, beta, nr); break;
    case 2: avx2_tile(2, c, ldc, a, b, kc, alpha, beta, nr); break;
    default: avx2_tile(1, c, ldc, a, b, kc, alpha, beta, nr); break;
    }
}

/* ---------------------------------------------------------------- AVX-512 kernels */

/* 14 x 32: 28 zmm accumulators, two B loads and fourteen broadcasts per k step, enough
 * independent FMAs to hide Zen 4's latency with load slots to spare; a last panel of at
 * most 16 columns computes only those (half the work). When C has at most 16 columns
 * (ten classes) half of that tile would be padding, so a 28 x 16 twin takes over: one B
 * load per 28 FMAs. */
#define A5_MR 14
#define A5_NR 32
#define A5N_MR 28
#define A5N_NR 16

/* Computes `rows` rows (a constant, so loops unroll and accumulators stay in registers)
 * of nv zmm columns from A panels amr wide and B panels anr wide, and stores the first mr
 * rows and nr columns.
 * Rows between mr and rows are packing zeros: computing them lets seven instances of
 * the tile cover every mr. */
static inline __attribute__((always_inline, target("avx512f,fma")))
void avx512_tile(const int rows, const int nv, const int amr, const int anr, float *c, int64_t ldc,
                 const float *a, const float *b, int64_t kc, float alpha, float beta,
                 int mr, int nr)
{
    __m512 c0[A5N_MR], c1[A5N_MR];
#pragma GCC unroll 32
    for (int i = 0; i < rows; i++) { c0[i] = _mm512_setzero_ps(); c1[i] = _mm512_setzero_ps(); }
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(b), b1 = nv == 2 ? _mm512_load_ps(b + 16) : b0;
#pragma GCC unroll 32
        for (int i = 0; i < rows; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            if (nv == 2) c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
        a += amr;
        b += anr;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : nr <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nr - 16)) - 1);
#pragma GCC unroll 32
    for (int i = 0; i < rows; i++) {
        if (i >= mr) break;
        float *ci = c + i * ldc;
        __m512 r0 = _mm512_mul_ps(va, c0[i]);
        if (beta != 0.0f) r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
        _mm512_mask_storeu_ps(ci, m0, r0);
        if (nv == 2) {
            __m512 r1 = _mm512_mul_ps(va, c1[i]);
            if (beta != 0.0f) r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
            _mm512_mask_storeu_ps(ci + 16, m1, r1);
        }
    }
}

/* Picks the smallest of seven row counts (multiples of amr / 7) that covers mr. */
static inline __attribute__((always_inline, target("avx512f,fma")))
void avx512_rows(const int nv, const int amr, const int anr, float *c, int64_t ldc, const float *a,
                 const float *b, int64_t kc, float alpha, float beta, int mr, int nr)
{
    switch ((mr - 1) / (amr / 7)) {
    case 0: avx512_tile(1 * amr / 7, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    case 1: avx512_tile(2 * amr / 7, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    case 2: avx512_tile(3 * amr / 7, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    case 3: avx512_tile(4 * amr / 7, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    case 4: avx512_tile(5 * amr / 7, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    case 5: avx512_tile(6 * amr / 7, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    default: avx512_tile(amr, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    }
}

__attribute__((target("avx512f,fma")))
static void ukernel_avx512(float *c, int64_t ldc, const float *a, const float *b,
                           int64_t kc, float alpha, float beta, int mr, int nr)
{
    if (nr <= 16)
        avx512_rows(1, A5_MR, A5_NR, c, ldc, a, b, kc, alpha, beta, mr, nr);
    else
        avx512_rows(2, A5_MR, A5_NR, c, ldc, a, b, kc, alpha, beta, mr, nr);
}

__attribute__((target("avx512f,fma")))
static void ukernel_avx512_narrow(float *c, int64_t ldc, const float *a, const float *b,
                                  int64_t kc, float alpha, float beta, int mr, int nr)
{
    avx512_rows(1, A5N_MR, A5N_NR, c, ldc, a, b, kc, alpha, beta, mr, nr);
}

#endif /* FM_GEMM_X86 */

static const struct fm_gemm_impl impl_portable = {ukernel_portable, P_MR, P_NR, P_MR, P_NR, 256, 128, 2048, 0};
#ifdef FM_GEMM_X86
static const struct fm_gemm_impl impl_avx2 = {ukernel_avx2, A2_MR, A2_NR, 1, A2_NR, 256, 120, 2048, 1};
static const struct fm_gemm_impl impl_avx512 = {ukernel_avx512, A5_MR, A5_NR, A5_MR / 7, 16, 384, 168, 2048, 2};
static const struct fm_gemm_impl impl_avx512_narrow = {ukernel_avx512_narrow, A5N_MR, A5N_NR, A5N_MR / 7, 16, 384, 168, 2048, 2};
#endif

enum fm_kernel fm_gemm_best_kernel(void)
{
    if (fm_cpu_has(FM_CPU_AVX512)) return FM_KERNEL_AVX512;
    if (fm_cpu_has(FM_CPU_AVX2)) return FM_KERNEL_AVX2;
    return FM_KERNEL_PORTABLE;
}

const char *fm_gemm_kernel_name(enum fm_kernel kernel)
{
    switch (kernel) {
    case FM_KERNEL_AUTO: return fm_gemm_kernel_name(fm_gemm_best_kernel());
    case FM_KERNEL_PORTABLE: return "portable";
    case FM_KERNEL_AVX2: return "avx2";
    case FM_KERNEL_AVX512: return "avx512";
    case FM_KERNEL_AMX: return "amx";
    }
    return "unknown";
}

const struct fm_gemm_impl *fm_gemm_impl_for(enum fm_kernel kernel, int64_t n)
{
#ifndef FM_GEMM_X86
    (void)n;
#endif
    if (kernel == FM_KERNEL_AUTO) kernel = fm_gemm_best_kernel();
    switch (kernel) {
    case FM_KERNEL_PORTABLE: return &impl_portable;
#ifdef FM_GEMM_X86
    case FM_KERNEL_AVX2: return fm_cpu_has(FM_CPU_AVX2) ? &impl_avx2 : NULL;
    case FM_KERNEL_AVX512:
        if (!fm_cpu_has(FM_CPU_AVX512)) return NULL;
        return n <= A5N_NR ? &impl_avx512_narrow : &impl_avx512;
#endif
    default: return NULL;
    }
}
