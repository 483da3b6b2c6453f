/* nn.c: the network driver: runs the layer program (decoded by program.c) forward and
 * backward on minibatches, and steps the optimizer; also batched inference. Not the kernels
 * (layers.c), not the optimizer arithmetic (optim.c), not the loss (linear.c's
 * fm_softmax_xent). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/common.h"
#include "nn/conv.h"
#include "nn/pool.h"
#include "nn/layers.h"
#include "linear/linear.h"
#include "nn/nn.h"
#include "core/parallel.h"

static int64_t in_size(const fm_layer *l) { return fm_layer_in_len(l); }
static int64_t out_size(const fm_layer *l) { return fm_layer_out_len(l); }

static fm_conv_geom geom(const fm_layer *l)
{
    fm_conv_geom g = {l->in_h, l->in_w, l->in_c, l->out_h, l->out_w, l->out_c,
                      l->kh, l->kw, l->stride, l->pad_h, l->pad_w};
    return g;
}

/* a residual join's projection: a 1x1 convolution of its shortcut */
static fm_conv_geom projection(const fm_layer *l)
{
    fm_conv_geom g = {l->skip_h, l->skip_w, l->skip_c, l->out_h, l->out_w, l->out_c,
                      1, 1, l->stride, 0, 0};
    return g;
}

/* What a forward/backward pass over `batch` rows keeps: every layer's output, per-layer aux
 * (dropout masks, batch norm's xhat, max pooling's argmax), batch norm's statistics, two
 * gradient buffers used in turn, the convolutions' im2col scratch, and the gathered rows of
 * a training batch. */
typedef struct {
    float **act, **aux, **stats;
    float *g0, *g1, *col, *dcol, *x, *t, *sw;
    int64_t *y;
    float *block;
    int owned;    /* block is ours to free */
    int training; /* the mode of the last forward pass, which backward differentiates */
} workspace;

/* Idempotent: a failed ws_new leaves nothing to free twice. */
static void ws_free(workspace *w)
{
    if (w->owned) fm_free(w->block);
    free(w->act);
    w->block = NULL;
    w->act = NULL;
}

static int64_t rounded(int64_t len) { return (len + 15) / 16 * 16; }

/* The piece of `len` floats at offset *at of base (NULL while only measuring), rounded up to
 * 16 floats so every piece starts on 64 bytes. */
static float *carve(float *base, int64_t *at, int64_t len)
{
    float *p = base ? base + *at : NULL;
    /* past 2^60 floats (no sizes the bindings allow come near): saturate, the caller fails */
    *at = len > ((int64_t)1 << 60) || *at > ((int64_t)1 << 60) ? INT64_MAX : *at + rounded(len);
    return p;
}

/* floats of per-layer aux a layer needs for `batch` rows, and of statistics */
static int64_t aux_len(const fm_layer *l, int64_t batch)
{
    int t = l->type;
    if (t == FM_LAYER_BATCHNORM) return fm_batchnorm_scratch_len(l->in_c); /* its sums */
    if (t == FM_LAYER_RESIDUAL) { /* the projected shortcut, then the shortcut's gradient */
        int64_t s = l->skip_c * l->skip_h * l->skip_w;
        return (s > out_size(l) ? s : out_size(l)) * batch;
    }
    return t == FM_LAYER_DROPOUT || t == FM_LAYER_MAXPOOL
               ? out_size(l) * batch : 0; /* argmax: int32, the size of a float */
}

static int64_t stats_len(const fm_layer *l) { return l->type == FM_LAYER_BATCHNORM ? 3 * l->in_c : 0; }

/* Lay the workspace's pieces out in base (w's pointer arrays allocated), or with base NULL
 * only measure; returns the floats it takes. */
