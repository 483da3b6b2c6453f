/* conv.c: convolution on channels-last tensors: im2col + the shared GEMM chunk by chunk,
 * Winograd (winograd.c) chunk by chunk for 3x3 stride-1 windows, or directly for
 * single-channel inputs. Not pooling (pool.c), not the network driver (nn.c), not the GEMM
 * itself (gemm.c), nor Winograd's transforms.
 * Every loop that runs on several threads splits over samples, whose outputs are disjoint,
 * so results never depend on the thread count. */
#include <string.h>

#include "core/common.h"
#include "nn/conv.h"
#include "core/gemm.h"
#include "nn/layers.h"
#include "core/parallel.h"
#include "core/vec16.h"
#include "nn/winograd.h"

/* im2col floats per chunk: 512 KB, so the chunk is still in L2 when the GEMM packs it (CPU
 * time per epoch of the improved network: 2 MB chunks 1.99 s, 512 KB 1.49 s, 256 KB 1.56 s
 * on a sample), and still hundreds to thousands of GEMM rows */
#define FM_CONV_CHUNK_FLOATS ((int64_t)1 << 17)
/* Winograd scratch floats per chunk: 2 MB. Its 16 GEMMs each read and write only their
 * 1/16 of the chunk, while more tiles per GEMM amortise packing the transformed weights and
 * fill the micro-kernel's rows (CPU time of the improved network's epoch on 3,200 images,
 * one thread: 512 KB chunks (one sample at 14x14) 2.77-2.83 s, 2 MB 2.49-2.50 s, 4 MB
 * 2.47-2.49 s, 8 MB 2.70-2.73 s) */
#define FM_WINOGRAD_CHUNK_FLOATS ((int64_t)1 << 19)
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
static int64_t rounded(int64_t len) { return (len + 15) / 16 * 16; } /* 64-byte pieces */

/* a 1x1 stride-1 convolution over the whole input: its im2col matrix is the input */
static int is_pointwise(const fm_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->stride == 1 && g->out_h == g->in_h && g->out_w == g->in_w;
}

/* How a call runs: Winograd (winograd.c) where algorithm a asks for it or, left to choose,
 * for 3x3 stride-1 windows over at least FM_WINOGRAD_MIN_C channels (91% of the improved
 * network's multiply-adds, 2.25 times fewer that way); else a single-channel input (a first
 * layer on grayscale images) directly, without im2col or the GEMM (see "single-channel direct
 * convolution" below); else im2col and the GEMM. */
/* Below 32 channels the 16 GEMMs are too thin to gain (one thread, batch 128, forward and
 * backward: the study's 16->16 layer at 11x11 4.6-4.8 ms either way, its 16->100 layer at
 * 3x3 2.1 ms against im2col's 1.3; 32->64 at 14x14 faster by Winograd) */
#define FM_WINOGRAD_MIN_C 32
enum path { PATH_IM2COL, PATH_DIRECT, PATH_WINOGRAD };
static enum path path_of(const fm_conv_geom *g, enum fm_conv_algorithm a)
{
    if (fm_winograd_fits(g) && (a == FM_CONV_WINOGRAD || (a == FM_CONV_AUTO && g->in_c >= FM_WINOGRAD_MIN_C)))
        return PATH_WINOGRAD;
    return g->in_c == 1 ? PATH_DIRECT : PATH_IM2COL;
}
/* the zero-padded sample the windows read: rows and columns up to the last window's end */
static int64_t padded_h(const fm_conv_geom *g) { return (g->out_h - 1) * g->stride + g->kh; }
static int64_t padded_w(const fm_conv_geom *g) { return (g->out_w - 1) * g->stride + g->kw; }
/* filters rounded up to whole 16-float vectors */
static int64_t lanes(const fm_conv_geom *g) { return (g->out_c + 15) / 16 * 16; }
/* a group's direct scratch: the padded sample (its gradient in dcol), then the transposed
 * weights and bias (the weight and bias gradient sums in dcol), each (taps + 1, lanes) */
