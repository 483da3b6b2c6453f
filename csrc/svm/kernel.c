/* kernel.c: SVM kernel values in blocks: the dot products of many rows at once through
 * fm_gemm, then the kernel's map (rbf from squared norms, polynomial, linear). Not the
 * solver (smo.c) nor the pair bookkeeping (ovo.c). */
#include <math.h>

#include "core/gemm.h"
#include "svm/svm.h"

/* from this many rows of a on, fm_gemm's packing pays (benchmarks/bench_svm.py --dots) */
#define GEMM_ROWS 128

void fm_svm_sq_norms(float *out, const float *x, int64_t n, int64_t d)
{
    for (int64_t i = 0; i < n; i++) {
        const float *r = x + i * d;
        double s = 0.0;
        for (int64_t t = 0; t < d; t++) s += (double)r[t] * r[t];
        out[i] = (float)s;
    }
}

void fm_svm_u8_sq_sums(int32_t *out, const uint8_t *xb, int64_t n, int64_t d)
{
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *r = xb + i * d;
        int32_t s = 0;
        for (int64_t t = 0; t < d; t++) s += r[t] * r[t];
        out[i] = s;
    }
}

double fm_svm_powi(double base, int64_t times)
{
    double tmp = base, ret = 1.0;
    for (int64_t t = times; t > 0; t /= 2) {
        if (t % 2 == 1) ret *= tmp;
        tmp *= tmp;
    }
    return ret;
}

/* out[i, j] = map(dot[i, j]) in place over an (m, n) block */
static void kernel_map(float *out, int64_t ldo, const float *na, const float *nb, int64_t m,
                       int64_t n, const fm_svm_kernel_params *kp)
{
    if (kp->kernel == FM_SVM_LINEAR) return;
    /* gamma stays float64: "scale" on tiny values gives a gamma beyond float32 */
    const double g = kp->gamma;
    for (int64_t i = 0; i < m; i++) {
        float *r = out + i * ldo;
        if (kp->kernel == FM_SVM_RBF) {
            /* |u - v|^2 = |u|^2 + |v|^2 - 2 u.v, clipped at 0 where rounding makes it negative */
            const float ni = na[i];
            for (int64_t j = 0; j < n; j++) {
                float d2 = ni + nb[j] - 2.0f * r[j];
                r[j] = expf((float)(-g * (d2 > 0.0f ? d2 : 0.0f)));
            }
        } else {
            for (int64_t j = 0; j < n; j++)
                r[j] = (float)fm_svm_powi(kp->gamma * r[j] + kp->coef0, kp->degree);
        }
    }
}

int fm_svm_kernel_block(float *out, int64_t ldo, const float *a, const float *na,
                        const float *b, const float *nb, int64_t m, int64_t n, int64_t d,
                        const fm_svm_kernel_params *kp)
{
    if (m == 0 || n == 0) return FM_OK;
    /* out = A B^T: (m, d) x (d, n) */
    int status = m >= GEMM_ROWS
                     ? fm_gemm(out, ldo, a, d, FM_NO_TRANS, b, d, FM_TRANS, m, n, d, 1.0f, 0.0f,
                               FM_KERNEL_AUTO, 1)
                     : fm_svm_dots(out, ldo, a, b, m, n, d, FM_KERNEL_AUTO);
    if (status == FM_OK) kernel_map(out, ldo, na, nb, m, n, kp);
    return status;
}

void fm_svm_kernel_naive(double *out, int64_t ldo, const float *a, const float *b,
                         int64_t m, int64_t n, int64_t d, const fm_svm_kernel_params *kp)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            const float *u = a + i * d, *v = b + j * d;
            double s = 0.0;
            if (kp->kernel == FM_SVM_RBF) {
                for (int64_t t = 0; t < d; t++) s += ((double)u[t] - v[t]) * ((double)u[t] - v[t]);
                out[i * ldo + j] = exp(-kp->gamma * s);
            } else {
                for (int64_t t = 0; t < d; t++) s += (double)u[t] * v[t];
                out[i * ldo + j] = kp->kernel == FM_SVM_LINEAR
                                       ? s : fm_svm_powi(kp->gamma * s + kp->coef0, kp->degree);
            }
        }
}
