/* select.c: libsvm's working-set selection (WSS3), the two O(active) scans every SMO
 * iteration makes: the i in I_up of largest -y_i G_i; then over the j in I_low, the largest
 * y_j G_j and the j of least second-order objective -(b^2 / a). Portable and AVX-512 (8
 * lanes of float64, the same operations in the same order, ties to the last index as
 * libsvm), so both pick the same i and j. Not the update (smo.c, grad.c). */
#include <math.h>

#include "core/cpu.h"
#include "svm/svm.h"

#if defined(__x86_64__) || defined(__i386__)
#define FM_SELECT_X86 1
#include <immintrin.h>
#endif

#define TAU 1e-12

static void scan_i_portable(int64_t *i, double *Gmax, const double *G, const int8_t *y,
                            const char *status, int64_t from, int64_t n)
{
    for (int64_t t = from; t < n; t++) {
        if (status[t] == fm_svm_up_excludes(y[t])) continue;
        double v = -y[t] * G[t];
        if (v >= *Gmax) { *Gmax = v; *i = t; }
    }
}

static void scan_portable(fm_svm_pick *pk, const double *G, const int8_t *y, const char *status,
                          const double *QD, const float *Q_i, int yi, double QD_i, double Gmax,
                          int64_t from, int64_t n)
{
    for (int64_t j = from; j < n; j++) {
        if (status[j] == fm_svm_low_excludes(y[j])) continue;
        double yg = y[j] * G[j], grad_diff = Gmax + yg;
        if (yg >= pk->Gmax2) pk->Gmax2 = yg;
        if (grad_diff > 0) {
            double quad = QD_i + QD[j] - 2.0 * yi * y[j] * Q_i[j];
            double obj_diff = -(grad_diff * grad_diff) / (quad > 0 ? quad : TAU);
            if (obj_diff <= pk->obj_min) { pk->j = j; pk->obj_min = obj_diff; }
        }
    }
}

#ifdef FM_SELECT_X86
/* The 8 labels y[0..7] (into the low 8 of 16 int32 lanes of *yv; the high 8 are zero,
 * their bits unused) and the mask of those whose status is not the bound its label
 * excludes: for_positive for y = +1, for_negative for y = -1 (fm_svm_up_excludes(+1) and
 * (-1) give I_up; fm_svm_low_excludes, I_low) */
static inline __attribute__((always_inline, target("avx512f")))
__mmask8 members8(__m512i *yv, const int8_t *y, const char *status, int for_positive,
                  int for_negative)
{
    *yv = _mm512_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)y));
    __m512i sv = _mm512_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)status));
    __mmask16 pos = _mm512_cmpgt_epi32_mask(*yv, _mm512_setzero_si512());
    return (__mmask8)((pos & _mm512_cmpneq_epi32_mask(sv, _mm512_set1_epi32(for_positive))) |
                      (~pos & _mm512_cmpneq_epi32_mask(sv, _mm512_set1_epi32(for_negative))));
}

static __attribute__((target("avx512f")))
void scan_avx512(fm_svm_pick *pk, const double *G, const int8_t *y, const char *status,
                 const double *QD, const float *Q_i, int yi, double QD_i, double Gmax, int64_t n)
{
    const __m512d zero = _mm512_setzero_pd(), gmax = _mm512_set1_pd(Gmax);
    const __m512d qdi = _mm512_set1_pd(QD_i), tau = _mm512_set1_pd(TAU);
    const __m512d two_yi = _mm512_set1_pd(2.0 * yi);
    const __m512i sign = _mm512_set1_epi64(INT64_MIN);
    const int pos_out = fm_svm_low_excludes(1), neg_out = fm_svm_low_excludes(-1);
    __m512d gmax2 = _mm512_set1_pd(-INFINITY), best = _mm512_set1_pd(INFINITY);
    __m512i best_j = _mm512_set1_epi64(-1), js = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8, js = _mm512_add_epi64(js, _mm512_set1_epi64(8))) {
        __m512i yv;
        __mmask8 low = members8(&yv, y + j, status + j, pos_out, neg_out);  /* in I_low */
        __m512d yd = _mm512_cvtepi32_pd(_mm512_castsi512_si256(yv));
        __m512d yg = _mm512_mul_pd(yd, _mm512_loadu_pd(G + j));
        gmax2 = _mm512_mask_max_pd(gmax2, low, gmax2, yg);
        __m512d gd = _mm512_add_pd(gmax, yg);
        __mmask8 up = low & _mm512_cmp_pd_mask(gd, zero, _CMP_GT_OQ);
        if (!up) continue;
        __m512d q = _mm512_cvtps_pd(_mm256_loadu_ps(Q_i + j));
        __m512d quad = _mm512_sub_pd(_mm512_add_pd(qdi, _mm512_loadu_pd(QD + j)),
                                     _mm512_mul_pd(_mm512_mul_pd(two_yi, yd), q));
        quad = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(quad, zero, _CMP_GT_OQ), tau, quad);
        __m512d neg = _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(_mm512_mul_pd(gd, gd)), sign));
        __m512d od = _mm512_div_pd(neg, quad);
        __mmask8 better = up & _mm512_cmp_pd_mask(od, best, _CMP_LE_OQ);
        best = _mm512_mask_mov_pd(best, better, od);
        best_j = _mm512_mask_mov_epi64(best_j, better, js);
    }
    /* lanes hold interleaved j: the least objective, and of equals the last j, as the
     * sequential scan */
    double bv[8], gv[8];
    int64_t bj[8];
    _mm512_storeu_pd(bv, best);
    _mm512_storeu_pd(gv, gmax2);
    _mm512_storeu_si512(bj, best_j);
    for (int l = 0; l < 8; l++) {
        if (gv[l] >= pk->Gmax2) pk->Gmax2 = gv[l];
        if (bj[l] >= 0 && (bv[l] < pk->obj_min || (bv[l] == pk->obj_min && bj[l] > pk->j))) {
            pk->obj_min = bv[l];
            pk->j = bj[l];
        }
    }
    scan_portable(pk, G, y, status, QD, Q_i, yi, QD_i, Gmax, j, n);
}

