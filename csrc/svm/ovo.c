/* ovo.c: the multiclass layer: one binary solve per class pair, pairs spread over threads
 * (largest first, each on one thread, so results never depend on the thread count), and
 * decision values of new samples against the shared support vectors (float rows through
 * fm_gemm, byte rows through neighbors/u8dot.h as in the fit). */
#include <string.h>

#include "core/gemm.h"
#include "core/parallel.h"
#include "neighbors/u8dot.h"
#include "svm/svm.h"

/* pair p's classes (a, b) in libsvm's order (0,1), (0,2), ..., (k-2, k-1) */
static void pair_classes(int64_t p, int64_t k, int64_t *a, int64_t *b)
{
    int64_t i = 0;
    while (p >= k - 1 - i) { p -= k - 1 - i; i++; }
    *a = i;
    *b = i + 1 + p;
}

/* the rows [i0, ...) of x */
static fm_svm_rows rows_from(fm_svm_rows x, int64_t i0, int64_t d)
{
    if (x.x) x.x += i0 * d;
    else x.xb += i0 * d;
    return x;
}

static int solve_pair(double *coef, fm_svm_info *info, fm_svm_rows x, const int64_t *start,
                      const int64_t *count, const double *cbound, int64_t d, int64_t a,
                      int64_t b, const fm_svm_params *p)
{
    int64_t na = count[a], nb = count[b], l = na + nb;
    int8_t *y = malloc((size_t)l);
    double *cb = malloc((size_t)l * sizeof(double));
    int status = FM_ENOMEM;
    if (y && cb) {
        memset(y, 1, (size_t)na);
        memset(y + na, -1, (size_t)nb);
        memcpy(cb, cbound + start[a], (size_t)na * sizeof(double));
        memcpy(cb + na, cbound + start[b], (size_t)nb * sizeof(double));
        status = fm_svm_solve_parts(coef, info, rows_from(x, start[a], d), na,
                                    rows_from(x, start[b], d), nb, y, cb, d, p);
    }
    free(y);
    free(cb);
    return status;
}

int fm_svm_fit_ovo(double *coef, double *rho, double *obj, int64_t *n_iter, int64_t *rows,
                   fm_svm_rows x, const int64_t *count, const double *cbound,
                   int64_t n, int64_t d, int64_t k, const fm_svm_params *p, int nthreads)
{
    (void)n;
    int64_t n_pairs = k * (k - 1) / 2;
    int64_t *start = malloc((size_t)(k + 1) * sizeof(int64_t));
    int64_t *offset = malloc((size_t)(n_pairs + 1) * sizeof(int64_t));
    int64_t *order = malloc((size_t)(n_pairs + 1) * sizeof(int64_t));
    int status = FM_OK;
    if (!start || !offset || !order) { status = FM_ENOMEM; goto done; }
    start[0] = 0;
    for (int64_t c = 0; c < k; c++) start[c + 1] = start[c] + count[c];
    offset[0] = 0;
    for (int64_t q = 0; q < n_pairs; q++) {
        int64_t a, b;
        pair_classes(q, k, &a, &b);
        offset[q + 1] = offset[q] + count[a] + count[b];
        order[q] = q;
    }
    /* largest pairs first (stable, by pair id among equals), so the last ones running
     * alone are short; which thread solves which pair changes nothing but the time */
    for (int64_t q = 1; q < n_pairs; q++) {
        int64_t v = order[q], at = q, size = offset[v + 1] - offset[v];
        while (at > 0 && offset[order[at - 1] + 1] - offset[order[at - 1]] < size) {
            order[at] = order[at - 1];
            at--;
        }
        order[at] = v;
    }
    int nt = fm_parallel_threads(nthreads);
    if (nt > n_pairs) nt = (int)(n_pairs > 0 ? n_pairs : 1);
    FM_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1))
    for (int64_t r = 0; r < n_pairs; r++) {
        int64_t q = order[r], a, b;
        int s;
        FM_OMP(omp atomic read)
        s = status;
        if (s != FM_OK) continue;
        pair_classes(q, k, &a, &b);
        fm_svm_info info;
        s = solve_pair(coef + offset[q], &info, x, start, count, cbound, d, a, b, p);
        if (s != FM_OK) {
            FM_OMP(omp atomic write)
            status = s;
            continue;
        }
        rho[q] = info.rho;
        obj[q] = info.obj;
        n_iter[q] = info.reached_max_iter ? -info.n_iter : info.n_iter;
        if (rows) {
            rows[2 * q] = info.rows_computed;
            rows[2 * q + 1] = info.rows_missed;
        }
        if (p->done) {
            FM_OMP(omp atomic update)
            (*p->done)++;
        }
    }
