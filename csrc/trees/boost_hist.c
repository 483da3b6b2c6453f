/* boost_hist.c: the booster's inner loops (declared in boost_hist.h): one feature's
 * gradient/hessian/count histograms over a leaf's rows, the subtraction that gives the
 * larger child's, and the threshold scan: of one feature (portable) and of eight features at
 * once (AVX-512), the same splits.
 * Not here: the tree's growth and the rounds (boost.c). */
#include "trees/boost_hist.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define FM_BOOST_X86 1
#include <immintrin.h>
#endif

/* both kernels of the scan round each product and sum apart, so they agree to the bit:
 * GCC takes the functions' optimize attributes, clang ignores them and takes this */
#ifdef __clang__
#pragma clang fp contract(off)
#endif

/* one bin's 2 doubles as one 16-byte vector add (GCC and clang vector types: an SSE2 addpd
 * on x86-64; 2 scalar adds elsewhere) */
typedef double v2d __attribute__((vector_size(16)));

/* Rows outside, features inside, in blocks of features whose bins fit the L2 cache: a row's
 * gradient is loaded once a block, its codes are one cache line, and consecutive adds go to
 * different features' bins, so none waits on the store of the one before (column by column,
 * runs of background pixels, code 0 in most rows, chained every add on the last). */
#define FEATURE_BLOCK 16

/* big -= small over len doubles: the larger child's bins from its parent's, block by block
 * while the smaller child's are still in L2 */
static void subtract(double *big, const double *small, int64_t len)
{
    for (int64_t i = 0; i < len; i++) big[i] -= small[i];
}

/* Some of the features (feature subsampling): every listed feature's bin gets its adds. */
static void hist_dense(double *hist, double *parent, const uint8_t *code_rows,
                       const int64_t *rows, const double *gh, const int64_t *feats,
                       const int64_t *hoff, const int64_t *nbins, int64_t m, int64_t d,
                       int64_t nf)
{
    for (int64_t q0 = 0; q0 < nf; q0 += FEATURE_BLOCK) {
        int64_t nq = nf - q0 < FEATURE_BLOCK ? nf - q0 : FEATURE_BLOCK;
        int64_t fs[FEATURE_BLOCK];
        double *base[FEATURE_BLOCK];
        for (int64_t q = 0; q < nq; q++) {
            fs[q] = feats[q0 + q];
            base[q] = hist + FM_BOOST_LANES * hoff[fs[q]];
            memset(base[q], 0, (size_t)nbins[fs[q]] * FM_BOOST_LANES * sizeof(double));
        }
        for (int64_t j = 0; j < m; j++) {
            const uint8_t *r = code_rows + (rows ? rows[j] : j) * d;
            v2d g;
            memcpy(&g, gh + FM_BOOST_LANES * j, sizeof g);
            for (int64_t q = 0; q < nq; q++) {
                double *h = base[q] + FM_BOOST_LANES * r[fs[q]];
                v2d a;
                memcpy(&a, h, sizeof a);
                a += g;
                memcpy(h, &a, sizeof a);
            }
        }
        if (parent)
            for (int64_t q = 0; q < nq; q++)
                subtract(parent + FM_BOOST_LANES * hoff[fs[q]], base[q],
                         FM_BOOST_LANES * nbins[fs[q]]);
    }
}

/* All features: only the nonzero codes are added (code 0, the background pixel, is most of
 * an image: LightGBM skips its most frequent bin the same way), in blocks of 64 features
 * (a row's codes are one cache line, the block's bins 256 KB of L2); then each feature's
 * bin 0 = the leaf's sums - its other bins. The kernels add the same values in the same
 * order (rows ascending, a row's features ascending), so their histograms are identical. */
#define SPARSE_BLOCK 64

static inline __attribute__((always_inline)) void add_row(double *const *base, const uint8_t *r,
                                                         uint64_t nonzero, v2d g)
{
    for (; nonzero; nonzero &= nonzero - 1) {
        int q = __builtin_ctzll(nonzero);
        double *h = base[q] + FM_BOOST_LANES * r[q];
        v2d a;
        memcpy(&a, h, sizeof a);
        a += g;
        memcpy(h, &a, sizeof a);
    }
}

/* Rows ahead whose codes are fetched while a row is added: a block reads 64 bytes of each
 * 784-byte row, a stride the hardware prefetcher does not follow across pages, so without
 * it the root's pass (its rows' codes 15.7 MB at 20,000 rows, read once per block) waited
 * on memory for every row. */
