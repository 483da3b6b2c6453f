/* boost_hist.c: the booster's inner loops (declared in boost_hist.h): one feature's
 * gradient/hessian/count histogram over a leaf's rows, the subtraction that gives the
 * larger child's, and the threshold scan, portable and AVX-512 (the same splits).
 * Not here: the tree's growth and the rounds (boost.c). */
#include "trees/boost_hist.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define FM_BOOST_X86 1
#include <immintrin.h>
#endif

/* both kernels of the scan round each product and sum apart, so they agree to the bit:
 * GCC takes the functions' optimize attributes, clang ignores them and takes this */
#ifdef __clang__
#pragma clang fp contract(off)
#endif

static inline void add4(float *restrict h, const float *restrict g)
{
    for (int c = 0; c < FM_BOOST_LANES; c++) h[c] += g[c];
}

/* Rows alternate between hist and spare when the leaf has several rows a bin: runs of one
 * code (background pixels are 0 in most rows) would otherwise chain every add on the
 * store of the one before. */
void fm_boost_hist_build(float *hist, float *spare, const uint8_t *code, const int64_t *rows,
                         const float *gh, int64_t m, int64_t nb)
{
    int two = m >= 4 * nb;
    float *h2 = two ? spare : hist;
    memset(hist, 0, (size_t)nb * FM_BOOST_LANES * sizeof(float));
    if (two) memset(spare, 0, (size_t)nb * FM_BOOST_LANES * sizeof(float));
    int64_t j = 0;
    if (rows) {
        for (; j + 1 < m; j += 2) {
            unsigned b0 = code[rows[j]], b1 = code[rows[j + 1]];
            add4(hist + 4 * b0, gh + 4 * j);
            add4(h2 + 4 * b1, gh + 4 * j + 4);
        }
        if (j < m) add4(hist + 4 * code[rows[j]], gh + 4 * j);
    } else {
        for (; j + 1 < m; j += 2) {
            unsigned b0 = code[j], b1 = code[j + 1];
            add4(hist + 4 * b0, gh + 4 * j);
            add4(h2 + 4 * b1, gh + 4 * j + 4);
        }
        if (j < m) add4(hist + 4 * code[j], gh + 4 * j);
    }
    if (two)
        for (int64_t i = 0; i < nb * FM_BOOST_LANES; i++) hist[i] += spare[i];
}

void fm_boost_hist_sub(float *big, const float *small, int64_t len)
{
    for (int64_t i = 0; i < len; i++) big[i] -= small[i];
}

/* Left-side sums after each bin but the last, in double: gl, hl, cl (nb - 1 each). */
static void prefix(double *restrict gl, double *restrict hl, double *restrict cl,
                   const float *restrict hist, int64_t nb)
{
    double g = 0.0, h = 0.0, c = 0.0;
    for (int64_t b = 0; b + 1 < nb; b++) {
        g += hist[4 * b];
        h += hist[4 * b + 1];
        c += hist[4 * b + 2];
        gl[b] = g;
        hl[b] = h;
        cl[b] = c;
    }
}

/* The candidate b: score num / den = gl^2 / l + gr^2 / r with l = hl + lambda,
 * r = hr + lambda. Offered when num > best * den, kept when num / den > best. */
static inline __attribute__((always_inline)) void offer(double *score, int64_t *bin, double *sums,
                                                        double num, double den, int64_t b,
                                                        double g, double h, double c)
{
    if (!(num > *score * den)) return;
    double s = num / den;
    if (s > *score) {
        *score = s;
        *bin = b;
        sums[0] = g; sums[1] = h; sums[2] = c;
    }
}

