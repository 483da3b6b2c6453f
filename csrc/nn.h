/* nn.h: the neural-network engine: a network is a small program, an array of layer
 * structs, that the driver runs forward, through softmax cross-entropy and backward,
 * followed by one optimizer step over the flat parameter array. The kernels are in
 * layers.h, the optimizers in optim.h, the loss in linear.h (fm_softmax_xent).
 *
 * Memory: the caller owns the parameters (one float32 array; a dense layer is W (out, in)
 * row-major then b (out) at its param offset), their gradients (same size) and the
 * optimizer state; the driver allocates and frees its own activation workspace per call.
 * Tensors are per-sample (C, H, W) blocks, channel-major (NCHW); dense layers see the
 * block flattened. */
#ifndef FM_NN_H
#define FM_NN_H

#include <stdint.h>

#include "optim.h"

enum fm_layer_type { FM_LAYER_DENSE = 1, FM_LAYER_RELU = 2, FM_LAYER_DROPOUT = 3 };

/* Columns of the int64 program the binding passes, one row per layer. */
enum fm_nn_column {
    FM_COL_TYPE, FM_COL_IN_C, FM_COL_IN_H, FM_COL_IN_W,
    FM_COL_OUT_C, FM_COL_OUT_H, FM_COL_OUT_W, FM_COL_PARAM, FM_NN_COLUMNS
};

typedef struct {
    enum fm_layer_type type;
    int64_t in_c, in_h, in_w;     /* input block per sample */
    int64_t out_c, out_h, out_w;  /* output block per sample */
    int64_t param;                /* offset into the parameter array (layers with parameters) */
    float rate;                   /* dropout rate */
} fm_layer;

typedef struct {
    const fm_layer *layers;
    int64_t n_layers;
    int64_t n_params;  /* length of the parameter array */
    int64_t n_in;      /* input features per sample: layers[0]'s block */
    int64_t n_out;     /* classes: the last layer's block */
} fm_net;

/* Fill layers[0..n_layers) and net from program (n_layers, FM_NN_COLUMNS) and rates
 * (n_layers). Returns -1 when the program is valid (shapes chain, the layers' parameter
 * blocks follow each other and fill [0, n_params) exactly, rates in [0, 1)), else the index
 * of the first bad layer (n_layers when blocks leave the end of the array unused). */
int64_t fm_nn_decode(fm_net *net, fm_layer *layers, const int64_t *program, const float *rates,
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
 * smaller). Step s (global number step0 + s + 1) runs forward (dropout drawn from
 * (seed, global step, layer)), the batch-mean weighted CE, and backward; each layer
 * writes its block of grads and the optimizer steps that block at once, while it is
 * still in cache (learning rate lr[s]). loss_sum and n_correct accumulate each batch's
 * weighted loss and hits before its step. Results do not depend on nthreads.
 * params, grads: (n_params); state: (n_params * fm_optim_state_per_param): SGD's velocity,
 * or Adam's m then v; order: (m) in
 * [0, data->n); lr: (ceil(m / batch)).
 * Returns FM_OK, FM_ENOMEM or FM_EDIVERGED (a non-finite loss; the step is not taken). */
int fm_nn_train(float *params, float *grads, float *state, double *loss_sum, int64_t *n_correct,
                const fm_net *net, const fm_optim *opt, const fm_nn_data *data,
                const int64_t *order, const float *lr,
                int64_t m, int64_t batch, int64_t step0, uint64_t seed, int nthreads);

/* All data rows as one batch: grads += d(mean weighted CE)/d params, dx (may be NULL) =
 * d(mean weighted CE)/dx (n, n_in); loss_sum and n_correct as in fm_nn_train. `training`
 * switches dropout on (drawn as at global step `step`). Returns FM_OK, FM_ENOMEM or
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
