/* rbf.c: a row of Q = y y^T K for the rbf kernel from exact integer dot products (the byte
 * rows' path in smo.c; decisions in kernel64.c): gathers, the squared distance, exp and
 * the label signs in one pass; the linear and polynomial rows of bytes beside it. exp is Cephes'
 * expf (range reduction by ln 2, a degree-5 polynomial, within 2 ulp) written the same way
 * in both kernels, so AVX-512 and portable rows are bit-identical. Not the distances
 * (neighbors/u8dot.h) nor float rows (kernel.c). */
#include <math.h>

#include "core/cpu.h"
#include "svm/svm.h"

#if defined(__x86_64__) || defined(__i386__)
#define FM_RBF_X86 1
#include <immintrin.h>
#endif

#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f /* ln 2 = LN2_HI - LN2_LO, LN2_HI exact in few bits */
#define LN2_LO -2.12194440e-4f
#define P0 1.9875691500e-4f
#define P1 1.3981999507e-3f
#define P2 8.3334519073e-3f
#define P3 4.1665795894e-2f
#define P4 1.6666665459e-1f
#define P5 5.0000001201e-1f
/* below this e^x (about 1.6e-38) is taken as 0, so every result is a normal float */
#define X_MIN -87.0f

/* e^x for x <= 0: x = n ln 2 + r, |r| <= ln 2 / 2, e^r = 1 + r + r^2 p(r), times 2^n */
static float exp_neg(float x)
{
    if (x < X_MIN) return 0.0f;
    float n = rintf(x * LOG2E);
    float r = fmaf(n, -LN2_HI, x);
    r = fmaf(n, -LN2_LO, r);
    float p = fmaf(fmaf(fmaf(fmaf(fmaf(P0, r, P1), r, P2), r, P3), r, P4), r, P5);
    return ldexpf(fmaf(p, r * r, r) + 1.0f, (int)n);
}

static void row_portable(float *q, const int32_t *dot, int32_t qsq, const int32_t *xsq,
                         const int64_t *col, const int8_t *y, int yi, double g2, int64_t from,
                         int64_t len)
{
    for (int64_t t = from; t < len; t++) {
        int64_t dist = (int64_t)qsq + xsq[col[t]] - 2 * (int64_t)dot[col[t]];
        q[t] = exp_neg((float)(-g2 * dist)) * (float)(yi * y[t]);
    }
}

#ifdef FM_RBF_X86
/* 8 arguments (float)(-g2 * dist) through float64, as row_portable */
static inline __attribute__((always_inline, target("avx512f")))
__m256 arg8(const int32_t *dot, __m256i qsq, const int32_t *xsq, const int64_t *col, __m512d ng2)
{
    __m512i c = _mm512_loadu_si512(col);
    __m256i dt = _mm512_i64gather_epi32(c, dot, 4), xs = _mm512_i64gather_epi32(c, xsq, 4);
    /* wraps modulo 2^32 on the way, exact at the end (a distance < 2^31) */
    __m256i dist = _mm256_sub_epi32(_mm256_add_epi32(qsq, xs), _mm256_slli_epi32(dt, 1));
    return _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(dist), ng2));
}

static __attribute__((target("avx512f")))
void row_avx512(float *q, const int32_t *dot, int32_t qsq, const int32_t *xsq,
                const int64_t *col, const int8_t *y, int yi, double g2, int64_t len)
{
    const __m512d ng2 = _mm512_set1_pd(-g2);
    const __m256i qs = _mm256_set1_epi32(qsq);
    const __m512 ysign = _mm512_set1_ps((float)yi);
    int64_t t = 0;
    for (; t + 16 <= len; t += 16) {
        __m512d lo = _mm512_castps_pd(_mm512_castps256_ps512(arg8(dot, qs, xsq, col + t, ng2)));
        __m512d both = _mm512_insertf64x4(
            lo, _mm256_castps_pd(arg8(dot, qs, xsq, col + t + 8, ng2)), 1);
        __m512 x = _mm512_castpd_ps(both);
        __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(X_MIN), _CMP_GE_OQ);
        __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), x);
        r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
        __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(P0), r, _mm512_set1_ps(P1));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P2));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P3));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P4));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P5));
        __m512 e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
        e = _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(e, n));
        __m512 s = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(y + t))));
        _mm512_storeu_ps(q + t, _mm512_mul_ps(e, _mm512_mul_ps(s, ysign)));
    }
    row_portable(q, dot, qsq, xsq, col, y, yi, g2, t, len);
}
#endif

enum fm_kernel fm_svm_rbf_row_best(void)
{
#ifdef FM_RBF_X86
    if (fm_cpu_has(FM_CPU_AVX512)) return FM_KERNEL_AVX512;
#endif
    return FM_KERNEL_PORTABLE;
}

int fm_svm_rbf_row(float *q, const int32_t *dot, int32_t qsq, const int32_t *xsq,
                   const int64_t *col, const int8_t *y, int yi, double g2, int64_t len,
                   enum fm_kernel kernel)
{
    if (kernel == FM_KERNEL_AUTO) kernel = fm_svm_rbf_row_best();
#ifdef FM_RBF_X86
    if (kernel == FM_KERNEL_AVX512) {
        if (!fm_cpu_has(FM_CPU_AVX512)) return FM_EINVAL;
        row_avx512(q, dot, qsq, xsq, col, y, yi, g2, len);
        return FM_OK;
    }
#endif
    if (kernel != FM_KERNEL_PORTABLE) return FM_EINVAL;
    row_portable(q, dot, qsq, xsq, col, y, yi, g2, 0, len);
    return FM_OK;
}

void fm_svm_u8_row(float *q, const int32_t *dot, int32_t qsq, const int32_t *xsq,
                   const int64_t *col, const int8_t *y, int yi, const fm_svm_kernel_params *kp,
                   double scale2, int64_t len)
{
    const double g2 = kp->gamma * scale2;
    if (kp->kernel == FM_SVM_RBF) {
        fm_svm_rbf_row(q, dot, qsq, xsq, col, y, yi, g2, len, FM_KERNEL_AUTO);
        return;
    }
    for (int64_t t = 0; t < len; t++) {
        int32_t v = dot[col[t]];
        float k = (float)(kp->kernel == FM_SVM_LINEAR
                              ? scale2 * v : fm_svm_powi(g2 * v + kp->coef0, kp->degree));
        q[t] = yi == y[t] ? k : -k;
    }
}
