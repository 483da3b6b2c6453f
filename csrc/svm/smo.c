/* smo.c: one binary C-SVC solved by SMO as libsvm's Solver does it (Fan, Chen and Lin
 * 2005: second-order working-set selection, shrinking, gradient reconstruction, the same
 * stopping rule and rho), with one change of method: a kernel row that is not cached is
 * computed in a block with the rows most likely to be asked for next (the largest
 * violators), float rows through kernel.c, byte rows as exact integer dot products
 * (neighbors/u8dot.h: AMX-INT8 or AVX-512 VNNI tiles) against each class's rows packed once
 * per fit (ovo.c),
 * the extra rows cached as those integers until asked for (most never are).
 * Not the multiclass layer (ovo.c). */
#include <math.h>
#include <string.h>

#include "neighbors/u8dot.h"
#include "svm/svm.h"

#define TAU 1e-12
/* rows per kernel block: a miss computes the row asked for and up to BLOCK - 1 others;
 * byte rows take what one u8dot tile covers at the cost of one row (fm_u8dot_tile_rows:
 * 32 for AMX, 6 for VNNI). The dot products' time follows the tiles computed: on the full
 * study split AMX's 32 took 4,926 misses instead of 13,394 with 6, while on VNNI 32 rows
 * are six tiles and 6 computed 74,851 rows instead of 156,041 (-35% of the fit's CPU) */
#define BLOCK 8

/* ---------------------------------------------------------------- kernel-row cache */

/* libsvm's Cache: row i of Q over columns [0, len), least recently used rows evicted first
 * when the float budget runs out; cache_swaps keeps it consistent with the solver's swaps.
 * A raw row (byte rows only) holds instead the int32 dot products of the row at position i
 * with all len = l rows in the pair's original order: a block's extra row, turned into Q
 * values when first asked for (most extra rows never are), and never touched by swaps. */
typedef struct row_head {
    struct row_head *prev, *next; /* circular LRU list, the sentinel's next is the oldest */
    float *data;
    int64_t len;
    int raw;
} row_head;

typedef struct {
    row_head *head; /* (l) */
    row_head lru;
    int64_t size;   /* floats still free */
} row_cache;

static void lru_delete(row_head *h) { h->prev->next = h->next; h->next->prev = h->prev; }

static void lru_insert(row_cache *c, row_head *h)
{
    h->next = &c->lru;
    h->prev = c->lru.prev;
    h->prev->next = h;
    h->next->prev = h;
}

static void row_drop(row_cache *c, row_head *h)
{
    lru_delete(h);
    free(h->data);
    c->size += h->len;
    h->data = NULL;
    h->len = 0;
    h->raw = 0;
}

/* row i when it holds at least len values (then most recently used), else NULL */
static float *cache_lookup(row_cache *c, int64_t i, int64_t len)
{
    row_head *h = &c->head[i];
    if (h->len < len) return NULL;
    lru_delete(h);
    lru_insert(c, h);
    return h->data;
}

/* room for row i's [0, len), evicting the oldest rows; the values are the caller's to write */
static float *cache_reserve(row_cache *c, int64_t i, int64_t len)
{
    row_head *h = &c->head[i];
    if (h->len) lru_delete(h);
    int64_t more = len - h->len;
    if (more > 0) {
        while (c->size < more) row_drop(c, c->lru.next);
        float *data = realloc(h->data, (size_t)len * sizeof(float));
        if (!data) {
            if (h->len) lru_insert(c, h);
            return NULL;
        }
        h->data = data;
        c->size -= more;
        h->len = len;
    }
    lru_insert(c, h);
    return h->data;
}

/* The swaps (sw[2 t], sw[2 t + 1]) for t < n, in order, as libsvm's swap_index applies
 * each to the cache: the heads trade rows (both become most recently used), and every
 * cached row trades its values at the two positions, or is dropped when it covers the
 * first but not the second. Rows outer, swaps inner (the same result): a row's values are
 * touched while it is in cache, where swap after swap over all rows missed twice a row. */
