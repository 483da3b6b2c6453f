/* bind/neighbors.c: the binding of the exact k-nearest-neighbour search
 * (neighbors/knn.h). Checks and converts; the search runs a block of queries against a
 * chunk of training rows at a time with the GIL released, and Ctrl-C is honoured between
 * chunks (each is sized to a fraction of a second). */
#include "bind/bind.h"
#include "core/gemm.h"
#include "neighbors/knn.h"
#include "neighbors/u8dot.h"

/* Queries a call takes at most, and the multiply-adds a call aims at (~0.3 s here). */
#define FM_KNN_QUERY_BLOCK 16384
#define FM_KNN_CALL_WORK ((int64_t)1 << 35)

/* "amx" (neighbors/ only) or the shared names; -1 with ValueError set */
static int parse_knn_kernel(const char *kname, enum fm_kernel *kernel)
{
    int naive = 0;
    if (strcmp(kname, "amx") == 0) {
        *kernel = FM_KERNEL_AMX;
        return 0;
    }
    if (fm_bind_parse_kernel(kname, &naive, kernel) < 0) return -1;
    if (naive) {
        PyErr_SetString(PyExc_ValueError, "kernel must be 'auto', 'portable', 'avx2', 'avx512' or 'amx'");
        return -1;
    }
    return 0;
}

static PyObject *py_knn_search(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"q", "x", "k", "metric", "kernel", "nthreads", NULL};
    PyObject *qo, *xo, *result = NULL;
    PyArrayObject *q = NULL, *x = NULL, *key = NULL, *idx = NULL;
    long long k;
    int metric = FM_KNN_EUCLIDEAN, nthreads = 0, status = FM_OK;
    const char *kname = "auto";
    enum fm_kernel kernel = FM_KERNEL_AUTO;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOL|isi", kwlist, &qo, &xo, &k, &metric, &kname,
                                     &nthreads))
        return NULL;
    if (parse_knn_kernel(kname, &kernel) < 0) return NULL;
    if (metric != FM_KNN_EUCLIDEAN && metric != FM_KNN_MANHATTAN && metric != FM_KNN_COSINE) {
        PyErr_Format(PyExc_ValueError, "knn_search: unknown metric code %d", metric);
        return NULL;
    }
    int u8 = PyArray_Check(qo) && PyArray_TYPE((PyArrayObject *)qo) == NPY_UINT8 &&
             PyArray_Check(xo) && PyArray_TYPE((PyArrayObject *)xo) == NPY_UINT8;
    int type = u8 ? NPY_UINT8 : NPY_FLOAT32;
    if (!(q = fm_bind_as_array(qo, type, 2, "q")) || !(x = fm_bind_as_array(xo, type, 2, "x"))) goto fail;
    int64_t nq = PyArray_DIM(q, 0), nx = PyArray_DIM(x, 0), d = PyArray_DIM(x, 1);
    if (PyArray_DIM(q, 1) != d || d < 1 || (u8 && d > (1 << 15))) {
        PyErr_Format(PyExc_ValueError, "q and x must have the same number of columns (1 to %d "
                     "for uint8), got %lld and %lld", 1 << 15, (long long)PyArray_DIM(q, 1),
                     (long long)d);
        goto fail;
    }
    if (k < 1 || k > nx) {
        PyErr_Format(PyExc_ValueError, "k must be in [1, %lld] (the training rows), got %lld",
                     (long long)nx, k);
        goto fail;
    }
    if (!u8 && (fm_bind_check_finite(PyArray_DATA(q), nq * d, "q") ||
                fm_bind_check_finite(PyArray_DATA(x), nx * d, "x")))
        goto fail;
    npy_intp dims[2] = {nq, k};
    if (!(key = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_FLOAT64, 0)) ||
        !(idx = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_INT64, 0)))
        goto fail;
    double *kp = PyArray_DATA(key);
    int64_t *ip = PyArray_DATA(idx);
    fm_knn_init(kp, ip, nq, k);
    for (int64_t q0 = 0; q0 < nq; q0 += FM_KNN_QUERY_BLOCK) {
        int64_t qn = nq - q0 < FM_KNN_QUERY_BLOCK ? nq - q0 : FM_KNN_QUERY_BLOCK;
        int64_t chunk = FM_KNN_CALL_WORK / (qn * d) / 64 * 64;
        if (chunk < 512) chunk = 512;
        for (int64_t x0 = 0; x0 < nx; x0 += chunk) {
            int64_t n = nx - x0 < chunk ? nx - x0 : chunk;
            double *kq = kp + q0 * k;
            int64_t *iq = ip + q0 * k;
            Py_BEGIN_ALLOW_THREADS
            if (u8)
                status = fm_knn_search_u8(kq, iq, (const uint8_t *)PyArray_DATA(q) + q0 * d,
                                          PyArray_DATA(x), qn, x0, n, d, k, metric, kernel, nthreads);
            else
                status = fm_knn_search_f32(kq, iq, (const float *)PyArray_DATA(q) + q0 * d,
                                           PyArray_DATA(x), qn, x0, n, d, k, metric, kernel, nthreads);
            Py_END_ALLOW_THREADS
            if (status != FM_OK) { fm_bind_raise_kernel(status, kname); goto fail; }
            if (PyErr_CheckSignals() < 0) goto fail;
        }
    }
    fm_knn_finish(kp, nq * k, metric);
    result = Py_BuildValue("OO", key, idx);
