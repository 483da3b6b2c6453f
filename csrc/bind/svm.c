/* bind/svm.c: the binding of kernel SVMs (svm/svm.h): the one-vs-one fit, decision values,
 * and kernel blocks for tests. Checks and converts only; the solver is in csrc/svm/. */
#include <string.h>

#include "bind/bind.h"
#include "core/gemm.h"
#include "svm/svm.h"

/* kernel name -> fm_svm_kernel_params, with the parameters checked */
static int parse_kernel(fm_svm_kernel_params *kp, const char *name, double gamma, double coef0,
                        long long degree)
{
    static const struct { const char *name; enum fm_svm_kernel k; } table[] = {
        {"linear", FM_SVM_LINEAR}, {"poly", FM_SVM_POLY}, {"rbf", FM_SVM_RBF}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0) {
            if (!(gamma >= 0.0) || !(coef0 == coef0) || degree < 0) {
                PyErr_SetString(PyExc_ValueError, "gamma must be >= 0 and degree >= 0");
                return -1;
            }
            *kp = (fm_svm_kernel_params){table[i].k, gamma, coef0, degree};
            return 0;
        }
    PyErr_Format(PyExc_ValueError, "kernel must be 'linear', 'poly' or 'rbf', got '%s'", name);
    return -1;
}

/* control: None or a writeable int64 array [stop, pairs done] shared with a waiting thread */
static int parse_control(PyObject *ctlo, int64_t **ctl)
{
    *ctl = NULL;
    if (ctlo == Py_None) return 0;
    if (fm_bind_check_inout(ctlo, NPY_INT64, 1, "control")) return -1;
    if (PyArray_DIM((PyArrayObject *)ctlo, 0) != 2) {
        PyErr_SetString(PyExc_ValueError, "control must have 2 entries");
        return -1;
    }
    *ctl = PyArray_DATA((PyArrayObject *)ctlo);
    return 0;
}

