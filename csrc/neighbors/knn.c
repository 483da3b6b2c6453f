/* knn.c: exact k-nearest-neighbour search: query tiles x training tiles, a distance tile in
 * L2, and a running top-k list per query that each tile's rows are merged into. uint8 rows
 * take exact integer tiles (knn_tile.c); float32 rows take the SGEMM's approximate tile
 * and re-rank every row that may be closer than the k-th in float64. Not the estimator:
 * voting and weights are Python's (fmnist_c/neighbors.py). */
#include "neighbors/knn.h"

#include <math.h>
#include <string.h>

#include "core/cpu.h"
#include "core/gemm.h"
#include "core/parallel.h"
#include "neighbors/knn_tile.h"

#define QT 96  /* queries a tile (a multiple of FM_KNN_MR) */
#define NT 512 /* training rows a tile (a multiple of every tile family's width) */
#define SLAB 64 /* training rows packed at a time (a multiple of every width) */

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

void fm_knn_init(double *key, int64_t *idx, int64_t n, int64_t k)
{
    for (int64_t i = 0; i < n * k; i++) {
        key[i] = INFINITY;
        idx[i] = -1;
    }
}

void fm_knn_finish(double *key, int64_t len, enum fm_knn_metric metric)
{
    if (metric == FM_KNN_EUCLIDEAN)
        for (int64_t i = 0; i < len; i++) key[i] = sqrt(key[i]);
}

/* key, idx: (k,) one query's list, ascending; (v, j) enters it when v < key[k - 1]. Rows
 * arrive in ascending index order, so an equal key goes after the ones already there. */
static inline void push(double *key, int64_t *idx, int64_t k, double v, int64_t j)
{
    int64_t pos = k - 1;
    while (pos > 0 && key[pos - 1] > v) {
        key[pos] = key[pos - 1];
        idx[pos] = idx[pos - 1];
        pos--;
    }
    key[pos] = v;
    idx[pos] = j;
}

/* 1 - dot / sqrt(|q|^2 |x|^2), 1 for a zero row: the cosine key, computed the same way for
 * uint8 (exact dot and norms) and for float32's float64 re-ranking. */
static inline double cosine_key(double dot, double qq, double xx)
{
    return qq == 0.0 || xx == 0.0 ? 1.0 : 1.0 - dot / sqrt(qq * xx);
}

static int metric_ok(enum fm_knn_metric m)
{
    return m == FM_KNN_EUCLIDEAN || m == FM_KNN_MANHATTAN || m == FM_KNN_COSINE;
}

/* ---------------------------------------------------------------- uint8 ---- */

/* The integer key a row must be below to enter a list whose k-th key is key[k - 1]
 * (every exact distance is below INT32_MAX: d <= 2^15 columns of 255^2 at most) */
static int32_t limit(const double *key, int64_t k)
{
    return isinf(key[k - 1]) ? INT32_MAX : (int32_t)key[k - 1];
}

/* row: (nt,) one query's exact distances to training rows j0.. of the chunk */
static void scan_int(double *key, int64_t *idx, int64_t k, const int32_t *row, int64_t nt,
                     int64_t j0)
{
    int32_t lim = limit(key, k);
    int64_t j = 0;
    for (; j + 16 <= nt; j += 16) {
        int hit = 0;
        for (int t = 0; t < 16; t++) hit |= row[j + t] < lim;
        if (!hit) continue;
        for (int t = 0; t < 16; t++)
            if (row[j + t] < lim) {
                push(key, idx, k, row[j + t], j0 + j + t);
                lim = limit(key, k);
            }
    }
    for (; j < nt; j++)
        if (row[j] < lim) {
            push(key, idx, k, row[j], j0 + j);
            lim = limit(key, k);
        }
}

/* row: (nt,) one query's exact dot products, turned into cosine keys */
static void scan_cosine_int(double *key, int64_t *idx, int64_t k, const int32_t *row,
                            int64_t nt, int64_t j0, int32_t qsq, const int32_t *xsq)
{
    for (int64_t j = 0; j < nt; j++) {
        double v = cosine_key(row[j], qsq, xsq[j]);
        if (v < key[k - 1]) push(key, idx, k, v, j0 + j);
    }
}

