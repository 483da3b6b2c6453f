/* bind/features.c: the binding of the image features (features/hog.h). Checks and
 * converts; the images are worked a chunk at a time with the GIL released, and Ctrl-C is
 * honoured between chunks (each a small fraction of a second). */
#include "bind/bind.h"
#include "features/hog.h"

/* images a call takes at most: about 0.05 s of 28 x 28 images on one thread here */
#define FM_HOG_CHUNK 4096

static PyObject *py_hog(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"images", "orientations", "cell_rows", "cell_cols", "block_rows",
                             "block_cols", "norm", "transform_sqrt", "nthreads", NULL};
    PyObject *io, *result = NULL;
    PyArrayObject *im = NULL, *out = NULL;
    long long orientations, cell_rows, cell_cols, block_rows, block_cols;
    int norm, transform_sqrt = 0, nthreads = 0, status = FM_OK;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OLLLLLi|pi", kwlist, &io, &orientations,
                                     &cell_rows, &cell_cols, &block_rows, &block_cols, &norm,
                                     &transform_sqrt, &nthreads))
        return NULL;
    int u8 = PyArray_Check(io) && PyArray_TYPE((PyArrayObject *)io) == NPY_UINT8;
    if (!(im = fm_bind_as_array(io, u8 ? NPY_UINT8 : NPY_FLOAT32, 3, "images"))) goto fail;
    int64_t n = PyArray_DIM(im, 0), h = PyArray_DIM(im, 1), w = PyArray_DIM(im, 2);
    if (norm != FM_HOG_L1 && norm != FM_HOG_L1_SQRT && norm != FM_HOG_L2 && norm != FM_HOG_L2_HYS) {
        PyErr_Format(PyExc_ValueError, "hog: unknown norm code %d", norm);
        goto fail;
    }
    /* the bounds keep every product below (scratch, feature counts) far from overflow */
    const long long most = 1 << 15;
    if (orientations < 1 || orientations > most || cell_rows < 1 || cell_cols < 1 ||
        block_rows < 1 || block_cols < 1 || h > most || w > most) {
        PyErr_Format(PyExc_ValueError, "hog: orientations, pixels per cell and cells per block "
                     "must be >= 1 and images and orientations at most %lld", most);
        goto fail;
    }
    if (h / cell_rows < block_rows || w / cell_cols < block_cols) {
        PyErr_Format(PyExc_ValueError, "the images (%lld x %lld) are too small for "
                     "pixels_per_cell (%lld, %lld) and cells_per_block (%lld, %lld): they "
                     "must have at least %lld rows and %lld columns", (long long)h, (long long)w,
                     cell_rows, cell_cols, block_rows, block_cols, cell_rows * block_rows,
                     cell_cols * block_cols);
        goto fail;
    }
    fm_hog_params p = {h, w, cell_rows, cell_cols, block_rows, block_cols, orientations,
                       (enum fm_hog_norm)norm, transform_sqrt};
    int64_t nf = fm_hog_n_features(&p);
    if (nf == 0) {
        PyErr_Format(PyExc_ValueError, "hog: more than %g features per image",
                     FM_HOG_MOST_FEATURES);
        goto fail;
    }
    if (!u8) {
        const float *v = PyArray_DATA(im);
        if (fm_bind_check_finite(v, n * h * w, "images")) goto fail;
        if (transform_sqrt)
            for (int64_t i = 0; i < n * h * w; i++)
                if (v[i] < 0.0f) {
                    PyErr_SetString(PyExc_ValueError, "images must not be negative with "
                                    "transform_sqrt=True (the square root of each pixel)");
                    goto fail;
                }
    }
    npy_intp dims[2] = {n, nf};
    if (!(out = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_FLOAT32, 0))) goto fail;
    for (int64_t i0 = 0; i0 < n; i0 += FM_HOG_CHUNK) {
        int64_t m = n - i0 < FM_HOG_CHUNK ? n - i0 : FM_HOG_CHUNK;
        float *o = (float *)PyArray_DATA(out) + i0 * nf;
        Py_BEGIN_ALLOW_THREADS
        if (u8)
            status = fm_hog_u8(o, (const uint8_t *)PyArray_DATA(im) + i0 * h * w, m, &p, nthreads);
        else
            status = fm_hog_f32(o, (const float *)PyArray_DATA(im) + i0 * h * w, m, &p, nthreads);
        Py_END_ALLOW_THREADS
        if (status != FM_OK) { fm_bind_raise(status); goto fail; }
        if (PyErr_CheckSignals() < 0) goto fail;
    }
    result = (PyObject *)out;
    out = NULL;
fail:
    Py_XDECREF(im); Py_XDECREF(out);
    return result;
}

static PyObject *py_hog_norms(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return Py_BuildValue("{sisisisi}", "L1", FM_HOG_L1, "L1-sqrt", FM_HOG_L1_SQRT, "L2",
                         FM_HOG_L2, "L2-Hys", FM_HOG_L2_HYS);
}

PyMethodDef fm_bind_features_methods[] = {
    {"hog", (PyCFunction)(void (*)(void))py_hog, METH_VARARGS | METH_KEYWORDS,
     "hog(images, orientations, cell_rows, cell_cols, block_rows, block_cols, norm, "
     "transform_sqrt=False, nthreads=0): (n, n_features) float32 histograms of oriented "
     "gradients of images (n, h, w), uint8 or float32 (features/hog.h). norm: a code from "
     "hog_norms()."},
    {"hog_norms", py_hog_norms, METH_NOARGS, "The block norm codes hog takes, by name."},
    {NULL, NULL, 0, NULL}};
