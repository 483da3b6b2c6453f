/* gemm_pack.c: packing the GEMM's operands into the panels its micro-kernels read (one
 * layout whatever the transpose), with AVX transposes and AVX-512 masked copies when the
 * CPU has them. Not here: the kernels (gemm_kernels.c), blocking and threads (gemm.c). */
#include "core/gemm_impl.h"

#ifdef FM_GEMM_X86
#include <immintrin.h>

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

void fm_gemm_pack_a(float *dst, const float *a, int64_t lda, enum fm_trans ta,
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

void fm_gemm_pack_b(float *dst, const float *b, int64_t ldb, enum fm_trans tb,
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