static void cache_swaps(row_cache *c, const int64_t *sw, int64_t n)
{
    for (int64_t t = 0; t < n; t++) {
        row_head *hi = &c->head[sw[2 * t]], *hj = &c->head[sw[2 * t + 1]], h = *hi;
        if (hi->len) lru_delete(hi);
        if (hj->len) lru_delete(hj);
        hi->data = hj->data; hi->len = hj->len; hi->raw = hj->raw;
        hj->data = h.data; hj->len = h.len; hj->raw = h.raw;
        if (hi->len) lru_insert(c, hi);
        if (hj->len) lru_insert(c, hj);
    }
    for (row_head *h = c->lru.next, *next; h != &c->lru; h = next) {
        next = h->next;
        if (h->raw) continue; /* in the original order, which swaps do not change */
        for (int64_t t = 0; t < n; t++) {
            int64_t i = sw[2 * t], j = sw[2 * t + 1];
            if (i > j) { int64_t v = i; i = j; j = v; }
            if (h->len <= i) continue;
            if (h->len <= j) { row_drop(c, h); break; } /* cannot be kept consistent */
            float v = h->data[i]; h->data[i] = h->data[j]; h->data[j] = v;
        }
    }
}

static void cache_free(row_cache *c)
{
    if (!c->head) return;
    for (row_head *h = c->lru.next; h != &c->lru; h = h->next) free(h->data);
    free(c->head);
}

/* ---------------------------------------------------------------- the solver */

enum { LOWER = FM_SVM_LOWER, UPPER = FM_SVM_UPPER, FREE = FM_SVM_FREE };

typedef struct {
    int64_t l, d, active, block;
    float *x, *xn;     /* (l, d) float rows, (l) squared norms, swapped with indices; or NULL */
    /* byte rows, in the pair's original order (never swapped: active_set maps a position
     * to its row): the two classes' rows r0 (n0 of them), r1, each packed by the caller
     * (svm.h), xsq (l) both classes' sums of squares; the block's rows qrows (block, d)
     * and their dot products dots (block, l) against all l rows */
    int u8;
    fm_svm_rows r0, r1;
    int64_t n0;
    uint8_t *qrows;
    int32_t *xsq, *dots;
    double scale2; /* byte_scale^2: a distance or dot of bytes times this is the values' */
    int8_t *y;
    char *status;
    double *alpha, *G, *G_bar, *C, *QD;
    int64_t *active_set;
    int64_t *swaps; /* (l, 2) one shrinking's swaps, for cache_swaps */
    int unshrink;
    row_cache cache;
    float *ablock, *anorm, *kblock; /* float rows: (block, d), (block), (block, l) */
    int64_t *cand;                  /* (block) rows of the block being computed */
    double *cand_score;             /* (block) */
    fm_svm_kernel_params kp;
    int64_t rows_computed, rows_missed;
} smo;

static void update_status(smo *s, int64_t i)
{
    s->status[i] = s->alpha[i] >= s->C[i] ? UPPER : s->alpha[i] <= 0 ? LOWER : FREE;
}

/* i in I_up: y = +1 below C, or y = -1 above 0; in I_low: the other way round */
static int in_up(const smo *s, int64_t t)
{
    return s->status[t] != fm_svm_up_excludes(s->y[t]);
}

static int in_low(const smo *s, int64_t t)
{
    return s->status[t] != fm_svm_low_excludes(s->y[t]);
}

/* Up to `want` active rows, not i and not cached to len, with the largest violation
 * max(-y G over I_up, y G over I_low): the rows the working-set selection picks soon. */
static int64_t pick_violators(smo *s, int64_t i, int64_t len, int64_t *out, int64_t want)
{
    int64_t got = 0;
    double *score = s->cand_score;
    for (int64_t t = 0; t < s->active && want > 0; t++) {
        if (t == i || s->cache.head[t].len >= len) continue;
        double yg = s->y[t] * s->G[t], v = -INFINITY;
        if (in_up(s, t)) v = -yg;
        if (in_low(s, t) && yg > v) v = yg;
        if (got == want && v <= score[got - 1]) continue;
        int64_t at = got < want ? got++ : got - 1;
        while (at > 0 && score[at - 1] < v) { score[at] = score[at - 1]; out[at] = out[at - 1]; at--; }
        score[at] = v;
        out[at] = t;
    }
    return got;
}