static PyObject *py_svm_fit(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "count", "cbound", "kernel", "gamma", "coef0", "degree", "tol",
                             "cache_bytes", "max_iter", "shrinking", "nthreads", "control",
                             "byte_scale", NULL};
    PyObject *xo, *co, *cbo, *ctlo = Py_None, *result = NULL;
    PyArrayObject *x = NULL, *count = NULL, *cbound = NULL, *coef = NULL, *rho = NULL,
                  *obj = NULL, *n_iter = NULL, *rows = NULL;
    const char *kname;
    double gamma, coef0, tol, byte_scale = 1.0;
    long long degree, cache_bytes, max_iter;
    int shrinking, nthreads = 0, status;
    fm_svm_params p = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOsddLdLLp|iOd", kwlist, &xo, &co, &cbo, &kname,
                                     &gamma, &coef0, &degree, &tol, &cache_bytes, &max_iter,
                                     &shrinking, &nthreads, &ctlo, &byte_scale))
        return NULL;
    int64_t *ctl;
    if (parse_kernel(&p.k, kname, gamma, coef0, degree) || parse_control(ctlo, &ctl)) return NULL;
    if (!(tol > 0.0) || cache_bytes < 0 || max_iter < -1) {
        PyErr_SetString(PyExc_ValueError, "svm_fit: tol must be > 0, cache_bytes >= 0, max_iter >= -1");
        return NULL;
    }
    /* uint8 rows stand for byte_scale * x (svm.h: fm_svm_rows); anything else is float32 */
    int bytes = PyArray_Check(xo) && PyArray_TYPE((PyArrayObject *)xo) == NPY_UINT8;
    if (bytes && !(byte_scale > 0.0 && byte_scale < 1e30)) {
        PyErr_SetString(PyExc_ValueError, "byte_scale must be finite and > 0");
        return NULL;
    }
    if (!(x = fm_bind_as_array(xo, bytes ? NPY_UINT8 : NPY_FLOAT32, 2, "x")) ||
        !(count = fm_bind_as_vector(co, NPY_INT64, -1, "count")))
        goto fail;
    int64_t n = PyArray_DIM(x, 0), d = PyArray_DIM(x, 1), k = PyArray_DIM(count, 0), total = 0;
    if (!(cbound = fm_bind_as_vector(cbo, NPY_FLOAT64, n, "cbound"))) goto fail;
    const int64_t *cp = PyArray_DATA(count);
    for (int64_t c = 0; c < k; c++) {
        if (cp[c] < 1) { PyErr_SetString(PyExc_ValueError, "every class needs a row"); goto fail; }
        total += cp[c];
    }
    if (k < 2 || total != n || d < 1) {
        PyErr_SetString(PyExc_ValueError, "svm_fit: count must cover x's rows, with 2 classes or more");
        goto fail;
    }
    const double *cbp = PyArray_DATA(cbound);
    for (int64_t i = 0; i < n; i++)
        if (!(cbp[i] > 0.0) || cbp[i] > 1e300) {
            PyErr_SetString(PyExc_ValueError, "cbound must be finite and > 0");
            goto fail;
        }
    if (!bytes && fm_bind_check_finite(PyArray_DATA(x), n * d, "x")) goto fail;
    npy_intp cdims[1] = {(k - 1) * n}, pdims[1] = {k * (k - 1) / 2}, rdims[2] = {k * (k - 1) / 2, 2};
    if (!(coef = (PyArrayObject *)PyArray_ZEROS(1, cdims, NPY_FLOAT64, 0)) ||
        !(rho = (PyArrayObject *)PyArray_ZEROS(1, pdims, NPY_FLOAT64, 0)) ||
        !(obj = (PyArrayObject *)PyArray_ZEROS(1, pdims, NPY_FLOAT64, 0)) ||
        !(n_iter = (PyArrayObject *)PyArray_ZEROS(1, pdims, NPY_INT64, 0)) ||
        !(rows = (PyArrayObject *)PyArray_ZEROS(2, rdims, NPY_INT64, 0)))
        goto fail;
    p.tol = tol;
    p.cache_bytes = cache_bytes;
    p.max_iter = max_iter;
    p.shrinking = shrinking;
    p.stop = ctl;
    p.done = ctl ? ctl + 1 : NULL;
    double *coefp = PyArray_DATA(coef), *rhop = PyArray_DATA(rho), *objp = PyArray_DATA(obj);
    int64_t *itp = PyArray_DATA(n_iter), *rowp = PyArray_DATA(rows);
    fm_svm_rows xr = {.x = bytes ? NULL : PyArray_DATA(x), .xb = bytes ? PyArray_DATA(x) : NULL,
                      .byte_scale = byte_scale};
    Py_BEGIN_ALLOW_THREADS
    status = fm_svm_fit_ovo(coefp, rhop, objp, itp, rowp, xr, cp, cbp, n, d, k, &p, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
    result = Py_BuildValue("OOOOO", coef, rho, obj, n_iter, rows);
fail:
    Py_XDECREF(x); Py_XDECREF(count); Py_XDECREF(cbound); Py_XDECREF(coef); Py_XDECREF(rho);
    Py_XDECREF(obj); Py_XDECREF(n_iter); Py_XDECREF(rows);
    return result;
}

