/* tree_split.c: the split search of one node (tree.c grows the tree): draws its features,
 * gathers their codes and finds the best threshold by class histograms over the node's bins
 * (doubles, int32 counts, or 16-bit class lanes when weights are whole; for small nodes,
 * also by sorting the node's codes). Not here: the node array, partition, the builder. */
#include "trees/tree_split.h"

#include <math.h>
#include <string.h>

#include "core/common.h"
#include "core/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#define FM_TREE_X86 1
#include <immintrin.h>
#endif

enum fm_kernel fm_tree_best_kernel(void)
{
#ifdef FM_TREE_X86
    if (fm_cpu_has(FM_CPU_AVX2)) return FM_KERNEL_AVX2;
#endif
    return FM_KERNEL_PORTABLE;
}

static double xlogx(double x) { return x > 0.0 ? x * log(x) : 0.0; }

/* Running split statistics while samples move from the right child to the left:
 * gini keeps sum_c c^2 per side, entropy sum_c c log c, each updated in O(1) per class. */
typedef struct { double wl, wr, sl, sr; int64_t nl; } running;

static void running_start(running *r, builder *b, double w, enum fm_criterion crit)
{
    r->wl = 0.0; r->wr = w; r->sl = 0.0; r->sr = 0.0; r->nl = 0;
    for (int64_t c = 0; c < b->kp; c++) {
        b->lcl[c] = 0.0;
        b->lcr[c] = b->lct[c];
        r->sr += crit == FM_GINI ? b->lct[c] * b->lct[c] : xlogx(b->lct[c]);
    }
}

static inline void running_move(running *r, builder *b, int64_t c, double h,
                                enum fm_criterion crit)
{
    double *cl = b->lcl, *cr = b->lcr;
    if (crit == FM_GINI) {
        r->sl += h * (2.0 * cl[c] + h);
        r->sr += h * (h - 2.0 * cr[c]);
    } else {
        r->sl += xlogx(cl[c] + h) - xlogx(cl[c]);
        r->sr += xlogx(cr[c] - h) - xlogx(cr[c]);
    }
    cl[c] += h;
    cr[c] -= h;
    r->wl += h;
    r->wr -= h;
}

static inline void offer(split *best, double proxy, int64_t feature, int64_t bin)
{
    if (proxy > best->proxy) {
        best->proxy = proxy;
        best->feature = feature;
        best->bin = bin;
    }
}

/* Gini: the proxy num / den = sl/wl + sr/wr, compared with the best without dividing first
 * (most candidates lose). */
static inline void gini_offer(split *best, double num, double den, int64_t feature, int64_t bin)
{
    if (num > best->proxy * den) offer(best, num / den, feature, bin);
}

/* Score the split "bins <= bin go left" if both sides are allowed: at least min_leaf
 * samples and min_weight (and some) weight each. */
static inline void running_score(const running *r, split *best, int64_t feature, int64_t bin,
                                 int64_t n_node, int64_t min_leaf, double min_weight,
                                 enum fm_criterion crit)
{
    if (r->nl < min_leaf || n_node - r->nl < min_leaf || r->wl <= 0.0 || r->wr <= 0.0 ||
        r->wl < min_weight || r->wr < min_weight)
        return;
    if (crit == FM_GINI)
        gini_offer(best, r->sl * r->wr + r->sr * r->wl, r->wl * r->wr, feature, bin);
    else
        offer(best, r->sl - xlogx(r->wl) + r->sr - xlogx(r->wr), feature, bin);
}

/* Gini scan step: move one bin's class sums h (kp entries, kp even, zero-padded) from the
 * right child to the left. The sums of squares change by sum_c h (2 cl + h) on the left and
 * sum_c h (h - 2 cr) on the right; summing each bin's change apart (two lanes, no branch)
 * keeps the running sums off the critical path. Exact in any order for integer weights. */
