/* layers.c: the layer kernels the network driver (nn.c) runs: dense backward, ReLU,
 * residual sums, inverted dropout and batch normalisation (convolution and pooling: conv.c). Not a driver,
 * not an optimizer: no loops over layers or steps here. */
#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/gemm.h"
#include "nn/layers.h"
#include "core/parallel.h"

/* The tails fused into the dense GEMMs: bias and ReLU on the output of forward, ReLU's
 * backward on dx (x: the ReLU's output, ld floats a row). */
typedef struct {
    const float *b, *x;
    int64_t ld;
    int relu;
} dense_tail;

static void bias_relu_rows(void *ctx, float *c, int64_t ldc, int64_t i0, int64_t j0,
                           int64_t rows, int64_t cols)
{
    const dense_tail *t = ctx;
    const float *restrict b = t->b + j0;
    (void)i0;
    for (int64_t i = 0; i < rows; i++) {
        float *restrict y = c + i * ldc;
        for (int64_t j = 0; j < cols; j++) y[j] += b[j];
        if (t->relu)
            for (int64_t j = 0; j < cols; j++) y[j] = y[j] > 0.0f ? y[j] : 0.0f;
    }
}

static void relu_mask_rows(void *ctx, float *c, int64_t ldc, int64_t i0, int64_t j0,
                           int64_t rows, int64_t cols)
{
    const dense_tail *t = ctx;
    for (int64_t i = 0; i < rows; i++) {
        float *restrict d = c + i * ldc;
        const float *restrict x = t->x + (i0 + i) * t->ld + j0;
        /* d max(z, 0)/dz = [z > 0] = [x > 0], x being the ReLU's output */
        for (int64_t j = 0; j < cols; j++) d[j] = x[j] > 0.0f ? d[j] : 0.0f;
    }
}

int fm_dense_forward(float *y, const float *x, const float *w, const float *b,
                     int64_t n, int64_t in, int64_t out, int relu, int nthreads)
{
    dense_tail t = {b, NULL, out, relu};
    fm_gemm_tail tail = {bias_relu_rows, &t, 0};
    /* Y = X W^T: (n, in) x (in, out) */
    return fm_gemm_fused(y, out, x, in, FM_NO_TRANS, w, in, FM_TRANS, n, out, in, 1.0f, 0.0f,
                         &tail, FM_KERNEL_AUTO, nthreads);
}

int fm_dense_backward(float *dx, float *dw, float *db,
                      const float *dy, const float *x, const float *w,
                      int64_t n, int64_t in, int64_t out, int accumulate, int nthreads)
{
    return fm_dense_backward_fused(dx, dw, db, dy, x, w, n, in, out, accumulate, 0, NULL, nthreads);
}

int fm_dense_backward_fused(float *dx, float *dw, float *db,
                            const float *dy, const float *x, const float *w,
                            int64_t n, int64_t in, int64_t out, int accumulate, int relu,
                            const fm_gemm_tail *dw_tail, int nthreads)
{
    if (!accumulate) memset(db, 0, (size_t)out * sizeof(float));
    /* db += sum_i dY_i, row by row so the order (and the rounding) never changes */
    for (int64_t i = 0; i < n; i++) {
        const float *r = dy + i * out;
        for (int64_t j = 0; j < out; j++) db[j] += r[j];
    }
    /* dW += dY^T X: (out, n) x (n, in) */
    const fm_gemm_args gw = {dw, in, dy, out, FM_TRANS, x, in, FM_NO_TRANS, out, in, n, 1.0f,
                             accumulate ? 1.0f : 0.0f, dw_tail};
    if (dx == NULL) return fm_gemm_pair(&gw, NULL, FM_KERNEL_AUTO, nthreads); /* alone */
    dense_tail t = {NULL, x, in, 1};
    fm_gemm_tail mask = {relu_mask_rows, &t, 0};
    /* dX = dY W: (n, out) x (out, in), as much work as dW: side by side, unless dw's tail
     * may rewrite w */
    const fm_gemm_args gx = {dx, in, dy, out, FM_NO_TRANS, w, in, FM_NO_TRANS, n, in, out, 1.0f,
                             0.0f, relu ? &mask : NULL};
    if (dw_tail == NULL) return fm_gemm_pair(&gx, &gw, FM_KERNEL_AUTO, nthreads);
    int status = fm_gemm_pair(&gx, NULL, FM_KERNEL_AUTO, nthreads);
    return status != FM_OK ? status : fm_gemm_pair(&gw, NULL, FM_KERNEL_AUTO, nthreads);
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

static void sum_span(float *restrict z, const float *restrict a, const float *restrict b,
                     int64_t n)
{
    for (int64_t j = 0; j < n; j++) z[j] = a[j] + b[j];
}

static void sum_relu_span(float *restrict z, const float *restrict a, const float *restrict b,
                          int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        float s = a[j] + b[j];
        z[j] = s > 0.0f ? s : 0.0f;
    }
}

