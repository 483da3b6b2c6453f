/* gemm.c: packed, cache-blocked single-precision GEMM with AVX-512, AVX2 and portable
 * micro-kernels chosen at run time, OpenMP over blocks of C. Not a BLAS: one precision,
 * row-major only, and every thread count gives bit-identical results. */
#include "core/gemm.h"
#include "core/parallel.h"
#include "core/common.h"
#include "core/cpu.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#define FM_GEMM_X86 1
#include <immintrin.h>
#endif

/* c: (mr, nr) tile with leading dimension ldc; a: packed (kc, MR) panel; b: packed (kc, NR)
 * panel. Writes c = alpha * a b + beta * c, never reading c when beta == 0. */
typedef void (*fm_ukernel)(float *c, int64_t ldc, const float *a, const float *b,
                           int64_t kc, float alpha, float beta, int mr, int nr);

/* One micro-kernel with its register tile (mr x nr) and cache blocks. For AVX-512 on
 * Zen 4 (32 KiB L1d, 1 MiB L2 per core, 32 MiB L3): the mc x kc block of A (168 x 384,
 * 252 KiB) stays in L2 while the kernel sweeps it with one kc x 32 panel of B (48 KiB,
 * L1 and L2), and the kc x nc block of B (3 MiB) sits in L3. The kernel needs only
 * 4.6 bytes of B per cycle, which L2 streams easily: kc from 256 to 512 measured within
 * noise, and a long kc means fewer passes over C. kc is a cap: k is cut into equal
 * blocks so that none is a sliver. */
struct fm_gemm_impl {
    fm_ukernel kernel;
    int mr, nr;
    int mr_step, nr_step; /* the kernel computes tiles in multiples of these rows and columns */
    int64_t kc_max, mc_max, nc_max;
    int avx_pack; /* 1: pack with AVX transposes (the CPU has AVX2); 2: and AVX-512 copies */
};

/* ---------------------------------------------------------------- portable kernel */

#define P_MR 4
#define P_NR 8

/* Plain loops over a fixed tile: the compiler vectorises the inner j loop (SSE2, NEON). */
static void ukernel_portable(float *c, int64_t ldc, const float *a, const float *b,
                             int64_t kc, float alpha, float beta, int mr, int nr)
{
    float acc[P_MR][P_NR];
    memset(acc, 0, sizeof acc);
    for (int64_t p = 0; p < kc; p++) {
        const float *ap = a + p * P_MR, *bp = b + p * P_NR;
        for (int i = 0; i < P_MR; i++)
            for (int j = 0; j < P_NR; j++) acc[i][j] += ap[i] * bp[j];
    }
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            for (int j = 0; j < nr; j++) ci[j] = alpha * acc[i][j];
        else
            for (int j = 0; j < nr; j++) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
}

#ifdef FM_GEMM_X86

/* ---------------------------------------------------------------- AVX2 kernel: 6 x 16 */

#define A2_MR 6
#define A2_NR 16

/* Twelve ymm accumulators, two B loads and six broadcasts per k step. mr is a constant
 * at every call site so the row loops unroll and the accumulators live in registers;
 * columns past nr are masked off in the write-back. */
static inline __attribute__((always_inline, target("avx2,fma")))
void avx2_tile(const int mr, float *c, int64_t ldc, const float *a, const float *b,
               int64_t kc, float alpha, float beta, int nr)
{
    __m256 c0[A2_MR], c1[A2_MR];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) { c0[i] = _mm256_setzero_ps(); c1[i] = _mm256_setzero_ps(); }
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
        }
        a += A2_MR;
        b += A2_NR;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), iota);
    __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), iota);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        __m256 r0 = _mm256_mul_ps(va, c0[i]), r1 = _mm256_mul_ps(va, c1[i]);
        if (beta != 0.0f) {
            r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci, m0), r0);
            r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci + 8, m1), r1);
        }
        _mm256_maskstore_ps(ci, m0, r0);
        _mm256_maskstore_ps(ci + 8, m1, r1);
    }
}

__attribute__((target("avx2,fma")))
static void ukernel_avx2(float *c, int64_t ldc, const float *a, const float *b,
                         int64_t kc, float alpha, float beta, int mr, int nr)
{
    switch (mr) {
    case 6: avx2_tile(6, c, ldc, a, b, kc, alpha, beta, nr); break;
    case 5: avx2_tile(5, c, ldc, a, b, kc, alpha, beta, nr); break;
    case 4: avx2_tile(4, c, ldc, a, b, kc, alpha, beta, nr); break;
    case 3: avx2_tile(3, c, ldc, a, b, kc, alpha, beta, nr); break;
    case 2: avx2_tile(2, c, ldc, a, b, kc, alpha, beta, nr); break;
    default: avx2_tile(1, c, ldc, a, b, kc, alpha, beta, nr); break;
    }
}

/* ---------------------------------------------------------------- AVX-512 kernels */

