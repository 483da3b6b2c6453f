/* features/hog.c: histograms of oriented gradients of a batch of grey images, image by
 * image over OpenMP threads (hog.h says what is computed). Not a general image library: one
 * channel, no visualisation, scikit-image's feature vector only. */
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/common.h"
#include "core/parallel.h"
#include "features/hog.h"

/* |cross| below this fraction of |gx| + |gy| counts as on a bin boundary: the sign test
 * is then settled as NumPy's degrees(arctan2) % 180 settles it (hog_bin_exact) */
#define FM_HOG_NEAR 1e-9

typedef struct {
    fm_hog_params p;
    int64_t cells_r, cells_c, blocks_r, blocks_c, n_features;
    int64_t per_thread; /* doubles of scratch a thread uses */
    int test_last;      /* the last boundary, rounded to float32, lies below 180 degrees */
    double *deg;        /* boundaries b_0..b_n in degrees, as scikit-image's float32 values */
    double *cs, *sn;    /* cos b_k and sin b_k */
} hog_plan;

int64_t fm_hog_n_features(const fm_hog_params *p)
{
    if (p->height < 1 || p->width < 1 || p->cell_rows < 1 || p->cell_cols < 1 ||
        p->block_rows < 1 || p->block_cols < 1 || p->orientations < 1 ||
        (p->norm != FM_HOG_L1 && p->norm != FM_HOG_L1_SQRT && p->norm != FM_HOG_L2 &&
         p->norm != FM_HOG_L2_HYS))
        return 0;
    int64_t br = p->height / p->cell_rows - p->block_rows + 1;
    int64_t bc = p->width / p->cell_cols - p->block_cols + 1;
    if (br < 1 || bc < 1) return 0;
    if ((double)br * (double)bc * (double)p->block_rows * (double)p->block_cols *
            (double)p->orientations > FM_HOG_MOST_FEATURES)
        return 0;
    return br * bc * p->block_rows * p->block_cols * p->orientations;
}

static int plan_make(hog_plan *pl, const fm_hog_params *p)
{
    pl->p = *p;
    pl->n_features = fm_hog_n_features(p);
    if (pl->n_features == 0) return FM_EINVAL;
    int64_t n = p->orientations;
    pl->cells_r = p->height / p->cell_rows;
    pl->cells_c = p->width / p->cell_cols;
    pl->blocks_r = pl->cells_r - p->block_rows + 1;
    pl->blocks_c = pl->cells_c - p->block_cols + 1;
    pl->per_thread = p->height * p->width + pl->cells_r * pl->cells_c * n +
                     p->block_rows * p->block_cols * n;
    if (!(pl->deg = fm_alloc(3 * (size_t)(n + 1) * sizeof(double)))) return FM_ENOMEM;
    pl->cs = pl->deg + n + 1;
    pl->sn = pl->cs + n + 1;
    /* scikit-image's bin i is [b_i, b_i+1) with b_k = (float)(180 / n) * k in float32 */
    float width = (float)(180.0 / (double)n);
    for (int64_t k = 0; k <= n; k++) {
        pl->deg[k] = (double)(width * (float)k);
        pl->cs[k] = cos(pl->deg[k] * (M_PI / 180.0));
        pl->sn[k] = sin(pl->deg[k] * (M_PI / 180.0));
    }
    pl->test_last = pl->deg[n] < 180.0;
    return FM_OK;
}

/* The bin of a gradient as scikit-image finds it (-1: past the last boundary, no bin):
 * the angle in degrees as NumPy computes rad2deg(arctan2(gy, gx)) % 180. */
static int64_t hog_bin_exact(const hog_plan *pl, double gx, double gy)
{
    double t = atan2(gy, gx) * (180.0 / M_PI);
    double mod = fmod(t, 180.0);
    if (mod != 0.0) {
        if (mod < 0.0) mod += 180.0;
    } else {
        mod = 0.0;
    }
    int64_t n = pl->p.orientations;
    if (mod >= pl->deg[n]) return -1;
    int64_t bin = 0;
    while (bin + 1 < n && mod >= pl->deg[bin + 1]) bin++;
    return bin;
}

/* The bin of a nonzero gradient: the angle folded into [0, 180) degrees is at least b_k
 * when the cross product of (gx, gy) with b_k's direction is >= 0; a product too close to
 * 0 to trust its sign goes to hog_bin_exact. No atan2 in the common case. */
static int64_t hog_bin(const hog_plan *pl, double gx, double gy)
{
    double x = gx, y = gy;
    if (y < 0.0 || (y == 0.0 && x < 0.0)) { x = -x; y = -y; }
    double near = FM_HOG_NEAR * (fabs(x) + fabs(y));
    int64_t n = pl->p.orientations, bin = 0, last = pl->test_last ? n : n - 1;
    for (int64_t k = 1; k <= last; k++) {
        double cross = y * pl->cs[k] - x * pl->sn[k];
        if (fabs(cross) <= near) return hog_bin_exact(pl, gx, gy);
        if (cross < 0.0) break;
        bin = k;
    }
    return bin == n ? -1 : bin;
}

/* a - b, rounded to float32 on the float path (a and b are float32 values there) */
static inline double difference(double a, double b, int round32)
{
    return round32 ? (double)((float)a - (float)b) : a - b;
}

/* One image's features. v: (height, width) pixels as float64 (after any square root);
 * round32: the float path, whose differences are rounded to float32 as NumPy's float32
 * subtraction rounds them. hist and block: the thread's scratch. */
