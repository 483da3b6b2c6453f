/* svm.h: kernel support vector classification (C-SVC), the problem libsvm solves: SMO with
 * second-order working-set selection, shrinking and a bounded kernel-row cache, one-vs-one
 * over class pairs, and decision values for new samples. The solver's kernel rows come from
 * fm_gemm in blocks (float32, as libsvm's cache); decision values are float64 (kernel64.c).
 * Not a general QP solver: no nu-SVC, regression or one-class. */
#ifndef FM_SVM_H
#define FM_SVM_H

#include <stdint.h>

#include "core/common.h"

enum fm_svm_kernel { FM_SVM_LINEAR = 0, FM_SVM_POLY = 1, FM_SVM_RBF = 2 };

/* K(u, v): linear u.v; poly (gamma u.v + coef0)^degree; rbf exp(-gamma |u - v|^2) */
typedef struct {
    enum fm_svm_kernel kernel;
    double gamma, coef0;
    int64_t degree;
} fm_svm_kernel_params;

typedef struct {
    fm_svm_kernel_params k;
    double tol;          /* stop when the maximal violation m(a) - M(a) < tol (libsvm's eps) */
    int64_t cache_bytes; /* kernel-row cache of each pair being solved */
    int64_t max_iter;    /* per pair; -1: no limit */
    int shrinking;
    const volatile int64_t *stop; /* or NULL: polled every 1,000 iterations; nonzero ends the
                                     fit with FM_EINTR */
    int64_t *done;                /* or NULL: pairs finished, incremented atomically */
} fm_svm_params;

/* What one binary solve reports. */
typedef struct {
    double obj;            /* dual objective 1/2 a^T Q a - e^T a at the solution */
    double rho;            /* decision = sum_i y_i a_i K(x_i, x) - rho */
    int64_t n_iter;
    int64_t rows_computed; /* kernel rows computed (blocks included) */
    int64_t rows_missed;   /* rows the solver asked for that were not cached */
    int reached_max_iter;
} fm_svm_info;

/* The rows of a problem: float32 values x, or bytes xb standing for the values
 * byte_scale * xb (pixels / 255 are bytes with byte_scale 1/255). Byte rows get exact
 * integer distances and dot products (AVX-512 VNNI through neighbors/knn_tile.h), scaled
 * by byte_scale^2 before the kernel's map: the kernel matrix of the same values. */
typedef struct {
    const float *x;     /* (n, d) or NULL */
    const uint8_t *xb;  /* (n, d) when x is NULL */
    double byte_scale;
    /* byte rows in a binary solve (fm_svm_solve_parts) only: xb packed by fm_u8dot_pack
     * (FM_KERNEL_AUTO) and xsq (n) their sums of squares (fm_svm_u8_sq_sums), made once
     * per class by fm_svm_fit_ovo and read by every pair holding the class */
    const void *packed;
    const int32_t *xsq;
} fm_svm_rows;

/* One binary C-SVC: min 1/2 a^T Q a - e^T a, 0 <= a_i <= cbound_i, y^T a = 0, Q = yy^T K,
 * on the rows r0 (n0 of them) followed by r1 (n1), without joining them first (a pair's two
 * classes; r1 must hold the same kind of rows as r0, byte rows with packed and xsq). coef:
 * (n0 + n1) gets y_i a_i; y: +1 or -1 and cbound > 0, both over all n0 + n1 rows. Returns
 * FM_OK, FM_ENOMEM or FM_EINTR. */
int fm_svm_solve_parts(double *coef, fm_svm_info *info, fm_svm_rows r0, int64_t n0,
                       fm_svm_rows r1, int64_t n1, const int8_t *y, const double *cbound,
                       int64_t d, const fm_svm_params *p);

/* One-vs-one over the k (k - 1) / 2 pairs (a, b), a < b, in the order (0,1), (0,2), ...,
 * (k-2, k-1), as libsvm: pair (a, b) has class a as +1 and class b as -1. Pairs run across
 * up to nthreads threads, each pair on one thread, so results do not depend on nthreads.
 * coef: ((k - 1) n) pair after pair, each pair's y_i a_i for class a's rows then class b's;
 * rho, obj: (k (k-1) / 2); n_iter: (k (k-1) / 2), negated when the pair hit max_iter;
 * rows: (k (k-1) / 2, 2) or NULL: each pair's kernel rows computed and cache misses.
 * x: (n, d) rows grouped by class (class c's count[c] rows after those of classes < c);
 * count: (k) each >= 1; cbound: (n) > 0. Returns FM_OK, FM_ENOMEM or FM_EINTR. */
int fm_svm_fit_ovo(double *coef, double *rho, double *obj, int64_t *n_iter, int64_t *rows,
                   fm_svm_rows x, const int64_t *count, const double *cbound,
                   int64_t n, int64_t d, int64_t k, const fm_svm_params *p, int nthreads);