static PyObject *py_svm_decision(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "sv", "coef", "sv_start", "rho", "kernel", "gamma", "coef0",
                             "degree", "nthreads", "control", "byte_scale", NULL};
    PyObject *xo, *svo, *co, *sso, *ro, *ctlo = Py_None, *result = NULL;
    PyArrayObject *x = NULL, *sv = NULL, *coef = NULL, *sv_start = NULL, *rho = NULL, *dec = NULL;
    const char *kname;
    double gamma, coef0, byte_scale = 1.0;
    long long degree;
    int nthreads = 0, status;
    fm_svm_params p = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOsddL|iOd", kwlist, &xo, &svo, &co, &sso, &ro,
                                     &kname, &gamma, &coef0, &degree, &nthreads, &ctlo,
                                     &byte_scale))
        return NULL;
    int64_t *ctl;
    if (parse_kernel(&p.k, kname, gamma, coef0, degree) || parse_control(ctlo, &ctl)) return NULL;
    p.stop = ctl;
    /* uint8 x and sv stand for byte_scale times themselves, as in svm_fit */
    int bytes = PyArray_Check(xo) && PyArray_TYPE((PyArrayObject *)xo) == NPY_UINT8;
    if (bytes != (PyArray_Check(svo) && PyArray_TYPE((PyArrayObject *)svo) == NPY_UINT8)) {
        PyErr_SetString(PyExc_TypeError, "svm_decision: x and sv must both be uint8 or neither");
        return NULL;
    }
    if (bytes && !(byte_scale > 0.0 && byte_scale < 1e30)) {
        PyErr_SetString(PyExc_ValueError, "byte_scale must be finite and > 0");
        return NULL;
    }
    int npy = bytes ? NPY_UINT8 : NPY_FLOAT32;
    if (!(x = fm_bind_as_array(xo, npy, 2, "x")) || !(sv = fm_bind_as_array(svo, npy, 2, "sv")) ||
        !(coef = fm_bind_as_array(co, NPY_FLOAT64, 2, "coef")) ||
        !(sv_start = fm_bind_as_vector(sso, NPY_INT64, -1, "sv_start")))
        goto fail;
    int64_t m = PyArray_DIM(x, 0), d = PyArray_DIM(x, 1), nsv = PyArray_DIM(sv, 0);
    int64_t k = PyArray_DIM(sv_start, 0) - 1;
    if (k < 2 || PyArray_DIM(sv, 1) != d || PyArray_DIM(coef, 0) != k - 1 || PyArray_DIM(coef, 1) != nsv) {
        PyErr_SetString(PyExc_ValueError, "svm_decision: x (m, d), sv (nsv, d), coef (k - 1, nsv) "
                        "and sv_start (k + 1) do not match");
        goto fail;
    }
    if (bytes && d > 32768) {
        PyErr_SetString(PyExc_ValueError, "svm_decision: byte rows longer than 32,768 overflow int32");
        goto fail;
    }
    const int64_t *ssp = PyArray_DATA(sv_start);
    for (int64_t c = 0; c < k; c++)
        if (ssp[0] != 0 || ssp[c + 1] < ssp[c] || ssp[k] != nsv) {
            PyErr_SetString(PyExc_ValueError, "sv_start must rise from 0 to the number of SVs");
            goto fail;
        }
    if (!(rho = fm_bind_as_vector(ro, NPY_FLOAT64, k * (k - 1) / 2, "rho"))) goto fail;
    npy_intp ddims[2] = {m, k * (k - 1) / 2};
    if (!(dec = (PyArrayObject *)PyArray_EMPTY(2, ddims, NPY_FLOAT64, 0))) goto fail;
    double *dp = PyArray_DATA(dec);
    fm_svm_rows xr = {.x = bytes ? NULL : PyArray_DATA(x), .xb = bytes ? PyArray_DATA(x) : NULL,
                      .byte_scale = byte_scale};
    fm_svm_rows svr = {.x = bytes ? NULL : PyArray_DATA(sv), .xb = bytes ? PyArray_DATA(sv) : NULL,
                       .byte_scale = byte_scale};
    const double *cp = PyArray_DATA(coef), *rp = PyArray_DATA(rho);
    Py_BEGIN_ALLOW_THREADS
    status = fm_svm_decision(dp, xr, svr, cp, ssp, rp, m, nsv, d, k, &p, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
    result = (PyObject *)dec;
    dec = NULL;
fail:
    Py_XDECREF(x); Py_XDECREF(sv); Py_XDECREF(coef); Py_XDECREF(sv_start); Py_XDECREF(rho);
    Py_XDECREF(dec);
    return result;
}

