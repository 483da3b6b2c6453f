/* knn_tile.c: exact uint8 tiles (a few queries x a few dozen training rows) for knn.c: dot
 * products in AMX tiles (TDPBUUD), AVX-512 VNNI (VPDPBUSD) and AVX2 (VPMADDWD); sums of
 * absolute differences by VPSADBW in AVX-512 and AVX2; and a portable twin of each. Integers throughout: 784 * 255^2 <
 * 2^31, so every distance is exact. Not the search: tiling, threads and top-k are knn.c's. */
#include "neighbors/knn_tile.h"

#include <string.h>

#include "core/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#define FM_KNN_X86 1
#include <immintrin.h>
#endif

#define MR FM_KNN_MR

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/* dst: rows [0, round_up(n, width)) of x in panels of `rows` rows; a panel holds columns in
 * groups of g values, each group the panel's rows one after the other:
 * panel p, group c / g, row r at ((p * rows) * dp + c * rows + r * g). Missing rows and
 * columns past d are zero. */
#define PACK_PANELS(name, type)                                                              \
    static void name(type *dst, const uint8_t *x, int64_t n, int64_t d, int64_t dp,         \
                     int64_t rows, int64_t g, int64_t width)                                 \
    {                                                                                        \
        int64_t n_pad = round_up(n, width);                                                  \
        for (int64_t p0 = 0; p0 < n_pad; p0 += rows) {                                       \
            type *panel = dst + p0 * dp;                                                     \
            for (int64_t r = 0; r < rows; r++) {                                             \
                const uint8_t *xr = p0 + r < n ? x + (p0 + r) * d : NULL;                    \
                for (int64_t c = 0; c < dp; c += g) {                                        \
                    type *o = panel + c * rows + r * g;                                      \
                    for (int64_t t = 0; t < g; t++)                                          \
                        o[t] = (type)(xr && c + t < d ? xr[c + t] : 0);                      \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }
PACK_PANELS(pack_panels_u8, uint8_t)
PACK_PANELS(pack_panels_i16, int16_t)

/* dst: rows [0, rows) of q, dp columns each, value v -> v - shift (int8 when shift is 128) */
static void pack_rows_u8(uint8_t *dst, const uint8_t *q, int64_t n, int64_t rows, int64_t d,
                         int64_t dp, int shift)
{
    memset(dst, 0, (size_t)(rows * dp));
    for (int64_t i = 0; i < n && i < rows; i++)
        for (int64_t c = 0; c < d; c++) dst[i * dp + c] = (uint8_t)(q[i * d + c] - shift);
}

static void pack_q_plain(void *dst, const uint8_t *q, int64_t n, int64_t rows, int64_t d, int64_t dp)
{
    pack_rows_u8(dst, q, n, rows, d, dp, 0);
}

/* ---- keys of a row (struct fm_knn_u8_impl's keys): plain C, and AVX-512 below ---- */
static int squares_portable(int32_t *row, int64_t n, int32_t qsq, const int32_t *xsq, int32_t lim)
{
    int below = 0;
    for (int64_t j = 0; j < n; j++) {
        row[j] = (int32_t)((uint32_t)qsq + (uint32_t)xsq[j] - 2u * (uint32_t)row[j]);
        below |= row[j] < lim;
    }
    return below;
}

static int below_portable(int32_t *row, int64_t n, int32_t qsq, const int32_t *xsq, int32_t lim)
{
    (void)qsq; (void)xsq;
    int below = 0;
    for (int64_t j = 0; j < n; j++) below |= row[j] < lim;
    return below;
}

/* ---- portable: row-major rows, one (query, row) pair at a time ---- */
#define PORTABLE_WIDTH 16

static void pack_x_portable(void *dst, const uint8_t *x, int64_t n, int64_t d, int64_t dp)
{
    pack_panels_u8(dst, x, n, d, dp, 1, dp, PORTABLE_WIDTH);
}

static void tile_dot_portable(int32_t *dt, int64_t ldd, const void *qp, const void *xp,
                              int64_t dp, const int32_t *xsum)
{
    (void)xsum;
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < PORTABLE_WIDTH; j++) {
            const uint8_t *a = (const uint8_t *)qp + r * dp, *b = (const uint8_t *)xp + j * dp;
            int32_t s = 0;
            for (int64_t c = 0; c < dp; c++) s += a[c] * b[c];
            dt[r * ldd + j] = s;
        }
}

static void tile_manhattan_portable(int32_t *dt, int64_t ldd, const void *qp, const void *xp,
                                    int64_t dp, const int32_t *xsum)
{
    (void)xsum;
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < PORTABLE_WIDTH; j++) {
            const uint8_t *a = (const uint8_t *)qp + r * dp, *b = (const uint8_t *)xp + j * dp;
            int32_t s = 0;
            for (int64_t c = 0; c < dp; c++) s += a[c] > b[c] ? a[c] - b[c] : b[c] - a[c];
            dt[r * ldd + j] = s;
        }
}

static const struct fm_knn_u8_impl euclid_portable = {MR, PORTABLE_WIDTH, 1, 8, pack_x_portable,
                                                      pack_q_plain, tile_dot_portable, squares_portable,
                                                      NULL, NULL};
static const struct fm_knn_u8_impl manhattan_portable = {MR, PORTABLE_WIDTH, 1, 8, pack_x_portable,
                                                         pack_q_plain, tile_manhattan_portable,
                                                         below_portable, NULL, NULL};

#ifdef FM_KNN_X86
static int32_t load4(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static int64_t load8(const uint8_t *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ---- AVX-512 VNNI dot products: 6 queries x 64 rows (4 panels of 16) ----
 * vpdpbusd multiplies unsigned by signed bytes, so the queries go in as q - 128:
 * x.q = x.(q - 128) + 128 sum(x). */
static void pack_x_vnni(void *dst, const uint8_t *x, int64_t n, int64_t d, int64_t dp)
{
    pack_panels_u8(dst, x, n, d, dp, 16, 4, 64);
}

static void pack_q_vnni(void *dst, const uint8_t *q, int64_t n, int64_t rows, int64_t d, int64_t dp)
{
    pack_rows_u8(dst, q, n, rows, d, dp, 128);
}

__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void tile_dot_vnni(int32_t *dt, int64_t ldd, const void *qp, const void *xp,
                          int64_t dp, const int32_t *xsum)
{
    const uint8_t *q = qp, *x = xp;
    const int64_t ps = 16 * dp; /* bytes a panel */
    __m512i acc[MR][4];
    for (int r = 0; r < MR; r++)
        for (int p = 0; p < 4; p++) acc[r][p] = _mm512_setzero_si512();
    for (int64_t c = 0; c < dp; c += 4) {
        const uint8_t *xc = x + c * 16;
        __m512i b0 = _mm512_loadu_si512(xc), b1 = _mm512_loadu_si512(xc + ps),
                b2 = _mm512_loadu_si512(xc + 2 * ps), b3 = _mm512_loadu_si512(xc + 3 * ps);
        for (int r = 0; r < MR; r++) {
            __m512i a = _mm512_set1_epi32(load4(q + r * dp + c));
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], b0, a);
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], b1, a);
            acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], b2, a);
            acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], b3, a);
        }
    }
    for (int p = 0; p < 4; p++) {
        __m512i adj = _mm512_slli_epi32(_mm512_loadu_si512(xsum + 16 * p), 7);
        for (int r = 0; r < MR; r++)
            _mm512_storeu_si512(dt + r * ldd + 16 * p, _mm512_add_epi32(acc[r][p], adj));
    }
}

