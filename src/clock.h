/* clock.h - the monotonic clock (CLOCK_MONOTONIC) as a timespec, in ns and in ms.
 * Header only, no state; thread-safe. */
#ifndef IPFSFS_CLOCK_H
#define IPFSFS_CLOCK_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

static inline struct timespec clock_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

static inline uint64_t clock_mono_ns(void)
{
    struct timespec ts = clock_mono();
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Truncated to the millisecond. */
static inline uint64_t clock_mono_ms(void)
{
    struct timespec ts = clock_mono();
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The monotonic time ms from now, for pthread_cond_timedwait on a CLOCK_MONOTONIC cond. */
static inline struct timespec clock_mono_after(uint64_t ms)
{
    struct timespec ts = clock_mono();
    ts.tv_sec += (time_t)(ms / 1000u);
    ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* A condition variable whose timed waits end at CLOCK_MONOTONIC deadlines (clock_mono_after).
 * 0, -ENOMEM or -EAGAIN. */
static inline int cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0)
        return -ENOMEM;
    int rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0 && pthread_cond_init(c, &a) == 0
                 ? 0
                 : -EAGAIN;
    pthread_condattr_destroy(&a);
    return rc;
}
#endif