static PyObject *py_svm_kernel(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"a", "b", "kernel", "gamma", "coef0", "degree", "naive", "float64",
                             NULL};
    PyObject *ao, *bo, *result = NULL;
    PyArrayObject *a = NULL, *b = NULL, *out = NULL;
    const char *kname;
    double gamma, coef0;
    long long degree;
    int naive = 0, f64 = 0, status = FM_OK;
    fm_svm_kernel_params kp;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOsddL|pp", kwlist, &ao, &bo, &kname, &gamma,
                                     &coef0, &degree, &naive, &f64))
        return NULL;
    if (parse_kernel(&kp, kname, gamma, coef0, degree)) return NULL;
    if (!(a = fm_bind_as_array(ao, NPY_FLOAT32, 2, "a")) || !(b = fm_bind_as_array(bo, NPY_FLOAT32, 2, "b")))
        goto fail;
    int64_t m = PyArray_DIM(a, 0), n = PyArray_DIM(b, 0), d = PyArray_DIM(a, 1);
    if (PyArray_DIM(b, 1) != d) { PyErr_SetString(PyExc_ValueError, "a and b differ in width"); goto fail; }
    npy_intp dims[2] = {m, n};
    if (!(out = (PyArrayObject *)PyArray_EMPTY(2, dims, naive || f64 ? NPY_FLOAT64 : NPY_FLOAT32, 0)))
        goto fail;
    void *na = PyMem_Malloc((size_t)(m + n + 1) * sizeof(double));
    if (!na) { PyErr_NoMemory(); goto fail; }
    const float *ap = PyArray_DATA(a), *bp = PyArray_DATA(b);
    Py_BEGIN_ALLOW_THREADS
    if (naive) {
        fm_svm_kernel_naive(PyArray_DATA(out), n, ap, bp, m, n, d, &kp);
    } else if (f64) { /* the decision values' kernel: rows of a against b */
        double *n64 = na, *op = PyArray_DATA(out);
        fm_svm_sq_norms64(n64, ap, m, d);
        fm_svm_sq_norms64(n64 + m, bp, n, d);
        status = fm_svm_dots64(op, n, ap, bp, m, n, d, FM_KERNEL_AUTO);
        for (int64_t i = 0; status == FM_OK && i < m; i++)
            fm_svm_map64(op + i * n, n64 + m, n64[i], n, &kp);
    } else {
        float *n32 = na;
        fm_svm_sq_norms(n32, ap, m, d);
        fm_svm_sq_norms(n32 + m, bp, n, d);
        status = fm_svm_kernel_block(PyArray_DATA(out), n, ap, n32, bp, n32 + m, m, n, d, &kp);
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(na);
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
    result = (PyObject *)out;
    out = NULL;
fail:
    Py_XDECREF(a); Py_XDECREF(b); Py_XDECREF(out);
    return result;
}

static PyObject *py_svm_dots(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"a", "b", "kernel", "float64", NULL};
    PyObject *ao, *bo, *result = NULL;
    PyArrayObject *a = NULL, *b = NULL, *out = NULL;
    const char *kname = "auto";
    int naive, status, f64 = 0;
    enum fm_kernel kernel = FM_KERNEL_AUTO;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|sp", kwlist, &ao, &bo, &kname, &f64)) return NULL;
    if (fm_bind_parse_kernel(kname, &naive, &kernel) < 0) return NULL;
    if (naive) { PyErr_SetString(PyExc_ValueError, "svm_dots has no naive kernel"); return NULL; }
    if (!(a = fm_bind_as_array(ao, NPY_FLOAT32, 2, "a")) || !(b = fm_bind_as_array(bo, NPY_FLOAT32, 2, "b")))
        goto fail;
    int64_t m = PyArray_DIM(a, 0), n = PyArray_DIM(b, 0), d = PyArray_DIM(a, 1);
    if (PyArray_DIM(b, 1) != d) { PyErr_SetString(PyExc_ValueError, "a and b differ in width"); goto fail; }
    npy_intp dims[2] = {m, n};
    if (!(out = (PyArrayObject *)PyArray_EMPTY(2, dims, f64 ? NPY_FLOAT64 : NPY_FLOAT32, 0))) goto fail;
    void *op = PyArray_DATA(out);
    const float *ap = PyArray_DATA(a), *bp = PyArray_DATA(b);
    Py_BEGIN_ALLOW_THREADS
    status = f64 ? fm_svm_dots64(op, n, ap, bp, m, n, d, kernel)
                 : fm_svm_dots(op, n, ap, bp, m, n, d, kernel);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { fm_bind_raise_kernel(status, kname); goto fail; }
    result = (PyObject *)out;
    out = NULL;