static int64_t ws_layout(workspace *w, float *base, const fm_net *net, int64_t batch, int gather)
{
    int64_t L = net->n_layers, widest = net->n_in, col = 0, dcol = 0, at = 0;
    for (int64_t i = 0; i < L; i++) {
        const fm_layer *l = &net->layers[i];
        int64_t s = out_size(l);
        widest = s > widest ? s : widest;
        if (l->type == FM_LAYER_CONV2D || (l->type == FM_LAYER_RESIDUAL && l->kh == 1)) {
            fm_conv_geom g = l->type == FM_LAYER_CONV2D ? geom(l) : projection(l);
            int64_t c = fm_conv2d_col_len(&g, batch, FM_CONV_AUTO),
                    dc = fm_conv2d_dcol_len(&g, batch, FM_CONV_AUTO);
            col = c > col ? c : col;
            dcol = dc > dcol ? dc : dcol;
        }
        float *aux = aux_len(l, batch) ? carve(base, &at, aux_len(l, batch)) : NULL;
        float *stats = stats_len(l) ? carve(base, &at, stats_len(l)) : NULL;
        float *act = carve(base, &at, s * batch);
        if (base) { w->aux[i] = aux; w->stats[i] = stats; w->act[i] = act; }
    }
    float *g0 = carve(base, &at, widest * batch), *g1 = carve(base, &at, widest * batch);
    float *c0 = carve(base, &at, col), *c1 = carve(base, &at, dcol);
    if (base) { w->g0 = g0; w->g1 = g1; w->col = c0; w->dcol = c1; }
    if (gather) {
        float *x = carve(base, &at, net->n_in * batch), *t = carve(base, &at, net->n_out * batch);
        float *sw = carve(base, &at, batch), *y = carve(base, &at, 2 * batch);
        if (base) { w->x = x; w->t = t; w->sw = sw; w->y = (int64_t *)y; }
    }
    return at == INT64_MAX ? -1 : at;
}

int64_t fm_nn_workspace_len(const fm_net *net, int64_t batch)
{
    return ws_layout(NULL, NULL, net, batch, 1);
}

/* A workspace for `batch` rows in scratch (at least ws_layout's length), or in memory of its
 * own when scratch is NULL. */
static int ws_new(workspace *w, const fm_net *net, int64_t batch, int gather, float *scratch)
{
    int64_t L = net->n_layers;
    memset(w, 0, sizeof *w);
    w->act = calloc((size_t)(3 * L), sizeof(float *));
    if (w->act == NULL) return FM_ENOMEM;
    w->aux = w->act + L;
    w->stats = w->act + 2 * L;
    w->owned = scratch == NULL;
    int64_t len = ws_layout(w, NULL, net, batch, gather);
    w->block = scratch ? scratch : len < 0 ? NULL : fm_alloc((size_t)len * sizeof(float));
    if (w->block == NULL) { ws_free(w); return FM_ENOMEM; }
    ws_layout(w, w->block, net, batch, gather);
    return FM_OK;
}

/* Layer i's input is a residual join's shortcut: it must be kept as it is, and its gradient
 * is the sum of the two paths. */
static int is_shortcut(const fm_net *net, int64_t i)
{
    for (int64_t k = i + 1; k < net->n_layers; k++)
        if (net->layers[k].type == FM_LAYER_RESIDUAL && net->layers[k].skip == i) return 1;
    return 0;
}

/* Layer i is a ReLU whose forward the dense, convolution, batch-norm or residual layer before
 * it computes, as part of its output (not when that layer's own output is a shortcut). */
static int relu_fused_forward(const fm_net *net, int64_t i)
{
    if (i <= 0 || i >= net->n_layers || net->layers[i].type != FM_LAYER_RELU || is_shortcut(net, i))
        return 0;
    int t = net->layers[i - 1].type;
    return t == FM_LAYER_DENSE || t == FM_LAYER_CONV2D || t == FM_LAYER_BATCHNORM ||
           t == FM_LAYER_RESIDUAL;
}

/* Layer i is a ReLU whose backward the dense or max-pooling layer after it computes, as part
 * of its input gradient (the mask needs only the ReLU's output). Not the first layer, whose
 * input gradient is the caller's dx, nor a ReLU whose output is a shortcut too (the mask
 * then applies to the sum of both paths' gradients). */
static int relu_fused_backward(const fm_net *net, int64_t i)
{
    return i > 0 && i + 1 < net->n_layers && net->layers[i].type == FM_LAYER_RELU &&
           (net->layers[i + 1].type == FM_LAYER_DENSE || net->layers[i + 1].type == FM_LAYER_MAXPOOL) &&
           !is_shortcut(net, i + 1);
}

