/* features/hog.h: histograms of oriented gradients (Dalal and Triggs, 2005) of a batch of
 * grey images, computed as scikit-image's skimage.feature.hog computes them: central
 * differences (0 on the border rows and columns), each pixel's gradient magnitude added to
 * the one orientation bin its unsigned angle falls in (no interpolation), cells of
 * cell_rows x cell_cols pixels averaged, and every block of block_rows x block_cols cells
 * normalised on its own. Plain C, no Python. */
#ifndef FM_HOG_H
#define FM_HOG_H

#include <stdint.h>

/* A block's normalisation, with eps = 1e-5 as scikit-image: L1 v / (|v|_1 + eps); L1-sqrt
 * its square root; L2 v / sqrt(|v|^2 + eps^2); L2-Hys L2, clipped at 0.2, L2 again. */
enum fm_hog_norm { FM_HOG_L1 = 0, FM_HOG_L1_SQRT = 1, FM_HOG_L2 = 2, FM_HOG_L2_HYS = 3 };

typedef struct {
    int64_t height, width;          /* of each image */
    int64_t cell_rows, cell_cols;   /* pixels per cell */
    int64_t block_rows, block_cols; /* cells per block */
    int64_t orientations;           /* bins over [0, 180) degrees */
    enum fm_hog_norm norm;
    int transform_sqrt;             /* take the square root of every pixel first */
} fm_hog_params;

/* Features per image: (blocks down, blocks across, block_rows, block_cols, orientations)
 * in that order, as scikit-image's feature vector; 0 when the parameters are out of range
 * (sizes < 1, an unknown norm, more than FM_HOG_MOST_FEATURES features) or the image holds
 * no whole block. */
#define FM_HOG_MOST_FEATURES 1e9
int64_t fm_hog_n_features(const fm_hog_params *p);

/* out: (n, fm_hog_n_features(p)) float32; images: (n, height, width), bytes or finite
 * floats (non-negative with transform_sqrt). Images are spread over nthreads threads (<= 0:
 * OpenMP's default); each image's result is the same on any number of threads. The byte
 * images are worked in float64 from the start, the float images have their square root
 * and differences rounded to float32, as scikit-image does for each dtype.
 * FM_EINVAL for parameters fm_hog_n_features rejects, FM_ENOMEM. */
int fm_hog_u8(float *out, const uint8_t *images, int64_t n, const fm_hog_params *p, int nthreads);
int fm_hog_f32(float *out, const float *images, int64_t n, const fm_hog_params *p, int nthreads);

#endif