struct u8_job {
    const struct fm_knn_u8_impl *im;
    const uint8_t *q, *x; /* x: the chunk's first row */
    const uint8_t *xp;    /* the chunk packed */
    const int32_t *xsq, *xsum;
    double *key;
    int64_t *idx;
    int64_t nq, x0, nx, d, dp, k;
    enum fm_knn_metric metric;
};

/* Queries [q0, q0 + QT) against the whole chunk; qb, qsq, dt: the thread's scratch. */
static void u8_tile(const struct u8_job *jb, int64_t q0, void *qb, int32_t *qsq, int32_t *dt)
{
    const struct fm_knn_u8_impl *im = jb->im;
    const int64_t qn = jb->nq - q0 < QT ? jb->nq - q0 : QT, dp = jb->dp, d = jb->d;
    const int64_t rows = round_up(qn, im->mr), step = dp * im->elem;
    im->pack_q(qb, jb->q + q0 * d, qn, rows, d, dp);
    if (im->begin) im->begin();
    fm_knn_row_sums(qsq, NULL, jb->q + q0 * d, qn, d);
    for (int64_t j0 = 0; j0 < jb->nx; j0 += NT) {
        int64_t nt = jb->nx - j0 < NT ? jb->nx - j0 : NT, ntp = round_up(nt, im->width);
        for (int64_t r = 0; r < rows; r += im->mr)
            for (int64_t j = 0; j < ntp; j += im->width)
                im->tile(dt + r * NT + j, NT, (const char *)qb + r * step,
                         jb->xp + (j0 + j) * step, dp, jb->xsum + j0 + j);
        for (int64_t r = 0; r < qn; r++) {
            double *key = jb->key + (q0 + r) * jb->k;
            int64_t *idx = jb->idx + (q0 + r) * jb->k;
            if (jb->metric == FM_KNN_COSINE) {
                scan_cosine_int(key, idx, jb->k, dt + r * NT, nt, jb->x0 + j0, qsq[r], jb->xsq + j0);
                continue;
            }
            if (im->keys(dt + r * NT, nt, qsq[r], jb->xsq + j0, limit(key, jb->k)))
                scan_int(key, idx, jb->k, dt + r * NT, nt, jb->x0 + j0);
        }
    }
    if (im->end) im->end();
}

int fm_knn_search_u8(double *key, int64_t *idx, const uint8_t *q, const uint8_t *x,
                     int64_t nq, int64_t x0, int64_t nx, int64_t d, int64_t k,
                     enum fm_knn_metric metric, enum fm_kernel kernel, int nthreads)
{
    if (nq < 0 || x0 < 0 || nx < 0 || d < 1 || d > (1 << 15) || k < 1 || !metric_ok(metric))
        return FM_EINVAL;
    const struct fm_knn_u8_impl *im = fm_knn_u8_impl(kernel, metric);
    if (im == NULL) return FM_EINVAL;
    if (nq == 0 || nx == 0) return FM_OK;
    const int64_t dp = round_up(d, im->kalign), nxp = round_up(nx, SLAB);
    uint8_t *xp = fm_alloc((size_t)(nxp * dp * im->elem));
    int32_t *xsq = fm_alloc((size_t)nxp * 2 * sizeof(int32_t));
    if (xp == NULL || xsq == NULL) {
        fm_free(xp); fm_free(xsq);
        return FM_ENOMEM;
    }
    int32_t *xsum = xsq + nxp;
    struct u8_job jb = {im, q, x + x0 * d, xp, xsq, xsum, key, idx, nq, x0, nx, d, dp, k, metric};
    const int64_t n_tiles = (nq + QT - 1) / QT, n_slabs = nxp / SLAB;
    int status = FM_OK;
    int nt = fm_parallel_threads_for(n_tiles * nx * d, (int64_t)1 << 22, nthreads);
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&region);
        FM_OMP(omp for schedule(static))
        for (int64_t s = 0; s < n_slabs; s++) {
            int64_t j0 = s * SLAB, n = nx - j0 < SLAB ? nx - j0 : SLAB;
            im->pack_x(xp + j0 * dp * im->elem, jb.x + j0 * d, n, d, dp);
            fm_knn_row_sums(xsq + j0, xsum + j0, jb.x + j0 * d, n, d);
            for (int64_t j = j0 + n; j < j0 + SLAB; j++) xsq[j] = xsum[j] = 0;
        }
        void *qb = fm_alloc((size_t)(QT * dp * im->elem));
        int32_t *qsq = fm_alloc(QT * sizeof(int32_t)), *dt = fm_alloc(QT * NT * sizeof(int32_t));
        int ok = qb && qsq && dt;
        if (!ok) {
            FM_OMP(omp atomic write)
            status = FM_ENOMEM;
        }
        FM_OMP(omp for schedule(dynamic, 1))
        for (int64_t t = 0; t < n_tiles; t++)
            if (ok) u8_tile(&jb, t * QT, qb, qsq, dt);
        fm_free(qb); fm_free(qsq); fm_free(dt);
    }
    fm_parallel_join(&region);
    fm_free(xp); fm_free(xsq);
    return status;
}

