/* bind/boost.c: the binding of gradient boosting (trees/boost.h): a fit's state as a
 * capsule that holds the binned data and the scratch, one call per round, and prediction
 * of flat boosted trees; the histogram and scan kernels alone, for their tests. Checks and
 * converts only. */
#include <string.h>

#include "bind/bind.h"
#include "trees/boost.h"
#include "trees/boost_hist.h"
#include "trees/forest.h"

/* A fit in progress: the arrays its rounds read (references held) and the kernel scratch. */
typedef struct {
    fm_boost_work *work;
    PyArrayObject *codes, *code_rows, *edges, *n_edges, *y, *sw;
    int64_t n, d, k, num_leaves;
} boost_state;

static const char CAPSULE[] = "fmnist_c.boost_state";

static void state_free(boost_state *s)
{
    if (!s) return;
    fm_boost_work_free(s->work);
    Py_XDECREF(s->codes); Py_XDECREF(s->code_rows); Py_XDECREF(s->edges); Py_XDECREF(s->n_edges); Py_XDECREF(s->y);
    Py_XDECREF(s->sw);
    PyMem_Free(s);
}

static void capsule_free(PyObject *cap) { state_free(PyCapsule_GetPointer(cap, CAPSULE)); }

/* 0 if every code_rows[i, f] <= n_edges[f], else -1 with a ValueError. */
static int check_codes(const uint8_t *code_rows, const int64_t *n_edges, int64_t n, int64_t d)
{
    uint8_t *hi = PyMem_Calloc((size_t)d, 1);
    if (!hi) { PyErr_NoMemory(); return -1; }
    for (int64_t i = 0; i < n; i++)
        for (int64_t f = 0; f < d; f++) {
            uint8_t c = code_rows[i * d + f];
            hi[f] = c > hi[f] ? c : hi[f];
        }
    int64_t bad = -1;
    for (int64_t f = 0; f < d && bad < 0; f++)
        if (hi[f] > n_edges[f]) bad = f;
    PyMem_Free(hi);
    if (bad < 0) return 0;
    PyErr_Format(PyExc_ValueError, "codes of feature %lld exceed its %lld bins", (long long)bad,
                 (long long)n_edges[bad] + 1);
    return -1;
}

static PyObject *py_boost_start(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"codes", "code_rows", "edges", "n_edges", "y", "sample_weight",
                             "n_classes", "num_leaves", "root_pass", "nthreads", NULL};
    PyObject *co, *cro, *eo, *neo, *yo, *swo, *cap = NULL;
    long long k, num_leaves;
    int root_pass = 1, nthreads = 0;
    boost_state *s = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOLL|pi", kwlist, &co, &cro, &eo, &neo, &yo,
                                     &swo, &k, &num_leaves, &root_pass, &nthreads))
        return NULL;
    if (!(s = PyMem_Calloc(1, sizeof *s))) return PyErr_NoMemory();
    if (!(s->codes = fm_bind_as_array(co, NPY_UINT8, 2, "codes")) ||
        !(s->code_rows = fm_bind_as_array(cro, NPY_UINT8, 2, "code_rows")) ||
        !(s->edges = fm_bind_as_array(eo, NPY_FLOAT32, 2, "edges")))
        goto fail;
    s->d = PyArray_DIM(s->codes, 0);
    s->n = PyArray_DIM(s->codes, 1);
    s->k = k;
    s->num_leaves = num_leaves;
    int64_t stride = PyArray_DIM(s->edges, 1);
    if (s->n < 1 || s->d < 1 || PyArray_DIM(s->edges, 0) != s->d || stride > 255 ||
        PyArray_DIM(s->code_rows, 0) != s->n || PyArray_DIM(s->code_rows, 1) != s->d) {
        PyErr_SetString(PyExc_ValueError, "codes must be (d, n), code_rows (n, d) and edges "
                        "(d, <= 255), n, d >= 1");
        goto fail;
    }
    if (k < 2 || k > 256 || num_leaves < 2 || num_leaves > (1LL << 30)) {
        PyErr_SetString(PyExc_ValueError, "n_classes must be in [2, 256], num_leaves >= 2");
        goto fail;
    }
    if (!(s->n_edges = fm_bind_as_vector(neo, NPY_INT64, s->d, "n_edges")) ||
        !(s->y = fm_bind_as_vector(yo, NPY_INT64, s->n, "y")))
        goto fail;
    if (swo != Py_None && !(s->sw = fm_bind_as_vector(swo, NPY_FLOAT32, s->n, "sample_weight")))
        goto fail;
    if (fm_bind_check_range(PyArray_DATA(s->n_edges), s->d, stride + 1, "n_edges") ||
        fm_bind_check_range(PyArray_DATA(s->y), s->n, k, "y") ||
        (s->sw && fm_bind_check_weights(s->sw, "sample_weight")))
        goto fail;
    /* every row-major code inside its feature's bins: the histograms are indexed by them
     * (codes, read only in comparisons, need no check) */
    const int64_t *ne = PyArray_DATA(s->n_edges);
    if (check_codes(PyArray_DATA(s->code_rows), ne, s->n, s->d)) goto fail;
    int64_t n = s->n, d = s->d;
    Py_BEGIN_ALLOW_THREADS
    s->work = fm_boost_work_new(ne, n, d, k, num_leaves, root_pass, nthreads);
    Py_END_ALLOW_THREADS
    if (!s->work) { PyErr_NoMemory(); goto fail; }
    if (!(cap = PyCapsule_New(s, CAPSULE, capsule_free))) goto fail;
    return cap;