fail:
    Py_XDECREF(q); Py_XDECREF(x); Py_XDECREF(key); Py_XDECREF(idx);
    return result;
}

static PyObject *py_knn_metrics(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return Py_BuildValue("{sisisi}", "euclidean", FM_KNN_EUCLIDEAN, "manhattan", FM_KNN_MANHATTAN,
                         "cosine", FM_KNN_COSINE);
}

static PyObject *py_u8_dots(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"a", "b", "kernel", NULL};
    PyObject *ao, *bo, *result = NULL;
    PyArrayObject *a = NULL, *b = NULL, *out = NULL;
    const char *kname = "auto";
    enum fm_kernel kernel = FM_KERNEL_AUTO;
    void *bp = NULL;
    int status = FM_OK;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|s", kwlist, &ao, &bo, &kname)) return NULL;
    if (parse_knn_kernel(kname, &kernel) < 0) return NULL;
    if (!(a = fm_bind_as_array(ao, NPY_UINT8, 2, "a")) || !(b = fm_bind_as_array(bo, NPY_UINT8, 2, "b")))
        goto fail;
    int64_t m = PyArray_DIM(a, 0), n = PyArray_DIM(b, 0), d = PyArray_DIM(a, 1);
    if (PyArray_DIM(b, 1) != d || d < 1 || d > (1 << 15)) {
        PyErr_Format(PyExc_ValueError, "a and b must have the same number of columns (1 to %d), "
                     "got %lld and %lld", 1 << 15, (long long)d, (long long)PyArray_DIM(b, 1));
        goto fail;
    }
    int64_t size = fm_u8dot_packed_size(n, d, kernel);
    if (size == 0) { fm_bind_raise_kernel(FM_EINVAL, kname); goto fail; }
    npy_intp dims[2] = {m, n};
    if (!(out = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_INT32, 0))) goto fail;
    if (!(bp = fm_alloc((size_t)size))) { PyErr_NoMemory(); goto fail; }
    Py_BEGIN_ALLOW_THREADS
    status = fm_u8dot_pack(bp, PyArray_DATA(b), n, d, kernel);
    if (status == FM_OK)
        status = fm_u8dot_block(PyArray_DATA(out), n, PyArray_DATA(a), bp, m, n, d, kernel);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { fm_bind_raise_kernel(status, kname); goto fail; }
    result = (PyObject *)out;
    out = NULL;
fail:
    fm_free(bp);
    Py_XDECREF(a); Py_XDECREF(b); Py_XDECREF(out);
    return result;
}

static PyObject *py_knn_kernel(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyUnicode_FromString(fm_gemm_kernel_name(fm_knn_best_kernel()));
}

PyMethodDef fm_bind_neighbors_methods[] = {
    {"knn_search", (PyCFunction)(void (*)(void))py_knn_search, METH_VARARGS | METH_KEYWORDS,
     "knn_search(q, x, k, metric=0, kernel='auto', nthreads=0): (distances (nq, k) float64, "
     "indices (nq, k) int64) of the k nearest rows of x to each row of q, ascending by "
     "(distance, index); exact. uint8 when q and x both are, else float32. metric: a "
     "code from knn_metrics()."},
    {"u8_dots", (PyCFunction)(void (*)(void))py_u8_dots, METH_VARARGS | METH_KEYWORDS,
     "u8_dots(a, b, kernel='auto'): (m, n) int32, a @ b.T exactly for uint8 a (m, d) and "
     "b (n, d) (neighbors/u8dot.h, one thread; for tests and callers of that C API)."},
    {"knn_metrics", py_knn_metrics, METH_NOARGS, "The metric codes knn_search takes, by name."},
    {"knn_kernel", py_knn_kernel, METH_NOARGS,
     "Name of the uint8 distance kernel picked for this CPU ('amx' means AMX-INT8 tiles for "
     "the dot products, 'avx512' AVX-512 VNNI)."},
    {NULL, NULL, 0, NULL}};
