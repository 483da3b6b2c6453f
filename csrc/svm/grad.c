/* grad.c: the gradient updates every SMO iteration makes (smo.c): G += da_i Q_i + da_j Q_j
 * over the active rows, and G_bar += c Q_i over all rows when a variable enters or leaves
 * its upper bound. Portable and AVX-512 (8 lanes of float64), each product and sum
 * rounded in the same order without fused multiply-adds, so both give the same bits.
 * Not the rows (rbf.c) nor the selection (select.c). */
#include "core/cpu.h"
#include "svm/svm.h"

#if defined(__x86_64__) || defined(__i386__)
#define FM_GRAD_X86 1
#include <immintrin.h>
#endif

/* out of line: the AVX-512 kernel's tail must not be compiled for its target, where GCC
 * would fuse the multiplies and adds */
static __attribute__((noinline)) void update_portable(double *restrict G, const float *restrict Q_i,
                            const float *restrict Q_j, double dai, double daj, int64_t from,
                            int64_t n)
{
    if (Q_j)
        for (int64_t k = from; k < n; k++) G[k] += Q_i[k] * dai + Q_j[k] * daj;
    else
        for (int64_t k = from; k < n; k++) G[k] += Q_i[k] * dai;
}

#ifdef FM_GRAD_X86
/* x unchanged, but opaque to the compiler: GCC fuses a vector multiply and a following add
 * into an FMA (one rounding instead of two), even written with the _round_ intrinsics */
static inline __attribute__((always_inline, target("avx512f"))) __m512d rounded(__m512d x)
{
    __asm__("" : "+v"(x));
    return x;
}

static __attribute__((target("avx512f")))
void update_avx512(double *G, const float *Q_i, const float *Q_j, double dai, double daj,
                   int64_t n)
{
    const __m512d a = _mm512_set1_pd(dai), b = _mm512_set1_pd(daj);
    int64_t k = 0;
    if (Q_j)
        for (; k + 8 <= n; k += 8) {
            __m512d qi = _mm512_cvtps_pd(_mm256_loadu_ps(Q_i + k));
            __m512d qj = _mm512_cvtps_pd(_mm256_loadu_ps(Q_j + k));
            __m512d s = _mm512_add_pd(rounded(_mm512_mul_pd(qi, a)),
                                      rounded(_mm512_mul_pd(qj, b)));
            _mm512_storeu_pd(G + k, _mm512_add_pd(_mm512_loadu_pd(G + k), s));
        }
    else
        for (; k + 8 <= n; k += 8) {
            __m512d qi = _mm512_cvtps_pd(_mm256_loadu_ps(Q_i + k));
            _mm512_storeu_pd(G + k, _mm512_add_pd(_mm512_loadu_pd(G + k),
                                                  rounded(_mm512_mul_pd(qi, a))));
        }
    update_portable(G, Q_i, Q_j, dai, daj, k, n);
}
#endif

enum fm_kernel fm_svm_grad_best(void)
{
#ifdef FM_GRAD_X86
    if (fm_cpu_has(FM_CPU_AVX512)) return FM_KERNEL_AVX512;
#endif
    return FM_KERNEL_PORTABLE;
}

int fm_svm_update_G(double *G, const float *Q_i, const float *Q_j, double dai, double daj,
                    int64_t n, enum fm_kernel kernel)
{
    if (kernel == FM_KERNEL_AUTO) kernel = fm_svm_grad_best();
#ifdef FM_GRAD_X86
    if (kernel == FM_KERNEL_AVX512) {
        if (!fm_cpu_has(FM_CPU_AVX512)) return FM_EINVAL;
        update_avx512(G, Q_i, Q_j, dai, daj, n);
        return FM_OK;
    }
#endif
    if (kernel != FM_KERNEL_PORTABLE) return FM_EINVAL;
    update_portable(G, Q_i, Q_j, dai, daj, 0, n);
    return FM_OK;
}