/* 14 x 32: 28 zmm accumulators, two B loads and fourteen broadcasts per k step, enough
 * independent FMAs to hide Zen 4's latency with load slots to spare; a last panel of at
 * most 16 columns computes only those (half the work). When C has at most 16 columns
 * (ten classes) half of that tile would be padding, so a 28 x 16 twin takes over: one B
 * load per 28 FMAs. */
#define A5_MR 14
#define A5_NR 32
#define A5N_MR 28
#define A5N_NR 16

/* Computes `rows` rows (a constant, so loops unroll and accumulators stay in registers)
 * of nv zmm columns from A panels amr wide and B panels anr wide, and stores the first mr
 * rows and nr columns.
 * Rows between mr and rows are packing zeros: computing them lets seven instances of
 * the tile cover every mr. */
static inline __attribute__((always_inline, target("avx512f,fma")))
void avx512_tile(const int rows, const int nv, const int amr, const int anr, float *c, int64_t ldc,
                 const float *a, const float *b, int64_t kc, float alpha, float beta,
                 int mr, int nr)
{
    __m512 c0[A5N_MR], c1[A5N_MR];
#pragma GCC unroll 32
    for (int i = 0; i < rows; i++) { c0[i] = _mm512_setzero_ps(); c1[i] = _mm512_setzero_ps(); }
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(b), b1 = nv == 2 ? _mm512_load_ps(b + 16) : b0;
#pragma GCC unroll 32
        for (int i = 0; i < rows; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            if (nv == 2) c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
        a += amr;
        b += anr;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : nr <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nr - 16)) - 1);
#pragma GCC unroll 32
    for (int i = 0; i < rows; i++) {
        if (i >= mr) break;
        float *ci = c + i * ldc;
        __m512 r0 = _mm512_mul_ps(va, c0[i]);
        if (beta != 0.0f) r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
        _mm512_mask_storeu_ps(ci, m0, r0);
        if (nv == 2) {
            __m512 r1 = _mm512_mul_ps(va, c1[i]);
            if (beta != 0.0f) r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
            _mm512_mask_storeu_ps(ci + 16, m1, r1);
        }
    }
}

