/* parallel.h: how many OpenMP threads a short parallel region should use right now.
 * Training runs thousands of short regions a second (a few per minibatch). When other
 * processes crowd the cores, a helper thread that is not scheduled stalls every region
 * for a whole time slice (seen here: 30x slower epochs on a busy 2-core machine). The
 * regions report late helpers; after one, regions run on one thread for a back-off
 * window that doubles while the crowding lasts. Results never depend on the thread count,
 * so this changes speed only. */
#ifndef FM_PARALLEL_H
#define FM_PARALLEL_H

#include <stdint.h>

/* Threads to use for a region that would use `requested` (<= 0: the OpenMP default),
 * capped at 4 per processor; 1 during a back-off window, and always 1 without OpenMP. */
int fm_parallel_threads(int requested);

/* fm_parallel_threads(requested) for a region over `work` elements, but 1 below
 * `serial_below` of them, where forking costs more than the loop. */
int fm_parallel_threads_for(int64_t work, int64_t serial_below, int requested);

/* [*j0, *j1): the calling thread's share of len elements of an elementwise loop inside a
 * parallel region, in whole 16-float blocks (one AVX-512 register, one cache line). */
void fm_parallel_share(int64_t *j0, int64_t *j1, int64_t len);

/* Seconds on a monotonic clock (omp_get_wtime, or clock_gettime without OpenMP). */
double fm_parallel_now(void);

/* Report a region forked at `forked` (fm_parallel_now()) whose slowest helper thread
 * started `lag` seconds later. Only a region that follows another closely is judged: its
 * helpers were still spinning, so a lag past half a millisecond means one was not
 * scheduled, and a back-off window starts (doubling up to a second while it recurs; a
 * prompt start resets it). After a pause, helpers sleep and waking them takes
 * milliseconds here (measured 3.5 ms after 20 ms idle), which is no sign of crowding. */
void fm_parallel_report(double forked, double lag);

/* An OpenMP directive, or nothing without OpenMP: FM_OMP(omp for schedule(static)) */
#ifdef _OPENMP
#define FM_OMP(directive) _Pragma(#directive)
#else
#define FM_OMP(directive)
#endif

/* One parallel region's part in the back-off, so that every region reports its helpers'
 * start lag the same way:
 *     fm_parallel_region r = fm_parallel_fork();
 *     FM_OMP(omp parallel num_threads(nt) if (nt > 1))
 *     { fm_parallel_arrive(&r); ...the work, or FM_OMP(omp for ...) and a loop... }
 *     fm_parallel_join(&r);
 * fork notes the time just before the region; arrive, first thing in it on every thread,
 * notes the team and how late each helper started; join, after it, reports the slowest
 * helper (fm_parallel_report) when the region really ran on more than one thread (not
 * when OpenMP granted one, as a region nested in another gets). */
typedef struct {
    double forked;  /* fm_parallel_now() at the fork */
    int64_t lag_ns; /* the slowest helper's start lag, updated atomically */
    int team;       /* threads the region ran on, written by thread 0 */
} fm_parallel_region;

fm_parallel_region fm_parallel_fork(void);
void fm_parallel_arrive(fm_parallel_region *r);
void fm_parallel_join(const fm_parallel_region *r);

#endif
