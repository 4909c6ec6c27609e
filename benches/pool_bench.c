/* pool_bench.c: tasks per second through an mpx process pool from C (2 forked workers running
 * a trivial function that returns its 8-byte argument), beside what a C programmer would write
 * by hand instead: a forked worker answering requests over a pair of pipes, one at a time.
 * Every figure and its anchor are measured in alternating passes and the medians reported.
 *
 *   pool_bench [--quick]
 *
 * Figures: unbatched (submit one task, wait for it, repeat: the goal is 1 M tasks/s),
 * pipelined (submit 256, then wait for them), batched (mpx_pool_map, multiprocessing's chunk
 * rule). Output: a readable line per figure and a RESULT line (benches/README.md).
 */
#include <mpx.h>

#include "bench_common.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BENCH "pool"
#define WINDOW 256

static void die(const char *what, mpx_status st) {
    fprintf(stderr, "pool_bench: %s: %s: %s\n", what, mpx_status_name(st), mpx_last_error());
    exit(1);
}

#define TRY(call)                            \
    do {                                     \
        mpx_status st_ = (call);             \
        if (st_ != MPX_OK) die(#call, st_); \
    } while (0)

static int32_t echo(void *user, const uint8_t *args, size_t len, mpx_task_out *out) {
    (void)user;
    return mpx_task_out_set(out, args, len);
}

static void check_result(uint8_t *r, size_t len, uint64_t want) {
    uint64_t got = 0;
    if (len != sizeof got) die("result length", MPX_E_CORRUPT);
    memcpy(&got, r, sizeof got);
    if (got != want) die("result value", MPX_E_CORRUPT);
    mpx_free(r);
}

static double unbatched(mpx_pool *p, long n) {
    double t = bench_now();
    for (uint64_t i = 0; i < (uint64_t)n; i++) {
        uint64_t task = 0;
        uint8_t *r = NULL;
        size_t len = 0;
        TRY(mpx_pool_submit(p, "echo", (const uint8_t *)&i, sizeof i, &task));
        TRY(mpx_pool_wait(p, task, 30 * 1000000000LL, &r, &len));
        check_result(r, len, i);
    }
    return (double)n / (bench_now() - t);
}

static double pipelined(mpx_pool *p, long n) {
    uint64_t tasks[WINDOW];
    double t = bench_now();
    for (long done = 0; done < n; done += WINDOW) {
        long k = n - done < WINDOW ? n - done : WINDOW;
        for (long j = 0; j < k; j++) {
            uint64_t v = (uint64_t)(done + j);
            TRY(mpx_pool_submit(p, "echo", (const uint8_t *)&v, sizeof v, &tasks[j]));
        }
        for (long j = 0; j < k; j++) {
            uint8_t *r = NULL;
            size_t len = 0;
            TRY(mpx_pool_wait(p, tasks[j], 30 * 1000000000LL, &r, &len));
            check_result(r, len, (uint64_t)(done + j));
        }
    }
    return (double)n / (bench_now() - t);
}

static double batched(mpx_pool *p, long n) {
    uint64_t *items = malloc((size_t)n * sizeof *items);
    size_t *lens = malloc((size_t)n * sizeof *lens), *out_lens = malloc((size_t)n * sizeof *out_lens);
    if (!items || !lens || !out_lens) die("malloc", MPX_E_OS);
    for (long i = 0; i < n; i++) {
        items[i] = (uint64_t)i;
        lens[i] = sizeof(uint64_t);
    }
    uint8_t *out = NULL;
    double t = bench_now();
    TRY(mpx_pool_map(p, "echo", (const uint8_t *)items, lens, (size_t)n, 0, 60 * 1000000000LL, &out, out_lens));
    double r = (double)n / (bench_now() - t);
    for (long i = 0; i < n; i++) {
        uint64_t got;
        memcpy(&got, out + (size_t)i * sizeof got, sizeof got);
        if (out_lens[i] != sizeof got || got != (uint64_t)i) die("map result", MPX_E_CORRUPT);
    }
    mpx_free(out);
    free(items);
    free(lens);
    free(out_lens);
    return r;
}

/* The hand-written anchor: one forked worker, requests and replies of 8 bytes over two pipes,
 * one at a time. Requests per second. */
static double raw_pipe_worker(long n) {
    int req[2], rep[2];
    if (pipe(req) || pipe(rep)) die("pipe", MPX_E_OS);
    pid_t pid = fork();
    if (pid < 0) die("fork", MPX_E_OS);
    if (pid == 0) {
        close(req[1]);
        close(rep[0]);
        uint64_t v;
        while (read(req[0], &v, sizeof v) == (ssize_t)sizeof v)
            if (write(rep[1], &v, sizeof v) != (ssize_t)sizeof v) _exit(1);
        _exit(0);
    }
    close(req[0]);
    close(rep[1]);
    double t = bench_now();
    for (uint64_t i = 0; i < (uint64_t)n; i++) {
        uint64_t v = i;
        if (write(req[1], &v, sizeof v) != (ssize_t)sizeof v || read(rep[0], &v, sizeof v) != (ssize_t)sizeof v ||
            v != i)
            die("raw pipe worker", MPX_E_OS);
    }
    double r = (double)n / (bench_now() - t);
    close(req[1]);
    close(rep[0]);
    int status;
    waitpid(pid, &status, 0);
    return r;
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("pool_bench (C): mpx %s, %s mode; 2 workers, a trivial function (8 bytes in, the same out)\n",
           mpx_version(), bench_quick() ? "quick" : "full");
    long n = bench_pick(100000, 5000), nmap = bench_pick(200000, 10000), nraw = bench_pick(20000, 2000);
    int rounds = (int)bench_pick(3, 1);

    mpx_pool_registry *reg = NULL;
    mpx_pool_opts *opts = NULL;
    mpx_pool *p = NULL;
    TRY(mpx_pool_registry_new(&reg));
    TRY(mpx_pool_registry_add(reg, "echo", echo, NULL));
    TRY(mpx_pool_opts_new(&opts));
    TRY(mpx_pool_opts_set_workers(opts, 2));
    TRY(mpx_pool_create(NULL, opts, reg, &p));
    (void)unbatched(p, n / 10); /* warm up: workers started, queues touched */

    double u[8], pl[8], b[8], raw[8];
    for (int i = 0; i < rounds; i++) {
        u[i] = unbatched(p, n);
        pl[i] = pipelined(p, n);
        b[i] = batched(p, nmap);
        raw[i] = raw_pipe_worker(nraw);
    }
    double mu = bench_median(u, (size_t)rounds), mp = bench_median(pl, (size_t)rounds);
    double mb = bench_median(b, (size_t)rounds), mr = bench_median(raw, (size_t)rounds);
    const char *anchor = "raw pipes to one forked worker, one request at a time";
    bench_result(BENCH, "tasks/s, unbatched submit+wait, 2 workers, C", mu, "tasks/s", anchor, mr, 1,
                 "at least 1e6 tasks/s", 0);
    bench_result(BENCH, "tasks/s, 256 submitted then waited, 2 workers, C", mp, "tasks/s", anchor, mr, 1, NULL, 0);
    bench_result(BENCH, "items/s, mpx_pool_map of 200000, default chunks, 2 workers, C", mb, "items/s", anchor, mr, 1,
                 NULL, 0);

    TRY(mpx_pool_close(p));
    TRY(mpx_pool_join(p, 30 * 1000000000LL));
    mpx_pool_free(p);
    mpx_pool_opts_free(opts);
    mpx_pool_registry_free(reg);
    return 0;
}
