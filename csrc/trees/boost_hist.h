/* boost_hist.h: the booster's inner kernels (boost_hist.c): gradient/hessian histograms
 * of a leaf over its features' bins (and its sibling's, by subtraction from the parent's),
 * the roots' of every class in one pass, and the scans for the best threshold (one feature's histogram; a leaf's features, eight at a time with
 * AVX-512). Used by boost.c; exported for the tests' naive NumPy twins (bind/boost.c). */
#ifndef FM_BOOST_HIST_H
#define FM_BOOST_HIST_H

#include <stdint.h>

#include "core/common.h"

/* A histogram bin is 2 doubles, gradient and hessian sums (one 16-byte add a row, as a
 * row's (g, h) enters). Double, not float: sums of tens of thousands of rows in float32
 * drift by whole units, and the scan, which maximises g^2 / h, picks exactly the bins
 * where the drift made a hessian sum near 0 (leaves of 20 rows got hessians of 0.002 and
 * values of 1000: issue 16's 0.80 on the study split). No row count: the scan estimates a
 * bin's rows as LightGBM does (below). */
#define FM_BOOST_LANES 2

/* Bins left unused after each feature's histogram in the booster's layout (hoff): 256 bins
 * of 16 bytes are 4 KB, so without them the same code of the features a row adds to falls
 * in one L1 set (and 4K-aliases the store before). */
#define FM_BOOST_HIST_PAD 4

/* The histograms' layout of d features, feature f's n_edges[f] + 1 bins: nbins (d) and
 * hoff (d + 1), FM_BOOST_HIST_PAD unused bins after each feature's; returns the bins in
 * use (the sum of nbins). */
int64_t fm_boost_layout(int64_t *hoff, int64_t *nbins, const int64_t *n_edges, int64_t d);

/* hist[hoff[f] + code] += gh[j] for each feature f in feats and the leaf's rows: row =
 * rows[j] (ascending), or j when rows is NULL (the root, read in order); code =
 * code_rows[row, f]. hist: (hoff[d], 2), the listed features' bins overwritten (the gaps
 * between features only when every feature is listed); code_rows: (n, d) row-major codes,
 * feature f's in [0, nbins[f]); gh: (m, 2) the leaf's gradients in the order of rows;
 * feats: (nf) ascending; hoff: (d + 1) with hoff[f + 1] >= hoff[f] + nbins[f]; nbins: (d).
 * With every feature listed (nf == d), only nonzero codes are added and each feature's
 * bin 0 is the leaf's sums minus its other bins (equal to the sum up to rounding).
 * parent: NULL, or the histogram of the leaf's parent (same layout), which becomes the
 * sibling's: parent -= hist over the listed features' bins (the gaps too when every
 * feature is listed), each block of features while it is in cache.
 * kernel: FM_KERNEL_PORTABLE or FM_KERNEL_AVX512 (AVX-512 BW; identical histograms). */
void fm_boost_hist_build(double *hist, double *parent, const uint8_t *code_rows,
                         const int64_t *rows, const double *gh, const int64_t *feats,
                         const int64_t *hoff, const int64_t *nbins, int64_t m, int64_t d,
                         int64_t nf, enum fm_kernel kernel);

/* The root's histograms of k classes in one pass. At a round's root every class's tree
 * has the same rows (the round's bag), so a row's (g, h) of all k classes, 2k doubles
 * padded with zeros to `stride` (a multiple of 8), is added at once to each nonzero code's
 * bin: one address and stride / 8 AVX-512 adds where k passes of fm_boost_hist_build made
 * k 16-byte adds, each at its own address. Features [f0, f1) (one thread's share: features
 * split among threads give the same sums). comb: (hoff[d], stride), the features' bins
 * overwritten (bin 0 left 0: fm_boost_hist_root_class fills it); ghr: (n, stride), row i's
 * (g, h) of class c at ghr[i * stride + 2 c]; stride: FM_BOOST_ROOT_STRIDE(k);
 * rows, code_rows, hoff, m, d as
 * fm_boost_hist_build's; kernel: FM_KERNEL_PORTABLE or FM_KERNEL_AVX512 (identical sums). */