static int64_t direct_len(const fm_conv_geom *g)
{
    return rounded(padded_h(g) * padded_w(g)) + rounded((g->kh * g->kw + 1) * lanes(g));
}

static int64_t n_groups(int64_t n) { return n < 1 ? 1 : n < FM_CONV_GROUPS ? n : FM_CONV_GROUPS; }

/* samples in the largest group of n */
static int64_t group_most(int64_t n) { return n < 1 ? 1 : (n + n_groups(n) - 1) / n_groups(n); }

/* Samples a group's scratch holds: the largest group of n, or as many as fit in
 * FM_CONV_CHUNK_FLOATS (FM_WINOGRAD_CHUNK_FLOATS) of scratch when fewer. No batch of up to
 * n samples chunks more at once, so scratch sized for n serves them all (nn.c sizes its
 * workspace for the largest batch; sizing by the chunk itself did not: 7 samples go in
 * chunks of 4 when 6 fit, 6 in one chunk). */
static int64_t chunk_room(const fm_conv_geom *g, int64_t n, enum fm_conv_algorithm a)
{
    int64_t per = path_of(g, a) == PATH_WINOGRAD ? fm_winograd_scratch_len(g, 1)
                                                 : g->out_h * g->out_w * col_width(g);
    int64_t cap = (path_of(g, a) == PATH_WINOGRAD ? FM_WINOGRAD_CHUNK_FLOATS : FM_CONV_CHUNK_FLOATS) / per;
    if (cap < 1) cap = 1;
    return group_most(n) < cap ? group_most(n) : cap;
}

int64_t fm_conv2d_chunk(const fm_conv_geom *g, int64_t n, enum fm_conv_algorithm a)
{
    /* the largest group in chunks of at most chunk_room samples, as even as they come */
    int64_t most = group_most(n), chunks = (most + chunk_room(g, n, a) - 1) / chunk_room(g, n, a);
    return (most + chunks - 1) / chunks;
}

/* The pieces of col: the call's transformed Winograd weights (shared), then each group's
 * scratch (its im2col chunk); of dcol: each group's gradient scratch (its dcol chunk; for
 * Winograd its dU sum, then its dV chunk), then its dW and db partial. */
static int64_t shared_col(const fm_conv_geom *g, enum fm_conv_algorithm a)
{
    return path_of(g, a) == PATH_WINOGRAD ? rounded(fm_winograd_weights_len(g)) : 0;
}
static int64_t group_col(const fm_conv_geom *g, int64_t n, enum fm_conv_algorithm a)
{
    const int64_t chunk = chunk_room(g, n, a);
    switch (path_of(g, a)) {
    case PATH_DIRECT: return direct_len(g);
    case PATH_WINOGRAD: return rounded(fm_winograd_scratch_len(g, chunk));
    default: return is_pointwise(g) ? 0 : rounded(chunk * g->out_h * g->out_w * col_width(g));
    }
}
static int64_t group_dcol(const fm_conv_geom *g, int64_t n, enum fm_conv_algorithm a)
{
    if (path_of(g, a) != PATH_WINOGRAD) return group_col(g, n, a);
    return rounded(fm_winograd_weights_len(g)) +
           rounded(fm_winograd_dscratch_len(g, chunk_room(g, n, a)));
}
static int64_t group_part(const fm_conv_geom *g) { return rounded(g->out_c * (col_width(g) + 1)); }

int64_t fm_conv2d_col_len(const fm_conv_geom *g, int64_t n, enum fm_conv_algorithm a)
{
    return shared_col(g, a) + n_groups(n) * group_col(g, n, a);
}

