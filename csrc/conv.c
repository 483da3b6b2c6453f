/* conv.c: convolution (im2col + the shared GEMM, chunk by chunk) and max/average pooling on
 * channels-last tensors. Not the network driver (nn.c), not the GEMM itself (gemm.c).
 * Every loop that runs on several threads splits over samples, whose outputs are disjoint,
 * so results never depend on the thread count. */
#include <string.h>

#include "common.h"
#include "conv.h"
#include "layers.h"
#include "parallel.h"

/* im2col floats per chunk: 512 KB, so the chunk is still in L2 when the GEMM packs it (CPU
 * time per epoch of the improved network: 2 MB chunks 1.99 s, 512 KB 1.49 s, 256 KB 1.56 s
 * on a sample), and still hundreds to thousands of GEMM rows */
#define FM_CONV_CHUNK_FLOATS ((int64_t)1 << 17)
/* below this many floats of work a loop stays on one thread: forking costs more */
#define FM_CONV_SERIAL ((int64_t)1 << 15)
/* A convolution splits its samples into this many groups of consecutive samples (fewer
 * when there are fewer samples). Each group has its own im2col scratch and weight-gradient
 * partial, and groups run on separate threads, each with one-thread GEMMs: a chunk's GEMM
 * is too small to split well (two threads gave 1.1-1.4x over one when they did). The
 * partials are summed in group order, and the count does not depend on the thread count,
 * so neither do results. */
#define FM_CONV_GROUPS 4

static int64_t col_width(const fm_conv_geom *g) { return g->kh * g->kw * g->in_c; }
static int64_t in_len(const fm_conv_geom *g) { return g->in_h * g->in_w * g->in_c; }
static int64_t out_len(const fm_conv_geom *g) { return g->out_h * g->out_w * g->out_c; }
static int64_t rounded(int64_t len) { return (len + 15) / 16 * 16; } /* 64-byte pieces */

/* a 1x1 stride-1 convolution over the whole input: its im2col matrix is the input */
static int is_pointwise(const fm_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->stride == 1 && g->out_h == g->in_h && g->out_w == g->in_w;
}

static int64_t n_groups(int64_t n) { return n < 1 ? 1 : n < FM_CONV_GROUPS ? n : FM_CONV_GROUPS; }

int64_t fm_conv2d_chunk(const fm_conv_geom *g, int64_t n)
{
    /* the largest group in chunks of at most FM_CONV_CHUNK_FLOATS, as even as they come */
    int64_t per = g->out_h * g->out_w * col_width(g), most = (n + n_groups(n) - 1) / n_groups(n);
    int64_t cap = FM_CONV_CHUNK_FLOATS / per;
    if (cap < 1) cap = 1;
    if (most < 1) return 1;
    int64_t chunks = (most + cap - 1) / cap;
    return (most + chunks - 1) / chunks;
}

/* one group's im2col chunk, and its dW and db partial */
static int64_t group_col(const fm_conv_geom *g, int64_t n)
{
    return is_pointwise(g) ? 0 : rounded(fm_conv2d_chunk(g, n) * g->out_h * g->out_w * col_width(g));
}
static int64_t group_part(const fm_conv_geom *g) { return rounded(g->out_c * (col_width(g) + 1)); }

int64_t fm_conv2d_col_len(const fm_conv_geom *g, int64_t n) { return n_groups(n) * group_col(g, n); }

int64_t fm_conv2d_dcol_len(const fm_conv_geom *g, int64_t n)
{
    return n_groups(n) * (group_col(g, n) + group_part(g));
}

/* short runs (kw * C floats): a loop the compiler vectorises beats a memcpy call */
static inline void copy_floats(float *dst, const float *src, int64_t len)
{
    for (int64_t t = 0; t < len; t++) dst[t] = src[t];
}

static inline void add_floats(float *dst, const float *src, int64_t len)
{
    for (int64_t t = 0; t < len; t++) dst[t] += src[t];
}

/* Walk every window of ns samples. Gather (im2col): col (ns * out_h * out_w, kh * kw * C)
 * gets in row (s, i, j) the window of output pixel (i, j) of sample s from x (ns, in_h,
 * in_w, C), zeros where it hangs over the border. Scatter (col2im, its adjoint): x = the
 * sum, over the windows that read each input value, of its col entries. */
