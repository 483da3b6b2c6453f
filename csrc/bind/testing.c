/* bind/testing.c: entry points that only tests and benchmarks call: one GEMM, one
 * convolution's forward and backward, a convolution's chunk size, the tree kernel's name.
 * No estimator uses them; they expose single kernels (and their naive twins) so each can be
 * checked against a reference and timed. */
#include <string.h>

#include "bind/bind.h"
#include "core/gemm.h"
#include "nn/conv.h"
#include "nn/winograd.h"
#include "trees/tree.h"

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
    if (fm_bind_parse_kernel(kname, &naive, &kernel) < 0) goto fail;
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
    if (status != FM_OK) { fm_bind_raise_kernel(status, kname); goto fail; }
    result = (PyObject *)c;
    c = NULL;
fail:
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(c);
    return result;
}

static PyObject *py_tree_kernel(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyUnicode_FromString(fm_gemm_kernel_name(fm_tree_best_kernel()));
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
    if (fm_bind_parse_kernel(kname, &naive, &kernel) < 0) goto fail;
    if (naive) {
        PyErr_SetString(PyExc_ValueError, "conv2d has no naive kernel");
        goto fail;
    }
    if (!(x = fm_bind_as_array(xo, NPY_FLOAT32, 4, "x")) || !(w = fm_bind_as_array(wo, NPY_FLOAT32, 4, "w")) ||
        !(b = fm_bind_as_array(bo, NPY_FLOAT32, 1, "b")) || !(dy = fm_bind_as_array(dyo, NPY_FLOAT32, 4, "dy")))
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
        if (!four || fm_bind_check_inout(o[0], NPY_FLOAT32, 4, "out's y") < 0 ||
            (input_grad ? fm_bind_check_inout(o[1], NPY_FLOAT32, 4, "out's dx") < 0 : o[1] != Py_None) ||
            fm_bind_check_inout(o[2], NPY_FLOAT32, 4, "out's dw") < 0 ||
            fm_bind_check_inout(o[3], NPY_FLOAT32, 1, "out's db") < 0 ||
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
    if (status != FM_OK) { fm_bind_raise_kernel(status, kname); goto fail; }
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

/* Every docstring ends "For tests" or "For tests and benchmarks": no estimator calls these. */
PyMethodDef fm_bind_testing_methods[] = {
    {"gemm", (PyCFunction)(void (*)(void))py_gemm, METH_VARARGS | METH_KEYWORDS,
     "gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1, beta=0, kernel='auto', "
     "nthreads=0): c = alpha op(a) op(b) + beta c in float32; returns c. For tests and "
     "benchmarks."},
    {"tree_kernel", py_tree_kernel, METH_NOARGS,
     "Name of the tree lane-scan kernel picked for this CPU. For tests."},
    {"conv2d", (PyCFunction)(void (*)(void))py_conv2d, METH_VARARGS | METH_KEYWORDS,
     "conv2d(x, w, b, dy, stride=1, pad_h=0, pad_w=0, input_grad=True, kernel='auto', "
     "nthreads=0, algorithm='auto', out=None): one convolution's (y, dx, dw, db), channels last (dx None "
     "without input_grad); kernel picks the family ('portable', 'avx2', 'avx512') of the "
     "single-channel direct path and of Winograd's transforms; algorithm forces 'im2col' (the "
     "direct path for one channel) or 'winograd' (3x3 stride-1 windows only); out, the "
     "(y, dx, dw, db) of an earlier call of the same shapes, is overwritten and returned "
     "instead of fresh arrays (for timings without page faults; it must not share memory "
     "with the inputs). For tests and benchmarks."},
    {"conv_chunk", (PyCFunction)py_conv_chunk, METH_VARARGS,
     "conv_chunk(out_h, out_w, in_c, kh, kw, filters, n): samples per chunk (one GEMM, or "
     "Winograd's 16 for 3x3 windows over several channels) "
     "of a convolution over a batch of n. For tests."},
    {NULL, NULL, 0, NULL}};