fail:
    state_free(s);
    return NULL;
}

/* The k trees of a round as (n_nodes (k), left, right, feature, bin, count, threshold, value,
 * gain, hess), each (k, 2 num_leaves - 1); fill the fm_boost_tree views of them. */
static int tree_arrays(fm_boost_tree *trees, int64_t k, int64_t cap, PyArrayObject **a)
{
    npy_intp dims[2] = {k, cap};
    int types[10] = {NPY_INT64, NPY_INT64, NPY_INT64, NPY_INT64, NPY_INT64, NPY_INT64,
                     NPY_FLOAT32, NPY_FLOAT32, NPY_FLOAT64, NPY_FLOAT64};
    for (int j = 0; j < 10; j++)
        if (!(a[j] = (PyArrayObject *)PyArray_ZEROS(j == 0 ? 1 : 2, dims, types[j], 0))) return -1;
    for (int64_t c = 0; c < k; c++) {
        trees[c] = (fm_boost_tree){(int64_t *)PyArray_DATA(a[1]) + c * cap,
                                   (int64_t *)PyArray_DATA(a[2]) + c * cap,
                                   (int64_t *)PyArray_DATA(a[3]) + c * cap,
                                   (int64_t *)PyArray_DATA(a[4]) + c * cap,
                                   (int64_t *)PyArray_DATA(a[5]) + c * cap,
                                   (float *)PyArray_DATA(a[6]) + c * cap,
                                   (float *)PyArray_DATA(a[7]) + c * cap,
                                   (double *)PyArray_DATA(a[8]) + c * cap,
                                   (double *)PyArray_DATA(a[9]) + c * cap, 0};
    }
    return 0;
}

/* A kernel name -> FM_KERNEL_PORTABLE or FM_KERNEL_AVX512 ("auto": the best); -1 with the
 * exception set for another family or one this CPU lacks. */
static int boost_kernel(const char *kname, enum fm_kernel *kernel)
{
    int naive;
    if (fm_bind_parse_kernel(kname, &naive, kernel) < 0) return -1;
    if (*kernel == FM_KERNEL_AUTO) *kernel = fm_boost_best_kernel();
    if (naive || *kernel == FM_KERNEL_AVX2 ||
        (*kernel == FM_KERNEL_AVX512 && fm_boost_best_kernel() != FM_KERNEL_AVX512)) {
        fm_bind_raise_kernel(FM_EINVAL, kname);
        return -1;
    }
    return 0;
}