/* dots (m, l): exact int32 dot products of the byte rows cand[0..m) with all l rows, in
 * the pair's original order: against r0's packed rows, then r1's */
static int dots_u8(smo *s, int64_t m)
{
    for (int64_t r = 0; r < m; r++) {
        int64_t o = s->active_set[s->cand[r]];
        const uint8_t *row = o < s->n0 ? s->r0.xb + o * s->d : s->r1.xb + (o - s->n0) * s->d;
        memcpy(s->qrows + r * s->d, row, (size_t)s->d);
    }
    int status = fm_u8dot_block(s->dots, s->l, s->qrows, s->r0.packed, m, s->n0, s->d,
                                FM_KERNEL_AUTO);
    if (status != FM_OK) return status;
    return fm_u8dot_block(s->dots + s->n0, s->l, s->qrows, s->r1.packed, m, s->l - s->n0,
                          s->d, FM_KERNEL_AUTO);
}

/* q[t] = y_i y_t K(row i, row at position t) for t < len from dot: (l) the integer dot
 * products of row i with every row in the original order (position t reads active_set[t]) */
static void u8_row(smo *s, float *q, const int32_t *dot, int64_t i, int64_t len)
{
    const int64_t *o = s->active_set;
    fm_svm_u8_row(q, dot, s->xsq[o[i]], s->xsq, o, s->y, s->y[i], &s->kp, s->scale2, len);
}

/* Q rows cand[0..m) over columns [0, len) into the cache, computed as one kernel block; of
 * byte rows, the extra ones cand[1..m) are cached raw (all l dot products) */
static int compute_rows(smo *s, int64_t m, int64_t len)
{
    if (s->u8) {
        int status = dots_u8(s, m);
        if (status != FM_OK) return status;
        for (int64_t r = 0; r < m; r++) {
            int64_t i = s->cand[r];
            float *q = cache_reserve(&s->cache, i, r ? s->l : len);
            if (!q) return FM_ENOMEM;
            s->cache.head[i].raw = r > 0;
            if (r) memcpy(q, s->dots + r * s->l, (size_t)s->l * sizeof(int32_t));
            else u8_row(s, q, s->dots, i, len);
        }
        s->rows_computed += m;
        return FM_OK;
    }
    for (int64_t r = 0; r < m; r++) {
        memcpy(s->ablock + r * s->d, s->x + s->cand[r] * s->d, (size_t)s->d * sizeof(float));
        s->anorm[r] = s->xn[s->cand[r]];
    }
    int status = fm_svm_kernel_block(s->kblock, len, s->ablock, s->anorm, s->x, s->xn, m, len,
                                     s->d, &s->kp);
    if (status != FM_OK) return status;
    for (int64_t r = 0; r < m; r++) {
        int64_t i = s->cand[r];
        float *q = cache_reserve(&s->cache, i, len);
        if (!q) return FM_ENOMEM;
        const float *k = s->kblock + r * len;
        if (s->y[i] > 0)
            for (int64_t t = 0; t < len; t++) q[t] = s->y[t] > 0 ? k[t] : -k[t];
        else
            for (int64_t t = 0; t < len; t++) q[t] = s->y[t] > 0 ? -k[t] : k[t];
    }
    s->rows_computed += m;
    return FM_OK;
}

/* a raw row i turned into Q over all l columns (cut to the active ones, the row would miss
 * when the gradient's G_bar or reconstruction asks for all of it) */
static void cook_row(smo *s, int64_t i)
{
    row_head *h = &s->cache.head[i];
    memcpy(s->dots, h->data, (size_t)s->l * sizeof(int32_t));
    u8_row(s, h->data, s->dots, i, s->l);
    h->raw = 0;
}

/* Row i of Q over [0, len), or NULL (out of memory). On a miss the block also computes the
 * rows next[0..n_next) not yet cached, or with next NULL and violators set, the largest
 * violators. */
