/* layers.c: the layer kernels the network driver (nn.c) runs: dense backward, ReLU,
 * inverted dropout and batch normalisation (convolution and pooling: conv.c). Not a driver,
 * not an optimizer: no loops over layers or steps here. */
#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "gemm.h"
#include "layers.h"
#include "parallel.h"

/* The tails fused into the dense GEMMs: bias and ReLU on the output of forward, ReLU's
 * backward on dx. Each runs on one finished strip of C (ld floats a row). */
typedef struct {
    float *c;
    const float *b, *x;
    int64_t ld;
    int relu;
} dense_tail;

static void bias_relu_rows(void *ctx, int64_t i0, int64_t j0, int64_t rows, int64_t cols)
{
    const dense_tail *t = ctx;
    const float *restrict b = t->b + j0;
    for (int64_t i = i0; i < i0 + rows; i++) {
        float *restrict y = t->c + i * t->ld + j0;
        for (int64_t j = 0; j < cols; j++) y[j] += b[j];
        if (t->relu)
            for (int64_t j = 0; j < cols; j++) y[j] = y[j] > 0.0f ? y[j] : 0.0f;
    }
}

static void relu_mask_rows(void *ctx, int64_t i0, int64_t j0, int64_t rows, int64_t cols)
{
    const dense_tail *t = ctx;
    for (int64_t i = i0; i < i0 + rows; i++) {
        float *restrict d = t->c + i * t->ld + j0;
        const float *restrict x = t->x + i * t->ld + j0;
        /* d max(z, 0)/dz = [z > 0] = [x > 0], x being the ReLU's output */
        for (int64_t j = 0; j < cols; j++) d[j] = x[j] > 0.0f ? d[j] : 0.0f;
    }
}

int fm_dense_forward(float *y, const float *x, const float *w, const float *b,
                     int64_t n, int64_t in, int64_t out, int relu, int nthreads)
{
    dense_tail t = {y, b, NULL, out, relu};
    fm_gemm_tail tail = {bias_relu_rows, &t};
    /* Y = X W^T: (n, in) x (in, out) */
    return fm_gemm_fused(y, out, x, in, FM_NO_TRANS, w, in, FM_TRANS, n, out, in, 1.0f, 0.0f,
                         &tail, FM_KERNEL_AUTO, nthreads);
}

int fm_dense_backward(float *dx, float *dw, float *db,
                      const float *dy, const float *x, const float *w,
                      int64_t n, int64_t in, int64_t out, int accumulate, int nthreads)
{
    return fm_dense_backward_fused(dx, dw, db, dy, x, w, n, in, out, accumulate, 0, nthreads);
}

int fm_dense_backward_fused(float *dx, float *dw, float *db,
                            const float *dy, const float *x, const float *w,
                            int64_t n, int64_t in, int64_t out, int accumulate, int relu,
                            int nthreads)
{
    int status = FM_OK;
    if (dx != NULL) {
        dense_tail t = {dx, NULL, x, in, 1};
        fm_gemm_tail mask = {relu_mask_rows, &t};
        /* dX = dY W: (n, out) x (out, in) */
        status = fm_gemm_fused(dx, in, dy, out, FM_NO_TRANS, w, in, FM_NO_TRANS, n, in, out,
                               1.0f, 0.0f, relu ? &mask : NULL, FM_KERNEL_AUTO, nthreads);
        if (status != FM_OK) return status;
    }
    if (!accumulate) memset(db, 0, (size_t)out * sizeof(float));
    /* db += sum_i dY_i, row by row so the order (and the rounding) never changes */
    for (int64_t i = 0; i < n; i++) {
        const float *r = dy + i * out;
        for (int64_t j = 0; j < out; j++) db[j] += r[j];
    }
    /* dW += dY^T X: (out, n) x (n, in) */
    return fm_gemm(dw, in, dy, out, FM_TRANS, x, in, FM_NO_TRANS, out, in, n, 1.0f,
                   accumulate ? 1.0f : 0.0f, FM_KERNEL_AUTO, nthreads);
}

/* an elementwise loop over fewer floats (a few hundred kilobytes) stays on one thread */
#define FM_ELEMENTWISE_SERIAL ((int64_t)1 << 16)

/* restrict, branch-free bodies over one thread's span: the compiler vectorises them (a
 * conditional load, or pointers that might overlap, leave a scalar loop with unpredictable
 * branches). z = f(a, b) elementwise; relu ignores b. */
typedef void (*span_fn)(float *restrict z, const float *restrict a, const float *restrict b,
                        int64_t n);

