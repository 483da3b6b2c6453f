/* winograd.c: Winograd F(2x2, 3x3) convolution (winograd.h): the adds-only tile transforms,
 * 16 channels or filters at a time in a vector, around the shared GEMM. Not the choice of
 * algorithm, the groups of samples or their threads (conv.c), nor the GEMM (gemm.c). */
#include <string.h>

#include "core/common.h"
#include "core/gemm.h"
#include "core/vec16.h"
#include "nn/winograd.h"

#define AI inline __attribute__((always_inline))

/* 2x2 output tiles down and across one sample (the last ones partly outside when out_h or
 * out_w is odd: their extra outputs are dropped, their dY read as zeros) */
static int64_t tiles_h(const fm_conv_geom *g) { return (g->out_h + 1) / 2; }
static int64_t tiles_w(const fm_conv_geom *g) { return (g->out_w + 1) / 2; }
static int64_t tiles(const fm_conv_geom *g) { return tiles_h(g) * tiles_w(g); }
static int64_t rounded(int64_t len) { return (len + 15) / 16 * 16; } /* 64-byte pieces */

int fm_winograd_fits(const fm_conv_geom *g) { return g->kh == 3 && g->kw == 3 && g->stride == 1; }

int64_t fm_winograd_weights_len(const fm_conv_geom *g) { return 16 * g->out_c * g->in_c; }

int64_t fm_winograd_scratch_len(const fm_conv_geom *g, int64_t ns)
{
    return rounded(16 * ns * tiles(g) * g->in_c) + rounded(16 * ns * tiles(g) * g->out_c);
}

int64_t fm_winograd_dscratch_len(const fm_conv_geom *g, int64_t ns)
{
    return rounded(16 * ns * tiles(g) * g->in_c);
}

/* ------------------------------------------------------------ the 1-D transforms
 * Each maps a column of a tile (elements `is` vectors apart) to a column of the result
 * (`os` apart); a 2-D transform runs one down every column, then one along every row. */

/* z = B^T d, B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]] */
static AI void bt_1d(v16 *z, int os, const v16 *d, int is)
{
    z[0] = d[0] - d[2 * is];
    z[os] = d[is] + d[2 * is];
    z[2 * os] = d[2 * is] - d[is];
    z[3 * os] = d[is] - d[3 * is];
}

/* its transpose, d = B z */
static AI void b_1d(v16 *d, int os, const v16 *z, int is)
{
    d[0] = z[0];
    d[os] = z[is] - z[2 * is] + z[3 * is];
    d[2 * os] = z[is] + z[2 * is] - z[0];
    d[3 * os] = -z[3 * is];
}

/* y = A^T m, A^T = [[1,1,1,0],[0,1,-1,-1]] */
static AI void at_1d(v16 *y, int os, const v16 *m, int is)
{
    y[0] = m[0] + m[is] + m[2 * is];
    y[os] = m[is] - m[2 * is] - m[3 * is];
}

/* its transpose, m = A y */
static AI void a_1d(v16 *m, int os, const v16 *y, int is)
{
    m[0] = y[0];
    m[os] = y[0] + y[is];
    m[2 * os] = y[0] - y[is];
    m[3 * os] = -y[is];
}

/* u = G w, G = [[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]] */
static AI void g_1d(v16 *u, int os, const v16 *w, int is)
{
    const v16 even = 0.5f * (w[0] + w[2 * is]), odd = 0.5f * w[is];
    u[0] = w[0];
    u[os] = even + odd;
    u[2 * os] = even - odd;
    u[3 * os] = w[2 * is];
}

/* its transpose, w = G^T u */
static AI void gt_1d(v16 *w, int os, const v16 *u, int is)
{
    const v16 sum = 0.5f * (u[is] + u[2 * is]);
    w[0] = u[0] + sum;
    w[os] = 0.5f * (u[is] - u[2 * is]);
    w[2 * os] = sum + u[3 * is];
}

/* ------------------------------------------------------------ the tile loops
 * A chunk's ns samples have R = ns * tiles(g) tiles, tile r = (s, ti, tj) in that order;
 * V (16, R, in_c), M (16, R, out_c), U (16, out_c, in_c): position xi = 4 a + b of the 4x4
 * tile first, so that each position's matrix is one GEMM operand. */