/* Decision values of every pair for m samples: dec[i, p] = sum over the support vectors of
 * pair p's classes of coef * K(x_i, sv) - rho[p] (libsvm's and scikit-learn's layout).
 * dec: (m, k (k-1) / 2) float64; x: (m, d); sv: (nsv, d) grouped by class, sv_start: (k + 1)
 * offsets; coef: (k - 1, nsv) scikit-learn's dual_coef_ (an SV of class c holds its
 * coefficient for pair (c, b) in row b - 1 when c < b, in row b when c > b);
 * rho: (k (k-1) / 2). x and sv are both float rows or both byte rows of one byte_scale
 * (then the kernel comes from exact integer dot products, as in the fit, and d <= 32,768).
 * Kernel values and sums in float64 (kernel64.c), as libsvm's predict. Rows are cut in blocks across threads (results independent of the thread count).
 * Returns FM_OK, FM_EINVAL (rows of two kinds), FM_ENOMEM or FM_EINTR. */
int fm_svm_decision(double *dec, fm_svm_rows x, fm_svm_rows sv, const double *coef,
                    const int64_t *sv_start, const double *rho,
                    int64_t m, int64_t nsv, int64_t d, int64_t k, const fm_svm_params *p,
                    int nthreads);

/* Kernel block: out[i, j] = K(a_i, b_j), out: (m, n) with leading dimension ldo; a: (m, d);
 * b: (n, d); na, nb: (m), (n) squared norms (read for rbf only). One thread. The dot
 * products come from fm_gemm when a has many rows, else from fm_svm_dots (dots.c says why).
 * Returns FM_OK, FM_ENOMEM or FM_EINVAL. */
int fm_svm_kernel_block(float *out, int64_t ldo, const float *a, const float *na,
                        const float *b, const float *nb, int64_t m, int64_t n, int64_t d,
                        const fm_svm_kernel_params *kp);

/* out[r, t] = a_r . b_t without packing. out: (m, n) with leading dimension ldo; a: (m, d);
 * b: (n, d). kernel: FM_KERNEL_AUTO, FM_KERNEL_PORTABLE or FM_KERNEL_AVX512 (FM_EINVAL when
 * the CPU lacks it, or for any other). */
int fm_svm_dots(float *out, int64_t ldo, const float *a, const float *b, int64_t m, int64_t n,
                int64_t d, enum fm_kernel kernel);
enum fm_kernel fm_svm_dots_best(void);

/* The same block by a naive double loop in float64 (the reference for tests). */
void fm_svm_kernel_naive(double *out, int64_t ldo, const float *a, const float *b,
                         int64_t m, int64_t n, int64_t d, const fm_svm_kernel_params *kp);

/* The decision values' kernel in float64 (kernel64.c), as libsvm's predict: the solver's
 * float32 rows above are its cache, a decision value sums thousands of their terms.
 * kernel: FM_KERNEL_AUTO, FM_KERNEL_PORTABLE or FM_KERNEL_AVX512 (FM_EINVAL when the CPU
 * lacks it, or for any other); the kernels agree within a few ulp, not bit for bit. */
enum fm_kernel fm_svm_k64_best(void);

/* x[t] = e^x[t] in place for x[t] <= 0, 0 below -700, within 2 ulp (portable: libm's exp).
 * x: (n). */
int fm_svm_exp64(double *x, int64_t n, enum fm_kernel kernel);

/* out[r, t] = a_r . b_t accumulated in float64. out: (m, n) with leading dimension ldo;
 * a: (m, d); b: (n, d). */
int fm_svm_dots64(double *out, int64_t ldo, const float *a, const float *b, int64_t m,
                  int64_t n, int64_t d, enum fm_kernel kernel);

/* u . v in float64, u, v: (n); kernel FM_KERNEL_PORTABLE or one fm_svm_k64_best gave. */
double fm_svm_dot64(const double *u, const double *v, int64_t n, enum fm_kernel kernel);

/* out[i] = |x_i|^2 in float64. x: (n, d). */
void fm_svm_sq_norms64(double *out, const float *x, int64_t n, int64_t d);

/* A row of float64 dot products k (n) of one row (squared norm nb) against rows of squared
 * norms na (n) turned into kernel values in place: rbf exp(-gamma max(0, na + nb - 2 k)),
 * poly (gamma k + coef0)^degree, linear k. */
void fm_svm_map64(double *k, const double *na, double nb, int64_t n,
                  const fm_svm_kernel_params *kp);

/* The kernel row k (n) of one byte row (sum of squares qsq) from its exact dot products
 * dot (n) with byte rows of sums of squares xsq (n), all standing for byte_scale times
 * themselves (scale2 = byte_scale^2): as fm_svm_u8_row, in float64 and without labels. */
void fm_svm_u8_row64(double *k, const int32_t *dot, int32_t qsq, const int32_t *xsq,
                     const fm_svm_kernel_params *kp, double scale2, int64_t n);

/* A row of Q for the rbf kernel from exact integer dot products of byte rows: q[t] = yi y[t]
 * exp(-g2 dist_t), dist_t = qsq + xsq[c] - 2 dot[c] with c = col[t], for t < len (g2 =
 * gamma byte_scale^2); exp within 2 ulp and 0 below e^-87, bit-identical in every kernel.
 * q: (len); dot, xsq: indexed by col (len); y: (len) +1 or -1; every dist_t < 2^31 (rows
 * of d <= 32,768 bytes, u8dot.h's limit). kernel: FM_KERNEL_AUTO, FM_KERNEL_PORTABLE or
 * FM_KERNEL_AVX512 (FM_EINVAL when the CPU lacks it, or for any other). */