static void im2col_walk(float *col, float *x, const fm_conv_geom *g, int64_t ns, int scatter,
                        int nthreads)
{
    const int64_t C = g->in_c, K = col_width(g), run = g->kw * C, P = g->out_h * g->out_w;
    int nt = fm_parallel_threads_for(ns * P * K, FM_CONV_SERIAL, nthreads);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t s = 0; s < ns; s++) {
        float *xs = x + s * in_len(g);
        if (scatter) memset(xs, 0, (size_t)in_len(g) * sizeof(float));
        /* (i, a) outer and j inner: the input line is fixed while j walks along it */
        for (int64_t i = 0; i < g->out_h; i++)
            for (int64_t a = 0; a < g->kh; a++) {
                int64_t h = i * g->stride - g->pad_h + a;
                float *row = col + (s * P + i * g->out_w) * K + a * run;
                if (h < 0 || h >= g->in_h) {
                    if (!scatter)
                        for (int64_t j = 0; j < g->out_w; j++, row += K)
                            memset(row, 0, (size_t)run * sizeof(float));
                    continue;
                }
                float *line = xs + h * g->in_w * C;
                for (int64_t j = 0; j < g->out_w; j++, row += K) {
                    int64_t w0 = j * g->stride - g->pad_w;
                    if (w0 >= 0 && w0 + g->kw <= g->in_w) { /* the whole run inside */
                        if (scatter) add_floats(line + w0 * C, row, run);
                        else copy_floats(row, line + w0 * C, run);
                        continue;
                    }
                    for (int64_t b = 0; b < g->kw; b++) {
                        int64_t w = w0 + b;
                        int inside = w >= 0 && w < g->in_w;
                        if (scatter) { if (inside) add_floats(line + w * C, row + b * C, C); }
                        else if (inside) copy_floats(row + b * C, line + w * C, C);
                        else memset(row + b * C, 0, (size_t)C * sizeof(float));
                    }
                }
            }
    }
    (void)nt;
}

static void im2col(float *col, const float *x, const fm_conv_geom *g, int64_t ns, int nthreads)
{
    im2col_walk(col, (float *)x, g, ns, 0, nthreads); /* gathering only reads x */
}

static void col2im(float *dx, float *dcol, const fm_conv_geom *g, int64_t ns, int nthreads)
{
    im2col_walk(dcol, dx, g, ns, 1, nthreads); /* scattering only reads dcol */
}

/* The threads a convolution over n samples runs its groups on, and the threads each
 * group's kernels may use in turn (all of them when there is only one group). */
static int group_threads(int *inner, const fm_conv_geom *g, int64_t n, int nthreads)
{
    int nt = fm_parallel_threads_for(n * out_len(g) * col_width(g), FM_CONV_SERIAL, nthreads);
    if (nt > n_groups(n)) nt = (int)n_groups(n);
    *inner = nt > 1 ? 1 : nthreads;
    return nt;
}

/* Samples [*s0, *s1) of group gi of n. */
static void group_range(int64_t *s0, int64_t *s1, int64_t gi, int64_t n)
{
    *s0 = n * gi / n_groups(n);
    *s1 = n * (gi + 1) / n_groups(n);
}

/* The forward pass of one group's samples, chunk by chunk through its col. */
static int group_forward(float *y, float *col, const float *x, const float *w, const float *b,
                         const fm_conv_geom *g, int64_t s0, int64_t s1, int64_t chunk,
                         int nthreads)
{
    const int64_t P = g->out_h * g->out_w;
    for (; s0 < s1; s0 += chunk) {
        int64_t ns = s1 - s0 < chunk ? s1 - s0 : chunk;
        const float *xc = x + s0 * in_len(g);
        if (!is_pointwise(g)) { im2col(col, xc, g, ns, nthreads); xc = col; }
        /* Y = col W^T + b: (ns P, K) x (K, F) */
        int status = fm_dense_forward(y + s0 * out_len(g), xc, w, b, ns * P, col_width(g),
                                      g->out_c, 0, nthreads);
        if (status != FM_OK) return status;
    }
    return FM_OK;
}

/* The backward pass of one group's samples: its dW and db partial (overwritten) and the dx
 * of its samples. */