static const float *get_Q(smo *s, int64_t i, int64_t len, const int64_t *next, int64_t n_next,
                          int violators)
{
    float *q = cache_lookup(&s->cache, i, len);
    if (q) {
        if (s->cache.head[i].raw) cook_row(s, i);
        return s->cache.head[i].data;
    }
    s->rows_missed++;
    int64_t m = 1;
    s->cand[0] = i;
    if (next) {
        for (int64_t r = 0; r < n_next && m < s->block; r++)
            if (s->cache.head[next[r]].len < len) s->cand[m++] = next[r];
    } else if (violators) {
        m += pick_violators(s, i, len, s->cand + 1, s->block - 1);
    }
    if (compute_rows(s, m, len) != FM_OK) return NULL;
    return s->cache.head[i].data;
}

/* positions i and j trade everything but the cache's rows (do_shrinking batches those) */
static void swap_index(smo *s, int64_t i, int64_t j)
{
#define SWAP(T, a, b) do { T tmp_ = (a); (a) = (b); (b) = tmp_; } while (0)
    if (s->x) {
        float *xi = s->x + i * s->d, *xj = s->x + j * s->d;
        for (int64_t t = 0; t < s->d; t++) SWAP(float, xi[t], xj[t]);
        SWAP(float, s->xn[i], s->xn[j]);
    }
    SWAP(int8_t, s->y[i], s->y[j]);
    SWAP(char, s->status[i], s->status[j]);
    SWAP(double, s->alpha[i], s->alpha[j]);
    SWAP(double, s->G[i], s->G[j]);
    SWAP(double, s->G_bar[i], s->G_bar[j]);
    SWAP(double, s->C[i], s->C[j]);
    SWAP(double, s->QD[i], s->QD[j]);
    SWAP(int64_t, s->active_set[i], s->active_set[j]);
#undef SWAP
}

/* G of the inactive rows from G_bar and the free variables, as libsvm (p = -1) */
static int reconstruct_gradient(smo *s)
{
    int64_t l = s->l, act = s->active, nr_free = 0;
    if (act == l) return FM_OK;
    for (int64_t j = act; j < l; j++) s->G[j] = s->G_bar[j] - 1.0;
    for (int64_t j = 0; j < act; j++) nr_free += s->status[j] == FREE;
    int64_t *list = malloc((size_t)(l > 0 ? l : 1) * sizeof(int64_t)), n_list = 0;
    if (!list) return FM_ENOMEM;
    int by_inactive = (double)nr_free * l > 2.0 * act * (double)(l - act);
    if (by_inactive)
        for (int64_t i = act; i < l; i++) list[n_list++] = i;
    else
        for (int64_t i = 0; i < act; i++)
            if (s->status[i] == FREE) list[n_list++] = i;
    for (int64_t r = 0; r < n_list; r++) {
        int64_t i = list[r];
        const float *q = get_Q(s, i, by_inactive ? act : l, list + r + 1, n_list - r - 1, 0);
        if (!q) { free(list); return FM_ENOMEM; }
        if (by_inactive) {
            double g = 0.0;
            for (int64_t j = 0; j < act; j++)
                if (s->status[j] == FREE) g += s->alpha[j] * q[j];
            s->G[i] += g;
        } else {
            fm_svm_update_G(s->G + act, q + act, NULL, s->alpha[i], 0.0, l - act,
                            FM_KERNEL_AUTO);
        }
    }
    free(list);
    return FM_OK;
}

/* libsvm's WSS3 (select.c): i maximises -y G over I_up; j minimises the second-order
 * decrease -(b^2 / a) over the j in I_low with b = Gmax + y_j G_j > 0. 1: optimal within
 * eps, -1: out of memory, 0: (*out_i, *out_j) set. */
static int select_working_set(smo *s, double eps, int64_t *out_i, int64_t *out_j)
{
    double Gmax;
    int64_t Gmax_idx;
    const double *G = s->G;
    fm_svm_select_i(&Gmax_idx, &Gmax, G, s->y, s->status, s->active, FM_KERNEL_AUTO);
    int64_t i = Gmax_idx;
    const float *Q_i = NULL;
    if (i != -1 && !(Q_i = get_Q(s, i, s->active, NULL, 0, 1))) return -1;
    fm_svm_pick pk;
    fm_svm_select_j(&pk, G, s->y, s->status, s->QD, Q_i, i >= 0 ? s->y[i] : 1,
                    i >= 0 ? s->QD[i] : 0.0, Gmax, s->active, FM_KERNEL_AUTO);
    if (Gmax + pk.Gmax2 < eps || pk.j == -1) return 1;
    *out_i = Gmax_idx;
    *out_j = pk.j;
    return 0;
}