/* ---- AVX-512 Manhattan: 6 queries x 32 rows (4 panels of 8); vpsadbw sums 8 absolute
 * byte differences into each 64-bit lane, one lane a training row ---- */
static void pack_x_sad512(void *dst, const uint8_t *x, int64_t n, int64_t d, int64_t dp)
{
    pack_panels_u8(dst, x, n, d, dp, 8, 8, 32);
}

__attribute__((target("avx512f,avx512bw")))
static void tile_manhattan_avx512(int32_t *dt, int64_t ldd, const void *qp, const void *xp,
                                  int64_t dp, const int32_t *xsum)
{
    (void)xsum;
    const uint8_t *q = qp, *x = xp;
    const int64_t ps = 8 * dp;
    __m512i acc[MR][4];
    for (int r = 0; r < MR; r++)
        for (int p = 0; p < 4; p++) acc[r][p] = _mm512_setzero_si512();
    for (int64_t c = 0; c < dp; c += 8) {
        const uint8_t *xc = x + c * 8;
        __m512i b0 = _mm512_loadu_si512(xc), b1 = _mm512_loadu_si512(xc + ps),
                b2 = _mm512_loadu_si512(xc + 2 * ps), b3 = _mm512_loadu_si512(xc + 3 * ps);
        for (int r = 0; r < MR; r++) {
            __m512i a = _mm512_set1_epi64(load8(q + r * dp + c));
            acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_sad_epu8(b0, a));
            acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_sad_epu8(b1, a));
            acc[r][2] = _mm512_add_epi64(acc[r][2], _mm512_sad_epu8(b2, a));
            acc[r][3] = _mm512_add_epi64(acc[r][3], _mm512_sad_epu8(b3, a));
        }
    }
    for (int r = 0; r < MR; r++)
        for (int p = 0; p < 4; p++)
            _mm256_storeu_si256((__m256i *)(dt + r * ldd + 8 * p), _mm512_cvtepi64_epi32(acc[r][p]));
}