#define PREFETCH_ROWS 12

static inline __attribute__((always_inline)) void prefetch_row(const uint8_t *code_rows,
                                                              const int64_t *rows, int64_t j,
                                                              int64_t m, int64_t d, int64_t q0)
{
    if (j + PREFETCH_ROWS >= m) return;
    const uint8_t *p = code_rows + (rows ? rows[j + PREFETCH_ROWS] : j + PREFETCH_ROWS) * d + q0;
    __builtin_prefetch(p);
    __builtin_prefetch(p + 63);
}

/* One block's adds: base[q] is feature q0 + q's bins. */
static void block_portable(double *const *base, const uint8_t *code_rows, const int64_t *rows,
                           const double *gh, int64_t m, int64_t d, int64_t q0, int64_t nq)
{
    for (int64_t j = 0; j < m; j++) {
        const uint8_t *r = code_rows + (rows ? rows[j] : j) * d + q0;
        prefetch_row(code_rows, rows, j, m, d, q0);
        uint64_t bits = 0;
        for (int64_t q = 0; q < nq; q++) bits |= (uint64_t)(r[q] != 0) << q;
        v2d g;
        memcpy(&g, gh + FM_BOOST_LANES * j, sizeof g);
        add_row(base, r, bits, g);
    }
}

#ifdef FM_BOOST_X86
__attribute__((target("avx512f,avx512bw")))
static void block_avx512(double *const *base, const uint8_t *code_rows, const int64_t *rows,
                         const double *gh, int64_t m, int64_t d, int64_t q0, int64_t nq)
{
    __mmask64 in = nq >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << nq) - 1);
    for (int64_t j = 0; j < m; j++) {
        const uint8_t *r = code_rows + (rows ? rows[j] : j) * d + q0;
        prefetch_row(code_rows, rows, j, m, d, q0);
        __m512i c = _mm512_maskz_loadu_epi8(in, r);
        v2d g;
        memcpy(&g, gh + FM_BOOST_LANES * j, sizeof g);
        add_row(base, r, (uint64_t)_mm512_test_epi8_mask(c, c), g);
    }
}
#endif

static void hist_sparse(double *hist, double *parent, const uint8_t *code_rows,
                        const int64_t *rows, const double *gh, const int64_t *hoff,
                        const int64_t *nbins, int64_t m, int64_t d, enum fm_kernel kernel)
{
    v2d total = {0.0, 0.0};
    for (int64_t j = 0; j < m; j++) {
        v2d g;
        memcpy(&g, gh + FM_BOOST_LANES * j, sizeof g);
        total += g;
    }
    for (int64_t q0 = 0; q0 < d; q0 += SPARSE_BLOCK) {
        int64_t nq = d - q0 < SPARSE_BLOCK ? d - q0 : SPARSE_BLOCK;
        double *base[SPARSE_BLOCK];
        for (int64_t q = 0; q < nq; q++) base[q] = hist + FM_BOOST_LANES * hoff[q0 + q];
        /* the block's bins (and the gaps after them) zeroed, filled, completed and
         * subtracted from the parent's while they are in L2 */
        int64_t len = FM_BOOST_LANES * (hoff[q0 + nq] - hoff[q0]);
        memset(base[0], 0, (size_t)len * sizeof(double));
#ifdef FM_BOOST_X86
        if (kernel == FM_KERNEL_AVX512)
            block_avx512(base, code_rows, rows, gh, m, d, q0, nq);
        else
#else
        (void)kernel;
#endif
            block_portable(base, code_rows, rows, gh, m, d, q0, nq);
        /* bin 0 = total - the other bins, each feature's summed in the order of its bins
         * but the block's features side by side: one feature at a time, the 255 adds of
         * its sum waited each on the one before */
        v2d rest[SPARSE_BLOCK];
        int64_t most = 0;
        for (int64_t q = 0; q < nq; q++) {
            rest[q] = (v2d){0.0, 0.0};
            most = nbins[q0 + q] > most ? nbins[q0 + q] : most;
        }
        for (int64_t b = 1; b < most; b++)
            for (int64_t q = 0; q < nq; q++)
                if (b < nbins[q0 + q]) {
                    v2d a;
                    memcpy(&a, base[q] + FM_BOOST_LANES * b, sizeof a);
                    rest[q] += a;
                }
        for (int64_t q = 0; q < nq; q++) {
            v2d zero = total - rest[q];
            memcpy(base[q], &zero, sizeof zero);
        }
        if (parent) subtract(parent + FM_BOOST_LANES * hoff[q0], base[0], len);
    }
}

