/* linear.h: multinomial logistic (softmax) regression trained by minibatch SGD.
 * The softmax + cross-entropy pair here is the one the neural networks use too. */
#ifndef FM_LINEAR_H
#define FM_LINEAR_H

#include <stdint.h>

/* Row-wise softmax in place. z: (n, k) row-major float32. */
void fm_softmax_rows(float *z, int64_t n, int64_t k);

/* Softmax cross-entropy on logits; returns the summed (weighted) loss in float64.
 * The target of row i is onehot(y_i) (sparse labels) or the distribution t_i (one-hot or
 * soft targets): both go through the same loop, so a one-hot t gives bit-identical loss
 * and gradient to its labels y.
 * dz: (n, k) gets scale * sw[i] * (softmax(z_i) - target_i); may alias z.
 * n_correct (may be NULL) gets the number of rows whose argmax is y_i (argmax of t_i).
 * z: (n, k) logits; y: (n) labels in [0, k), or NULL when t is given; t: (n, k) target
 * rows (each sums to 1) or NULL; sw: (n) sample weights or NULL (all 1). */
double fm_softmax_xent(float *dz, int64_t *n_correct,
                       const float *z, const int64_t *y, const float *t, const float *sw,
                       int64_t n, int64_t k, float scale);

/* logits = x w^T + b.  logits: (n, k); x: (n, d); w: (k, d); b: (k). */
int fm_linear_forward(float *logits, const float *x, const float *w, const float *b,
                      int64_t n, int64_t d, int64_t k, int nthreads);

/* One pass of minibatch SGD over the rows order[0..m), in batches of `batch`
 * (the last may be smaller); step t uses learning rate lr[t].
 * Update per step, with g = mean_i sw_i dCE_i/dw + alpha w (no decay on b):
 *   v = momentum v - lr g;  w += v              (classical momentum)
 *   w += momentum v - lr g  after the v update  (nesterov != 0)
 * w: (k, d), b: (k) updated in place; vw: (k, d), vb: (k) velocities, updated in place.
 * loss_sum / n_correct accumulate the weighted loss and hits of each batch before its step.
 * x: (n, d); y: (n) in [0, k); sw: (n) or NULL; order: (m) row indices in [0, n);
 * lr: (ceil(m / batch)).  Returns FM_OK, FM_ENOMEM or FM_EDIVERGED (non-finite loss). */
int fm_linear_sgd_epoch(float *w, float *b, float *vw, float *vb,
                        double *loss_sum, int64_t *n_correct,
                        const float *x, const int64_t *y, const float *sw,
                        const int64_t *order, const float *lr,
                        int64_t n, int64_t m, int64_t d, int64_t k, int64_t batch,
                        float momentum, int nesterov, float alpha, int nthreads);

#endif