int64_t fm_conv2d_dcol_len(const fm_conv_geom *g, int64_t n, enum fm_conv_algorithm a)
{
    return n_groups(n) * (group_dcol(g, n, a) + group_part(g));
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
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&region);
        FM_OMP(omp for schedule(static))
        for (int64_t s = 0; s < ns; s++) {
            float *xs = x + s * fm_conv_in_len(g);
            if (scatter) memset(xs, 0, (size_t)fm_conv_in_len(g) * sizeof(float));
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
                            if (scatter) fm_add_floats(line + w0 * C, row, run);
                            else fm_copy_floats(row, line + w0 * C, run);
                            continue;
                        }
                        for (int64_t b = 0; b < g->kw; b++) {
                            int64_t w = w0 + b;
                            int inside = w >= 0 && w < g->in_w;
                            if (scatter) { if (inside) fm_add_floats(line + w * C, row + b * C, C); }
                            else if (inside) fm_copy_floats(row + b * C, line + w * C, C);
                            else memset(row + b * C, 0, (size_t)C * sizeof(float));
                        }
                    }
                }
        }
    }
    fm_parallel_join(&region);
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

/* ------------------------------------------------ single-channel direct convolution */

/* A single-channel input's im2col matrix is only kh*kw columns wide: im2col copies runs of
 * kw floats and the GEMM packs more than it multiplies (20-35% of peak at 9 columns, and
 * the first layer took half the study network's epoch). Such a convolution runs directly:
 * each window is read from a zero-padded copy of the sample, and the filters go 16 at a
 * time in a vector (GCC's vector extension: this one source is compiled below for
 * AVX-512, AVX2 and any CPU). */
/* pad (padded_h, padded_w) = x (in_h, in_w) shifted by the padding, zeros outside x */
static void pad_sample(float *pad, const float *x, const fm_conv_geom *g)
{
    const int64_t ph = padded_h(g), pw = padded_w(g);
    for (int64_t r = 0; r < ph; r++) {
        const int64_t h = r - g->pad_h;
        float *row = pad + r * pw;
        for (int64_t c = 0; c < pw; c++) {
            const int64_t w = c - g->pad_w;
            row[c] = h >= 0 && h < g->in_h && w >= 0 && w < g->in_w ? x[h * g->in_w + w] : 0.0f;
        }
    }
}

/* dx (in_h, in_w) = the entries of dpad that pad_sample took from x; zeros for input
 * pixels that no window reaches */
static void unpad_sample(float *dx, const float *dpad, const fm_conv_geom *g)
{
    const int64_t ph = padded_h(g), pw = padded_w(g);
    for (int64_t h = 0; h < g->in_h; h++)
        for (int64_t w = 0; w < g->in_w; w++) {
            const int64_t r = h + g->pad_h, c = w + g->pad_w;
            dx[h * g->in_w + w] = r < ph && c < pw ? dpad[r * pw + c] : 0.0f;
        }
}

/* wt (taps + 1, lanes): wt[t][f] = w[f][t] for the kh*kw taps, then the bias (zeros when b
 * is NULL), zeros past out_c. w: (out_c, kh, kw, 1) */
static void transpose_weights(float *wt, const float *w, const float *b, const fm_conv_geom *g)
{
    const int64_t taps = g->kh * g->kw, L = lanes(g);
    memset(wt, 0, (size_t)((taps + 1) * L) * sizeof(float));
    for (int64_t f = 0; f < g->out_c; f++) {
        for (int64_t t = 0; t < taps; t++) wt[t * L + f] = w[f * taps + t];
        if (b != NULL) wt[taps * L + f] = b[f];
    }
}

/* taps whose weight-gradient sums stay in registers while the pixels go by: a 3x3 window */
#define FM_DIRECT_SLICE 9

/* y (out_h, out_w, out_c) of one sample = its windows times wt, plus the bias; then
 * max(y, 0) when relu. kh and kw are g's, passed as constants for the common windows, so
 * that the loops over the taps unroll and a block's weights stay in registers. */