fail:
    Py_XDECREF(a); Py_XDECREF(b); Py_XDECREF(out);
    return result;
}

static PyObject *py_svm_exp(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "kernel", NULL};
    PyObject *xo, *result = NULL;
    PyArrayObject *out = NULL;
    const char *kname = "auto";
    int naive, status;
    enum fm_kernel kernel = FM_KERNEL_AUTO;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|s", kwlist, &xo, &kname)) return NULL;
    if (fm_bind_parse_kernel(kname, &naive, &kernel) < 0) return NULL;
    if (naive) { PyErr_SetString(PyExc_ValueError, "svm_exp has no naive kernel"); return NULL; }
    if (!(out = (PyArrayObject *)PyArray_FROM_OTF(xo, NPY_FLOAT64, NPY_ARRAY_ENSURECOPY |
                                                  NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED)))
        return NULL;
    double *op = PyArray_DATA(out);
    int64_t n = PyArray_SIZE(out);
    for (int64_t t = 0; t < n; t++)
        if (!(op[t] <= 0.0)) {
            PyErr_SetString(PyExc_ValueError, "svm_exp takes x <= 0");
            goto fail;
        }
    Py_BEGIN_ALLOW_THREADS
    status = fm_svm_exp64(op, n, kernel);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { fm_bind_raise_kernel(status, kname); goto fail; }
    result = (PyObject *)out;
    out = NULL;
fail:
    Py_XDECREF(out);
    return result;
}

static PyObject *py_svm_dots_kernel(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyUnicode_FromString(fm_gemm_kernel_name(fm_svm_dots_best()));
}

static PyObject *py_svm_rbf_row(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"dot", "qsq", "xsq", "col", "y", "yi", "g2", "kernel", NULL};
    PyObject *doto, *xsqo, *colo, *yo, *result = NULL;
    PyArrayObject *dot = NULL, *xsq = NULL, *col = NULL, *y = NULL, *out = NULL;
    const char *kname = "auto";
    int qsq, yi, naive, status;
    double g2;
    enum fm_kernel kernel = FM_KERNEL_AUTO;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OiOOOid|s", kwlist, &doto, &qsq, &xsqo, &colo,
                                     &yo, &yi, &g2, &kname))
        return NULL;
    if (fm_bind_parse_kernel(kname, &naive, &kernel) < 0) return NULL;
    if (naive) { PyErr_SetString(PyExc_ValueError, "svm_rbf_row has no naive kernel"); return NULL; }
    if (!(dot = fm_bind_as_vector(doto, NPY_INT32, -1, "dot")) ||
        !(xsq = fm_bind_as_vector(xsqo, NPY_INT32, PyArray_DIM(dot, 0), "xsq")) ||
        !(col = fm_bind_as_vector(colo, NPY_INT64, -1, "col")))
        goto fail;
    int64_t len = PyArray_DIM(col, 0), nd = PyArray_DIM(dot, 0);
    if (!(y = fm_bind_as_vector(yo, NPY_INT8, len, "y"))) goto fail;
    const int64_t *cp = PyArray_DATA(col);
    const int32_t *dp = PyArray_DATA(dot), *xp = PyArray_DATA(xsq);
    const int8_t *yp = PyArray_DATA(y);
    for (int64_t t = 0; t < len; t++) {
        int64_t c = cp[t], dist = c >= 0 && c < nd ? (int64_t)qsq + xp[c] - 2 * (int64_t)dp[c] : -1;
        if (dist < 0 || dist > INT32_MAX || (yp[t] != 1 && yp[t] != -1)) {
            PyErr_SetString(PyExc_ValueError, "col must index dot, the distances be in [0, 2^31) "
                                              "and y +1 or -1");
            goto fail;
        }
    }
    if ((yi != 1 && yi != -1) || !(g2 >= 0.0)) {
        PyErr_SetString(PyExc_ValueError, "yi must be +1 or -1 and g2 >= 0");
        goto fail;
    }
    npy_intp dims[1] = {len};
    if (!(out = (PyArrayObject *)PyArray_EMPTY(1, dims, NPY_FLOAT32, 0))) goto fail;
    status = fm_svm_rbf_row(PyArray_DATA(out), dp, qsq, xp, cp, yp, yi, g2, len, kernel);
    if (status != FM_OK) { fm_bind_raise_kernel(status, kname); goto fail; }
    result = (PyObject *)out;
    out = NULL;
