/* common.h: what every fmnist_c kernel shares: status codes, aligned allocation and the
 * counter-based PRNG. Plain C99, no Python; each kernel file builds alone. */
#ifndef FM_COMMON_H
#define FM_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

enum fm_status {
    FM_OK = 0,
    FM_ENOMEM = -1,   /* an allocation failed */
    FM_EINVAL = -2,   /* an argument the binding should have rejected */
    FM_EINTR = -3,    /* stopped by an interrupt request */
    FM_EDIVERGED = -4 /* training produced a non-finite loss */
};

/* Which SIMD family a kernel runs (GEMM micro-kernels, the tree's lane scan);
 * FM_KERNEL_AUTO picks the best the CPU supports. FM_KERNEL_AMX (Intel AMX tiles) is for
 * neighbors/' uint8 dot products only: the shared kernel parser of bind/ does not offer it. */
enum fm_kernel { FM_KERNEL_AUTO = 0, FM_KERNEL_PORTABLE = 1, FM_KERNEL_AVX2 = 2, FM_KERNEL_AVX512 = 3,
                 FM_KERNEL_AMX = 4 };

/* 64-byte aligned memory (one AVX-512 register, one cache line); free with fm_free. */
static inline void *fm_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

static inline void fm_free(void *p) { free(p); }

/* dst = src and dst += src over short runs (a window's kw * C floats, a pixel's C): a
 * loop the compiler vectorises beats a memcpy call */
static inline void fm_copy_floats(float *dst, const float *src, int64_t len)
{
    for (int64_t t = 0; t < len; t++) dst[t] = src[t];
}

static inline void fm_add_floats(float *dst, const float *src, int64_t len)
{
    for (int64_t t = 0; t < len; t++) dst[t] += src[t];
}

/* splitmix64 seeds xoshiro256**; a generator is derived from (seed, task id) so that
 * every task's stream is independent of which thread runs it. */
typedef struct { uint64_t s[4]; } fm_rng;

static inline uint64_t fm_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline void fm_rng_seed(fm_rng *r, uint64_t seed, uint64_t task)
{
    uint64_t x = seed ^ (task * 0xD1B54A32D192ED03ULL);
    for (int i = 0; i < 4; i++) r->s[i] = fm_splitmix64(&x);
}

static inline uint64_t fm_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t fm_rng_next(fm_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = fm_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = fm_rotl(s[3], 45);
    return out;
}

/* the low 24 bits of `bits` as a uniform in [0, 1), exact in float32 */
static inline float fm_unit24(uint64_t bits) { return (float)(bits & 0xFFFFFF) * (1.0f / 16777216.0f); }

/* uniform in [0, 1) with 24 random bits */
static inline float fm_rng_uniform(fm_rng *r) { return fm_unit24(fm_rng_next(r) >> 40); }

/* uniform integer in [0, n), n > 0, without modulo bias (Lemire) */
static inline uint64_t fm_rng_below(fm_rng *r, uint64_t n)
{
    unsigned __int128 m = (unsigned __int128)fm_rng_next(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = (0 - n) % n;
        while (lo < t) { m = (unsigned __int128)fm_rng_next(r) * n; lo = (uint64_t)m; }
    }
    return (uint64_t)(m >> 64);
}

#endif