static inline __attribute__((always_inline)) void
direct_forward_body(float *restrict y, const float *restrict pad, const float *restrict wt,
                    const fm_conv_geom *g, int relu, const int64_t kh, const int64_t kw)
{
    const int64_t F = g->out_c, L = lanes(g), PW = padded_w(g), taps = kh * kw;
    for (int64_t f = 0; f < F; f += 16) {
        const v16 bias = load16(wt + taps * L + f);
        for (int64_t i = 0; i < g->out_h; i++)
            for (int64_t j = 0; j < g->out_w; j++) {
                const float *win = pad + i * g->stride * PW + j * g->stride;
                float *yo = y + (i * g->out_w + j) * F + f;
                v16 acc = bias;
                for (int64_t a = 0; a < kh; a++)
                    for (int64_t b = 0; b < kw; b++)
                        acc += win[a * PW + b] * load16(wt + (a * kw + b) * L + f);
                if (relu) relu16(&acc);
                store_part(yo, &acc, F - f);
            }
    }
}

/* One sample's backward: sums (taps + 1, lanes) += each pixel's window taps and a 1, times
 * its dY (dW and db, transposed); dpad (padded_h, padded_w) += dY W^T at every window
 * (dx before unpadding; skipped when dpad is NULL). kh, kw as in direct_forward_body. */
static inline __attribute__((always_inline)) void
direct_backward_body(float *restrict sums, float *restrict dpad, const float *restrict dy,
                     const float *restrict pad, const float *restrict wt, const fm_conv_geom *g,
                     const int64_t kh, const int64_t kw)
{
    const int64_t F = g->out_c, L = lanes(g), PW = padded_w(g), taps = kh * kw;
    for (int64_t f = 0; f < F; f += 16) {
        const int64_t width = F - f;
        /* dW[f][t] += x_t dY[f] (db[f] += dY[f] with the first slice), FM_DIRECT_SLICE taps
         * at a time, their sums in registers */
        for (int64_t t0 = 0; t0 < taps; t0 += FM_DIRECT_SLICE) {
            const int64_t nt = taps - t0 < FM_DIRECT_SLICE ? taps - t0 : FM_DIRECT_SLICE;
            v16 acc[FM_DIRECT_SLICE], db = {0};
            int64_t at[FM_DIRECT_SLICE];
            for (int64_t u = 0; u < nt; u++) {
                acc[u] = load16(sums + (t0 + u) * L + f);
                at[u] = (t0 + u) / kw * PW + (t0 + u) % kw;
            }
            for (int64_t i = 0; i < g->out_h; i++)
                for (int64_t j = 0; j < g->out_w; j++) {
                    const float *win = pad + i * g->stride * PW + j * g->stride;
                    const v16 d = load_part(dy + (i * g->out_w + j) * F + f, width);
                    for (int64_t u = 0; u < nt; u++) acc[u] += win[at[u]] * d;
                    if (t0 == 0) db += d;
                }
            for (int64_t u = 0; u < nt; u++) memcpy(sums + (t0 + u) * L + f, &acc[u], sizeof acc[u]);
            if (t0 == 0) {
                db += load16(sums + taps * L + f);
                memcpy(sums + taps * L + f, &db, sizeof db);
            }
        }
        if (dpad == NULL) continue;
        /* dx_t += sum over f of dY[f] W[f][t] */
        for (int64_t i = 0; i < g->out_h; i++)
            for (int64_t j = 0; j < g->out_w; j++) {
                float *dwin = dpad + i * g->stride * PW + j * g->stride;
                const v16 d = load_part(dy + (i * g->out_w + j) * F + f, width);
                for (int64_t a = 0; a < kh; a++)
                    for (int64_t b = 0; b < kw; b++) {
                        const v16 p = d * load16(wt + (a * kw + b) * L + f);
                        float sum = 0.0f;
                        for (int t = 0; t < 16; t++) sum += p[t];
                        dwin[a * PW + b] += sum;
                    }
            }
    }
}

typedef void (*direct_forward_fn)(float *, const float *, const float *, const fm_conv_geom *, int);
typedef void (*direct_backward_fn)(float *, float *, const float *, const float *, const float *,
                                   const fm_conv_geom *);
typedef struct {
    direct_forward_fn forward;
    direct_backward_fn backward;
} direct_impl;

