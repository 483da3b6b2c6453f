/* optim.h: the optimizers, each one flat loop over all parameters of a network (they live
 * in one array), with their state (velocity, or Adam's m and v) in another. */
#ifndef FM_OPTIM_H
#define FM_OPTIM_H

#include <stdint.h>

enum fm_optimizer { FM_OPT_SGD = 0, FM_OPT_ADAM = 1, FM_OPT_ADAMW = 2 };

/* Settings; weight_decay is an L2 term added to the gradient for SGD and Adam (as in
 * torch.optim.SGD/Adam) and decoupled for AdamW (p *= 1 - lr * weight_decay). */
typedef struct {
    enum fm_optimizer kind;
    float momentum;      /* SGD, in [0, 1) */
    int nesterov;        /* SGD */
    float beta1, beta2;  /* Adam(W), in [0, 1) */
    float epsilon;       /* Adam(W), > 0 */
    float weight_decay;  /* >= 0 */
} fm_optim;

/* Floats of state per parameter: 1 for SGD (velocity), 2 for Adam(W) (m and v). */
int64_t fm_optim_state_per_param(enum fm_optimizer kind);

/* FM_OK when the settings are in range, else FM_EINVAL. */
int fm_optim_check(const fm_optim *opt);

/* One step's settings at learning rate lr, t >= 1 counting steps: its constants (Adam's
 * bias corrections take pow calls) and the update code for this CPU, worked out once for
 * every run of parameters the step updates. */
typedef struct fm_optim_coef {
    void (*update)(float *p, float *s1, float *s2, const float *g, int64_t len,
                   const struct fm_optim_coef *c);
    const fm_optim *opt;
    float lr, step, c2, shrink, l2;
} fm_optim_coef;

void fm_optim_coef_init(fm_optim_coef *c, const fm_optim *opt, float lr, int64_t t);

/* One step (c: its settings, learning rate and count, fm_optim_coef_init) on len parameters.
 *   SGD:   g += wd p; v = momentum v - lr g; p += v, or p += momentum v - lr g (Nesterov)
 *          (Keras' form; torch's v' = -v/lr gives the same steps at a constant lr)
 *   Adam:  g += wd p (AdamW instead p *= 1 - lr wd); m = b1 m + (1-b1) g;
 *          v = b2 v + (1-b2) g^2; p -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps)  (torch's form)
 * p, g: (len); s1: (len) SGD's v or Adam's m; s2: (len) Adam's v (unused by SGD). Elementwise,
 * so the result does not depend on nthreads, nor on how a driver splits the array. */
void fm_optim_step(float *p, float *s1, float *s2, const float *g, int64_t len,
                   const fm_optim_coef *c, int nthreads);

/* fm_optim_step's update of one run of len parameters, on the calling thread: the same
 * arithmetic element for element, so stepping in pieces gives the same parameters. */
void fm_optim_update(float *p, float *s1, float *s2, const float *g, int64_t len,
                     const fm_optim_coef *c);

/* avg = decay avg + (1 - decay) p: one step of an exponential moving average of the
 * parameters (weight averaging). avg, p: (len); decay in [0, 1). Elementwise, so the result
 * does not depend on nthreads. */
void fm_optim_average(float *avg, const float *p, int64_t len, float decay, int nthreads);

#endif
