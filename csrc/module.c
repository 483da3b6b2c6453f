/* module.c: the binding fmnist_c._core. It parses arguments, checks and converts arrays,
 * releases the GIL around the kernels and turns status codes into exceptions.
 * No arithmetic lives here. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <numpy/arrayobject.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common.h"
#include "gemm.h"
#include "linear.h"
#include "conv.h"
#include "winograd.h"
#include "nn.h"
#include "forest.h"
#include "tree.h"

/* Raise the exception for a kernel status; returns NULL for `return raise_status(s)`. */
static PyObject *raise_status(int status)
{
    switch (status) {
    case FM_ENOMEM: return PyErr_NoMemory();
    case FM_EINTR: PyErr_SetNone(PyExc_KeyboardInterrupt); return NULL;
    case FM_EDIVERGED:
        PyErr_SetString(PyExc_FloatingPointError,
                        "training diverged: the loss became NaN or infinite; lower learning_rate");
        return NULL;
    default: PyErr_Format(PyExc_ValueError, "invalid argument (kernel status %d)", status); return NULL;
    }
}

/* A C-contiguous, aligned array of `type` and `ndim` dims (a new reference; copies if needed). */
static PyArrayObject *as_array(PyObject *obj, int type, int ndim, const char *name)
{
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(obj, type, NPY_ARRAY_IN_ARRAY);
    if (!a) return NULL;
    if (PyArray_NDIM(a) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must be %d-dimensional, got %d dimensions",
                     name, ndim, PyArray_NDIM(a));
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* Borrowed check of an array the kernel writes into in place: exact type, C-contiguous,
 * aligned, writeable, `ndim` dims. */
static int check_exact(PyObject *obj, int type, int ndim, const char *name, int writeable)
{
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a NumPy array", name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != type || PyArray_NDIM(a) != ndim || !PyArray_IS_C_CONTIGUOUS(a) ||
        !PyArray_ISALIGNED(a) || (writeable && !PyArray_ISWRITEABLE(a))) {
        PyErr_Format(PyExc_ValueError, "%s must be a %sC-contiguous %d-dimensional array of %s",
                     name, writeable ? "writeable, " : "", ndim,
                     type == NPY_FLOAT32 ? "float32" : "int64");
        return -1;
    }
    return 0;
}

static int check_inout(PyObject *obj, int type, int ndim, const char *name)
{
    return check_exact(obj, type, ndim, name, 1);
}

/* A 2-D float32 operand whose rows are contiguous: its leading dimension comes from the row
 * stride, so column slices of wider arrays pass without a copy. New reference. */
static PyArrayObject *as_matrix(PyObject *obj, const char *name, int64_t *ld)
{
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_FLOAT32, NPY_ARRAY_ALIGNED);
    if (!a) return NULL;
    if (PyArray_NDIM(a) != 2) {
        PyErr_Format(PyExc_ValueError, "%s must be 2-dimensional", name);
        Py_DECREF(a);
        return NULL;
    }
    npy_intp *st = PyArray_STRIDES(a), *sh = PyArray_DIMS(a);
    int rows_ok = (sh[1] <= 1 || st[1] == 4) && st[0] % 4 == 0 && st[0] / 4 >= sh[1] && st[0] >= 0;
    if (!rows_ok) {
        PyArrayObject *c = (PyArrayObject *)PyArray_NewCopy(a, NPY_CORDER);
        Py_DECREF(a);
        if (!c) return NULL;
        a = c;
        st = PyArray_STRIDES(a);
        sh = PyArray_DIMS(a);
    }
    *ld = sh[0] <= 1 ? (sh[1] > 0 ? sh[1] : 1) : st[0] / 4;
    if (*ld < sh[1]) *ld = sh[1];
    return a;
}

static int parse_kernel(const char *name, int *naive, enum fm_kernel *kernel)
{
    static const struct { const char *name; enum fm_kernel k; } table[] = {
        {"auto", FM_KERNEL_AUTO}, {"portable", FM_KERNEL_PORTABLE},
        {"avx2", FM_KERNEL_AVX2}, {"avx512", FM_KERNEL_AVX512}};
    *naive = strcmp(name, "naive") == 0;
    if (*naive) return 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0) { *kernel = table[i].k; return 0; }
    PyErr_Format(PyExc_ValueError,
                 "kernel must be 'auto', 'naive', 'portable', 'avx2' or 'avx512', got '%s'", name);
    return -1;
}

static PyObject *py_gemm(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"a", "b", "c", "trans_a", "trans_b", "alpha", "beta", "kernel",
                             "nthreads", NULL};
    PyObject *ao = NULL, *bo = NULL, *co = Py_None, *result = NULL;
    PyArrayObject *a = NULL, *b = NULL, *c = NULL;
    int ta = 0, tb = 0, nthreads = 0, naive = 0, status = FM_OK;
    float alpha = 1.0f, beta = 0.0f;
    const char *kname = "auto";
    enum fm_kernel kernel = FM_KERNEL_AUTO;
    int64_t lda, ldb, ldc;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O$ppffsi", kwlist, &ao, &bo, &co, &ta, &tb,
                                     &alpha, &beta, &kname, &nthreads))
        return NULL;
    if (parse_kernel(kname, &naive, &kernel) < 0) goto fail;
    if (!(a = as_matrix(ao, "a", &lda)) || !(b = as_matrix(bo, "b", &ldb))) goto fail;
    int64_t m = PyArray_DIM(a, ta ? 1 : 0), k = PyArray_DIM(a, ta ? 0 : 1);
    int64_t kb = PyArray_DIM(b, tb ? 1 : 0), n = PyArray_DIM(b, tb ? 0 : 1);
    if (k != kb) {
        PyErr_Format(PyExc_ValueError, "op(a) is (%lld, %lld) but op(b) is (%lld, %lld)",
                     (long long)m, (long long)k, (long long)kb, (long long)n);
        goto fail;
    }
    if (co == Py_None) {
        npy_intp dims[2] = {m, n};
        if (!(c = (PyArrayObject *)PyArray_ZEROS(2, dims, NPY_FLOAT32, 0))) goto fail;
        ldc = n > 0 ? n : 1;
    } else {
        if (!PyArray_Check(co) || PyArray_TYPE((PyArrayObject *)co) != NPY_FLOAT32 ||
            PyArray_NDIM((PyArrayObject *)co) != 2 || !PyArray_ISWRITEABLE((PyArrayObject *)co)) {
            PyErr_SetString(PyExc_ValueError, "c must be a writeable 2-D float32 array");
            goto fail;
        }
        c = (PyArrayObject *)co;
        Py_INCREF(c);
        npy_intp *st = PyArray_STRIDES(c);
        if (PyArray_DIM(c, 0) != m || PyArray_DIM(c, 1) != n) {
            PyErr_Format(PyExc_ValueError, "c must be (%lld, %lld)", (long long)m, (long long)n);
            goto fail;
        }
        if ((n > 1 && st[1] != 4) || st[0] % 4 != 0 || (m > 1 && st[0] / 4 < n) ||
            !PyArray_ISALIGNED(c)) {
            PyErr_SetString(PyExc_ValueError, "c must have contiguous rows");
            goto fail;
        }
        ldc = m > 1 ? st[0] / 4 : (n > 0 ? n : 1);
    }
    float *cp = (float *)PyArray_DATA(c);
    const float *ap = (const float *)PyArray_DATA(a), *bp = (const float *)PyArray_DATA(b);
    Py_BEGIN_ALLOW_THREADS
    if (naive)
        fm_gemm_naive(cp, ldc, ap, lda, ta ? FM_TRANS : FM_NO_TRANS, bp, ldb,
                      tb ? FM_TRANS : FM_NO_TRANS, m, n, k, alpha, beta);
    else
        status = fm_gemm(cp, ldc, ap, lda, ta ? FM_TRANS : FM_NO_TRANS, bp, ldb,
                         tb ? FM_TRANS : FM_NO_TRANS, m, n, k, alpha, beta, kernel, nthreads);
    Py_END_ALLOW_THREADS
    if (status == FM_EINVAL) {
        PyErr_Format(PyExc_ValueError, "kernel '%s' is not available on this CPU", kname);
        goto fail;
    }
    if (status != FM_OK) { raise_status(status); goto fail; }
    result = (PyObject *)c;
    c = NULL;
fail:
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(c);
    return result;
}

static PyObject *py_gemm_kernel(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyUnicode_FromString(fm_gemm_kernel_name(fm_gemm_best_kernel()));
}