static int be_shrunk(const smo *s, int64_t i, double Gmax1, double Gmax2)
{
    double g = s->G[i];
    if (s->status[i] == UPPER) return s->y[i] > 0 ? -g > Gmax1 : -g > Gmax2;
    if (s->status[i] == LOWER) return s->y[i] > 0 ? g > Gmax2 : g > Gmax1;
    return 0;
}

static int do_shrinking(smo *s, double eps)
{
    double Gmax1 = -INFINITY, Gmax2 = -INFINITY; /* max -yG over I_up, max yG over I_low */
    for (int64_t i = 0; i < s->active; i++) {
        double yg = s->y[i] * s->G[i];
        if (in_up(s, i) && -yg >= Gmax1) Gmax1 = -yg;
        if (in_low(s, i) && yg >= Gmax2) Gmax2 = yg;
    }
    if (!s->unshrink && Gmax1 + Gmax2 <= eps * 10) {
        s->unshrink = 1;
        int status = reconstruct_gradient(s);
        if (status != FM_OK) return status;
        s->active = s->l;
    }
    int64_t n_swaps = 0;
    for (int64_t i = 0; i < s->active; i++)
        if (be_shrunk(s, i, Gmax1, Gmax2)) {
            s->active--;
            while (s->active > i) {
                if (!be_shrunk(s, s->active, Gmax1, Gmax2)) {
                    swap_index(s, i, s->active);
                    s->swaps[2 * n_swaps] = i;
                    s->swaps[2 * n_swaps++ + 1] = s->active;
                    break;
                }
                s->active--;
            }
        }
    cache_swaps(&s->cache, s->swaps, n_swaps);
    return FM_OK;
}

static double calculate_rho(const smo *s)
{
    double ub = INFINITY, lb = -INFINITY, sum_free = 0.0;
    int64_t nr_free = 0;
    for (int64_t i = 0; i < s->active; i++) {
        double yg = s->y[i] * s->G[i];
        if (s->status[i] == UPPER) {
            if (s->y[i] < 0) ub = fmin(ub, yg); else lb = fmax(lb, yg);
        } else if (s->status[i] == LOWER) {
            if (s->y[i] > 0) ub = fmin(ub, yg); else lb = fmax(lb, yg);
        } else {
            nr_free++;
            sum_free += yg;
        }
    }
    return nr_free > 0 ? sum_free / nr_free : (ub + lb) / 2;
}

/* the pair (i, j)'s new alphas, clipped to the box as libsvm does */
static void update_pair(smo *s, int64_t i, int64_t j, const float *Q_i)
{
    double *a = s->alpha, *G = s->G, C_i = s->C[i], C_j = s->C[j];
    if (s->y[i] != s->y[j]) {
        double quad = s->QD[i] + s->QD[j] + 2 * Q_i[j];
        double delta = (-G[i] - G[j]) / (quad > 0 ? quad : TAU), diff = a[i] - a[j];
        a[i] += delta;
        a[j] += delta;
        if (diff > 0) { if (a[j] < 0) { a[j] = 0; a[i] = diff; } }
        else if (a[i] < 0) { a[i] = 0; a[j] = -diff; }
        if (diff > C_i - C_j) { if (a[i] > C_i) { a[i] = C_i; a[j] = C_i - diff; } }
        else if (a[j] > C_j) { a[j] = C_j; a[i] = C_j + diff; }
    } else {
        double quad = s->QD[i] + s->QD[j] - 2 * Q_i[j];
        double delta = (G[i] - G[j]) / (quad > 0 ? quad : TAU), sum = a[i] + a[j];
        a[i] -= delta;
        a[j] += delta;
        if (sum > C_i) { if (a[i] > C_i) { a[i] = C_i; a[j] = sum - C_i; } }
        else if (a[j] < 0) { a[j] = 0; a[i] = sum; }
        if (sum > C_j) { if (a[j] > C_j) { a[j] = C_j; a[i] = sum - C_j; } }
        else if (a[i] < 0) { a[i] = 0; a[j] = sum; }
    }
}