static PyObject *py_boost_round(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"state", "score", "seed", "round", "num_leaves", "max_depth",
                             "min_child_samples", "min_child_weight", "reg_lambda",
                             "min_split_gain", "learning_rate", "subsample", "colsample_bytree",
                             "colsample_bynode", "nthreads", "control", "kernel", NULL};
    PyObject *capo, *so, *ctlo = Py_None, *result = NULL;
    const char *kname = "auto";
    unsigned long long seed;
    long long round, num_leaves, max_depth, mcs;
    double mcw, lam, msg, lr, sub, cbt, cbn;
    int nthreads = 0, status;
    enum fm_kernel kernel;
    PyArrayObject *a[10] = {NULL};
    fm_boost_tree *trees = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOKLLLLddddddd|iOs", kwlist, &capo, &so, &seed,
                                     &round, &num_leaves, &max_depth, &mcs, &mcw, &lam, &msg, &lr,
                                     &sub, &cbt, &cbn, &nthreads, &ctlo, &kname))
        return NULL;
    boost_state *s = PyCapsule_GetPointer(capo, CAPSULE);
    if (!s) return NULL;
    if (boost_kernel(kname, &kernel) < 0) return NULL;
    if (ctlo != Py_None && (fm_bind_check_inout(ctlo, NPY_INT64, 1, "control") ||
                            PyArray_DIM((PyArrayObject *)ctlo, 0) != 2)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "control must have 2 entries");
        return NULL;
    }
    if (!PyArray_Check(so) || PyArray_TYPE((PyArrayObject *)so) != NPY_FLOAT64 ||
        PyArray_NDIM((PyArrayObject *)so) != 2 || !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)so) ||
        !PyArray_ISWRITEABLE((PyArrayObject *)so) || PyArray_DIM((PyArrayObject *)so, 0) != s->n ||
        PyArray_DIM((PyArrayObject *)so, 1) != s->k) {
        PyErr_SetString(PyExc_ValueError, "score must be a writeable C-contiguous float64 (n, k) array");
        return NULL;
    }
    if (num_leaves < 2 || num_leaves > s->num_leaves || max_depth < 1 || mcs < 1 || !(mcw >= 0.0) ||
        !(lam >= 0.0) || !(msg >= 0.0) || !(lr > 0.0) || !(sub > 0.0 && sub <= 1.0) ||
        !(cbt > 0.0 && cbt <= 1.0) || !(cbn > 0.0 && cbn <= 1.0) || round < 0) {
        PyErr_SetString(PyExc_ValueError, "boost_round: a parameter is out of range");
        return NULL;
    }
    int64_t cap = 2 * num_leaves - 1;
    if (!(trees = PyMem_Calloc((size_t)s->k, sizeof *trees))) return PyErr_NoMemory();
    if (tree_arrays(trees, s->k, cap, a) < 0) goto fail;
    int64_t *ctl = ctlo != Py_None ? PyArray_DATA((PyArrayObject *)ctlo) : NULL;
    fm_boost_params p = {num_leaves, max_depth, mcs, mcw, lam, msg, lr, sub, cbt, cbn, ctl, kernel};
    double *score = PyArray_DATA((PyArrayObject *)so);
    const float *swp = s->sw ? PyArray_DATA(s->sw) : NULL;
    Py_BEGIN_ALLOW_THREADS
    status = fm_boost_round(trees, score, s->work, PyArray_DATA(s->codes),
                            PyArray_DATA(s->code_rows), PyArray_DATA(s->edges),
                            PyArray_DIM(s->edges, 1), PyArray_DATA(s->n_edges), PyArray_DATA(s->y),
                            swp, s->n, s->d, s->k, &p, seed, round, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
    int64_t *nn = PyArray_DATA(a[0]);
    for (int64_t c = 0; c < s->k; c++) nn[c] = trees[c].n_nodes;
    result = Py_BuildValue("OOOOOOOOOO", a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
fail:
    PyMem_Free(trees);
    for (int j = 0; j < 10; j++) Py_XDECREF(a[j]);
    return result;
}

static PyObject *py_boost_predict(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "left", "right", "feature", "threshold", "value", "offsets",
                             "base", "stages", "nthreads", NULL};
    PyObject *xo, *lo, *ro, *fo, *to, *vo, *oo, *bo, *sto, *result = NULL;
    PyArrayObject *x = NULL, *l = NULL, *r = NULL, *f = NULL, *t = NULL, *v = NULL, *o = NULL,
                  *b = NULL, *st = NULL, *out = NULL;
    int nthreads = 0, status;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOOOO|i", kwlist, &xo, &lo, &ro, &fo, &to,
                                     &vo, &oo, &bo, &sto, &nthreads))
        return NULL;
    if (!(x = fm_bind_as_array(xo, NPY_FLOAT32, 2, "x")) || !(l = fm_bind_as_vector(lo, NPY_INT64, -1, "left")))
        goto fail;
    int64_t nn = PyArray_DIM(l, 0), n = PyArray_DIM(x, 0), d = PyArray_DIM(x, 1);
    if (!(r = fm_bind_as_vector(ro, NPY_INT64, nn, "right")) ||
        !(f = fm_bind_as_vector(fo, NPY_INT64, nn, "feature")) ||
        !(t = fm_bind_as_vector(to, NPY_FLOAT32, nn, "threshold")) ||
        !(v = fm_bind_as_vector(vo, NPY_FLOAT32, nn, "value")) ||
        !(o = fm_bind_as_vector(oo, NPY_INT64, -1, "offsets")) ||
        !(b = fm_bind_as_vector(bo, NPY_FLOAT64, -1, "base")) ||
        !(st = fm_bind_as_vector(sto, NPY_INT64, -1, "stages")))
        goto fail;
    int64_t n_trees = PyArray_DIM(o, 0) - 1, k = PyArray_DIM(b, 0), ns = PyArray_DIM(st, 0);
    if (n_trees < 0 || k < 1 || n_trees % k != 0) {
        PyErr_SetString(PyExc_ValueError, "offsets must have n_trees + 1 entries, n_trees a multiple of len(base)");
        goto fail;
    }
    const int64_t *op = PyArray_DATA(o);
    if (n_trees == 0 ? (op[0] != 0 || nn != 0)
                     : fm_forest_check(PyArray_DATA(l), PyArray_DATA(r), PyArray_DATA(f), op,
                                       n_trees, nn, d) >= 0) {
        PyErr_SetString(PyExc_ValueError, "malformed tree arrays (or offsets do not span the nodes)");
        goto fail;
    }
    const int64_t *sp = PyArray_DATA(st);
    for (int64_t j = 0; j < ns; j++)
        if (sp[j] < 0 || sp[j] > n_trees / k || (j > 0 && sp[j] < sp[j - 1])) {
            PyErr_SetString(PyExc_ValueError, "stages must be ascending round counts in [0, n_rounds]");
            goto fail;
        }
    npy_intp dims[3] = {ns, n, k};
    if (!(out = (PyArrayObject *)PyArray_ZEROS(3, dims, NPY_FLOAT64, 0))) goto fail;
    double *outp = PyArray_DATA(out);
    Py_BEGIN_ALLOW_THREADS
    status = fm_boost_predict(outp, PyArray_DATA(x), PyArray_DATA(l), PyArray_DATA(r),
                              PyArray_DATA(f), PyArray_DATA(t), PyArray_DATA(v), op,
                              PyArray_DATA(b), sp, n, d, k, n_trees, ns, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
    result = (PyObject *)out;
    out = NULL;
fail:
    Py_XDECREF(x); Py_XDECREF(l); Py_XDECREF(r); Py_XDECREF(f); Py_XDECREF(t); Py_XDECREF(v);
    Py_XDECREF(o); Py_XDECREF(b); Py_XDECREF(st); Py_XDECREF(out);
    return result;
}