int64_t fm_boost_layout(int64_t *hoff, int64_t *nbins, const int64_t *n_edges, int64_t d)
{
    int64_t used = 0;
    hoff[0] = 0;
    for (int64_t f = 0; f < d; f++) {
        nbins[f] = n_edges[f] + 1;
        hoff[f + 1] = hoff[f] + nbins[f] + FM_BOOST_HIST_PAD;
        used += nbins[f];
    }
    return used;
}

void fm_boost_hist_build(double *hist, double *parent, const uint8_t *code_rows,
                         const int64_t *rows, const double *gh, const int64_t *feats,
                         const int64_t *hoff, const int64_t *nbins, int64_t m, int64_t d,
                         int64_t nf, enum fm_kernel kernel)
{
    if (nf == d) /* feats lists every feature, ascending */
        hist_sparse(hist, parent, code_rows, rows, gh, hoff, nbins, m, d, kernel);
    else
        hist_dense(hist, parent, code_rows, rows, gh, feats, hoff, nbins, m, d, nf);
}

/* The root pass of every class (fm_boost_hist_root): rows outside, FM_BOOST_ROOT_BLOCK
 * features inside, as hist_sparse. */
_Static_assert(FM_BOOST_ROOT_BLOCK <= 64, "a block's codes are one 64-byte load");

static void root_block_portable(double *const *base, const uint8_t *code_rows,
                                const int64_t *rows, const double *ghr, int64_t stride,
                                int64_t m, int64_t d, int64_t q0, int64_t nq)
{
    for (int64_t j = 0; j < m; j++) {
        int64_t i = rows ? rows[j] : j;
        const uint8_t *r = code_rows + i * d + q0;
        const double *g = ghr + i * stride;
        prefetch_row(code_rows, rows, j, m, d, q0);
        for (int64_t q = 0; q < nq; q++) {
            if (!r[q]) continue;
            double *h = base[q] + stride * r[q];
            for (int64_t v = 0; v < stride; v++) h[v] += g[v];
        }
    }
}

#ifdef FM_BOOST_X86
__attribute__((target("avx512f,avx512bw")))
static void root_block_avx512(double *const *base, const uint8_t *code_rows,
                              const int64_t *rows, const double *ghr, int64_t stride,
                              int64_t m, int64_t d, int64_t q0, int64_t nq)
{
    __mmask64 in = nq >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << nq) - 1);
    for (int64_t j = 0; j < m; j++) {
        int64_t i = rows ? rows[j] : j;
        const uint8_t *r = code_rows + i * d + q0;
        const double *g = ghr + i * stride;
        prefetch_row(code_rows, rows, j, m, d, q0);
        __m512i c = _mm512_maskz_loadu_epi8(in, r);
        for (uint64_t bits = _mm512_test_epi8_mask(c, c); bits; bits &= bits - 1) {
            int q = __builtin_ctzll(bits);
            double *h = base[q] + stride * r[q];
            for (int64_t v = 0; v < stride; v += 8)
                _mm512_storeu_pd(h + v, _mm512_add_pd(_mm512_loadu_pd(h + v),
                                                      _mm512_loadu_pd(g + v)));
        }
    }
}
#endif

void fm_boost_hist_root(double *comb, const uint8_t *code_rows, const int64_t *rows,
                        const double *ghr, int64_t stride, const int64_t *hoff, int64_t m,
                        int64_t d, int64_t f0, int64_t f1, enum fm_kernel kernel)
{
    for (int64_t q0 = f0; q0 < f1; q0 += FM_BOOST_ROOT_BLOCK) {
        int64_t nq = f1 - q0 < FM_BOOST_ROOT_BLOCK ? f1 - q0 : FM_BOOST_ROOT_BLOCK;
        double *base[FM_BOOST_ROOT_BLOCK];
        for (int64_t q = 0; q < nq; q++) base[q] = comb + stride * hoff[q0 + q];
        memset(base[0], 0, (size_t)(stride * (hoff[q0 + nq] - hoff[q0])) * sizeof(double));
#ifdef FM_BOOST_X86
        if (kernel == FM_KERNEL_AVX512) {
            root_block_avx512(base, code_rows, rows, ghr, stride, m, d, q0, nq);
            continue;
        }
#else
        (void)kernel;
#endif
        root_block_portable(base, code_rows, rows, ghr, stride, m, d, q0, nq);
    }
}

