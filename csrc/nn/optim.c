/* optim.c: SGD (momentum, Nesterov), Adam and AdamW as flat loops over one parameter
 * array. Not a scheduler: the learning rate of each step comes from the caller. */
#include <math.h>

#include "core/common.h"
#include "core/gemm.h"
#include "nn/optim.h"
#include "core/parallel.h"

/* No fused multiply-adds in this file's arithmetic (see UPDATE_IMPL): GCC takes the
 * optimize attributes there, clang ignores them and takes this. */
#ifdef __clang__
#pragma clang fp contract(off)
#endif

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

static void update_portable(float *p, float *s1, float *s2, const float *g, int64_t len,
                            const fm_optim_coef *c);
#if defined(__x86_64__) || defined(__i386__)
static void update_avx512(float *p, float *s1, float *s2, const float *g, int64_t len,
                          const fm_optim_coef *c);
#endif

void fm_optim_coef_init(fm_optim_coef *c, const fm_optim *opt, float lr, int64_t t)
{
    c->update = update_portable;
#if defined(__x86_64__) || defined(__i386__)
    if (fm_gemm_best_kernel() == FM_KERNEL_AVX512) c->update = update_avx512;
#endif
    c->opt = opt;
    c->lr = lr;
    c->step = c->c2 = c->shrink = 1.0f;
    c->l2 = 0.0f;
    if (opt->kind == FM_OPT_SGD) return;
    c->l2 = opt->kind == FM_OPT_ADAM ? opt->weight_decay : 0.0f;
    c->shrink = opt->kind == FM_OPT_ADAMW ? 1.0f - lr * opt->weight_decay : 1.0f;
    c->step = (float)(lr / (1.0 - pow(opt->beta1, (double)t)));
    c->c2 = (float)(1.0 / sqrt(1.0 - pow(opt->beta2, (double)t)));
}

static inline __attribute__((always_inline))
void sgd_update(float *restrict p, float *restrict v, const float *restrict g, int64_t len,
                const fm_optim *o, float lr)
{
    const float mu = o->momentum, wd = o->weight_decay;
    const int nesterov = o->nesterov;
    for (int64_t j = 0; j < len; j++) {
        float gj = g[j] + wd * p[j];
        v[j] = mu * v[j] - lr * gj;
        p[j] += nesterov ? mu * v[j] - lr * gj : v[j];
    }
}

static inline __attribute__((always_inline))
void adam_update(float *restrict p, float *restrict m, float *restrict v,
                 const float *restrict g, int64_t len, const fm_optim_coef *c)
{
    const float b1 = c->opt->beta1, b2 = c->opt->beta2, eps = c->opt->epsilon;
    const float l2 = c->l2, shrink = c->shrink, step = c->step, c2 = c->c2;
    for (int64_t j = 0; j < len; j++) {
        float gj = g[j] + l2 * p[j];
        p[j] *= shrink;
        m[j] = b1 * m[j] + (1.0f - b1) * gj;
        v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
        p[j] -= step * m[j] / (sqrtf(v[j]) * c2 + eps);
    }
}

/* fm_optim_step on one run of parameters, on the calling thread, compiled for AVX-512 and
 * for any CPU (chosen at run time). SGD's pass over the MLP's 269,000 parameters was
 * instruction-bound in the SSE2 baseline (14 instructions per 4 floats); 16 floats wide,
 * the study MLP's epoch took 2-3% less, 9% less in the VM's slow phase (2 threads,
 * 2026-11-26). Adam's loop stays scalar (sqrtf may set errno). Contraction into FMAs is
 * off in both, so each operation rounds alike: the same parameters on any CPU. */
#define UPDATE_IMPL(name, attr)                                                            \
    attr static void name(float *p, float *s1, float *s2, const float *g, int64_t len,     \
                          const fm_optim_coef *c)                                          \
    {                                                                                      \
        if (c->opt->kind == FM_OPT_SGD)                                                    \
            sgd_update(p, s1, g, len, c->opt, c->lr);                                      \
        else                                                                               \
            adam_update(p, s1, s2, g, len, c);                                             \
    }
UPDATE_IMPL(update_portable, __attribute__((optimize("fp-contract=off"))))
#if defined(__x86_64__) || defined(__i386__)
UPDATE_IMPL(update_avx512, __attribute__((target("avx512f"), optimize("fp-contract=off"))))
#endif

void fm_optim_update(float *p, float *s1, float *s2, const float *g, int64_t len,
                     const fm_optim_coef *c)
{
    c->update(p, s1, s2, g, len, c);
}

/* span(ctx, j0, j1) on each thread's share of [0, len): elementwise work whose result does
 * not depend on the split */
static void over_shares(void (*span)(const void *, int64_t, int64_t), const void *ctx, int64_t len,
                        int nthreads)
{
    int nt = fm_parallel_threads_for(len, FM_OPTIM_SERIAL_LEN, nthreads);
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        int64_t j0, j1;
        fm_parallel_arrive(&region);
        fm_parallel_share(&j0, &j1, len);
        if (j1 > j0) span(ctx, j0, j1);
    }
    fm_parallel_join(&region);
    (void)nt;
}

typedef struct {
    float *p, *s1, *s2, *avg;
    const float *g;
    const fm_optim_coef *c;
    float decay;
} share_args;

static void step_span(const void *ctx, int64_t j0, int64_t j1)
{
    const share_args *a = ctx;
    fm_optim_update(a->p + j0, a->s1 + j0, a->s2 ? a->s2 + j0 : NULL, a->g + j0, j1 - j0, a->c);
}

void fm_optim_step(float *p, float *s1, float *s2, const float *g, int64_t len,
                   const fm_optim_coef *c, int nthreads)
{
    share_args a = {.p = p, .s1 = s1, .s2 = s2, .g = g, .c = c};
    over_shares(step_span, &a, len, nthreads);
}

static void average_span(const void *ctx, int64_t j0, int64_t j1)
{
    const share_args *a = ctx;
    const float keep = a->decay, take = 1.0f - a->decay;
    for (int64_t j = j0; j < j1; j++) a->avg[j] = keep * a->avg[j] + take * a->p[j];
}

void fm_optim_average(float *avg, const float *p, int64_t len, float decay, int nthreads)
{
    share_args a = {.p = (float *)p, .avg = avg, .decay = decay}; /* p is only read */
    over_shares(average_span, &a, len, nthreads);
}
