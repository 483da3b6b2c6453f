/* module.c: the binding fmnist_c._core. It parses arguments, checks and converts arrays,
 * releases the GIL around the kernels and turns status codes into exceptions.
 * No arithmetic lives here. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <numpy/arrayobject.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common.h"
#include "gemm.h"
#include "linear.h"

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
static int check_inout(PyObject *obj, int type, int ndim, const char *name)
{
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a NumPy array", name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != type || PyArray_NDIM(a) != ndim || !PyArray_IS_C_CONTIGUOUS(a) ||
        !PyArray_ISALIGNED(a) || !PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be a writeable, C-contiguous %d-dimensional array of %s", name, ndim,
                     type == NPY_FLOAT32 ? "float32" : "int64");
        return -1;
    }
    return 0;
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
    if (PyArray_DIM(w, 1) != d || PyArray_DIM(b, 0) != k) {
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
    if (swo != Py_None && !(sw = as_array(swo, NPY_FLOAT32, 1, "sample_weight"))) goto fail;
    int64_t n = PyArray_DIM(x, 0), m = PyArray_DIM(order, 0);
    if (batch < 1) { PyErr_SetString(PyExc_ValueError, "batch_size must be >= 1"); goto fail; }
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

static PyMethodDef methods[] = {
    {"gemm", (PyCFunction)(void (*)(void))py_gemm, METH_VARARGS | METH_KEYWORDS,
     "gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1, beta=0, kernel='auto', "
     "nthreads=0): c = alpha op(a) op(b) + beta c in float32; returns c."},
    {"gemm_kernel", py_gemm_kernel, METH_NOARGS, "Name of the GEMM micro-kernel picked for this CPU."},
    {"openmp_threads", py_openmp_threads, METH_NOARGS,
     "OpenMP's default thread count (0 when built without OpenMP)."},
    {"linear_forward", (PyCFunction)(void (*)(void))py_linear_forward, METH_VARARGS | METH_KEYWORDS,
     "linear_forward(x, w, b, proba=False, nthreads=0): logits x w^T + b, or their softmax."},
    {"linear_sgd_epoch", (PyCFunction)(void (*)(void))py_linear_sgd_epoch,
     METH_VARARGS | METH_KEYWORDS,
     "One SGD pass of softmax regression over x[order]; updates w, b, vw, vb in place and "
     "returns (weighted loss sum, correct count)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_core",
                                       "fmnist_c's C kernels (private; use the estimators).", -1,
                                       methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__core(void)
{
    import_array();
    return PyModule_Create(&moduledef);
}