void fm_boost_hist_root_class(double *hist, const double *comb, int64_t stride, int64_t c,
                              const double *total, const int64_t *hoff, const int64_t *nbins,
                              int64_t d)
{
    for (int64_t f = 0; f < d; f++) {
        double *h = hist + FM_BOOST_LANES * hoff[f];
        const double *s = comb + stride * hoff[f] + FM_BOOST_LANES * c;
        double rg = 0.0, rh = 0.0; /* hist_sparse's `rest`, lane by lane */
        for (int64_t b = 1; b < nbins[f]; b++) {
            h[2 * b] = s[stride * b];
            h[2 * b + 1] = s[stride * b + 1];
            rg += h[2 * b];
            rh += h[2 * b + 1];
        }
        h[0] = total[0] - rg;
        h[1] = total[1] - rh;
        for (int64_t b = nbins[f]; b < hoff[f + 1] - hoff[f]; b++) h[2 * b] = h[2 * b + 1] = 0.0;
    }
}

/* Left-side sums after each occupied bin but the last: gl, hl, the estimated count cl,
 * and the bin in at; returns how many. An empty bin's threshold splits the rows as the
 * occupied bin before it does, and the scan keeps the first of equal scores, so only
 * occupied bins are candidates (a small leaf occupies few of 256). */
static int64_t prefix(double *restrict gl, double *restrict hl, double *restrict cl,
                      double *restrict at, const double *restrict hist, int64_t nb,
                      double cnt_factor)
{
    double g = 0.0, h = 0.0, c = 0.0;
    int64_t len = 0;
    for (int64_t b = 0; b + 1 < nb; b++) {
        double hb = hist[2 * b + 1];
        if (hb == 0.0) continue; /* no rows (g is 0 too): the sums stay as they are */
        g += hist[2 * b];
        h += hb;
        c += (double)(int64_t)(hb * cnt_factor + 0.5);
        gl[len] = g;
        hl[len] = h;
        cl[len] = c;
        at[len++] = (double)b;
    }
    return len;
}

/* The candidate b: score num / den = gl^2 / l + gr^2 / r with l = hl + lambda,
 * r = hr + lambda. Offered when num > best * den, kept when num / den > best. */
static inline __attribute__((always_inline)) void offer(double *score, int64_t *bin, double *sums,
                                                        double num, double den, double b,
                                                        double g, double h, double c)
{
    if (!(num > *score * den)) return;
    double s = num / den;
    if (s > *score) {
        *score = s;
        *bin = (int64_t)b;
        sums[0] = g; sums[1] = h; sums[2] = c;
    }
}

/* One feature's best threshold: the candidates of prefix(), each within the limits offered
 * in bin order (products and sums rounded apart, no fused multiply-adds, as score8 does). */
__attribute__((optimize("fp-contract=off")))
void fm_boost_scan(double *score, int64_t *bin, double *sums, const double *hist, int64_t nb,
                   const double *total, const fm_boost_limits *lim, double *scratch)
{
    if (nb < 2) return;
    double *gl = scratch, *hl = scratch + 256, *cl = scratch + 512, *at = scratch + 768;
    int64_t len = prefix(gl, hl, cl, at, hist, nb, total[1] > 0.0 ? total[2] / total[1] : 0.0);
    const double G = total[0], H = total[1], C = total[2], lam = lim->lambda;
    for (int64_t b = 0; b < len; b++) {
        double gr = G - gl[b], hr = H - hl[b], cr = C - cl[b];
        if (cl[b] < lim->min_count || cr < lim->min_count || hl[b] < lim->min_hess ||
            hr < lim->min_hess)
            continue;
        double l = hl[b] + lam, r = hr + lam;
        double num = gl[b] * gl[b] * r + gr * gr * l, den = l * r;
        offer(score, bin, sums, num, den, at[b], gl[b], hl[b], cl[b]);
    }
}

#ifdef FM_BOOST_X86
/* fm_boost_scan's test and score of eight candidates (left sums g, h, c; lanes in): the
 * lanes within the limits, returned; num and den computed in every lane, the scores of
 * those lanes (products and sums rounded apart). */
