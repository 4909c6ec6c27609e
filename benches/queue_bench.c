/* queue_bench.c: mpx queue throughput and latency from C, measured beside a raw pipe (and
 * memcpy and a bare shared-memory handoff for bandwidth) in the same run: every figure and its
 * anchor are measured in alternating passes and the medians reported. Producers and consumers
 * are separate processes (fork); 64-byte messages unless said otherwise.
 *
 *   queue_bench [--quick] [single|batch|latency|frames|mpmc ...]   (default: all figures)
 *
 * BENCH_QUICK=1 (or --quick): small sizes, one pass (a smoke run, not a measurement). Output:
 * a readable line per figure and a RESULT line (convention: benches/README.md).
 * Figures: single put/get, batched put_many/get_many, round-trip latency (median, p99),
 * 1 MiB frames through reserve/commit + in-place read, 4 producers + 4 consumers.
 */
#include <mpx.h>

#include "bench_common.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 64
#define BATCH 256

static int quick = 0;

static double now(void) { return bench_now(); }

static void die(const char *what, mpx_status st) {
    fprintf(stderr, "queue_bench: %s: %s: %s\n", what, mpx_status_name(st), mpx_last_error());
    exit(1);
}

static void reap(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "queue_bench: child %d failed (status %#x)\n", (int)pid, st);
        exit(1);
    }
}

static mpx_queue *new_queue(size_t cap) {
    mpx_queue *q = NULL;
    mpx_status st = mpx_queue_create_anonymous(cap, 0, 0, &q);
    if (st != MPX_OK) die("create", st);
    return q;
}

/* ---- raw pipe anchors ------------------------------------------------------------------ */

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n) {
    char *c = p;
    while (n) {
        ssize_t r = read(fd, c, n);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            return -1;
        }
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Pipe throughput: `n` messages of `size` bytes written `per_call` at a time. */
static double pipe_rate(long n, size_t size, int per_call) {
    int fds[2];
    if (pipe(fds) != 0) exit(1);
    size_t chunk = size * (size_t)per_call;
    char *buf = calloc(1, chunk);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        for (long i = 0; i < n; i += per_call)
            if (write_all(fds[1], buf, chunk) != 0) _exit(1);
        _exit(0);
    }
    close(fds[1]);
    double t0 = now();
    for (long i = 0; i < n; i += per_call)
        if (read_all(fds[0], buf, chunk) != 0) exit(1);
    double dt = now() - t0;
    close(fds[0]);
    reap(pid);
    free(buf);
    return (double)n / dt;
}

/* Pipe round trip of a 64-byte message: median and p99 in microseconds. */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void pipe_latency(int rounds, double *median, double *p99) {
    int ab[2], ba[2];
    if (pipe(ab) != 0 || pipe(ba) != 0) exit(1);
    char m[MSG] = {0};
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < rounds + 100; i++) {
            if (read_all(ab[0], m, MSG) != 0) _exit(1);
            if (write_all(ba[1], m, MSG) != 0) _exit(1);
        }
        _exit(0);
    }
    double *lat = malloc(sizeof(double) * (size_t)rounds);
    for (int i = 0; i < rounds + 100; i++) {
        double t0 = now();
        write_all(ab[1], m, MSG);
        read_all(ba[0], m, MSG);
        if (i >= 100) lat[i - 100] = (now() - t0) * 1e6;
    }
    reap(pid);
    close(ab[0]), close(ab[1]), close(ba[0]), close(ba[1]);
    qsort(lat, (size_t)rounds, sizeof(double), cmp_double);
    *median = lat[rounds / 2];
    *p99 = lat[rounds * 99 / 100];
    free(lat);
}

/* ---- queue figures --------------------------------------------------------------------- */

/* One producer process, one consumer (this process): single put/get or batches. */
static double queue_rate(long n, int batch) {
    mpx_queue *q = new_queue(1 << 20);
    pid_t pid = fork();
    if (pid == 0) {
        char data[MSG * BATCH];
        size_t lens[BATCH];
        for (int i = 0; i < BATCH; i++) lens[i] = MSG;
        memset(data, 7, sizeof data);
        for (long i = 0; i < n;) {
            mpx_status st;
            if (batch == 1) {
                st = mpx_queue_put(q, data, MSG, MPX_FOREVER);
                i++;
            } else {
                st = mpx_queue_put_many(q, data, lens, (size_t)batch, MPX_FOREVER);
                i += batch;
            }
            if (st != MPX_OK) die("put", st);
        }
        _exit(0);
    }
    char buf[MSG * BATCH];
    size_t lens[BATCH], len, count;
    double t0 = now();
    for (long i = 0; i < n;) {
        mpx_status st;
        if (batch == 1) {
            st = mpx_queue_get(q, buf, sizeof buf, &len, MPX_FOREVER);
            i++;
        } else {
            st = mpx_queue_get_many(q, buf, sizeof buf, lens, (size_t)batch, &count, MPX_FOREVER);
            i += (long)count;
        }
        if (st != MPX_OK) die("get", st);
    }
    double dt = now() - t0;
    reap(pid);
    mpx_queue_close(q);
    return (double)n / dt;
}