/* The booster's layout of n_edges (d) (fm_boost_layout) into hoff (d + 1) and nbins (d),
 * one allocation (free hoff); the bins in use into *total. NULL after a MemoryError. */
static int64_t *padded_layout(const int64_t *ne, int64_t d, int64_t *total)
{
    int64_t *hoff = PyMem_Calloc((size_t)(2 * d + 1), sizeof(int64_t));
    if (!hoff) { PyErr_NoMemory(); return NULL; }
    *total = fm_boost_layout(hoff, hoff + d + 1, ne, d);
    return hoff;
}

/* out (total, 2) <- each feature's bins of the padded (hoff[d], 2) histogram, or back
 * (to_padded: the gaps left as they are). */
static void unpad(double *out, double *padded, const int64_t *hoff, const int64_t *nbins,
                  int64_t d, int to_padded)
{
    for (int64_t f = 0; f < d; out += FM_BOOST_LANES * nbins[f], f++) {
        size_t bytes = (size_t)(FM_BOOST_LANES * nbins[f]) * sizeof(double);
        if (to_padded) memcpy(padded + FM_BOOST_LANES * hoff[f], out, bytes);
        else memcpy(out, padded + FM_BOOST_LANES * hoff[f], bytes);
    }
}

/* For tests and the benchmark: a leaf's histogram over the features feats, (total_bins, 2)
 * float64 with the other features' bins 0; with parent (total_bins, 2), (that histogram,
 * the parent's minus it over the listed features, as fm_boost_hist_build leaves it). */
