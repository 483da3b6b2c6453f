/* gemm.c: packed, cache-blocked single-precision GEMM: blocks of C over k blocks, the plan
 * of how threads share C, OpenMP over it, and the API; micro-kernels in gemm_kernels.c,
 * packing in gemm_pack.c. Not a BLAS: one precision, row-major only, and every thread count
 * gives bit-identical results. */
#include "core/gemm_impl.h"
#include "core/parallel.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- blocked driver */

struct gemm_problem {
    float *c;
    const float *a, *b;
    int64_t ldc, lda, ldb, m, n, k, kc;
    enum fm_trans ta, tb;
    float alpha, beta;
    const fm_gemm_tail *tail;
};

static int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }
static int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }

/* The tail writes C (not a scratch copy): not asked for scratch, or it does not apply. */
static int tail_writes_c(const struct gemm_problem *g)
{
    return !g->tail->scratch || g->beta != 0.0f || g->kc != g->k;
}

/* C[i0:i1, j0:j1] with this thread's pack buffers. k is blocked the same way for every
 * sub-block, and a micro-kernel computes each row and column of its tile alike whatever
 * the tile's size, so each element of C sees the same sequence of operations whichever
 * thread computes it. The tail runs on each mc x nc block as the last k block finishes
 * it, or, with scratch (one k block), on each row tile's rows of the block, computed into
 * ps instead of C. pre_a (pre_b), when not NULL, holds op(A) (op(B)) already packed
 * whole, every k block after the one before (pre_pack): its blocks are read there instead
 * of packed into pa (pb). */
static void gemm_block(const struct gemm_problem *g, const struct fm_gemm_impl *im,
                       int64_t i0, int64_t i1, int64_t j0, int64_t j1, float *pa, float *pb,
                       float *ps, const float *pre_a, const float *pre_b)
{
    const int mr = im->mr, nr = im->nr;
    const int64_t m_pad = round_up(g->m, mr), n_pad = round_up(g->n, nr);
    const int scratch = g->tail && !tail_writes_c(g);
    for (int64_t jc = j0; jc < j1; jc += im->nc_max) {
        int64_t nc = min64(im->nc_max, j1 - jc);
        for (int64_t pc = 0; pc < g->k; pc += g->kc) {
            int64_t kc = min64(g->kc, g->k - pc);
            /* later k blocks accumulate onto what the first one wrote */
            float beta = pc == 0 ? g->beta : 1.0f;
            const fm_gemm_tail *tail = pc + kc == g->k ? g->tail : NULL;
            const float *bb = pre_b ? pre_b + pc * n_pad + jc * kc : pb;
            if (!pre_b) fm_gemm_pack_b(pb, g->b, g->ldb, g->tb, jc, nc, pc, kc, nr, im->avx_pack);
            for (int64_t ic = i0; ic < i1; ic += im->mc_max) {
                int64_t mc = min64(im->mc_max, i1 - ic);
                const float *ab = pre_a ? pre_a + pc * m_pad + ic * kc : pa;
                if (!pre_a) fm_gemm_pack_a(pa, g->a, g->lda, g->ta, ic, mc, pc, kc, mr, im->avx_pack);
                if (scratch) { /* row tiles outer: the tail gets each tile's rows, nc wide */
                    for (int64_t ir = 0; ir < mc; ir += mr) {
                        int mrr = (int)min64(mr, mc - ir);
                        for (int64_t jr = 0; jr < nc; jr += nr)
                            im->kernel(ps + jr, nc, ab + ir * kc, bb + jr * kc, kc, g->alpha, beta,
                                       mrr, (int)min64(nr, nc - jr));
                        tail->fn(tail->ctx, ps, nc, ic + ir, jc, mrr, nc);
                    }
                    continue;
                }
                for (int64_t jr = 0; jr < nc; jr += nr) {
                    int nrr = (int)min64(nr, nc - jr);
                    const float *bp = bb + jr * kc;
                    for (int64_t ir = 0; ir < mc; ir += mr) {
                        int mrr = (int)min64(mr, mc - ir);
                        im->kernel(g->c + (ic + ir) * g->ldc + jc + jr, g->ldc, ab + ir * kc, bp,
                                   kc, g->alpha, beta, mrr, nrr);
                    }
                }
                if (tail) tail->fn(tail->ctx, g->c + ic * g->ldc + jc, g->ldc, ic, jc, mc, nc);
            }
        }
    }
}

/* op(A) (a_side) or op(B) whole into dst, k block after k block, in the panels gemm_block
 * reads: block pc of A starts at pc * round_up(m, mr) floats, of B at pc * round_up(n, nr). */
