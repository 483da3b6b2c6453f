/* optim.c: SGD (momentum, Nesterov), Adam and AdamW as flat loops over one parameter
 * array. Not a scheduler: the learning rate of each step comes from the caller. */
#include <math.h>

#include "common.h"
#include "optim.h"
#include "parallel.h"

/* below this many parameters a parallel region costs more than it saves */
#define FM_OPTIM_SERIAL_LEN 32768

int64_t fm_optim_state_per_param(enum fm_optimizer kind) { return kind == FM_OPT_SGD ? 1 : 2; }

int fm_optim_check(const fm_optim *o)
{
    int ok = o->weight_decay >= 0.0f && isfinite(o->weight_decay);
    if (o->kind == FM_OPT_SGD)
        ok = ok && o->momentum >= 0.0f && o->momentum < 1.0f;
    else if (o->kind == FM_OPT_ADAM || o->kind == FM_OPT_ADAMW)
        ok = ok && o->beta1 >= 0.0f && o->beta1 < 1.0f && o->beta2 >= 0.0f && o->beta2 < 1.0f &&
             o->epsilon > 0.0f && isfinite(o->epsilon);
    else
        ok = 0;
    return ok ? FM_OK : FM_EINVAL;
}

static int threads_for(int64_t len, int nthreads)
{
    return len < FM_OPTIM_SERIAL_LEN ? 1 : fm_parallel_threads(nthreads);
}

static void sgd_step(float *p, float *v, const float *g, int64_t len, const fm_optim *o, float lr,
                     int nt)
{
    const float mu = o->momentum, wd = o->weight_decay;
    const int nesterov = o->nesterov;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t j = 0; j < len; j++) {
        float gj = g[j] + wd * p[j];
        v[j] = mu * v[j] - lr * gj;
        p[j] += nesterov ? mu * v[j] - lr * gj : v[j];
    }
    (void)nt;
}

static void adam_step(float *p, float *m, float *v, const float *g, int64_t len, const fm_optim *o,
                      float lr, int64_t t, int nt)
{
    const float b1 = o->beta1, b2 = o->beta2, eps = o->epsilon;
    const float l2 = o->kind == FM_OPT_ADAM ? o->weight_decay : 0.0f;
    const float shrink = o->kind == FM_OPT_ADAMW ? 1.0f - lr * o->weight_decay : 1.0f;
    const float step = (float)(lr / (1.0 - pow(b1, (double)t)));
    const float c2 = (float)(1.0 / sqrt(1.0 - pow(b2, (double)t)));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t j = 0; j < len; j++) {
        float gj = g[j] + l2 * p[j];
        p[j] *= shrink;
        m[j] = b1 * m[j] + (1.0f - b1) * gj;
        v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
        p[j] -= step * m[j] / (sqrtf(v[j]) * c2 + eps);
    }
    (void)nt;
}

void fm_optim_step(float *p, float *s1, float *s2, const float *g, int64_t len,
                   const fm_optim *opt, float lr, int64_t t, int nthreads)
{
    int nt = threads_for(len, nthreads);
    if (opt->kind == FM_OPT_SGD)
        sgd_step(p, s1, g, len, opt, lr, nt);
    else
        adam_step(p, s1, s2, g, len, opt, lr, t, nt);
}