__attribute__((target("avx512f"), optimize("fp-contract=off")))
static inline __mmask8 score8(__m512d *num, __m512d *den, __m512d g, __m512d h, __m512d c,
                              __mmask8 in, const double *total, const fm_boost_limits *lim)
{
    const __m512d lam = _mm512_set1_pd(lim->lambda), mc = _mm512_set1_pd(lim->min_count),
                  mh = _mm512_set1_pd(lim->min_hess);
    __m512d gr = _mm512_sub_pd(_mm512_set1_pd(total[0]), g),
            hr = _mm512_sub_pd(_mm512_set1_pd(total[1]), h),
            cr = _mm512_sub_pd(_mm512_set1_pd(total[2]), c);
    __mmask8 ok = in & _mm512_cmp_pd_mask(c, mc, _CMP_NLT_UQ) & _mm512_cmp_pd_mask(cr, mc, _CMP_NLT_UQ) &
                  _mm512_cmp_pd_mask(h, mh, _CMP_NLT_UQ) & _mm512_cmp_pd_mask(hr, mh, _CMP_NLT_UQ);
    __m512d l = _mm512_add_pd(h, lam), r = _mm512_add_pd(hr, lam);
    *num = _mm512_add_pd(_mm512_mul_pd(_mm512_mul_pd(g, g), r), _mm512_mul_pd(_mm512_mul_pd(gr, gr), l));
    *den = _mm512_mul_pd(l, r);
    return ok;
}

/* Eight features' scans, lane q feature feats[q] (nq <= 8 of them): per bin, the prefix sums
 * of prefix() in each lane (masked adds: a lane's empty bins add nothing), the candidates
 * and scores of fm_boost_scan; a candidate is kept for the replay unless num <= best * den
 * with the best as it was before the eight (the best only rises and den >= 0, so a dropped
 * one would fail offer's test too; a NaN keeps it). The replay offers each lane's kept
 * candidates in bin order, lane after lane. The masks of occupied bins and of candidates
 * within the limits are applied, not branched on: such branches follow the data and
 * mispredicted (without them a 20-round fit took about 5% less CPU time). */