/* G_bar += sign C_i Q_i over all l rows, when i enters (+1) or leaves (-1) the upper bound */
static int update_G_bar(smo *s, int64_t i, double sign)
{
    const float *q = get_Q(s, i, s->l, NULL, 0, 0);
    if (!q) return FM_ENOMEM;
    return fm_svm_update_G(s->G_bar, q, NULL, sign * s->C[i], 0.0, s->l, FM_KERNEL_AUTO);
}

static int smo_run(smo *s, fm_svm_info *info, const fm_svm_params *p)
{
    int64_t iter = 0, counter = (s->l < 1000 ? s->l : 1000) + 1;
    info->reached_max_iter = 0;
    for (;;) {
        if (p->max_iter >= 0 && iter >= p->max_iter) { info->reached_max_iter = 1; break; }
        if (--counter == 0) {
            counter = s->l < 1000 ? s->l : 1000;
            if (p->stop && *p->stop) return FM_EINTR;
            if (p->shrinking && do_shrinking(s, p->tol) != FM_OK) return FM_ENOMEM;
        }
        int64_t i = 0, j = 0;
        int sel = select_working_set(s, p->tol, &i, &j);
        if (sel == 1) {
            if (reconstruct_gradient(s) != FM_OK) return FM_ENOMEM;
            s->active = s->l;
            sel = select_working_set(s, p->tol, &i, &j);
            if (sel == 1) break;
            counter = 1; /* shrink at the next iteration */
        }
        if (sel < 0) return FM_ENOMEM;
        iter++;
        const float *Q_i = get_Q(s, i, s->active, NULL, 0, 1);
        const float *Q_j = Q_i ? get_Q(s, j, s->active, NULL, 0, 1) : NULL;
        if (!Q_j) return FM_ENOMEM;
        double old_i = s->alpha[i], old_j = s->alpha[j];
        update_pair(s, i, j, Q_i);
        double dai = s->alpha[i] - old_i, daj = s->alpha[j] - old_j;
        fm_svm_update_G(s->G, Q_i, Q_j, dai, daj, s->active, FM_KERNEL_AUTO);
        int ui = s->status[i] == UPPER, uj = s->status[j] == UPPER;
        update_status(s, i);
        update_status(s, j);
        if (ui != (s->status[i] == UPPER) && update_G_bar(s, i, ui ? -1.0 : 1.0) != FM_OK)
            return FM_ENOMEM;
        if (uj != (s->status[j] == UPPER) && update_G_bar(s, j, uj ? -1.0 : 1.0) != FM_OK)
            return FM_ENOMEM;
    }
    info->rho = calculate_rho(s);
    double v = 0.0;
    for (int64_t i = 0; i < s->l; i++) v += s->alpha[i] * (s->G[i] - 1.0);
    info->obj = v / 2;
    info->n_iter = iter;
    return FM_OK;
}

static void smo_free(smo *s)
{
    cache_free(&s->cache);
    fm_free(s->x); fm_free(s->xn); free(s->y); free(s->status); free(s->alpha); free(s->G);
    free(s->G_bar); free(s->C); free(s->QD); free(s->active_set); free(s->swaps); fm_free(s->ablock);
    fm_free(s->anorm); fm_free(s->kblock); free(s->cand); free(s->cand_score);
    free(s->qrows); free(s->xsq); fm_free(s->dots);
}

/* the byte rows' scratch and both classes' sums of squares joined */
static int setup_u8(smo *s, fm_svm_rows r0, int64_t n0, fm_svm_rows r1, int64_t n1)
{
    int64_t l = s->l, d = s->d;
    s->r0 = r0;
    s->r1 = r1;
    s->n0 = n0;
    s->qrows = malloc((size_t)(s->block * d));
    s->xsq = malloc((size_t)l * sizeof(int32_t));
    s->dots = fm_alloc((size_t)(s->block * l) * sizeof(int32_t));
    if (!s->qrows || !s->xsq || !s->dots) return FM_ENOMEM;
    memcpy(s->xsq, r0.xsq, (size_t)n0 * sizeof(int32_t));
    if (n1) memcpy(s->xsq + n0, r1.xsq, (size_t)n1 * sizeof(int32_t));
    return FM_OK;
}

