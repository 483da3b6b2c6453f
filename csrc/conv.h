/* conv.h: 2-D convolution on channels-last tensors, and the window geometry that pooling
 * (pool.h) shares. A sample is an (H, W, C) row-major block, so one row of the im2col
 * matrix is one output pixel's receptive field (kh, kw, C) and the convolution of a whole
 * chunk of samples is a single GEMM with the pixels as rows, writing (H, W, F) blocks
 * directly: no transposes. Weights are stored (F, kh, kw, C), the column order, so conv
 * forward/backward are the dense layer's GEMMs on the im2col matrix. */
#ifndef FM_CONV_H
#define FM_CONV_H

#include <stdint.h>

#include "gemm.h"

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

/* Samples per im2col chunk (one GEMM) for a batch of n (1..n). Forward and backward need
 * `col` scratch of fm_conv2d_col_len(g, n) floats (each group of samples' im2col chunk),
 * backward also `dcol` scratch of fm_conv2d_dcol_len(g, n) (each group's dcol chunk and
 * weight-gradient partial). */
int64_t fm_conv2d_chunk(const fm_conv_geom *g, int64_t n);
int64_t fm_conv2d_col_len(const fm_conv_geom *g, int64_t n);
int64_t fm_conv2d_dcol_len(const fm_conv_geom *g, int64_t n);

/* y = conv(x, w) + b, then max(y, 0) when relu (a following ReLU fused in: its forward is
 * this output), chunk by chunk through col; a single-channel input (in_c == 1) runs
 * directly instead, with the micro-kernel family `kernel` (FM_KERNEL_AUTO: the best the CPU
 * has; the other families are there for tests). Convolutions of more channels always run on
 * the best GEMM.
 * y: (n, out_h, out_w, out_c); x: (n, in_h, in_w, in_c); w: (out_c, kh, kw, in_c); b: (out_c)
 * Returns FM_OK, the GEMM's status, or FM_EINVAL for a kernel family the CPU lacks. */
int fm_conv2d_forward(float *y, float *col, const float *x, const float *w, const float *b,
                      const fm_conv_geom *g, int64_t n, int relu, enum fm_kernel kernel,
                      int nthreads);

/* dW += dY^T col(x);  db += sums of dY over pixels;  dx = col2im(dY W) (skipped when dx is
 * NULL). accumulate == 0 overwrites dw and db. Shapes, kernel and statuses as
 * fm_conv2d_forward; dx like x; col, dcol: scratch as above. The result does not depend on
 * nthreads. */
int fm_conv2d_backward(float *dx, float *dw, float *db, float *col, float *dcol,
                       const float *dy, const float *x, const float *w,
                       const fm_conv_geom *g, int64_t n, int accumulate, enum fm_kernel kernel,
                       int nthreads);

#endif