/* Layer i is a ReLU after a batch norm whose backward computes the ReLU's too (when the
 * layer after it does not). */
static int relu_fused_into_batchnorm(const fm_net *net, int64_t i)
{
    return i > 0 && i < net->n_layers && net->layers[i].type == FM_LAYER_RELU &&
           net->layers[i - 1].type == FM_LAYER_BATCHNORM && !relu_fused_backward(net, i);
}

/* Run the layers on n rows of x; the logits end in w->act[last]. In training mode batch
 * norm uses the batch's statistics, and folds them into its running statistics when
 * `running` (the parameters, writeable) is given: with the layer's momentum, or when
 * refresh >= 0 (dropout off) as the refresh-th batch of a plain average. */
static int forward(workspace *w, const float *params, float *running, const fm_net *net,
                   const float *x, int64_t n, int training, int64_t refresh, int64_t step,
                   uint64_t seed, int nthreads)
{
    const float *in = x;
    w->training = training;
    for (int64_t i = 0; i < net->n_layers; i++) {
        const fm_layer *l = &net->layers[i];
        int64_t len = out_size(l) * n;
        /* a dense, convolution or batch-norm layer with the ReLU after it fused in: its output
         * goes where the ReLU's own would */
        const int relu = relu_fused_forward(net, i + 1);
        float *y = w->act[relu ? i + 1 : i];
        const float *p = params + l->param;
        fm_conv_geom g = geom(l);
        int status = FM_OK;
        switch (l->type) {
        case FM_LAYER_DENSE:
            status = fm_dense_forward(y, in, p, p + out_size(l) * in_size(l), n, in_size(l),
                                      out_size(l), relu, nthreads);
            break;
        case FM_LAYER_CONV2D:
            status = fm_conv2d_forward(y, w->col, in, p, p + l->out_c * l->kh * l->kw * l->in_c,
                                       &g, n, relu, FM_CONV_AUTO, FM_KERNEL_AUTO, nthreads);
            break;
        case FM_LAYER_MAXPOOL: fm_maxpool_forward(y, (int32_t *)w->aux[i], in, &g, n, nthreads); break;
        case FM_LAYER_AVGPOOL: fm_avgpool_forward(y, in, &g, n, nthreads); break;
        case FM_LAYER_FLATTEN: memcpy(y, in, (size_t)len * sizeof(float)); break;
        case FM_LAYER_RELU:
            if (!relu_fused_forward(net, i)) fm_relu_forward(y, in, len, nthreads);
            break;
        case FM_LAYER_DROPOUT:
            if (training && refresh < 0 && l->rate > 0.0f) {
                /* one task per (step, layer): the same mask whatever the thread count */
                fm_dropout_forward(y, w->aux[i], in, len, l->rate, seed,
                                   (uint64_t)step * (uint64_t)net->n_layers + (uint64_t)i, nthreads);
            } else {
                memcpy(y, in, (size_t)len * sizeof(float));
                for (int64_t j = 0; j < len; j++) w->aux[i][j] = 1.0f; /* for backward */
            }
            break;
        case FM_LAYER_RESIDUAL: {
            const float *s = l->skip > 0 ? w->act[l->skip - 1] : x;
            if (l->kh == 1) { /* the projection, into aux */
                fm_conv_geom pg = projection(l);
                status = fm_conv2d_forward(w->aux[i], w->col, s, p, p + l->out_c * l->skip_c, &pg,
                                           n, 0, FM_CONV_AUTO, FM_KERNEL_AUTO, nthreads);
                s = w->aux[i];
            }
            if (status == FM_OK) fm_residual_forward(y, in, s, len, relu, nthreads);
            break;
        }
        case FM_LAYER_BATCHNORM: {
            int64_t c = l->in_c, rows = len / c;
            float *mean = w->stats[i], *var = mean + c, *invstd = var + c;
            if (!training) {
                fm_batchnorm_infer(y, mean, invstd, in, p, p + c, p + 2 * c, p + 3 * c, rows, c,
                                   l->eps, relu, nthreads);
                break;
            }
            fm_batchnorm_forward(y, mean, var, invstd, w->aux[i], in, p, p + c, rows, c, l->eps,
                                 relu, nthreads);
            if (running) {
                /* running = m running + (1 - m) batch, with the unbiased batch variance (torch) */
                float *run = running + l->param;
                float m = refresh < 0 ? l->rate : (float)refresh / (float)(refresh + 1);
                float unbias = rows > 1 ? (float)rows / (float)(rows - 1) : 1.0f;
                for (int64_t j = 0; j < c; j++) {
                    run[2 * c + j] = m * run[2 * c + j] + (1.0f - m) * mean[j];
                    run[3 * c + j] = m * run[3 * c + j] + (1.0f - m) * var[j] * unbias;
                }
            }
            break;
        }
        }
        if (status != FM_OK) return status;
        in = y;
    }
    return FM_OK;
}