static void add_span(float *restrict z, const float *restrict a, const float *restrict unused,
                     int64_t n)
{
    (void)unused;
    for (int64_t j = 0; j < n; j++) z[j] += a[j];
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
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        int64_t j0, j1;
        fm_parallel_arrive(&region);
        fm_parallel_share(&j0, &j1, len);
        if (j1 > j0) f(z + j0, a + j0, b ? b + j0 : NULL, j1 - j0);
    }
    fm_parallel_join(&region);
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

void fm_residual_forward(float *y, const float *x, const float *s, int64_t len, int relu,
                         int nthreads)
{
    elementwise(relu ? sum_relu_span : sum_span, y, x, s, len, nthreads);
}

void fm_add_into(float *y, const float *x, int64_t len, int nthreads)
{
    elementwise(add_span, y, x, NULL, len, nthreads);
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
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&region);
        FM_OMP(omp for schedule(static))
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
    }
    fm_parallel_join(&region);
    (void)nt;
}

void fm_dropout_backward(float *dx, const float *dy, const float *mask, int64_t len, int nthreads)
{
    elementwise(product_span, dx, dy, mask, len, nthreads);
}

/* Batch norm sums each channel over FM_BN_SPANS spans of consecutive rows, each span's
 * float64 sums in a slot of its own, added in span order: the same sums whatever the thread
 * count. Spans of rows (not slices of channels, which left each thread reading every row's
 * cache lines) let the threads stream disjoint memory. */
#define FM_BN_SPANS 8
/* rows added in float before each float64 add (vectorises; 16 terms lose nothing that
 * matters), and channels per stack block */
#define FM_BN_RUN 16
#define FM_BN_BLOCK 64

/* the spans' float64 sums (2 a channel), then 3 floats a channel */
int64_t fm_batchnorm_scratch_len(int64_t ch) { return (4 * FM_BN_SPANS + 3) * ch; }

static void span_rows(int64_t *r0, int64_t *r1, int64_t s, int64_t rows)
{
    *r0 = rows * s / FM_BN_SPANS;
    *r1 = rows * (s + 1) / FM_BN_SPANS;
}

/* Sums over rows [r0, r1) of channels [c0, c1) (at most FM_BN_BLOCK), into s1 and s2 (c1 - c0):
 * forward (dy NULL): s1 = sum (x - k), s2 = sum (x - k)^2, k = row 0 (a shift near the mean,
 *   so the variance s2/rows - (s1/rows)^2 cancels little);
 * backward: s1 = sum dz, s2 = sum dz xhat, dz = dy [y > 0] (y NULL: dz = dy), xhat = (x - k) is,
 *   k the mean and is the inverse std.
 * k and is point at channel c0. */