static int group_backward(float *dx, float *part, float *col, float *dcol, const float *dy,
                          const float *x, const float *w, const fm_conv_geom *g, int64_t s0,
                          int64_t s1, int64_t chunk, int nthreads)
{
    const int64_t P = g->out_h * g->out_w, K = col_width(g);
    for (int64_t first = s0; s0 < s1; s0 += chunk) {
        int64_t ns = s1 - s0 < chunk ? s1 - s0 : chunk;
        const float *xc = x + s0 * in_len(g);
        float *dc = dx == NULL ? NULL : is_pointwise(g) ? dx + s0 * in_len(g) : dcol;
        if (!is_pointwise(g)) { im2col(col, xc, g, ns, nthreads); xc = col; }
        /* dW += dY^T col, db += column sums of dY, dcol = dY W: the dense layer's backward
         * with the chunk's pixels as rows */
        int status = fm_dense_backward(dc, part, part + g->out_c * K, dy + s0 * out_len(g), xc, w,
                                       ns * P, K, g->out_c, s0 > first, nthreads);
        if (status != FM_OK) return status;
        if (dx != NULL && !is_pointwise(g)) col2im(dx + s0 * in_len(g), dcol, g, ns, nthreads);
    }
    return FM_OK;
}

/* One convolution call: forward when dy is NULL (y out, x in), else backward (dx out,
 * dy and x in, each group's dW and db partial in dcol). */
typedef struct {
    float *out, *col, *dcol;
    const float *x, *dy, *w, *b;
    const fm_conv_geom *g;
    int64_t n;
} conv_call;

/* Every group of the call, spread over threads; FM_OK, or the status of a group that failed. */
static int run_groups(const conv_call *c, int nthreads)
{
    const fm_conv_geom *g = c->g;
    const int64_t groups = n_groups(c->n), chunk = fm_conv2d_chunk(g, c->n), gc = group_col(g, c->n);
    int inner, nt = group_threads(&inner, g, c->n, nthreads), status = FM_OK;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t gi = 0; gi < groups; gi++) {
        int64_t s0, s1;
        group_range(&s0, &s1, gi, c->n);
        float *col = c->col + gi * gc, *dcol = c->dcol + gi * (gc + group_part(g));
        int st = c->dy == NULL
                     ? group_forward(c->out, col, c->x, c->w, c->b, g, s0, s1, chunk, inner)
                     : group_backward(c->out, dcol + gc, col, dcol, c->dy, c->x, c->w, g, s0, s1,
                                      chunk, inner);
        if (st != FM_OK) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            status = st;
        }
    }
    return status;
}

int fm_conv2d_forward(float *y, float *col, const float *x, const float *w, const float *b,
                      const fm_conv_geom *g, int64_t n, int nthreads)
{
    return run_groups(&(conv_call){.out = y, .col = col, .x = x, .w = w, .b = b, .g = g, .n = n},
                      nthreads);
}

/* out (+)= parts[0] + parts[stride] + ... (groups of len floats), added in that order */
static void sum_partials(float *out, const float *parts, int64_t stride, int64_t groups,
                         int64_t len, int accumulate)
{
    for (int64_t j = 0; j < len; j++) {
        float sum = accumulate ? out[j] : 0.0f;
        for (int64_t gi = 0; gi < groups; gi++) sum += parts[gi * stride + j];
        out[j] = sum;
    }
}

int fm_conv2d_backward(float *dx, float *dw, float *db, float *col, float *dcol,
                       const float *dy, const float *x, const float *w,
                       const fm_conv_geom *g, int64_t n, int accumulate, int nthreads)
{
    int status = run_groups(&(conv_call){.out = dx, .col = col, .dcol = dcol, .x = x, .dy = dy,
                                         .w = w, .g = g, .n = n}, nthreads);
    if (status != FM_OK) return status;
    /* dW (+)= the groups' partials, in group order; db likewise */
    const int64_t gc = group_col(g, n), stride = gc + group_part(g), FK = g->out_c * col_width(g);
    sum_partials(dw, dcol + gc, stride, n_groups(n), FK, accumulate);
    sum_partials(db, dcol + gc + FK, stride, n_groups(n), g->out_c, accumulate);
    return FM_OK;
}

/* y[c] = max(y[c], x[c]) with arg[c] following it, in arithmetic rather than selects (which
 * the compiler turns into conditional stores, a scalar loop of unpredictable branches) */
static __attribute__((noinline)) void max_update(float *restrict y, int32_t *restrict arg,
                                                 const float *restrict x, int32_t base, int64_t C)
{
    for (int64_t c = 0; c < C; c++) {
        float v = x[c], best = y[c];
        int32_t take = -(int32_t)(v > best); /* all ones where x wins */
        y[c] = v > best ? v : best;
        arg[c] = (arg[c] & ~take) | ((base + (int32_t)c) & take);
    }
}

