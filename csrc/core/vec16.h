/* vec16.h: the 16-float vector of GCC's vector extension that the elementwise kernels of
 * conv.c and winograd.c are written in, and its loads and stores. Each kernel source is
 * compiled for AVX-512, AVX2 and any CPU (target attributes, chosen at run time), so these
 * helpers are always inlined into it. */
#ifndef FM_VEC16_H
#define FM_VEC16_H

#include <stdint.h>
#include <string.h>

#include "core/gemm.h"

/* no v16 crosses a real call (the helpers are inlined), so the warning that passing one
 * depends on the instruction set does not apply */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v16 __attribute__((vector_size(64)));

static inline __attribute__((always_inline)) v16 load16(const float *p)
{
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* the first len (1..16) floats of p, zeros after */
static inline __attribute__((always_inline)) v16 load_part(const float *p, int64_t len)
{
    if (len >= 16) return load16(p);
    v16 v = {0};
    for (int64_t t = 0; t < len; t++) v[t] = p[t];
    return v;
}

/* p[0 .. len) = the first len (1..16) lanes of *v (pointers: a v16 argument by value
 * draws GCC's note on its ABI, which no pragma silences) */
static inline __attribute__((always_inline)) void store_part(float *p, const v16 *v, int64_t len)
{
    if (len >= 16) memcpy(p, v, sizeof *v);
    else for (int64_t t = 0; t < len; t++) p[t] = (*v)[t];
}

/* *v = max(*v, 0) lane by lane */
static inline __attribute__((always_inline)) void relu16(v16 *v)
{
    typedef int32_t v16i __attribute__((vector_size(64)));
    const v16 zero = {0};
    *v = (v16)((v16i)*v & (*v > zero)); /* all ones where positive */
}

/* The implementation among those of the three families that `kernel` names
 * (FM_KERNEL_AUTO: the best this CPU runs), or NULL when the CPU lacks that family (or it
 * was not compiled: NULL passed). */
static inline const void *vec16_pick(enum fm_kernel kernel, const void *portable, const void *avx2,
                                     const void *avx512)
{
    const enum fm_kernel best = fm_gemm_best_kernel();
    if (kernel == FM_KERNEL_AUTO) kernel = best;
    if (kernel > best) return NULL; /* the families nest: AVX-512 CPUs have AVX2 */
    switch (kernel) {
    case FM_KERNEL_AVX512: return avx512;
    case FM_KERNEL_AVX2: return avx2;
    case FM_KERNEL_PORTABLE: return portable;
    default: return NULL;
    }
}

#endif
