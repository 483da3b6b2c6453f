/* bind/module.c: the module fmnist_c._core. It joins the families' method tables and adds
 * what describes the build (OpenMP threads, the GEMM kernel picked for this CPU). Each
 * family's functions live in bind/<family>.c; the shared checks in bind/helpers.c. */
#define FM_BIND_MODULE
#include "bind/bind.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/gemm.h"

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

static PyMethodDef methods[] = {
    {"gemm_kernel", py_gemm_kernel, METH_NOARGS, "Name of the GEMM micro-kernel picked for this CPU."},
    {"openmp_threads", py_openmp_threads, METH_NOARGS,
     "OpenMP's default thread count (0 when built without OpenMP)."},
    {NULL, NULL, 0, NULL}};

/* The families' tables, joined into the module at import. */
static PyMethodDef *const families[] = {
    fm_bind_linear_methods,
    fm_bind_trees_methods,
    fm_bind_nn_methods,
    fm_bind_boost_methods,
    fm_bind_neighbors_methods,
    fm_bind_svm_methods,
    fm_bind_features_methods,
    fm_bind_testing_methods,
};

/* The families' constants (enum values that Python reads instead of copying them). */
static int (*const constants[])(PyObject *) = {
    fm_bind_trees_constants,
    fm_bind_nn_constants,
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_core",
                                       "fmnist_c's C kernels (private; use the estimators).", -1,
                                       methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__core(void)
{
    import_array();
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (PyModule_AddFunctions(m, families[i]) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
        if (constants[i](m) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    return m;
}