static inline void gini_move(running *r, double *restrict cl, double *restrict cr,
                             const double *restrict h, int64_t kp)
{
    double dl0 = 0.0, dl1 = 0.0, dr0 = 0.0, dr1 = 0.0, s0 = 0.0, s1 = 0.0;
    for (int64_t c = 0; c < kp; c += 2) {
        double a = h[c], b = h[c + 1];
        dl0 += a * (2.0 * cl[c] + a);
        dl1 += b * (2.0 * cl[c + 1] + b);
        dr0 += a * (a - 2.0 * cr[c]);
        dr1 += b * (b - 2.0 * cr[c + 1]);
        cl[c] += a; cl[c + 1] += b;
        cr[c] -= a; cr[c + 1] -= b;
        s0 += a; s1 += b;
    }
    r->sl += dl0 + dl1;
    r->sr += dr0 + dr1;
    r->wl += s0 + s1;
    r->wr -= s0 + s1;
}

/* Sums per bin of the samples' ws[j] into two histograms h1, h2 at AT(bin, j) (even and
 * odd samples: runs of one (bin, class) would otherwise chain every add on the store before
 * it), and the occupied bins into occ. */
#define FILL_TWO(h1, h2, AT, ws)                                                            \
    do {                                                                                    \
        int64_t j = 0;                                                                      \
        for (; j + 1 < m; j += 2) {                                                         \
            unsigned b0 = v[j], b1 = v[j + 1];                                              \
            h1[AT(b0, j)] += ws[j];                                                         \
            h2[AT(b1, j + 1)] += ws[j + 1];                                                 \
            seen[b0] = seen[b1] = 1;                                                        \
        }                                                                                   \
        if (j < m) {                                                                        \
            h1[AT(v[j], j)] += ws[j];                                                       \
            seen[v[j]] = 1;                                                                 \
        }                                                                                   \
    } while (0)

/* The bins marked in seen (256 bytes of 0 or 1) as a bitmask occ (the scans clear their
 * marks). Bytes rather than bits while filling: setting a bit is a
 * load, an or and a store, and runs of one bin chain each sample's on the store before it.
 * A multiply gathers 8 flag bytes into 8 bits (each byte lands on its own bit of the top
 * byte, without carries). */
static inline void occupancy(uint64_t *occ, uint8_t *seen)
{
    for (int q = 0; q < 4; q++) {
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) {
            uint64_t x;
            memcpy(&x, seen + 64 * q + 8 * i, 8);
            bits |= ((x * 0x0102040810204080ULL) >> 56) << (8 * i);
        }
        occ[q] = bits;
    }
}

#define AT_CLASS(bin, j) ((bin) * k + ys[j])
#define AT_BIN(bin, j) (bin)

/* Best split of one feature by a class histogram over its bins; only occupied bins are
 * visited (a 256-bit occupancy mask), so sparse nodes do not pay for 256 bins. Rows of the
 * histogram have b->kp (the present classes, rounded up to even) entries. Whole weights
 * (bootstrap counts) are summed in int32: exact, a shorter chain per add and half the
 * cache (two copies of 256 x 10 doubles overflow a 32 KB L1); each occupied row becomes
 * doubles before the scan, so both ways score identical numbers.
 * Returns 1 if the feature is not constant in the node. */
