/* cpu.c: fm_cpu_has, the one place that asks the CPU what it supports. */
#include "core/cpu.h"

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/* AMX-TILE and AMX-INT8 in CPUID (leaf 7, EDX bits 24 and 25), the tile state enabled by
 * the OS (XCR0 bits 17 and 18), and Linux's permission for this process to use it (granted
 * for all threads; asking again is harmless). */
static int amx_int8_usable(void)
{
    unsigned a, b, c, d, lo, hi;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || (d & (3u << 24)) != (3u << 24)) return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; /* OSXSAVE */
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return 0;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
#endif

int fm_cpu_has(enum fm_cpu_feature feature)
{
#if defined(__x86_64__) || defined(__i386__)
    switch (feature) {
    case FM_CPU_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FM_CPU_AVX512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    case FM_CPU_AVX512BW:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    case FM_CPU_AVX512VNNI:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vnni");
    case FM_CPU_AMXINT8: {
#if defined(__x86_64__) && defined(__linux__)
        static int known = -1; /* asked once; a race asks twice, with the same answer */
        int v = __atomic_load_n(&known, __ATOMIC_RELAXED);
        if (v < 0) {
            v = amx_int8_usable();
            __atomic_store_n(&known, v, __ATOMIC_RELAXED);
        }
        return v;
#else
        return 0;
#endif
    }
    }
    return 0;
#else
    (void)feature;
    return 0;
#endif
}
