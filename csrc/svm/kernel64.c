/* kernel64.c: the kernel in float64 for decision values, as libsvm's predict computes it:
 * dot products of float rows accumulated in double, the kernel's map (rbf's exp included)
 * in double, and the sums over support vectors in double. The solver's float32 kernel rows
 * (kernel.c, rbf.c) are libsvm's Qfloat cache; a decision value sums thousands of terms, and
 * float32 there moved probabilities by 3e-5. Not the exact byte dot products (u8dot.h). */
#include <math.h>

#include "core/cpu.h"
#include "svm/svm.h"

#if defined(__x86_64__) || defined(__i386__)
#define FM_K64_X86 1
#include <immintrin.h>
#endif

/* below this e^x (about 1e-304) is taken as 0 by every kernel: no subnormals */
#define X_MIN -700.0
#define LOG2E 1.4426950408889634074
#define LN2_HI 6.93147180369123816490e-01 /* fdlibm's split: LN2_HI has 32 trailing zeros */
#define LN2_LO 1.90821492927058770002e-10

static void exp_portable(double *x, int64_t n)
{
    for (int64_t t = 0; t < n; t++) x[t] = x[t] < X_MIN ? 0.0 : exp(x[t]);
}

static void dots64_portable(double *out, int64_t ldo, const float *a, const float *b,
                            int64_t m, int64_t n, int64_t d)
{
    for (int64_t r = 0; r < m; r++)
        for (int64_t t = 0; t < n; t++) {
            const float *u = a + r * d, *v = b + t * d;
            double acc[8] = {0};
            int64_t k = 0;
            for (; k + 8 <= d; k += 8)
                for (int l = 0; l < 8; l++) acc[l] += (double)u[k + l] * v[k + l];
            for (int l = 0; k + l < d; l++) acc[l] += (double)u[k + l] * v[k + l];
            out[r * ldo + t] = ((acc[0] + acc[4]) + (acc[2] + acc[6])) +
                               ((acc[1] + acc[5]) + (acc[3] + acc[7]));
        }
}

static double dot_portable(const double *u, const double *v, int64_t n)
{
    double acc[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++) acc[l] += u[k + l] * v[k + l];
    for (int l = 0; k + l < n; l++) acc[l] += u[k + l] * v[k + l];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

#ifdef FM_K64_X86
/* e^x = 2^n e^r, x = n ln 2 + r, |r| <= ln 2 / 2, e^r by its Taylor series to r^12 (the
 * remainder below 2e-16 relative) in Horner form */
static __attribute__((target("avx512f"))) void exp_avx512(double *x, int64_t n)
{
    static const double c[13] = {1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800,
                                 1.0 / 362880, 1.0 / 40320, 1.0 / 5040, 1.0 / 720, 1.0 / 120,
                                 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0};
    int64_t t = 0;
    for (; t < n; t += 8) {
        __mmask8 in = n - t >= 8 ? 0xff : (__mmask8)((1u << (n - t)) - 1);
        __m512d v = _mm512_maskz_loadu_pd(in, x + t);
        __mmask8 keep = _mm512_cmp_pd_mask(v, _mm512_set1_pd(X_MIN), _CMP_GE_OQ);
        __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(v, _mm512_set1_pd(LOG2E)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(LN2_HI), v);
        r = _mm512_fnmadd_pd(k, _mm512_set1_pd(LN2_LO), r);
        __m512d p = _mm512_set1_pd(c[0]);
        for (int i = 1; i < 13; i++) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c[i]));
        p = _mm512_maskz_mov_pd(keep, _mm512_scalef_pd(p, k));
        _mm512_mask_storeu_pd(x + t, in, p);
    }
}

/* 8 floats (those of mask in) as doubles */
static inline __attribute__((always_inline, target("avx512f")))
__m512d load8(__mmask8 in, const float *p)
{
    return _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps((__mmask16)in, p)));
}

/* the 4 x 4 tiles of dots64_portable: lane l sums the k with k % 8 == l */
static inline __attribute__((always_inline, target("avx512f")))
void tile64_avx512(double *out, int64_t ldo, const float *a, const float *b, int64_t d,
                   const int mr, const int nr)
{
    __m512d acc[4][4];
    for (int r = 0; r < mr; r++)
        for (int t = 0; t < nr; t++) acc[r][t] = _mm512_setzero_pd();
    for (int64_t k = 0; k < d; k += 8) {
        __mmask8 in = d - k >= 8 ? 0xff : (__mmask8)((1u << (d - k)) - 1);
        __m512d u[4], v[4];
        for (int r = 0; r < mr; r++) u[r] = load8(in, a + r * d + k);
        for (int t = 0; t < nr; t++) v[t] = load8(in, b + t * d + k);
        for (int r = 0; r < mr; r++)
            for (int t = 0; t < nr; t++) acc[r][t] = _mm512_fmadd_pd(u[r], v[t], acc[r][t]);
    }
    for (int r = 0; r < mr; r++)
        for (int t = 0; t < nr; t++) out[r * ldo + t] = _mm512_reduce_add_pd(acc[r][t]);
}

