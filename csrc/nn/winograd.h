/* winograd.h: Winograd F(2x2, 3x3) convolution of 3x3 stride-1 windows on channels-last
 * tensors (conv.h's layout), one chunk of samples at a time: each 2x2 output tile from its
 * 4x4 input tile with 16 multiplications per channel pair instead of 36. conv.c chooses it
 * and runs the chunks on its groups of samples.
 *
 * Per tile and channel, V = B^T d B (d: the 4x4 input tile, zeros outside the input), per
 * filter and channel U = G g G^T (g: the 3x3 weights); then for each of the 16 tile
 * positions xi one GEMM M[xi] = V[xi] U[xi]^T (tiles x in_c)(in_c x out_c), and the output
 * tile is A^T M A. The backward runs the same transforms transposed: dM = A dY A^T,
 * dV[xi] = dM[xi] U[xi], dU[xi] = dM[xi]^T V[xi], dg = G^T dU G, dd = B dV B^T added into
 * the overlapping input windows. */
#ifndef FM_WINOGRAD_H
#define FM_WINOGRAD_H

#include <stdint.h>

#include "nn/conv.h"
#include "core/gemm.h"

/* Whether g's windows are ones this computes: 3x3, stride 1 (any padding and channels). */
int fm_winograd_fits(const fm_conv_geom *g);

/* Floats of the transformed weights u (16, out_c, in_c), and of their gradient. */
int64_t fm_winograd_weights_len(const fm_conv_geom *g);

/* Floats of a chunk of ns samples' scratch: `scratch` (forward and backward) holds V and M
 * (or dM), `dscratch` (backward) dV. */
int64_t fm_winograd_scratch_len(const fm_conv_geom *g, int64_t ns);
int64_t fm_winograd_dscratch_len(const fm_conv_geom *g, int64_t ns);

/* u = G w G^T for every filter and channel.
 * u: (16, out_c, in_c); w: (out_c, 3, 3, in_c). kernel: the family of the elementwise
 * transforms here (FM_KERNEL_AUTO: the best the CPU has; the GEMMs always run on the best).
 * Every function here returns FM_OK, or FM_EINVAL for a family the CPU lacks or a g that
 * does not fit; those with GEMMs also the GEMM's status. */
int fm_winograd_weights(float *u, const float *w, const fm_conv_geom *g, enum fm_kernel kernel);

/* dw = G^T du G, the weights' gradient from u's (overwritten).
 * dw: (out_c, 3, 3, in_c); du: (16, out_c, in_c) */
int fm_winograd_weight_grad(float *dw, const float *du, const fm_conv_geom *g,
                            enum fm_kernel kernel);

/* y = conv(x, w) + b for ns samples, then max(y, 0) when relu, u from fm_winograd_weights.
 * y: (ns, out_h, out_w, out_c); x: (ns, in_h, in_w, in_c); b: (out_c);
 * scratch: fm_winograd_scratch_len(g, ns) floats. GEMMs on at most nthreads threads. */
int fm_winograd_forward(float *y, float *scratch, const float *x, const float *u, const float *b,
                        const fm_conv_geom *g, int64_t ns, int relu, enum fm_kernel kernel,
                        int nthreads);

/* For ns samples: du += dM^T V and db += sums of dy over pixels (accumulate == 0 overwrites
 * them), dx = the input gradient (skipped when NULL).
 * dx like x; du like u; db: (out_c); dy like y; scratch and dscratch as above. */
int fm_winograd_backward(float *dx, float *du, float *db, float *scratch, float *dscratch,
                         const float *dy, const float *x, const float *u, const fm_conv_geom *g,
                         int64_t ns, int accumulate, enum fm_kernel kernel, int nthreads);

#endif
