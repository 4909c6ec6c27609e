/* testutil_sync.h: what the sync and value tests (C, and tests/cpp/test_sync.cpp) add to
 * testutil.h: a clock, sleeps, fork of a function, bounded polling, a small PRNG. Header-only.
 */
#ifndef MPX_TESTUTIL_SYNC_H
#define MPX_TESTUTIL_SYNC_H

#include "testutil.h"

static inline double ts_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline void ts_sleep_us(long us) {
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

/* Nanoseconds, for timeouts. */
#define TS_MS(n) ((int64_t)(n) * 1000000)
/* How long any single wait in a test may take before it counts as a hang. */
#define TS_WAIT TS_MS(20000)

/* Forks; the child runs fn(arg) and _exits with its result. */
static inline pid_t ts_fork(int (*fn)(void *), void *arg) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) _exit(fn(arg));
    return pid;
}

/* Polls `cond` (an expression) every 200 us for at most 20 s; evaluates to whether it held. */
#define TS_EVENTUALLY(cond)                                                  \
    ({                                                                       \
        double ts_end_ = ts_now() + 20.0;                                    \
        int ts_ok_ = 0;                                                      \
        while (!(ts_ok_ = (cond)) && ts_now() < ts_end_) ts_sleep_us(200);   \
        ts_ok_;                                                              \
    })

static inline uint64_t ts_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

#endif
