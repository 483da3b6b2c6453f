/* augment.c: random shifts, flips and erasing of one image at a time (the driver calls it
 * while it gathers a training batch). Not a data loader, no threads: one image is a few
 * hundred floats. */
#include <math.h>
#include <string.h>

#include "nn/augment.h"

int fm_augment_active(const fm_augment *aug)
{
    return aug != NULL && (aug->shift > 0 || aug->flip || aug->erase > 0.0f);
}

void fm_augment_image(float *dst, const float *src, int64_t h, int64_t w, int64_t c,
                      const fm_augment *aug, uint64_t seed, uint64_t task)
{
    fm_rng r, *rng = &r;
    fm_rng_seed(rng, seed ^ 0x6A09E667F3BCC908ULL, task);
    /* draws in a fixed order, each always taken, so one choice never shifts another's */
    int64_t span = 2 * aug->shift + 1;
    int64_t dy = (int64_t)fm_rng_below(rng, (uint64_t)span) - aug->shift;
    int64_t dx = (int64_t)fm_rng_below(rng, (uint64_t)span) - aug->shift;
    int flip = aug->flip && (fm_rng_next(rng) >> 63);
    float u_erase = fm_rng_uniform(rng), u_area = fm_rng_uniform(rng), u_ratio = fm_rng_uniform(rng);
    float u_top = fm_rng_uniform(rng), u_left = fm_rng_uniform(rng);

    /* dst(i, j) = src(i - dy, j' - dx), j' = j or w - 1 - j when flipped; zeros outside */
    for (int64_t i = 0; i < h; i++) {
        int64_t si = i - dy;
        float *row = dst + i * w * c;
        if (si < 0 || si >= h) { memset(row, 0, (size_t)(w * c) * sizeof(float)); continue; }
        for (int64_t j = 0; j < w; j++) {
            int64_t sj = (flip ? w - 1 - j : j) - dx;
            if (sj < 0 || sj >= w) memset(row + j * c, 0, (size_t)c * sizeof(float));
            else memcpy(row + j * c, src + (si * w + sj) * c, (size_t)c * sizeof(float));
        }
    }
    if (u_erase >= aug->erase) return;
    double area = (0.02 + u_area * (0.33 - 0.02)) * (double)(h * w);
    double ratio = exp(log(0.3) + u_ratio * (log(3.3) - log(0.3)));
    int64_t eh = (int64_t)lround(sqrt(area * ratio)), ew = (int64_t)lround(sqrt(area / ratio));
    if (eh < 1 || ew < 1 || eh >= h || ew >= w) return; /* torch retries; one attempt here */
    int64_t top = (int64_t)(u_top * (float)(h - eh + 1)), left = (int64_t)(u_left * (float)(w - ew + 1));
    top = top > h - eh ? h - eh : top;
    left = left > w - ew ? w - ew : left;
    for (int64_t i = top; i < top + eh; i++)
        memset(dst + (i * w + left) * c, 0, (size_t)(ew * c) * sizeof(float));
}
