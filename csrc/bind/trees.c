/* bind/trees.c: the binding of trees and forests (trees/tree.h, trees/forest.h): binning,
 * growing, and walking flat forests. Checks and converts only; a fitted forest leaves as
 * flat NumPy arrays that Python owns. */
#include <string.h>

#include "bind/bind.h"
#include "trees/forest.h"
#include "trees/tree.h"

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
    if (!(x = fm_bind_as_array(xo, u8 ? NPY_UINT8 : NPY_FLOAT32, 2, "x"))) goto fail;
    if (max_bins < 2 || max_bins > 256) {
        PyErr_Format(PyExc_ValueError, "max_bins must be in [2, 256], got %lld", max_bins);
        goto fail;
    }
    int64_t n = PyArray_DIM(x, 0), d = PyArray_DIM(x, 1), stride = u8 ? 255 : max_bins - 1;
    if (n < 1 || d < 1) { PyErr_SetString(PyExc_ValueError, "x must have samples and features"); goto fail; }
    if (!u8 && fm_bind_check_finite(PyArray_DATA(x), n * d, "x")) goto fail;
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
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
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
                             "min_weight_fraction_leaf", NULL};
    PyObject *ctlo = Py_None, *co, *cro, *eo, *neo, *yo, *swo, *result = NULL;
    const char *kname = "auto";
    PyArrayObject *codes = NULL, *rows = NULL, *edges = NULL, *n_edges = NULL, *y = NULL, *sw = NULL;
    long long k, first, nt, n_draw, max_depth, min_split, min_leaf, max_features, small_node;
    unsigned long long seed;
    int criterion, nthreads = 0, status, naive;
    double min_decrease, min_weight_fraction = 0.0;
    enum fm_kernel kernel = FM_KERNEL_AUTO;
    fm_tree *trees = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOLLLKLiLLLLdL|iOsd", kwlist, &co, &cro, &eo, &neo, &yo,
                                     &swo, &k, &first, &nt, &seed, &n_draw, &criterion,
                                     &max_depth, &min_split, &min_leaf, &max_features,
                                     &min_decrease, &small_node, &nthreads, &ctlo, &kname,
                                     &min_weight_fraction))
        return NULL;
    if (fm_bind_parse_kernel(kname, &naive, &kernel) < 0) return NULL;
    if (naive || kernel == FM_KERNEL_AVX512) {
        PyErr_SetString(PyExc_ValueError, "forest_fit: kernel must be 'auto', 'portable' or 'avx2'");
        return NULL;
    }
    /* checked before the fit: the fit's own FM_EINVAL also means too many nodes */
    if (kernel == FM_KERNEL_AVX2 && fm_tree_best_kernel() != FM_KERNEL_AVX2)
        return fm_bind_raise_kernel(FM_EINVAL, kname);
    /* control: int64 [stop, done]; another thread sets stop on Ctrl-C and reads done */
    if (ctlo != Py_None && (fm_bind_check_inout(ctlo, NPY_INT64, 1, "control") ||
                            PyArray_DIM((PyArrayObject *)ctlo, 0) != 2)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "control must have 2 entries");
        return NULL;
    }
    int64_t *ctl = ctlo != Py_None ? PyArray_DATA((PyArrayObject *)ctlo) : NULL;
    if (!(codes = fm_bind_as_array(co, NPY_UINT8, 2, "codes")) || !(edges = fm_bind_as_array(eo, NPY_FLOAT32, 2, "edges")))
        goto fail;
    int64_t d = PyArray_DIM(codes, 0), n = PyArray_DIM(codes, 1), stride = PyArray_DIM(edges, 1);
    if (!(n_edges = fm_bind_as_vector(neo, NPY_INT64, d, "n_edges")) || !(y = fm_bind_as_vector(yo, NPY_INT64, n, "y")))
        goto fail;
    if (swo != Py_None && !(sw = fm_bind_as_vector(swo, NPY_FLOAT32, n, "sample_weight"))) goto fail;
    if (cro != Py_None && !(rows = fm_bind_as_array(cro, NPY_UINT8, 2, "code_rows"))) goto fail;
    if (rows && (PyArray_DIM(rows, 0) != n || PyArray_DIM(rows, 1) != d)) {
        PyErr_SetString(PyExc_ValueError, "code_rows must be codes transposed, (n, d)");
        goto fail;
    }
    if (PyArray_DIM(edges, 0) != d || n < 1 || d < 1) {
        PyErr_SetString(PyExc_ValueError, "codes must be (d, n) and edges (d, max_bins - 1) with n, d >= 1");
        goto fail;
    }
    if (fm_bind_check_range(PyArray_DATA(n_edges), d, stride + 1, "n_edges") ||
        fm_bind_check_range(PyArray_DATA(y), n, k, "y"))
        goto fail;
    if (sw && fm_bind_check_weights(sw, "sample_weight")) goto fail;
    if (k < 1 || first < 0 || nt < 0 || n_draw < 0 || n_draw > INT32_MAX || (criterion != FM_GINI && criterion != FM_ENTROPY) ||
        max_depth < 0 || min_split < 2 || min_leaf < 1 || max_features < 1 || max_features > d ||
        !(min_decrease >= 0.0) || !(min_weight_fraction >= 0.0 && min_weight_fraction <= 0.5) ||
        small_node < 0 || small_node > FM_TREE_SMALL_MAX) {
        PyErr_SetString(PyExc_ValueError, "forest_fit: a tree parameter is out of range");
        goto fail;
    }
    if (!(trees = PyMem_Calloc(nt > 0 ? (size_t)nt : 1, sizeof(fm_tree)))) { PyErr_NoMemory(); goto fail; }
    fm_tree_params p = {.criterion = criterion, .max_depth = max_depth, .min_samples_split = min_split,
                        .min_samples_leaf = min_leaf, .max_features = max_features,
                        .min_impurity_decrease = min_decrease, .small_node = small_node,
                        .stop = ctl, .kernel = kernel,
                        .min_weight_fraction_leaf = min_weight_fraction};
    const uint8_t *cp = PyArray_DATA(codes), *crp = rows ? PyArray_DATA(rows) : NULL;
    const float *ep = PyArray_DATA(edges), *swp = sw ? PyArray_DATA(sw) : NULL;
    const int64_t *nep = PyArray_DATA(n_edges), *yp = PyArray_DATA(y);
    Py_BEGIN_ALLOW_THREADS
    status = fm_forest_fit(trees, cp, crp, ep, stride, nep, yp, swp, n, d, k, &p, seed, first, nt,
                           n_draw, ctl ? ctl + 1 : NULL, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
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
    if (!(f->x = fm_bind_as_array(xo, NPY_FLOAT32, 2, "x")) || !(f->left = fm_bind_as_vector(lo, NPY_INT64, -1, "left")))
        return -1;
    int64_t nn = PyArray_DIM(f->left, 0);
    if (!(f->right = fm_bind_as_vector(ro, NPY_INT64, nn, "right")) ||
        !(f->feature = fm_bind_as_vector(fo, NPY_INT64, nn, "feature")) ||
        !(f->threshold = fm_bind_as_vector(to, NPY_FLOAT32, nn, "threshold")) ||
        !(f->offsets = fm_bind_as_vector(oo, NPY_INT64, -1, "offsets")))
        return -1;
    if (vo && !(f->value = fm_bind_as_array(vo, NPY_FLOAT32, 2, "value"))) return -1;
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
    if (forest_args_get(&f, xo, lo, ro, fo, to, vo, oo) || !(depths = fm_bind_as_vector(dpo, NPY_INT64, -1, "depths")))
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
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
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
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
    result = Py_BuildValue("OO", out, cnt);
fail:
    forest_args_release(&f);
    Py_XDECREF(out); Py_XDECREF(cnt);
    return result;
}

int fm_bind_trees_constants(PyObject *m)
{
    static const fm_bind_name criteria[] = {{"gini", FM_GINI}, {"entropy", FM_ENTROPY}, {NULL, 0}};
    return fm_bind_add_names(m, "CRITERIA", criteria);
}

PyMethodDef fm_bind_trees_methods[] = {
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
    {NULL, NULL, 0, NULL}};
