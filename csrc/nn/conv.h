/* conv.h: 2-D convolution on channels-last tensors, and the window geometry that pooling
 * (pool.h) shares. A sample is an (H, W, C) row-major block, so one row of the im2col
 * matrix is one output pixel's receptive field (kh, kw, C) and the convolution of a whole
 * chunk of samples is a single GEMM with the pixels as rows, writing (H, W, F) blocks
 * directly: no transposes. Weights are stored (F, kh, kw, C), the column order, so conv
 * forward/backward are the dense layer's GEMMs on the im2col matrix (3x3 stride-1 windows
 * over several channels take Winograd's 16 smaller GEMMs instead: winograd.h). */
#ifndef FM_CONV_H
#define FM_CONV_H

#include <stdint.h>

#include "core/gemm.h"

/* Shapes of one convolution or pooling layer. Output pixel (i, j) reads input rows
 * i*stride - pad_h .. + kh - 1 and columns j*stride - pad_w .. + kw - 1; rows and columns
 * outside the input read as zeros (convolution) or are never part of a window (pooling,
 * pad 0). For pooling out_c == in_c. */
typedef struct {
    int64_t in_h, in_w, in_c;
    int64_t out_h, out_w, out_c;
    int64_t kh, kw, stride, pad_h, pad_w;
} fm_conv_geom;

/* floats of one sample's input and output */
static inline int64_t fm_conv_in_len(const fm_conv_geom *g) { return g->in_h * g->in_w * g->in_c; }
static inline int64_t fm_conv_out_len(const fm_conv_geom *g) { return g->out_h * g->out_w * g->out_c; }

/* How a convolution runs. FM_CONV_AUTO: Winograd F(2x2, 3x3) (winograd.h) for 3x3 stride-1
 * windows over more than one channel, else as FM_CONV_IM2COL: im2col and the GEMM, or
 * directly for a single-channel input. FM_CONV_WINOGRAD: Winograd for any 3x3 stride-1
 * windows (FM_EINVAL for others); the forced choices are there for tests. */
enum fm_conv_algorithm { FM_CONV_AUTO = 0, FM_CONV_IM2COL = 1, FM_CONV_WINOGRAD = 2 };

/* Samples per chunk (one GEMM, or one round of Winograd's 16) for a batch of n (1..n).
 * Forward and backward need `col` scratch of fm_conv2d_col_len(g, n, a) floats (each group
 * of samples' chunk scratch; Winograd's transformed weights), backward also `dcol` scratch of
 * fm_conv2d_dcol_len(g, n, a) (each group's gradient scratch and weight-gradient partial),
 * a being the algorithm the calls are given. */
int64_t fm_conv2d_chunk(const fm_conv_geom *g, int64_t n, enum fm_conv_algorithm a);
int64_t fm_conv2d_col_len(const fm_conv_geom *g, int64_t n, enum fm_conv_algorithm a);
int64_t fm_conv2d_dcol_len(const fm_conv_geom *g, int64_t n, enum fm_conv_algorithm a);

/* y = conv(x, w) + b, then max(y, 0) when relu (a following ReLU fused in: its forward is
 * this output), chunk by chunk through col, by algorithm a. The direct kernel of a
 * single-channel input and Winograd's transforms use the micro-kernel family `kernel`
 * (FM_KERNEL_AUTO: the best the CPU has; the other families are there for tests); GEMMs
 * always run on the best.
 * y: (n, out_h, out_w, out_c); x: (n, in_h, in_w, in_c); w: (out_c, kh, kw, in_c); b: (out_c)
 * Returns FM_OK, the GEMM's status, or FM_EINVAL for a kernel family the CPU lacks or
 * Winograd forced on windows it does not fit. */
int fm_conv2d_forward(float *y, float *col, const float *x, const float *w, const float *b,
                      const fm_conv_geom *g, int64_t n, int relu, enum fm_conv_algorithm a,
                      enum fm_kernel kernel, int nthreads);

/* dW += dY^T col(x);  db += sums of dY over pixels;  dx = col2im(dY W) (skipped when dx is
 * NULL). accumulate == 0 overwrites dw and db. Shapes, algorithm, kernel and statuses as
 * fm_conv2d_forward; dx like x; col, dcol: scratch as above. The result does not depend on
 * nthreads. */
int fm_conv2d_backward(float *dx, float *dw, float *db, float *col, float *dcol,
                       const float *dy, const float *x, const float *w,
                       const fm_conv_geom *g, int64_t n, int accumulate,
                       enum fm_conv_algorithm a, enum fm_kernel kernel, int nthreads);

#endif