static void span_sums(double *restrict s1, double *restrict s2, const float *x, const float *dy,
                      const float *y, const float *restrict k, const float *restrict is,
                      int64_t r0, int64_t r1, int64_t ch, int64_t c0, int64_t c1)
{
    const int64_t w = c1 - c0;
    float a1[FM_BN_BLOCK], a2[FM_BN_BLOCK];
    for (int64_t c = 0; c < w; c++) s1[c] = s2[c] = 0.0;
    for (int64_t r = r0; r < r1; r += FM_BN_RUN) {
        const int64_t re = r + FM_BN_RUN < r1 ? r + FM_BN_RUN : r1;
        for (int64_t c = 0; c < w; c++) a1[c] = a2[c] = 0.0f;
        for (int64_t q = r; q < re; q++) {
            const float *restrict xr = x + q * ch + c0;
            if (dy == NULL) {
                for (int64_t c = 0; c < w; c++) {
                    float u = xr[c] - k[c];
                    a1[c] += u;
                    a2[c] += u * u;
                }
                continue;
            }
            const float *restrict dr = dy + q * ch + c0;
            if (y != NULL) {
                const float *restrict yr = y + q * ch + c0;
                for (int64_t c = 0; c < w; c++) {
                    float d = yr[c] > 0.0f ? dr[c] : 0.0f;
                    a1[c] += d;
                    a2[c] += d * ((xr[c] - k[c]) * is[c]);
                }
                continue;
            }
            for (int64_t c = 0; c < w; c++) {
                a1[c] += dr[c];
                a2[c] += dr[c] * ((xr[c] - k[c]) * is[c]);
            }
        }
        for (int64_t c = 0; c < w; c++) {
            s1[c] += a1[c];
            s2[c] += a2[c];
        }
    }
}

/* Each span's sums (FM_BN_SPANS slots of (2, ch) float64 in scratch), spans over threads. */
static void spans_sums(double *sums, const float *x, const float *dy, const float *y,
                       const float *k, const float *is, int64_t rows, int64_t ch, int nthreads)
{
    int nt = fm_parallel_threads_for(rows * ch, FM_ELEMENTWISE_SERIAL, nthreads);
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&region);
        FM_OMP(omp for schedule(static))
        for (int64_t s = 0; s < FM_BN_SPANS; s++) {
            int64_t r0, r1;
            span_rows(&r0, &r1, s, rows);
            double *s1 = sums + s * 2 * ch, *s2 = s1 + ch;
            for (int64_t cb = 0; cb < ch; cb += FM_BN_BLOCK) {
                int64_t ce = cb + FM_BN_BLOCK < ch ? cb + FM_BN_BLOCK : ch;
                span_sums(s1 + cb, s2 + cb, x, dy, y, k + cb, is ? is + cb : NULL, r0, r1, ch, cb, ce);
            }
        }
    }
    fm_parallel_join(&region);
    (void)nt;
}

/* channel c's two sums over all spans, added in span order */
static void total(double *t1, double *t2, const double *sums, int64_t ch, int64_t c)
{
    *t1 = *t2 = 0.0;
    for (int64_t s = 0; s < FM_BN_SPANS; s++) {
        *t1 += sums[s * 2 * ch + c];
        *t2 += sums[s * 2 * ch + ch + c];
    }
}

/* y = gamma (x - mean) invstd + beta, then max(y, 0) when relu, rows split over threads */
static void normalize(float *y, const float *x, const float *mean, const float *invstd,
                      const float *gamma, const float *beta, int64_t rows, int64_t ch, int relu,
                      int nthreads)
{
    int nt = fm_parallel_threads_for(rows * ch, FM_ELEMENTWISE_SERIAL, nthreads);
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&region);
        FM_OMP(omp for schedule(static))
        for (int64_t r = 0; r < rows; r++) {
            float *restrict yr = y + r * ch;
            const float *restrict xr = x + r * ch;
            for (int64_t c = 0; c < ch; c++) yr[c] = gamma[c] * ((xr[c] - mean[c]) * invstd[c]) + beta[c];
            if (relu)
                for (int64_t c = 0; c < ch; c++) yr[c] = yr[c] > 0.0f ? yr[c] : 0.0f;
        }
    }
    fm_parallel_join(&region);
    (void)nt;
}