static void hog_image(float *out, const double *v, int round32, const hog_plan *pl,
                      double *hist, double *block)
{
    const fm_hog_params *p = &pl->p;
    int64_t h = p->height, w = p->width, n = p->orientations;
    int64_t rows = pl->cells_r * p->cell_rows, cols = pl->cells_c * p->cell_cols;
    for (int64_t i = 0; i < pl->cells_r * pl->cells_c * n; i++) hist[i] = 0.0;
    /* pixels past the last whole cell belong to no cell (as in scikit-image) */
    for (int64_t r = 0; r < rows; r++) {
        double *cell = hist + (r / p->cell_rows) * pl->cells_c * n;
        for (int64_t c0 = 0; c0 < cols; c0 += p->cell_cols, cell += n)
            for (int64_t c = c0; c < c0 + p->cell_cols; c++) {
                /* central differences; 0 on the first and last row (gy) and column (gx) */
                double gx = 0.0, gy = 0.0;
                if (c > 0 && c < w - 1) gx = difference(v[r * w + c + 1], v[r * w + c - 1], round32);
                if (r > 0 && r < h - 1) gy = difference(v[(r + 1) * w + c], v[(r - 1) * w + c], round32);
                if (gx == 0.0 && gy == 0.0) continue;
                int64_t bin = hog_bin(pl, gx, gy);
                if (bin >= 0) cell[bin] += sqrt(gx * gx + gy * gy);
            }
    }
    double area = (double)(p->cell_rows * p->cell_cols);
    for (int64_t i = 0; i < pl->cells_r * pl->cells_c * n; i++) hist[i] /= area;

    const double eps = 1e-5;
    int64_t bn = p->block_rows * p->block_cols * n;
    for (int64_t br = 0; br < pl->blocks_r; br++)
        for (int64_t bc = 0; bc < pl->blocks_c; bc++) {
            /* block: (block_rows, block_cols, n), the cells [br, br + block_rows) x [bc, ...) */
            for (int64_t i = 0; i < p->block_rows; i++)
                for (int64_t j = 0; j < p->block_cols; j++)
                    for (int64_t o = 0; o < n; o++)
                        block[(i * p->block_cols + j) * n + o] =
                            hist[((br + i) * pl->cells_c + bc + j) * n + o];
            double s = 0.0;
            if (p->norm == FM_HOG_L1 || p->norm == FM_HOG_L1_SQRT) {
                for (int64_t t = 0; t < bn; t++) s += fabs(block[t]);
                for (int64_t t = 0; t < bn; t++) block[t] /= s + eps;
                if (p->norm == FM_HOG_L1_SQRT)
                    for (int64_t t = 0; t < bn; t++) block[t] = sqrt(block[t]);
            } else {
                for (int64_t t = 0; t < bn; t++) s += block[t] * block[t];
                for (int64_t t = 0; t < bn; t++) block[t] /= sqrt(s + eps * eps);
                if (p->norm == FM_HOG_L2_HYS) {
                    s = 0.0;
                    for (int64_t t = 0; t < bn; t++) {
                        if (block[t] > 0.2) block[t] = 0.2;
                        s += block[t] * block[t];
                    }
                    for (int64_t t = 0; t < bn; t++) block[t] /= sqrt(s + eps * eps);
                }
            }
            float *o = out + (br * pl->blocks_c + bc) * bn;
            for (int64_t t = 0; t < bn; t++) o[t] = (float)block[t];
        }
}

/* The loop both entry points share: u8 or f32 (the other NULL) images over threads. */
static int hog_run(float *out, const uint8_t *u8, const float *f32, int64_t n,
                   const fm_hog_params *p, int nthreads)
{
    hog_plan pl;
    int status = plan_make(&pl, p);
    if (status != FM_OK) return status;
    int nt = fm_parallel_threads_for(n, 8, nthreads);
    double *scratch = fm_alloc((size_t)nt * (size_t)pl.per_thread * sizeof(double));
    if (!scratch) {
        fm_free(pl.deg);
        return FM_ENOMEM;
    }
    int64_t hw = p->height * p->width;
    fm_parallel_region reg = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        fm_parallel_arrive(&reg);
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        double *v = scratch + (int64_t)tid * pl.per_thread;
        double *hist = v + hw;
        double *block = hist + pl.cells_r * pl.cells_c * p->orientations;
        FM_OMP(omp for schedule(static))
        for (int64_t i = 0; i < n; i++) {
            if (u8) {
                const uint8_t *img = u8 + i * hw;
                for (int64_t t = 0; t < hw; t++)
                    v[t] = p->transform_sqrt ? sqrt((double)img[t]) : (double)img[t];
            } else {
                const float *img = f32 + i * hw;
                for (int64_t t = 0; t < hw; t++)
                    v[t] = p->transform_sqrt ? (double)sqrtf(img[t]) : (double)img[t];
            }
            hog_image(out + i * pl.n_features, v, u8 == NULL, &pl, hist, block);
        }
    }
    fm_parallel_join(&reg);
    fm_free(scratch);
    fm_free(pl.deg);
    return FM_OK;
}

int fm_hog_u8(float *out, const uint8_t *images, int64_t n, const fm_hog_params *p, int nthreads)
{
    return hog_run(out, images, NULL, n, p, nthreads);
}

int fm_hog_f32(float *out, const float *images, int64_t n, const fm_hog_params *p, int nthreads)
{
    return hog_run(out, NULL, images, n, p, nthreads);
}