static PyObject *py_tree_kernel(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyUnicode_FromString(fm_gemm_kernel_name(fm_tree_best_kernel()));
}

static PyObject *py_openmp_threads(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
#ifdef _OPENMP
    return PyLong_FromLong(omp_get_max_threads());
#else
    return PyLong_FromLong(0);
#endif
}

static PyObject *py_linear_forward(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "w", "b", "proba", "nthreads", NULL};
    PyObject *xo, *wo, *bo, *result = NULL;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *out = NULL;
    int proba = 0, nthreads = 0, status = FM_OK;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|pi", kwlist, &xo, &wo, &bo, &proba, &nthreads))
        return NULL;
    if (!(x = as_array(xo, NPY_FLOAT32, 2, "x")) || !(w = as_array(wo, NPY_FLOAT32, 2, "w")) ||
        !(b = as_array(bo, NPY_FLOAT32, 1, "b")))
        goto fail;
    int64_t n = PyArray_DIM(x, 0), d = PyArray_DIM(x, 1), k = PyArray_DIM(w, 0);
    if (PyArray_DIM(w, 1) != d || PyArray_DIM(b, 0) != k || k < 1) {
        PyErr_Format(PyExc_ValueError, "x is (%lld, %lld) but w is (%lld, %lld) and b (%lld,)",
                     (long long)n, (long long)d, (long long)PyArray_DIM(w, 0),
                     (long long)PyArray_DIM(w, 1), (long long)PyArray_DIM(b, 0));
        goto fail;
    }
    npy_intp dims[2] = {n, k};
    if (!(out = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_FLOAT32, 0))) goto fail;
    float *op = PyArray_DATA(out);
    const float *xp = PyArray_DATA(x), *wp = PyArray_DATA(w), *bp = PyArray_DATA(b);
    Py_BEGIN_ALLOW_THREADS
    status = fm_linear_forward(op, xp, wp, bp, n, d, k, nthreads);
    if (status == FM_OK && proba) fm_softmax_rows(op, n, k);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { raise_status(status); goto fail; }
    result = (PyObject *)out;
    out = NULL;
fail:
    Py_XDECREF(x); Py_XDECREF(w); Py_XDECREF(b); Py_XDECREF(out);
    return result;
}

/* Labels must lie in [0, k) and row indices in [0, n): checked here, never in the kernel. */
static int check_range(const int64_t *v, int64_t len, int64_t hi, const char *name)
{
    for (int64_t i = 0; i < len; i++)
        if (v[i] < 0 || v[i] >= hi) {
            PyErr_Format(PyExc_ValueError, "%s[%lld] = %lld is outside [0, %lld)", name,
                         (long long)i, (long long)v[i], (long long)hi);
            return -1;
        }
    return 0;
}

static int check_finite(const float *v, int64_t len, const char *name)
{
    for (int64_t i = 0; i < len; i++)
        if (!isfinite(v[i])) {
            PyErr_Format(PyExc_ValueError, "%s contains NaN or infinity", name);
            return -1;
        }
    return 0;
}

/* Sample weights: finite and not negative (a negative weight makes impurities meaningless). */
static int check_weights(PyArrayObject *sw, const char *name)
{
    const float *v = PyArray_DATA(sw);
    int64_t len = PyArray_SIZE(sw);
    if (check_finite(v, len, name)) return -1;
    for (int64_t i = 0; i < len; i++)
        if (v[i] < 0.0f) {
            PyErr_Format(PyExc_ValueError, "%s[%lld] = %g is negative", name, (long long)i, (double)v[i]);
            return -1;
        }
    return 0;
}

static PyObject *py_linear_sgd_epoch(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"w", "b", "vw", "vb", "x", "y", "sample_weight", "order", "lr",
                             "batch_size", "momentum", "nesterov", "alpha", "nthreads", NULL};
    PyObject *wo, *bo, *vwo, *vbo, *xo, *yo, *swo, *oo, *lro, *result = NULL;
    PyArrayObject *x = NULL, *y = NULL, *sw = NULL, *order = NULL, *lr = NULL;
    long long batch;
    float momentum, alpha;
    int nesterov, nthreads = 0, status;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOOOOLfpf|i", kwlist, &wo, &bo, &vwo, &vbo,
                                     &xo, &yo, &swo, &oo, &lro, &batch, &momentum, &nesterov,
                                     &alpha, &nthreads))
        return NULL;
    if (check_inout(wo, NPY_FLOAT32, 2, "w") || check_inout(bo, NPY_FLOAT32, 1, "b") ||
        check_inout(vwo, NPY_FLOAT32, 2, "vw") || check_inout(vbo, NPY_FLOAT32, 1, "vb"))
        return NULL;
    PyArrayObject *w = (PyArrayObject *)wo, *b = (PyArrayObject *)bo;
    int64_t k = PyArray_DIM(w, 0), d = PyArray_DIM(w, 1);
    if (!(x = as_array(xo, NPY_FLOAT32, 2, "x")) || !(y = as_array(yo, NPY_INT64, 1, "y")) ||
        !(order = as_array(oo, NPY_INT64, 1, "order")) || !(lr = as_array(lro, NPY_FLOAT32, 1, "lr")))
        goto fail;
    if (swo != Py_None && (!(sw = as_array(swo, NPY_FLOAT32, 1, "sample_weight")) ||
                           check_weights(sw, "sample_weight")))
        goto fail;
    int64_t n = PyArray_DIM(x, 0), m = PyArray_DIM(order, 0);
    if (batch < 1) { PyErr_SetString(PyExc_ValueError, "batch_size must be >= 1"); goto fail; }
    if (k < 1) { PyErr_SetString(PyExc_ValueError, "w must have at least one row"); goto fail; }
    /* a batch never holds more than the m rows: also keeps the kernel's buffer sizes small */
    if (batch > m) batch = m > 0 ? m : 1;
    if (PyArray_DIM(x, 1) != d || PyArray_DIM(b, 0) != k || PyArray_SIZE((PyArrayObject *)vwo) != k * d ||
        PyArray_DIM((PyArrayObject *)vbo, 0) != k || PyArray_DIM(y, 0) != n ||
        (sw && PyArray_DIM(sw, 0) != n) || PyArray_DIM(lr, 0) != (m + batch - 1) / batch) {
        PyErr_SetString(PyExc_ValueError, "linear_sgd_epoch: inconsistent array shapes");
        goto fail;
    }
    const int64_t *yp = PyArray_DATA(y), *op = PyArray_DATA(order);
    if (check_range(yp, n, k, "y") || check_range(op, m, n, "order")) goto fail;
    double loss = 0.0;
    int64_t correct = 0;
    float *wp = PyArray_DATA(w), *bp = PyArray_DATA(b), *vwp = PyArray_DATA((PyArrayObject *)vwo),
          *vbp = PyArray_DATA((PyArrayObject *)vbo);
    const float *xp = PyArray_DATA(x), *swp = sw ? PyArray_DATA(sw) : NULL, *lrp = PyArray_DATA(lr);
    Py_BEGIN_ALLOW_THREADS
    status = fm_linear_sgd_epoch(wp, bp, vwp, vbp, &loss, &correct, xp, yp, swp, op, lrp, n, m, d,
                                 k, batch, momentum, nesterov, alpha, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { raise_status(status); goto fail; }
    result = Py_BuildValue("dL", loss, (long long)correct);
fail:
    Py_XDECREF(x); Py_XDECREF(y); Py_XDECREF(sw); Py_XDECREF(order); Py_XDECREF(lr);
    return result;
}

/* ---- trees and forests (tree.h, forest.h) ------------------------------------------- */