fail:
    Py_XDECREF(dot); Py_XDECREF(xsq); Py_XDECREF(col); Py_XDECREF(y); Py_XDECREF(out);
    return result;
}

/* y (n) all +1 or -1 and status (n) enum fm_svm_status, else -1 with ValueError set */
static int check_labels(const int8_t *yp, const int8_t *sp, int64_t n)
{
    for (int64_t t = 0; t < n; t++)
        if ((yp[t] != 1 && yp[t] != -1) || sp[t] < FM_SVM_LOWER || sp[t] > FM_SVM_FREE) {
            PyErr_SetString(PyExc_ValueError, "y must be +1 or -1 and status 0, 1 or 2");
            return -1;
        }
    return 0;
}

static PyObject *py_svm_select_j(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"G", "y", "status", "QD", "Q_i", "yi", "QD_i", "Gmax", "kernel", NULL};
    PyObject *go, *yo, *so, *qdo, *qo, *result = NULL;
    PyArrayObject *G = NULL, *y = NULL, *st = NULL, *QD = NULL, *Q = NULL;
    const char *kname = "auto";
    int yi, naive, status;
    double QD_i, Gmax;
    enum fm_kernel kernel = FM_KERNEL_AUTO;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOidd|s", kwlist, &go, &yo, &so, &qdo, &qo,
                                     &yi, &QD_i, &Gmax, &kname))
        return NULL;
    if (fm_bind_parse_kernel(kname, &naive, &kernel) < 0) return NULL;
    if (naive) { PyErr_SetString(PyExc_ValueError, "svm_select_j has no naive kernel"); return NULL; }
    if (!(G = fm_bind_as_vector(go, NPY_FLOAT64, -1, "G"))) goto fail;
    int64_t n = PyArray_DIM(G, 0);
    if (!(y = fm_bind_as_vector(yo, NPY_INT8, n, "y")) ||
        !(st = fm_bind_as_vector(so, NPY_INT8, n, "status")) ||
        !(QD = fm_bind_as_vector(qdo, NPY_FLOAT64, n, "QD")) ||
        !(Q = fm_bind_as_vector(qo, NPY_FLOAT32, n, "Q_i")))
        goto fail;
    const int8_t *yp = PyArray_DATA(y), *sp = PyArray_DATA(st);
    if (check_labels(yp, sp, n) < 0) goto fail;
    if (yi != 1 && yi != -1) { PyErr_SetString(PyExc_ValueError, "yi must be +1 or -1"); goto fail; }
    fm_svm_pick pk;
    status = fm_svm_select_j(&pk, PyArray_DATA(G), yp, (const char *)sp, PyArray_DATA(QD),
                             PyArray_DATA(Q), yi, QD_i, Gmax, n, kernel);
    if (status != FM_OK) { fm_bind_raise_kernel(status, kname); goto fail; }
    result = Py_BuildValue("Ldd", (long long)pk.j, pk.obj_min, pk.Gmax2);
