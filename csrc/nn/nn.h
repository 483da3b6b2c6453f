/* nn.h: the neural-network engine: a network is a small program, an array of layer
 * structs, that the driver runs forward, through softmax cross-entropy and backward,
 * followed by one optimizer step over the flat parameter array. The kernels are in
 * layers.h, the optimizers in optim.h, the loss in linear.h (fm_softmax_xent).
 *
 * Memory: the caller owns the parameters (one float32 array), their gradients (same size)
 * and the optimizer state; the driver allocates and frees its own activation workspace per
 * call. At its param offset a dense layer holds W (out, in) row-major then b (out); a
 * convolution W (F, kh, kw, C) then b (F); batch normalisation gamma, beta, running mean,
 * running variance (C each; the optimizer steps only gamma and beta, and their gradients
 * are 0); a residual join with a projection W (F, 1, 1, C) then b (F). Tensors are
 * per-sample (H, W, C) blocks, channels last (NHWC: the order of Keras' default, and the one
 * that makes a convolution one GEMM); a program row still lists C, H, W. Dense layers see
 * the block flattened in that order. The program is a chain, but for residual joins: a join
 * adds to its input the input of an earlier layer (its shortcut), so the decoder
 * (program.c) checks the chain and every shortcut. */
#ifndef FM_NN_H
#define FM_NN_H

#include <stdint.h>

#include "nn/augment.h"
#include "nn/optim.h"

enum fm_layer_type {
    FM_LAYER_DENSE = 1, FM_LAYER_RELU = 2, FM_LAYER_DROPOUT = 3, FM_LAYER_CONV2D = 4,
    FM_LAYER_MAXPOOL = 5, FM_LAYER_AVGPOOL = 6, FM_LAYER_FLATTEN = 7, FM_LAYER_BATCHNORM = 8,
    FM_LAYER_RESIDUAL = 9
};

/* Columns of the int64 program the binding passes, one row per layer; the window columns
 * (kernel or pool size, stride, zero padding above and left) matter to conv and pooling.
 * A residual join (y = x + s, s being the input of layer `skip`, an earlier one) has
 * KH == 0 when s has y's shape (identity), else KH == KW == 1 and s goes through a 1x1
 * convolution with that stride and no padding (the projection), whose output is y's shape;
 * other layers' SKIP is 0. */
enum fm_nn_column {
    FM_COL_TYPE, FM_COL_IN_C, FM_COL_IN_H, FM_COL_IN_W,
    FM_COL_OUT_C, FM_COL_OUT_H, FM_COL_OUT_W, FM_COL_PARAM,
    FM_COL_KH, FM_COL_KW, FM_COL_STRIDE, FM_COL_PAD_H, FM_COL_PAD_W, FM_COL_SKIP, FM_NN_COLUMNS
};

/* Columns of the float32 settings beside the program: the dropout rate or the batch-norm
 * momentum (running = momentum running + (1 - momentum) batch, Keras' convention), and
 * batch norm's epsilon. */
enum fm_nn_fcolumn { FM_FCOL_RATE, FM_FCOL_EPS, FM_NN_FCOLUMNS };

typedef struct {
    enum fm_layer_type type;
    int64_t in_c, in_h, in_w;     /* input block per sample */
    int64_t out_c, out_h, out_w;  /* output block per sample */
    int64_t param;                /* offset into the parameter array (layers with parameters) */
    int64_t kh, kw, stride, pad_h, pad_w;  /* conv and pooling windows; a join's projection */
    int64_t skip;                 /* residual join: the layer whose input is the shortcut */
    int64_t skip_c, skip_h, skip_w;  /* residual join: the shortcut's block */
    int64_t n_params, n_trained;  /* floats at param, and how many of them (the first) train */
    float rate;                   /* dropout rate, or batch-norm momentum */
    float eps;                    /* batch norm */
} fm_layer;

static inline int64_t fm_layer_in_len(const fm_layer *l) { return l->in_c * l->in_h * l->in_w; }
static inline int64_t fm_layer_out_len(const fm_layer *l) { return l->out_c * l->out_h * l->out_w; }

typedef struct {
    const fm_layer *layers;
    int64_t n_layers;
    int64_t n_params;  /* length of the parameter array */
    int64_t n_in;      /* input features per sample: layers[0]'s block */
    int64_t n_out;     /* classes: the last layer's block */
} fm_net;

/* Fill layers[0..n_layers) and net from program (n_layers, FM_NN_COLUMNS) and settings
 * (n_layers, FM_NN_FCOLUMNS). Returns -1 when the program is valid (shapes chain and agree
 * with each layer's window, a join's shortcut with its projection, the layers' parameter
 * blocks follow each other and fill [0, n_params) exactly, rates and momenta in [0, 1),
 * eps > 0), else the index of the first bad layer (n_layers when blocks leave the end of the
 * array unused). */