/* Picks the smallest of seven row counts (multiples of amr / 7) that covers mr. */
static inline __attribute__((always_inline, target("avx512f,fma")))
void avx512_rows(const int nv, const int amr, const int anr, float *c, int64_t ldc, const float *a,
                 const float *b, int64_t kc, float alpha, float beta, int mr, int nr)
{
    switch ((mr - 1) / (amr / 7)) {
    case 0: avx512_tile(1 * amr / 7, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    case 1: avx512_tile(2 * amr / 7, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    case 2: avx512_tile(3 * amr / 7, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    case 3: avx512_tile(4 * amr / 7, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    case 4: avx512_tile(5 * amr / 7, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    case 5: avx512_tile(6 * amr / 7, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    default: avx512_tile(amr, nv, amr, anr, c, ldc, a, b, kc, alpha, beta, mr, nr); break;
    }
}

__attribute__((target("avx512f,fma")))
static void ukernel_avx512(float *c, int64_t ldc, const float *a, const float *b,
                           int64_t kc, float alpha, float beta, int mr, int nr)
{
    if (nr <= 16)
        avx512_rows(1, A5_MR, A5_NR, c, ldc, a, b, kc, alpha, beta, mr, nr);
    else
        avx512_rows(2, A5_MR, A5_NR, c, ldc, a, b, kc, alpha, beta, mr, nr);
}

__attribute__((target("avx512f,fma")))
static void ukernel_avx512_narrow(float *c, int64_t ldc, const float *a, const float *b,
                                  int64_t kc, float alpha, float beta, int mr, int nr)
{
    avx512_rows(1, A5N_MR, A5N_NR, c, ldc, a, b, kc, alpha, beta, mr, nr);
}

/* ---------------------------------------------------------------- transposing pack */

/* dst[p * w + r] = src[r * lds + p] for r < rows, zero for rows <= r < w: the packing
 * that turns rows of the source into columns of a panel (A untransposed, B transposed).
 * Element by element this is a strided scatter; 8 x 8 register transposes make it a
 * stream of full-width loads and stores. A panel at least 8 wide whose width is not a
 * multiple of 8 (AVX-512's 14 rows) ends with a block that overlaps the one before it
 * (rows 6..13), rewriting two rows with the same values: masked stores (vmaskmovps) are
 * slow on Zen 4, overlapping full ones are not (one thread, the MLP's dX = dY W 64x256x256:
 * 94 -> 85 us; its eight GEMMs of a step 820 -> 781 us). Narrower panels (AVX2's 6) mask. */
__attribute__((target("avx2")))
static void pack_transpose_avx(float *dst, int w, const float *src, int64_t lds, int rows, int64_t kc)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int64_t kc8 = kc & ~(int64_t)7;
    for (int r8 = 0; r8 < w; r8 += 8) {
        int r0 = w >= 8 && r8 + 8 > w ? w - 8 : r8;
        int live = rows - r0 < 0 ? 0 : rows - r0 > 8 ? 8 : rows - r0;
        __m256i wmask = _mm256_cmpgt_epi32(_mm256_set1_epi32(w - r0), iota);
        const float *s[8];
        for (int q = 0; q < 8; q++) s[q] = q < live ? src + (r0 + q) * lds : src;
        for (int64_t p = 0; p < kc8; p += 8) {
            __m256 v[8], t[8];
            for (int q = 0; q < 8; q++) v[q] = q < live ? _mm256_loadu_ps(s[q] + p) : _mm256_setzero_ps();
            t[0] = _mm256_unpacklo_ps(v[0], v[1]); t[1] = _mm256_unpackhi_ps(v[0], v[1]);
            t[2] = _mm256_unpacklo_ps(v[2], v[3]); t[3] = _mm256_unpackhi_ps(v[2], v[3]);
            t[4] = _mm256_unpacklo_ps(v[4], v[5]); t[5] = _mm256_unpackhi_ps(v[4], v[5]);
            t[6] = _mm256_unpacklo_ps(v[6], v[7]); t[7] = _mm256_unpackhi_ps(v[6], v[7]);
            v[0] = _mm256_shuffle_ps(t[0], t[2], 0x44); v[1] = _mm256_shuffle_ps(t[0], t[2], 0xEE);
            v[2] = _mm256_shuffle_ps(t[1], t[3], 0x44); v[3] = _mm256_shuffle_ps(t[1], t[3], 0xEE);
            v[4] = _mm256_shuffle_ps(t[4], t[6], 0x44); v[5] = _mm256_shuffle_ps(t[4], t[6], 0xEE);
            v[6] = _mm256_shuffle_ps(t[5], t[7], 0x44); v[7] = _mm256_shuffle_ps(t[5], t[7], 0xEE);
            t[0] = _mm256_permute2f128_ps(v[0], v[4], 0x20); t[4] = _mm256_permute2f128_ps(v[0], v[4], 0x31);
            t[1] = _mm256_permute2f128_ps(v[1], v[5], 0x20); t[5] = _mm256_permute2f128_ps(v[1], v[5], 0x31);
            t[2] = _mm256_permute2f128_ps(v[2], v[6], 0x20); t[6] = _mm256_permute2f128_ps(v[2], v[6], 0x31);
            t[3] = _mm256_permute2f128_ps(v[3], v[7], 0x20); t[7] = _mm256_permute2f128_ps(v[3], v[7], 0x31);
            float *d = dst + p * w + r0;
            if (r0 + 8 <= w)
                for (int q = 0; q < 8; q++) _mm256_storeu_ps(d + q * w, t[q]);
            else
                for (int q = 0; q < 8; q++) _mm256_maskstore_ps(d + q * w, wmask, t[q]);
        }
        for (int64_t p = kc8; p < kc; p++) {
            float *d = dst + p * w + r0;
            for (int q = 0; q < 8 && r0 + q < w; q++) d[q] = q < live ? s[q][p] : 0.0f;
        }
    }
}

/* dst[p * w + j] = src[p * lds + j] for j < len, zero for len <= j < w: the packing that
 * copies rows of the source into a panel (A transposed, B untransposed), a row of a panel
 * (w <= 32) in one or two masked AVX-512 loads and stores. Packing the MLP's 64 x 784
 * input into 32-wide panels took 5.5 us in the plain loops' SSE2 code, 3.7 us so (one
 * thread); the MLP step's weight-gradient GEMMs ~8 us less. */
__attribute__((target("avx512f")))
static void pack_copy_avx512(float *dst, int w, const float *src, int64_t lds, int len, int64_t kc)
{
    const __mmask16 l0 = (__mmask16)((1u << (len < 16 ? len : 16)) - 1);
    const __mmask16 l1 = (__mmask16)(len > 16 ? (1u << (len - 16)) - 1 : 0);
    const __mmask16 w0 = (__mmask16)((1u << (w < 16 ? w : 16)) - 1);
    const __mmask16 w1 = (__mmask16)(w > 16 ? (1u << (w - 16)) - 1 : 0);
    for (int64_t p = 0; p < kc; p++, src += lds, dst += w) {
        _mm512_mask_storeu_ps(dst, w0, _mm512_maskz_loadu_ps(l0, src));
        if (w > 16) _mm512_mask_storeu_ps(dst + 16, w1, _mm512_maskz_loadu_ps(l1, src + 16));
    }
}

#endif /* FM_GEMM_X86 */

static const struct fm_gemm_impl impl_portable = {ukernel_portable, P_MR, P_NR, P_MR, P_NR, 256, 128, 2048, 0};
#ifdef FM_GEMM_X86
static const struct fm_gemm_impl impl_avx2 = {ukernel_avx2, A2_MR, A2_NR, 1, A2_NR, 256, 120, 2048, 1};
static const struct fm_gemm_impl impl_avx512 = {ukernel_avx512, A5_MR, A5_NR, A5_MR / 7, 16, 384, 168, 2048, 2};
static const struct fm_gemm_impl impl_avx512_narrow = {ukernel_avx512_narrow, A5N_MR, A5N_NR, A5N_MR / 7, 16, 384, 168, 2048, 2};
#endif

/* ---------------------------------------------------------------- packing */

/* op(A)[i0:i0+mc, p0:p0+kc] into MR-row panels, each (kc, MR) with rows past mc zeroed,
 * so the kernel reads one layout whatever the transpose. */
static void pack_a(float *dst, const float *a, int64_t lda, enum fm_trans ta,
                   int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr, int avx)
{
#ifndef FM_GEMM_X86
    (void)avx;
#endif
    for (int64_t ip = 0; ip < mc; ip += mr, dst += kc * mr) {
        int rows = mc - ip < mr ? (int)(mc - ip) : mr;
        if (ta == FM_TRANS) {
            const float *src = a + p0 * lda + i0 + ip;
#ifdef FM_GEMM_X86
            if (avx == 2 && mr <= 32) {
                pack_copy_avx512(dst, mr, src, lda, rows, kc);
                continue;
            }
#endif
            for (int64_t p = 0; p < kc; p++, src += lda) {
                float *d = dst + p * mr;
                for (int i = 0; i < rows; i++) d[i] = src[i];
                for (int i = rows; i < mr; i++) d[i] = 0.0f;
            }
        } else {
#ifdef FM_GEMM_X86
            if (avx) {
                pack_transpose_avx(dst, mr, a + (i0 + ip) * lda + p0, lda, rows, kc);
                continue;
            }
#endif
            for (int i = 0; i < rows; i++) {
                const float *src = a + (i0 + ip + i) * lda + p0;
                for (int64_t p = 0; p < kc; p++) dst[p * mr + i] = src[p];
            }
            for (int i = rows; i < mr; i++)
                for (int64_t p = 0; p < kc; p++) dst[p * mr + i] = 0.0f;
        }
    }
}

/* op(B)[p0:p0+kc, j0:j0+nc] into NR-column panels, each (kc, NR), columns past nc zeroed. */
static void pack_b(float *dst, const float *b, int64_t ldb, enum fm_trans tb,
                   int64_t j0, int64_t nc, int64_t p0, int64_t kc, int nr, int avx)
{
#ifndef FM_GEMM_X86
    (void)avx;
#endif
    for (int64_t jp = 0; jp < nc; jp += nr, dst += kc * nr) {
        int cols = nc - jp < nr ? (int)(nc - jp) : nr;
        if (tb == FM_TRANS) {
#ifdef FM_GEMM_X86
            if (avx) {
                pack_transpose_avx(dst, nr, b + (j0 + jp) * ldb + p0, ldb, cols, kc);
                continue;
            }
#endif
            for (int j = 0; j < cols; j++) {
                const float *src = b + (j0 + jp + j) * ldb + p0;
                for (int64_t p = 0; p < kc; p++) dst[p * nr + j] = src[p];
            }
            for (int j = cols; j < nr; j++)
                for (int64_t p = 0; p < kc; p++) dst[p * nr + j] = 0.0f;
        } else {
            const float *src = b + p0 * ldb + j0 + jp;
#ifdef FM_GEMM_X86
            if (avx == 2 && nr <= 32) {
                pack_copy_avx512(dst, nr, src, ldb, cols, kc);
                continue;
            }
#endif
            for (int64_t p = 0; p < kc; p++, src += ldb) {
                float *d = dst + p * nr;
                for (int j = 0; j < cols; j++) d[j] = src[j];
                for (int j = cols; j < nr; j++) d[j] = 0.0f;
            }
        }
    }
}

/* ---------------------------------------------------------------- blocked driver */

struct gemm_problem {
    float *c;
    const float *a, *b;
    int64_t ldc, lda, ldb, m, n, k, kc;
    enum fm_trans ta, tb;
    float alpha, beta;
    const fm_gemm_tail *tail;
};

static int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }
static int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }

/* The tail writes C (not a scratch copy): not asked for scratch, or it does not apply. */
static int tail_writes_c(const struct gemm_problem *g)
{
    return !g->tail->scratch || g->beta != 0.0f || g->kc != g->k;
}

/* C[i0:i1, j0:j1] with this thread's pack buffers. k is blocked the same way for every
 * sub-block, and a micro-kernel computes each row and column of its tile alike whatever
 * the tile's size, so each element of C sees the same sequence of operations whichever
 * thread computes it. The tail runs on each mc x nc block as the last k block finishes
 * it, or, with scratch (one k block), on each row tile's rows of the block, computed into
 * ps instead of C. pre_a (pre_b), when not NULL, holds op(A) (op(B)) already packed
 * whole, every k block after the one before (pre_pack): its blocks are read there instead
 * of packed into pa (pb). */
static void gemm_block(const struct gemm_problem *g, const struct fm_gemm_impl *im,
                       int64_t i0, int64_t i1, int64_t j0, int64_t j1, float *pa, float *pb,
                       float *ps, const float *pre_a, const float *pre_b)
{
    const int mr = im->mr, nr = im->nr;
    const int64_t m_pad = round_up(g->m, mr), n_pad = round_up(g->n, nr);
    const int scratch = g->tail && !tail_writes_c(g);
    for (int64_t jc = j0; jc < j1; jc += im->nc_max) {
        int64_t nc = min64(im->nc_max, j1 - jc);
        for (int64_t pc = 0; pc < g->k; pc += g->kc) {
            int64_t kc = min64(g->kc, g->k - pc);
            /* later k blocks accumulate onto what the first one wrote */
            float beta = pc == 0 ? g->beta : 1.0f;
            const fm_gemm_tail *tail = pc + kc == g->k ? g->tail : NULL;
            const float *bb = pre_b ? pre_b + pc * n_pad + jc * kc : pb;
            if (!pre_b) pack_b(pb, g->b, g->ldb, g->tb, jc, nc, pc, kc, nr, im->avx_pack);
            for (int64_t ic = i0; ic < i1; ic += im->mc_max) {
                int64_t mc = min64(im->mc_max, i1 - ic);
                const float *ab = pre_a ? pre_a + pc * m_pad + ic * kc : pa;
                if (!pre_a) pack_a(pa, g->a, g->lda, g->ta, ic, mc, pc, kc, mr, im->avx_pack);
                if (scratch) { /* row tiles outer: the tail gets each tile's rows, nc wide */
                    for (int64_t ir = 0; ir < mc; ir += mr) {
                        int mrr = (int)min64(mr, mc - ir);
                        for (int64_t jr = 0; jr < nc; jr += nr)
                            im->kernel(ps + jr, nc, ab + ir * kc, bb + jr * kc, kc, g->alpha, beta,
                                       mrr, (int)min64(nr, nc - jr));
                        tail->fn(tail->ctx, ps, nc, ic + ir, jc, mrr, nc);
                    }
                    continue;
                }
                for (int64_t jr = 0; jr < nc; jr += nr) {
                    int nrr = (int)min64(nr, nc - jr);
                    const float *bp = bb + jr * kc;
                    for (int64_t ir = 0; ir < mc; ir += mr) {
                        int mrr = (int)min64(mr, mc - ir);
                        im->kernel(g->c + (ic + ir) * g->ldc + jc + jr, g->ldc, ab + ir * kc, bp,
                                   kc, g->alpha, beta, mrr, nrr);
                    }
                }
                if (tail) tail->fn(tail->ctx, g->c + ic * g->ldc + jc, g->ldc, ic, jc, mc, nc);
            }
        }
    }
}

/* op(A) (a_side) or op(B) whole into dst, k block after k block, in the panels gemm_block
 * reads: block pc of A starts at pc * round_up(m, mr) floats, of B at pc * round_up(n, nr). */
static void pre_pack(float *dst, const struct gemm_problem *g, const struct fm_gemm_impl *im,
                     int a_side)
{
    for (int64_t pc = 0; pc < g->k; pc += g->kc) {
        int64_t kc = min64(g->kc, g->k - pc);
        if (a_side)
            pack_a(dst + pc * round_up(g->m, im->mr), g->a, g->lda, g->ta, 0, g->m, pc, kc,
                   im->mr, im->avx_pack);
        else
            pack_b(dst + pc * round_up(g->n, im->nr), g->b, g->ldb, g->tb, 0, g->n, pc, kc,
                   im->nr, im->avx_pack);
    }
}

/* C = beta * C, the whole answer when k == 0 or alpha == 0 (A and B are not read). */
static void scale_c(float *c, int64_t ldc, int64_t m, int64_t n, float beta)
{
    for (int64_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            memset(ci, 0, (size_t)n * sizeof *ci);
        else
            for (int64_t j = 0; j < n; j++) ci[j] *= beta;
    }
}

enum fm_kernel fm_gemm_best_kernel(void)
{
    if (fm_cpu_has(FM_CPU_AVX512)) return FM_KERNEL_AVX512;
    if (fm_cpu_has(FM_CPU_AVX2)) return FM_KERNEL_AVX2;
    return FM_KERNEL_PORTABLE;
}

const char *fm_gemm_kernel_name(enum fm_kernel kernel)
{
    switch (kernel) {
    case FM_KERNEL_AUTO: return fm_gemm_kernel_name(fm_gemm_best_kernel());
    case FM_KERNEL_PORTABLE: return "portable";
    case FM_KERNEL_AVX2: return "avx2";
    case FM_KERNEL_AVX512: return "avx512";
    }
    return "unknown";
}

/* The kernel family and, for AVX-512, the tile that wastes least on n columns. */
static const struct fm_gemm_impl *impl_for(enum fm_kernel kernel, int64_t n)
{
#ifndef FM_GEMM_X86
    (void)n;
#endif
    if (kernel == FM_KERNEL_AUTO) kernel = fm_gemm_best_kernel();
    switch (kernel) {
    case FM_KERNEL_PORTABLE: return &impl_portable;
#ifdef FM_GEMM_X86
    case FM_KERNEL_AVX2: return fm_cpu_has(FM_CPU_AVX2) ? &impl_avx2 : NULL;
    case FM_KERNEL_AVX512:
        if (!fm_cpu_has(FM_CPU_AVX512)) return NULL;
        return n <= A5N_NR ? &impl_avx512_narrow : &impl_avx512;
#endif
    default: return NULL;
    }
}

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define FM_GEMM_SERIAL_MNK (1 << 17)

static double mnk(const fm_gemm_args *x) { return (double)x->m * (double)x->n * (double)x->k; }

/* One GEMM, checked and planned for a number of threads: its kernel, how threads share C,
 * and the pack buffer each thread needs. */
struct gemm_plan {
    struct gemm_problem g;
    const struct fm_gemm_impl *im;
    int nt, split_n; /* threads planned for (after capping), split C's columns, not rows */
    int64_t units, unit; /* C's rows or columns are shared in units of `unit` */
    int64_t chunks; /* > 0: C's split in this many chunks, which threads steal (gemm_share) */
    size_t pa_len, pb_len, ps_len, per_thread; /* floats: the packs, the tail's scratch, and a
                                                * thread's whole buffer */
    int work; /* blocks remain to compute (not done while planning) */
};

/* When the operand every thread of a split needs whole (A when C's columns are split) is
 * at most this many floats packed (512 KiB, in L2 beside the blocks it meets), each thread
 * packs it once and C is cut in chunks that threads can steal from one another
 * (gemm_share); larger, each thread computes one fixed part. */
#define FM_GEMM_PRE_PACK_MAX ((int64_t)1 << 17)
#define FM_GEMM_CHUNKS_PER_THREAD 4

/* Checks x and plans it for up to nt threads; an empty C, k == 0 or alpha == 0 is done
 * here (work = 0). Returns FM_OK or FM_EINVAL. */
static int gemm_plan(struct gemm_plan *p, const fm_gemm_args *x, enum fm_kernel kernel, int nt)
{
    const int64_t m = x->m, n = x->n, k = x->k;
    const struct fm_gemm_impl *im = impl_for(kernel, n);
    p->work = 0;
    p->nt = 1;
    p->chunks = 0;
    if (im == NULL || m < 0 || n < 0 || k < 0) return FM_EINVAL;
    if ((x->ta != FM_NO_TRANS && x->ta != FM_TRANS) || (x->tb != FM_NO_TRANS && x->tb != FM_TRANS))
        return FM_EINVAL;
    if (x->ldc < n || x->lda < (x->ta == FM_TRANS ? m : k) || x->ldb < (x->tb == FM_TRANS ? k : n))
        return FM_EINVAL;
    if (m == 0 || n == 0) return FM_OK;
    if (x->c == NULL) return FM_EINVAL;
    if (k == 0 || x->alpha == 0.0f) {
        scale_c(x->c, x->ldc, m, n, x->beta);
        if (x->tail) x->tail->fn(x->tail->ctx, x->c, x->ldc, 0, 0, m, n);
        return FM_OK;
    }
    if (x->a == NULL || x->b == NULL) return FM_EINVAL;

    struct gemm_problem g = {x->c, x->a, x->b, x->ldc, x->lda, x->ldb, m, n, k, 0, x->ta, x->tb,
                             x->alpha, x->beta, x->tail};
    int64_t nkb = (k + im->kc_max - 1) / im->kc_max;
    g.kc = (k + nkb - 1) / nkb;
    /* Threads take contiguous runs of rows or columns of C (in the kernel's steps) and
     * never split k, which keeps the result independent of nt.
     * Each thread packs its own copy of the operand it shares, so pick the split whose
     * busiest thread has the least work, counting a packed element as about eight
     * multiply-adds. */
    int64_t pm = (m + im->mr - 1) / im->mr, pn = (n + im->nr - 1) / im->nr;
    int64_t um = (m + im->mr_step - 1) / im->mr_step, un = (n + im->nr_step - 1) / im->nr_step;
    if (nt > um && nt > un) nt = (int)(um > un ? um : un);
    double rows_m = (double)min64((um + nt - 1) / nt * im->mr_step, m);
    double cols_n = (double)((un + nt - 1) / nt * im->nr_step);
    double cost_m = rows_m * (double)round_up(n, im->nr) * (double)k + 8.0 * (double)k * ((double)n + rows_m);
    double cost_n = (double)m * cols_n * (double)k + 8.0 * (double)k * ((double)m + cols_n);
    p->g = g;
    p->im = im;
    p->nt = nt;
    /* a tail with scratch gets runs of whole rows of C (up to nc_max columns), contiguous in
     * C's layout, as a split by rows gives them */
    p->split_n = nt > 1 && cost_n < cost_m && (x->tail == NULL || tail_writes_c(&g));
    p->units = p->split_n ? un : um;
    p->unit = p->split_n ? im->nr_step : im->mr_step;
    /* Buffers are sized for blocks of the whole of C, in case OpenMP grants fewer threads
     * than asked; pa_len is rounded so that pb, read with aligned loads, starts on 64 bytes. */
    p->pa_len = (size_t)round_up(min64(im->mc_max, pm * im->mr) * g.kc, 16);
    p->pb_len = (size_t)round_up(min64(im->nc_max, pn * im->nr) * g.kc, 16);
    int64_t shared = (p->split_n ? pm * im->mr : pn * im->nr) * k; /* pre-packed, floats */
    p->chunks = nt > 1 && shared <= FM_GEMM_PRE_PACK_MAX
                    ? min64(p->units, (int64_t)nt * FM_GEMM_CHUNKS_PER_THREAD) : 0;
    p->ps_len = x->tail && !tail_writes_c(&g) ? (size_t)round_up(im->mr * min64(im->nc_max, n), 16) : 0;
    p->per_thread = p->pa_len + p->pb_len + p->ps_len + (size_t)(p->chunks ? round_up(shared, 16) : 0);
    p->work = 1;
    return FM_OK;
}

/* Part c of `parts` equal runs of C's rows or columns (as the plan splits them). */
static void gemm_part(const struct gemm_plan *p, int64_t c, int64_t parts, float *pa, float *pb,
                      float *ps, const float *pre)
{
    const struct gemm_problem *g = &p->g;
    int64_t q0 = p->units * c / parts * p->unit;
    int64_t q1 = min64(p->units * (c + 1) / parts * p->unit, p->split_n ? g->n : g->m);
    if (q1 <= q0) return;
    if (p->split_n)
        gemm_block(g, p->im, 0, g->m, q0, q1, pa, pb, ps, pre, NULL);
    else
        gemm_block(g, p->im, q0, q1, 0, g->n, pa, pb, ps, NULL, pre);
}

/* Takes a chunk from a run of chunks [front, back) kept in one word (front in the low 32
 * bits): the front one for the run's owner, the back one for a thread stealing. 0 when the
 * run is empty. */
static int take_chunk(int64_t *run, int steal, int64_t *chunk)
{
    int64_t v = __atomic_load_n(run, __ATOMIC_RELAXED);
    for (;;) {
        int64_t front = v & 0xffffffff, back = v >> 32;
        if (front >= back) return 0;
        int64_t nv = steal ? front | (back - 1) << 32 : (front + 1) | back << 32;
        if (__atomic_compare_exchange_n(run, &v, nv, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            *chunk = steal ? back - 1 : front;
            return 1;
        }
    }
}

/* The runs of a planned GEMM's chunks, one a planned thread: run r holds chunks
 * [chunks r / nt, chunks (r + 1) / nt). */
static void init_runs(const struct gemm_plan *p, int64_t *runs)
{
    for (int64_t r = 0; r < p->nt; r++)
        runs[r] = p->chunks * r / p->nt | (p->chunks * (r + 1) / p->nt) << 32;
}

/* Thread t's share of a planned GEMM run by `team` threads, with its pack buffer: part t of
 * team, or, when the plan has chunks, the shared operand packed once, then the chunks of
 * its runs in order (runs r = t, t + team, ...: the part a fixed share would give it),
 * then chunks stolen from the backs of the other runs. A thread that runs slowly for a
 * while leaves its last chunks to the others instead of holding them up: in this VM's slow
 * phases the two threads of a split finished up to a third apart (study MLP, whose epoch
 * took ~5% less with stealing there, the same in quiet phases). */
static void gemm_share(const struct gemm_plan *p, int t, int team, float *buf, int64_t *runs)
{
    if (!p->work) return;
    float *pa = buf, *pb = pa + p->pa_len, *ps = pb + p->pb_len, *pre = ps + p->ps_len;
    if (!p->chunks) {
        gemm_part(p, t, team, pa, pb, ps, NULL);
        return;
    }
    pre_pack(pre, &p->g, p->im, p->split_n);
    int64_t c;
    for (int64_t r = t; r < p->nt; r += team)
        while (take_chunk(&runs[r], 0, &c)) gemm_part(p, c, p->chunks, pa, pb, ps, pre);
    for (int64_t i = 1; i <= p->nt; i++)
        while (take_chunk(&runs[(t + i) % p->nt], 1, &c)) gemm_part(p, c, p->chunks, pa, pb, ps, pre);
}

/* Runs planned GEMMs (one, or a pair) in one parallel region of nt threads: a single GEMM
 * on all of them; a pair on half each (first on threads [0, h), second on [h, team)), or
 * one after the other when OpenMP grants one thread. */
static int gemm_run(const struct gemm_plan *first, const struct gemm_plan *second, int nt)
{
    if (!first->work && (second == NULL || !second->work)) return FM_OK;
    size_t per_thread = first->work ? first->per_thread : 0;
    if (second && second->work && second->per_thread > per_thread) per_thread = second->per_thread;
    /* the threads' pack buffers (multiples of 16 floats), then the GEMMs' runs of chunks */
    size_t floats = (size_t)nt * per_thread, n_runs = (size_t)first->nt + (second ? (size_t)second->nt : 0);
    float *buf = fm_alloc(floats * sizeof(float) + n_runs * sizeof(int64_t));
    if (buf == NULL) return FM_ENOMEM;
    int64_t *runs = (int64_t *)(buf + floats);
    init_runs(first, runs);
    if (second) init_runs(second, runs + first->nt);

    fm_parallel_region region = fm_parallel_fork();
    FM_OMP(omp parallel num_threads(nt) if (nt > 1))
    {
        int t = 0, team = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        fm_parallel_arrive(&region);
        float *mine = buf + (size_t)t * per_thread;
        if (second == NULL) {
            gemm_share(first, t, team, mine, runs);
        } else if (team == 1) {
            gemm_share(first, 0, 1, mine, runs);
            gemm_share(second, 0, 1, mine, runs + first->nt);
        } else {
            int h = team / 2;
            if (t < h) gemm_share(first, t, h, mine, runs);
            else gemm_share(second, t - h, team - h, mine, runs + first->nt);
        }
    }
    fm_parallel_join(&region);
    fm_free(buf);
    return FM_OK;
}

/* Threads for GEMMs of `work` multiply-adds in all: one below FM_GEMM_SERIAL_MNK, capped
 * (each thread owns pack buffers). */
static int gemm_threads(double work, int nthreads)
{
#ifdef _OPENMP
    return work < FM_GEMM_SERIAL_MNK ? 1 : fm_parallel_threads(nthreads);
#else
    (void)work;
    (void)nthreads;
    return 1;
#endif
}

int fm_gemm(float *c, int64_t ldc, const float *a, int64_t lda, enum fm_trans ta,
            const float *b, int64_t ldb, enum fm_trans tb,
            int64_t m, int64_t n, int64_t k, float alpha, float beta,
            enum fm_kernel kernel, int nthreads)
{
    return fm_gemm_fused(c, ldc, a, lda, ta, b, ldb, tb, m, n, k, alpha, beta, NULL, kernel,
                         nthreads);
}

int fm_gemm_fused(float *c, int64_t ldc, const float *a, int64_t lda, enum fm_trans ta,
                  const float *b, int64_t ldb, enum fm_trans tb,
                  int64_t m, int64_t n, int64_t k, float alpha, float beta,
                  const fm_gemm_tail *tail, enum fm_kernel kernel, int nthreads)
{
    const fm_gemm_args x = {c, ldc, a, lda, ta, b, ldb, tb, m, n, k, alpha, beta, tail};
    return fm_gemm_pair(&x, NULL, kernel, nthreads);
}

int fm_gemm_pair(const fm_gemm_args *first, const fm_gemm_args *second, enum fm_kernel kernel,
                 int nthreads)
{
    struct gemm_plan p, q;
    int status;
    if (second == NULL) {
        status = gemm_plan(&p, first, kernel, gemm_threads(mnk(first), nthreads));
        return status != FM_OK ? status : gemm_run(&p, NULL, p.nt);
    }
    int nt = gemm_threads(mnk(first) + mnk(second), nthreads), h = nt / 2 > 0 ? nt / 2 : 1;
    status = gemm_plan(&p, first, kernel, h);
    if (status == FM_OK) status = gemm_plan(&q, second, kernel, nt - h > 0 ? nt - h : 1);
    return status != FM_OK ? status : gemm_run(&p, &q, nt);
}

static inline float at(const float *p, int64_t ld, enum fm_trans t, int64_t i, int64_t j)
{
    return t == FM_TRANS ? p[j * ld + i] : p[i * ld + j];
}

void fm_gemm_naive(float *c, int64_t ldc, const float *a, int64_t lda, enum fm_trans ta,
                   const float *b, int64_t ldb, enum fm_trans tb,
                   int64_t m, int64_t n, int64_t k, float alpha, float beta)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t p = 0; p < k; p++) s += (double)at(a, lda, ta, i, p) * at(b, ldb, tb, p, j);
            float v = alpha * (float)s;
            c[i * ldc + j] = beta == 0.0f ? v : v + beta * c[i * ldc + j];
        }
}
