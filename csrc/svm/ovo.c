/* ovo.c: the multiclass layer: one binary solve per class pair, pairs spread over threads
 * (largest first, each on one thread, so results never depend on the thread count), and
 * decision values of new samples against the shared support vectors in float64 (float rows
 * through kernel64.c, byte rows through neighbors/u8dot.h's exact dot products, as in the
 * fit). */
#include <string.h>

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

/* class c's rows of x: float rows, or byte rows with their packing and sums of squares */
static fm_svm_rows class_rows(fm_svm_rows x, void *const *packed, const int32_t *xsq,
                              const int64_t *start, int64_t c, int64_t d)
{
    if (x.x) {
        x.x += start[c] * d;
        return x;
    }
    x.xb += start[c] * d;
    x.packed = packed[c];
    x.xsq = xsq + start[c];
    return x;
}

static int solve_pair(double *coef, fm_svm_info *info, fm_svm_rows x, void *const *packed,
                      const int32_t *xsq, const int64_t *start, const int64_t *count,
                      const double *cbound, int64_t d, int64_t a, int64_t b,
                      const fm_svm_params *p)
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
        status = fm_svm_solve_parts(coef, info, class_rows(x, packed, xsq, start, a, d), na,
                                    class_rows(x, packed, xsq, start, b, d), nb, y, cb, d, p);
    }
    free(y);
    free(cb);
    return status;
}

/* byte rows: each class's rows packed (packed: (k) pointers, NULL-initialised) and every
 * row's sum of squares xsq (n), once for all the pairs, classes across threads */
static int pack_classes(void **packed, int32_t *xsq, const uint8_t *xb, const int64_t *start,
                        int64_t d, int64_t k, int nt)
{
    int status = FM_OK;
    FM_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1))
    for (int64_t c = 0; c < k; c++) {
        int64_t nc = start[c + 1] - start[c], size = fm_u8dot_packed_size(nc, d, FM_KERNEL_AUTO);
        const uint8_t *rows = xb + start[c] * d;
        int s = size == 0 ? FM_EINVAL : (packed[c] = fm_alloc((size_t)size)) ? FM_OK : FM_ENOMEM;
        if (s == FM_OK) s = fm_u8dot_pack(packed[c], rows, nc, d, FM_KERNEL_AUTO);
        fm_svm_u8_sq_sums(xsq + start[c], rows, nc, d);
        if (s != FM_OK) {
            FM_OMP(omp atomic write)
            status = s;
        }
    }
    return status;
}

int fm_svm_fit_ovo(double *coef, double *rho, double *obj, int64_t *n_iter, int64_t *rows,
                   fm_svm_rows x, const int64_t *count, const double *cbound,
                   int64_t n, int64_t d, int64_t k, const fm_svm_params *p, int nthreads)
{
    int64_t n_pairs = k * (k - 1) / 2;
    int64_t *start = malloc((size_t)(k + 1) * sizeof(int64_t));
    int64_t *offset = malloc((size_t)(n_pairs + 1) * sizeof(int64_t));
    int64_t *order = malloc((size_t)(n_pairs + 1) * sizeof(int64_t));
    void **packed = x.x ? NULL : calloc((size_t)k, sizeof(void *));
    int32_t *xsq = x.x ? NULL : malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    int status = FM_OK;
    if (!start || !offset || !order || (!x.x && (!packed || !xsq))) {
        status = FM_ENOMEM;
        goto done;
    }
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
    if (!x.x && (status = pack_classes(packed, xsq, x.xb, start, d, k, nt)) != FM_OK) goto done;
    FM_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1))
    for (int64_t r = 0; r < n_pairs; r++) {
        int64_t q = order[r], a, b;
        int s;
        FM_OMP(omp atomic read)
        s = status;
        if (s != FM_OK) continue;
        pair_classes(q, k, &a, &b);
        fm_svm_info info;
        s = solve_pair(coef + offset[q], &info, x, packed, xsq, start, count, cbound, d, a, b,
                       p);
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
    for (int64_t c = 0; packed && c < k; c++) fm_free(packed[c]);
    free(packed);
    free(xsq);
    free(start);
    free(offset);
    free(order);
    return status;
}

/* rows of x per decision block: float rows get their float64 dot products against every
 * support vector as a block of ROWS x nsv doubles (33 MB for 16,000 support vectors), byte
 * rows their int32 ones (16 MB) */
#define ROWS 256

/* the support vectors as every decision block reads them: float rows and their squared
 * norms, or byte rows packed for fm_u8dot_block with their sums of squares */
typedef struct {
    fm_svm_rows sv;
    double *svn;
    void *packed;
    int32_t *sq;
} sv_side;

static void sv_side_free(sv_side *v)
{
    fm_free(v->svn); fm_free(v->packed); free(v->sq);
}