/* ---- AVX2 dot products: 6 queries x 16 rows (2 panels of 8) in int16, vpmaddwd summing
 * pairs of products into int32 (exact: 2 * 255^2 < 2^31) ---- */
static void pack_x_avx2(void *dst, const uint8_t *x, int64_t n, int64_t d, int64_t dp)
{
    pack_panels_i16(dst, x, n, d, dp, 8, 2, 16);
}

static void pack_q_avx2(void *dst, const uint8_t *q, int64_t n, int64_t rows, int64_t d, int64_t dp)
{
    int16_t *o = dst;
    memset(o, 0, (size_t)(rows * dp) * sizeof *o);
    for (int64_t i = 0; i < n && i < rows; i++)
        for (int64_t c = 0; c < d; c++) o[i * dp + c] = q[i * d + c];
}

__attribute__((target("avx2")))
static void tile_dot_avx2(int32_t *dt, int64_t ldd, const void *qp, const void *xp,
                          int64_t dp, const int32_t *xsum)
{
    (void)xsum;
    const int16_t *q = qp, *x = xp;
    const int64_t ps = 8 * dp; /* int16 values a panel */
    __m256i acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (int64_t c = 0; c < dp; c += 2) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(x + c * 8)),
                b1 = _mm256_loadu_si256((const __m256i *)(x + ps + c * 8));
        for (int r = 0; r < MR; r++) {
            int32_t pair;
            memcpy(&pair, q + r * dp + c, 4);
            __m256i a = _mm256_set1_epi32(pair);
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(b0, a));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(b1, a));
        }
    }
    for (int r = 0; r < MR; r++)
        for (int p = 0; p < 2; p++)
            _mm256_storeu_si256((__m256i *)(dt + r * ldd + 8 * p), acc[r][p]);
}

/* ---- AVX2 Manhattan: 6 queries x 8 rows (2 panels of 4) ---- */
static void pack_x_sad256(void *dst, const uint8_t *x, int64_t n, int64_t d, int64_t dp)
{
    pack_panels_u8(dst, x, n, d, dp, 4, 8, 8);
}

