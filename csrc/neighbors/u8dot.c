/* u8dot.c: blocks of exact uint8 dot products on the search's tiles (u8dot.h). Packs the
 * few rows, runs knn_tile.c's micro-kernels over the packed many, and copies each tile's
 * valid corner out (the edges of a block are not multiples of a tile). */
#include "neighbors/u8dot.h"

#include <string.h>

#include "neighbors/knn_tile.h"

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

static int sizes_ok(int64_t n, int64_t d) { return n >= 0 && d >= 1 && d <= (1 << 15); }

int64_t fm_u8dot_packed_size(int64_t n, int64_t d, enum fm_kernel kernel)
{
    const struct fm_knn_u8_impl *im = fm_knn_u8_impl(kernel, FM_KNN_EUCLIDEAN);
    if (im == NULL || !sizes_ok(n, d)) return 0;
    const int64_t np = round_up(n, im->width);
    return np * round_up(d, im->kalign) * im->elem + np * (int64_t)sizeof(int32_t);
}

int64_t fm_u8dot_tile_rows(enum fm_kernel kernel)
{
    const struct fm_knn_u8_impl *im = fm_knn_u8_impl(kernel, FM_KNN_EUCLIDEAN);
    return im == NULL ? 0 : im->mr;
}

int fm_u8dot_pack(void *bp, const uint8_t *b, int64_t n, int64_t d, enum fm_kernel kernel)
{
    const struct fm_knn_u8_impl *im = fm_knn_u8_impl(kernel, FM_KNN_EUCLIDEAN);
    if (im == NULL || !sizes_ok(n, d)) return FM_EINVAL;
    const int64_t np = round_up(n, im->width), dp = round_up(d, im->kalign);
    im->pack_x(bp, b, n, d, dp);
    int32_t *sum = (int32_t *)((uint8_t *)bp + np * dp * im->elem);
    fm_knn_row_sums(NULL, sum, b, n, d);
    memset(sum + n, 0, (size_t)(np - n) * sizeof *sum);
    return FM_OK;
}

int fm_u8dot_block(int32_t *out, int64_t ldo, const uint8_t *a, const void *bp, int64_t m,
                   int64_t n, int64_t d, enum fm_kernel kernel)
{
    const struct fm_knn_u8_impl *im = fm_knn_u8_impl(kernel, FM_KNN_EUCLIDEAN);
    if (im == NULL || !sizes_ok(n, d) || m < 0 || ldo < n) return FM_EINVAL;
    if (m == 0 || n == 0) return FM_OK;
    const int64_t np = round_up(n, im->width), dp = round_up(d, im->kalign);
    const int64_t mp = round_up(m, im->mr), step = dp * im->elem;
    const int32_t *sum = (const int32_t *)((const uint8_t *)bp + np * step);
    void *ap = fm_alloc((size_t)(mp * step));
    int32_t *dt = fm_alloc((size_t)(im->mr * im->width) * sizeof(int32_t));
    if (ap == NULL || dt == NULL) {
        fm_free(ap); fm_free(dt);
        return FM_ENOMEM;
    }
    im->pack_q(ap, a, m, mp, d, dp);
    if (im->begin) im->begin();
    for (int64_t i = 0; i < m; i += im->mr)
        for (int64_t j = 0; j < n; j += im->width) {
            const int64_t ri = m - i < im->mr ? m - i : im->mr;
            const int64_t rj = n - j < im->width ? n - j : im->width;
            im->tile(dt, im->width, (const uint8_t *)ap + i * step,
                     (const uint8_t *)bp + j * step, dp, sum + j);
            for (int64_t r = 0; r < ri; r++)
                memcpy(out + (i + r) * ldo + j, dt + r * im->width, (size_t)rj * sizeof *out);
        }
    if (im->end) im->end();
    fm_free(ap); fm_free(dt);
    return FM_OK;
}