/* Walk every tile of ns samples on the input side. Gather: v = B^T d B of each tile d of x
 * (ns, in_h, in_w, in_c), zeros outside x. Scatter (its adjoint): x = the sum of B v B^T
 * over the tiles that read each input pixel, what falls in the padding dropped. */
static AI void input_walk(float *restrict v, float *restrict x, const fm_conv_geom *g, int64_t ns,
                          const int scatter)
{
    const int64_t C = g->in_c, R = ns * tiles(g), TW = tiles_w(g);
    const v16 zero = {0};
    if (scatter) memset(x, 0, (size_t)(ns * fm_conv_in_len(g)) * sizeof(float));
    for (int64_t s = 0, r = 0; s < ns; s++)
        for (int64_t ti = 0; ti < tiles_h(g); ti++)
            for (int64_t tj = 0; tj < TW; tj++, r++) {
                const int64_t h0 = 2 * ti - g->pad_h, w0 = 2 * tj - g->pad_w;
                for (int64_t c = 0; c < C; c += 16) {
                    v16 d[16], t[16], o[16];
                    if (scatter)
                        for (int xi = 0; xi < 16; xi++) d[xi] = load_part(v + (xi * R + r) * C + c, C - c);
                    for (int a = 0; a < 4 && !scatter; a++)
                        for (int b = 0; b < 4; b++) {
                            const int64_t h = h0 + a, w = w0 + b;
                            d[4 * a + b] = h >= 0 && h < g->in_h && w >= 0 && w < g->in_w
                                ? load_part(x + ((s * g->in_h + h) * g->in_w + w) * C + c, C - c)
                                : zero;
                        }
                    for (int b = 0; b < 4; b++) {
                        if (scatter) b_1d(t + b, 4, d + b, 4);
                        else bt_1d(t + b, 4, d + b, 4);
                    }
                    for (int a = 0; a < 4; a++) {
                        if (scatter) b_1d(o + 4 * a, 1, t + 4 * a, 1);
                        else bt_1d(o + 4 * a, 1, t + 4 * a, 1);
                    }
                    if (!scatter)
                        for (int xi = 0; xi < 16; xi++) store_part(v + (xi * R + r) * C + c, &o[xi], C - c);
                    for (int a = 0; a < 4 && scatter; a++)
                        for (int b = 0; b < 4; b++) {
                            const int64_t h = h0 + a, w = w0 + b;
                            if (h < 0 || h >= g->in_h || w < 0 || w >= g->in_w) continue;
                            float *p = x + ((s * g->in_h + h) * g->in_w + w) * C + c;
                            const v16 sum = load_part(p, C - c) + o[4 * a + b];
                            store_part(p, &sum, C - c);
                        }
                }
            }
}

/* Walk every tile of ns samples on the output side. Forward: y (ns, out_h, out_w, out_c) =
 * A^T m A of each tile plus bias, then max(y, 0) when relu; outputs past the edge dropped.
 * Adjoint: m = A dY A^T of each tile of y (dY), zeros for outputs past the edge, and
 * bias += dY tile by tile (db). */
static AI void output_walk(float *restrict m, float *restrict y, float *restrict bias,
                           const fm_conv_geom *g, int64_t ns, int relu, const int adjoint)
{
    const int64_t F = g->out_c, R = ns * tiles(g), TW = tiles_w(g);
    const v16 zero = {0};
    for (int64_t s = 0, r = 0; s < ns; s++)
        for (int64_t ti = 0; ti < tiles_h(g); ti++)
            for (int64_t tj = 0; tj < TW; tj++, r++)
                for (int64_t f = 0; f < F; f += 16) {
                    v16 mt[16], t[8], o[4], sum = load_part(bias + f, F - f);
                    if (!adjoint) {
                        for (int xi = 0; xi < 16; xi++) mt[xi] = load_part(m + (xi * R + r) * F + f, F - f);
                        for (int b = 0; b < 4; b++) at_1d(t + b, 4, mt + b, 4);
                        for (int a = 0; a < 2; a++) at_1d(o + 2 * a, 1, t + 4 * a, 1);
                    }
                    for (int a = 0; a < 2; a++)
                        for (int c = 0; c < 2; c++) {
                            const int64_t i = 2 * ti + a, j = 2 * tj + c;
                            const int inside = i < g->out_h && j < g->out_w;
                            float *p = y + ((s * g->out_h + i) * g->out_w + j) * F + f;
                            if (adjoint) {
                                o[2 * a + c] = inside ? load_part(p, F - f) : zero;
                                sum += o[2 * a + c];
                            } else if (inside) {
                                v16 out = o[2 * a + c] + sum;
                                if (relu) relu16(&out);
                                store_part(p, &out, F - f);
                            }
                        }
                    if (!adjoint) continue;
                    store_part(bias + f, &sum, F - f);
                    for (int c = 0; c < 2; c++) a_1d(t + c, 2, o + c, 2);
                    for (int a = 0; a < 4; a++) a_1d(mt + 4 * a, 1, t + 2 * a, 1);
                    for (int xi = 0; xi < 16; xi++) store_part(m + (xi * R + r) * F + f, &mt[xi], F - f);
                }
}