/* A 1-D array of `type` and `len` entries (len < 0: any); new reference. */
static PyArrayObject *as_vector(PyObject *obj, int type, int64_t len, const char *name)
{
    PyArrayObject *a = as_array(obj, type, 1, name);
    if (a && len >= 0 && PyArray_DIM(a, 0) != len) {
        PyErr_Format(PyExc_ValueError, "%s has %lld entries, expected %lld", name,
                     (long long)PyArray_DIM(a, 0), (long long)len);
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* A private copy: for index arrays a kernel trusts after check_range, which nothing the
 * kernel writes may alias. */
static PyArrayObject *as_index_copy(PyObject *obj, int64_t len, const char *name)
{
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_INT64,
                                                         NPY_ARRAY_IN_ARRAY | NPY_ARRAY_ENSURECOPY);
    if (a && (PyArray_NDIM(a) != 1 || (len >= 0 && PyArray_DIM(a, 0) != len))) {
        PyErr_Format(PyExc_ValueError, "%s must be 1-D%s", name, len >= 0 ? " with one entry a row" : "");
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* 0 when none of the n_out arrays a kernel writes overlaps another or any of the n_in it
 * reads (NULL entries skipped), else ValueError naming the pair. All are contiguous. */
static int check_disjoint(PyArrayObject *const *arrays, const char *const *names, int n_out, int n)
{
    for (int i = 0; i < n_out; i++) {
        if (!arrays[i]) continue;
        const char *a0 = PyArray_BYTES(arrays[i]), *a1 = a0 + PyArray_NBYTES(arrays[i]);
        for (int j = i + 1; j < n; j++) {
            if (!arrays[j]) continue;
            const char *b0 = PyArray_BYTES(arrays[j]), *b1 = b0 + PyArray_NBYTES(arrays[j]);
            if (a0 < b1 && b0 < a1) {
                PyErr_Format(PyExc_ValueError, "%s and %s share memory; the kernel writes %s",
                             names[i], names[j], names[i]);
                return -1;
            }
        }
    }
    return 0;
}

static PyObject *py_tree_bin(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "max_bins", "nthreads", NULL};
    PyObject *xo, *result = NULL;
    PyArrayObject *x = NULL, *codes = NULL, *edges = NULL, *n_edges = NULL;
    long long max_bins = 256;
    int nthreads = 0, status;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|Li", kwlist, &xo, &max_bins, &nthreads))
        return NULL;
    int u8 = PyArray_Check(xo) && PyArray_TYPE((PyArrayObject *)xo) == NPY_UINT8;
    if (!(x = as_array(xo, u8 ? NPY_UINT8 : NPY_FLOAT32, 2, "x"))) goto fail;
    if (max_bins < 2 || max_bins > 256) {
        PyErr_Format(PyExc_ValueError, "max_bins must be in [2, 256], got %lld", max_bins);
        goto fail;
    }
    int64_t n = PyArray_DIM(x, 0), d = PyArray_DIM(x, 1), stride = u8 ? 255 : max_bins - 1;
    if (n < 1 || d < 1) { PyErr_SetString(PyExc_ValueError, "x must have samples and features"); goto fail; }
    if (!u8 && check_finite(PyArray_DATA(x), n * d, "x")) goto fail;
    npy_intp cdims[2] = {d, n}, edims[2] = {d, stride}, ndims[1] = {d};
    if (!(codes = (PyArrayObject *)PyArray_EMPTY(2, cdims, NPY_UINT8, 0)) ||
        !(edges = (PyArrayObject *)PyArray_ZEROS(2, edims, NPY_FLOAT32, 0)) ||
        !(n_edges = (PyArrayObject *)PyArray_EMPTY(1, ndims, NPY_INT64, 0)))
        goto fail;
    uint8_t *cp = PyArray_DATA(codes);
    float *ep = PyArray_DATA(edges);
    int64_t *np_ = PyArray_DATA(n_edges);
    const void *xp = PyArray_DATA(x);
    Py_BEGIN_ALLOW_THREADS
    status = u8 ? fm_tree_bin_u8(cp, ep, np_, xp, n, d, nthreads)
                : fm_tree_bin_f32(cp, ep, np_, xp, n, d, max_bins, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { raise_status(status); goto fail; }
    result = Py_BuildValue("OOO", codes, edges, n_edges);
fail:
    Py_XDECREF(x); Py_XDECREF(codes); Py_XDECREF(edges); Py_XDECREF(n_edges);
    return result;
}

/* The trees[0..nt) as one flat forest: (sizes, max_depths, left, right, feature, threshold,
 * value, impurity, n_node_samples, weighted_n_node_samples); child ids stay tree-local. */
static PyObject *export_trees(const fm_tree *trees, int64_t nt, int64_t k)
{
    int64_t total = 0;
    for (int64_t t = 0; t < nt; t++) total += trees[t].n_nodes;
    npy_intp tdims[1] = {nt}, ndims[1] = {total}, vdims[2] = {total, k};
    PyArrayObject *a[10] = {NULL};
    int types[10] = {NPY_INT64, NPY_INT64, NPY_INT64, NPY_INT64, NPY_INT64, NPY_FLOAT32,
                     NPY_FLOAT32, NPY_FLOAT64, NPY_INT64, NPY_FLOAT64};
    PyObject *result = NULL;
    for (int j = 0; j < 10; j++)
        if (!(a[j] = (PyArrayObject *)PyArray_EMPTY(j == 6 ? 2 : 1, j < 2 ? tdims : j == 6 ? vdims : ndims,
                                                    types[j], 0)))
            goto fail;
    int64_t at = 0;
    for (int64_t t = 0; t < nt; t++) {
        const fm_tree *tr = &trees[t];
        int64_t m = tr->n_nodes;
        ((int64_t *)PyArray_DATA(a[0]))[t] = m;
        ((int64_t *)PyArray_DATA(a[1]))[t] = tr->max_depth;
        memcpy((int64_t *)PyArray_DATA(a[2]) + at, tr->left, (size_t)m * sizeof(int64_t));
        memcpy((int64_t *)PyArray_DATA(a[3]) + at, tr->right, (size_t)m * sizeof(int64_t));
        memcpy((int64_t *)PyArray_DATA(a[4]) + at, tr->feature, (size_t)m * sizeof(int64_t));
        memcpy((float *)PyArray_DATA(a[5]) + at, tr->threshold, (size_t)m * sizeof(float));
        memcpy((float *)PyArray_DATA(a[6]) + at * k, tr->value, (size_t)(m * k) * sizeof(float));
        memcpy((double *)PyArray_DATA(a[7]) + at, tr->impurity, (size_t)m * sizeof(double));
        memcpy((int64_t *)PyArray_DATA(a[8]) + at, tr->n_samples, (size_t)m * sizeof(int64_t));
        memcpy((double *)PyArray_DATA(a[9]) + at, tr->weighted_n, (size_t)m * sizeof(double));
        at += m;
    }
    result = Py_BuildValue("OOOOOOOOOO", a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
fail:
    for (int j = 0; j < 10; j++) Py_XDECREF(a[j]);
    return result;
}

static PyObject *py_forest_fit(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"codes", "code_rows", "edges", "n_edges", "y", "sample_weight", "n_classes",
                             "first_tree", "n_trees", "seed", "n_draw", "criterion", "max_depth",
                             "min_samples_split", "min_samples_leaf", "max_features",
                             "min_impurity_decrease", "small_node", "nthreads", "control", "kernel",
                             NULL};
    PyObject *ctlo = Py_None, *co, *cro, *eo, *neo, *yo, *swo, *result = NULL;
    const char *kname = "auto";
    PyArrayObject *codes = NULL, *rows = NULL, *edges = NULL, *n_edges = NULL, *y = NULL, *sw = NULL;
    long long k, first, nt, n_draw, max_depth, min_split, min_leaf, max_features, small_node;
    unsigned long long seed;
    int criterion, nthreads = 0, status, naive;
    double min_decrease;
    enum fm_kernel kernel = FM_KERNEL_AUTO;
    fm_tree *trees = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOLLLKLiLLLLdL|iOs", kwlist, &co, &cro, &eo, &neo, &yo,
                                     &swo, &k, &first, &nt, &seed, &n_draw, &criterion,
                                     &max_depth, &min_split, &min_leaf, &max_features,
                                     &min_decrease, &small_node, &nthreads, &ctlo, &kname))
        return NULL;
    if (parse_kernel(kname, &naive, &kernel) < 0) return NULL;
    if (naive || kernel == FM_KERNEL_AVX512) {
        PyErr_SetString(PyExc_ValueError, "forest_fit: kernel must be 'auto', 'portable' or 'avx2'");
        return NULL;
    }
    if (kernel == FM_KERNEL_AVX2 && fm_tree_best_kernel() != FM_KERNEL_AVX2) {
        PyErr_SetString(PyExc_ValueError, "kernel 'avx2' is not available on this CPU");
        return NULL;
    }
    /* control: int64 [stop, done]; another thread sets stop on Ctrl-C and reads done */
    if (ctlo != Py_None && (check_inout(ctlo, NPY_INT64, 1, "control") ||
                            PyArray_DIM((PyArrayObject *)ctlo, 0) != 2)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "control must have 2 entries");
        return NULL;
    }
    int64_t *ctl = ctlo != Py_None ? PyArray_DATA((PyArrayObject *)ctlo) : NULL;
    if (!(codes = as_array(co, NPY_UINT8, 2, "codes")) || !(edges = as_array(eo, NPY_FLOAT32, 2, "edges")))
        goto fail;
    int64_t d = PyArray_DIM(codes, 0), n = PyArray_DIM(codes, 1), stride = PyArray_DIM(edges, 1);
    if (!(n_edges = as_vector(neo, NPY_INT64, d, "n_edges")) || !(y = as_vector(yo, NPY_INT64, n, "y")))
        goto fail;
    if (swo != Py_None && !(sw = as_vector(swo, NPY_FLOAT32, n, "sample_weight"))) goto fail;
    if (cro != Py_None && !(rows = as_array(cro, NPY_UINT8, 2, "code_rows"))) goto fail;
    if (rows && (PyArray_DIM(rows, 0) != n || PyArray_DIM(rows, 1) != d)) {
        PyErr_SetString(PyExc_ValueError, "code_rows must be codes transposed, (n, d)");
        goto fail;
    }
    if (PyArray_DIM(edges, 0) != d || n < 1 || d < 1) {
        PyErr_SetString(PyExc_ValueError, "codes must be (d, n) and edges (d, max_bins - 1) with n, d >= 1");
        goto fail;
    }
    if (check_range(PyArray_DATA(n_edges), d, stride + 1, "n_edges") ||
        check_range(PyArray_DATA(y), n, k, "y"))
        goto fail;
    if (sw && check_weights(sw, "sample_weight")) goto fail;
    if (k < 1 || first < 0 || nt < 0 || n_draw < 0 || n_draw > INT32_MAX || (criterion != FM_GINI && criterion != FM_ENTROPY) ||
        max_depth < 0 || min_split < 2 || min_leaf < 1 || max_features < 1 || max_features > d ||
        !(min_decrease >= 0.0) || small_node < 0 || small_node > FM_TREE_SMALL_MAX) {
        PyErr_SetString(PyExc_ValueError, "forest_fit: a tree parameter is out of range");
        goto fail;
    }
    if (!(trees = PyMem_Calloc(nt > 0 ? (size_t)nt : 1, sizeof(fm_tree)))) { PyErr_NoMemory(); goto fail; }
    fm_tree_params p = {criterion, max_depth, min_split, min_leaf, max_features, min_decrease,
                        small_node, ctl, kernel};
    const uint8_t *cp = PyArray_DATA(codes), *crp = rows ? PyArray_DATA(rows) : NULL;
    const float *ep = PyArray_DATA(edges), *swp = sw ? PyArray_DATA(sw) : NULL;
    const int64_t *nep = PyArray_DATA(n_edges), *yp = PyArray_DATA(y);
    Py_BEGIN_ALLOW_THREADS
    status = fm_forest_fit(trees, cp, crp, ep, stride, nep, yp, swp, n, d, k, &p, seed, first, nt,
                           n_draw, ctl ? ctl + 1 : NULL, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { raise_status(status); goto fail; }
    result = export_trees(trees, nt, k);
fail:
    if (trees)
        for (long long t = 0; t < nt; t++) fm_tree_free(&trees[t]);
    PyMem_Free(trees);
    Py_XDECREF(codes); Py_XDECREF(rows); Py_XDECREF(edges); Py_XDECREF(n_edges); Py_XDECREF(y);
    Py_XDECREF(sw);
    return result;
}

/* The arrays of a flat forest, checked so that no walk can leave its tree or loop. */
typedef struct {
    PyArrayObject *x, *left, *right, *feature, *threshold, *value, *offsets;
    int64_t n, d, k, n_trees;
} forest_args;

static void forest_args_release(forest_args *f)
{
    Py_XDECREF(f->x); Py_XDECREF(f->left); Py_XDECREF(f->right); Py_XDECREF(f->feature);
    Py_XDECREF(f->threshold); Py_XDECREF(f->value); Py_XDECREF(f->offsets);
}

static int forest_args_get(forest_args *f, PyObject *xo, PyObject *lo, PyObject *ro, PyObject *fo,
                           PyObject *to, PyObject *vo, PyObject *oo)
{
    if (!(f->x = as_array(xo, NPY_FLOAT32, 2, "x")) || !(f->left = as_vector(lo, NPY_INT64, -1, "left")))
        return -1;
    int64_t nn = PyArray_DIM(f->left, 0);
    if (!(f->right = as_vector(ro, NPY_INT64, nn, "right")) ||
        !(f->feature = as_vector(fo, NPY_INT64, nn, "feature")) ||
        !(f->threshold = as_vector(to, NPY_FLOAT32, nn, "threshold")) ||
        !(f->offsets = as_vector(oo, NPY_INT64, -1, "offsets")))
        return -1;
    if (vo && !(f->value = as_array(vo, NPY_FLOAT32, 2, "value"))) return -1;
    f->n = PyArray_DIM(f->x, 0);
    f->d = PyArray_DIM(f->x, 1);
    f->k = f->value ? PyArray_DIM(f->value, 1) : 0;
    f->n_trees = PyArray_DIM(f->offsets, 0) - 1;
    if (f->n_trees < 1 || (f->value && (PyArray_DIM(f->value, 0) != nn || f->k < 1))) {
        PyErr_SetString(PyExc_ValueError, "offsets must have n_trees + 1 >= 2 entries and value (n_nodes, k >= 1)");
        return -1;
    }
    int64_t bad = fm_forest_check(PyArray_DATA(f->left), PyArray_DATA(f->right),
                                  PyArray_DATA(f->feature), PyArray_DATA(f->offsets), f->n_trees,
                                  nn, f->d);
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "malformed tree arrays at node %lld (or offsets do not span "
                     "the %lld nodes)", (long long)bad, (long long)nn);
        return -1;
    }
    return 0;
}