/* the bodies compiled for one instruction set */
#define DIRECT_IMPL(name, attr)                                                                   \
    static attr void name##_forward(float *y, const float *pad, const float *wt,                  \
                                    const fm_conv_geom *g, int relu)                              \
    {                                                                                             \
        if (g->kh == 3 && g->kw == 3) direct_forward_body(y, pad, wt, g, relu, 3, 3);             \
        else direct_forward_body(y, pad, wt, g, relu, g->kh, g->kw);                              \
    }                                                                                             \
    static attr void name##_backward(float *sums, float *dpad, const float *dy, const float *pad, \
                                     const float *wt, const fm_conv_geom *g)                      \
    {                                                                                             \
        if (g->kh == 3 && g->kw == 3) direct_backward_body(sums, dpad, dy, pad, wt, g, 3, 3);     \
        else direct_backward_body(sums, dpad, dy, pad, wt, g, g->kh, g->kw);                      \
    }                                                                                             \
    static const direct_impl name = {name##_forward, name##_backward};

DIRECT_IMPL(direct_portable, )
#if defined(__x86_64__) || defined(__i386__)
DIRECT_IMPL(direct_avx2, __attribute__((target("avx2,fma"))))
DIRECT_IMPL(direct_avx512, __attribute__((target("avx512f,fma"))))
#endif

/* The direct kernels of family `kernel` (FM_KERNEL_AUTO: the best this CPU runs), or NULL
 * when the CPU lacks it. */
static const direct_impl *direct_for(enum fm_kernel kernel)
{
#if defined(__x86_64__) || defined(__i386__)
    return vec16_pick(kernel, &direct_portable, &direct_avx2, &direct_avx512);
#else
    return vec16_pick(kernel, &direct_portable, NULL, NULL);
#endif
}

/* The forward pass of samples [s0, s1) by impl (ReLU fused when relu); scratch:
 * direct_len(g) floats. */
static void direct_forward(float *y, float *scratch, const float *x, const float *w, const float *b,
                           const fm_conv_geom *g, int64_t s0, int64_t s1, int relu,
                           const direct_impl *impl)
{
    float *wt = scratch + rounded(padded_h(g) * padded_w(g));
    transpose_weights(wt, w, b, g);
    for (int64_t s = s0; s < s1; s++) {
        pad_sample(scratch, x + s * fm_conv_in_len(g), g);
        impl->forward(y + s * fm_conv_out_len(g), scratch, wt, g, relu);
    }
}

/* The backward pass of samples [s0, s1) by impl: their dW and db partial (overwritten) and
 * dx (skipped when NULL); scratch and dscratch: direct_len(g) floats each. */
static void direct_backward(float *dx, float *part, float *scratch, float *dscratch,
                            const float *dy, const float *x, const float *w,
                            const fm_conv_geom *g, int64_t s0, int64_t s1, const direct_impl *impl)
{
    const int64_t taps = g->kh * g->kw, L = lanes(g), padded = padded_h(g) * padded_w(g);
    float *wt = scratch + rounded(padded), *sums = dscratch + rounded(padded);
    transpose_weights(wt, w, NULL, g);
    memset(sums, 0, (size_t)((taps + 1) * L) * sizeof(float));
    for (int64_t s = s0; s < s1; s++) {
        pad_sample(scratch, x + s * fm_conv_in_len(g), g);
        if (dx != NULL) memset(dscratch, 0, (size_t)padded * sizeof(float));
        impl->backward(sums, dx == NULL ? NULL : dscratch, dy + s * fm_conv_out_len(g), scratch, wt, g);
        if (dx != NULL) unpad_sample(dx + s * fm_conv_in_len(g), dscratch, g);
    }
    for (int64_t f = 0; f < g->out_c; f++) { /* back to (out_c, taps), then db */
        for (int64_t t = 0; t < taps; t++) part[f * taps + t] = sums[t * L + f];
        part[g->out_c * taps + f] = sums[taps * L + f];
    }
}

/* The threads a convolution over n samples runs its groups on, and the threads each
 * group's kernels may use in turn (all of them when there is only one group). */
static int group_threads(int *inner, const fm_conv_geom *g, int64_t n, int nthreads)
{
    int nt = fm_parallel_threads_for(n * fm_conv_out_len(g) * col_width(g), FM_CONV_SERIAL, nthreads);
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

/* One convolution call: forward when dy is NULL (y out, x in), else backward (dx out,
 * dy and x in, each group's dW and db partial in dcol). */
typedef struct {
    float *out, *col, *dcol;
    const float *x, *dy, *w, *b;
    const fm_conv_geom *g;
    int64_t n;
    int relu;                  /* forward: a ReLU fused into the output */
    enum fm_conv_algorithm algorithm;
    enum path path;
    const direct_impl *direct; /* PATH_DIRECT: the kernels */
    const float *u;            /* PATH_WINOGRAD: the transformed weights */
    enum fm_kernel kernel;     /* PATH_WINOGRAD: the transforms' family */
} conv_call;

/* The forward pass of one group's samples [s0, s1), chunk by chunk through its col (ReLU
 * fused when relu), by im2col and the GEMM or by Winograd. */
static int group_forward(const conv_call *c, float *col, int64_t s0, int64_t s1, int64_t chunk,
                         int nthreads)
{
    const fm_conv_geom *g = c->g;
    const int64_t P = g->out_h * g->out_w;
    for (; s0 < s1; s0 += chunk) {
        int64_t ns = s1 - s0 < chunk ? s1 - s0 : chunk;
        const float *xc = c->x + s0 * fm_conv_in_len(g);
        float *y = c->out + s0 * fm_conv_out_len(g);
        int status;
        if (c->path == PATH_WINOGRAD) {
            status = fm_winograd_forward(y, col, xc, c->u, c->b, g, ns, c->relu, c->kernel, nthreads);
        } else {
            if (!is_pointwise(g)) { im2col(col, xc, g, ns, nthreads); xc = col; }
            /* Y = col W^T + b: (ns P, K) x (K, F) */
            status = fm_dense_forward(y, xc, c->w, c->b, ns * P, col_width(g), g->out_c, c->relu,
                                      nthreads);
        }
        if (status != FM_OK) return status;
    }
    return FM_OK;
}

/* The backward pass of one group's samples [s0, s1): its dW and db partial (overwritten;
 * Winograd's dU summed in dcol first) and the dx of its samples. */
static int group_backward(const conv_call *c, float *part, float *col, float *dcol, int64_t s0,
                          int64_t s1, int64_t chunk, int nthreads)
{
    const fm_conv_geom *g = c->g;
    const int64_t P = g->out_h * g->out_w, K = col_width(g);
    float *dx = c->out;
    for (int64_t first = s0; s0 < s1; s0 += chunk) {
        int64_t ns = s1 - s0 < chunk ? s1 - s0 : chunk;
        const float *xc = c->x + s0 * fm_conv_in_len(g), *dy = c->dy + s0 * fm_conv_out_len(g);
        float *dxc = dx == NULL ? NULL : dx + s0 * fm_conv_in_len(g);
        int status;
        if (c->path == PATH_WINOGRAD) {
            /* dcol: dU, then the dV chunk */
            status = fm_winograd_backward(dxc, dcol, part + g->out_c * K, col,
                                          dcol + rounded(fm_winograd_weights_len(g)), dy, xc, c->u,
                                          g, ns, s0 > first, c->kernel, nthreads);
        } else {
            float *dc = dx == NULL || is_pointwise(g) ? dxc : dcol;
            if (!is_pointwise(g)) { im2col(col, xc, g, ns, nthreads); xc = col; }
            /* dW += dY^T col, db += column sums of dY, dcol = dY W: the dense layer's backward
             * with the chunk's pixels as rows */
            status = fm_dense_backward(dc, part, part + g->out_c * K, dy, xc, c->w, ns * P, K,
                                       g->out_c, s0 > first, nthreads);
            if (status == FM_OK && dx != NULL && !is_pointwise(g)) col2im(dxc, dcol, g, ns, nthreads);
        }
        if (status != FM_OK) return status;
    }
    /* dW = G^T dU G */
    return c->path == PATH_WINOGRAD ? fm_winograd_weight_grad(part, dcol, g, c->kernel) : FM_OK;
}

/* Every group of the call, spread over threads; FM_OK, or the status of a group that failed. */
static int run_groups(const conv_call *c, int nthreads)
{
    const fm_conv_geom *g = c->g;
    const enum fm_conv_algorithm a = c->algorithm;
    const int64_t groups = n_groups(c->n), chunk = fm_conv2d_chunk(g, c->n, a);
    const int64_t gc = group_col(g, c->n, a), gdc = group_dcol(g, c->n, a);
    int inner, nt = group_threads(&inner, g, c->n, nthreads), status = FM_OK;
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&region);
        FM_OMP(omp for schedule(static))
        for (int64_t gi = 0; gi < groups; gi++) {
            int64_t s0, s1;
            group_range(&s0, &s1, gi, c->n);
            float *col = c->col + shared_col(g, a) + gi * gc, *dcol = c->dcol + gi * (gdc + group_part(g));
            int st = FM_OK;
            if (c->path == PATH_DIRECT && c->dy == NULL)
                direct_forward(c->out, col, c->x, c->w, c->b, g, s0, s1, c->relu, c->direct);
            else if (c->path == PATH_DIRECT)
                direct_backward(c->out, dcol + gdc, col, dcol, c->dy, c->x, c->w, g, s0, s1, c->direct);
            else if (c->dy == NULL)
                st = group_forward(c, col, s0, s1, chunk, inner);
            else
                st = group_backward(c, dcol + gdc, col, dcol, s0, s1, chunk, inner);
            if (st != FM_OK) {
                FM_OMP(omp atomic write)
                status = st;
            }
        }
    }
    fm_parallel_join(&region);
    (void)nt;
    return status;
}

