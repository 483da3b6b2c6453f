/* dots.c: dot products of a few rows against many, both row-major: out[r, t] = a_r . b_t.
 * The SMO solver's kernel blocks are a handful of rows against the whole training set,
 * where fm_gemm spends most of its time packing the big operand again at every call
 * (measured: 1 x 2000 x 784 in 4.8 ms, 32 rows 6.1 ms). Here both operands are read as
 * they lie, a 4 x 4 tile of dot products at a time. Not a GEMM: k runs whole per tile. */
#include "core/cpu.h"
#include "svm/svm.h"

#if defined(__x86_64__) || defined(__i386__)
#define FM_DOTS_X86 1
#include <immintrin.h>
#endif

/* one tile: out[r, t] for r < mr, t < nr, with 16 float partial sums per pair (lane l
 * sums the k with k % 16 == l), added up at the end in a fixed order */
static inline void tile_portable(float *out, int64_t ldo, const float *a, const float *b,
                                 int64_t d, int mr, int nr)
{
    for (int r = 0; r < mr; r++)
        for (int t = 0; t < nr; t++) {
            const float *u = a + r * d, *v = b + t * d;
            float acc[16] = {0};
            int64_t k = 0;
            for (; k + 16 <= d; k += 16)
                for (int l = 0; l < 16; l++) acc[l] += u[k + l] * v[k + l];
            for (int l = 0; k + l < d; l++) acc[l] += u[k + l] * v[k + l];
            float s = 0.0f;
            for (int l = 0; l < 16; l++) s += acc[l];
            out[r * ldo + t] = s;
        }
}

static void dots_portable(float *out, int64_t ldo, const float *a, const float *b, int64_t m,
                          int64_t n, int64_t d)
{
    for (int64_t r = 0; r < m; r += 4)
        for (int64_t t = 0; t < n; t += 4)
            tile_portable(out + r * ldo + t, ldo, a + r * d, b + t * d, d,
                          m - r < 4 ? (int)(m - r) : 4, n - t < 4 ? (int)(n - t) : 4);
}

#ifdef FM_DOTS_X86
/* mr and nr are constants at each call, so the 16 accumulators stay in registers */
static inline __attribute__((always_inline, target("avx512f")))
void tile_avx512(float *out, int64_t ldo, const float *a, const float *b, int64_t d,
                 const int mr, const int nr)
{
    __m512 acc[4][4];
    for (int r = 0; r < mr; r++)
        for (int t = 0; t < nr; t++) acc[r][t] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= d; k += 16) {
        __m512 u[4], v[4];
        for (int r = 0; r < mr; r++) u[r] = _mm512_loadu_ps(a + r * d + k);
        for (int t = 0; t < nr; t++) v[t] = _mm512_loadu_ps(b + t * d + k);
        for (int r = 0; r < mr; r++)
            for (int t = 0; t < nr; t++) acc[r][t] = _mm512_fmadd_ps(u[r], v[t], acc[r][t]);
    }
    if (k < d) {
        __mmask16 mask = (__mmask16)((1u << (d - k)) - 1);
        __m512 u[4], v[4];
        for (int r = 0; r < mr; r++) u[r] = _mm512_maskz_loadu_ps(mask, a + r * d + k);
        for (int t = 0; t < nr; t++) v[t] = _mm512_maskz_loadu_ps(mask, b + t * d + k);
        for (int r = 0; r < mr; r++)
            for (int t = 0; t < nr; t++) acc[r][t] = _mm512_fmadd_ps(u[r], v[t], acc[r][t]);
    }
    for (int r = 0; r < mr; r++)
        for (int t = 0; t < nr; t++) out[r * ldo + t] = _mm512_reduce_add_ps(acc[r][t]);
}

static __attribute__((target("avx512f")))
void dots_avx512(float *out, int64_t ldo, const float *a, const float *b, int64_t m, int64_t n,
                 int64_t d)
{
    int64_t r = 0;
    for (; r + 4 <= m; r += 4) {
        int64_t t = 0;
        for (; t + 4 <= n; t += 4) tile_avx512(out + r * ldo + t, ldo, a + r * d, b + t * d, d, 4, 4);
        for (; t < n; t++) tile_avx512(out + r * ldo + t, ldo, a + r * d, b + t * d, d, 4, 1);
    }
    for (; r < m; r++) {
        int64_t t = 0;
        for (; t + 4 <= n; t += 4) tile_avx512(out + r * ldo + t, ldo, a + r * d, b + t * d, d, 1, 4);
        for (; t < n; t++) tile_avx512(out + r * ldo + t, ldo, a + r * d, b + t * d, d, 1, 1);
    }
}
#endif

enum fm_kernel fm_svm_dots_best(void)
{
#ifdef FM_DOTS_X86
    if (fm_cpu_has(FM_CPU_AVX512)) return FM_KERNEL_AVX512;
#endif
    return FM_KERNEL_PORTABLE;
}

int fm_svm_dots(float *out, int64_t ldo, const float *a, const float *b, int64_t m, int64_t n,
                int64_t d, enum fm_kernel kernel)
{
    if (kernel == FM_KERNEL_AUTO) kernel = fm_svm_dots_best();
#ifdef FM_DOTS_X86
    if (kernel == FM_KERNEL_AVX512) {
        if (!fm_cpu_has(FM_CPU_AVX512)) return FM_EINVAL;
        dots_avx512(out, ldo, a, b, m, n, d);
        return FM_OK;
    }
#endif
    if (kernel != FM_KERNEL_PORTABLE) return FM_EINVAL;
    dots_portable(out, ldo, a, b, m, n, d);
    return FM_OK;
}