static PyObject *py_forest_predict(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "left", "right", "feature", "threshold", "value", "offsets",
                             "depths", "nthreads", NULL};
    PyObject *xo, *lo, *ro, *fo, *to, *vo, *oo, *dpo, *result = NULL;
    PyArrayObject *depths = NULL, *out = NULL;
    forest_args f = {0};
    int nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOOO|i", kwlist, &xo, &lo, &ro, &fo, &to, &vo,
                                     &oo, &dpo, &nthreads))
        return NULL;
    if (forest_args_get(&f, xo, lo, ro, fo, to, vo, oo) || !(depths = as_vector(dpo, NPY_INT64, -1, "depths")))
        goto fail;
    int64_t nd = PyArray_DIM(depths, 0);
    const int64_t *dp = PyArray_DATA(depths);
    for (int64_t j = 0; j < nd; j++)
        if (dp[j] < 0 || (j > 0 && dp[j] < dp[j - 1])) {
            PyErr_SetString(PyExc_ValueError, "depths must be non-negative and ascending");
            goto fail;
        }
    npy_intp dims[3] = {nd, f.n, f.k};
    if (!(out = (PyArrayObject *)PyArray_EMPTY(3, dims, NPY_FLOAT64, 0))) goto fail;
    double *op = PyArray_DATA(out);
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = fm_forest_predict(op, PyArray_DATA(f.x), PyArray_DATA(f.left), PyArray_DATA(f.right),
                               PyArray_DATA(f.feature), PyArray_DATA(f.threshold),
                               PyArray_DATA(f.value), PyArray_DATA(f.offsets), dp, f.n, f.d, f.k,
                               f.n_trees, nd, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { raise_status(status); goto fail; }
    result = (PyObject *)out;
    out = NULL;
fail:
    forest_args_release(&f);
    Py_XDECREF(depths); Py_XDECREF(out);
    return result;
}

static PyObject *py_forest_apply(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "left", "right", "feature", "threshold", "offsets", "max_depth",
                             "nthreads", NULL};
    PyObject *xo, *lo, *ro, *fo, *to, *oo, *result = NULL;
    PyArrayObject *out = NULL;
    forest_args f = {0};
    long long max_depth;
    int nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOL|i", kwlist, &xo, &lo, &ro, &fo, &to, &oo,
                                     &max_depth, &nthreads))
        return NULL;
    if (forest_args_get(&f, xo, lo, ro, fo, to, NULL, oo)) goto fail;
    npy_intp dims[2] = {f.n, f.n_trees};
    if (!(out = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_INT64, 0))) goto fail;
    int64_t *op = PyArray_DATA(out);
    Py_BEGIN_ALLOW_THREADS
    fm_forest_apply(op, PyArray_DATA(f.x), PyArray_DATA(f.left), PyArray_DATA(f.right),
                    PyArray_DATA(f.feature), PyArray_DATA(f.threshold), PyArray_DATA(f.offsets),
                    max_depth < 0 ? 0 : max_depth, f.n, f.d, f.n_trees, nthreads);
    Py_END_ALLOW_THREADS
    result = (PyObject *)out;
    out = NULL;
