/* linear.c: softmax regression: forward through fm_gemm, softmax cross-entropy, and the
 * minibatch SGD epoch. Not a general optimizer library: the networks have their own. */
#include <math.h>
#include <string.h>

#include "core/common.h"
#include "core/gemm.h"
#include "nn/layers.h"
#include "linear/linear.h"
#include "nn/optim.h"

void fm_softmax_rows(float *z, int64_t n, int64_t k)
{
    for (int64_t i = 0; i < n; i++) {
        float *r = z + i * k;
        float mx = r[0];
        for (int64_t j = 1; j < k; j++) mx = r[j] > mx ? r[j] : mx;
        double s = 0.0;
        for (int64_t j = 0; j < k; j++) { r[j] = expf(r[j] - mx); s += r[j]; }
        float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < k; j++) r[j] *= inv;
    }
}

double fm_softmax_xent(float *dz, int64_t *n_correct,
                       const float *z, const int64_t *y, const float *t, const float *sw,
                       int64_t n, int64_t k, float scale)
{
    double loss = 0.0;
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *r = z + i * k, *ti = t ? t + i * k : NULL;
        float *g = dz + i * k;
        int64_t arg = 0, label = 0;
        for (int64_t j = 1; j < k; j++) arg = r[j] > r[arg] ? j : arg;
        if (ti)
            for (int64_t j = 1; j < k; j++) label = ti[j] > ti[label] ? j : label;
        else
            label = y[i];
        float mx = r[arg];
        /* CE = -sum_j t_j (z_j - max - log s) = log s sum_j t_j - sum_j t_j (z_j - max);
         * dCE/dz = softmax(z) - t. Zero targets are skipped, so one-hot t and its label y
         * round identically. One expf per logit, kept in g until s is known (g may be z
         * itself: each r[j] is read before g[j] is written). */
        double s = 0.0, tz = 0.0, tsum = 0.0;
        for (int64_t j = 0; j < k; j++) {
            float tj = ti ? ti[j] : (float)(j == y[i]);
            if (tj != 0.0f) {
                tz += tj * ((double)r[j] - mx);
                tsum += tj;
            }
            g[j] = expf(r[j] - mx);
            s += g[j];
        }
        double logs = log(s), w = sw ? sw[i] : 1.0;
        float c = (float)(w * scale), inv = (float)(1.0 / s);
        if (tsum != 0.0) loss -= w * (tz - tsum * logs);
        for (int64_t j = 0; j < k; j++) {
            float tj = ti ? ti[j] : (float)(j == y[i]);
            g[j] = c * g[j] * inv - c * tj;
        }
        hits += arg == label;
    }
    if (n_correct) *n_correct += hits;
    return loss;
}

int fm_linear_forward(float *logits, const float *x, const float *w, const float *b,
                      int64_t n, int64_t d, int64_t k, int nthreads)
{
    return fm_dense_forward(logits, x, w, b, n, d, k, 0, nthreads);
}

int fm_linear_sgd_epoch(float *w, float *b, float *vw, float *vb,
                        double *loss_sum, int64_t *n_correct,
                        const float *x, const int64_t *y, const float *sw,
                        const int64_t *order, const float *lr,
                        int64_t n, int64_t m, int64_t d, int64_t k, int64_t batch,
                        float momentum, int nesterov, float alpha, int nthreads)
{
    (void)n;
    int status = FM_OK;
    float *xb = fm_alloc((size_t)(batch * d) * sizeof(float));
    float *z = fm_alloc((size_t)(batch * k) * sizeof(float));
    float *gw = fm_alloc((size_t)(k * d) * sizeof(float));
    int64_t *yb = fm_alloc((size_t)batch * sizeof(int64_t));
    float *swb = fm_alloc((size_t)batch * sizeof(float));
    float *gb = fm_alloc((size_t)k * sizeof(float));
    if (!xb || !z || !gw || !yb || !swb || !gb) { status = FM_ENOMEM; goto done; }
    /* the L2 penalty alpha applies to the weights, not to the intercepts */
    const fm_optim opt_w = {.kind = FM_OPT_SGD, .momentum = momentum, .nesterov = nesterov,
                            .weight_decay = alpha};
    const fm_optim opt_b = {.kind = FM_OPT_SGD, .momentum = momentum, .nesterov = nesterov};

    for (int64_t t = 0, start = 0; start < m; t++, start += batch) {
        int64_t bs = m - start < batch ? m - start : batch;
        for (int64_t i = 0; i < bs; i++) {
            int64_t r = order[start + i];
            memcpy(xb + i * d, x + r * d, (size_t)d * sizeof(float));
            yb[i] = y[r];
            swb[i] = sw ? sw[r] : 1.0f;
        }
        status = fm_linear_forward(z, xb, w, b, bs, d, k, nthreads);
        if (status != FM_OK) goto done;
        double l = fm_softmax_xent(z, n_correct, z, yb, NULL, swb, bs, k, 1.0f / (float)bs);
        if (!isfinite(l)) { status = FM_EDIVERGED; goto done; }
        *loss_sum += l;
        /* dW = dZ^T Xb: (k, bs) x (bs, d) */
        status = fm_gemm(gw, d, z, k, FM_TRANS, xb, d, FM_NO_TRANS, k, d, bs, 1.0f, 0.0f,
                         FM_KERNEL_AUTO, nthreads);
        if (status != FM_OK) goto done;
        /* db = column sums of dZ */
        for (int64_t c = 0; c < k; c++) gb[c] = 0.0f;
        for (int64_t i = 0; i < bs; i++)
            for (int64_t c = 0; c < k; c++) gb[c] += z[i * k + c];
        fm_optim_coef cw, cb;
        fm_optim_coef_init(&cw, &opt_w, lr[t], t + 1);
        fm_optim_coef_init(&cb, &opt_b, lr[t], t + 1);
        fm_optim_step(w, vw, NULL, gw, k * d, &cw, nthreads);
        fm_optim_step(b, vb, NULL, gb, k, &cb, nthreads);
    }
done:
    fm_free(xb); fm_free(z); fm_free(gw); fm_free(yb); fm_free(swb); fm_free(gb);
    return status;
}
