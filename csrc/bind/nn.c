/* bind/nn.c: the binding of the networks (nn/nn.h): training, gradients, inference and
 * augmentation over a network described by its program and settings arrays. Checks and
 * converts only; parameters, gradients and optimizer state are arrays Python owns. */
#include <limits.h>

#include "bind/bind.h"
#include "nn/augment.h"
#include "nn/nn.h"

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
    if (fm_bind_check_exact(params, NPY_FLOAT32, 1, pname, writeable)) return -1;
    if (!(a->program = fm_bind_as_array(po, NPY_INT64, 2, "program"))) return -1;
    int64_t L = PyArray_DIM(a->program, 0);
    if (!(a->settings = fm_bind_as_array(ro, NPY_FLOAT32, 2, "settings"))) return -1;
    if (L < 1 || PyArray_DIM(a->program, 1) != FM_NN_COLUMNS ||
        PyArray_DIM(a->settings, 0) != L || PyArray_DIM(a->settings, 1) != FM_NN_FCOLUMNS) {
        PyErr_Format(PyExc_ValueError, "program must be (n_layers >= 1, %d) and settings "
                     "(n_layers, %d)", (int)FM_NN_COLUMNS, (int)FM_NN_FCOLUMNS);
        return -1;
    }
    if (fm_bind_check_finite(PyArray_DATA(a->settings), L * FM_NN_FCOLUMNS, "settings")) return -1;
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
    if (!(r->x = fm_bind_as_array(xo, NPY_FLOAT32, 2, "x"))) return -1;
    int64_t n = PyArray_DIM(r->x, 0);
    if (PyArray_DIM(r->x, 1) != net->n_in || n < 1) {
        PyErr_Format(PyExc_ValueError, "x must be (n >= 1, %lld)", (long long)net->n_in);
        return -1;
    }
    int targets = PyArray_Check(yo) && PyArray_NDIM((PyArrayObject *)yo) == 2;
    if (targets) {
        if (!(r->y = fm_bind_as_array(yo, NPY_FLOAT32, 2, "y"))) return -1;
        if (PyArray_DIM(r->y, 0) != n || PyArray_DIM(r->y, 1) != net->n_out) {
            PyErr_Format(PyExc_ValueError, "target rows y must be (%lld, %lld)", (long long)n,
                         (long long)net->n_out);
            return -1;
        }
        if (fm_bind_check_finite(PyArray_DATA(r->y), n * net->n_out, "y")) return -1;
    } else {
        if (!(r->y = fm_bind_as_index_copy(yo, n, "y"))) return -1;
        if (fm_bind_check_range(PyArray_DATA(r->y), n, net->n_out, "y")) return -1;
    }
    if (swo != Py_None) {
        if (!(r->sw = fm_bind_as_vector(swo, NPY_FLOAT32, n, "sample_weight"))) return -1;
        if (fm_bind_check_weights(r->sw, "sample_weight")) return -1;
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
    if (!(x = fm_bind_as_array(xo, NPY_FLOAT32, 4, "x"))) goto fail;
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
                             "ema", "ema_decay", NULL};
    PyObject *po, *go, *so, *pgo, *ro, *xo, *yo, *oo, *lro, *swo = Py_None, *wso = Py_None;
    PyObject *eo = Py_None;
    float ema_decay = 0.0f;
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
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOOOOLifpffffLK|OiLpfOOf", kwlist, &po, &go,
                                     &so, &pgo, &ro, &xo, &yo, &oo, &lro, &batch, &kind,
                                     &opt.momentum, &opt.nesterov, &opt.beta1, &opt.beta2,
                                     &opt.epsilon, &opt.weight_decay, &step, &seed, &swo, &nthreads,
                                     &shift, &aug.flip, &aug.erase, &wso, &eo, &ema_decay))
        return NULL;
    aug.shift = (int64_t)shift;
    opt.kind = (enum fm_optimizer)kind;
    if (nn_args_get(&a, po, pgo, ro, "params", 1) || fm_bind_check_inout(go, NPY_FLOAT32, 1, "grads") ||
        fm_bind_check_inout(so, NPY_FLOAT32, 1, "state") || nn_rows_get(&r, &a.net, xo, yo, swo))
        goto fail;
    int64_t np_ = a.net.n_params;
    if (fm_optim_check(&opt) != FM_OK) {
        PyErr_SetString(PyExc_ValueError, "optimizer settings out of range");
        goto fail;
    }
    if (eo != Py_None && (fm_bind_check_inout(eo, NPY_FLOAT32, 1, "ema") ||
                          PyArray_DIM((PyArrayObject *)eo, 0) != np_ || !(ema_decay >= 0.0f && ema_decay < 1.0f))) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "ema must match params and ema_decay lie in [0, 1)");
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
    if (!(order = fm_bind_as_index_copy(oo, -1, "order"))) goto fail;
    int64_t m = PyArray_DIM(order, 0), steps = m == 0 ? 0 : 1 + (m - 1) / batch;
    if (step > LLONG_MAX - steps) { PyErr_SetString(PyExc_ValueError, "step too large"); goto fail; }
    if (!(lr = fm_bind_as_vector(lro, NPY_FLOAT32, steps, "lr"))) goto fail;
    float *scratch = NULL;
    if (wso != Py_None) { /* reused across calls: checked in place, 64-byte aligned */
        if (fm_bind_check_inout(wso, NPY_FLOAT32, 1, "workspace")) goto fail;
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
                                   scratch ? (PyArrayObject *)wso : NULL,
                                   eo != Py_None ? (PyArrayObject *)eo : NULL, r.x, r.y, r.sw, lr};
        const char *names[] = {"params", "grads", "state", "workspace", "ema", "x", "y",
                               "sample_weight", "lr"};
        if (fm_bind_check_disjoint(arrays, names, 5, 9)) goto fail;
    }
    const int64_t *op = PyArray_DATA(order);
    if (fm_bind_check_range(op, m, r.data.n, "order") || fm_bind_check_finite(PyArray_DATA(lr), PyArray_DIM(lr, 0), "lr"))
        goto fail;
    double loss = 0.0;
    int64_t correct = 0;
    float *pp = PyArray_DATA((PyArrayObject *)po), *gp = PyArray_DATA((PyArrayObject *)go),
          *sp = PyArray_DATA((PyArrayObject *)so);
    const float *lrp = PyArray_DATA(lr);
    Py_BEGIN_ALLOW_THREADS
    float *ep = eo != Py_None ? PyArray_DATA((PyArrayObject *)eo) : NULL;
    status = fm_nn_train(pp, gp, sp, ep, &loss, &correct, &a.net, &opt, &r.data, op, lrp, &aug,
                         scratch, m, batch, step, ema_decay, seed, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
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
    if (nn_args_get(&a, po, pgo, ro, "params", 1) || fm_bind_check_inout(go, NPY_FLOAT32, 1, "grads") ||
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
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
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
    if (nn_args_get(&a, po, pgo, ro, "params", 0) || !(x = fm_bind_as_array(xo, NPY_FLOAT32, 2, "x"))) goto fail;
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
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
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
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
    result = Py_BuildValue("dL", loss, (long long)correct);
fail:
    nn_args_release(&a);
    nn_rows_release(&r);
    return result;
}

static PyObject *py_nn_refresh_batchnorm(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"params", "program", "settings", "x", "batch_size", "nthreads", NULL};
    PyObject *po, *pgo, *ro, *xo, *result = NULL;
    PyArrayObject *x = NULL;
    nn_args a = {0};
    long long batch;
    int nthreads = 0, status;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOL|i", kwlist, &po, &pgo, &ro, &xo, &batch,
                                     &nthreads))
        return NULL;
    if (nn_args_get(&a, po, pgo, ro, "params", 1) || !(x = fm_bind_as_array(xo, NPY_FLOAT32, 2, "x")))
        goto fail;
    int64_t n = PyArray_DIM(x, 0);
    if (PyArray_DIM(x, 1) != a.net.n_in || n < 1 || batch < 1 || batch > FM_NN_MAX_BATCH) {
        PyErr_Format(PyExc_ValueError, "x must be (n >= 1, %lld) and batch_size in [1, 2^24]",
                     (long long)a.net.n_in);
        goto fail;
    }
    {
        PyArrayObject *arrays[] = {(PyArrayObject *)po, x};
        const char *names[] = {"params", "x"};
        if (fm_bind_check_disjoint(arrays, names, 1, 2)) goto fail;
    }
    float *pp = PyArray_DATA((PyArrayObject *)po);
    const float *xp = PyArray_DATA(x);
    Py_BEGIN_ALLOW_THREADS
    status = fm_nn_refresh_batchnorm(pp, &a.net, xp, n, batch, nthreads);
    Py_END_ALLOW_THREADS
    if (status != FM_OK) { fm_bind_raise(status); goto fail; }
    result = Py_None;
    Py_INCREF(result);