static PyObject *py_boost_hist(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"code_rows", "rows", "gh", "feats", "n_edges", "kernel", "parent",
                             NULL};
    PyObject *co, *ro, *go, *fo, *neo, *po = Py_None, *result = NULL;
    PyArrayObject *code = NULL, *rows = NULL, *gh = NULL, *feats = NULL, *ne = NULL, *hist = NULL,
                  *parent = NULL, *rest = NULL;
    int64_t *hoff = NULL;
    double *padded = NULL;
    const char *kname = "auto";
    enum fm_kernel kernel;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|sO", kwlist, &co, &ro, &go, &fo, &neo,
                                     &kname, &po))
        return NULL;
    if (boost_kernel(kname, &kernel) < 0) return NULL;
    if (!(code = fm_bind_as_array(co, NPY_UINT8, 2, "code_rows")) ||
        !(gh = fm_bind_as_array(go, NPY_FLOAT64, 2, "gh")) ||
        (po != Py_None && !(parent = fm_bind_as_array(po, NPY_FLOAT64, 2, "parent"))))
        goto fail;
    int64_t n = PyArray_DIM(code, 0), d = PyArray_DIM(code, 1), m = PyArray_DIM(gh, 0), total;
    if (!(ne = fm_bind_as_vector(neo, NPY_INT64, d, "n_edges")) ||
        !(feats = fm_bind_as_index_copy(fo, -1, "feats")) ||
        (ro != Py_None && !(rows = fm_bind_as_index_copy(ro, m, "rows"))))
        goto fail;
    int64_t nf = PyArray_DIM(feats, 0);
    if (PyArray_DIM(gh, 1) != FM_BOOST_LANES || (!rows && m != n) ||
        (rows && fm_bind_check_range(PyArray_DATA(rows), m, n, "rows")) ||
        fm_bind_check_range(PyArray_DATA(feats), nf, d, "feats") ||
        fm_bind_check_range(PyArray_DATA(ne), d, 256, "n_edges") ||
        check_codes(PyArray_DATA(code), PyArray_DATA(ne), n, d)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "boost_hist: bad shapes");
        goto fail;
    }
    if (!(hoff = padded_layout(PyArray_DATA(ne), d, &total))) goto fail;
    int64_t *nbins = hoff + d + 1;
    if (parent && (PyArray_DIM(parent, 0) != total || PyArray_DIM(parent, 1) != FM_BOOST_LANES)) {
        PyErr_SetString(PyExc_ValueError, "boost_hist: parent must be (total_bins, 2)");
        goto fail;
    }
    npy_intp dims[2] = {total, FM_BOOST_LANES};
    if (!(hist = (PyArrayObject *)PyArray_ZEROS(2, dims, NPY_FLOAT64, 0)) ||
        (parent && !(rest = (PyArrayObject *)PyArray_ZEROS(2, dims, NPY_FLOAT64, 0))))
        goto fail;
    /* the leaf's, then its parent's */
    if (!(padded = PyMem_Calloc((size_t)(2 * hoff[d] * FM_BOOST_LANES), sizeof(double)))) {
        PyErr_NoMemory();
        goto fail;
    }
    double *padded_parent = padded + hoff[d] * FM_BOOST_LANES;
    if (parent) unpad(PyArray_DATA(parent), padded_parent, hoff, nbins, d, 1);
    fm_boost_hist_build(padded, parent ? padded_parent : NULL, PyArray_DATA(code),
                        rows ? PyArray_DATA(rows) : NULL, PyArray_DATA(gh), PyArray_DATA(feats),
                        hoff, nbins, m, d, nf, kernel);
    unpad(PyArray_DATA(hist), padded, hoff, nbins, d, 0);
    if (parent) {
        unpad(PyArray_DATA(rest), padded_parent, hoff, nbins, d, 0);
        result = Py_BuildValue("OO", hist, rest);
    } else {
        result = (PyObject *)hist;
        hist = NULL;
    }