int fm_svm_rbf_row(float *q, const int32_t *dot, int32_t qsq, const int32_t *xsq,
                   const int64_t *col, const int8_t *y, int yi, double g2, int64_t len,
                   enum fm_kernel kernel);
enum fm_kernel fm_svm_rbf_row_best(void);

/* The same row for any kernel of byte rows standing for byte_scale times themselves
 * (scale2 = byte_scale^2): rbf through fm_svm_rbf_row with g2 = gamma scale2 (the best
 * kernel), linear scale2 dot_c, polynomial (gamma scale2 dot_c + coef0)^degree, each
 * times yi y[t]. */
void fm_svm_u8_row(float *q, const int32_t *dot, int32_t qsq, const int32_t *xsq,
                   const int64_t *col, const int8_t *y, int yi, const fm_svm_kernel_params *kp,
                   double scale2, int64_t len);

/* A variable's place in the box 0 <= a_i <= C_i. */
enum fm_svm_status { FM_SVM_LOWER = 0, FM_SVM_UPPER = 1, FM_SVM_FREE = 2 };

/* The bound a variable of label y may not be at to be in I_up (y = +1 below C, y = -1
 * above 0); I_low's is the other one. The one statement of that rule: smo.c's tests and
 * select.c's scans (portable and AVX-512) take it from here. */
static inline int fm_svm_up_excludes(int y) { return y > 0 ? FM_SVM_UPPER : FM_SVM_LOWER; }
static inline int fm_svm_low_excludes(int y) { return y > 0 ? FM_SVM_LOWER : FM_SVM_UPPER; }

/* What the j scan of the working-set selection finds. */
typedef struct {
    int64_t j;      /* -1 when no j in I_low has Gmax + y_j G_j > 0 */
    double obj_min; /* its -(b^2 / a) */
    double Gmax2;   /* max y_j G_j over I_low (-inf when empty) */
} fm_svm_pick;

/* libsvm's WSS3 scan for j given i: over the j < n in I_low (y_j = +1 above the lower
 * bound, -1 below the upper), b = Gmax + y_j G_j, a = QD_i + QD_j - 2 y_i y_j Q_i[j] (TAU
 * when not > 0), the least -(b^2 / a) among b > 0, ties to the last j. G, QD: (n) float64;
 * y: (n) +1 or -1; status: (n) enum fm_svm_status; Q_i: (n), read only where b > 0 (NULL
 * when Gmax is -inf); yi, QD_i: i's label and QD. kernel: FM_KERNEL_AUTO,
 * FM_KERNEL_PORTABLE or FM_KERNEL_AVX512 (FM_EINVAL when the CPU lacks it, or any other);
 * every kernel picks the same j. */
int fm_svm_select_j(fm_svm_pick *pk, const double *G, const int8_t *y, const char *status,
                    const double *QD, const float *Q_i, int yi, double QD_i, double Gmax,
                    int64_t n, enum fm_kernel kernel);
enum fm_kernel fm_svm_select_best(void);

/* libsvm's scan for i: the t < n in I_up (y_t = +1 below the upper bound, -1 above the
 * lower) with the largest -y_t G_t, ties to the last t; *i = -1 and *Gmax = -inf when
 * I_up is empty. G: (n) float64; y: (n) +1 or -1; status: (n) enum fm_svm_status.
 * kernel as fm_svm_select_j's; every kernel picks the same i. */
int fm_svm_select_i(int64_t *i, double *Gmax, const double *G, const int8_t *y,
                    const char *status, int64_t n, enum fm_kernel kernel);

/* The gradient updates: G[k] += dai Q_i[k] + daj Q_j[k] for k < n, or with Q_j NULL
 * G[k] += dai Q_i[k], each product and sum rounded in float64 in that order (no fused
 * multiply-add), so every kernel gives the same bits. G: (n); Q_i, Q_j: (n). kernel:
 * FM_KERNEL_AUTO, FM_KERNEL_PORTABLE or FM_KERNEL_AVX512 (FM_EINVAL when the CPU lacks it,
 * or for any other). */
int fm_svm_update_G(double *G, const float *Q_i, const float *Q_j, double dai, double daj,
                    int64_t n, enum fm_kernel kernel);
enum fm_kernel fm_svm_grad_best(void);

/* base^times by squaring, as libsvm's powi (the polynomial kernel) */
double fm_svm_powi(double base, int64_t times);

/* Squared norms: out[i] = |x_i|^2 summed in float64. x: (n, d). */
void fm_svm_sq_norms(float *out, const float *x, int64_t n, int64_t d);

/* The same of byte rows, exact: out[i] = sum_t xb[i, t]^2. xb: (n, d), d <= 32,768. */
void fm_svm_u8_sq_sums(int32_t *out, const uint8_t *xb, int64_t n, int64_t d);

#endif
