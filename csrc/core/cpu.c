/* cpu.c: fm_cpu_has, the one place that asks the CPU what it supports. */
#include "core/cpu.h"

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
    }
    return 0;
#else
    (void)feature;
    return 0;
#endif
}
