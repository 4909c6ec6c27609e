/* testutil_sync.h: helpers for the sync and value C tests. Header-only (the Makefile compiles
 * each test alone).
 *
 * CHECK prints one line per check and counts; ts_finish() prints "<prog>: N passed, M failed"
 * and returns the exit code. Names from ts_name() are removed at exit (only by the process that
 * made them). Children are forked with ts_fork() and reaped with a bounded ts_wait().
 */
#ifndef MPX_TESTUTIL_SYNC_H
#define MPX_TESTUTIL_SYNC_H

#include <mpx.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int ts_passed = 0;
static int ts_failed = 0;
static const char *ts_prog = "test";

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            ts_passed++;                                                   \
            printf("ok    ");                                              \
        } else {                                                           \
            ts_failed++;                                                   \
            printf("FAIL  %s:%d: (%s) ", __FILE__, __LINE__, #cond);       \
        }                                                                  \
        printf(__VA_ARGS__);                                               \
        printf("\n");                                                      \
        fflush(stdout);                                                    \
    } while (0)

/* The call returns `want`; for an error, mpx_last_error() contains `needle`. */
#define CHECK_STATUS(call, want, needle, desc)                                                 \
    do {                                                                                       \
        mpx_status ts_st_ = (call);                                                            \
        const char *ts_msg_ = mpx_last_error();                                                \
        int ts_ok_ = ts_st_ == (want);                                                         \
        if ((want) != MPX_OK) ts_ok_ = ts_ok_ && ts_msg_ && strstr(ts_msg_, (needle)) != NULL; \
        if (ts_ok_) {                                                                          \
            ts_passed++;                                                                       \
            printf("ok    %s -> %s", (desc), mpx_status_name(ts_st_));                         \
            if ((want) != MPX_OK) printf(" (\"%s\")", ts_msg_);                                \
            printf("\n");                                                                      \
        } else {                                                                               \
            ts_failed++;                                                                       \
            printf("FAIL  %s:%d: %s -> %s, wanted %s containing \"%s\"; last error: \"%s\"\n", \
                   __FILE__, __LINE__, (desc), mpx_status_name(ts_st_), mpx_status_name(want), \
                   (needle), ts_msg_ ? ts_msg_ : "(null)");                                    \
        }                                                                                      \
        fflush(stdout);                                                                        \
    } while (0)

/* Stops the program (after cleanup) when a precondition fails. */
#define REQUIRE(cond, ...)                                                      \
    do {                                                                        \
        if (!(cond)) {                                                          \
            ts_failed++;                                                        \
            printf("FAIL  %s:%d: required (%s): ", __FILE__, __LINE__, #cond);  \
            printf(__VA_ARGS__);                                                \
            printf(" [last error: %s]\n", mpx_last_error());                    \
            printf("%s: %d passed, %d failed\n", ts_prog, ts_passed, ts_failed); \
            fflush(stdout);                                                     \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

#define TS_MAX_NAMES 128
static char ts_names[TS_MAX_NAMES][80];
static int ts_name_count = 0;
static pid_t ts_owner = 0;

static inline void ts_cleanup(void) {
    if (getpid() != ts_owner) return;
    for (int i = 0; i < ts_name_count; i++) {
        char p[sizeof ts_names[0] + 16];
        snprintf(p, sizeof p, "/dev/shm/mpx.%.79s", ts_names[i]);
        unlink(p);
    }
    ts_name_count = 0;
}

static inline void ts_init(const char *prog) {
    ts_prog = prog;
    ts_owner = getpid();
    setvbuf(stdout, NULL, _IOLBF, 0);
    atexit(ts_cleanup);
}

/* A fresh name unique to this process, removed at exit. */
static inline const char *ts_name(const char *tag) {
    if (ts_name_count >= TS_MAX_NAMES) {
        fprintf(stderr, "ts_name: too many names\n");
        exit(2);
    }
    char *n = ts_names[ts_name_count];
    snprintf(n, sizeof ts_names[0], "ts-%s-%d-%d-%s", ts_prog, (int)getpid(), ts_name_count, tag);
    ts_name_count++;
    return n;
}

static inline int ts_finish(void) {
    ts_cleanup();
    printf("%s: %d passed, %d failed\n", ts_prog, ts_passed, ts_failed);
    fflush(stdout);
    return ts_failed == 0 ? 0 : 1;
}

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

/* Waits for `pid` at most `seconds`; kills and reaps it if it is still running (a hang).
 * Returns the wait status, or -1 if it had to be killed. */
static inline int ts_wait(pid_t pid, double seconds) {
    double end = ts_now() + seconds;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0 && errno != EINTR) return -1;
        if (ts_now() > end) break;
        ts_sleep_us(500);
    }
    kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    fprintf(stderr, "ts_wait: child %d did not finish in %.1f s: killed\n", (int)pid, seconds);
    return -1;
}

static inline int ts_exited(int status, int code) { return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code; }

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