static void pre_pack(float *dst, const struct gemm_problem *g, const struct fm_gemm_impl *im,
                     int a_side)
{
    for (int64_t pc = 0; pc < g->k; pc += g->kc) {
        int64_t kc = min64(g->kc, g->k - pc);
        if (a_side)
            fm_gemm_pack_a(dst + pc * round_up(g->m, im->mr), g->a, g->lda, g->ta, 0, g->m, pc, kc,
                   im->mr, im->avx_pack);
        else
            fm_gemm_pack_b(dst + pc * round_up(g->n, im->nr), g->b, g->ldb, g->tb, 0, g->n, pc, kc,
                   im->nr, im->avx_pack);
    }
}

/* C = beta * C, the whole answer when k == 0 or alpha == 0 (A and B are not read). */
static void scale_c(float *c, int64_t ldc, int64_t m, int64_t n, float beta)
{
    for (int64_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            memset(ci, 0, (size_t)n * sizeof *ci);
        else
            for (int64_t j = 0; j < n; j++) ci[j] *= beta;
    }
}

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define FM_GEMM_SERIAL_MNK (1 << 17)

static double mnk(const fm_gemm_args *x) { return (double)x->m * (double)x->n * (double)x->k; }

/* One GEMM, checked and planned for a number of threads: its kernel, how threads share C,
 * and the pack buffer each thread needs. */
struct gemm_plan {
    struct gemm_problem g;
    const struct fm_gemm_impl *im;
    int nt, split_n; /* threads planned for (after capping), split C's columns, not rows */
    int64_t units, unit; /* C's rows or columns are shared in units of `unit` */
    int64_t chunks; /* > 0: C's split in this many chunks, which threads steal (gemm_share) */
    size_t pa_len, pb_len, ps_len, per_thread; /* floats: the packs, the tail's scratch, and a
                                                * thread's whole buffer */
    int work; /* blocks remain to compute (not done while planning) */
};

/* When the operand every thread of a split needs whole (A when C's columns are split) is
 * at most this many floats packed (512 KiB, in L2 beside the blocks it meets), each thread
 * packs it once and C is cut in chunks that threads can steal from one another
 * (gemm_share); larger, each thread computes one fixed part. */
#define FM_GEMM_PRE_PACK_MAX ((int64_t)1 << 17)
#define FM_GEMM_CHUNKS_PER_THREAD 4

/* Checks x and plans it for up to nt threads; an empty C, k == 0 or alpha == 0 is done
 * here (work = 0). Returns FM_OK or FM_EINVAL. */
static int gemm_plan(struct gemm_plan *p, const fm_gemm_args *x, enum fm_kernel kernel, int nt)
{
    const int64_t m = x->m, n = x->n, k = x->k;
    const struct fm_gemm_impl *im = fm_gemm_impl_for(kernel, n);
    p->work = 0;
    p->nt = 1;
    p->chunks = 0;
    if (im == NULL || m < 0 || n < 0 || k < 0) return FM_EINVAL;
    if ((x->ta != FM_NO_TRANS && x->ta != FM_TRANS) || (x->tb != FM_NO_TRANS && x->tb != FM_TRANS))
        return FM_EINVAL;
    if (x->ldc < n || x->lda < (x->ta == FM_TRANS ? m : k) || x->ldb < (x->tb == FM_TRANS ? k : n))
        return FM_EINVAL;
    if (m == 0 || n == 0) return FM_OK;
    if (x->c == NULL) return FM_EINVAL;
    if (k == 0 || x->alpha == 0.0f) {
        scale_c(x->c, x->ldc, m, n, x->beta);
        if (x->tail) x->tail->fn(x->tail->ctx, x->c, x->ldc, 0, 0, m, n);
        return FM_OK;
    }
    if (x->a == NULL || x->b == NULL) return FM_EINVAL;

    struct gemm_problem g = {x->c, x->a, x->b, x->ldc, x->lda, x->ldb, m, n, k, 0, x->ta, x->tb,
                             x->alpha, x->beta, x->tail};
    int64_t nkb = (k + im->kc_max - 1) / im->kc_max;
    g.kc = (k + nkb - 1) / nkb;
    /* Threads take contiguous runs of rows or columns of C (in the kernel's steps) and
     * never split k, which keeps the result independent of nt.
     * Each thread packs its own copy of the operand it shares, so pick the split whose
     * busiest thread has the least work, counting a packed element as about eight
     * multiply-adds. */
    int64_t pm = (m + im->mr - 1) / im->mr, pn = (n + im->nr - 1) / im->nr;
    int64_t um = (m + im->mr_step - 1) / im->mr_step, un = (n + im->nr_step - 1) / im->nr_step;
    if (nt > um && nt > un) nt = (int)(um > un ? um : un);
    double rows_m = (double)min64((um + nt - 1) / nt * im->mr_step, m);
    double cols_n = (double)((un + nt - 1) / nt * im->nr_step);
    double cost_m = rows_m * (double)round_up(n, im->nr) * (double)k + 8.0 * (double)k * ((double)n + rows_m);
    double cost_n = (double)m * cols_n * (double)k + 8.0 * (double)k * ((double)m + cols_n);
    p->g = g;
    p->im = im;
    p->nt = nt;
    /* a tail with scratch gets runs of whole rows of C (up to nc_max columns), contiguous in
     * C's layout, as a split by rows gives them */
    p->split_n = nt > 1 && cost_n < cost_m && (x->tail == NULL || tail_writes_c(&g));
    p->units = p->split_n ? un : um;
    p->unit = p->split_n ? im->nr_step : im->mr_step;
    /* Buffers are sized for blocks of the whole of C, in case OpenMP grants fewer threads
     * than asked; pa_len is rounded so that pb, read with aligned loads, starts on 64 bytes. */
    p->pa_len = (size_t)round_up(min64(im->mc_max, pm * im->mr) * g.kc, 16);
    p->pb_len = (size_t)round_up(min64(im->nc_max, pn * im->nr) * g.kc, 16);
    int64_t shared = (p->split_n ? pm * im->mr : pn * im->nr) * k; /* pre-packed, floats */
    p->chunks = nt > 1 && shared <= FM_GEMM_PRE_PACK_MAX
                    ? min64(p->units, (int64_t)nt * FM_GEMM_CHUNKS_PER_THREAD) : 0;
    p->ps_len = x->tail && !tail_writes_c(&g) ? (size_t)round_up(im->mr * min64(im->nc_max, n), 16) : 0;
    p->per_thread = p->pa_len + p->pb_len + p->ps_len + (size_t)(p->chunks ? round_up(shared, 16) : 0);
    p->work = 1;
    return FM_OK;
}