__attribute__((target("avx2")))
static void tile_manhattan_avx2(int32_t *dt, int64_t ldd, const void *qp, const void *xp,
                                int64_t dp, const int32_t *xsum)
{
    (void)xsum;
    const uint8_t *q = qp, *x = xp;
    const int64_t ps = 4 * dp;
    __m256i acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (int64_t c = 0; c < dp; c += 8) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(x + c * 4)),
                b1 = _mm256_loadu_si256((const __m256i *)(x + ps + c * 4));
        for (int r = 0; r < MR; r++) {
            __m256i a = _mm256_set1_epi64x(load8(q + r * dp + c));
            acc[r][0] = _mm256_add_epi64(acc[r][0], _mm256_sad_epu8(b0, a));
            acc[r][1] = _mm256_add_epi64(acc[r][1], _mm256_sad_epu8(b1, a));
        }
    }
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    for (int r = 0; r < MR; r++)
        for (int p = 0; p < 2; p++)
            _mm_storeu_si128((__m128i *)(dt + r * ldd + 4 * p),
                             _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(acc[r][p], even)));
}

/* ---- AMX dot products: 32 queries x 32 rows, four 16 x 16 int32 accumulator tiles ----
 * TDPBUUD multiplies unsigned by unsigned bytes, 64 a row of a tile. The queries' tiles are
 * 16 rows of 64 bytes straight from the row-major block (stride dp, a multiple of 64); a
 * training tile is 16 groups of 4 bytes for 16 rows, exactly a 16-row panel of the VNNI
 * packing, so the panels are AVX-512's with 64-byte groups of columns. */
struct amx_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

static void pack_x_amx(void *dst, const uint8_t *x, int64_t n, int64_t d, int64_t dp)
{
    pack_panels_u8(dst, x, n, d, dp, 16, 4, 32);
}

/* every tile 16 rows of 64 bytes: 0-3 accumulate, 4-5 queries, 6-7 training rows */
static void begin_amx(void)
{
    struct amx_config cfg = {.palette = 1};
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    /* not _tile_loadconfig: GCC 12's declares only 8 bytes of the 64 read, and the
     * stores to the rest were dropped */
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

__attribute__((target("amx-tile")))
static void end_amx(void)
{
    _tile_release();
}

__attribute__((target("amx-tile,amx-int8")))
static void tile_dot_amx(int32_t *dt, int64_t ldd, const void *qp, const void *xp,
                         int64_t dp, const int32_t *xsum)
{
    (void)xsum;
    const uint8_t *q = qp, *x = xp;
    const int64_t ps = 16 * dp; /* bytes a panel */
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    for (int64_t c = 0; c < dp; c += 64) {
        _tile_loadd(4, q + c, dp);
        _tile_loadd(5, q + 16 * dp + c, dp);
        _tile_loadd(6, x + c * 16, 64);
        _tile_loadd(7, x + ps + c * 16, 64);
        _tile_dpbuud(0, 4, 6);
        _tile_dpbuud(1, 4, 7);
        _tile_dpbuud(2, 5, 6);
        _tile_dpbuud(3, 5, 7);
    }
    _tile_stored(0, dt, ldd * 4);
    _tile_stored(1, dt + 16, ldd * 4);
    _tile_stored(2, dt + 16 * ldd, ldd * 4);
    _tile_stored(3, dt + 16 * ldd + 16, ldd * 4);
}

/* ---- AVX-512 keys: 16 a step, the tail masked ---- */
__attribute__((target("avx512f")))
static int squares_avx512(int32_t *row, int64_t n, int32_t qsq, const int32_t *xsq, int32_t lim)
{
    const __m512i q = _mm512_set1_epi32(qsq), l = _mm512_set1_epi32(lim);
    __mmask16 below = 0;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = n - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        __m512i v = _mm512_sub_epi32(_mm512_add_epi32(q, _mm512_maskz_loadu_epi32(m, xsq + j)),
                                     _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m, row + j), 1));
        _mm512_mask_storeu_epi32(row + j, m, v);
        below |= _mm512_mask_cmplt_epi32_mask(m, v, l);
    }
    return below != 0;
}

