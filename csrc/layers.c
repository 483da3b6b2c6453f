/* layers.c: the layer kernels the network driver (nn.c) runs: dense backward, ReLU and
 * inverted dropout. Not a driver, not an optimizer: no loops over layers or steps here. */
#include <string.h>

#include "gemm.h"
#include "layers.h"

int fm_dense_backward(float *dx, float *dw, float *db,
                      const float *dy, const float *x, const float *w,
                      int64_t n, int64_t in, int64_t out, int accumulate, int nthreads)
{
    /* dW += dY^T X: (out, n) x (n, in) */
    int status = fm_gemm(dw, in, dy, out, FM_TRANS, x, in, FM_NO_TRANS, out, in, n, 1.0f,
                         accumulate ? 1.0f : 0.0f, FM_KERNEL_AUTO, nthreads);
    if (status != FM_OK) return status;
    if (!accumulate) memset(db, 0, (size_t)out * sizeof(float));
    /* db += sum_i dY_i, row by row so the order (and the rounding) never changes */
    for (int64_t i = 0; i < n; i++) {
        const float *r = dy + i * out;
        for (int64_t j = 0; j < out; j++) db[j] += r[j];
    }
    if (dx == NULL) return FM_OK;
    /* dX = dY W: (n, out) x (out, in) */
    return fm_gemm(dx, in, dy, out, FM_NO_TRANS, w, in, FM_NO_TRANS, n, in, out, 1.0f, 0.0f,
                   FM_KERNEL_AUTO, nthreads);
}

void fm_relu_forward(float *y, const float *x, int64_t len)
{
    for (int64_t j = 0; j < len; j++) y[j] = x[j] > 0.0f ? x[j] : 0.0f;
}

void fm_relu_backward(float *dx, const float *dy, const float *y, int64_t len)
{
    /* d max(x, 0)/dx = [x > 0] = [y > 0] */
    for (int64_t j = 0; j < len; j++) dx[j] = y[j] > 0.0f ? dy[j] : 0.0f;
}

void fm_dropout_forward(float *y, float *mask, const float *x, int64_t len, float rate, fm_rng *rng)
{
    float keep = 1.0f - rate, scale = 1.0f / keep;
    for (int64_t j = 0; j < len; j++) {
        mask[j] = fm_rng_uniform(rng) < keep ? scale : 0.0f;
        y[j] = x[j] * mask[j];
    }
}

void fm_dropout_backward(float *dx, const float *dy, const float *mask, int64_t len)
{
    for (int64_t j = 0; j < len; j++) dx[j] = dy[j] * mask[j];
}