static void queue_latency(int rounds, double *median, double *p99) {
    mpx_queue *ab = new_queue(1 << 16), *ba = new_queue(1 << 16);
    pid_t pid = fork();
    char m[MSG] = {0};
    size_t len;
    if (pid == 0) {
        for (int i = 0; i < rounds + 100; i++) {
            mpx_status st = mpx_queue_get(ab, m, MSG, &len, MPX_FOREVER);
            if (st != MPX_OK) die("get", st);
            st = mpx_queue_put(ba, m, MSG, MPX_FOREVER);
            if (st != MPX_OK) die("put", st);
        }
        _exit(0);
    }
    double *lat = malloc(sizeof(double) * (size_t)rounds);
    for (int i = 0; i < rounds + 100; i++) {
        double t0 = now();
        mpx_status st = mpx_queue_put(ab, m, MSG, MPX_FOREVER);
        if (st != MPX_OK) die("put", st);
        st = mpx_queue_get(ba, m, MSG, &len, MPX_FOREVER);
        if (st != MPX_OK) die("get", st);
        if (i >= 100) lat[i - 100] = (now() - t0) * 1e6;
    }
    reap(pid);
    mpx_queue_close(ab);
    mpx_queue_close(ba);
    qsort(lat, (size_t)rounds, sizeof(double), cmp_double);
    *median = lat[rounds / 2];
    *p99 = lat[rounds * 99 / 100];
    free(lat);
}

#define FRAME (1u << 20)

/* memcpy bandwidth of 1 MiB frames between two private buffers, bytes/s. */
static double memcpy_rate(int frames) {
    char *a = malloc(FRAME), *b = malloc(FRAME);
    memset(a, 1, FRAME);
    memset(b, 2, FRAME);
    double t0 = now();
    for (int i = 0; i < frames; i++) {
        a[0] = (char)i;
        memcpy(b, a, FRAME);
        __asm__ __volatile__("" ::"r"(b) : "memory");
    }
    double dt = now() - t0;
    free(a);
    free(b);
    return (double)frames * FRAME / dt;
}

/* 1 MiB frames: the producer writes each frame once into reserved ring space (memcpy from its
 * private frame), the consumer reads it in place and copies it out (memcpy to its private
 * buffer), then commits. Bytes/s delivered. */
static double frame_rate(int frames) {
    mpx_queue *q = new_queue(8u * FRAME);
    pid_t pid = fork();
    if (pid == 0) {
        char *src = malloc(FRAME);
        memset(src, 3, FRAME);
        for (int i = 0; i < frames; i++) {
            void *p;
            mpx_status st = mpx_queue_reserve(q, FRAME, MPX_FOREVER, &p);
            if (st != MPX_OK) die("reserve", st);
            src[0] = (char)i;
            memcpy(p, src, FRAME);
            st = mpx_queue_commit(q, FRAME);
            if (st != MPX_OK) die("commit", st);
        }
        _exit(0);
    }
    char *dst = malloc(FRAME);
    double t0 = now();
    for (int i = 0; i < frames; i++) {
        const void *p;
        size_t len;
        mpx_status st = mpx_queue_read(q, MPX_FOREVER, &p, &len);
        if (st != MPX_OK) die("read", st);
        if (len != FRAME) die("frame length", MPX_E_CORRUPT);
        memcpy(dst, p, len);
        st = mpx_queue_read_commit(q);
        if (st != MPX_OK) die("read_commit", st);
    }
    double dt = now() - t0;
    reap(pid);
    free(dst);
    mpx_queue_close(q);
    return (double)frames * FRAME / dt;
}

/* The same handoff over bare shared memory with two spinning counters, no queue: the
 * producer copies a frame into one of 8 slots, the consumer copies it out. What the hardware
 * gives for this pattern (cross-core cache traffic), bytes/s. */