/* The optimizer step a training pass applies as backward finishes the gradients. */
typedef struct {
    float *state;
    fm_optim_coef coef; /* the optimizer, this step's learning rate and count */
} update;

/* where optimizer state s (1 or 2) of the parameter at offset `at` lives, NULL if none */
static float *state_at(const update *up, const fm_net *net, int s, int64_t at)
{
    return s == 1 ? up->state + at
           : fm_optim_state_per_param(up->coef.opt->kind) > 1 ? up->state + net->n_params + at : NULL;
}

/* The bottom layer's step when it is dense, fused into its weight-gradient GEMM: each piece
 * of dW steps W as it is computed, from the GEMM's scratch, so that dW never goes to grads
 * and back. The bottom layer holds most of an MLP's weights (784 x 256 of the study's
 * 269,000), and that trip (written, then read back by the optimizer's pass) was about a
 * quarter of a step's memory traffic. Memory is what this VM's slow phases starve: there
 * the separate pass took 210-230 us a step instead of 34 (study MLP, 2 threads). Fused,
 * the quiet-phase step costs the same (first-layer backward + steps 131 + 34 -> 150 + 17
 * us); in slow-phase samples 414 -> 280-290 us. Other dense layers cannot fuse theirs:
 * their input gradient, which reads W, runs beside dW (fm_gemm_pair). */
typedef struct {
    float *p, *s1, *s2; /* the layer's parameters and optimizer state (s2 NULL for SGD) */
    int64_t ld;         /* floats in a row of W: the layer's inputs */
    const fm_optim_coef *coef;
} dense_step;

static void dense_step_rows(void *ctx, float *g, int64_t ldg, int64_t i0, int64_t j0,
                            int64_t rows, int64_t cols)
{
    const dense_step *f = ctx;
    for (int64_t i = 0; i < rows; i++) {
        int64_t at = (i0 + i) * f->ld + j0;
        fm_optim_update(f->p + at, f->s1 + at, f->s2 ? f->s2 + at : NULL, g + i * ldg, cols,
                        f->coef);
    }
}

/* The layer whose step backward fuses (dense_step), or -1. */
static int64_t fused_step_layer(const fm_net *net, const float *dx, const update *up)
{
    return up && dx == NULL && net->layers[0].type == FM_LAYER_DENSE ? 0 : -1;
}

/* up's step on every trained parameter (but a fused layer's), one pass over each run of
 * adjacent trained blocks (the whole array unless batch norm's running statistics or a
 * fused layer break it): one parallel region instead of one a layer, and no serial pass
 * over a small layer. Deferring a layer's step to here changes nothing, since no backward
 * reads the parameters of the layers above. */
static void step_runs(float *params, const float *grads, const fm_net *net, const update *up,
                      int64_t fused, int nthreads)
{
    int64_t start = 0, end = 0;
    for (int64_t i = 0; i <= net->n_layers; i++) {
        const fm_layer *l = i < net->n_layers ? &net->layers[i] : NULL;
        if (l && (l->n_trained == 0 || i == fused)) continue;
        if (l && l->param == end) {
            end += l->n_trained;
            continue;
        }
        if (end > start)
            fm_optim_step(params + start, state_at(up, net, 1, start), state_at(up, net, 2, start),
                          grads + start, end - start, &up->coef, nthreads);
        if (l) {
            start = l->param;
            end = start + l->n_trained;
        }
    }
}

