/* machine_limits: what this machine itself can do, printed at the top of every `make bench` table
 * so a reader sees which kind of machine a run came from (issue 12: a futex wake round trip took
 * 1.8 us on one machine of this kind and 12-25 us on another, and the ratios read differently).
 *
 * Four figures, each the median of several passes, with no mpx code involved:
 *   - spin ping-pong: two processes handing a shared word back and forth by spinning (nothing
 *     crosses processes faster; the floor of any handoff);
 *   - futex ping-pong: the same with FUTEX_WAIT/FUTEX_WAKE (the price of sleeping and waking);
 *   - raw pipe: 64-byte writes read by another process (messages/s);
 *   - memcpy: 64 MiB between warm malloc'd buffers (GB/s).
 *
 * Output: one `LIMIT {json}` line per figure, read by benches/run.py. Not a benchmark of mpx
 * (its name does not end in _bench, so run.py runs it only for this header). BENCH_QUICK=1: short. */
#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"

#define PASSES 5

static void die(const char *what) {
    fprintf(stderr, "machine_limits: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void reap(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) die("waitpid");
    }
}

static long futex(_Atomic uint32_t *w, int op, uint32_t v) {
    return syscall(SYS_futex, w, op, v, NULL, NULL, 0);
}

static void limit(const char *name, double value, const char *unit, int higher_is_better) {
    printf("LIMIT {\"name\":\"%s\",\"value\":%.4g,\"unit\":\"%s\",\"higher_is_better\":%s}\n", name, value, unit,
           higher_is_better ? "true" : "false");
    fflush(stdout);
}

/* Round trips of a word between two processes, us each; `sleep`: wait in the kernel. */
static double ping_pong(_Atomic uint32_t *w, long n, int sleep) {
    atomic_store(w, 0);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        for (uint32_t i = 0; i < (uint32_t)n; i++) {
            uint32_t v;
            while ((v = atomic_load(w)) != 2 * i + 1) {
                if (sleep) futex(w, FUTEX_WAIT, v);
            }
            atomic_store(w, 2 * i + 2);
            if (sleep) futex(w, FUTEX_WAKE, 1);
        }
        _exit(0);
    }
    uint64_t t = bench_now_ns();
    for (uint32_t i = 0; i < (uint32_t)n; i++) {
        atomic_store(w, 2 * i + 1);
        if (sleep) futex(w, FUTEX_WAKE, 1);
        uint32_t v;
        while ((v = atomic_load(w)) != 2 * i + 2) {
            if (sleep) futex(w, FUTEX_WAIT, v);
        }
    }
    double us = (double)(bench_now_ns() - t) / 1e3 / (double)n;
    reap(pid);
    return us;
}

/* 64-byte messages/s through a pipe to a reading process. */
static double pipe_rate(long n) {
    int p[2];
    if (pipe(p) != 0) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        close(p[1]);
        char buf[65536];
        while (read(p[0], buf, sizeof buf) > 0) {
        }
        _exit(0);
    }
    close(p[0]);
    char msg[64] = {0};
    uint64_t t = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (write(p[1], msg, sizeof msg) != (ssize_t)sizeof msg) die("write");
    }
    close(p[1]);
    reap(pid);
    return (double)n / ((double)(bench_now_ns() - t) / 1e9);
}

static double memcpy_rate(char *dst, char *src, size_t size, int rounds) {
    uint64_t t = bench_now_ns();
    for (int r = 0; r < rounds; r++) {
        src[r] = (char)r;
        memcpy(dst, src, size);
        bench_clobber(dst);
    }
    return (double)size * rounds / ((double)(bench_now_ns() - t));
}

int main(void) {
    _Atomic uint32_t *words = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (words == MAP_FAILED) die("mmap");
    double spin[PASSES], fx[PASSES], pipe_r[PASSES], copy[PASSES];
    size_t size = 64u << 20;
    char *src = malloc(size), *dst = malloc(size);
    if (src == NULL || dst == NULL) die("malloc");
    memset(src, 1, size);
    memcpy(dst, src, size);
    for (int i = 0; i < PASSES; i++) {
        spin[i] = ping_pong(&words[0], bench_pick(100000, 5000), 0);
        fx[i] = ping_pong(&words[16], bench_pick(20000, 1000), 1);
        pipe_r[i] = pipe_rate(bench_pick(500000, 20000));
        copy[i] = memcpy_rate(dst, src, size, (int)bench_pick(8, 1));
    }
    limit("spin ping-pong round trip, 2 processes", bench_median(spin, PASSES), "us", 0);
    limit("futex wait/wake ping-pong round trip, 2 processes", bench_median(fx, PASSES), "us", 0);
    limit("raw pipe, 64 B writes to a reading process", bench_median(pipe_r, PASSES), "msgs/s", 1);
    limit("memcpy, 64 MiB warm buffers", bench_median(copy, PASSES), "GB/s", 1);
    free(src);
    free(dst);
    return 0;
}
