/* cpu.h: what this CPU can run, asked once by every family's run-time kernel choice
 * (the GEMM's micro-kernels, the tree's lane scan, the distance kernels). Plain C99. */
#ifndef FM_CPU_H
#define FM_CPU_H

enum fm_cpu_feature {
    FM_CPU_AVX2,       /* AVX2 and FMA */
    FM_CPU_AVX512,     /* AVX-512 F and FMA */
    FM_CPU_AVX512BW,   /* AVX-512 F and BW (byte and word lanes) */
    FM_CPU_AVX512VNNI, /* AVX-512 F, BW and VNNI (8-bit dot products, vpdpbusd) */
    FM_CPU_AMXINT8     /* AMX tiles with 8-bit dot products (tdpbuud), and the OS lets this
                        * process use the tile registers (Linux: asked once, arch_prctl) */
};

/* 1 when the CPU (and the compiler's x86 target) has the feature, else 0; always 0 off x86. */
int fm_cpu_has(enum fm_cpu_feature feature);

#endif