static int split_by_histogram(builder *b, const frame *fr, const uint8_t *v, int64_t f, double w,
                              split *best)
{
    const int64_t k = b->kp, *ys = b->yl;
    double *hw = b->hw;
    int32_t *hi = b->hi;
    int64_t *hn = b->hn, m = fr->end - fr->start;
    int counts = b->p->min_samples_leaf > 1; /* else any occupied bin makes a valid side */
    uint64_t occ[4];
    uint8_t *seen = b->seen;
    const int32_t *restrict wi = b->wi;
    const double *restrict wd = b->wd;
    if (b->whole) FILL_TWO(hi, (hi + 256 * k), AT_CLASS, wi);
    else FILL_TWO(hw, (hw + 256 * k), AT_CLASS, wd);
    if (counts)
        for (int64_t j = 0; j < m; j++) hn[v[j]]++;
    occupancy(occ, seen);
    int n_occ = 0;
    for (int q = 0; q < 4; q++) n_occ += __builtin_popcountll(occ[q]);
    enum fm_criterion crit = b->p->criterion;
    running r = {0, 0, 0, 0, 0};
    if (n_occ > 1) running_start(&r, b, w, crit);
    int scanned = 0;
    double *row = b->hrow; /* the bin's two copies summed, which are zeroed for the next use */
    for (int q = 0; q < 4; q++) {
        for (uint64_t bits = occ[q]; bits; bits &= bits - 1) {
            int64_t bin = q * 64 + __builtin_ctzll(bits);
            if (b->whole) {
                int32_t *i1 = hi + bin * k, *i2 = i1 + 256 * k;
                for (int64_t c = 0; c < k; c++) {
                    row[c] = (double)(i1[c] + i2[c]);
                    i1[c] = i2[c] = 0;
                }
            } else {
                double *d1 = hw + bin * k, *d2 = d1 + 256 * k;
                for (int64_t c = 0; c < k; c++) {
                    row[c] = d1[c] + d2[c];
                    d1[c] = d2[c] = 0.0;
                }
            }
            if (n_occ > 1) {
                if (crit == FM_GINI) {
                    gini_move(&r, b->lcl, b->lcr, row, k);
                } else {
                    for (int64_t c = 0; c < b->kk; c++)
                        if (row[c] != 0.0) running_move(&r, b, c, row[c], crit);
                }
                r.nl += counts ? hn[bin] : 1;
                if (++scanned < n_occ)
                    running_score(&r, best, f, bin, m, b->p->min_samples_leaf,
                                  b->min_weight_leaf, crit);
            }
            hn[bin] = 0;
            seen[bin] = 0;
        }
    }
    return n_occ > 1;
}

/* Gini, whole weights, at most LANE_CLASSES classes in the node and less than 2^16 weight:
 * a bin's class counts fit the 16-bit lanes of LANE_WORDS uint64 words (class c in lane
 * c % 4 of word c / 4; no carry can cross a lane), so a sample costs one add into a small
 * histogram (b->inc holds its weight shifted to its class's lane). The scan keeps the left
 * child's counts in lanes too (the right child's are the node's minus them, lane by lane
 * without borrows) and takes each side's weight and sum of squares from the lanes, without
 * a branch on which classes the bin holds. These are the exact integers the histogram
 * path's running sums reach, so the scores are identical. Needs min_samples_leaf 1 (no
 * sample counts) and no bound on a side's weight (the AVX2 scan tests none). */
#define AT_WORD(bin, j) ((bin) * nw + (ys[j] >> 2))

static inline void lane_sums(uint64_t x, uint64_t *sum, uint64_t *squares)
{
    for (int c = 0; c < 4; c++, x >>= 16) {
        uint64_t h = x & 0xFFFF;
        *sum += h;
        *squares += h * h;
    }
}

/* The scan of a filled lane histogram, h1 + h2 (nw words a bin), over the occupied bins occ
 * in order: the split after each bin offered to best (the last bin leaves no weight on the
 * right, and scores are exact integers, so it is refused like any empty side); the bins
 * and their marks in seen cleared. node: (nw) the node's class sums in lanes.
 * Returns the number of occupied bins. */
static int lane_scan(split *best, uint64_t *restrict h1, uint64_t *restrict h2,
                     uint8_t *restrict seen, const uint64_t *occ, const uint64_t *node,
                     int64_t nw, int64_t f, int64_t m)
{
    uint64_t left[LANE_WORDS] = {0};
    int scanned = 0;
    for (int q = 0; q < 4; q++) {
        for (uint64_t bits = occ[q]; bits; bits &= bits - 1) {
            int64_t bin = q * 64 + __builtin_ctzll(bits);
            uint64_t *x1 = h1 + bin * nw, *x2 = h2 + bin * nw, wl = 0, sl = 0, wr = 0, sr = 0;
            for (int64_t j = 0; j < nw; j++) {
                left[j] += x1[j] + x2[j];
                x1[j] = x2[j] = 0;
                lane_sums(left[j], &wl, &sl);
                lane_sums(node[j] - left[j], &wr, &sr);
            }
            seen[bin] = 0;
            running r = {(double)wl, (double)wr, (double)sl, (double)sr, ++scanned};
            running_score(&r, best, f, bin, m, 1, 0.0, FM_GINI);
        }
    }
    return scanned;
}