/* Backward from dlogits (in w->g0) through every layer; dx gets the input gradient when not
 * NULL. Without `up` the gradients add into grads; with it each layer overwrites its block
 * of grads (the blocks tile the array; a fused bottom layer's weights may be left out, see
 * dense_step) and `up` then steps the parameters. */
static int backward(workspace *w, float *grads, float *dx, float *params, const fm_net *net,
                    const float *x, int64_t n, const update *up, int nthreads)
{
    float *dy = w->g0, *spare = w->g1;
    const int64_t fused = fused_step_layer(net, dx, up);
    for (int64_t i = net->n_layers - 1; i >= 0; i--) {
        const fm_layer *l = &net->layers[i];
        const float *in = i > 0 ? w->act[i - 1] : x;
        float *d = i > 0 ? spare : dx;
        int64_t len = out_size(l) * n;
        float *p = params + l->param, *gp = grads + l->param;
        fm_conv_geom g = geom(l);
        int status = FM_OK;
        switch (l->type) {
        case FM_LAYER_DENSE: {
            const int64_t nw = out_size(l) * in_size(l);
            dense_step f = {p, NULL, NULL, in_size(l), NULL};
            fm_gemm_tail step = {dense_step_rows, &f, 1};
            if (i == fused) {
                f.s1 = state_at(up, net, 1, l->param);
                f.s2 = state_at(up, net, 2, l->param);
                f.coef = &up->coef;
            }
            status = fm_dense_backward_fused(d, gp, gp + nw, dy, in, p, n, in_size(l), out_size(l),
                                             up == NULL, relu_fused_backward(net, i - 1),
                                             i == fused ? &step : NULL, nthreads);
            if (status == FM_OK && i == fused) /* the bias: one row of nw .. nw + out */
                dense_step_rows(&f, gp + nw, 0, 0, nw, 1, out_size(l));
            break;
        }
        case FM_LAYER_CONV2D:
            status = fm_conv2d_backward(d, gp, gp + l->out_c * l->kh * l->kw * l->in_c, w->col,
                                        w->dcol, dy, in, p, &g, n, up == NULL, FM_CONV_AUTO,
                                        FM_KERNEL_AUTO, nthreads);
            break;
        case FM_LAYER_MAXPOOL:
            if (d)
                fm_maxpool_backward(d, dy, (const int32_t *)w->aux[i],
                                    relu_fused_backward(net, i - 1) ? in : NULL, &g, n, nthreads);
            break;
        case FM_LAYER_AVGPOOL: if (d) fm_avgpool_backward(d, dy, &g, n, nthreads); break;
        case FM_LAYER_FLATTEN: if (d) memcpy(d, dy, (size_t)len * sizeof(float)); break;
        case FM_LAYER_RELU:
            /* the layer after it masked dy, or the batch norm before it will */
            if (relu_fused_backward(net, i) || relu_fused_into_batchnorm(net, i)) d = dy;
            else if (d) fm_relu_backward(d, dy, w->act[i], len, nthreads);
            break;
        case FM_LAYER_DROPOUT: if (d) fm_dropout_backward(d, dy, w->aux[i], len, nthreads); break;
        case FM_LAYER_RESIDUAL: {
            /* dx = dy; the shortcut's gradient (dy, or the projection's input gradient) waits in
             * aux until backward reaches the shortcut (no one needs it when that is the
             * network's input and the caller wants no dx) */
            float *ds = l->skip > 0 || dx ? w->aux[i] : NULL;
            if (l->kh == 1) {
                fm_conv_geom pg = projection(l);
                const float *s = l->skip > 0 ? w->act[l->skip - 1] : x;
                status = fm_conv2d_backward(ds, gp, gp + l->out_c * l->skip_c, w->col, w->dcol, dy,
                                            s, p, &pg, n, up == NULL, FM_CONV_AUTO, FM_KERNEL_AUTO,
                                            nthreads);
            } else if (ds) {
                memcpy(ds, dy, (size_t)len * sizeof(float));
            }
            d = dy;
            break;
        }
        case FM_LAYER_BATCHNORM: {
            int64_t c = l->in_c;
            const float *relu_y = relu_fused_into_batchnorm(net, i + 1) ? w->act[i + 1] : NULL;
            fm_batchnorm_backward(d, gp, gp + c, w->aux[i], dy, in, relu_y, w->stats[i],
                                  w->stats[i] + 2 * c, p, len / c, c, w->training, up == NULL,
                                  nthreads);
            if (up) memset(gp + 2 * c, 0, (size_t)(2 * c) * sizeof(float)); /* running stats */
            break;
        }
        }
        if (status != FM_OK) return status;
        if (d == NULL) break; /* nothing below needs a gradient */
        for (int64_t k = i + 1; k < net->n_layers; k++) /* the shortcuts that start here */
            if (net->layers[k].type == FM_LAYER_RESIDUAL && net->layers[k].skip == i)
                fm_add_into(d, w->aux[k], in_size(l) * n, nthreads);
        if (d != dy) {
            spare = dy;
            dy = d;
        }
    }
    if (up) step_runs(params, grads, net, up, fused, nthreads);
    return FM_OK;
}