static double raw_frame_rate(int frames) {
    const long slots = 8;
    char *ring = mmap(NULL, (size_t)slots * FRAME + 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ring == MAP_FAILED) exit(1);
    _Atomic long *head = (_Atomic long *)(ring + (size_t)slots * FRAME), *tail = head + 64;
    pid_t pid = fork();
    if (pid == 0) {
        char *src = malloc(FRAME);
        memset(src, 3, FRAME);
        for (long i = 0; i < frames; i++) {
            while (i - atomic_load(head) >= slots) sched_yield();
            src[0] = (char)i;
            memcpy(ring + (i % slots) * FRAME, src, FRAME);
            atomic_store(tail, i + 1);
        }
        _exit(0);
    }
    char *dst = malloc(FRAME);
    double t0 = now();
    for (long i = 0; i < frames; i++) {
        while (atomic_load(tail) <= i) sched_yield();
        memcpy(dst, ring + (i % slots) * FRAME, FRAME);
        atomic_store(head, i + 1);
    }
    double dt = now() - t0;
    reap(pid);
    free(dst);
    munmap(ring, (size_t)slots * FRAME + 4096);
    return (double)frames * FRAME / dt;
}

/* The same frames through a pipe (write + read of 1 MiB), bytes/s. */
static double pipe_frame_rate(int frames) {
    return pipe_rate(frames, FRAME, 1) * FRAME;
}

/* P producers and C consumers, single put/get; total msgs/s. */
static double mpmc_rate(int producers, int consumers, long per_producer) {
    mpx_queue *q = new_queue(1 << 20);
    long total = per_producer * producers;
    pid_t pids[16];
    for (int p = 0; p < producers; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            char m[MSG];
            memset(m, p, MSG);
            for (long i = 0; i < per_producer; i++) {
                mpx_status st = mpx_queue_put(q, m, MSG, MPX_FOREVER);
                if (st != MPX_OK) die("put", st);
            }
            _exit(0);
        }
    }
    /* Consumers stop at the shutdown after the last message; they report their counts in a
     * pipe. */
    int fds[2];
    if (pipe(fds) != 0) exit(1);
    double t0 = now();
    for (int c = 0; c < consumers; c++) {
        pids[producers + c] = fork();
        if (pids[producers + c] == 0) {
            char m[MSG];
            size_t len;
            long got = 0;
            for (;;) {
                mpx_status st = mpx_queue_get(q, m, MSG, &len, MPX_FOREVER);
                if (st == MPX_E_CLOSED) break;
                if (st != MPX_OK) die("get", st);
                got++;
            }
            write_all(fds[1], &got, sizeof got);
            _exit(0);
        }
    }
    for (int p = 0; p < producers; p++) reap(pids[p]);
    /* All put: wait until drained, then shut down so the consumers return. */
    while (mpx_queue_qsize(q) > 0) usleep(100);
    double dt = now() - t0;
    mpx_queue_shutdown(q);
    long sum = 0;
    for (int c = 0; c < consumers; c++) {
        long got;
        if (read_all(fds[0], &got, sizeof got) != 0) exit(1);
        sum += got;
        reap(pids[producers + c]);
    }
    close(fds[0]);
    close(fds[1]);
    mpx_queue_close(q);
    if (sum != total) {
        fprintf(stderr, "queue_bench: %d/%d consumers got %ld of %ld messages\n", producers, consumers, sum, total);
        exit(1);
    }
    return (double)total / dt;
}

/* The pipe with P writers and C readers of 64-byte messages (atomic writes below PIPE_BUF). */
static double pipe_mpmc_rate(int producers, int consumers, long per_producer) {
    int fds[2];
    if (pipe(fds) != 0) exit(1);
    long total = per_producer * producers;
    pid_t pids[16];
    for (int p = 0; p < producers; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            close(fds[0]);
            char m[MSG] = {0};
            for (long i = 0; i < per_producer; i++)
                if (write_all(fds[1], m, MSG) != 0) _exit(1);
            _exit(0);
        }
    }
    close(fds[1]);
    double t0 = now();
    for (int c = 0; c < consumers; c++) {
        pids[producers + c] = fork();
        if (pids[producers + c] == 0) {
            char m[MSG];
            while (read_all(fds[0], m, MSG) == 0) {
            }
            _exit(0);
        }
    }
    close(fds[0]);
    for (int i = 0; i < producers + consumers; i++) reap(pids[i]);
    return (double)total / (now() - t0);
}

static int nsel = 0;
static char **sel = NULL;

/* Whether figure `f` was asked for (all when none was named). */
static int want(const char *f) {
    if (nsel == 0) return 1;
    for (int i = 0; i < nsel; i++)
        if (strcmp(sel[i], f) == 0) return 1;
    return 0;
}

/* Passes per figure: mpx and its anchors alternate, and the medians are reported. */
static int passes(void) { return quick ? 1 : 3; }

static double median3(double *v, int n) { return bench_median(v, (size_t)n); }