done:
    free(start);
    free(offset);
    free(order);
    return status;
}

/* rows of x per decision block: its kernel block against every support vector is
 * ROWS x nsv floats (16 MiB for 16,000 support vectors) */
#define ROWS 256

/* the support vectors as every decision block reads them: float rows and their squared
 * norms, or byte rows packed for fm_u8dot_block with their sums of squares, and the
 * identity column map and +1 labels fm_svm_u8_row takes */
typedef struct {
    fm_svm_rows sv;
    float *svn;
    void *packed;
    int32_t *sq;
    int64_t *col;
    int8_t *ones;
} sv_side;

static void sv_side_free(sv_side *v)
{
    fm_free(v->svn); fm_free(v->packed); free(v->sq); free(v->col); free(v->ones);
}

static int sv_side_init(sv_side *v, fm_svm_rows sv, int64_t nsv, int64_t d)
{
    size_t n = (size_t)(nsv > 0 ? nsv : 1);
    v->sv = sv;
    if (sv.x) {
        if (!(v->svn = fm_alloc(n * sizeof(float)))) return FM_ENOMEM;
        fm_svm_sq_norms(v->svn, sv.x, nsv, d);
        return FM_OK;
    }
    int64_t size = fm_u8dot_packed_size(nsv > 0 ? nsv : 1, d, FM_KERNEL_AUTO);
    if (size == 0) return FM_EINVAL;
    v->packed = fm_alloc((size_t)size);
    v->sq = malloc(n * sizeof(int32_t));
    v->col = malloc(n * sizeof(int64_t));
    v->ones = malloc(n);
    if (!v->packed || !v->sq || !v->col || !v->ones) return FM_ENOMEM;
    fm_svm_u8_sq_sums(v->sq, sv.xb, nsv, d);
    for (int64_t t = 0; t < nsv; t++) v->col[t] = t;
    memset(v->ones, 1, n);
    return nsv > 0 ? fm_u8dot_pack(v->packed, sv.xb, nsv, d, FM_KERNEL_AUTO) : FM_OK;
}

/* kb (m, nsv): K of the rows [i0, i0 + m) of x against every support vector; float rows
 * through fm_svm_kernel_block (xn: (m) scratch), byte rows through fm_u8dot_block into dots
 * (m, nsv) and fm_svm_u8_row */
static int kernel_rows(float *kb, int32_t *dots, float *xn, fm_svm_rows x, int64_t i0,
                       const sv_side *v, int64_t m, int64_t nsv, int64_t d,
                       const fm_svm_kernel_params *kp)
{
    if (x.x) {
        fm_svm_sq_norms(xn, x.x + i0 * d, m, d);
        return fm_svm_kernel_block(kb, nsv, x.x + i0 * d, xn, v->sv.x, v->svn, m, nsv, d, kp);
    }
    if (nsv == 0) return FM_OK;
    const uint8_t *xb = x.xb + i0 * d;
    int status = fm_u8dot_block(dots, nsv, xb, v->packed, m, nsv, d, FM_KERNEL_AUTO);
    if (status != FM_OK) return status;
    for (int64_t r = 0; r < m; r++) {
        int32_t sq;
        fm_svm_u8_sq_sums(&sq, xb + r * d, 1, d);
        fm_svm_u8_row(kb + r * nsv, dots + r * nsv, sq, v->sq, v->col, v->ones, 1, kp,
                      x.byte_scale * x.byte_scale, nsv);
    }
    return FM_OK;
}