/* Forward, mean weighted CE and backward (with the optimizer steps of `up`, if given) on
 * one batch of n rows. */
static int batch_gradient(workspace *w, float *grads, float *dx, double *loss, int64_t *hits,
                          float *params, const fm_net *net, const float *x,
                          const int64_t *y, const float *t, const float *sw, int64_t n,
                          int training, int64_t step, uint64_t seed, const update *up,
                          int nthreads)
{
    int status = forward(w, params, up ? params : NULL, net, x, n, training, -1, step, seed,
                         nthreads);
    if (status != FM_OK) return status;
    *loss = fm_softmax_xent(w->g0, hits, w->act[net->n_layers - 1], y, t, sw, n, net->n_out,
                            1.0f / (float)n);
    if (!isfinite(*loss)) return FM_EDIVERGED;
    return backward(w, grads, dx, params, net, x, n, up, nthreads);
}

int fm_nn_train(float *params, float *grads, float *state, float *ema, double *loss_sum,
                int64_t *n_correct, const fm_net *net, const fm_optim *opt,
                const fm_nn_data *data, const int64_t *order, const float *lr,
                const fm_augment *aug, float *scratch, int64_t m, int64_t batch, int64_t step0,
                float ema_decay, uint64_t seed, int nthreads)
{
    workspace w;
    int status = ws_new(&w, net, batch < m ? batch : m, 1, scratch);
    if (status != FM_OK) return status;
    const int64_t d = net->n_in, k = net->n_out;
    const fm_layer *first = &net->layers[0];
    const int augment = fm_augment_active(aug);
    for (int64_t s = 0, start = 0; start < m; s++, start += batch) {
        int64_t bs = m - start < batch ? m - start : batch;
        int64_t step = step0 + s + 1;
        /* Rows are gathered (and augmented) in parallel, each thread prefetching the rows
         * of the next batch it will gather: random rows of a large array, fetched from
         * memory while this step computes. A prefetch every other 64-byte line: the copy
         * found the rows as well cached (the hardware fetches line pairs), and the
         * prefetches, which stall once the miss queue fills, cost half as much (perf). */
        int gt = fm_parallel_threads_for(bs * d, (int64_t)1 << 15, nthreads);
        fm_parallel_region region = fm_parallel_fork();
        FM_OMP(omp parallel num_threads(gt) if (gt > 1))
        {
            fm_parallel_arrive(&region);
            FM_OMP(omp for schedule(static))
            for (int64_t i = 0; i < bs; i++) {
                int64_t r = order[start + i];
                if (augment) { /* a stream per (step, row of the batch) */
                    fm_augment_image(w.x + i * d, data->x + r * d, first->in_h, first->in_w,
                                     first->in_c, aug, seed, (uint64_t)step * (uint64_t)batch + (uint64_t)i);
                } else {
                    memcpy(w.x + i * d, data->x + r * d, (size_t)d * sizeof(float));
                }
                if (data->t) memcpy(w.t + i * k, data->t + r * k, (size_t)k * sizeof(float));
                else w.y[i] = data->y[r];
                w.sw[i] = data->sw ? data->sw[r] : 1.0f;
                if (start + batch + i < m)
                    for (int64_t j = 0; j < d; j += 32)
                        __builtin_prefetch(data->x + order[start + batch + i] * d + j, 0, 1);
            }
        }
        fm_parallel_join(&region);
        (void)gt;
        double loss = 0.0;
        update up = {state, {0}};
        fm_optim_coef_init(&up.coef, opt, lr[s], step);
        status = batch_gradient(&w, grads, NULL, &loss, n_correct, params, net, w.x,
                                data->t ? NULL : w.y, data->t ? w.t : NULL, w.sw, bs, 1, step,
                                seed, &up, nthreads);
        if (status != FM_OK) break;
        if (ema) fm_optim_average(ema, params, net->n_params, ema_decay, nthreads);
        *loss_sum += loss;
    }
    ws_free(&w);
    return status;
}