static void relu_span(float *restrict y, const float *restrict x, const float *restrict unused,
                      int64_t n)
{
    (void)unused;
    for (int64_t j = 0; j < n; j++) y[j] = x[j] > 0.0f ? x[j] : 0.0f;
}

static void relu_grad_span(float *restrict dx, const float *restrict dy, const float *restrict y,
                           int64_t n)
{
    /* d max(x, 0)/dx = [x > 0] = [y > 0] */
    for (int64_t j = 0; j < n; j++) {
        float g = dy[j];
        dx[j] = y[j] > 0.0f ? g : 0.0f;
    }
}

static void product_span(float *restrict z, const float *restrict a, const float *restrict b,
                         int64_t n)
{
    for (int64_t j = 0; j < n; j++) z[j] = a[j] * b[j];
}

/* z = f(a, b) over len elements, split in 16-float blocks over the threads */
static void elementwise(span_fn f, float *z, const float *a, const float *b, int64_t len,
                        int nthreads)
{
    int nt = fm_parallel_threads_for(len, FM_ELEMENTWISE_SERIAL, nthreads);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int64_t j0, j1;
        fm_parallel_share(&j0, &j1, len);
        if (j1 > j0) f(z + j0, a + j0, b ? b + j0 : NULL, j1 - j0);
    }
    (void)nt;
}

void fm_relu_forward(float *y, const float *x, int64_t len, int nthreads)
{
    elementwise(relu_span, y, x, NULL, len, nthreads);
}

void fm_relu_backward(float *dx, const float *dy, const float *y, int64_t len, int nthreads)
{
    elementwise(relu_grad_span, dx, dy, y, len, nthreads);
}

/* Elements per dropout block: each block draws from its own stream, so blocks can run on
 * any thread (the draws were a serial 2 ns an element before). */
#define FM_DROPOUT_BLOCK ((int64_t)1 << 13)

void fm_dropout_forward(float *y, float *mask, const float *x, int64_t len, float rate,
                        uint64_t seed, uint64_t task, int nthreads)
{
    const float keep = 1.0f - rate, scale = 1.0f / keep;
    const int64_t blocks = (len + FM_DROPOUT_BLOCK - 1) / FM_DROPOUT_BLOCK;
    uint64_t mix = task;
    const uint64_t stream = seed ^ fm_splitmix64(&mix); /* the task's streams, one a block */
    int nt = fm_parallel_threads_for(len, FM_ELEMENTWISE_SERIAL, nthreads);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t b = 0; b < blocks; b++) {
        fm_rng rng;
        fm_rng_seed(&rng, stream, (uint64_t)b);
        int64_t j1 = (b + 1) * FM_DROPOUT_BLOCK < len ? (b + 1) * FM_DROPOUT_BLOCK : len;
        for (int64_t j = b * FM_DROPOUT_BLOCK; j < j1; j += 2) {
            /* two draws of 24 bits from one 64-bit output */
            uint64_t r = fm_rng_next(&rng);
            mask[j] = fm_unit24(r >> 40) < keep ? scale : 0.0f;
            y[j] = x[j] * mask[j];
            if (j + 1 < j1) {
                mask[j + 1] = fm_unit24(r >> 16) < keep ? scale : 0.0f;
                y[j + 1] = x[j + 1] * mask[j + 1];
            }
        }
    }
    (void)nt;
}

void fm_dropout_backward(float *dx, const float *dy, const float *mask, int64_t len, int nthreads)
{
    elementwise(product_span, dx, dy, mask, len, nthreads);
}

/* Threads for a per-channel loop: each thread owns a slice of channels and walks every row
 * in order, so each channel's sum is formed the same way whatever the thread count. */
static int channel_threads(int64_t rows, int64_t ch, int nthreads)
{
    return ch < 16 ? 1 : fm_parallel_threads_for(rows * ch, (int64_t)1 << 15, nthreads);
}

/* [c0, c1): the calling thread's slice of ch channels */
static void my_channels(int64_t *c0, int64_t *c1, int64_t ch)
{
    int t = 0, team = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    team = omp_get_num_threads();
#endif
    *c0 = ch * t / team;
    *c1 = ch * (t + 1) / team;
}

/* Channels are summed in blocks of this many float64 accumulators (on the stack). */
#define FM_BN_BLOCK 64

/* s[c - c0] = sum_r (a[r, c] - shift[c])^2 when square, else sum_r a[r, c] b[r, c] (b NULL:
 * sum_r a[r, c]), for c in [c0, c1), c1 - c0 <= FM_BN_BLOCK, in float64, rows in order */