__attribute__((optimize("fp-contract=off")))
static void scan_portable(double *score, int64_t *bin, double *sums, const double *gl,
                          const double *hl, const double *cl, int64_t len, const double *total,
                          const fm_boost_limits *lim)
{
    const double G = total[0], H = total[1], C = total[2], lam = lim->lambda;
    for (int64_t b = 0; b < len; b++) {
        double gr = G - gl[b], hr = H - hl[b], cr = C - cl[b];
        if (cl[b] < lim->min_count || cr < lim->min_count || hl[b] < lim->min_hess ||
            hr < lim->min_hess)
            continue;
        double l = hl[b] + lam, r = hr + lam;
        double num = gl[b] * gl[b] * r + gr * gr * l, den = l * r;
        offer(score, bin, sums, num, den, b, gl[b], hl[b], cl[b]);
    }
}

#ifdef FM_BOOST_X86
/* scan_portable eight bins at a time: the same num and den (no fused multiply-adds), the
 * limits as masks; lanes that beat the best as it was before the eight go to offer in
 * order, which tests them against the best as it is by then, as scan_portable does. */
__attribute__((target("avx512f"), optimize("fp-contract=off")))
static void scan_avx512(double *score, int64_t *bin, double *sums, const double *gl,
                        const double *hl, const double *cl, int64_t len, const double *total,
                        const fm_boost_limits *lim)
{
    const __m512d G = _mm512_set1_pd(total[0]), H = _mm512_set1_pd(total[1]),
                  C = _mm512_set1_pd(total[2]), lam = _mm512_set1_pd(lim->lambda),
                  mc = _mm512_set1_pd(lim->min_count), mh = _mm512_set1_pd(lim->min_hess);
    for (int64_t b = 0; b < len; b += 8) {
        __mmask8 in = len - b >= 8 ? 0xFF : (__mmask8)((1u << (len - b)) - 1);
        __m512d g = _mm512_maskz_loadu_pd(in, gl + b), h = _mm512_maskz_loadu_pd(in, hl + b),
                c = _mm512_maskz_loadu_pd(in, cl + b);
        __m512d gr = _mm512_sub_pd(G, g), hr = _mm512_sub_pd(H, h), cr = _mm512_sub_pd(C, c);
        __mmask8 ok = in & _mm512_cmp_pd_mask(c, mc, _CMP_GE_OQ) &
                      _mm512_cmp_pd_mask(cr, mc, _CMP_GE_OQ) &
                      _mm512_cmp_pd_mask(h, mh, _CMP_GE_OQ) & _mm512_cmp_pd_mask(hr, mh, _CMP_GE_OQ);
        if (!ok) continue;
        __m512d l = _mm512_add_pd(h, lam), r = _mm512_add_pd(hr, lam);
        __m512d num = _mm512_add_pd(_mm512_mul_pd(_mm512_mul_pd(g, g), r),
                                    _mm512_mul_pd(_mm512_mul_pd(gr, gr), l));
        __m512d den = _mm512_mul_pd(l, r);
        __m512d bar = _mm512_mul_pd(_mm512_set1_pd(*score), den);
        __mmask8 pass = ok & _mm512_cmp_pd_mask(num, bar, _CMP_GT_OQ);
        if (!pass) continue;
        double nums[8], dens[8];
        _mm512_storeu_pd(nums, num);
        _mm512_storeu_pd(dens, den);
        for (unsigned bits = pass; bits; bits &= bits - 1) {
            int j = __builtin_ctz(bits);
            offer(score, bin, sums, nums[j], dens[j], b + j, gl[b + j], hl[b + j], cl[b + j]);
        }
    }
}
#endif

void fm_boost_scan(double *score, int64_t *bin, double *sums, const float *hist, int64_t nb,
                   const double *total, const fm_boost_limits *lim, double *scratch,
                   enum fm_kernel kernel)
{
    if (nb < 2) return;
    double *gl = scratch, *hl = scratch + 256, *cl = scratch + 512;
    prefix(gl, hl, cl, hist, nb);
#ifdef FM_BOOST_X86
    if (kernel == FM_KERNEL_AVX512) {
        scan_avx512(score, bin, sums, gl, hl, cl, nb - 1, total, lim);
        return;
    }
#endif
    (void)kernel;
    scan_portable(score, bin, sums, gl, hl, cl, nb - 1, total, lim);
}