void fm_maxpool_forward(float *y, int32_t *arg, const float *x, const fm_conv_geom *g,
                        int64_t n, int nthreads)
{
    const int64_t C = g->in_c;
    int nt = fm_parallel_threads_for(n * out_len(g) * g->kh * g->kw, FM_CONV_SERIAL, nthreads);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t s = 0; s < n; s++) {
        const float *xs = x + s * in_len(g);
        for (int64_t i = 0; i < g->out_h; i++)
            for (int64_t j = 0; j < g->out_w; j++) {
                int64_t o = s * out_len(g) + (i * g->out_w + j) * C;
                float *yo = y + o;
                int32_t *ao = arg + o;
                int32_t first = (int32_t)((i * g->stride * g->in_w + j * g->stride) * C);
                copy_floats(yo, xs + first, C);
                for (int64_t c = 0; c < C; c++) ao[c] = first + (int32_t)c;
                for (int64_t a = 0; a < g->kh; a++)
                    for (int64_t b = a == 0; b < g->kw; b++) { /* the first tap is taken */
                        int32_t base = (int32_t)(((i * g->stride + a) * g->in_w + j * g->stride + b) * C);
                        max_update(yo, ao, xs + base, base, C);
                    }
            }
    }
    (void)nt;
}

void fm_maxpool_backward(float *dx, const float *dy, const int32_t *arg, const fm_conv_geom *g,
                         int64_t n, int nthreads)
{
    int nt = fm_parallel_threads_for(n * in_len(g), FM_CONV_SERIAL, nthreads);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t s = 0; s < n; s++) {
        float *xs = dx + s * in_len(g);
        memset(xs, 0, (size_t)in_len(g) * sizeof(float));
        /* d max/dx = 1 at the window's argmax, 0 elsewhere (an index outside the sample,
         * which only memory corrupted behind our back could hold, is skipped) */
        for (int64_t o = s * out_len(g); o < (s + 1) * out_len(g); o++)
            if ((uint64_t)(uint32_t)arg[o] < (uint64_t)in_len(g)) xs[arg[o]] += dy[o];
    }
    (void)nt;
}

void fm_avgpool_forward(float *y, const float *x, const fm_conv_geom *g, int64_t n, int nthreads)
{
    const int64_t C = g->in_c;
    const float scale = 1.0f / (float)(g->kh * g->kw);
    int nt = fm_parallel_threads_for(n * in_len(g), FM_CONV_SERIAL, nthreads);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t s = 0; s < n; s++) {
        const float *xs = x + s * in_len(g);
        for (int64_t i = 0; i < g->out_h; i++)
            for (int64_t j = 0; j < g->out_w; j++) {
                float *yo = y + s * out_len(g) + (i * g->out_w + j) * C;
                memset(yo, 0, (size_t)C * sizeof(float));
                for (int64_t a = 0; a < g->kh; a++)
                    for (int64_t b = 0; b < g->kw; b++)
                        add_floats(yo, xs + ((i * g->stride + a) * g->in_w + j * g->stride + b) * C, C);
                for (int64_t c = 0; c < C; c++) yo[c] *= scale;
            }
    }
    (void)nt;
}

void fm_avgpool_backward(float *dx, const float *dy, const fm_conv_geom *g, int64_t n,
                         int nthreads)
{
    const int64_t C = g->in_c;
    const float scale = 1.0f / (float)(g->kh * g->kw);
    int nt = fm_parallel_threads_for(n * in_len(g), FM_CONV_SERIAL, nthreads);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t s = 0; s < n; s++) {
        float *xs = dx + s * in_len(g);
        memset(xs, 0, (size_t)in_len(g) * sizeof(float));
        for (int64_t i = 0; i < g->out_h; i++)
            for (int64_t j = 0; j < g->out_w; j++) {
                const float *d = dy + s * out_len(g) + (i * g->out_w + j) * C;
                /* d mean/dx = 1 / (kh kw) for every x of the window */
                for (int64_t a = 0; a < g->kh; a++)
                    for (int64_t b = 0; b < g->kw; b++) {
                        float *xp = xs + ((i * g->stride + a) * g->in_w + j * g->stride + b) * C;
                        for (int64_t c = 0; c < C; c++) xp[c] += d[c] * scale;
                    }
            }
    }
    (void)nt;
}