fail:
    Py_XDECREF(G); Py_XDECREF(y); Py_XDECREF(st); Py_XDECREF(QD); Py_XDECREF(Q);
    return result;
}

static PyObject *py_svm_select_i(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"G", "y", "status", "kernel", NULL};
    PyObject *go, *yo, *so, *result = NULL;
    PyArrayObject *G = NULL, *y = NULL, *st = NULL;
    const char *kname = "auto";
    int naive, status;
    enum fm_kernel kernel = FM_KERNEL_AUTO;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|s", kwlist, &go, &yo, &so, &kname))
        return NULL;
    if (fm_bind_parse_kernel(kname, &naive, &kernel) < 0) return NULL;
    if (naive) { PyErr_SetString(PyExc_ValueError, "svm_select_i has no naive kernel"); return NULL; }
    if (!(G = fm_bind_as_vector(go, NPY_FLOAT64, -1, "G"))) goto fail;
    int64_t n = PyArray_DIM(G, 0), i;
    if (!(y = fm_bind_as_vector(yo, NPY_INT8, n, "y")) ||
        !(st = fm_bind_as_vector(so, NPY_INT8, n, "status")))
        goto fail;
    const int8_t *yp = PyArray_DATA(y), *sp = PyArray_DATA(st);
    if (check_labels(yp, sp, n) < 0) goto fail;
    double Gmax;
    status = fm_svm_select_i(&i, &Gmax, PyArray_DATA(G), yp, (const char *)sp, n, kernel);
    if (status != FM_OK) { fm_bind_raise_kernel(status, kname); goto fail; }
    result = Py_BuildValue("Ld", (long long)i, Gmax);
fail:
    Py_XDECREF(G); Py_XDECREF(y); Py_XDECREF(st);
    return result;
}

static PyObject *py_svm_update_G(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"G", "Q_i", "Q_j", "dai", "daj", "kernel", NULL};
    PyObject *go, *qio, *qjo, *result = NULL;
    PyArrayObject *G = NULL, *Qi = NULL, *Qj = NULL;
    const char *kname = "auto";
    int naive, status;
    double dai, daj;
    enum fm_kernel kernel = FM_KERNEL_AUTO;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOdd|s", kwlist, &go, &qio, &qjo, &dai, &daj,
                                     &kname))
        return NULL;
    if (fm_bind_parse_kernel(kname, &naive, &kernel) < 0) return NULL;
    if (naive) { PyErr_SetString(PyExc_ValueError, "svm_update_G has no naive kernel"); return NULL; }
    if (!(G = fm_bind_as_vector(go, NPY_FLOAT64, -1, "G"))) goto fail;
    int64_t n = PyArray_DIM(G, 0);
    if (!(Qi = fm_bind_as_vector(qio, NPY_FLOAT32, n, "Q_i"))) goto fail;
    if (qjo != Py_None && !(Qj = fm_bind_as_vector(qjo, NPY_FLOAT32, n, "Q_j"))) goto fail;
    npy_intp dims[1] = {(npy_intp)n};
    if (!(result = PyArray_SimpleNew(1, dims, NPY_FLOAT64))) goto fail;
    memcpy(PyArray_DATA((PyArrayObject *)result), PyArray_DATA(G), (size_t)n * sizeof(double));
    status = fm_svm_update_G(PyArray_DATA((PyArrayObject *)result), PyArray_DATA(Qi),
                             Qj ? PyArray_DATA(Qj) : NULL, dai, daj, n, kernel);
    if (status != FM_OK) {
        Py_CLEAR(result);
        fm_bind_raise_kernel(status, kname);
        goto fail;
    }