fail:
    forest_args_release(&f);
    Py_XDECREF(out);
    return result;
}

static PyObject *py_forest_oob(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "left", "right", "feature", "threshold", "value", "offsets",
                             "seed", "n_draw", "nthreads", NULL};
    PyObject *xo, *lo, *ro, *fo, *to, *vo, *oo, *result = NULL;
    PyArrayObject *out = NULL, *cnt = NULL;
    forest_args f = {0};
    unsigned long long seed;
    long long n_draw;
    int nthreads = 0, status;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOOKL|i", kwlist, &xo, &lo, &ro, &fo, &to, &vo,
                                     &oo, &seed, &n_draw, &nthreads))
        return NULL;
    if (forest_args_get(&f, xo, lo, ro, fo, to, vo, oo)) goto fail;
    if (n_draw < 1 || n_draw > INT32_MAX || f.n < 1) {
        PyErr_SetString(PyExc_ValueError, "n_draw must be in [1, 2**31) and x must have rows");
        goto fail;
    }
    npy_intp dims[2] = {f.n, f.k};
    if (!(out = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_FLOAT64, 0)) ||
        !(cnt = (PyArrayObject *)PyArray_EMPTY(1, dims, NPY_INT64, 0)))
        goto fail;
    double *op = PyArray_DATA(out);
    int64_t *cp = PyArray_DATA(cnt);
    Py_BEGIN_ALLOW_THREADS
    status = fm_forest_oob(op, cp, PyArray_DATA(f.x), PyArray_DATA(f.left), PyArray_DATA(f.right),
                           PyArray_DATA(f.feature), PyArray_DATA(f.threshold), PyArray_DATA(f.value),
                           PyArray_DATA(f.offsets), seed, n_draw, f.n, f.d, f.k, f.n_trees, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { raise_status(status); goto fail; }
    result = Py_BuildValue("OO", out, cnt);
fail:
    forest_args_release(&f);
    Py_XDECREF(out); Py_XDECREF(cnt);
    return result;
}

/* ---- neural networks (nn.h) ------------------------------------------------------------ */

/* A checked network: the program and settings arrays (held) and the decoded layers. */
typedef struct {
    PyArrayObject *program, *settings;
    fm_layer *layers;
    fm_net net;
} nn_args;

static void nn_args_release(nn_args *a)
{
    Py_XDECREF(a->program); Py_XDECREF(a->settings);
    PyMem_Free(a->layers);
}

/* Decode program (n_layers, FM_NN_COLUMNS) int64 and settings (n_layers, FM_NN_FCOLUMNS)
 * float32 for the parameter array `params` (checked in place: float32, 1-D, C-contiguous,
 * writeable). */
static int nn_args_get(nn_args *a, PyObject *params, PyObject *po, PyObject *ro, const char *pname,
                       int writeable)
{
    if (check_exact(params, NPY_FLOAT32, 1, pname, writeable)) return -1;
    if (!(a->program = as_array(po, NPY_INT64, 2, "program"))) return -1;
    int64_t L = PyArray_DIM(a->program, 0);
    if (!(a->settings = as_array(ro, NPY_FLOAT32, 2, "settings"))) return -1;
    if (L < 1 || PyArray_DIM(a->program, 1) != FM_NN_COLUMNS ||
        PyArray_DIM(a->settings, 0) != L || PyArray_DIM(a->settings, 1) != FM_NN_FCOLUMNS) {
        PyErr_Format(PyExc_ValueError, "program must be (n_layers >= 1, %d) and settings "
                     "(n_layers, %d)", (int)FM_NN_COLUMNS, (int)FM_NN_FCOLUMNS);
        return -1;
    }
    if (check_finite(PyArray_DATA(a->settings), L * FM_NN_FCOLUMNS, "settings")) return -1;
    if (!(a->layers = PyMem_Calloc((size_t)L, sizeof(fm_layer)))) { PyErr_NoMemory(); return -1; }
    int64_t bad = fm_nn_decode(&a->net, a->layers, PyArray_DATA(a->program), PyArray_DATA(a->settings),
                               L, PyArray_DIM((PyArrayObject *)params, 0));
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "invalid network program at layer %lld (type, shapes, "
                     "window, parameter offset or settings)", (long long)bad);
        return -1;
    }
    return 0;
}

/* Rows for training or evaluation: x (n, n_in) float32; y either (n) int64 labels in
 * [0, n_out) or (n, n_out) float32 finite target rows; sample_weight None or (n) float32. */
typedef struct {
    PyArrayObject *x, *y, *sw;
    fm_nn_data data;
} nn_rows;

static void nn_rows_release(nn_rows *r) { Py_XDECREF(r->x); Py_XDECREF(r->y); Py_XDECREF(r->sw); }

static int nn_rows_get(nn_rows *r, const fm_net *net, PyObject *xo, PyObject *yo, PyObject *swo)
{
    if (!(r->x = as_array(xo, NPY_FLOAT32, 2, "x"))) return -1;
    int64_t n = PyArray_DIM(r->x, 0);
    if (PyArray_DIM(r->x, 1) != net->n_in || n < 1) {
        PyErr_Format(PyExc_ValueError, "x must be (n >= 1, %lld)", (long long)net->n_in);
        return -1;
    }
    int targets = PyArray_Check(yo) && PyArray_NDIM((PyArrayObject *)yo) == 2;
    if (targets) {
        if (!(r->y = as_array(yo, NPY_FLOAT32, 2, "y"))) return -1;
        if (PyArray_DIM(r->y, 0) != n || PyArray_DIM(r->y, 1) != net->n_out) {
            PyErr_Format(PyExc_ValueError, "target rows y must be (%lld, %lld)", (long long)n,
                         (long long)net->n_out);
            return -1;
        }
        if (check_finite(PyArray_DATA(r->y), n * net->n_out, "y")) return -1;
    } else {
        if (!(r->y = as_index_copy(yo, n, "y"))) return -1;
        if (check_range(PyArray_DATA(r->y), n, net->n_out, "y")) return -1;
    }
    if (swo != Py_None) {
        if (!(r->sw = as_vector(swo, NPY_FLOAT32, n, "sample_weight"))) return -1;
        if (check_weights(r->sw, "sample_weight")) return -1;
    }
    r->data.x = PyArray_DATA(r->x);
    r->data.y = targets ? NULL : PyArray_DATA(r->y);
    r->data.t = targets ? PyArray_DATA(r->y) : NULL;
    r->data.sw = r->sw ? PyArray_DATA(r->sw) : NULL;
    r->data.n = n;
    return 0;
}

/* Augmentation settings for images of h x w: shift in [0, min(h, w)), erase in [0, 1]. */
static int augment_check(long long shift, float erase, int64_t h, int64_t w)
{
    if (shift < 0 || (shift > 0 && (shift >= h || shift >= w)) || !(erase >= 0.0f && erase <= 1.0f)) {
        PyErr_SetString(PyExc_ValueError, "augmentation: shift must be in [0, image side) and "
                        "erase a probability in [0, 1]");
        return -1;
    }
    return 0;
}

static PyObject *py_conv_chunk(PyObject *self, PyObject *args)
{
    (void)self;
    long long h, w, c, kh, kw, f, n;
    if (!PyArg_ParseTuple(args, "LLLLLLL", &h, &w, &c, &kh, &kw, &f, &n)) return NULL;
    const long long lim = 1 << 20; /* as fm_nn_decode's dimensions: no product overflows */
    if (h < 1 || w < 1 || c < 1 || kh < 1 || kw < 1 || f < 1 || n < 1 || h > lim || w > lim ||
        c > lim || kh > 64 || kw > 64 || f > lim || h * w >= (1LL << 28) || kh * kw * c >= (1LL << 28)) {
        PyErr_SetString(PyExc_ValueError, "sizes must be >= 1 and within fm_nn_decode's bounds");
        return NULL;
    }
    fm_conv_geom g = {h, w, c, h, w, f, kh, kw, 1, 0, 0};
    return PyLong_FromLongLong((long long)fm_conv2d_chunk(&g, n, FM_CONV_AUTO));
}

