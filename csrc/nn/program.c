/* program.c: decodes and checks the layer program the binding passes (fm_nn_decode): each
 * row's shapes, window, shortcut and parameter block. Not the driver that runs it (nn.c). */
#include <stdint.h>

#include "nn/nn.h"

/* Parameters a layer owns at its offset, and how many of them (the first) are trained. */
static int64_t n_params_of(const fm_layer *l)
{
    switch (l->type) {
    case FM_LAYER_DENSE: return fm_layer_out_len(l) * fm_layer_in_len(l) + fm_layer_out_len(l);
    case FM_LAYER_CONV2D: return l->out_c * (l->kh * l->kw * l->in_c + 1);
    case FM_LAYER_BATCHNORM: return 4 * l->in_c;
    case FM_LAYER_RESIDUAL: return l->kh == 1 ? l->out_c * (l->skip_c + 1) : 0;
    default: return 0;
    }
}

/* A window layer's geometry: window and stride in [1, 64], padding below the window. Pooling
 * windows (no padding) lie inside the input: its kernels read without bounds checks.
 * Convolution windows start inside the input padded above/left by pad, and may hang over
 * its far edge (implicit zero padding below/right, less than a window): im2col checks
 * every read. */
static int window_ok(const fm_layer *l, int pooling)
{
    /* pooling windows are bounded by the input below; a convolution's by its column width
     * kh kw C < 2^28 (then no product of sizes overflows) */
    const int64_t lim = (int64_t)1 << 20;
    if (l->kh < 1 || l->kw < 1 || l->stride < 1 || l->kh > lim || l->kw > lim || l->stride > lim ||
        l->pad_h < 0 || l->pad_w < 0 || l->pad_h >= l->kh || l->pad_w >= l->kw)
        return 0;
    if (!pooling && l->kh * l->kw * l->in_c >= ((int64_t)1 << 28)) return 0;
    int64_t last_h = (l->out_h - 1) * l->stride - l->pad_h, last_w = (l->out_w - 1) * l->stride - l->pad_w;
    if (pooling)
        return l->pad_h == 0 && l->pad_w == 0 && l->out_c == l->in_c &&
               last_h + l->kh <= l->in_h && last_w + l->kw <= l->in_w;
    return last_h < l->in_h && last_w < l->in_w;
}

/* A residual join i (its skip, window columns and out shape read): the shortcut, the input of
 * an earlier layer, has the output's shape (KH 0), or a 1x1 convolution with the stride maps
 * it there exactly (KH 1: output side (side - 1) / stride + 1, as torch's strided 1x1
 * convolution). Sets l->skip_c/h/w. */
static int join_ok(fm_layer *l, const fm_layer *layers, int64_t i)
{
    if (l->skip < 0 || l->skip >= i) return 0;
    const fm_layer *s = &layers[l->skip];
    l->skip_c = s->in_c; l->skip_h = s->in_h; l->skip_w = s->in_w;
    if (l->kh == 0)
        return l->kw == 0 && l->skip_c == l->out_c && l->skip_h == l->out_h && l->skip_w == l->out_w;
    return l->kh == 1 && l->kw == 1 && l->pad_h == 0 && l->pad_w == 0 && l->stride >= 1 &&
           l->stride <= ((int64_t)1 << 20) && (l->skip_h - 1) / l->stride + 1 == l->out_h &&
           (l->skip_w - 1) / l->stride + 1 == l->out_w;
}