#ifdef FM_TREE_X86
/* Per 128-bit half (one bin's 8 lanes of left counts l): [sl, wl, sr, wr] as int32. madd
 * multiplies signed 16-bit lanes: exact while the node weighs less than 2^15, and then
 * sl <= w^2 < 2^30. */
static inline __attribute__((always_inline, target("avx2")))
__m256i lane_stats(__m256i l, __m256i node, __m256i ones)
{
    __m256i r = _mm256_sub_epi16(node, l);
    __m256i a = _mm256_hadd_epi32(_mm256_madd_epi16(l, l), _mm256_madd_epi16(l, ones));
    __m256i c = _mm256_hadd_epi32(_mm256_madd_epi16(r, r), _mm256_madd_epi16(r, ones));
    return _mm256_hadd_epi32(a, c);
}

/* lane_scan for nodes of weight below 2^15, four bins at a time: first the left counts after
 * each occupied bin (a 128-bit add a bin for words 0-1, another for word 2 when there is
 * one: its sums add to theirs), then each side's weight and sum of squares and
 * the test num > best * den for four bins at once, in the same doubles as gini_offer (exact
 * integers: products below 2^46). A side without weight has num = den = 0 and fails the
 * test for any best (-inf * 0 is NaN), so the last bin and the padding need no mask. The
 * bins that pass, a few in a hundred, go to gini_offer in order, which tests them again
 * against the best as it is by then: the same offers, in the same order, as lane_scan. */