/* Forward: u (16, out_c, in_c) = G w G^T of each filter and channel of w (out_c, 3, 3,
 * in_c). Adjoint: w = G^T u G (the weights' gradient from u's). */
static AI void weights_walk(float *restrict u, float *restrict w, const fm_conv_geom *g,
                            const int adjoint)
{
    const int64_t F = g->out_c, C = g->in_c;
    for (int64_t f = 0; f < F; f++)
        for (int64_t c = 0; c < C; c += 16) {
            v16 k[9], t[12], o[16];
            if (adjoint) {
                for (int xi = 0; xi < 16; xi++) o[xi] = load_part(u + (xi * F + f) * C + c, C - c);
                for (int b = 0; b < 4; b++) gt_1d(t + b, 4, o + b, 4);
                for (int a = 0; a < 3; a++) gt_1d(k + 3 * a, 1, t + 4 * a, 1);
                for (int tap = 0; tap < 9; tap++) store_part(w + (f * 9 + tap) * C + c, &k[tap], C - c);
                continue;
            }
            for (int tap = 0; tap < 9; tap++) k[tap] = load_part(w + (f * 9 + tap) * C + c, C - c);
            for (int b = 0; b < 3; b++) g_1d(t + b, 3, k + b, 3);
            for (int a = 0; a < 4; a++) g_1d(o + 4 * a, 1, t + 3 * a, 1);
            for (int xi = 0; xi < 16; xi++) store_part(u + (xi * F + f) * C + c, &o[xi], C - c);
        }
}

typedef struct {
    void (*input)(float *, float *, const fm_conv_geom *, int64_t, int);
    void (*output)(float *, float *, float *, const fm_conv_geom *, int64_t, int, int);
    void (*weights)(float *, float *, const fm_conv_geom *, int);
} winograd_impl;