__attribute__((target("avx512f"), optimize("fp-contract=off")))
static void scan8_avx512(double *score, int64_t *bin, double *sums, int64_t *feature,
                         const double *hist, const int64_t *feats, const int64_t *hoff,
                         const int64_t *nbins, int64_t nq, const double *total,
                         const fm_boost_limits *lim, double *rec)
{
    const __m512d half = _mm512_set1_pd(0.5), zero = _mm512_setzero_pd(),
                  cf = _mm512_set1_pd(total[1] > 0.0 ? total[2] / total[1] : 0.0),
                  best = _mm512_set1_pd(*score);
    int64_t off[8] = {0}, last[8] = {0}, top = 0;
    int n_rec[8] = {0};
    for (int64_t q = 0; q < nq; q++) {
        off[q] = FM_BOOST_LANES * hoff[feats[q]];
        last[q] = nbins[feats[q]] - 1; /* candidates b < last */
        top = last[q] > top ? last[q] : top;
    }
    const __m512i lasts = _mm512_loadu_si512(last);
    const double *src[8];
    for (int64_t q = 0; q < 8; q++) src[q] = hist + (q < nq ? off[q] : 0);
    __m512d g = zero, h = zero, c = zero, gs[4], hs[4];
    for (int64_t b = 0; b < top; b++) {
        int j = (int)(b & 3);
        if (j == 0) { /* bins b .. b + 3 of the eight features, transposed: gs[j], hs[j] */
            __m512d x[8];
            for (int64_t q = 0; q < 8; q++) {
                int64_t avail = q < nq ? last[q] + 1 - b : 0;
                avail = avail < 0 ? 0 : avail > 4 ? 4 : avail;
                x[q] = _mm512_maskz_loadu_pd((__mmask8)((1u << (2 * avail)) - 1), src[q] + 2 * b);
            }
            __m512d tg[4], th[4];
            for (int q = 0; q < 4; q++) { /* features 2q, 2q + 1: g (h) of bins 0..3 in pairs */
                tg[q] = _mm512_unpacklo_pd(x[2 * q], x[2 * q + 1]);
                th[q] = _mm512_unpackhi_pd(x[2 * q], x[2 * q + 1]);
            }
            __m512d ug0 = _mm512_shuffle_f64x2(tg[0], tg[1], 0x88), ug1 = _mm512_shuffle_f64x2(tg[0], tg[1], 0xDD),
                    ug2 = _mm512_shuffle_f64x2(tg[2], tg[3], 0x88), ug3 = _mm512_shuffle_f64x2(tg[2], tg[3], 0xDD),
                    uh0 = _mm512_shuffle_f64x2(th[0], th[1], 0x88), uh1 = _mm512_shuffle_f64x2(th[0], th[1], 0xDD),
                    uh2 = _mm512_shuffle_f64x2(th[2], th[3], 0x88), uh3 = _mm512_shuffle_f64x2(th[2], th[3], 0xDD);
            gs[0] = _mm512_shuffle_f64x2(ug0, ug2, 0x88); gs[2] = _mm512_shuffle_f64x2(ug0, ug2, 0xDD);
            gs[1] = _mm512_shuffle_f64x2(ug1, ug3, 0x88); gs[3] = _mm512_shuffle_f64x2(ug1, ug3, 0xDD);
            hs[0] = _mm512_shuffle_f64x2(uh0, uh2, 0x88); hs[2] = _mm512_shuffle_f64x2(uh0, uh2, 0xDD);
            hs[1] = _mm512_shuffle_f64x2(uh1, uh3, 0x88); hs[3] = _mm512_shuffle_f64x2(uh1, uh3, 0xDD);
        }
        __mmask8 in = _mm512_cmplt_epi64_mask(_mm512_set1_epi64(b), lasts);
        __m512d hb = hs[j], gb = gs[j];
        __mmask8 occ = in & _mm512_cmp_pd_mask(hb, zero, _CMP_NEQ_UQ);
        __m512d cb = _mm512_roundscale_pd(_mm512_add_pd(_mm512_mul_pd(hb, cf), half),
                                          _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        g = _mm512_mask_add_pd(g, occ, g, gb);
        h = _mm512_mask_add_pd(h, occ, h, hb);
        c = _mm512_mask_add_pd(c, occ, c, cb);
        __m512d num, den;
        __mmask8 ok = score8(&num, &den, g, h, c, occ, total, lim);
        __mmask8 keep = ok & _mm512_cmp_pd_mask(num, _mm512_mul_pd(best, den), _CMP_NLE_UQ);
        if (!keep) continue;
        double v[5][8];
        _mm512_storeu_pd(v[0], num); _mm512_storeu_pd(v[1], den); _mm512_storeu_pd(v[2], g);
        _mm512_storeu_pd(v[3], h); _mm512_storeu_pd(v[4], c);
        for (unsigned bits = keep; bits; bits &= bits - 1) {
            int lane = __builtin_ctz(bits);
            double *e = rec + 6 * (256 * lane + n_rec[lane]++);
            e[0] = v[0][lane]; e[1] = v[1][lane]; e[2] = (double)b; e[3] = v[2][lane];
            e[4] = v[3][lane]; e[5] = v[4][lane];
        }
    }
    for (int64_t q = 0; q < nq; q++) {
        double before = *score;
        for (int i = 0; i < n_rec[q]; i++) {
            const double *e = rec + 6 * (256 * q + i);
            offer(score, bin, sums, e[0], e[1], e[2], e[3], e[4], e[5]);
        }
        if (*score != before) *feature = feats[q];
    }
}
#endif

void fm_boost_scan_features(double *score, int64_t *bin, double *sums, int64_t *feature,
                            const double *hist, const int64_t *feats, const int64_t *hoff,
                            const int64_t *nbins, int64_t nf, const double *total,
                            const fm_boost_limits *lim, double *scratch, enum fm_kernel kernel)
{
#ifdef FM_BOOST_X86
    if (kernel == FM_KERNEL_AVX512) {
        for (int64_t q0 = 0; q0 < nf; q0 += 8)
            scan8_avx512(score, bin, sums, feature, hist, feats + q0, hoff, nbins,
                         nf - q0 < 8 ? nf - q0 : 8, total, lim, scratch);
        return;
    }
#endif
    (void)kernel;
    for (int64_t q = 0; q < nf; q++) {
        double before = *score;
        fm_boost_scan(score, bin, sums, hist + FM_BOOST_LANES * hoff[feats[q]], nbins[feats[q]],
                      total, lim, scratch);
        if (*score != before) *feature = feats[q]; /* a scan only ever raises the score */
    }
}