/* Part c of `parts` equal runs of C's rows or columns (as the plan splits them). */
static void gemm_part(const struct gemm_plan *p, int64_t c, int64_t parts, float *pa, float *pb,
                      float *ps, const float *pre)
{
    const struct gemm_problem *g = &p->g;
    int64_t q0 = p->units * c / parts * p->unit;
    int64_t q1 = min64(p->units * (c + 1) / parts * p->unit, p->split_n ? g->n : g->m);
    if (q1 <= q0) return;
    if (p->split_n)
        gemm_block(g, p->im, 0, g->m, q0, q1, pa, pb, ps, pre, NULL);
    else
        gemm_block(g, p->im, q0, q1, 0, g->n, pa, pb, ps, NULL, pre);
}

/* Takes a chunk from a run of chunks [front, back) kept in one word (front in the low 32
 * bits): the front one for the run's owner, the back one for a thread stealing. 0 when the
 * run is empty. */
static int take_chunk(int64_t *run, int steal, int64_t *chunk)
{
    int64_t v = __atomic_load_n(run, __ATOMIC_RELAXED);
    for (;;) {
        int64_t front = v & 0xffffffff, back = v >> 32;
        if (front >= back) return 0;
        int64_t nv = steal ? front | (back - 1) << 32 : (front + 1) | back << 32;
        if (__atomic_compare_exchange_n(run, &v, nv, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            *chunk = steal ? back - 1 : front;
            return 1;
        }
    }
}

/* The runs of a planned GEMM's chunks, one a planned thread: run r holds chunks
 * [chunks r / nt, chunks (r + 1) / nt). */
static void init_runs(const struct gemm_plan *p, int64_t *runs)
{
    for (int64_t r = 0; r < p->nt; r++)
        runs[r] = p->chunks * r / p->nt | (p->chunks * (r + 1) / p->nt) << 32;
}

/* Thread t's share of a planned GEMM run by `team` threads, with its pack buffer: part t of
 * team, or, when the plan has chunks, the shared operand packed once, then the chunks of
 * its runs in order (runs r = t, t + team, ...: the part a fixed share would give it),
 * then chunks stolen from the backs of the other runs. A thread that runs slowly for a
 * while leaves its last chunks to the others instead of holding them up: in this VM's slow
 * phases the two threads of a split finished up to a third apart (study MLP, whose epoch
 * took ~5% less with stealing there, the same in quiet phases). */
static void gemm_share(const struct gemm_plan *p, int t, int team, float *buf, int64_t *runs)
{
    if (!p->work) return;
    float *pa = buf, *pb = pa + p->pa_len, *ps = pb + p->pb_len, *pre = ps + p->ps_len;
    if (!p->chunks) {
        gemm_part(p, t, team, pa, pb, ps, NULL);
        return;
    }
    pre_pack(pre, &p->g, p->im, p->split_n);
    int64_t c;
    for (int64_t r = t; r < p->nt; r += team)
        while (take_chunk(&runs[r], 0, &c)) gemm_part(p, c, p->chunks, pa, pb, ps, pre);
    for (int64_t i = 1; i <= p->nt; i++)
        while (take_chunk(&runs[(t + i) % p->nt], 1, &c)) gemm_part(p, c, p->chunks, pa, pb, ps, pre);
}

/* Runs planned GEMMs (one, or a pair) in one parallel region of nt threads: a single GEMM
 * on all of them; a pair on half each (first on threads [0, h), second on [h, team)), or
 * one after the other when OpenMP grants one thread. */
static int gemm_run(const struct gemm_plan *first, const struct gemm_plan *second, int nt)
{
    if (!first->work && (second == NULL || !second->work)) return FM_OK;
    size_t per_thread = first->work ? first->per_thread : 0;
    if (second && second->work && second->per_thread > per_thread) per_thread = second->per_thread;
    /* the threads' pack buffers (multiples of 16 floats), then the GEMMs' runs of chunks */
    size_t floats = (size_t)nt * per_thread, n_runs = (size_t)first->nt + (second ? (size_t)second->nt : 0);
    float *buf = fm_alloc(floats * sizeof(float) + n_runs * sizeof(int64_t));
    if (buf == NULL) return FM_ENOMEM;
    int64_t *runs = (int64_t *)(buf + floats);
    init_runs(first, runs);
    if (second) init_runs(second, runs + first->nt);

    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        int t = 0, team = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        fm_parallel_arrive(&region);
        float *mine = buf + (size_t)t * per_thread;
        if (second == NULL) {
            gemm_share(first, t, team, mine, runs);
        } else if (team == 1) {
            gemm_share(first, 0, 1, mine, runs);
            gemm_share(second, 0, 1, mine, runs + first->nt);
        } else {
            int h = team / 2;
            if (t < h) gemm_share(first, t, h, mine, runs);
            else gemm_share(second, t - h, team - h, mine, runs + first->nt);
        }
    }
    fm_parallel_join(&region);
    fm_free(buf);
    return FM_OK;
}