int64_t fm_nn_decode(fm_net *net, fm_layer *layers, const int64_t *program, const float *settings,
                     int64_t n_layers, int64_t n_params)
{
    int64_t used = 0;
    if (n_layers < 1) return 0;
    for (int64_t i = 0; i < n_layers; i++) {
        const int64_t *p = program + i * FM_NN_COLUMNS;
        fm_layer *l = &layers[i];
        if (p[FM_COL_TYPE] < FM_LAYER_DENSE || p[FM_COL_TYPE] > FM_LAYER_RESIDUAL) return i;
        l->type = (enum fm_layer_type)p[FM_COL_TYPE];
        l->in_c = p[FM_COL_IN_C]; l->in_h = p[FM_COL_IN_H]; l->in_w = p[FM_COL_IN_W];
        l->out_c = p[FM_COL_OUT_C]; l->out_h = p[FM_COL_OUT_H]; l->out_w = p[FM_COL_OUT_W];
        l->param = p[FM_COL_PARAM];
        l->kh = p[FM_COL_KH]; l->kw = p[FM_COL_KW]; l->stride = p[FM_COL_STRIDE];
        l->pad_h = p[FM_COL_PAD_H]; l->pad_w = p[FM_COL_PAD_W];
        l->skip = p[FM_COL_SKIP];
        l->skip_c = l->skip_h = l->skip_w = 0;
        l->rate = settings[i * FM_NN_FCOLUMNS + FM_FCOL_RATE];
        l->eps = settings[i * FM_NN_FCOLUMNS + FM_FCOL_EPS];
        int same = l->out_c == l->in_c && l->out_h == l->in_h && l->out_w == l->in_w;
        /* each dimension <= 2^20, so the per-sample sizes (< 2^28) and a dense layer's
         * weight count (< 2^56) are computed without overflow */
        const int64_t dim_max = (int64_t)1 << 20, size_max = (int64_t)1 << 28;
        int ok = l->in_c > 0 && l->in_h > 0 && l->in_w > 0 && l->out_c > 0 && l->out_h > 0 &&
                 l->out_w > 0 && l->in_c <= dim_max && l->in_h <= dim_max && l->in_w <= dim_max &&
                 l->out_c <= dim_max && l->out_h <= dim_max && l->out_w <= dim_max &&
                 fm_layer_in_len(l) < size_max && fm_layer_out_len(l) < size_max;
        if (ok && i > 0)
            ok = l->in_c == layers[i - 1].out_c && l->in_h == layers[i - 1].out_h &&
                 l->in_w == layers[i - 1].out_w;
        switch (l->type) {
        case FM_LAYER_DENSE: ok = ok && l->out_h == 1 && l->out_w == 1; break;
        case FM_LAYER_CONV2D: ok = ok && window_ok(l, 0); break;
        case FM_LAYER_MAXPOOL:
        case FM_LAYER_AVGPOOL: ok = ok && window_ok(l, 1); break;
        case FM_LAYER_FLATTEN:
            ok = ok && l->out_h == 1 && l->out_w == 1 && l->out_c == fm_layer_in_len(l);
            break;
        case FM_LAYER_RELU: ok = ok && same; break;
        case FM_LAYER_DROPOUT: ok = ok && same && l->rate >= 0.0f && l->rate < 1.0f; break;
        case FM_LAYER_BATCHNORM:
            ok = ok && same && l->rate >= 0.0f && l->rate < 1.0f && l->eps > 0.0f &&
                 l->eps < 1.0f;
            break;
        case FM_LAYER_RESIDUAL: ok = ok && same && join_ok(l, layers, i); break;
        default: ok = 0;
        }
        l->n_params = ok ? n_params_of(l) : 0;
        l->n_trained = l->type == FM_LAYER_BATCHNORM ? 2 * l->in_c : l->n_params;
        if (ok && l->n_params > 0) {
            ok = l->param == used && l->param <= n_params - l->n_params;
            if (ok) used = l->param + l->n_params;
        } else if (ok) {
            l->param = 0; /* never used, but params + param must stay a valid pointer */
        }
        if (!ok) return i;
    }
    if (used != n_params) return n_layers;
    net->layers = layers;
    net->n_layers = n_layers;
    net->n_params = n_params;
    net->n_in = fm_layer_in_len(&layers[0]);
    net->n_out = fm_layer_out_len(&layers[n_layers - 1]);
    return -1;
}