__attribute__((target("avx512f")))
static int below_avx512(int32_t *row, int64_t n, int32_t qsq, const int32_t *xsq, int32_t lim)
{
    (void)qsq; (void)xsq;
    const __m512i l = _mm512_set1_epi32(lim);
    __mmask16 below = 0;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = n - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        below |= _mm512_mask_cmplt_epi32_mask(m, _mm512_maskz_loadu_epi32(m, row + j), l);
    }
    return below != 0;
}

static const struct fm_knn_u8_impl dot_amx = {32, 32, 1, 64, pack_x_amx, pack_q_plain, tile_dot_amx,
                                               squares_avx512, begin_amx, end_amx};
static const struct fm_knn_u8_impl euclid_vnni = {MR, 64, 1, 8, pack_x_vnni, pack_q_vnni, tile_dot_vnni,
                                                  squares_avx512, NULL, NULL};
static const struct fm_knn_u8_impl manhattan_avx512 = {MR, 32, 1, 8, pack_x_sad512, pack_q_plain,
                                                       tile_manhattan_avx512, below_avx512, NULL, NULL};
static const struct fm_knn_u8_impl euclid_avx2 = {MR, 16, 2, 8, pack_x_avx2, pack_q_avx2, tile_dot_avx2,
                                                  squares_portable, NULL, NULL};
static const struct fm_knn_u8_impl manhattan_avx2 = {MR, 8, 1, 8, pack_x_sad256, pack_q_plain,
                                                     tile_manhattan_avx2, below_portable, NULL, NULL};
#endif /* FM_KNN_X86 */

void fm_knn_row_sums(int32_t *sq, int32_t *sum, const uint8_t *x, int64_t n, int64_t d)
{
    for (int64_t j = 0; j < n; j++) {
        int32_t s2 = 0, s1 = 0;
        for (int64_t c = 0; c < d; c++) {
            int32_t v = x[j * d + c];
            s2 += v * v;
            s1 += v;
        }
        if (sq) sq[j] = s2;
        if (sum) sum[j] = s1;
    }
}

enum fm_kernel fm_knn_best_kernel(void)
{
    if (fm_cpu_has(FM_CPU_AMXINT8)) return FM_KERNEL_AMX;
    if (fm_cpu_has(FM_CPU_AVX512VNNI)) return FM_KERNEL_AVX512;
    if (fm_cpu_has(FM_CPU_AVX2)) return FM_KERNEL_AVX2;
    return FM_KERNEL_PORTABLE;
}

const struct fm_knn_u8_impl *fm_knn_u8_impl(enum fm_kernel kernel, enum fm_knn_metric metric)
{
    int sad = metric == FM_KNN_MANHATTAN;
    if (kernel == FM_KERNEL_AUTO) kernel = fm_knn_best_kernel();
    switch (kernel) {
    case FM_KERNEL_PORTABLE: return sad ? &manhattan_portable : &euclid_portable;
#ifdef FM_KNN_X86
    case FM_KERNEL_AVX2:
        if (!fm_cpu_has(FM_CPU_AVX2)) return NULL;
        return sad ? &manhattan_avx2 : &euclid_avx2;
    case FM_KERNEL_AVX512:
        if (!fm_cpu_has(FM_CPU_AVX512VNNI)) return NULL;
        return sad ? &manhattan_avx512 : &euclid_vnni;
    case FM_KERNEL_AMX:
        if (!fm_cpu_has(FM_CPU_AMXINT8) || !fm_cpu_has(FM_CPU_AVX512BW)) return NULL;
        return sad ? &manhattan_avx512 : &dot_amx;
#endif
    default: return NULL;
    }
}