/* -------------------------------------------------------------- float32 ---- */

/* dt: (qn, nt) leading dimension NT: Manhattan distances in float32 (16 lanes, so the
 * loop vectorises; any order stays within the bound the re-ranking allows for). */
static void manhattan_f32(float *dt, const float *q, int64_t qn, const float *x, int64_t nt,
                          int64_t d)
{
    for (int64_t r = 0; r < qn; r++)
        for (int64_t j = 0; j < nt; j++) {
            const float *a = q + r * d, *b = x + j * d;
            float lane[16] = {0}, s = 0.0f;
            int64_t c = 0;
            for (; c + 16 <= d; c += 16)
                for (int t = 0; t < 16; t++) lane[t] += fabsf(a[c + t] - b[c + t]);
            for (; c < d; c++) s += fabsf(a[c] - b[c]);
            for (int t = 0; t < 16; t++) s += lane[t];
            dt[r * NT + j] = s;
        }
}

/* The float64 key of (a, b), summed in index order. */
static double exact_key(const float *a, const float *b, int64_t d, enum fm_knn_metric metric,
                        double aa, double bb)
{
    double s = 0.0;
    if (metric == FM_KNN_EUCLIDEAN)
        for (int64_t c = 0; c < d; c++) s += ((double)a[c] - b[c]) * ((double)a[c] - b[c]);
    else if (metric == FM_KNN_MANHATTAN)
        for (int64_t c = 0; c < d; c++) s += fabs((double)a[c] - b[c]);
    else {
        for (int64_t c = 0; c < d; c++) s += (double)a[c] * b[c];
        s = cosine_key(s, aa, bb);
    }
    return s;
}

static double sum_squares(const float *a, int64_t d)
{
    double s = 0.0;
    for (int64_t c = 0; c < d; c++) s += (double)a[c] * a[c];
    return s;
}

struct f32_job {
    const float *q, *x; /* x: the chunk's first row */
    const double *xx;   /* the chunk's sums of squares */
    double *key;
    int64_t *idx;
    int64_t nq, x0, nx, d, k;
    enum fm_knn_metric metric;
    enum fm_kernel kernel;
    double slack; /* 2 gamma_d: twice the float32 dot product's (or sum's) relative bound */
};

/* Queries [q0, q0 + QT) against the chunk: a float32 tile (GEMM dots, or Manhattan sums),
 * then each row whose approximate key could beat the k-th is re-ranked in float64.
 * Bounds: |fl(q.x) - q.x| <= gamma_d |q||x| <= gamma_d (|q|^2 + |x|^2) / 2 in any order
 * of summation, so the Euclidean key errs by at most gamma_d (|q|^2 + |x|^2) and the
 * cosine key by gamma_d; a float32 Manhattan sum errs by at most gamma_d times itself.
 * The slack is twice each bound. */