fail:
    PyMem_Free(hoff);
    PyMem_Free(padded);
    Py_XDECREF(code); Py_XDECREF(rows); Py_XDECREF(gh); Py_XDECREF(feats); Py_XDECREF(ne);
    Py_XDECREF(hist); Py_XDECREF(parent); Py_XDECREF(rest);
    return result;
}

/* For tests: the root histograms of k classes in one pass (fm_boost_hist_root over every
 * feature, then fm_boost_hist_root_class of each class with its sums over the rows in
 * order): (k, total_bins, 2). ghk: (m, k, 2), rows as boost_hist's. */
static PyObject *py_boost_hist_root(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"code_rows", "rows", "ghk", "n_edges", "kernel", NULL};
    PyObject *co, *ro, *go, *neo, *result = NULL;
    PyArrayObject *code = NULL, *rows = NULL, *gh = NULL, *ne = NULL, *hist = NULL;
    int64_t *hoff = NULL;
    double *comb = NULL, *ghr = NULL, *padded = NULL;
    const char *kname = "auto";
    enum fm_kernel kernel;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|s", kwlist, &co, &ro, &go, &neo, &kname))
        return NULL;
    if (boost_kernel(kname, &kernel) < 0) return NULL;
    if (!(code = fm_bind_as_array(co, NPY_UINT8, 2, "code_rows")) ||
        !(gh = fm_bind_as_array(go, NPY_FLOAT64, 3, "ghk")))
        goto fail;
    int64_t n = PyArray_DIM(code, 0), d = PyArray_DIM(code, 1), m = PyArray_DIM(gh, 0),
            k = PyArray_DIM(gh, 1), total;
    if (!(ne = fm_bind_as_vector(neo, NPY_INT64, d, "n_edges")) ||
        (ro != Py_None && !(rows = fm_bind_as_index_copy(ro, m, "rows"))))
        goto fail;
    if (PyArray_DIM(gh, 2) != FM_BOOST_LANES || k < 1 || (!rows && m != n) ||
        (rows && fm_bind_check_range(PyArray_DATA(rows), m, n, "rows")) ||
        fm_bind_check_range(PyArray_DATA(ne), d, 256, "n_edges") ||
        check_codes(PyArray_DATA(code), PyArray_DATA(ne), n, d)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "boost_hist_root: bad shapes");
        goto fail;
    }
    if (!(hoff = padded_layout(PyArray_DATA(ne), d, &total))) goto fail;
    int64_t *nbins = hoff + d + 1, stride = FM_BOOST_ROOT_STRIDE(k);
    npy_intp dims[3] = {k, total, FM_BOOST_LANES};
    if (!(hist = (PyArrayObject *)PyArray_ZEROS(3, dims, NPY_FLOAT64, 0))) goto fail;
    comb = PyMem_Calloc((size_t)(hoff[d] * stride), sizeof(double));
    ghr = PyMem_Calloc((size_t)((n > 0 ? n : 1) * stride), sizeof(double));
    padded = PyMem_Calloc((size_t)(hoff[d] * FM_BOOST_LANES), sizeof(double));
    if (!comb || !ghr || !padded) { PyErr_NoMemory(); goto fail; }
    const double *g = PyArray_DATA(gh);
    const int64_t *r = rows ? PyArray_DATA(rows) : NULL;
    for (int64_t j = 0; j < m; j++)
        memcpy(ghr + (r ? r[j] : j) * stride, g + j * k * FM_BOOST_LANES,
               (size_t)(k * FM_BOOST_LANES) * sizeof(double));
    fm_boost_hist_root(comb, PyArray_DATA(code), r, ghr, stride, hoff, m, d, 0, d, kernel);
    for (int64_t c = 0; c < k; c++) {
        double sum[2] = {0.0, 0.0}; /* as the tree's root sums its rows */
        for (int64_t j = 0; j < m; j++) {
            sum[0] += g[(j * k + c) * FM_BOOST_LANES];
            sum[1] += g[(j * k + c) * FM_BOOST_LANES + 1];
        }
        fm_boost_hist_root_class(padded, comb, stride, c, sum, hoff, nbins, d);
        unpad((double *)PyArray_DATA(hist) + c * total * FM_BOOST_LANES, padded, hoff, nbins, d, 0);
    }
    result = (PyObject *)hist;
    hist = NULL;