static int sv_side_init(sv_side *v, fm_svm_rows sv, int64_t nsv, int64_t d)
{
    size_t n = (size_t)(nsv > 0 ? nsv : 1);
    v->sv = sv;
    if (sv.x) {
        if (!(v->svn = fm_alloc(n * sizeof(double)))) return FM_ENOMEM;
        fm_svm_sq_norms64(v->svn, sv.x, nsv, d);
        return FM_OK;
    }
    int64_t size = fm_u8dot_packed_size(nsv > 0 ? nsv : 1, d, FM_KERNEL_AUTO);
    if (size == 0) return FM_EINVAL;
    v->packed = fm_alloc((size_t)size);
    v->sq = malloc(n * sizeof(int32_t));
    if (!v->packed || !v->sq) return FM_ENOMEM;
    fm_svm_u8_sq_sums(v->sq, sv.xb, nsv, d);
    return nsv > 0 ? fm_u8dot_pack(v->packed, sv.xb, nsv, d, FM_KERNEL_AUTO) : FM_OK;
}

/* dec (n_pairs) of one row from its kernel row kr (nsv), in float64: per class c the sums
 * P_c[j] = K_c . coef[j, c's SVs] (k - 1 of them), and pair (a, b) = P_a[b - 1] + P_b[a]
 * - rho. part: (k, k - 1) scratch. */
static void pair_row(double *dec, double *part, const double *kr, const double *coef,
                     const int64_t *sv_start, const double *rho, int64_t nsv, int64_t k,
                     enum fm_kernel kernel)
{
    for (int64_t c = 0; c < k; c++) {
        int64_t c0 = sv_start[c], nc = sv_start[c + 1] - c0;
        for (int64_t j = 0; j < k - 1; j++)
            part[c * (k - 1) + j] = fm_svm_dot64(kr + c0, coef + j * nsv + c0, nc, kernel);
    }
    for (int64_t a = 0, q = 0; a < k; a++)
        for (int64_t b = a + 1; b < k; b++, q++)
            dec[q] = part[a * (k - 1) + b - 1] + part[b * (k - 1) + a] - rho[q];
}

/* dec (m, n_pairs) of the rows [i0, i0 + m) of x: float rows' kernel block kb (m, nsv)
 * through fm_svm_dots64 and fm_svm_map64 (xn: (m) scratch); byte rows' exact dot products
 * dots (m, nsv) from fm_u8dot_block, each row's kernel values into kb (nsv) */
static int block_values(double *dec, double *kb, int32_t *dots, double *xn, double *part,
                        fm_svm_rows x, int64_t i0, const sv_side *v, const double *coef,
                        const int64_t *sv_start, const double *rho, int64_t m, int64_t nsv,
                        int64_t d, int64_t k, const fm_svm_kernel_params *kp)
{
    enum fm_kernel kernel = fm_svm_k64_best();
    int64_t n_pairs = k * (k - 1) / 2;
    if (x.x) {
        const float *xr = x.x + i0 * d;
        fm_svm_sq_norms64(xn, xr, m, d);
        int status = fm_svm_dots64(kb, nsv, xr, v->sv.x, m, nsv, d, kernel);
        if (status != FM_OK) return status;
        for (int64_t r = 0; r < m; r++) {
            fm_svm_map64(kb + r * nsv, v->svn, xn[r], nsv, kp);
            pair_row(dec + r * n_pairs, part, kb + r * nsv, coef, sv_start, rho, nsv, k, kernel);
        }
        return FM_OK;
    }
    const uint8_t *xb = x.xb + i0 * d;
    if (nsv > 0) {
        int status = fm_u8dot_block(dots, nsv, xb, v->packed, m, nsv, d, FM_KERNEL_AUTO);
        if (status != FM_OK) return status;
    }
    for (int64_t r = 0; r < m; r++) {
        int32_t sq;
        fm_svm_u8_sq_sums(&sq, xb + r * d, 1, d);
        fm_svm_u8_row64(kb, dots + r * nsv, sq, v->sq, kp, x.byte_scale * x.byte_scale, nsv);
        pair_row(dec + r * n_pairs, part, kb, coef, sv_start, rho, nsv, k, kernel);
    }
    return FM_OK;
}

int fm_svm_decision(double *dec, fm_svm_rows x, fm_svm_rows sv, const double *coef,
                    const int64_t *sv_start, const double *rho,
                    int64_t m, int64_t nsv, int64_t d, int64_t k, const fm_svm_params *p,
                    int nthreads)
{
    if (!x.x != !sv.x || (!x.x && x.byte_scale != sv.byte_scale)) return FM_EINVAL;
    int64_t n_blocks = (m + ROWS - 1) / ROWS, n_pairs = k * (k - 1) / 2;
    sv_side v = {0};
    int status = sv_side_init(&v, sv, nsv, d);
    if (status != FM_OK) goto done;
    int nt = fm_parallel_threads(nthreads);
    if (nt > n_blocks) nt = (int)(n_blocks > 0 ? n_blocks : 1);
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        size_t row = (size_t)(nsv > 0 ? nsv : 1), block = ROWS * row;
        double *kb = fm_alloc((x.x ? block : row) * sizeof(double));
        int32_t *dots = x.x ? NULL : fm_alloc(block * sizeof(int32_t));
        double *part = fm_alloc((size_t)(k * (k - 1)) * sizeof(double));
        double *xn = fm_alloc(ROWS * sizeof(double));
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
            if (s == FM_OK)
                s = block_values(dec + i0 * n_pairs, kb, dots, xn, part, x, i0, &v, coef,
                                 sv_start, rho, rows, nsv, d, k, &p->k);
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
    sv_side_free(&v);
    return status;
}