void fm_batchnorm_forward(float *y, float *mean, float *var, float *invstd, float *scratch,
                          const float *x, const float *gamma, const float *beta,
                          int64_t rows, int64_t ch, float eps, int relu, int nthreads)
{
    double *sums = (double *)scratch;
    /* x's first row is the shift k of the sums */
    spans_sums(sums, x, NULL, NULL, x, NULL, rows, ch, nthreads);
    for (int64_t c = 0; c < ch; c++) {
        double t1, t2;
        total(&t1, &t2, sums, ch, c);
        double m = t1 / (double)rows, v = t2 / (double)rows - m * m;
        mean[c] = (float)((double)x[c] + m);
        var[c] = (float)(v > 0.0 ? v : 0.0);
        invstd[c] = (float)(1.0 / sqrt((double)var[c] + eps));
    }
    normalize(y, x, mean, invstd, gamma, beta, rows, ch, relu, nthreads);
}

void fm_batchnorm_infer(float *y, float *mean, float *invstd, const float *x, const float *gamma,
                        const float *beta, const float *running_mean, const float *running_var,
                        int64_t rows, int64_t ch, float eps, int relu, int nthreads)
{
    for (int64_t c = 0; c < ch; c++) {
        mean[c] = running_mean[c];
        invstd[c] = (float)(1.0 / sqrt((double)running_var[c] + eps));
    }
    normalize(y, x, mean, invstd, gamma, beta, rows, ch, relu, nthreads);
}

void fm_batchnorm_backward(float *dx, float *dgamma, float *dbeta, float *scratch,
                           const float *dy, const float *x, const float *relu_y,
                           const float *mean, const float *invstd, const float *gamma,
                           int64_t rows, int64_t ch, int batch_stats, int accumulate, int nthreads)
{
    double *sums = (double *)scratch;
    /* dgamma = sum dz xhat; dbeta = sum dz */
    spans_sums(sums, x, dy, relu_y, mean, invstd, rows, ch, nthreads);
    /* dx = gamma invstd (dz - mean(dz) - xhat mean(dz xhat)); with fixed statistics
     * dx = gamma invstd dz. a, mb, mg per channel in the scratch after the sums. */
    float *a = scratch + fm_batchnorm_scratch_len(ch) - 3 * ch, *mb = a + ch, *mg = mb + ch;
    for (int64_t c = 0; c < ch; c++) {
        double sb, sg;
        total(&sb, &sg, sums, ch, c);
        dgamma[c] = (accumulate ? dgamma[c] : 0.0f) + (float)sg;
        dbeta[c] = (accumulate ? dbeta[c] : 0.0f) + (float)sb;
        a[c] = gamma[c] * invstd[c];
        mb[c] = batch_stats ? (float)(sb / (double)rows) : 0.0f;
        mg[c] = batch_stats ? (float)(sg / (double)rows) : 0.0f;
    }
    if (dx == NULL) return;
    int nt = fm_parallel_threads_for(rows * ch, FM_ELEMENTWISE_SERIAL, nthreads);
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&region);
        FM_OMP(omp for schedule(static))
        for (int64_t r = 0; r < rows; r++) {
            float *restrict dxr = dx + r * ch;
            const float *restrict dr = dy + r * ch, *restrict xr = x + r * ch;
            for (int64_t c = 0; c < ch; c++) dxr[c] = dr[c];
            if (relu_y != NULL) /* dz = dy [y > 0]: the ReLU after the batch norm */
                for (int64_t c = 0; c < ch; c++) dxr[c] = relu_y[r * ch + c] > 0.0f ? dxr[c] : 0.0f;
            for (int64_t c = 0; c < ch; c++)
                dxr[c] = a[c] * (dxr[c] - mb[c] - ((xr[c] - mean[c]) * invstd[c]) * mg[c]);
        }
    }
    fm_parallel_join(&region);
    (void)nt;
}
