/* augment.h: training-time image augmentation, drawn per sample from a seeded generator so
 * that a training run is reproducible whatever the thread count. Images are (H, W, C)
 * channels-last float blocks. */
#ifndef FM_AUGMENT_H
#define FM_AUGMENT_H

#include <stdint.h>

#include "core/common.h"

typedef struct {
    int64_t shift;  /* random translation by -shift..shift pixels in each direction, zero
                       filled (= zero padding by `shift` then a random crop); 0: off */
    int flip;       /* mirror left-right with probability 1/2 */
    float erase;    /* probability of random erasing: one rectangle of 2%..33% of the area,
                       aspect ratio 0.3..3.3 (log-uniform), set to 0 (one attempt) */
} fm_augment;

/* 1 when any augmentation is on. */
int fm_augment_active(const fm_augment *aug);

/* dst = a random augmentation of src, drawn from the stream (seed, task) (apart from the
 * streams other kernels derive from the same seed).  dst, src: (h, w, c), not aliased. */
void fm_augment_image(float *dst, const float *src, int64_t h, int64_t w, int64_t c,
                      const fm_augment *aug, uint64_t seed, uint64_t task);

#endif