/* dec (m, pairs) from kb (m, nsv): per class c the partial sums P_c = K_c coef_c^T
 * ((m, k - 1)), and pair (a, b) = P_a[:, b - 1] + P_b[:, a] - rho */
static int pair_sums(double *dec, float *part, const float *kb, const float *coef32,
                     const int64_t *sv_start, const double *rho, int64_t m, int64_t nsv,
                     int64_t k)
{
    int status = FM_OK;
    for (int64_t c = 0; c < k && status == FM_OK; c++) {
        int64_t c0 = sv_start[c], nc = sv_start[c + 1] - c0;
        float *pc = part + c * m * (k - 1);
        if (nc == 0) memset(pc, 0, (size_t)(m * (k - 1)) * sizeof(float));
        else
            status = fm_gemm(pc, k - 1, kb + c0, nsv, FM_NO_TRANS, coef32 + c0, nsv, FM_TRANS,
                             m, k - 1, nc, 1.0f, 0.0f, FM_KERNEL_AUTO, 1);
    }
    if (status != FM_OK) return status;
    int64_t n_pairs = k * (k - 1) / 2;
    for (int64_t i = 0; i < m; i++)
        for (int64_t a = 0, q = 0; a < k; a++)
            for (int64_t b = a + 1; b < k; b++, q++)
                dec[i * n_pairs + q] = (double)part[(a * m + i) * (k - 1) + b - 1] +
                                       part[(b * m + i) * (k - 1) + a] - rho[q];
    return FM_OK;
}

int fm_svm_decision(double *dec, fm_svm_rows x, fm_svm_rows sv, const double *coef,
                    const int64_t *sv_start, const double *rho,
                    int64_t m, int64_t nsv, int64_t d, int64_t k, const fm_svm_params *p,
                    int nthreads)
{
    if (!x.x != !sv.x || (!x.x && x.byte_scale != sv.byte_scale)) return FM_EINVAL;
    int64_t n_blocks = (m + ROWS - 1) / ROWS, n_pairs = k * (k - 1) / 2;
    float *coef32 = fm_alloc((size_t)((k - 1) * nsv) * sizeof(float));
    sv_side v = {0};
    int status = coef32 ? sv_side_init(&v, sv, nsv, d) : FM_ENOMEM;
    if (status != FM_OK) goto done;
    for (int64_t t = 0; t < (k - 1) * nsv; t++) coef32[t] = (float)coef[t];
    int nt = fm_parallel_threads(nthreads);
    if (nt > n_blocks) nt = (int)(n_blocks > 0 ? n_blocks : 1);
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        size_t block = (size_t)(ROWS * (nsv > 0 ? nsv : 1));
        float *kb = fm_alloc(block * sizeof(float));
        int32_t *dots = x.x ? NULL : fm_alloc(block * sizeof(int32_t));
        float *part = fm_alloc((size_t)(ROWS * k * (k - 1)) * sizeof(float));
        float *xn = fm_alloc(ROWS * sizeof(float));
        if (!kb || !part || !xn || (!x.x && !dots)) {
            FM_OMP(omp atomic write)
            status = FM_ENOMEM;
        }
        FM_OMP(omp for schedule(dynamic, 1))
        for (int64_t blk = 0; blk < n_blocks; blk++) {
            int s;
            FM_OMP(omp atomic read)
            s = status;
            if (s != FM_OK) continue;
            if (p->stop && *p->stop) s = FM_EINTR;
            int64_t i0 = blk * ROWS, rows = m - i0 < ROWS ? m - i0 : ROWS;
            if (s == FM_OK) s = kernel_rows(kb, dots, xn, x, i0, &v, rows, nsv, d, &p->k);
            if (s == FM_OK)
                s = pair_sums(dec + i0 * n_pairs, part, kb, coef32, sv_start, rho, rows, nsv, k);
            if (s != FM_OK) {
                FM_OMP(omp atomic write)
                status = s;
            }
        }
        fm_free(kb);
        fm_free(dots);
        fm_free(part);
        fm_free(xn);
    }
done:
    fm_free(coef32);
    sv_side_free(&v);
    return status;
}