/* the walks and weight transforms compiled for one instruction set */
#define WINOGRAD_IMPL(name, attr)                                                                 \
    static attr void name##_input(float *v, float *x, const fm_conv_geom *g, int64_t ns,          \
                                  int scatter)                                                    \
    {                                                                                             \
        if (scatter) input_walk(v, x, g, ns, 1);                                                  \
        else input_walk(v, x, g, ns, 0);                                                          \
    }                                                                                             \
    static attr void name##_output(float *m, float *y, float *bias, const fm_conv_geom *g,        \
                                   int64_t ns, int relu, int adjoint)                             \
    {                                                                                             \
        if (adjoint) output_walk(m, y, bias, g, ns, 0, 1);                                        \
        else output_walk(m, y, bias, g, ns, relu, 0);                                             \
    }                                                                                             \
    static attr void name##_weights(float *u, float *w, const fm_conv_geom *g, int adjoint)       \
    {                                                                                             \
        if (adjoint) weights_walk(u, w, g, 1);                                                    \
        else weights_walk(u, w, g, 0);                                                            \
    }                                                                                             \
    static const winograd_impl name = {name##_input, name##_output, name##_weights};

WINOGRAD_IMPL(winograd_portable, )
#if defined(__x86_64__) || defined(__i386__)
WINOGRAD_IMPL(winograd_avx2, __attribute__((target("avx2,fma"))))
WINOGRAD_IMPL(winograd_avx512, __attribute__((target("avx512f,fma"))))
#endif

/* the transforms of family `kernel` for g, or NULL when the CPU lacks it or g does not fit */
static const winograd_impl *impl_for(const fm_conv_geom *g, enum fm_kernel kernel)
{
    if (!fm_winograd_fits(g)) return NULL;
#if defined(__x86_64__) || defined(__i386__)
    return vec16_pick(kernel, &winograd_portable, &winograd_avx2, &winograd_avx512);
#else
    return vec16_pick(kernel, &winograd_portable, NULL, NULL);
#endif
}

int fm_winograd_weights(float *u, const float *w, const fm_conv_geom *g, enum fm_kernel kernel)
{
    const winograd_impl *im = impl_for(g, kernel);
    if (im == NULL) return FM_EINVAL;
    im->weights(u, (float *)w, g, 0); /* the forward only reads w */
    return FM_OK;
}

int fm_winograd_weight_grad(float *dw, const float *du, const fm_conv_geom *g,
                            enum fm_kernel kernel)
{
    const winograd_impl *im = impl_for(g, kernel);
    if (im == NULL) return FM_EINVAL;
    im->weights((float *)du, dw, g, 1); /* the adjoint only reads du */
    return FM_OK;
}

int fm_winograd_forward(float *y, float *scratch, const float *x, const float *u, const float *b,
                        const fm_conv_geom *g, int64_t ns, int relu, enum fm_kernel kernel,
                        int nthreads)
{
    const winograd_impl *im = impl_for(g, kernel);
    if (im == NULL) return FM_EINVAL;
    const int64_t C = g->in_c, F = g->out_c, R = ns * tiles(g);
    float *v = scratch, *m = scratch + rounded(16 * R * C);
    im->input(v, (float *)x, g, ns, 0); /* gathering only reads x */
    for (int64_t xi = 0; xi < 16; xi++) {
        /* M[xi] = V[xi] U[xi]^T: (R, C) x (C, F) */
        int status = fm_gemm(m + xi * R * F, F, v + xi * R * C, C, FM_NO_TRANS, u + xi * F * C, C,
                             FM_TRANS, R, F, C, 1.0f, 0.0f, FM_KERNEL_AUTO, nthreads);
        if (status != FM_OK) return status;
    }
    im->output(m, y, (float *)b, g, ns, relu, 0); /* the forward only reads b */
    return FM_OK;
}

int fm_winograd_backward(float *dx, float *du, float *db, float *scratch, float *dscratch,
                         const float *dy, const float *x, const float *u, const fm_conv_geom *g,
                         int64_t ns, int accumulate, enum fm_kernel kernel, int nthreads)
{
    const winograd_impl *im = impl_for(g, kernel);
    if (im == NULL) return FM_EINVAL;
    const int64_t C = g->in_c, F = g->out_c, R = ns * tiles(g);
    float *v = scratch, *dm = scratch + rounded(16 * R * C), *dv = dscratch;
    im->input(v, (float *)x, g, ns, 0);
    if (!accumulate) memset(db, 0, (size_t)F * sizeof(float));
    im->output(dm, (float *)dy, db, g, ns, 0, 1); /* the adjoint only reads dy */
    for (int64_t xi = 0; xi < 16; xi++) {
        const float *dmx = dm + xi * R * F, *ux = u + xi * F * C;
        /* dV[xi] = dM[xi] U[xi]: (R, F) x (F, C) */
        int status = dx == NULL ? FM_OK
                                : fm_gemm(dv + xi * R * C, C, dmx, F, FM_NO_TRANS, ux, C, FM_NO_TRANS,
                                          R, C, F, 1.0f, 0.0f, FM_KERNEL_AUTO, nthreads);
        /* dU[xi] (+)= dM[xi]^T V[xi]: (F, R) x (R, C) */
        if (status == FM_OK)
            status = fm_gemm(du + xi * F * C, C, dmx, F, FM_TRANS, v + xi * R * C, C, FM_NO_TRANS, F,
                             C, R, 1.0f, accumulate ? 1.0f : 0.0f, FM_KERNEL_AUTO, nthreads);
        if (status != FM_OK) return status;
    }
    if (dx != NULL) im->input(dv, dx, g, ns, 1);
    return FM_OK;
}