__attribute__((target("avx2")))
static int lane_scan_avx2(split *best, uint64_t *restrict h1, uint64_t *restrict h2,
                          uint8_t *restrict seen, const uint64_t *occ, const uint64_t *node,
                          int64_t nw, int64_t f)
{
    __m128i left[256], left3[256]; /* words 0-1 and word 2 of the left counts */
    uint8_t bins[256];
    __m128i acc = _mm_setzero_si128(), acc3 = acc, zero = acc,
            nd = _mm_loadu_si128((const __m128i *)node),
            nd3 = nw == 3 ? _mm_loadl_epi64((const __m128i *)(node + 2)) : zero;
    int n = 0;
    for (int q = 0; q < 4; q++) {
        for (uint64_t bits = occ[q]; bits; bits &= bits - 1) {
            int64_t bin = q * 64 + __builtin_ctzll(bits);
            uint64_t *x1 = h1 + bin * nw, *x2 = h2 + bin * nw;
            if (nw == 1) {
                acc = _mm_add_epi16(acc, _mm_add_epi16(_mm_loadl_epi64((const __m128i *)x1),
                                                       _mm_loadl_epi64((const __m128i *)x2)));
                *x1 = *x2 = 0;
            } else {
                acc = _mm_add_epi16(acc, _mm_add_epi16(_mm_loadu_si128((const __m128i *)x1),
                                                       _mm_loadu_si128((const __m128i *)x2)));
                _mm_storeu_si128((__m128i *)x1, zero);
                _mm_storeu_si128((__m128i *)x2, zero);
            }
            if (nw == 3) {
                __m128i h3 = _mm_add_epi16(_mm_loadl_epi64((const __m128i *)(x1 + 2)),
                                           _mm_loadl_epi64((const __m128i *)(x2 + 2)));
                acc3 = _mm_add_epi16(acc3, h3);
                x1[2] = x2[2] = 0;
                left3[n] = acc3;
            }
            seen[bin] = 0;
            left[n] = acc;
            bins[n++] = (uint8_t)bin;
        }
    }
    for (int i = n; i & 3; i++) { /* all left, none right: never offered */
        left[i] = nd;
        left3[i] = nd3;
    }
    __m256i nd2 = _mm256_broadcastsi128_si256(nd), nd32 = _mm256_broadcastsi128_si256(nd3),
            ones = _mm256_set1_epi16(1);
    for (int i = 0; i < n; i += 4) {
        const __m256i *l = (const __m256i *)(left + i), *l3 = (const __m256i *)(left3 + i);
        __m256i c01 = lane_stats(_mm256_loadu_si256(l), nd2, ones);
        __m256i c23 = lane_stats(_mm256_loadu_si256(l + 1), nd2, ones);
        if (nw == 3) {
            c01 = _mm256_add_epi32(c01, lane_stats(_mm256_loadu_si256(l3), nd32, ones));
            c23 = _mm256_add_epi32(c23, lane_stats(_mm256_loadu_si256(l3 + 1), nd32, ones));
        }
        /* transposed: sl, wl, sr, wr of bins i, i+2, i+1, i+3 */
        __m256i u = _mm256_permute4x64_epi64(_mm256_unpacklo_epi32(c01, c23), 0xD8);
        __m256i v = _mm256_permute4x64_epi64(_mm256_unpackhi_epi32(c01, c23), 0xD8);
        __m256d sl = _mm256_cvtepi32_pd(_mm256_castsi256_si128(u));
        __m256d wl = _mm256_cvtepi32_pd(_mm256_extracti128_si256(u, 1));
        __m256d sr = _mm256_cvtepi32_pd(_mm256_castsi256_si128(v));
        __m256d wr = _mm256_cvtepi32_pd(_mm256_extracti128_si256(v, 1));
        __m256d num = _mm256_add_pd(_mm256_mul_pd(sl, wr), _mm256_mul_pd(sr, wl));
        __m256d den = _mm256_mul_pd(wl, wr);
        __m256d bar = _mm256_mul_pd(_mm256_set1_pd(best->proxy), den);
        int pass = _mm256_movemask_pd(_mm256_cmp_pd(num, bar, _CMP_GT_OQ));
        if (!pass) continue;
        double nums[4], dens[4];
        _mm256_storeu_pd(nums, num);
        _mm256_storeu_pd(dens, den);
        static const int at[4] = {0, 2, 1, 3}; /* bin i + j sits in element at[j] */
        pass = (pass & 9) | ((pass & 2) << 1) | ((pass & 4) >> 1); /* bit j: bin i + j */
        for (; pass; pass &= pass - 1) {
            int j = __builtin_ctz(pass);
            gini_offer(best, nums[at[j]], dens[at[j]], f, bins[i + j]);
        }
    }
    return n;
}
#endif

/* Best split of one feature by class lanes (see above). Returns 1 if the feature is not
 * constant in the node. */
static int split_by_lanes(builder *b, const frame *fr, const uint8_t *v, int64_t f, double w,
                          split *best)
{
    const int64_t nw = (b->kk + 3) / 4, *ys = b->yl, m = fr->end - fr->start;
    uint64_t *h1 = b->lanes, *h2 = b->lanes + 256 * LANE_WORDS, occ[4];
    uint8_t *seen = b->seen;
    const uint64_t *restrict inc = b->inc;
    if (nw == 1) FILL_TWO(h1, h2, AT_BIN, inc);
    else FILL_TWO(h1, h2, AT_WORD, inc);
    occupancy(occ, seen);
    uint64_t node[LANE_WORDS] = {0};
    for (int64_t c = 0; c < b->kk; c++) node[c >> 2] |= (uint64_t)b->lct[c] << (16 * (c & 3));
#ifdef FM_TREE_X86
    if (b->avx2 && w < 32768.0) return lane_scan_avx2(best, h1, h2, seen, occ, node, nw, f) > 1;
#endif
    return lane_scan(best, h1, h2, seen, occ, node, nw, f, m) > 1;
}

#define INSERTION_MAX 32 /* below, insertion sort beats counting sort's pass over 256 bins */

/* Best split of one feature on a small node: sort the node's codes (insertion sort when
 * tiny, else counting sort) and scan samples in order, O(1) per sample instead of O(k) per
 * bin. Same splits as the histogram. */
