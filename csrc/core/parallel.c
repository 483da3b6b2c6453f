/* parallel.c: back off to one thread while other processes crowd the CPU (see parallel.h).
 * Not a thread pool: OpenMP runs the regions; this only chooses their width. */
#include <stdint.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/parallel.h"

/* a spinning helper starts within microseconds (worst seen: 75 us) */
#define FM_LATE_SECONDS 5e-4
/* helpers of a region that forks this soon after the last one ended are still spinning */
#define FM_HOT_GAP_SECONDS 1e-3
#define FM_BACKOFF_MIN 0.02
#define FM_BACKOFF_MAX 1.0

/* shared by every thread that calls a kernel: read and written atomically */
static int64_t serial_until_us, last_end_us, backoff_us = (int64_t)(FM_BACKOFF_MIN * 1e6);

double fm_parallel_now(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
}

void fm_parallel_share(int64_t *j0, int64_t *j1, int64_t len)
{
    int t = 0, team = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    team = omp_get_num_threads();
#endif
    int64_t blocks = (len + 15) / 16;
    *j0 = blocks * t / team * 16;
    *j1 = blocks * (t + 1) / team * 16;
    *j1 = *j1 < len ? *j1 : len;
}

int fm_parallel_threads(int requested)
{
#ifdef _OPENMP
    int nt = requested > 0 ? requested : omp_get_max_threads();
    if (nt > 4 * omp_get_num_procs()) nt = 4 * omp_get_num_procs();
    if (nt > 1 && (int64_t)(fm_parallel_now() * 1e6) < __atomic_load_n(&serial_until_us, __ATOMIC_RELAXED))
        return 1;
    return nt;
#else
    (void)requested;
    return 1;
#endif
}

int fm_parallel_threads_for(int64_t work, int64_t serial_below, int requested)
{
    return work < serial_below ? 1 : fm_parallel_threads(requested);
}

void fm_parallel_report(double forked, double lag)
{
    int64_t now_us = (int64_t)(fm_parallel_now() * 1e6);
    int64_t last = __atomic_exchange_n(&last_end_us, now_us, __ATOMIC_RELAXED);
    if ((int64_t)(forked * 1e6) - last > (int64_t)(FM_HOT_GAP_SECONDS * 1e6)) return;
    int64_t backoff = __atomic_load_n(&backoff_us, __ATOMIC_RELAXED);
    if (lag > FM_LATE_SECONDS) {
        __atomic_store_n(&serial_until_us, now_us + backoff, __ATOMIC_RELAXED);
        if (backoff < (int64_t)(FM_BACKOFF_MAX * 1e6))
            __atomic_store_n(&backoff_us, 2 * backoff, __ATOMIC_RELAXED);
    } else if (backoff != (int64_t)(FM_BACKOFF_MIN * 1e6)) {
        __atomic_store_n(&backoff_us, (int64_t)(FM_BACKOFF_MIN * 1e6), __ATOMIC_RELAXED);
    }
}

fm_parallel_region fm_parallel_fork(void)
{
    fm_parallel_region r = {fm_parallel_now(), 0, 1};
    return r;
}

void fm_parallel_arrive(fm_parallel_region *r)
{
#ifdef _OPENMP
    if (omp_get_thread_num() == 0) {
        r->team = omp_get_num_threads();
        return;
    }
    int64_t lag = (int64_t)((fm_parallel_now() - r->forked) * 1e9);
    int64_t seen = __atomic_load_n(&r->lag_ns, __ATOMIC_RELAXED);
    while (lag > seen && !__atomic_compare_exchange_n(&r->lag_ns, &seen, lag, 1, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED)) {
    }
#else
    (void)r;
#endif
}

void fm_parallel_join(const fm_parallel_region *r)
{
    if (r->team > 1) fm_parallel_report(r->forked, 1e-9 * (double)r->lag_ns);
}
