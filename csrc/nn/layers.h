/* layers.h: forward and backward kernels of the network layers, one pair per layer.
 * Forward saves what backward needs into caller buffers; backward ADDS into parameter
 * gradients (the caller zeroes them once per step) and overwrites the input gradient.
 * A dense layer stores W (out, in). */
#ifndef FM_LAYERS_H
#define FM_LAYERS_H

#include <stdint.h>

#include "core/common.h"
#include "core/gemm.h"

/* y = x W^T + b, then max(y, 0) when relu (a following ReLU fused in: its forward is
 * this output). y: (n, out); x: (n, in); w: (out, in); b: (out).
 * Returns FM_OK or the GEMM's status. */
int fm_dense_forward(float *y, const float *x, const float *w, const float *b,
                     int64_t n, int64_t in, int64_t out, int relu, int nthreads);

/* dw += dy^T x;  db += column sums of dy;  dx = dy W (skipped when dx is NULL).
 * accumulate == 0 overwrites dw and db instead (saves zeroing them when a driver knows
 * this layer is their only writer).
 * dx: (n, in); dw: (out, in); db: (out); dy: (n, out); x: (n, in); w: (out, in).
 * Returns FM_OK or the GEMM's status. */
int fm_dense_backward(float *dx, float *dw, float *db,
                      const float *dy, const float *x, const float *w,
                      int64_t n, int64_t in, int64_t out, int accumulate, int nthreads);

/* fm_dense_backward with work fused into its GEMMs: when relu, a ReLU's backward in the dx
 * GEMM (dx is zeroed where x <= 0, x being that ReLU's output); dw_tail (NULL: none) on the
 * dw GEMM's finished regions (fm_gemm_tail; with scratch, dw may be left unwritten). With a
 * dw_tail the dx GEMM finishes first (not side by side), so the tail may rewrite w. */
int fm_dense_backward_fused(float *dx, float *dw, float *db,
                            const float *dy, const float *x, const float *w,
                            int64_t n, int64_t in, int64_t out, int accumulate, int relu,
                            const fm_gemm_tail *dw_tail, int nthreads);

/* y = max(x, 0).  y, x: (len), not overlapping. Elementwise loops split over at most
 * nthreads threads (results do not depend on it). */
void fm_relu_forward(float *y, const float *x, int64_t len, int nthreads);

/* dx = dy where the forward output y > 0, else 0.  dx, dy, y: (len), not overlapping */
void fm_relu_backward(float *dx, const float *dy, const float *y, int64_t len, int nthreads);

/* Batch normalisation of x (rows, ch): each of the ch channels over all rows (a batch's
 * samples after a dense layer; its pixels after a convolution, channels being last).
 * Training: mean and biased variance of the batch, xhat = (x - mean) / sqrt(var + eps),
 * y = gamma xhat + beta, then max(y, 0) when relu (a following ReLU fused in); returns the
 * batch's mean, var and invstd (ch) for the running statistics and backward, which
 * recomputes xhat from x. Sums are float64 over fixed spans of rows added in order, so
 * results do not depend on nthreads. scratch: fm_batchnorm_scratch_len(ch) floats, 8-byte
 * aligned. y does not alias x. */
int64_t fm_batchnorm_scratch_len(int64_t ch);
void fm_batchnorm_forward(float *y, float *mean, float *var, float *invstd, float *scratch,
                          const float *x, const float *gamma, const float *beta,
                          int64_t rows, int64_t ch, float eps, int relu, int nthreads);

/* Inference: xhat = (x - running_mean) / sqrt(running_var + eps), y = gamma xhat + beta
 * (then max(y, 0) when relu); saves mean (the running mean) and invstd for a backward pass
 * as fm_batchnorm_forward does. */
void fm_batchnorm_infer(float *y, float *mean, float *invstd, const float *x, const float *gamma,
                        const float *beta, const float *running_mean, const float *running_var,
                        int64_t rows, int64_t ch, float eps, int relu, int nthreads);

/* Backward of the forward pass on x that saved mean and invstd. dz = dy, or dy [relu_y > 0]
 * when relu_y (the output of a ReLU after the batch norm: this is that ReLU's backward too)
 * is given. dgamma += sum dz xhat;  dbeta += sum dz  (accumulate == 0 overwrites them);
 * dx (skipped when NULL; does not alias dy), after fm_batchnorm_forward (batch_stats):
 * gamma invstd (dz - mean(dz) - xhat mean(dz xhat)), means over rows, the batch's mean and
 * variance depending on x; after fm_batchnorm_infer: gamma invstd dz. */
void fm_batchnorm_backward(float *dx, float *dgamma, float *dbeta, float *scratch,
                           const float *dy, const float *x, const float *relu_y,
                           const float *mean, const float *invstd, const float *gamma,
                           int64_t rows, int64_t ch, int batch_stats, int accumulate, int nthreads);

/* A residual join: y = x + s, then max(y, 0) when relu (a following ReLU fused in).
 * y, x, s: (len), not overlapping. Its backward passes dy to both x and s (the driver adds
 * the shortcut's share where the shortcut left: fm_add_into). */
void fm_residual_forward(float *y, const float *x, const float *s, int64_t len, int relu,
                         int nthreads);

/* y += x.  y, x: (len), not overlapping */
void fm_add_into(float *y, const float *x, int64_t len, int nthreads);

/* Inverted dropout: mask_j = 1/(1-rate) with probability 1-rate, else 0; y = x * mask.
 * The mask depends on (seed, task) only: each block of elements draws from its own stream
 * derived from them, whichever of the nthreads threads runs it.
 * y, mask, x: (len); 0 <= rate < 1. */
void fm_dropout_forward(float *y, float *mask, const float *x, int64_t len, float rate,
                        uint64_t seed, uint64_t task, int nthreads);

/* dx = dy * mask.  dx, dy, mask: (len), not overlapping */
void fm_dropout_backward(float *dx, const float *dy, const float *mask, int64_t len, int nthreads);

#endif
