/* Starting processes from C: start + join of a trivial child, beside the bare system calls doing
 * the same, measured in the same run (blocks of mpx and anchor alternate; medians).
 *
 * 1. mpx_fork (child returns 0) + mpx_process_join + close  vs  fork + _exit + waitpid.
 *    Goal: within 2x of the bare calls (ratio >= 0.5).
 * 2. mpx_spawn of /bin/true + join  vs  posix_spawn of /bin/true + waitpid.
 * 3. Entry points: mpx_start of a registered no-op entry by fork, by spawn (this program
 *    re-executed, dispatching in mpx_init) and by the fork server (started before timing),
 *    beside fork + waitpid (fork, forkserver) and posix_spawn of this program with an argument
 *    that makes it exit at once (spawn).
 *
 * BENCH_QUICK=1: a few repetitions (a smoke run). Output convention: benches/README.md. */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "mpx.h"

#define BENCH "process"

extern char **environ;

static void die_mpx(const char *what, mpx_status st) {
    fprintf(stderr, "process_bench: %s: %s: %s\n", what, mpx_status_name(st), mpx_last_error());
    exit(1);
}

static void die_os(const char *what) {
    fprintf(stderr, "process_bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int child_zero(void *user) {
    (void)user;
    return 0;
}

static int entry_noop(const uint8_t *arg, size_t len, void *user) {
    (void)arg;
    (void)len;
    (void)user;
    return 0;
}

static void join_ok(mpx_process *p) {
    int code = -1;
    mpx_status st = mpx_process_join(p, MPX_FOREVER, &code);
    if (st != MPX_OK) die_mpx("join", st);
    if (code != 0) {
        fprintf(stderr, "process_bench: child exited with %d\n", code);
        exit(1);
    }
    mpx_process_close(p);
}

static void waitpid_ok(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) die_os("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "process_bench: child status %#x\n", status);
        exit(1);
    }
}

/* ---------------------------------------------------------------- one start + join each */

static double mpx_fork_once(void) {
    uint64_t t = bench_now_ns();
    mpx_process *p = NULL;
    mpx_status st = mpx_fork(child_zero, NULL, NULL, &p);
    if (st != MPX_OK) die_mpx("mpx_fork", st);
    join_ok(p);
    return (double)(bench_now_ns() - t) / 1e3;
}

static double bare_fork_once(void) {
    uint64_t t = bench_now_ns();
    pid_t pid = fork();
    if (pid < 0) die_os("fork");
    if (pid == 0) _exit(0);
    waitpid_ok(pid);
    return (double)(bench_now_ns() - t) / 1e3;
}

static double mpx_spawn_true_once(void) {
    static const char *const argv[] = {"true", NULL};
    uint64_t t = bench_now_ns();
    mpx_process *p = NULL;
    mpx_status st = mpx_spawn("/bin/true", argv, NULL, &p);
    if (st != MPX_OK) die_mpx("mpx_spawn", st);
    join_ok(p);
    return (double)(bench_now_ns() - t) / 1e3;
}

static double posix_spawn_once(const char *path, char *const argv[]) {
    uint64_t t = bench_now_ns();
    pid_t pid;
    int e = posix_spawn(&pid, path, NULL, NULL, argv, environ);
    if (e != 0) {
        errno = e;
        die_os("posix_spawn");
    }
    waitpid_ok(pid);
    return (double)(bench_now_ns() - t) / 1e3;
}

static double posix_spawn_true_once(void) {
    static char *const argv[] = {"true", NULL};
    return posix_spawn_once("/bin/true", argv);
}

static char g_self[4096];

static double posix_spawn_self_once(void) {
    char *const argv[] = {g_self, "--exit", NULL};
    return posix_spawn_once(g_self, argv);
}

static uint32_t g_method;

static double mpx_entry_once(void) {
    uint64_t t = bench_now_ns();
    mpx_process *p = NULL;
    mpx_status st = mpx_start(g_method, "noop", NULL, 0, NULL, &p);
    if (st != MPX_OK) die_mpx("mpx_start", st);
    join_ok(p);
    return (double)(bench_now_ns() - t) / 1e3;
}

/* ---------------------------------------------------------------- comparison */

typedef double (*once_fn)(void);

/* Runs `rounds` alternating blocks of `block` starts of each; reports both medians. */
static void compare(const char *figure, once_fn ours, const char *anchor, once_fn theirs, long rounds,
                    long block, const char *goal, double goal_ratio) {
    size_t n = (size_t)(rounds * block);
    double *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
    if (!a || !b) die_os("calloc");
    ours();
    theirs(); /* warm-up */
    size_t k = 0;
    for (long r = 0; r < rounds; r++) {
        for (long i = 0; i < block; i++) a[k + (size_t)i] = ours();
        for (long i = 0; i < block; i++) b[k + (size_t)i] = theirs();
        k += (size_t)block;
    }
    double ma = bench_median(a, n), mb = bench_median(b, n);
    bench_result(BENCH, figure, ma, "us", anchor, mb, 0, goal, goal_ratio);
    free(a);
    free(b);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--exit") == 0) return 0; /* the posix_spawn anchor's child */
    mpx_status st = mpx_entry_register("noop", entry_noop, NULL);
    if (st != MPX_OK) die_mpx("register", st);
    if ((st = mpx_init(argc, (const char *const *)argv)) != MPX_OK) die_mpx("mpx_init", st);
    ssize_t len = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    if (len <= 0) die_os("readlink /proc/self/exe");
    g_self[len] = 0;

    long rounds = bench_pick(10, 2), block = bench_pick(50, 3);
    printf("start + join of a trivial child (median of %ld, microseconds)\n", rounds * block);
    compare("mpx_fork + join", mpx_fork_once, "fork + waitpid", bare_fork_once, rounds, block, ">= 0.5 (within 2x)",
            0.5);
    compare("mpx_spawn /bin/true + join", mpx_spawn_true_once, "posix_spawn /bin/true + waitpid", posix_spawn_true_once,
            rounds, bench_pick(20, 2), NULL, 0);

    g_method = MPX_START_FORK;
    compare("entry point by fork + join", mpx_entry_once, "fork + waitpid", bare_fork_once, rounds, block, NULL, 0);
    g_method = MPX_START_SPAWN;
    compare("entry point by spawn (re-exec) + join", mpx_entry_once, "posix_spawn of this program + waitpid",
            posix_spawn_self_once, rounds, bench_pick(20, 2), NULL, 0);
    g_method = MPX_START_FORKSERVER;
    mpx_entry_once(); /* starts the fork server outside the timing */
    compare("entry point by fork server + join", mpx_entry_once, "fork + waitpid", bare_fork_once, rounds, block, NULL,
            0);
    return 0;
}