static int split_by_sorting(builder *b, const frame *fr, const uint8_t *v, int64_t f, double w,
                            split *best)
{
    int64_t m = fr->end - fr->start;
    uint32_t *keys = b->keys;
    uint32_t lo = 255, hi = 0;
    for (int64_t j = 0; j < m; j++) {
        uint32_t c = v[j];
        lo = c < lo ? c : lo;
        hi = c > hi ? c : hi;
        keys[j] = c << 16 | (uint32_t)j;
    }
    if (lo == hi) return 0;
    if (m <= INSERTION_MAX) {
        for (int64_t j = 1; j < m; j++) {
            uint32_t key = keys[j];
            int64_t i = j - 1;
            while (i >= 0 && keys[i] > key) { keys[i + 1] = keys[i]; i--; }
            keys[i + 1] = key;
        }
    } else {
        uint32_t start[256];
        memset(start + lo, 0, (hi - lo + 1) * sizeof(uint32_t));
        for (int64_t j = 0; j < m; j++) start[v[j]]++;
        for (uint32_t c = lo, pos = 0; c <= hi; c++) {
            uint32_t cnt = start[c];
            start[c] = pos;
            pos += cnt;
        }
        for (int64_t j = 0; j < m; j++) keys[start[v[j]]++] = (uint32_t)v[j] << 16 | (uint32_t)j;
    }
    enum fm_criterion crit = b->p->criterion;
    running r = {0, 0, 0, 0, 0};
    running_start(&r, b, w, crit);
    const int64_t *yl = b->yl, min_leaf = b->p->min_samples_leaf;
    const double min_weight = b->min_weight_leaf;
    const double *wd = b->wd;
    for (int64_t j = 0; j + 1 < m; j++) {
        int64_t pos = keys[j] & 0xFFFF;
        running_move(&r, b, yl[pos], wd[pos], crit);
        r.nl++;
        if ((keys[j] >> 16) != (keys[j + 1] >> 16))
            running_score(&r, best, f, keys[j] >> 16, m, min_leaf, min_weight, crit);
    }
    return 1;
}

/* known[depth] for every depth up to `depth` (rows of features known constant), grown on
 * demand; a new table copies the rows above. */
static int ensure_known(builder *b, int64_t depth)
{
    if (depth < b->known_cap) return FM_OK;
    int64_t cap = 2 * (depth + 1);
    uint64_t *k = fm_alloc((size_t)(cap * b->words) * sizeof(uint64_t));
    if (!k) return FM_ENOMEM;
    if (b->known) memcpy(k, b->known, (size_t)(b->known_cap * b->words) * sizeof(uint64_t));
    else memset(k, 0, (size_t)b->words * sizeof(uint64_t)); /* the root knows nothing */
    fm_free(b->known);
    b->known = k;
    b->known_cap = cap;
    return FM_OK;
}

/* Draw features in a random order (from the node's own generator) until max_features
 * non-constant ones were examined, as scikit-learn does; undo the draws afterwards so the
 * next node's order depends on its path only. Features constant in an ancestor are
 * constant here: they are drawn but not read. known[depth] holds them; this node's
 * children get known[depth + 1] = known[depth] plus the ones found here (depth-first
 * order means no pending node still needs the slot being overwritten). */