fail:
    PyMem_Free(hoff); PyMem_Free(comb); PyMem_Free(ghr); PyMem_Free(padded);
    Py_XDECREF(code); Py_XDECREF(rows); Py_XDECREF(gh); Py_XDECREF(ne); Py_XDECREF(hist);
    return result;
}

/* For tests: the portable scan of one histogram: (score, bin, (gl, hl, cl)); bin -1 if none. */
static PyObject *py_boost_scan(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"hist", "total", "min_count", "min_hess", "reg_lambda", NULL};
    PyObject *ho, *to;
    double mc, mh, lam, sums[3] = {0, 0, 0}, scratch[4 * 256], score = -Py_HUGE_VAL;
    int64_t bin = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOddd", kwlist, &ho, &to, &mc, &mh, &lam))
        return NULL;
    PyArrayObject *h = fm_bind_as_array(ho, NPY_FLOAT64, 2, "hist"), *t = NULL;
    PyObject *result = NULL;
    if (!h || !(t = fm_bind_as_vector(to, NPY_FLOAT64, 3, "total"))) goto fail;
    if (PyArray_DIM(h, 0) > 256 || PyArray_DIM(h, 1) != FM_BOOST_LANES) {
        PyErr_SetString(PyExc_ValueError, "hist must be (nb <= 256, 2)");
        goto fail;
    }
    fm_boost_limits lim = {mc, mh, lam};
    fm_boost_scan(&score, &bin, sums, PyArray_DATA(h), PyArray_DIM(h, 0), PyArray_DATA(t), &lim,
                  scratch);
    result = Py_BuildValue("dL(ddd)", score, (long long)bin, sums[0], sums[1], sums[2]);
fail:
    Py_XDECREF(h); Py_XDECREF(t);
    return result;
}

/* For tests: the scan of nf features' histograms, feature f's first nbins[f] bins of
 * hists[f]: (score, feature, bin, (gl, hl, cl)); feature and bin -1 if none. */