/* Threads for GEMMs of `work` multiply-adds in all: one below FM_GEMM_SERIAL_MNK, capped
 * (each thread owns pack buffers). */
static int gemm_threads(double work, int nthreads)
{
#ifdef _OPENMP
    return work < FM_GEMM_SERIAL_MNK ? 1 : fm_parallel_threads(nthreads);
#else
    (void)work;
    (void)nthreads;
    return 1;
#endif
}

int fm_gemm(float *c, int64_t ldc, const float *a, int64_t lda, enum fm_trans ta,
            const float *b, int64_t ldb, enum fm_trans tb,
            int64_t m, int64_t n, int64_t k, float alpha, float beta,
            enum fm_kernel kernel, int nthreads)
{
    return fm_gemm_fused(c, ldc, a, lda, ta, b, ldb, tb, m, n, k, alpha, beta, NULL, kernel,
                         nthreads);
}

int fm_gemm_fused(float *c, int64_t ldc, const float *a, int64_t lda, enum fm_trans ta,
                  const float *b, int64_t ldb, enum fm_trans tb,
                  int64_t m, int64_t n, int64_t k, float alpha, float beta,
                  const fm_gemm_tail *tail, enum fm_kernel kernel, int nthreads)
{
    const fm_gemm_args x = {c, ldc, a, lda, ta, b, ldb, tb, m, n, k, alpha, beta, tail};
    return fm_gemm_pair(&x, NULL, kernel, nthreads);
}

int fm_gemm_pair(const fm_gemm_args *first, const fm_gemm_args *second, enum fm_kernel kernel,
                 int nthreads)
{
    struct gemm_plan p, q;
    int status;
    if (second == NULL) {
        status = gemm_plan(&p, first, kernel, gemm_threads(mnk(first), nthreads));
        return status != FM_OK ? status : gemm_run(&p, NULL, p.nt);
    }
    int nt = gemm_threads(mnk(first) + mnk(second), nthreads), h = nt / 2 > 0 ? nt / 2 : 1;
    status = gemm_plan(&p, first, kernel, h);
    if (status == FM_OK) status = gemm_plan(&q, second, kernel, nt - h > 0 ? nt - h : 1);
    return status != FM_OK ? status : gemm_run(&p, &q, nt);
}

static inline float at(const float *p, int64_t ld, enum fm_trans t, int64_t i, int64_t j)
{
    return t == FM_TRANS ? p[j * ld + i] : p[i * ld + j];
}

void fm_gemm_naive(float *c, int64_t ldc, const float *a, int64_t lda, enum fm_trans ta,
                   const float *b, int64_t ldb, enum fm_trans tb,
                   int64_t m, int64_t n, int64_t k, float alpha, float beta)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t p = 0; p < k; p++) s += (double)at(a, lda, ta, i, p) * at(b, ldb, tb, p, j);
            float v = alpha * (float)s;
            c[i * ldc + j] = beta == 0.0f ? v : v + beta * c[i * ldc + j];
        }
}

