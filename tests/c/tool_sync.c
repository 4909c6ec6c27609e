/* tool_sync.c: a command-line tool over mpx's named sync objects and values, written in C, for
 * cross-language tests (tests/python/test_cross_sync.py). tests/cpp/tool_sync.cpp is the C++
 * twin of most commands.
 *
 *   tool_sync incr LOCK VALUE N         N times: acquire lock LOCK, element 0 of the integer
 *                                       value VALUE += 1 (a plain read and write through
 *                                       mpx_value_ptr: only the lock makes it exact), release
 *   tool_sync incr-vlock VALUE N        the same under VALUE's embedded lock (mpx_value_acquire)
 *   tool_sync fetch-add VALUE N         N lock-free adds of 1 to element 0 of the 8-byte integer
 *                                       value VALUE, inline (mpx_value_int_ptr + the header's
 *                                       mpx_elem_fetch_add_i64)
 *   tool_sync barrier NAME ROUNDS MS    wait ROUNDS times at barrier NAME (each wait at most MS
 *                                       ms); print "<round> <index>" per round
 *   tool_sync event-set NAME MS         sleep MS ms, then set event NAME; print "set"
 *   tool_sync event-wait NAME MS        wait at most MS ms for event NAME; print "set"
 *   tool_sync value-get NAME            print "<typecode> <count> <v0> <v1> ..." (integers as
 *                                       int64, floats with %.17g)
 *   tool_sync value-set NAME INDEX V    set element INDEX (an integer or a float, by typecode)
 *   tool_sync hold LOCK SECONDS         acquire lock LOCK, print "held", sleep, release
 *   tool_sync sem-release NAME N        release semaphore NAME N times
 *   tool_sync sem-acquire NAME N MS     acquire semaphore NAME N times (each at most MS ms)
 *   tool_sync open-lock NAME            open NAME as a lock (to check the kind), print "lock"
 *
 * Exit codes: 0 success; 2 usage error; 100 + (-status) when an mpx call fails (e.g. 102 =
 * MPX_E_NOT_FOUND, 104 = MPX_E_TIMEOUT, 109 = MPX_E_KIND, 119 = MPX_E_BROKEN). A lock taken
 * from a dead holder (MPX_E_OWNER_DIED) counts as acquired and is reported on stderr.
 * Messages go to stderr.
 */
#include <mpx.h>

#define TOOL_NAME "tool_sync (C)"
#include "tool_util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int usage(void) {
    fprintf(stderr,
            "usage: tool_sync incr LOCK VALUE N | incr-vlock VALUE N | fetch-add VALUE N |\n"
            "                 barrier NAME ROUNDS MS |\n"
            "                 event-set NAME MS | event-wait NAME MS | value-get NAME |\n"
            "                 value-set NAME INDEX V | hold LOCK SECONDS | sem-release NAME N |\n"
            "                 sem-acquire NAME N MS | open-lock NAME\n");
    return 2;
}