static double single_rate = 0; /* mpx 1+1, for the 4+4 comparison */

static void fig_single(void) {
    long n = quick ? 200000 : 2000000;
    double q[3], p[3];
    for (int i = 0; i < passes(); i++) {
        p[i] = pipe_rate(n / 4, MSG, 1);
        q[i] = queue_rate(n, 1);
    }
    single_rate = median3(q, passes());
    bench_result("queue", "single put/get 64 B, 1 producer + 1 consumer process (goal >= 5e6 msgs/s)", single_rate,
                 "msgs/s", "raw pipe, 64 B writes", median3(p, passes()), 1, "at least 5e6 msgs/s", 0);
}

static void fig_batch(void) {
    long n = quick ? 1000000 : 10000000;
    double q[3], p[3];
    for (int i = 0; i < passes(); i++) {
        p[i] = pipe_rate(n, MSG, BATCH);
        q[i] = queue_rate(n, BATCH);
    }
    bench_result("queue", "put_many/get_many 64 B x256, 1 producer + 1 consumer process (goal >= 2e7 msgs/s)",
                 median3(q, passes()), "msgs/s", "raw pipe, 256 x 64 B per write", median3(p, passes()), 1,
                 "at least 2e7 msgs/s", 0);
}

static void fig_latency(void) {
    int rounds = quick ? 2000 : 20000;
    double qm[3], q99[3], pm[3], p99[3];
    for (int i = 0; i < passes(); i++) {
        pipe_latency(rounds / 4, &pm[i], &p99[i]);
        queue_latency(rounds, &qm[i], &q99[i]);
    }
    bench_result("queue", "round-trip latency 64 B between 2 processes, median (goal < 1 us)", median3(qm, passes()),
                 "us", "raw pipe", median3(pm, passes()), 0, "under 1 us", 0);
    bench_result("queue", "round-trip latency 64 B between 2 processes, p99", median3(q99, passes()), "us", "raw pipe",
                 median3(p99, passes()), 0, NULL, 0);
}

static void fig_frames(void) {
    int frames = quick ? 200 : 2000;
    double mc[3], raw[3], fr[3], pf[3];
    for (int i = 0; i < passes(); i++) {
        mc[i] = memcpy_rate(frames);
        raw[i] = raw_frame_rate(frames);
        fr[i] = frame_rate(frames);
        pf[i] = pipe_frame_rate(frames / 4);
    }
    double f = median3(fr, passes()) / 1e9;
    bench_result("queue", "1 MiB frames via reserve/commit + in-place read", f, "GB/s",
                 "memcpy of 1 MiB between two private buffers", median3(mc, passes()) / 1e9, 1, ">= 0.7 of memcpy", 0.7);
    bench_result("queue", "1 MiB frames via reserve/commit + in-place read (vs bare handoff)", f, "GB/s",
                 "same handoff over bare shared memory, no queue", median3(raw, passes()) / 1e9, 1, NULL, 0);
    bench_result("queue", "1 MiB frames via reserve/commit + in-place read (vs pipe)", f, "GB/s", "raw pipe",
                 median3(pf, passes()) / 1e9, 1, NULL, 0);
}

static void fig_mpmc(void) {
    long per = quick ? 50000 : 500000;
    if (single_rate == 0) single_rate = queue_rate(quick ? 200000 : 2000000, 1);
    double m[3], p[3];
    for (int i = 0; i < passes(); i++) {
        p[i] = pipe_mpmc_rate(4, 4, per / 4);
        m[i] = mpmc_rate(4, 4, per);
    }
    double m44 = median3(m, passes());
    bench_result("queue", "4 producers + 4 consumers, single put/get 64 B", m44, "msgs/s", "raw pipe, 4 + 4 processes",
                 median3(p, passes()), 1, NULL, 0);
    bench_result("queue", "4 producers + 4 consumers vs 1 producer + 1 consumer", m44, "msgs/s",
                 "mpx, 1 producer + 1 consumer", single_rate, 1, "no collapse: >= 0.5 of 1 + 1", 0.5);
}

int main(int argc, char **argv) {
    int a = 1;
    quick = bench_quick();
    if (argc > 1 && strcmp(argv[1], "--quick") == 0) quick = 1, a = 2;
    sel = argv + a;
    nsel = argc - a;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("queue_bench (C): mpx %s, %s mode, %d pass(es) per figure\n", mpx_version(), quick ? "quick" : "full", passes());
    if (want("single")) fig_single();
    if (want("batch")) fig_batch();
    if (want("latency")) fig_latency();
    if (want("frames")) fig_frames();
    if (want("mpmc")) fig_mpmc();
    return 0;
}
