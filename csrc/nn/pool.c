/* pool.c: max and average pooling on channels-last tensors (conv.h's geometry), forward
 * and backward. Not the convolution (conv.c). Loops split over samples, whose outputs are
 * disjoint, so results never depend on the thread count. */
#include <string.h>

#include "core/common.h"
#include "core/parallel.h"
#include "nn/pool.h"

/* below this many floats of work a loop stays on one thread: forking costs more */
#define FM_POOL_SERIAL ((int64_t)1 << 15)

/* y[c] = max(y[c], x[c]) with arg[c] following it, in arithmetic rather than selects (which
 * the compiler turns into conditional stores, a scalar loop of unpredictable branches) */
static inline void max_update(float *restrict y, int32_t *restrict arg, const float *restrict x,
                              int32_t base, int64_t C)
{
    for (int64_t c = 0; c < C; c++) {
        float v = x[c], best = y[c];
        int32_t take = -(int32_t)(v > best); /* all ones where x wins */
        y[c] = v > best ? v : best;
        arg[c] = (arg[c] & ~take) | ((base + (int32_t)c) & take);
    }
}

/* One sample's max pooling: ys, args (out_h, out_w, C) from xs (in_h, in_w, C). */
static void maxpool_sample(float *restrict ys, int32_t *restrict args, const float *restrict xs,
                           const fm_conv_geom *g)
{
    /* the geometry in locals: the stores could alias *g */
    const int64_t C = g->in_c, oh = g->out_h, ow = g->out_w, kh = g->kh, kw = g->kw;
    const int64_t st = g->stride, iw = g->in_w;
    for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++) {
            float *yo = ys + (i * ow + j) * C;
            int32_t *ao = args + (i * ow + j) * C;
            int32_t first = (int32_t)((i * st * iw + j * st) * C);
            fm_copy_floats(yo, xs + first, C);
            for (int64_t c = 0; c < C; c++) ao[c] = first + (int32_t)c;
            for (int64_t a = 0; a < kh; a++)
                for (int64_t b = a == 0; b < kw; b++) { /* the first tap is taken */
                    int32_t base = (int32_t)(((i * st + a) * iw + j * st + b) * C);
                    max_update(yo, ao, xs + base, base, C);
                }
        }
}

void fm_maxpool_forward(float *y, int32_t *arg, const float *x, const fm_conv_geom *g,
                        int64_t n, int nthreads)
{
    const int64_t il = fm_conv_in_len(g), ol = fm_conv_out_len(g);
    int nt = fm_parallel_threads_for(n * ol * g->kh * g->kw, FM_POOL_SERIAL, nthreads);
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&region);
        FM_OMP(omp for schedule(static))
        for (int64_t s = 0; s < n; s++) maxpool_sample(y + s * ol, arg + s * ol, x + s * il, g);
    }
    fm_parallel_join(&region);
    (void)nt;
}

/* One sample's max-pool backward when the windows tile the input (stride == kh == kw, as in
 * every network here): each input value lies in at most one window, so dx is written once,
 * in input order, reading relu_x (rs, NULL: none) in that order too; the general scatter
 * below reads it at the argmaxes, a cache miss each once the batch outgrows L2. */
static void maxpool_backward_tiled(float *restrict xs, const float *restrict dys,
                                   const int32_t *restrict args, const float *restrict rs,
                                   const fm_conv_geom *g)
{
    const int64_t C = g->in_c, covered_h = g->out_h * g->kh, covered_w = g->out_w * g->kw;
    for (int64_t h = 0; h < g->in_h; h++) {
        float *line = xs + h * g->in_w * C;
        const int64_t first = h < covered_h ? covered_w : 0; /* past the windows: zeros */
        for (int64_t w = 0; w < first; w++) {
            const int64_t o = (h / g->kh * g->out_w + w / g->kw) * C;
            const int32_t base = (int32_t)((h * g->in_w + w) * C);
            const int32_t *ao = args + o;
            const float *d = dys + o;
            float *xo = line + w * C;
            /* d max/dx = 1 at the argmax, 0 elsewhere; times the ReLU's 1 where its output
             * is positive: masks on dy's bits, which the compiler vectorises */
            for (int32_t c = 0; c < C; c++) {
                uint32_t bits, keep = ao[c] == base + c;
                if (rs != NULL) keep &= rs[base + c] > 0.0f;
                memcpy(&bits, d + c, sizeof bits);
                bits &= -keep;
                memcpy(xo + c, &bits, sizeof bits);
            }
        }
        memset(line + first * C, 0, (size_t)((g->in_w - first) * C) * sizeof(float));
    }
}