static void channel_sums(double *s, const float *a, const float *b, const float *shift,
                         int64_t rows, int64_t ch, int64_t c0, int64_t c1)
{
    int64_t w = c1 - c0;
    for (int64_t c = 0; c < w; c++) s[c] = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *ar = a + r * ch + c0;
        if (shift) {
            for (int64_t c = 0; c < w; c++) {
                double d = (double)ar[c] - shift[c0 + c];
                s[c] += d * d;
            }
        } else if (b) {
            const float *br = b + r * ch + c0;
            for (int64_t c = 0; c < w; c++) s[c] += (double)ar[c] * br[c];
        } else {
            for (int64_t c = 0; c < w; c++) s[c] += ar[c];
        }
    }
}

void fm_batchnorm_forward(float *y, float *xhat, float *mean, float *var, float *invstd,
                          const float *x, const float *gamma, const float *beta,
                          int64_t rows, int64_t ch, float eps, int nthreads)
{
    int nt = channel_threads(rows, ch, nthreads);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int64_t c0, c1;
        double s[FM_BN_BLOCK];
        my_channels(&c0, &c1, ch);
        for (int64_t cb = c0; cb < c1; cb += FM_BN_BLOCK) {
            int64_t ce = cb + FM_BN_BLOCK < c1 ? cb + FM_BN_BLOCK : c1;
            /* the mean, then the variance about it: two passes, no cancellation */
            channel_sums(s, x, NULL, NULL, rows, ch, cb, ce);
            for (int64_t c = cb; c < ce; c++) mean[c] = (float)(s[c - cb] / (double)rows);
            channel_sums(s, x, NULL, mean, rows, ch, cb, ce);
            for (int64_t c = cb; c < ce; c++) {
                var[c] = (float)(s[c - cb] / (double)rows);
                invstd[c] = (float)(1.0 / sqrt((double)var[c] + eps));
            }
        }
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = c0; c < c1; c++) {
                float h = (x[r * ch + c] - mean[c]) * invstd[c];
                xhat[r * ch + c] = h;
                y[r * ch + c] = gamma[c] * h + beta[c];
            }
    }
    (void)nt;
}

void fm_batchnorm_infer(float *y, float *xhat, float *invstd, const float *x, const float *gamma,
                        const float *beta, const float *running_mean, const float *running_var,
                        int64_t rows, int64_t ch, float eps, int nthreads)
{
    int nt = channel_threads(rows, ch, nthreads);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int64_t c0, c1;
        my_channels(&c0, &c1, ch);
        for (int64_t c = c0; c < c1; c++) invstd[c] = (float)(1.0 / sqrt((double)running_var[c] + eps));
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = c0; c < c1; c++) {
                float h = (x[r * ch + c] - running_mean[c]) * invstd[c];
                xhat[r * ch + c] = h;
                y[r * ch + c] = gamma[c] * h + beta[c];
            }
    }
    (void)nt;
}

void fm_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                           const float *xhat, const float *gamma, const float *invstd,
                           int64_t rows, int64_t ch, int batch_stats, int accumulate, int nthreads)
{
    int nt = channel_threads(rows, ch, nthreads);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int64_t c0, c1;
        double sg[FM_BN_BLOCK], sb[FM_BN_BLOCK];
        my_channels(&c0, &c1, ch);
        for (int64_t cb = c0; cb < c1; cb += FM_BN_BLOCK) {
            int64_t ce = cb + FM_BN_BLOCK < c1 ? cb + FM_BN_BLOCK : c1;
            /* dgamma = sum dy xhat; dbeta = sum dy */
            channel_sums(sg, dy, xhat, NULL, rows, ch, cb, ce);
            channel_sums(sb, dy, NULL, NULL, rows, ch, cb, ce);
            for (int64_t c = cb; c < ce; c++) {
                dgamma[c] = (accumulate ? dgamma[c] : 0.0f) + (float)sg[c - cb];
                dbeta[c] = (accumulate ? dbeta[c] : 0.0f) + (float)sb[c - cb];
            }
            if (dx == NULL) continue;
            /* dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)) */
            float a[FM_BN_BLOCK], mb[FM_BN_BLOCK], mg[FM_BN_BLOCK];
            for (int64_t c = cb; c < ce; c++) { /* fixed statistics: dx = gamma invstd dy */
                a[c - cb] = gamma[c] * invstd[c];
                mb[c - cb] = batch_stats ? (float)(sb[c - cb] / (double)rows) : 0.0f;
                mg[c - cb] = batch_stats ? (float)(sg[c - cb] / (double)rows) : 0.0f;
            }
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = cb; c < ce; c++) {
                    int64_t o = r * ch + c;
                    dx[o] = a[c - cb] * (dy[o] - mb[c - cb] - xhat[o] * mg[c - cb]);
                }
        }
    }
    (void)nt;
}