#define FM_BOOST_ROOT_MAX_K 16 /* classes one pass takes: comb is 52 MB at 16 */
#define FM_BOOST_ROOT_STRIDE(k) ((2 * (k) + 7) / 8 * 8) /* doubles a bin of k classes */
/* features a pass over the rows takes: its bins, 16 x 260 x 192 bytes for 10 classes
 * (800 KB), stay in L2; callers give threads whole blocks */
#define FM_BOOST_ROOT_BLOCK 16
void fm_boost_hist_root(double *comb, const uint8_t *code_rows, const int64_t *rows,
                        const double *ghr, int64_t stride, const int64_t *hoff, int64_t m,
                        int64_t d, int64_t f0, int64_t f1, enum fm_kernel kernel);

/* Class c's histogram out of fm_boost_hist_root's comb into the layout of
 * fm_boost_hist_build (hist: (hoff[d], 2), the gaps 0), bin 0 = total - the other bins:
 * with total the class's (g, h) summed over the rows in order, the very histogram
 * fm_boost_hist_build makes of every feature, to the bit. */
void fm_boost_hist_root_class(double *hist, const double *comb, int64_t stride, int64_t c,
                              const double *total, const int64_t *hoff, const int64_t *nbins,
                              int64_t d);

/* The limits a split must respect. */
typedef struct {
    double min_count, min_hess, lambda;
} fm_boost_limits;

/* Best threshold of one feature: over b in [0, nb - 1), left = bins <= b, the split
 * maximising gl^2 / (hl + lambda) + gr^2 / (hr + lambda) (the first such b) with counts
 * >= min_count and hessians >= min_hess on both sides, if its score beats *score; then
 * *score, *bin and the left side's sums (sums: gl, hl, cl) are set. The score is computed
 * as one fraction, num / den, in double; the test num > *score * den picks candidates.
 * A side's count is estimated from its hessian as LightGBM 4 does (feature_histogram.hpp):
 * each bin's rows = (int)(its hessian * count / hessian sum of the leaf + 0.5). Rows whose
 * hessians are tiny (confidently classified) so count for little, and min_child_samples
 * also keeps a child from holding a sliver of the leaf's hessian: with exact counts, a
 * child of 20 rows of hessian 0.007 took a Newton step of -G/H = 1500 and the fit
 * diverged after 20 rounds (learning rate 0.2, study split), where LightGBM's did not.
 * The portable scan, the reference of fm_boost_scan_features' AVX-512 kernel.
 * hist: (nb <= 256, 2); total: the leaf's (g, h, count); scratch: (4 * 256) doubles. */
void fm_boost_scan(double *score, int64_t *bin, double *sums, const double *hist, int64_t nb,
                   const double *total, const fm_boost_limits *lim, double *scratch);

/* Doubles of scratch fm_boost_scan_features needs: the AVX-512 kernel's candidates, 6
 * doubles for each of 256 bins of 8 features (the portable one uses fm_boost_scan's 4 * 256). */
#define FM_BOOST_SCAN_SCRATCH (8 * 6 * 256)

/* fm_boost_scan of each feature feats[q] in turn, its histogram at hist + 2 hoff[f] with
 * nbins[f] bins; *feature = the last feature whose scan raised *score (left unchanged if
 * none did). kernel: FM_KERNEL_PORTABLE, fm_boost_scan feature by feature, or
 * FM_KERNEL_AVX512, eight features at once, each lane's prefix sums in the order of its
 * bins, the candidates that could beat the best as it was before the eight replayed
 * through fm_boost_scan's test in feature order: identical results.
 * hist: (hoff[d], 2); feats: (nf); scratch: (FM_BOOST_SCAN_SCRATCH) doubles. */
void fm_boost_scan_features(double *score, int64_t *bin, double *sums, int64_t *feature,
                            const double *hist, const int64_t *feats, const int64_t *hoff,
                            const int64_t *nbins, int64_t nf, const double *total,
                            const fm_boost_limits *lim, double *scratch, enum fm_kernel kernel);

#endif