int fm_svm_solve_parts(double *coef, fm_svm_info *info, fm_svm_rows r0, int64_t n0,
                       fm_svm_rows r1, int64_t n1, const int8_t *y, const double *cbound,
                       int64_t d, const fm_svm_params *p)
{
    int64_t l = n0 + n1;
    smo s = {.l = l, .d = d, .active = l, .kp = p->k};
    if (!r0.x) {
        s.u8 = 1;
        s.scale2 = r0.byte_scale * r0.byte_scale;
    }
    /* floats for rows once the heads are paid for; at least BLOCK + 2 rows (a block may
     * not evict the row the iteration holds), and the block shrinks to fit a small cache */
    int64_t floats = p->cache_bytes / (int64_t)sizeof(float) -
                     l * (int64_t)(sizeof(row_head) / sizeof(float));
    s.block = floats / (l > 0 ? l : 1) - 2;
    int64_t most = s.u8 ? fm_u8dot_tile_rows(FM_KERNEL_AUTO) : BLOCK;
    s.block = s.block < 1 ? 1 : s.block > most ? most : s.block;
    s.cache.size = floats > (s.block + 2) * l ? floats : (s.block + 2) * l;
    s.cache.lru.next = s.cache.lru.prev = &s.cache.lru;
    int status = FM_ENOMEM;
    size_t ld = (size_t)(l > 0 ? l : 1);
    if (s.u8) {
        if (setup_u8(&s, r0, n0, r1, n1) != FM_OK) goto done;
    } else {
        s.x = fm_alloc(ld * (size_t)d * sizeof(float));
        s.xn = fm_alloc(ld * sizeof(float));
        s.ablock = fm_alloc((size_t)(s.block * d) * sizeof(float));
        s.anorm = fm_alloc((size_t)s.block * sizeof(float));
        s.kblock = fm_alloc((size_t)s.block * ld * sizeof(float));
        if (!s.x || !s.xn || !s.ablock || !s.anorm || !s.kblock) goto done;
        memcpy(s.x, r0.x, (size_t)(n0 * d) * sizeof(float));
        if (n1) memcpy(s.x + n0 * d, r1.x, (size_t)(n1 * d) * sizeof(float));
        fm_svm_sq_norms(s.xn, s.x, l, d);
    }
    s.y = malloc(ld);
    s.status = malloc(ld);
    s.alpha = calloc(ld, sizeof(double));
    s.G = malloc(ld * sizeof(double));
    s.G_bar = calloc(ld, sizeof(double));
    s.C = malloc(ld * sizeof(double));
    s.QD = malloc(ld * sizeof(double));
    s.active_set = malloc(ld * sizeof(int64_t));
    s.swaps = malloc(2 * ld * sizeof(int64_t));
    s.cand = malloc((size_t)s.block * sizeof(int64_t));
    s.cand_score = malloc((size_t)s.block * sizeof(double));
    s.cache.head = calloc(ld, sizeof(row_head));
    if (!s.y || !s.status || !s.alpha || !s.G || !s.G_bar || !s.C || !s.QD || !s.active_set ||
        !s.swaps || !s.cand || !s.cand_score || !s.cache.head)
        goto done;
    for (int64_t i = 0; i < l; i++) {
        double nn = s.u8 ? s.scale2 * s.xsq[i] : s.xn[i], g = p->k.gamma;
        s.QD[i] = p->k.kernel == FM_SVM_RBF ? 1.0 : p->k.kernel == FM_SVM_LINEAR ? nn
                  : pow(g * nn + p->k.coef0, (double)p->k.degree);
        s.y[i] = y[i] > 0 ? 1 : -1;
        s.C[i] = cbound[i];
        s.G[i] = -1.0; /* G = Q alpha + p with alpha = 0, p = -e */
        s.active_set[i] = i;
        update_status(&s, i);
    }
    info->rows_computed = info->rows_missed = 0;
    status = smo_run(&s, info, p);
    info->rows_computed = s.rows_computed;
    info->rows_missed = s.rows_missed;
    if (status == FM_OK)
        for (int64_t i = 0; i < l; i++) coef[s.active_set[i]] = s.alpha[i] * s.y[i];
done:
    smo_free(&s);
    return status;
}