int64_t fm_nn_decode(fm_net *net, fm_layer *layers, const int64_t *program, const float *settings,
                     int64_t n_layers, int64_t n_params);

/* Training or evaluation rows: exactly one of y (sparse labels) and t (target rows) is set. */
typedef struct {
    const float *x;    /* (n, n_in) */
    const int64_t *y;  /* (n) labels in [0, n_out), or NULL */
    const float *t;    /* (n, n_out) target distributions (e.g. one-hot), or NULL */
    const float *sw;   /* (n) sample weights, or NULL for all 1 */
    int64_t n;
} fm_nn_data;

/* Minibatch training over the rows order[0..m) in batches of `batch` (the last may be
 * smaller). Step s (global number step0 + s + 1) augments the gathered images when aug is
 * active (drawn from (seed, global step, row of the batch)), runs forward (dropout drawn
 * from (seed, global step, layer); batch norm on batch statistics, updating its running
 * statistics in params, also on a step that then diverges), the batch-mean weighted CE,
 * and backward, and the optimizer's step (learning rate lr[s]): a dense bottom layer's
 * weights inside their gradient's GEMM, piece by piece (their block of grads is then not
 * written unless the batch exceeds one of the GEMM's k blocks), every other parameter in one
 * pass over grads once backward is done; then, when ema is given, ema = ema_decay ema +
 * (1 - ema_decay) params (fm_optim_average). loss_sum and n_correct accumulate each batch's
 * weighted loss and hits before its step. Results do not depend on nthreads.
 * params, grads, ema (or NULL): (n_params); state: (n_params * fm_optim_state_per_param):
 * SGD's velocity, or Adam's m then v; order: (m) in
 * [0, data->n); lr: (ceil(m / batch)); scratch: NULL (the driver allocates its workspace) or
 * fm_nn_workspace_len(net, batch) floats, 64-byte aligned.
 * Returns FM_OK, FM_ENOMEM or FM_EDIVERGED (a non-finite loss; the step is not taken). */
int fm_nn_train(float *params, float *grads, float *state, float *ema, double *loss_sum,
                int64_t *n_correct, const fm_net *net, const fm_optim *opt,
                const fm_nn_data *data, const int64_t *order, const float *lr,
                const fm_augment *aug, float *scratch, int64_t m, int64_t batch, int64_t step0,
                float ema_decay, uint64_t seed, int nthreads);

/* Batch norm's running statistics recomputed for params (after weight averaging: the
 * average's own statistics are not those of its weights): the rows of x (n, n_in) run
 * forward in batches of `batch` in training mode with dropout off, and each batch-norm
 * layer's running mean and (unbiased) variance become the plain average of its batches'
 * (torch.optim.swa_utils.update_bn's cumulative average). Returns FM_OK or FM_ENOMEM. */
int fm_nn_refresh_batchnorm(float *params, const fm_net *net, const float *x, int64_t n,
                            int64_t batch, int nthreads);

/* The largest batch the bindings accept: with per-sample sizes < 2^28, a workspace's sizes
 * stay far from int64 overflow. */
#define FM_NN_MAX_BATCH ((int64_t)1 << 24)

/* Floats of the scratch fm_nn_train can run in for batches of `batch` rows (-1 when that
 * does not fit in int64). A caller that
 * trains in many calls passes the same scratch to each: a fresh workspace of hundreds of
 * megabytes (wide convolutional networks) costs its page faults on every call. */
int64_t fm_nn_workspace_len(const fm_net *net, int64_t batch);

/* All data rows as one batch: grads += d(mean weighted CE)/d params, dx (may be NULL) =
 * d(mean weighted CE)/dx (n, n_in); loss_sum and n_correct as in fm_nn_train. `training`
 * switches dropout on (drawn as at global step `step`) and batch norm to batch statistics
 * (running statistics are not updated: params stay unchanged). Returns FM_OK, FM_ENOMEM or
 * FM_EDIVERGED (non-finite loss; grads untouched). */
int fm_nn_gradient(float *grads, float *dx, double *loss_sum, int64_t *n_correct,
                   const float *params, const fm_net *net, const fm_nn_data *data,
                   int training, int64_t step, uint64_t seed, int nthreads);

/* Inference in batches of `batch` rows: out (n, n_out) gets logits, or probabilities when
 * proba. x: (n, n_in). Returns FM_OK or FM_ENOMEM. */
int fm_nn_predict(float *out, const float *params, const fm_net *net, const float *x,
                  int64_t n, int64_t batch, int proba, int nthreads);

/* Inference-mode weighted CE summed over the data and hits, in batches of `batch` rows. */
int fm_nn_evaluate(double *loss_sum, int64_t *n_correct, const float *params, const fm_net *net,
                   const fm_nn_data *data, int64_t batch, int nthreads);

#endif
