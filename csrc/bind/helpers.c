/* helpers.c: what every binding file uses: statuses raised as exceptions, arrays taken in
 * and checked (bind.h documents each). No kernel is called from here. */
#include <math.h>
#include <string.h>

#include "bind/bind.h"

PyObject *fm_bind_raise(int status)
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

PyObject *fm_bind_raise_kernel(int status, const char *kname)
{
    if (status == FM_EINVAL) {
        PyErr_Format(PyExc_ValueError, "kernel '%s' is not available on this CPU", kname);
        return NULL;
    }
    return fm_bind_raise(status);
}

int fm_bind_add_names(PyObject *m, const char *attr, const fm_bind_name *names)
{
    PyObject *d = PyDict_New(), *v = NULL;
    if (!d) return -1;
    for (const fm_bind_name *e = names; e->name; e++) {
        if (!(v = PyLong_FromLong(e->value)) || PyDict_SetItemString(d, e->name, v) < 0) goto fail;
        Py_CLEAR(v);
    }
    if (PyModule_AddObjectRef(m, attr, d) < 0) goto fail;
    Py_DECREF(d);
    return 0;
fail:
    Py_XDECREF(v);
    Py_DECREF(d);
    return -1;
}

PyArrayObject *fm_bind_as_array(PyObject *obj, int type, int ndim, const char *name)
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

int fm_bind_check_exact(PyObject *obj, int type, int ndim, const char *name, int writeable)
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

int fm_bind_check_inout(PyObject *obj, int type, int ndim, const char *name)
{
    return fm_bind_check_exact(obj, type, ndim, name, 1);
}

int fm_bind_parse_kernel(const char *name, int *naive, enum fm_kernel *kernel)
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

int fm_bind_check_range(const int64_t *v, int64_t len, int64_t hi, const char *name)
{
    for (int64_t i = 0; i < len; i++)
        if (v[i] < 0 || v[i] >= hi) {
            PyErr_Format(PyExc_ValueError, "%s[%lld] = %lld is outside [0, %lld)", name,
                         (long long)i, (long long)v[i], (long long)hi);
            return -1;
        }
    return 0;
}

int fm_bind_check_finite(const float *v, int64_t len, const char *name)
{
    for (int64_t i = 0; i < len; i++)
        if (!isfinite(v[i])) {
            PyErr_Format(PyExc_ValueError, "%s contains NaN or infinity", name);
            return -1;
        }
    return 0;
}

int fm_bind_check_weights(PyArrayObject *sw, const char *name)
{
    const float *v = PyArray_DATA(sw);
    int64_t len = PyArray_SIZE(sw);
    if (fm_bind_check_finite(v, len, name)) return -1;
    for (int64_t i = 0; i < len; i++)
        if (v[i] < 0.0f) {
            PyErr_Format(PyExc_ValueError, "%s[%lld] = %g is negative", name, (long long)i, (double)v[i]);
            return -1;
        }
    return 0;
}

PyArrayObject *fm_bind_as_vector(PyObject *obj, int type, int64_t len, const char *name)
{
    PyArrayObject *a = fm_bind_as_array(obj, type, 1, name);
    if (a && len >= 0 && PyArray_DIM(a, 0) != len) {
        PyErr_Format(PyExc_ValueError, "%s has %lld entries, expected %lld", name,
                     (long long)PyArray_DIM(a, 0), (long long)len);
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

PyArrayObject *fm_bind_as_index_copy(PyObject *obj, int64_t len, const char *name)
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

int fm_bind_check_disjoint(PyArrayObject *const *arrays, const char *const *names, int n_out, int n)
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
