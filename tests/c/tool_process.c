/* tool_process.c: a C worker and a C parent for the cross-language process tests
 * (tests/python/test_cross_process.py), over mpx processes and named shared memory.
 *
 *   tool_process worker SHM SEED CODE
 *       Opens the named buffer SHM, fills all of it with pattern SEED, prints one line
 *       "worker <mpx_current_name()> <mpx_parent_pid()>" and exits with CODE.
 *   tool_process parent SHM SIZE SEED EXPECT -- PROGRAM [ARG...]
 *       Creates SHM with SIZE zero bytes, starts PROGRAM ARG... with mpx_spawn (daemonic, so it
 *       dies if this parent is killed; named "worker-of-<pid>"), joins it (60 s at most) and
 *       checks that its exit code is EXPECT (a negative EXPECT is "killed by signal -EXPECT")
 *       and that it filled SHM with pattern SEED. Unlinks SHM in any case. Prints one line
 *       "parent child=<pid> exitcode=<code>".
 *   tool_process sleep SECONDS
 *       Sleeps (a child to signal).
 *
 * Pattern SEED (0..255): byte i = (i * 31 + SEED) mod 256 (as tests/c/tool_shm.c).
 * Exit codes: worker: CODE, or 100 - status when an mpx call fails; parent: 0 when the child
 * exited with EXPECT and the pattern matches, 1 pattern mismatch, 3 wrong exit code, 4 the
 * child did not end in time, 2 usage, 100 - status when an mpx call fails.
 */
#include <mpx.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int usage(void) {
    fprintf(stderr,
            "usage: tool_process worker SHM SEED CODE\n"
            "       tool_process parent SHM SIZE SEED EXPECT -- PROGRAM [ARG...]\n"
            "       tool_process sleep SECONDS\n");
    return 2;
}

static int fail(const char *what, mpx_status st) {
    fprintf(stderr, "tool_process: %s: %s: %s\n", what, mpx_status_name(st), mpx_last_error());
    return 100 - st;
}

/* Parses a decimal integer in [lo, hi]; 0 on success. */
static int number(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "tool_process: '%s' is not a number in %lld..%lld\n", s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int worker(const char *name, unsigned seed, int code) {
    mpx_shm *shm = NULL;
    mpx_status st = mpx_shm_open(name, 0, &shm);
    if (st != MPX_OK) return fail("open", st);
    uint8_t *p = mpx_shm_ptr(shm);
    size_t n = mpx_shm_size(shm);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 31u + seed);
    mpx_shm_close(shm);
    char me[256];
    if ((st = mpx_current_name(me, sizeof me, NULL)) != MPX_OK) return fail("current_name", st);
    printf("worker %s %d\n", me, mpx_parent_pid());
    fflush(stdout);
    return code;
}

static int parent(const char *name, size_t size, unsigned seed, int expect, char **argv) {
    mpx_shm *shm = NULL;
    mpx_status st = mpx_shm_create(name, size, 0, &shm);
    if (st != MPX_OK) return fail("create", st);
    int rc = 0;
    mpx_proc_opts *o = NULL;
    mpx_process *child = NULL;
    char label[64];
    snprintf(label, sizeof label, "worker-of-%d", (int)getpid());
    if ((st = mpx_proc_opts_new(&o)) != MPX_OK || (st = mpx_proc_opts_set_daemon(o, true)) != MPX_OK ||
        (st = mpx_proc_opts_set_name(o, label)) != MPX_OK) {
        rc = fail("options", st);
        goto out;
    }
    if ((st = mpx_spawn(argv[0], (const char *const *)argv, o, &child)) != MPX_OK) {
        rc = fail("spawn", st);
        goto out;
    }
    int code = 0;
    st = mpx_process_join(child, 60 * 1000000000LL, &code);
    if (st == MPX_E_TIMEOUT) {
        fprintf(stderr, "tool_process: child %d did not end within 60 s\n", mpx_process_pid(child));
        mpx_process_kill(child);
        mpx_process_join(child, MPX_FOREVER, &code);
        rc = 4;
        goto out;
    }
    if (st != MPX_OK) {
        rc = fail("join", st);
        goto out;
    }
    printf("parent child=%d exitcode=%d\n", mpx_process_pid(child), code);
    fflush(stdout);
    if (code != expect) {
        fprintf(stderr, "tool_process: child exit code %d, expected %d\n", code, expect);
        rc = 3;
        goto out;
    }
    const uint8_t *p = mpx_shm_ptr(shm);
    size_t n = mpx_shm_size(shm);
    for (size_t i = 0; i < n; i++) {
        if (p[i] != (uint8_t)(i * 31u + seed)) {
            fprintf(stderr, "tool_process: byte %zu is %u, expected %u\n", i, p[i], (uint8_t)(i * 31u + seed));
            rc = 1;
            break;
        }
    }
out:
    mpx_process_close(child);
    mpx_proc_opts_free(o);
    mpx_shm_close(shm);
    mpx_shm_unlink(name);
    return rc;
}

int main(int argc, char **argv) {
    long long a = 0, b = 0, c = 0;
    if (argc >= 2 && strcmp(argv[1], "sleep") == 0) {
        if (argc != 3 || number(argv[2], 0, 86400, &a)) return usage();
        struct timespec t = {(time_t)a, 0};
        while (nanosleep(&t, &t) != 0 && errno == EINTR) {
        }
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "worker") == 0) {
        if (number(argv[3], 0, 255, &a) || number(argv[4], 0, 255, &b)) return usage();
        return worker(argv[2], (unsigned)a, (int)b);
    }
    if (argc >= 8 && strcmp(argv[1], "parent") == 0 && strcmp(argv[6], "--") == 0) {
        if (number(argv[3], 1, 1LL << 40, &a) || number(argv[4], 0, 255, &b) || number(argv[5], -64, 255, &c))
            return usage();
        return parent(argv[2], (size_t)a, (unsigned)b, (int)c, argv + 7);
    }
    return usage();
}
