/* pool.h: max and average pooling, forward and backward, on channels-last tensors with
 * conv.h's window geometry (pad 0, out_c == in_c). */
#ifndef FM_POOL_H
#define FM_POOL_H

#include <stdint.h>

#include "nn/conv.h"

/* Max pooling: y = the max of each window; arg = its flat (h, w, c) index within the
 * sample's input (the first in window order on ties), for backward.
 * y, arg: (n, out_h, out_w, c); x: (n, in_h, in_w, c). */
void fm_maxpool_forward(float *y, int32_t *arg, const float *x, const fm_conv_geom *g,
                        int64_t n, int nthreads);

/* dx = 0, then dx[arg] += dy (windows may overlap when stride < kh), only where relu_x > 0
 * when relu_x is not NULL: x is a ReLU's output, relu_x, and this is that ReLU's backward
 * too. relu_x: like dx. */
void fm_maxpool_backward(float *dx, const float *dy, const int32_t *arg, const float *relu_x,
                         const fm_conv_geom *g, int64_t n, int nthreads);

/* Average pooling (global average pooling is the window of the whole input):
 * y = mean of each window; backward dx = sum over the windows holding x of dy / (kh kw). */
void fm_avgpool_forward(float *y, const float *x, const fm_conv_geom *g, int64_t n, int nthreads);
void fm_avgpool_backward(float *dx, const float *dy, const fm_conv_geom *g, int64_t n,
                         int nthreads);

#endif