/* One convolution's forward and backward on its own, for tests of each kernel family and
 * for benchmarks: (y, dx, dw, db) from x (n, in_h, in_w, in_c), w (f, kh, kw, in_c), b (f),
 * and dy (n, out_h, out_w, f), whose shape gives the output's; dx None unless input_grad. */
static PyObject *py_conv2d(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "w", "b", "dy", "stride", "pad_h", "pad_w", "input_grad",
                             "kernel", "nthreads", "algorithm", "out", NULL};
    PyObject *xo, *wo, *bo, *dyo, *outo = Py_None, *result = NULL;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *dy = NULL, *y = NULL, *dx = NULL, *dw = NULL,
                  *db = NULL;
    long long stride = 1, pad_h = 0, pad_w = 0;
    int input_grad = 1, nthreads = 0, naive = 0, status = FM_OK;
    const char *kname = "auto", *aname = "auto";
    enum fm_kernel kernel = FM_KERNEL_AUTO;
    enum fm_conv_algorithm algorithm = FM_CONV_AUTO;
    float *col = NULL, *dcol = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|LLLpsisO", kwlist, &xo, &wo, &bo, &dyo, &stride,
                                     &pad_h, &pad_w, &input_grad, &kname, &nthreads, &aname, &outo))
        return NULL;
    if (parse_kernel(kname, &naive, &kernel) < 0) goto fail;
    if (naive) {
        PyErr_SetString(PyExc_ValueError, "conv2d has no naive kernel");
        goto fail;
    }
    if (!(x = as_array(xo, NPY_FLOAT32, 4, "x")) || !(w = as_array(wo, NPY_FLOAT32, 4, "w")) ||
        !(b = as_array(bo, NPY_FLOAT32, 1, "b")) || !(dy = as_array(dyo, NPY_FLOAT32, 4, "dy")))
        goto fail;
    npy_intp *xs = PyArray_DIMS(x), *ws = PyArray_DIMS(w), *ds = PyArray_DIMS(dy);
    fm_conv_geom g = {xs[1], xs[2], xs[3], ds[1], ds[2], ws[0], ws[1], ws[2], stride, pad_h, pad_w};
    const long long lim = 1 << 20; /* as fm_nn_decode's bounds: no product overflows */
    if (ws[3] != g.in_c || PyArray_DIM(b, 0) != g.out_c || ds[0] != xs[0] || ds[3] != g.out_c ||
        xs[0] < 1 || g.in_h < 1 || g.in_w < 1 || g.in_c < 1 || g.out_h < 1 || g.out_w < 1 ||
        g.out_c < 1 || g.kh < 1 || g.kw < 1 || g.kh > 64 || g.kw > 64 || stride < 1 ||
        stride > 64 || pad_h < 0 || pad_h >= g.kh || pad_w < 0 || pad_w >= g.kw ||
        xs[0] > lim || g.in_h * g.in_w > lim || g.out_h * g.out_w > lim || g.in_c > lim ||
        g.out_c > lim || g.kh * g.kw * g.in_c > lim) {
        PyErr_SetString(PyExc_ValueError, "conv2d: shapes must agree (x (n, h, w, c), w (f, kh, "
                        "kw, c), b (f), dy (n, out_h, out_w, f)), every size >= 1 and within "
                        "bounds, 0 <= padding < kernel size");
        goto fail;
    }
    if (strcmp(aname, "winograd") == 0) {
        algorithm = FM_CONV_WINOGRAD;
        if (!fm_winograd_fits(&g)) {
            PyErr_SetString(PyExc_ValueError, "conv2d: winograd needs 3x3 windows of stride 1");
            goto fail;
        }
    } else if (strcmp(aname, "im2col") == 0) {
        algorithm = FM_CONV_IM2COL;
    } else if (strcmp(aname, "auto") != 0) {
        PyErr_SetString(PyExc_ValueError, "conv2d: algorithm must be 'auto', 'im2col' or 'winograd'");
        goto fail;
    }
    const int64_t n = xs[0];
    if (outo != Py_None) { /* the outputs of an earlier call, overwritten: no fresh pages */
        const int four = PyTuple_Check(outo) && PyTuple_GET_SIZE(outo) == 4;
        PyObject *o[4] = {NULL, NULL, NULL, NULL};
        for (int i = 0; four && i < 4; i++) o[i] = PyTuple_GET_ITEM(outo, i);
        if (!four || check_inout(o[0], NPY_FLOAT32, 4, "out's y") < 0 ||
            (input_grad ? check_inout(o[1], NPY_FLOAT32, 4, "out's dx") < 0 : o[1] != Py_None) ||
            check_inout(o[2], NPY_FLOAT32, 4, "out's dw") < 0 ||
            check_inout(o[3], NPY_FLOAT32, 1, "out's db") < 0 ||
            !PyArray_CompareLists(PyArray_DIMS((PyArrayObject *)o[0]), ds, 4) ||
            (input_grad && !PyArray_CompareLists(PyArray_DIMS((PyArrayObject *)o[1]), xs, 4)) ||
            !PyArray_CompareLists(PyArray_DIMS((PyArrayObject *)o[2]), ws, 4) ||
            PyArray_DIM((PyArrayObject *)o[3], 0) != g.out_c) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "conv2d: out must be a tuple (y, dx, dw, db) "
                                "shaped as conv2d returns them (dx None without input_grad)");
            goto fail;
        }
        y = (PyArrayObject *)o[0];
        dx = input_grad ? (PyArrayObject *)o[1] : NULL;
        dw = (PyArrayObject *)o[2];
        db = (PyArrayObject *)o[3];
        Py_INCREF(y);
        Py_XINCREF(dx);
        Py_INCREF(dw);
        Py_INCREF(db);
    } else if (!(y = (PyArrayObject *)PyArray_ZEROS(4, ds, NPY_FLOAT32, 0)) ||
               (input_grad && !(dx = (PyArrayObject *)PyArray_ZEROS(4, xs, NPY_FLOAT32, 0))) ||
               !(dw = (PyArrayObject *)PyArray_ZEROS(4, ws, NPY_FLOAT32, 0)) ||
               !(db = (PyArrayObject *)PyArray_ZEROS(1, PyArray_DIMS(b), NPY_FLOAT32, 0))) {
        goto fail;
    }
    col = fm_alloc((size_t)fm_conv2d_col_len(&g, n, algorithm) * sizeof(float));
    dcol = fm_alloc((size_t)fm_conv2d_dcol_len(&g, n, algorithm) * sizeof(float));
    if (!col || !dcol) { PyErr_NoMemory(); goto fail; }
    const float *xp = PyArray_DATA(x), *wp = PyArray_DATA(w), *bp = PyArray_DATA(b),
                *dyp = PyArray_DATA(dy);
    Py_BEGIN_ALLOW_THREADS
    status = fm_conv2d_forward(PyArray_DATA(y), col, xp, wp, bp, &g, n, 0, algorithm, kernel, nthreads);
    if (status == FM_OK)
        status = fm_conv2d_backward(dx ? PyArray_DATA(dx) : NULL, PyArray_DATA(dw),
                                    PyArray_DATA(db), col, dcol, dyp, xp, wp, &g, n, 0, algorithm,
                                    kernel, nthreads);
    Py_END_ALLOW_THREADS
    if (status == FM_EINVAL) {
        PyErr_Format(PyExc_ValueError, "kernel '%s' is not available on this CPU", kname);
        goto fail;
    }
    if (status != FM_OK) { raise_status(status); goto fail; }
    result = Py_BuildValue("OOOO", y, dx ? (PyObject *)dx : Py_None, dw, db);
fail:
    fm_free(col);
    fm_free(dcol);
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    Py_XDECREF(dy);
    Py_XDECREF(y);
    Py_XDECREF(dx);
    Py_XDECREF(dw);
    Py_XDECREF(db);
    return result;
}

static PyObject *py_augment_images(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "shift", "flip", "erase", "seed", "first_task", NULL};
    PyObject *xo, *result = NULL;
    PyArrayObject *x = NULL, *out = NULL;
    fm_augment aug = {0};
    long long shift = 0, first = 0;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OLpfK|L", kwlist, &xo, &shift, &aug.flip,
                                     &aug.erase, &seed, &first))
        return NULL;
    aug.shift = (int64_t)shift;
    if (!(x = as_array(xo, NPY_FLOAT32, 4, "x"))) goto fail;
    int64_t n = PyArray_DIM(x, 0), h = PyArray_DIM(x, 1), w = PyArray_DIM(x, 2), c = PyArray_DIM(x, 3);
    if (augment_check(shift, aug.erase, h, w)) goto fail;
    if (first < 0) { PyErr_SetString(PyExc_ValueError, "first_task must be >= 0"); goto fail; }
    if (!(out = (PyArrayObject *)PyArray_EMPTY(4, PyArray_DIMS(x), NPY_FLOAT32, 0))) goto fail;
    float *op = PyArray_DATA(out);
    const float *xp = PyArray_DATA(x);
    Py_BEGIN_ALLOW_THREADS
    for (int64_t i = 0; i < n; i++)
        fm_augment_image(op + i * h * w * c, xp + i * h * w * c, h, w, c, &aug, seed,
                         (uint64_t)first + (uint64_t)i);
    Py_END_ALLOW_THREADS
    result = (PyObject *)out;
    out = NULL;
