/* svm.h: kernel support vector classification (C-SVC), the problem libsvm solves: SMO with
 * second-order working-set selection, shrinking and a bounded kernel-row cache, one-vs-one
 * over class pairs, and decision values for new samples. Kernel rows come from fm_gemm in
 * blocks. Not a general QP solver: no nu-SVC, regression or one-class. */
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

/* One binary C-SVC: min 1/2 a^T Q a - e^T a, 0 <= a_i <= cbound_i, y^T a = 0, Q = yy^T K.
 * coef: (n) gets y_i a_i. x: (n, d) row-major float32; y: (n) +1 or -1; cbound: (n) > 0.
 * Returns FM_OK, FM_ENOMEM or FM_EINTR. */
int fm_svm_solve(double *coef, fm_svm_info *info,
                 const float *x, const int8_t *y, const double *cbound,
                 int64_t n, int64_t d, const fm_svm_params *p);

/* fm_svm_solve on the rows x0 (n0 of them) followed by x1 (n1), without joining them
 * first (a pair's two classes); y and cbound cover all n0 + n1 rows. */
int fm_svm_solve_parts(double *coef, fm_svm_info *info, const float *x0, int64_t n0,
                       const float *x1, int64_t n1, const int8_t *y, const double *cbound,
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
                   const float *x, const int64_t *count, const double *cbound,
                   int64_t n, int64_t d, int64_t k, const fm_svm_params *p, int nthreads);

/* Decision values of every pair for m samples: dec[i, p] = sum over the support vectors of
 * pair p's classes of coef * K(x_i, sv) - rho[p] (libsvm's and scikit-learn's layout).
 * dec: (m, k (k-1) / 2) float64; x: (m, d); sv: (nsv, d) grouped by class, sv_start: (k + 1)
 * offsets; coef: (k - 1, nsv) scikit-learn's dual_coef_ (an SV of class c holds its
 * coefficient for pair (c, b) in row b - 1 when c < b, in row b when c > b);
 * rho: (k (k-1) / 2). Rows are cut in blocks across threads (results independent of the
 * thread count). Returns FM_OK, FM_ENOMEM or FM_EINTR. */
int fm_svm_decision(double *dec, const float *x, const float *sv, const double *coef,
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

/* The same block by a naive double loop (the reference for tests). */
void fm_svm_kernel_naive(float *out, int64_t ldo, const float *a, const float *b,
                         int64_t m, int64_t n, int64_t d, const fm_svm_kernel_params *kp);

/* Squared norms: out[i] = |x_i|^2 summed in float64. x: (n, d). */
void fm_svm_sq_norms(float *out, const float *x, int64_t n, int64_t d);

#endif
