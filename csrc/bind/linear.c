/* bind/linear.c: the binding of softmax regression (linear/linear.h): logits and one SGD
 * epoch. Checks and converts only; the arithmetic is in csrc/linear/. */
#include "bind/bind.h"
#include "linear/linear.h"

static PyObject *py_linear_forward(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "w", "b", "proba", "nthreads", NULL};
    PyObject *xo, *wo, *bo, *result = NULL;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *out = NULL;
    int proba = 0, nthreads = 0, status = FM_OK;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|pi", kwlist, &xo, &wo, &bo, &proba, &nthreads))
        return NULL;
    if (!(x = fm_bind_as_array(xo, NPY_FLOAT32, 2, "x")) || !(w = fm_bind_as_array(wo, NPY_FLOAT32, 2, "w")) ||
        !(b = fm_bind_as_array(bo, NPY_FLOAT32, 1, "b")))
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
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
    result = (PyObject *)out;
    out = NULL;
fail:
    Py_XDECREF(x); Py_XDECREF(w); Py_XDECREF(b); Py_XDECREF(out);
    return result;
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
    if (fm_bind_check_inout(wo, NPY_FLOAT32, 2, "w") || fm_bind_check_inout(bo, NPY_FLOAT32, 1, "b") ||
        fm_bind_check_inout(vwo, NPY_FLOAT32, 2, "vw") || fm_bind_check_inout(vbo, NPY_FLOAT32, 1, "vb"))
        return NULL;
    PyArrayObject *w = (PyArrayObject *)wo, *b = (PyArrayObject *)bo;
    int64_t k = PyArray_DIM(w, 0), d = PyArray_DIM(w, 1);
    if (!(x = fm_bind_as_array(xo, NPY_FLOAT32, 2, "x")) || !(y = fm_bind_as_array(yo, NPY_INT64, 1, "y")) ||
        !(order = fm_bind_as_array(oo, NPY_INT64, 1, "order")) || !(lr = fm_bind_as_array(lro, NPY_FLOAT32, 1, "lr")))
        goto fail;
    if (swo != Py_None && (!(sw = fm_bind_as_array(swo, NPY_FLOAT32, 1, "sample_weight")) ||
                           fm_bind_check_weights(sw, "sample_weight")))
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
    if (fm_bind_check_range(yp, n, k, "y") || fm_bind_check_range(op, m, n, "order")) goto fail;
    double loss = 0.0;
    int64_t correct = 0;
    float *wp = PyArray_DATA(w), *bp = PyArray_DATA(b), *vwp = PyArray_DATA((PyArrayObject *)vwo),
          *vbp = PyArray_DATA((PyArrayObject *)vbo);
    const float *xp = PyArray_DATA(x), *swp = sw ? PyArray_DATA(sw) : NULL, *lrp = PyArray_DATA(lr);
    Py_BEGIN_ALLOW_THREADS
    status = fm_linear_sgd_epoch(wp, bp, vwp, vbp, &loss, &correct, xp, yp, swp, op, lrp, n, m, d,
                                 k, batch, momentum, nesterov, alpha, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
    result = Py_BuildValue("dL", loss, (long long)correct);
fail:
    Py_XDECREF(x); Py_XDECREF(y); Py_XDECREF(sw); Py_XDECREF(order); Py_XDECREF(lr);
    return result;
}

PyMethodDef fm_bind_linear_methods[] = {
    {"linear_forward", (PyCFunction)(void (*)(void))py_linear_forward, METH_VARARGS | METH_KEYWORDS,
     "linear_forward(x, w, b, proba=False, nthreads=0): logits x w^T + b, or their softmax."},
    {"linear_sgd_epoch", (PyCFunction)(void (*)(void))py_linear_sgd_epoch,
     METH_VARARGS | METH_KEYWORDS,
     "One SGD pass of softmax regression over x[order]; updates w, b, vw, vb in place and "
     "returns (weighted loss sum, correct count)."},
    {NULL, NULL, 0, NULL}};