fail:
    Py_XDECREF(x); Py_XDECREF(out);
    return result;
}

static PyObject *py_nn_workspace_size(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"params", "program", "settings", "batch_size", NULL};
    PyObject *po, *pgo, *ro, *result = NULL;
    nn_args a = {0};
    long long batch;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOL", kwlist, &po, &pgo, &ro, &batch)) return NULL;
    if (nn_args_get(&a, po, pgo, ro, "params", 0)) goto fail;
    if (batch < 1 || batch > FM_NN_MAX_BATCH) {
        PyErr_SetString(PyExc_ValueError, "batch_size must be in [1, 2^24]");
        goto fail;
    }
    int64_t len = fm_nn_workspace_len(&a.net, batch);
    if (len < 0) { PyErr_NoMemory(); goto fail; }
    /* a 64-byte aligned start within an array of this many floats: 16 more */
    result = PyLong_FromLongLong((long long)len + 16);
fail:
    nn_args_release(&a);
    return result;
}

static PyObject *py_nn_train(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"params", "grads", "state", "program", "settings", "x", "y", "order",
                             "lr", "batch_size", "optimizer", "momentum", "nesterov", "beta1",
                             "beta2", "epsilon", "weight_decay", "step", "seed",
                             "sample_weight", "nthreads", "shift", "flip", "erase", "workspace",
                             NULL};
    PyObject *po, *go, *so, *pgo, *ro, *xo, *yo, *oo, *lro, *swo = Py_None, *wso = Py_None;
    PyObject *result = NULL;
    PyArrayObject *order = NULL, *lr = NULL;
    nn_args a = {0};
    nn_rows r = {0};
    long long batch, step;
    unsigned long long seed;
    fm_optim opt = {0};
    fm_augment aug = {0};
    long long shift = 0;
    int kind, nthreads = 0, status;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOOOOLifpffffLK|OiLpfO", kwlist, &po, &go,
                                     &so, &pgo, &ro, &xo, &yo, &oo, &lro, &batch, &kind,
                                     &opt.momentum, &opt.nesterov, &opt.beta1, &opt.beta2,
                                     &opt.epsilon, &opt.weight_decay, &step, &seed, &swo, &nthreads,
                                     &shift, &aug.flip, &aug.erase, &wso))
        return NULL;
    aug.shift = (int64_t)shift;
    opt.kind = (enum fm_optimizer)kind;
    if (nn_args_get(&a, po, pgo, ro, "params", 1) || check_inout(go, NPY_FLOAT32, 1, "grads") ||
        check_inout(so, NPY_FLOAT32, 1, "state") || nn_rows_get(&r, &a.net, xo, yo, swo))
        goto fail;
    int64_t np_ = a.net.n_params;
    if (fm_optim_check(&opt) != FM_OK) {
        PyErr_SetString(PyExc_ValueError, "optimizer settings out of range");
        goto fail;
    }
    if (PyArray_DIM((PyArrayObject *)go, 0) != np_ ||
        PyArray_DIM((PyArrayObject *)so, 0) != np_ * fm_optim_state_per_param(opt.kind)) {
        PyErr_SetString(PyExc_ValueError, "grads must match params, and state hold "
                        "fm_optim_state_per_param floats per parameter");
        goto fail;
    }
    if (batch < 1 || batch > FM_NN_MAX_BATCH || step < 0) {
        PyErr_SetString(PyExc_ValueError, "batch_size must be in [1, 2^24] and step >= 0");
        goto fail;
    }
    if (augment_check(shift, aug.erase, a.net.layers[0].in_h, a.net.layers[0].in_w)) goto fail;
    if (!(order = as_index_copy(oo, -1, "order"))) goto fail;
    int64_t m = PyArray_DIM(order, 0), steps = m == 0 ? 0 : 1 + (m - 1) / batch;
    if (step > LLONG_MAX - steps) { PyErr_SetString(PyExc_ValueError, "step too large"); goto fail; }
    if (!(lr = as_vector(lro, NPY_FLOAT32, steps, "lr"))) goto fail;
    float *scratch = NULL;
    if (wso != Py_None) { /* reused across calls: checked in place, 64-byte aligned */
        if (check_inout(wso, NPY_FLOAT32, 1, "workspace")) goto fail;
        scratch = PyArray_DATA((PyArrayObject *)wso);
        int64_t need = fm_nn_workspace_len(&a.net, batch < m ? batch : m);
        if (need < 0 || PyArray_DIM((PyArrayObject *)wso, 0) < need || ((uintptr_t)scratch & 63) != 0) {
            PyErr_SetString(PyExc_ValueError, "workspace must hold nn_workspace_size(...) "
                            "floats and start on 64 bytes");
            goto fail;
        }
    }
    {
        PyArrayObject *arrays[] = {(PyArrayObject *)po, (PyArrayObject *)go, (PyArrayObject *)so,
                                   scratch ? (PyArrayObject *)wso : NULL, r.x, r.y, r.sw, lr};
        const char *names[] = {"params", "grads", "state", "workspace", "x", "y",
                               "sample_weight", "lr"};
        if (check_disjoint(arrays, names, 4, 8)) goto fail;
    }
    const int64_t *op = PyArray_DATA(order);
    if (check_range(op, m, r.data.n, "order") || check_finite(PyArray_DATA(lr), PyArray_DIM(lr, 0), "lr"))
        goto fail;
    double loss = 0.0;
    int64_t correct = 0;
    float *pp = PyArray_DATA((PyArrayObject *)po), *gp = PyArray_DATA((PyArrayObject *)go),
          *sp = PyArray_DATA((PyArrayObject *)so);
    const float *lrp = PyArray_DATA(lr);
    Py_BEGIN_ALLOW_THREADS
    status = fm_nn_train(pp, gp, sp, &loss, &correct, &a.net, &opt, &r.data, op, lrp, &aug,
                         scratch, m, batch, step, seed, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { raise_status(status); goto fail; }
    result = Py_BuildValue("dL", loss, (long long)correct);
fail:
    nn_args_release(&a);
    nn_rows_release(&r);
    Py_XDECREF(order); Py_XDECREF(lr);
    return result;
}

static PyObject *py_nn_gradient(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"params", "grads", "program", "settings", "x", "y", "sample_weight",
                             "training", "step", "seed", "want_dx", "nthreads", NULL};
    PyObject *po, *go, *pgo, *ro, *xo, *yo, *swo = Py_None, *result = NULL;
    PyArrayObject *dx = NULL;
    nn_args a = {0};
    nn_rows r = {0};
    long long step = 0;
    unsigned long long seed = 0;
    int training = 0, want_dx = 0, nthreads = 0, status;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOO|OpLKpi", kwlist, &po, &go, &pgo, &ro, &xo,
                                     &yo, &swo, &training, &step, &seed, &want_dx, &nthreads))
        return NULL;
    if (nn_args_get(&a, po, pgo, ro, "params", 1) || check_inout(go, NPY_FLOAT32, 1, "grads") ||
        nn_rows_get(&r, &a.net, xo, yo, swo))
        goto fail;
    if (PyArray_DIM((PyArrayObject *)go, 0) != a.net.n_params) {
        PyErr_SetString(PyExc_ValueError, "grads must match params");
        goto fail;
    }
    if (want_dx) {
        npy_intp dims[2] = {r.data.n, a.net.n_in};
        if (!(dx = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_FLOAT32, 0))) goto fail;
    }
    double loss = 0.0;
    int64_t correct = 0;
    float *gp = PyArray_DATA((PyArrayObject *)go), *dxp = dx ? PyArray_DATA(dx) : NULL;
    const float *pp = PyArray_DATA((PyArrayObject *)po);
    Py_BEGIN_ALLOW_THREADS
    status = fm_nn_gradient(gp, dxp, &loss, &correct, pp, &a.net, &r.data, training, step, seed,
                            nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { raise_status(status); goto fail; }
    result = Py_BuildValue("dLO", loss, (long long)correct, dx ? (PyObject *)dx : Py_None);
fail:
    nn_args_release(&a);
    nn_rows_release(&r);
    Py_XDECREF(dx);
    return result;
}