static __attribute__((target("avx512f")))
void scan_i_avx512(int64_t *i, double *Gmax, const double *G, const int8_t *y,
                   const char *status, int64_t n)
{
    const int pos_out = fm_svm_up_excludes(1), neg_out = fm_svm_up_excludes(-1);
    __m512d best = _mm512_set1_pd(-INFINITY);
    __m512i best_t = _mm512_set1_epi64(-1), ts = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    int64_t t = 0;
    for (; t + 8 <= n; t += 8, ts = _mm512_add_epi64(ts, _mm512_set1_epi64(8))) {
        __m512i yv;
        __mmask8 up = members8(&yv, y + t, status + t, pos_out, neg_out);  /* in I_up */
        __m512d nyd = _mm512_cvtepi32_pd(_mm256_sub_epi32(_mm256_setzero_si256(),
                                                          _mm512_castsi512_si256(yv)));
        __m512d v = _mm512_mul_pd(nyd, _mm512_loadu_pd(G + t));
        __mmask8 better = up & _mm512_cmp_pd_mask(v, best, _CMP_GE_OQ);
        best = _mm512_mask_mov_pd(best, better, v);
        best_t = _mm512_mask_mov_epi64(best_t, better, ts);
    }
    double bv[8];
    int64_t bt[8];
    _mm512_storeu_pd(bv, best);
    _mm512_storeu_si512(bt, best_t);
    for (int l = 0; l < 8; l++)
        if (bt[l] >= 0 && (bv[l] > *Gmax || (bv[l] == *Gmax && bt[l] > *i))) {
            *Gmax = bv[l];
            *i = bt[l];
        }
    scan_i_portable(i, Gmax, G, y, status, t, n);
}
#endif

enum fm_kernel fm_svm_select_best(void)
{
#ifdef FM_SELECT_X86
    if (fm_cpu_has(FM_CPU_AVX512)) return FM_KERNEL_AVX512;
#endif
    return FM_KERNEL_PORTABLE;
}

int fm_svm_select_j(fm_svm_pick *pk, const double *G, const int8_t *y, const char *status,
                    const double *QD, const float *Q_i, int yi, double QD_i, double Gmax,
                    int64_t n, enum fm_kernel kernel)
{
    *pk = (fm_svm_pick){-1, INFINITY, -INFINITY};
    if (kernel == FM_KERNEL_AUTO) kernel = fm_svm_select_best();
#ifdef FM_SELECT_X86
    if (kernel == FM_KERNEL_AVX512) {
        if (!fm_cpu_has(FM_CPU_AVX512)) return FM_EINVAL;
        scan_avx512(pk, G, y, status, QD, Q_i, yi, QD_i, Gmax, n);
        return FM_OK;
    }
#endif
    if (kernel != FM_KERNEL_PORTABLE) return FM_EINVAL;
    scan_portable(pk, G, y, status, QD, Q_i, yi, QD_i, Gmax, 0, n);
    return FM_OK;
}

int fm_svm_select_i(int64_t *i, double *Gmax, const double *G, const int8_t *y,
                    const char *status, int64_t n, enum fm_kernel kernel)
{
    *i = -1;
    *Gmax = -INFINITY;
    if (kernel == FM_KERNEL_AUTO) kernel = fm_svm_select_best();
#ifdef FM_SELECT_X86
    if (kernel == FM_KERNEL_AVX512) {
        if (!fm_cpu_has(FM_CPU_AVX512)) return FM_EINVAL;
        scan_i_avx512(i, Gmax, G, y, status, n);
        return FM_OK;
    }
#endif
    if (kernel != FM_KERNEL_PORTABLE) return FM_EINVAL;
    scan_i_portable(i, Gmax, G, y, status, 0, n);
    return FM_OK;
}