static int f32_tile(const struct f32_job *jb, int64_t q0, float *dt, double *qq)
{
    const int64_t qn = jb->nq - q0 < QT ? jb->nq - q0 : QT, d = jb->d, k = jb->k;
    const float *q = jb->q + q0 * d;
    for (int64_t r = 0; r < qn; r++) qq[r] = sum_squares(q + r * d, d);
    for (int64_t j0 = 0; j0 < jb->nx; j0 += NT) {
        int64_t nt = jb->nx - j0 < NT ? jb->nx - j0 : NT;
        const float *x = jb->x + j0 * d;
        if (jb->metric == FM_KNN_MANHATTAN) {
            manhattan_f32(dt, q, qn, x, nt, d);
        } else {
            int s = fm_gemm(dt, NT, q, d, FM_NO_TRANS, x, d, FM_TRANS, qn, nt, d, 1.0f, 0.0f,
                            jb->kernel, 1);
            if (s != FM_OK) return s;
        }
        for (int64_t r = 0; r < qn; r++) {
            double *key = jb->key + (q0 + r) * k;
            int64_t *idx = jb->idx + (q0 + r) * k;
            const float *row = dt + r * NT;
            for (int64_t j = 0; j < nt; j++) {
                double xx = jb->xx[j0 + j], a, lim, thr = key[k - 1];
                if (jb->metric == FM_KNN_EUCLIDEAN) {
                    a = qq[r] + xx - 2.0 * row[j];
                    lim = thr + jb->slack * (qq[r] + xx);
                } else if (jb->metric == FM_KNN_COSINE) {
                    a = cosine_key(row[j], qq[r], xx);
                    lim = thr + jb->slack;
                } else {
                    a = row[j];
                    lim = thr * (1.0 + jb->slack);
                }
                if (a > lim && isfinite(a)) continue;
                double v = exact_key(q + r * d, x + j * d, d, jb->metric, qq[r], xx);
                if (v < thr) push(key, idx, k, v, jb->x0 + j0 + j);
            }
        }
    }
    return FM_OK;
}

int fm_knn_search_f32(double *key, int64_t *idx, const float *q, const float *x,
                      int64_t nq, int64_t x0, int64_t nx, int64_t d, int64_t k,
                      enum fm_knn_metric metric, enum fm_kernel kernel, int nthreads)
{
    if (nq < 0 || x0 < 0 || nx < 0 || d < 1 || k < 1 || !metric_ok(metric)) return FM_EINVAL;
    if (kernel == FM_KERNEL_AMX) kernel = FM_KERNEL_AUTO; /* no float tiles: the GEMM's best */
    if ((kernel == FM_KERNEL_AVX512 && !fm_cpu_has(FM_CPU_AVX512)) ||
        (kernel == FM_KERNEL_AVX2 && !fm_cpu_has(FM_CPU_AVX2)))
        return FM_EINVAL;
    if (nq == 0 || nx == 0) return FM_OK;
    double *xx = fm_alloc((size_t)nx * sizeof(double));
    if (xx == NULL) return FM_ENOMEM;
    const double u = ldexp(1.0, -24), gamma = (double)(d + 2) * u / (1.0 - (double)(d + 2) * u);
    struct f32_job jb = {q, x + x0 * d, xx, key, idx, nq, x0, nx, d, k, metric, kernel, 2.0 * gamma};
    const int64_t n_tiles = (nq + QT - 1) / QT;
    int status = FM_OK;
    int nt = fm_parallel_threads_for(n_tiles * nx * d, (int64_t)1 << 22, nthreads);
    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&region);
        FM_OMP(omp for schedule(static))
        for (int64_t j = 0; j < nx; j++) xx[j] = sum_squares(jb.x + j * d, d);
        float *dt = fm_alloc(QT * NT * sizeof(float));
        double *qq = fm_alloc(QT * sizeof(double));
        int mine = dt && qq ? FM_OK : FM_ENOMEM;
        FM_OMP(omp for schedule(dynamic, 1))
        for (int64_t t = 0; t < n_tiles; t++)
            if (mine == FM_OK) mine = f32_tile(&jb, t * QT, dt, qq);
        if (mine != FM_OK) {
            FM_OMP(omp atomic write)
            status = mine;
        }
        fm_free(dt); fm_free(qq);
    }
    fm_parallel_join(&region);
    fm_free(xx);
    return status;
}