static PyObject *py_nn_predict(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"params", "program", "settings", "x", "batch_size", "proba", "nthreads",
                             NULL};
    PyObject *po, *pgo, *ro, *xo, *result = NULL;
    PyArrayObject *x = NULL, *out = NULL;
    nn_args a = {0};
    long long batch = 1024;
    int proba = 1, nthreads = 0, status;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|Lpi", kwlist, &po, &pgo, &ro, &xo, &batch,
                                     &proba, &nthreads))
        return NULL;
    if (nn_args_get(&a, po, pgo, ro, "params", 0) || !(x = as_array(xo, NPY_FLOAT32, 2, "x"))) goto fail;
    int64_t n = PyArray_DIM(x, 0);
    if (PyArray_DIM(x, 1) != a.net.n_in || batch < 1) {
        PyErr_Format(PyExc_ValueError, "x must be (n, %lld) and batch_size >= 1", (long long)a.net.n_in);
        goto fail;
    }
    npy_intp dims[2] = {n, a.net.n_out};
    if (!(out = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_FLOAT32, 0))) goto fail;
    float *op = PyArray_DATA(out);
    const float *pp = PyArray_DATA((PyArrayObject *)po), *xp = PyArray_DATA(x);
    status = FM_OK;
    Py_BEGIN_ALLOW_THREADS
    if (n > 0) status = fm_nn_predict(op, pp, &a.net, xp, n, batch, proba, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { raise_status(status); goto fail; }
    result = (PyObject *)out;
    out = NULL;
fail:
    nn_args_release(&a);
    Py_XDECREF(x); Py_XDECREF(out);
    return result;
}

static PyObject *py_nn_evaluate(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"params", "program", "settings", "x", "y", "sample_weight", "batch_size",
                             "nthreads", NULL};
    PyObject *po, *pgo, *ro, *xo, *yo, *swo = Py_None, *result = NULL;
    nn_args a = {0};
    nn_rows r = {0};
    long long batch = 1024;
    int nthreads = 0, status;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|OLi", kwlist, &po, &pgo, &ro, &xo, &yo, &swo,
                                     &batch, &nthreads))
        return NULL;
    if (nn_args_get(&a, po, pgo, ro, "params", 0) || nn_rows_get(&r, &a.net, xo, yo, swo)) goto fail;
    if (batch < 1) { PyErr_SetString(PyExc_ValueError, "batch_size must be >= 1"); goto fail; }
    double loss = 0.0;
    int64_t correct = 0;
    const float *pp = PyArray_DATA((PyArrayObject *)po);
    Py_BEGIN_ALLOW_THREADS
    status = fm_nn_evaluate(&loss, &correct, pp, &a.net, &r.data, batch, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { raise_status(status); goto fail; }
    result = Py_BuildValue("dL", loss, (long long)correct);
fail:
    nn_args_release(&a);
    nn_rows_release(&r);
    return result;
}

static PyMethodDef methods[] = {
    {"gemm", (PyCFunction)(void (*)(void))py_gemm, METH_VARARGS | METH_KEYWORDS,
     "gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1, beta=0, kernel='auto', "
     "nthreads=0): c = alpha op(a) op(b) + beta c in float32; returns c."},
    {"gemm_kernel", py_gemm_kernel, METH_NOARGS, "Name of the GEMM micro-kernel picked for this CPU."},
    {"tree_kernel", py_tree_kernel, METH_NOARGS, "Name of the tree lane-scan kernel picked for this CPU."},
    {"openmp_threads", py_openmp_threads, METH_NOARGS,
     "OpenMP's default thread count (0 when built without OpenMP)."},
    {"linear_forward", (PyCFunction)(void (*)(void))py_linear_forward, METH_VARARGS | METH_KEYWORDS,
     "linear_forward(x, w, b, proba=False, nthreads=0): logits x w^T + b, or their softmax."},
    {"linear_sgd_epoch", (PyCFunction)(void (*)(void))py_linear_sgd_epoch,
     METH_VARARGS | METH_KEYWORDS,
     "One SGD pass of softmax regression over x[order]; updates w, b, vw, vb in place and "
     "returns (weighted loss sum, correct count)."},
    {"tree_bin", (PyCFunction)(void (*)(void))py_tree_bin, METH_VARARGS | METH_KEYWORDS,
     "tree_bin(x, max_bins=256, nthreads=0): (codes (d, n) uint8, edges, n_edges); uint8 x is "
     "binned exactly, float x into at most max_bins bins."},
    {"forest_fit", (PyCFunction)(void (*)(void))py_forest_fit, METH_VARARGS | METH_KEYWORDS,
     "Grow trees first_tree..first_tree+n_trees-1; returns the flat arrays (sizes, max_depths, "
     "left, right, feature, threshold, value, impurity, n_node_samples, weighted_n_node_samples)."},
    {"forest_predict", (PyCFunction)(void (*)(void))py_forest_predict, METH_VARARGS | METH_KEYWORDS,
     "Mean class distribution over trees, each cut at every depth in depths: (n_depths, n, k)."},
    {"forest_apply", (PyCFunction)(void (*)(void))py_forest_apply, METH_VARARGS | METH_KEYWORDS,
     "Tree-local node id reached in each tree cut at max_depth: (n, n_trees) int64."},
    {"forest_oob", (PyCFunction)(void (*)(void))py_forest_oob, METH_VARARGS | METH_KEYWORDS,
     "Out-of-bag sums of class distributions and counts of out-of-bag trees per sample."},
    {"nn_train", (PyCFunction)(void (*)(void))py_nn_train, METH_VARARGS | METH_KEYWORDS,
     "Minibatch training of a network over x[order]; updates params, grads, state in place "
     "and returns (weighted loss sum, correct count)."},
    {"nn_workspace_size", (PyCFunction)(void (*)(void))py_nn_workspace_size,
     METH_VARARGS | METH_KEYWORDS,
     "Floats of a workspace array for nn_train with batches of batch_size rows (an aligned "
     "64-byte slice of it is used)."},
    {"nn_gradient", (PyCFunction)(void (*)(void))py_nn_gradient, METH_VARARGS | METH_KEYWORDS,
     "Loss and gradients of all rows as one batch: grads += dL/dparams; returns "
     "(loss sum, correct count, dL/dx or None)."},
    {"nn_predict", (PyCFunction)(void (*)(void))py_nn_predict, METH_VARARGS | METH_KEYWORDS,
     "Inference in batches: (n, n_out) probabilities (or logits when proba=False)."},
    {"nn_evaluate", (PyCFunction)(void (*)(void))py_nn_evaluate, METH_VARARGS | METH_KEYWORDS,
     "Inference-mode (weighted loss sum, correct count) over all rows."},
    {"conv2d", (PyCFunction)(void (*)(void))py_conv2d, METH_VARARGS | METH_KEYWORDS,
     "conv2d(x, w, b, dy, stride=1, pad_h=0, pad_w=0, input_grad=True, kernel='auto', "
     "nthreads=0, algorithm='auto', out=None): one convolution's (y, dx, dw, db), channels last (dx None "
     "without input_grad); kernel picks the family ('portable', 'avx2', 'avx512') of the "
     "single-channel direct path and of Winograd's transforms; algorithm forces 'im2col' (the "
     "direct path for one channel) or 'winograd' (3x3 stride-1 windows only); out, the "
     "(y, dx, dw, db) of an earlier call of the same shapes, is overwritten and returned "
     "instead of fresh arrays (for timings without page faults; it must not share memory "
     "with the inputs)."},
    {"conv_chunk", (PyCFunction)py_conv_chunk, METH_VARARGS,
     "conv_chunk(out_h, out_w, in_c, kh, kw, filters, n): samples per chunk (one GEMM, or "
     "Winograd's 16 for 3x3 windows over several channels) "
     "of a convolution over a batch of n."},
    {"augment_images", (PyCFunction)(void (*)(void))py_augment_images, METH_VARARGS | METH_KEYWORDS,
     "Training-time augmentation of (n, h, w, c) images, image i from stream (seed, first_task + i)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_core",
                                       "fmnist_c's C kernels (private; use the estimators).", -1,
                                       methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__core(void)
{
    import_array();
    return PyModule_Create(&moduledef);
}