fail:
    Py_XDECREF(G); Py_XDECREF(Qi); Py_XDECREF(Qj);
    return result;
}

PyMethodDef fm_bind_svm_methods[] = {
    {"svm_fit", (PyCFunction)(void (*)(void))py_svm_fit, METH_VARARGS | METH_KEYWORDS,
     "svm_fit(x, count, cbound, kernel, gamma, coef0, degree, tol, cache_bytes, max_iter, "
     "shrinking, nthreads=0, control=None, byte_scale=1.0): one-vs-one C-SVC on rows grouped "
     "by class (uint8 rows stand for byte_scale * x, float32 otherwise); returns "
     "(coef, rho, obj, n_iter, rows) as fm_svm_fit_ovo describes them."},
    {"svm_decision", (PyCFunction)(void (*)(void))py_svm_decision, METH_VARARGS | METH_KEYWORDS,
     "svm_decision(x, sv, coef, sv_start, rho, kernel, gamma, coef0, degree, nthreads=0, "
     "control=None, byte_scale=1.0): (m, n_pairs) one-vs-one decision values (x and sv both "
     "uint8: byte_scale times themselves, the kernel from exact integer dot products)."},
    {"svm_kernel_values", (PyCFunction)(void (*)(void))py_svm_kernel, METH_VARARGS | METH_KEYWORDS,
     "svm_kernel_values(a, b, kernel, gamma, coef0, degree, naive=False, float64=False): "
     "K(a_i, b_j): the solver's float32 block, the decision values' float64 one, or a naive "
     "float64 loop (for tests)."},
    {"svm_dots_kernel", py_svm_dots_kernel, METH_NOARGS,
     "Name of the solver's dot kernel picked for this CPU."},
    {"svm_dots", (PyCFunction)(void (*)(void))py_svm_dots, METH_VARARGS | METH_KEYWORDS,
     "svm_dots(a, b, kernel='auto', float64=False): a b^T by the solver's dot kernel, or the "
     "decision values' float64 one ('portable', 'avx512'; for tests)."},
    {"svm_exp", (PyCFunction)(void (*)(void))py_svm_exp, METH_VARARGS | METH_KEYWORDS,
     "svm_exp(x, kernel='auto'): e^x in float64 for x <= 0, the decision values' rbf "
     "('portable', 'avx512'; for tests)."},
    {"svm_rbf_row", (PyCFunction)(void (*)(void))py_svm_rbf_row, METH_VARARGS | METH_KEYWORDS,
     "svm_rbf_row(dot, qsq, xsq, col, y, yi, g2, kernel='auto'): yi y[t] exp(-g2 (qsq + "
     "xsq[c] - 2 dot[c])), c = col[t], the byte rows' Q row ('portable', 'avx512'; for tests)."},
    {"svm_select_j", (PyCFunction)(void (*)(void))py_svm_select_j, METH_VARARGS | METH_KEYWORDS,
     "svm_select_j(G, y, status, QD, Q_i, yi, QD_i, Gmax, kernel='auto'): (j, obj_min, Gmax2), "
     "the working-set selection's scan for j ('portable', 'avx512'; for tests)."},
    {"svm_select_i", (PyCFunction)(void (*)(void))py_svm_select_i, METH_VARARGS | METH_KEYWORDS,
     "svm_select_i(G, y, status, kernel='auto'): (i, Gmax), the working-set selection's scan "
     "for i ('portable', 'avx512'; for tests)."},
    {"svm_update_G", (PyCFunction)(void (*)(void))py_svm_update_G, METH_VARARGS | METH_KEYWORDS,
     "svm_update_G(G, Q_i, Q_j, dai, daj, kernel='auto'): a copy of G plus dai Q_i + daj Q_j "
     "(Q_j None: plus dai Q_i), the solver's gradient update ('portable', 'avx512'; for "
     "tests)."},
    {NULL, NULL, 0, NULL}};