static __attribute__((target("avx512f")))
void dots64_avx512(double *out, int64_t ldo, const float *a, const float *b, int64_t m,
                   int64_t n, int64_t d)
{
    int64_t r = 0;
    for (; r + 4 <= m; r += 4) {
        int64_t t = 0;
        for (; t + 4 <= n; t += 4) tile64_avx512(out + r * ldo + t, ldo, a + r * d, b + t * d, d, 4, 4);
        for (; t < n; t++) tile64_avx512(out + r * ldo + t, ldo, a + r * d, b + t * d, d, 4, 1);
    }
    for (; r < m; r++) {
        int64_t t = 0;
        for (; t + 4 <= n; t += 4) tile64_avx512(out + r * ldo + t, ldo, a + r * d, b + t * d, d, 1, 4);
        for (; t < n; t++) tile64_avx512(out + r * ldo + t, ldo, a + r * d, b + t * d, d, 1, 1);
    }
}

static __attribute__((target("avx512f"))) double dot_avx512(const double *u, const double *v,
                                                            int64_t n)
{
    __m512d acc = _mm512_setzero_pd();
    for (int64_t k = 0; k < n; k += 8) {
        __mmask8 in = n - k >= 8 ? 0xff : (__mmask8)((1u << (n - k)) - 1);
        acc = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(in, u + k), _mm512_maskz_loadu_pd(in, v + k), acc);
    }
    return _mm512_reduce_add_pd(acc);
}
#endif

enum fm_kernel fm_svm_k64_best(void)
{
#ifdef FM_K64_X86
    if (fm_cpu_has(FM_CPU_AVX512)) return FM_KERNEL_AVX512;
#endif
    return FM_KERNEL_PORTABLE;
}

/* FM_KERNEL_AUTO resolved; -1 for a kernel this build or CPU lacks */
static int resolve(enum fm_kernel kernel)
{
    if (kernel == FM_KERNEL_AUTO) return (int)fm_svm_k64_best();
    if (kernel == FM_KERNEL_PORTABLE) return (int)kernel;
    return kernel == FM_KERNEL_AVX512 && fm_svm_k64_best() == FM_KERNEL_AVX512 ? (int)kernel : -1;
}

int fm_svm_exp64(double *x, int64_t n, enum fm_kernel kernel)
{
    int k = resolve(kernel);
#ifdef FM_K64_X86
    if (k == FM_KERNEL_AVX512) { exp_avx512(x, n); return FM_OK; }
#endif
    if (k != FM_KERNEL_PORTABLE) return FM_EINVAL;
    exp_portable(x, n);
    return FM_OK;
}

int fm_svm_dots64(double *out, int64_t ldo, const float *a, const float *b, int64_t m,
                  int64_t n, int64_t d, enum fm_kernel kernel)
{
    int k = resolve(kernel);
#ifdef FM_K64_X86
    if (k == FM_KERNEL_AVX512) { dots64_avx512(out, ldo, a, b, m, n, d); return FM_OK; }
#endif
    if (k != FM_KERNEL_PORTABLE) return FM_EINVAL;
    dots64_portable(out, ldo, a, b, m, n, d);
    return FM_OK;
}

double fm_svm_dot64(const double *u, const double *v, int64_t n, enum fm_kernel kernel)
{
#ifdef FM_K64_X86
    if (kernel == FM_KERNEL_AVX512) return dot_avx512(u, v, n);
#endif
    return dot_portable(u, v, n);
}

void fm_svm_sq_norms64(double *out, const float *x, int64_t n, int64_t d)
{
    for (int64_t i = 0; i < n; i++) {
        const float *r = x + i * d;
        double s = 0.0;
        for (int64_t t = 0; t < d; t++) s += (double)r[t] * r[t];
        out[i] = s;
    }
}

void fm_svm_map64(double *k, const double *na, double nb, int64_t n,
                  const fm_svm_kernel_params *kp)
{
    if (kp->kernel == FM_SVM_LINEAR) return;
    if (kp->kernel == FM_SVM_POLY) {
        for (int64_t t = 0; t < n; t++) k[t] = fm_svm_powi(kp->gamma * k[t] + kp->coef0, kp->degree);
        return;
    }
    for (int64_t t = 0; t < n; t++) {
        double d2 = na[t] + nb - 2.0 * k[t];
        k[t] = -kp->gamma * (d2 > 0.0 ? d2 : 0.0);
    }
    fm_svm_exp64(k, n, FM_KERNEL_AUTO);
}

void fm_svm_u8_row64(double *k, const int32_t *dot, int32_t qsq, const int32_t *xsq,
                     const fm_svm_kernel_params *kp, double scale2, int64_t n)
{
    const double g2 = kp->gamma * scale2;
    if (kp->kernel == FM_SVM_RBF) {
        for (int64_t t = 0; t < n; t++) k[t] = -g2 * (double)((int64_t)qsq + xsq[t] - 2 * (int64_t)dot[t]);
        fm_svm_exp64(k, n, FM_KERNEL_AUTO);
    } else if (kp->kernel == FM_SVM_LINEAR) {
        for (int64_t t = 0; t < n; t++) k[t] = scale2 * dot[t];
    } else {
        for (int64_t t = 0; t < n; t++) k[t] = fm_svm_powi(g2 * dot[t] + kp->coef0, kp->degree);
    }
}
