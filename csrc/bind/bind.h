/* bind.h: what the binding's files share. The only header that includes Python.h and
 * NumPy: the kernels under csrc/ never see them. One NumPy API table serves every file
 * (PY_ARRAY_UNIQUE_SYMBOL); module.c, which defines FM_BIND_MODULE, fills it in
 * import_array(). The rules every binding follows are in docs/architecture.md. */
#ifndef FM_BIND_H
#define FM_BIND_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define PY_ARRAY_UNIQUE_SYMBOL fm_bind_ARRAY_API
#ifndef FM_BIND_MODULE
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include <stdint.h>

#include "core/common.h"

/* Each family's functions: a NULL-terminated table in bind/<family>.c that module.c joins
 * into the module. A new family adds its table here and one line to module.c's list. */
extern PyMethodDef fm_bind_linear_methods[];
extern PyMethodDef fm_bind_trees_methods[];
extern PyMethodDef fm_bind_nn_methods[];
extern PyMethodDef fm_bind_boost_methods[];
extern PyMethodDef fm_bind_neighbors_methods[];
extern PyMethodDef fm_bind_svm_methods[];
extern PyMethodDef fm_bind_features_methods[];
/* Entry points that only tests and benchmarks call (single kernels, chunk sizes). */
extern PyMethodDef fm_bind_testing_methods[];

/* Each family's constants (enum values Python must agree with), added to the module at
 * import by module.c: 0, or -1 with an exception set. */
int fm_bind_trees_constants(PyObject *m);
int fm_bind_nn_constants(PyObject *m);

/* One enum value by its Python name; tables end with {NULL, 0}. */
typedef struct { const char *name; long value; } fm_bind_name;
/* module.<attr> = {name: value, ...}: how a C enum reaches Python, written once. */
int fm_bind_add_names(PyObject *m, const char *attr, const fm_bind_name *names);

/* ---- status -> exception (each returns NULL, for `return fm_bind_raise(s)`) ---- */

/* The exception for a kernel status: MemoryError, KeyboardInterrupt, FloatingPointError
 * (training diverged) or ValueError. */
PyObject *fm_bind_raise(int status);
/* As fm_bind_raise, after a call that ran the kernel family named `kname` (as the user
 * gave it to fm_bind_parse_kernel): FM_EINVAL means the CPU lacks that family. */
PyObject *fm_bind_raise_kernel(int status, const char *kname);

/* ---- arrays in (new references, or NULL with an exception set) ---- */

/* A C-contiguous, aligned array of `type` with `ndim` dimensions (copies if needed). */
PyArrayObject *fm_bind_as_array(PyObject *obj, int type, int ndim, const char *name);
/* A 1-D array of `type` with `len` entries (len < 0: any). */
PyArrayObject *fm_bind_as_vector(PyObject *obj, int type, int64_t len, const char *name);
/* A private int64 copy (len < 0: any length): for index arrays a kernel trusts after
 * fm_bind_check_range, which nothing the kernel writes may alias. */
PyArrayObject *fm_bind_as_index_copy(PyObject *obj, int64_t len, const char *name);

/* ---- checks (0, or -1 with a ValueError/TypeError set) ---- */

/* An array the kernel reads (writeable = 0) or writes in place (1), borrowed: exact
 * `type` (float32 or int64), C-contiguous, aligned, `ndim` dimensions. */
int fm_bind_check_exact(PyObject *obj, int type, int ndim, const char *name, int writeable);
int fm_bind_check_inout(PyObject *obj, int type, int ndim, const char *name);
/* Every v[i] in [0, hi): labels and row indices are checked here, never in the kernels. */
int fm_bind_check_range(const int64_t *v, int64_t len, int64_t hi, const char *name);
int fm_bind_check_finite(const float *v, int64_t len, const char *name);
/* Sample weights: finite and not negative (float32, 1-D). */
int fm_bind_check_weights(PyArrayObject *sw, const char *name);
/* None of the first n_out arrays (those the kernel writes) overlaps another of the n
 * (NULL entries skipped); all contiguous. */
int fm_bind_check_disjoint(PyArrayObject *const *arrays, const char *const *names, int n_out,
                           int n);
/* A kernel family by name: "auto", "portable", "avx2", "avx512", or "naive" (*naive = 1;
 * the caller decides whether it has a naive twin). */
int fm_bind_parse_kernel(const char *name, int *naive, enum fm_kernel *kernel);

#endif