fail:
    nn_args_release(&a);
    Py_XDECREF(x);
    return result;
}

int fm_bind_nn_constants(PyObject *m)
{
    static const fm_bind_name layers[] = {
        {"dense", FM_LAYER_DENSE}, {"relu", FM_LAYER_RELU}, {"dropout", FM_LAYER_DROPOUT},
        {"conv2d", FM_LAYER_CONV2D}, {"maxpool", FM_LAYER_MAXPOOL}, {"avgpool", FM_LAYER_AVGPOOL},
        {"flatten", FM_LAYER_FLATTEN}, {"batchnorm", FM_LAYER_BATCHNORM},
        {"residual", FM_LAYER_RESIDUAL}, {NULL, 0}};
    static const fm_bind_name columns[] = {
        {"type", FM_COL_TYPE}, {"in_c", FM_COL_IN_C}, {"in_h", FM_COL_IN_H}, {"in_w", FM_COL_IN_W},
        {"out_c", FM_COL_OUT_C}, {"out_h", FM_COL_OUT_H}, {"out_w", FM_COL_OUT_W},
        {"param", FM_COL_PARAM}, {"kh", FM_COL_KH}, {"kw", FM_COL_KW}, {"stride", FM_COL_STRIDE},
        {"pad_h", FM_COL_PAD_H}, {"pad_w", FM_COL_PAD_W}, {"skip", FM_COL_SKIP}, {NULL, 0}};
    static const fm_bind_name fcolumns[] = {{"rate", FM_FCOL_RATE}, {"eps", FM_FCOL_EPS}, {NULL, 0}};
    static const fm_bind_name optimizers[] = {
        {"sgd", FM_OPT_SGD}, {"adam", FM_OPT_ADAM}, {"adamw", FM_OPT_ADAMW}, {NULL, 0}};
    if (fm_bind_add_names(m, "LAYER_TYPES", layers) < 0) return -1;
    if (fm_bind_add_names(m, "NN_COLUMNS", columns) < 0) return -1;
    if (fm_bind_add_names(m, "NN_FCOLUMNS", fcolumns) < 0) return -1;
    return fm_bind_add_names(m, "OPTIMIZERS", optimizers);
}

PyMethodDef fm_bind_nn_methods[] = {
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
    {"nn_refresh_batchnorm", (PyCFunction)(void (*)(void))py_nn_refresh_batchnorm,
     METH_VARARGS | METH_KEYWORDS,
     "Batch norm's running statistics recomputed in place as the plain average of x's batches' "
     "(training mode, dropout off)."},
    {"augment_images", (PyCFunction)(void (*)(void))py_augment_images, METH_VARARGS | METH_KEYWORDS,
     "Training-time augmentation of (n, h, w, c) images, image i from stream (seed, first_task + i)."},
    {NULL, NULL, 0, NULL}};