static void sleep_ms(unsigned long long ms) {
    struct timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

/* MPX_OK or MPX_E_OWNER_DIED (acquired either way) -> MPX_OK; the rest unchanged. */
static mpx_status acquired(mpx_status st, unsigned long long *died) {
    if (st == MPX_E_OWNER_DIED) {
        (*died)++;
        fprintf(stderr, "tool_sync (C): %s\n", mpx_last_error());
        return MPX_OK;
    }
    return st;
}

static int cmd_incr(const char *lname, const char *vname, unsigned long long n, int vlock) {
    mpx_lock *l = NULL;
    mpx_value *v = NULL;
    mpx_status st;
    if (!vlock && (st = mpx_lock_open(lname, 0, &l)) != MPX_OK) return fail("open lock", st);
    if ((st = mpx_value_open(vname, 0, &v)) != MPX_OK) return fail("open value", st);
    char tc = mpx_value_typecode(v);
    if (mpx_value_itemsize(v) != 8 || !strchr("qlQL", tc)) {
        fprintf(stderr, "tool_sync (C): value '%s' has typecode '%c': incr needs an 8-byte integer\n", vname, tc);
        return 2;
    }
    volatile int64_t *p = mpx_value_ptr(v);
    unsigned long long died = 0;
    int rc = 0;
    for (unsigned long long i = 0; i < n; i++) {
        st = acquired(vlock ? mpx_value_acquire(v, 30LL * 1000000000) : mpx_lock_acquire(l, 30LL * 1000000000), &died);
        if (st != MPX_OK) {
            rc = fail("acquire", st);
            break;
        }
        *p = *p + 1;
        st = vlock ? mpx_value_release(v) : mpx_lock_release(l);
        if (st != MPX_OK) {
            rc = fail("release", st);
            break;
        }
    }
    if (rc == 0) printf("done %llu\n", n);
    mpx_value_close(v);
    mpx_lock_close(l);
    return rc;
}

static int cmd_fetch_add(const char *vname, unsigned long long n) {
    mpx_value *v = NULL;
    void *e = NULL;
    mpx_status st;
    if ((st = mpx_value_open(vname, 0, &v)) != MPX_OK) return fail("open value", st);
    if ((st = mpx_value_int_ptr(v, 0, sizeof(int64_t), true, &e)) != MPX_OK) {
        mpx_value_close(v);
        return fail("element pointer", st);
    }
    for (unsigned long long i = 0; i < n; i++) mpx_elem_fetch_add_i64(e, 1);
    printf("done %llu\n", n);
    mpx_value_close(v);
    return 0;
}

static int cmd_barrier(const char *name, unsigned long long rounds, unsigned long long ms) {
    mpx_barrier *b = NULL;
    mpx_status st = mpx_barrier_open(name, 0, &b);
    if (st != MPX_OK) return fail("open barrier", st);
    int rc = 0;
    for (unsigned long long r = 0; r < rounds; r++) {
        uint32_t idx = 0;
        if ((st = mpx_barrier_wait(b, (int64_t)ms * 1000000, &idx)) != MPX_OK) {
            rc = fail("barrier wait", st);
            break;
        }
        printf("%llu %u\n", r, idx);
    }
    fflush(stdout);
    mpx_barrier_close(b);
    return rc;
}

static int print_value(const char *name) {
    mpx_value *v = NULL;
    mpx_status st = mpx_value_open(name, MPX_F_READ_ONLY, &v);
    if (st != MPX_OK) return fail("open value", st);
    char tc = mpx_value_typecode(v);
    size_t n = mpx_value_count(v);
    printf("%c %zu", tc, n);
    for (size_t i = 0; i < n; i++) {
        if (tc == 'f' || tc == 'd') {
            double d = 0;
            if ((st = mpx_value_get_f64(v, i, &d)) != MPX_OK) return fail("get", st);
            printf(" %.17g", d);
        } else {
            int64_t x = 0;
            if ((st = mpx_value_get_i64(v, i, &x)) != MPX_OK) return fail("get", st);
            printf(" %lld", (long long)x);
        }
    }
    printf("\n");
    mpx_value_close(v);
    return 0;
}

static int set_value(const char *name, unsigned long long index, const char *text) {
    mpx_value *v = NULL;
    mpx_status st = mpx_value_open(name, 0, &v);
    if (st != MPX_OK) return fail("open value", st);
    char tc = mpx_value_typecode(v);
    char *end;
    errno = 0;
    if (tc == 'f' || tc == 'd') {
        double d = strtod(text, &end);
        if (errno || end == text || *end) return usage();
        st = mpx_value_set_f64(v, (size_t)index, d);
    } else {
        long long x = strtoll(text, &end, 10);
        if (errno || end == text || *end) return usage();
        st = mpx_value_set_i64(v, (size_t)index, x);
    }
    mpx_value_close(v);
    return st == MPX_OK ? 0 : fail("set", st);
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    const char *cmd = argv[1], *name = argv[2];
    unsigned long long a = 0, b = 0;
    mpx_status st;

    if (strcmp(cmd, "incr") == 0) {
        if (argc != 5 || number(argv[4], 1ULL << 40, &a)) return usage();
        return cmd_incr(name, argv[3], a, 0);
    }
    if (strcmp(cmd, "incr-vlock") == 0) {
        if (argc != 4 || number(argv[3], 1ULL << 40, &a)) return usage();
        return cmd_incr(NULL, name, a, 1);
    }
    if (strcmp(cmd, "fetch-add") == 0) {
        if (argc != 4 || number(argv[3], 1ULL << 40, &a)) return usage();
        return cmd_fetch_add(name, a);
    }
    if (strcmp(cmd, "barrier") == 0) {
        if (argc != 5 || number(argv[3], 1000000, &a) || number(argv[4], 3600000, &b)) return usage();
        return cmd_barrier(name, a, b);
    }
    if (strcmp(cmd, "event-set") == 0 || strcmp(cmd, "event-wait") == 0) {
        if (argc != 4 || number(argv[3], 3600000, &a)) return usage();
        mpx_event *e = NULL;
        if ((st = mpx_event_open(name, 0, &e)) != MPX_OK) return fail("open event", st);
        if (cmd[6] == 's') {
            sleep_ms(a);
            st = mpx_event_set(e);
        } else {
            st = mpx_event_wait(e, (int64_t)a * 1000000);
        }
        mpx_event_close(e);
        if (st != MPX_OK) return fail(cmd, st);
        printf("set\n");
        return 0;
    }
    if (strcmp(cmd, "value-get") == 0) {
        if (argc != 3) return usage();
        return print_value(name);
    }
    if (strcmp(cmd, "value-set") == 0) {
        if (argc != 5 || number(argv[3], SIZE_MAX, &a)) return usage();
        return set_value(name, a, argv[4]);
    }
    if (strcmp(cmd, "hold") == 0) {
        if (argc != 4 || number(argv[3], 86400, &a)) return usage();
        mpx_lock *l = NULL;
        unsigned long long died = 0;
        if ((st = mpx_lock_open(name, 0, &l)) != MPX_OK) return fail("open lock", st);
        if ((st = acquired(mpx_lock_acquire(l, 30LL * 1000000000), &died)) != MPX_OK) return fail("acquire", st);
        printf("held\n");
        fflush(stdout);
        sleep_ms(a * 1000);
        st = mpx_lock_release(l);
        mpx_lock_close(l);
        return st == MPX_OK ? 0 : fail("release", st);
    }
    if (strcmp(cmd, "sem-release") == 0 || strcmp(cmd, "sem-acquire") == 0) {
        int acq = cmd[4] == 'a';
        if (argc != (acq ? 5 : 4) || number(argv[3], 1000000, &a) || (acq && number(argv[4], 3600000, &b))) return usage();
        mpx_semaphore *s = NULL;
        if ((st = mpx_semaphore_open(name, 0, &s)) != MPX_OK) return fail("open semaphore", st);
        for (unsigned long long i = 0; i < a; i++) {
            st = acq ? mpx_semaphore_acquire(s, (int64_t)b * 1000000) : mpx_semaphore_release(s);
            if (st != MPX_OK) return fail(cmd, st);
        }
        mpx_semaphore_close(s);
        printf("done %llu\n", a);
        return 0;
    }
    if (strcmp(cmd, "open-lock") == 0) {
        mpx_lock *l = NULL;
        if ((st = mpx_lock_open(name, 0, &l)) != MPX_OK) return fail("open lock", st);
        mpx_lock_close(l);
        printf("lock\n");
        return 0;
    }
    return usage();
}