/* The same for any windows: dx = 0, then dx[arg] += dy. */
static void maxpool_backward_scatter(float *restrict xs, const float *restrict dys,
                                     const int32_t *restrict args, const float *restrict rs,
                                     const fm_conv_geom *g)
{
    const int64_t il = fm_conv_in_len(g), ol = fm_conv_out_len(g);
    memset(xs, 0, (size_t)il * sizeof(float));
    /* an index outside the sample, which only memory corrupted behind our back could hold,
     * is skipped; the ReLU's mask goes on the bits of dy (a branch on the sign mispredicts) */
    for (int64_t o = 0; o < ol; o++) {
        const uint32_t a = (uint32_t)args[o];
        if ((uint64_t)a >= (uint64_t)il) continue;
        uint32_t bits;
        memcpy(&bits, dys + o, sizeof bits);
        bits &= rs == NULL ? ~0u : -(uint32_t)(rs[a] > 0.0f);
        float d;
        memcpy(&d, &bits, sizeof d);
        xs[a] += d;
    }
}

void fm_maxpool_backward(float *dx, const float *dy, const int32_t *arg, const float *relu_x,
                         const fm_conv_geom *g, int64_t n, int nthreads)
{
    const int64_t il = fm_conv_in_len(g), ol = fm_conv_out_len(g);
    const int tiled = g->stride == g->kh && g->stride == g->kw;
    int nt = fm_parallel_threads_for(n * il, FM_POOL_SERIAL, nthreads);
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&region);
        FM_OMP(omp for schedule(static))
        for (int64_t s = 0; s < n; s++) {
            const float *rs = relu_x == NULL ? NULL : relu_x + s * il;
            if (tiled) maxpool_backward_tiled(dx + s * il, dy + s * ol, arg + s * ol, rs, g);
            else maxpool_backward_scatter(dx + s * il, dy + s * ol, arg + s * ol, rs, g);
        }
    }
    fm_parallel_join(&region);
    (void)nt;
}

/* Walk every window of n samples: forward, y = the mean of each window of x; backward
 * (the adjoint), x = 0, then x += y / (kh kw) over every window that holds it (y is dy,
 * x is dx). */
static void avgpool_walk(float *y, float *x, const fm_conv_geom *g, int64_t n, int backward,
                         int nthreads)
{
    const int64_t C = g->in_c;
    const float scale = 1.0f / (float)(g->kh * g->kw);
    int nt = fm_parallel_threads_for(n * fm_conv_in_len(g), FM_POOL_SERIAL, nthreads);
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&region);
        FM_OMP(omp for schedule(static))
        for (int64_t s = 0; s < n; s++) {
            float *xs = x + s * fm_conv_in_len(g);
            if (backward) memset(xs, 0, (size_t)fm_conv_in_len(g) * sizeof(float));
            for (int64_t i = 0; i < g->out_h; i++)
                for (int64_t j = 0; j < g->out_w; j++) {
                    float *yo = y + s * fm_conv_out_len(g) + (i * g->out_w + j) * C;
                    if (!backward) memset(yo, 0, (size_t)C * sizeof(float));
                    for (int64_t a = 0; a < g->kh; a++)
                        for (int64_t b = 0; b < g->kw; b++) {
                            float *xp = xs + ((i * g->stride + a) * g->in_w + j * g->stride + b) * C;
                            if (!backward) fm_add_floats(yo, xp, C);
                            else /* d mean/dx = 1 / (kh kw) for every x of the window */
                                for (int64_t c = 0; c < C; c++) xp[c] += yo[c] * scale;
                        }
                    if (!backward)
                        for (int64_t c = 0; c < C; c++) yo[c] *= scale;
                }
        }
    }
    fm_parallel_join(&region);
    (void)nt;
}

void fm_avgpool_forward(float *y, const float *x, const fm_conv_geom *g, int64_t n, int nthreads)
{
    avgpool_walk(y, (float *)x, g, n, 0, nthreads); /* forward only reads x */
}

void fm_avgpool_backward(float *dx, const float *dy, const fm_conv_geom *g, int64_t n,
                         int nthreads)
{
    avgpool_walk((float *)dy, dx, g, n, 1, nthreads); /* backward only reads dy */
}