static PyObject *py_boost_scan_features(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"hists", "nbins", "total", "min_count", "min_hess", "reg_lambda",
                             "kernel", NULL};
    PyObject *ho, *no, *to, *result = NULL;
    const char *kname = "auto";
    double mc, mh, lam, sums[3] = {0, 0, 0}, score = -Py_HUGE_VAL, *scratch = NULL;
    int64_t bin = -1, feature = -1, *idx = NULL;
    enum fm_kernel kernel;
    PyArrayObject *h = NULL, *nb = NULL, *t = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOddd|s", kwlist, &ho, &no, &to, &mc, &mh, &lam,
                                     &kname))
        return NULL;
    if (boost_kernel(kname, &kernel) < 0) return NULL;
    if (!(h = fm_bind_as_array(ho, NPY_FLOAT64, 3, "hists"))) goto fail;
    int64_t nf = PyArray_DIM(h, 0);
    if (!(nb = fm_bind_as_vector(no, NPY_INT64, nf, "nbins")) ||
        !(t = fm_bind_as_vector(to, NPY_FLOAT64, 3, "total")))
        goto fail;
    if (PyArray_DIM(h, 1) != 256 || PyArray_DIM(h, 2) != FM_BOOST_LANES ||
        fm_bind_check_range(PyArray_DATA(nb), nf, 257, "nbins")) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "hists must be (nf, 256, 2)");
        goto fail;
    }
    if (!(idx = PyMem_Calloc((size_t)(2 * nf + 1), sizeof(int64_t))) ||
        !(scratch = PyMem_Calloc(FM_BOOST_SCAN_SCRATCH, sizeof(double)))) {
        PyErr_NoMemory();
        goto fail;
    }
    int64_t *feats = idx, *hoff = idx + nf;
    for (int64_t f = 0; f < nf; f++) {
        feats[f] = f;
        hoff[f] = 256 * f;
    }
    fm_boost_limits lim = {mc, mh, lam};
    fm_boost_scan_features(&score, &bin, sums, &feature, PyArray_DATA(h), feats, hoff,
                           PyArray_DATA(nb), nf, PyArray_DATA(t), &lim, scratch, kernel);
    result = Py_BuildValue("dLL(ddd)", score, (long long)feature, (long long)bin, sums[0],
                           sums[1], sums[2]);
fail:
    PyMem_Free(idx);
    PyMem_Free(scratch);
    Py_XDECREF(h); Py_XDECREF(nb); Py_XDECREF(t);
    return result;
}

static PyObject *py_boost_kernel(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyUnicode_FromString(fm_boost_best_kernel() == FM_KERNEL_AVX512 ? "avx512" : "portable");
}

PyMethodDef fm_bind_boost_methods[] = {
    {"boost_kernel", py_boost_kernel, METH_NOARGS, "The split scan's kernel picked for this CPU."},
    {"boost_start", (PyCFunction)(void (*)(void))py_boost_start, METH_VARARGS | METH_KEYWORDS,
     "boost_start(codes, code_rows, edges, n_edges, y, sample_weight, n_classes, num_leaves, "
     "nthreads=0): "
     "a fit's state (a capsule) for boost_round."},
    {"boost_round", (PyCFunction)(void (*)(void))py_boost_round, METH_VARARGS | METH_KEYWORDS,
     "One round: k trees grown, score (n, k) updated in place; returns (n_nodes, left, right, "
     "feature, bin, count, threshold, value, gain, hess), each (k, 2 num_leaves - 1)."},
    {"boost_predict", (PyCFunction)(void (*)(void))py_boost_predict, METH_VARARGS | METH_KEYWORDS,
     "Raw class scores of flat boosted trees after each round count in stages: (n_stages, n, k)."},
    {"boost_hist", (PyCFunction)(void (*)(void))py_boost_hist, METH_VARARGS | METH_KEYWORDS,
     "For tests: a leaf's (g, h) histograms over the features feats, (total_bins, 2); with "
     "parent, (that, parent - that)."},
    {"boost_hist_root", (PyCFunction)(void (*)(void))py_boost_hist_root, METH_VARARGS | METH_KEYWORDS,
     "For tests: the root histograms of k classes in one pass, (k, total_bins, 2)."},
    {"boost_scan", (PyCFunction)(void (*)(void))py_boost_scan, METH_VARARGS | METH_KEYWORDS,
     "For tests: the best threshold of one histogram, portable scan: (score, bin, (gl, hl, cl))."},
    {"boost_scan_features", (PyCFunction)(void (*)(void))py_boost_scan_features,
     METH_VARARGS | METH_KEYWORDS,
     "For tests: the best split of features' histograms (nf, 256, 2), feature f's first "
     "nbins[f] bins: (score, feature, bin, (gl, hl, cl))."},
    {NULL, NULL, 0, NULL}};