int fm_nn_refresh_batchnorm(float *params, const fm_net *net, const float *x, int64_t n,
                            int64_t batch, int nthreads)
{
    workspace w;
    int status = ws_new(&w, net, batch < n ? batch : n, 0, NULL);
    for (int64_t start = 0, b = 0; status == FM_OK && start < n; start += batch, b++) {
        int64_t bs = n - start < batch ? n - start : batch;
        status = forward(&w, params, params, net, x + start * net->n_in, bs, 1, b, 0, 0, nthreads);
    }
    ws_free(&w);
    return status;
}

int fm_nn_gradient(float *grads, float *dx, double *loss_sum, int64_t *n_correct,
                   const float *params, const fm_net *net, const fm_nn_data *data,
                   int training, int64_t step, uint64_t seed, int nthreads)
{
    workspace w;
    int status = ws_new(&w, net, data->n, 0, NULL);
    if (status != FM_OK) return status;
    double loss = 0.0;
    /* without an update, backward only reads params: the cast does not let it write */
    status = batch_gradient(&w, grads, dx, &loss, n_correct, (float *)params, net, data->x,
                            data->y, data->t, data->sw, data->n, training, step, seed, NULL,
                            nthreads);
    *loss_sum += loss;
    ws_free(&w);
    return status;
}

int fm_nn_predict(float *out, const float *params, const fm_net *net, const float *x,
                  int64_t n, int64_t batch, int proba, int nthreads)
{
    workspace w;
    int status = ws_new(&w, net, batch < n ? batch : n, 0, NULL);
    const int64_t k = net->n_out;
    for (int64_t start = 0; status == FM_OK && start < n; start += batch) {
        int64_t bs = n - start < batch ? n - start : batch;
        status = forward(&w, params, NULL, net, x + start * net->n_in, bs, 0, -1, 0, 0, nthreads);
        if (status != FM_OK) break;
        float *o = out + start * k;
        memcpy(o, w.act[net->n_layers - 1], (size_t)(bs * k) * sizeof(float));
        if (proba) fm_softmax_rows(o, bs, k);
    }
    ws_free(&w);
    return status;
}

int fm_nn_evaluate(double *loss_sum, int64_t *n_correct, const float *params, const fm_net *net,
                   const fm_nn_data *data, int64_t batch, int nthreads)
{
    workspace w;
    int64_t n = data->n, k = net->n_out;
    int status = ws_new(&w, net, batch < n ? batch : n, 0, NULL);
    for (int64_t start = 0; status == FM_OK && start < n; start += batch) {
        int64_t bs = n - start < batch ? n - start : batch;
        status = forward(&w, params, NULL, net, data->x + start * net->n_in, bs, 0, -1, 0, 0,
                         nthreads);
        if (status != FM_OK) break;
        *loss_sum += fm_softmax_xent(w.g0, n_correct, w.act[net->n_layers - 1],
                                     data->y ? data->y + start : NULL,
                                     data->t ? data->t + start * k : NULL,
                                     data->sw ? data->sw + start : NULL, bs, k, 0.0f);
    }
    ws_free(&w);
    return status;
}