/* run_groups for a call by algorithm a: with its direct kernels when the input has a single
 * channel, with its weights transformed once when Winograd runs it */
static int run_call(conv_call c, enum fm_conv_algorithm a, enum fm_kernel kernel, int nthreads)
{
    c.algorithm = a;
    c.path = path_of(c.g, a);
    c.kernel = kernel;
    if (a == FM_CONV_WINOGRAD && c.path != PATH_WINOGRAD) return FM_EINVAL;
    if (c.path == PATH_DIRECT && (c.direct = direct_for(kernel)) == NULL) return FM_EINVAL;
    if (c.path == PATH_WINOGRAD) {
        /* U = G g G^T, in the head of col */
        int status = fm_winograd_weights(c.col, c.w, c.g, kernel);
        if (status != FM_OK) return status;
        c.u = c.col;
    }
    return run_groups(&c, nthreads);
}

int fm_conv2d_forward(float *y, float *col, const float *x, const float *w, const float *b,
                      const fm_conv_geom *g, int64_t n, int relu, enum fm_conv_algorithm a,
                      enum fm_kernel kernel, int nthreads)
{
    return run_call((conv_call){.out = y, .col = col, .x = x, .w = w, .b = b, .g = g, .n = n,
                                .relu = relu}, a, kernel, nthreads);
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
                       const fm_conv_geom *g, int64_t n, int accumulate,
                       enum fm_conv_algorithm a, enum fm_kernel kernel, int nthreads)
{
    int status = run_call((conv_call){.out = dx, .col = col, .dcol = dcol, .x = x, .dy = dy,
                                      .w = w, .g = g, .n = n}, a, kernel, nthreads);
    if (status != FM_OK) return status;
    /* dW (+)= the groups' partials, in group order; db likewise */
    const int64_t gdc = group_dcol(g, n, a), stride = gdc + group_part(g), FK = g->out_c * col_width(g);
    sum_partials(dw, dcol + gdc, stride, n_groups(n), FK, accumulate);
    sum_partials(db, dcol + gdc + FK, stride, n_groups(n), g->out_c, accumulate);
    return FM_OK;
}