int fm_tree_find_split(builder *b, const frame *fr, double w, split *best)
{
    fm_rng rng;
    fm_rng_seed(&rng, b->seed, fr->path);
    int64_t d = b->d, drawn = 0, visited = 0, m = fr->end - fr->start, words = b->words;
    int small = m <= b->p->small_node, by_rows = b->rows && m <= ROW_GATHER;
    int64_t batch_start = 0, batch_end = 0, want = by_rows ? ROW_BATCH : 1;
    const int64_t *idx = b->idx + fr->start;
    best->feature = -1;
    best->bin = 0;
    best->proxy = -INFINITY;
    /* only the classes present in the node: deep nodes hold two or three of them, and a
     * histogram bin then costs two or three steps instead of k */
    b->kk = 0;
    for (int64_t c = 0; c < b->k; c++) {
        b->cmap[c] = b->ct[c] > 0.0 ? b->kk : 0;
        if (b->ct[c] > 0.0) b->lct[b->kk++] = b->ct[c];
    }
    b->kp = (b->kk + 1) & ~(int64_t)1;
    b->lct[b->kk] = 0.0; /* the padding class, if any: always empty */
    for (int64_t j = 0; j < m; j++) {
        b->yl[j] = b->cmap[b->ys[fr->start + j]];
        b->wd[j] = b->ws[fr->start + j];
    }
    int lanes = b->whole && b->p->criterion == FM_GINI && b->p->min_samples_leaf == 1 &&
                b->min_weight_leaf == 0.0 && b->kk <= LANE_CLASSES && w < 65536.0;
    if (lanes)
        for (int64_t j = 0; j < m; j++)
            b->inc[j] = (uint64_t)b->ws[fr->start + j] << (16 * (b->yl[j] & 3));
    else if (b->whole && !small)
        for (int64_t j = 0; j < m; j++) b->wi[j] = (int32_t)b->ws[fr->start + j];
    if (ensure_known(b, fr->depth + 1) != FM_OK) return FM_ENOMEM;
    const uint64_t *known = b->known + fr->depth * words;
    uint64_t *found = b->known + (fr->depth + 1) * words;
    memcpy(found, known, (size_t)words * sizeof(uint64_t));
    /* With gini and whole weights totalling at most 2^17, every proxy is a ratio of exact
     * integers (w^3 < 2^53): two pure children score exactly w, any other split less (by at
     * least 1 / w^2, far above rounding), and a later candidate must score strictly more.
     * So once a pure split is found nothing can replace it, and the features left to draw
     * need not be read (the children are leaves: their known-constant sets are not used). */
    while (drawn < d && visited < b->p->max_features && !(b->pure_is_final && best->proxy == w)) {
        if (drawn == batch_end) { /* draw ahead; the order of the draws is unchanged */
            int64_t got = 0, fs[ROW_BATCH];
            batch_start = drawn;
            for (batch_end = drawn; batch_end < d && got < want; batch_end++) {
                int64_t q = batch_end, j = q + (int64_t)fm_rng_below(&rng, (uint64_t)(d - q));
                int64_t f = b->feat[j];
                b->feat[j] = b->feat[q];
                b->feat[q] = f;
                b->swaps[q] = j;
                int skip = (known[f >> 6] >> (f & 63)) & 1;
                b->slot[q - batch_start] = skip ? -1 : got;
                if (!skip) fs[got++] = f;
            }
            uint8_t *restrict out = b->vals;
            if (by_rows) {
                const uint8_t *restrict rows = b->rows;
                for (int64_t i = 0; i < m; i++) {
                    const uint8_t *row = rows + idx[i] * d;
                    for (int64_t q = 0; q < got; q++) out[q * m + i] = row[fs[q]];
                }
            } else if (got) {
                const uint8_t *restrict col = b->codes + fs[0] * b->n;
                for (int64_t i = 0; i < m; i++) out[i] = col[idx[i]];
            }
        }
        int64_t f = b->feat[drawn], slot = b->slot[drawn - batch_start];
        drawn++;
        if (slot < 0) continue;
        const uint8_t *v = b->vals + slot * m;
        double before = best->proxy;
        int varies = lanes   ? split_by_lanes(b, fr, v, f, w, best)
                     : small ? split_by_sorting(b, fr, v, f, w, best)
                             : split_by_histogram(b, fr, v, f, w, best);
        if (best->proxy != before) memcpy(b->bestv, v, (size_t)m);
        if (!varies) found[f >> 6] |= 1ULL << (f & 63);
        visited += varies;
    }
    for (drawn = batch_end; drawn-- > 0;) {
        int64_t j = b->swaps[drawn], f = b->feat[j];
        b->feat[j] = b->feat[drawn];
        b->feat[drawn] = f;
    }
    return FM_OK;
}
