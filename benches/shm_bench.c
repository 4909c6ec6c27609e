/* Shared-memory buffers from C, against the raw POSIX calls and memcpy measured in the same run.
 *
 * 1. Lifecycle: create + open + close + unlink of a named buffer (median µs per cycle and per
 *    step) beside shm_open + ftruncate + mmap / munmap + close / shm_unlink doing the same work.
 * 2. Bandwidth: filling a 256 MiB mpx buffer from C (memcpy from a warm source, memset), warm
 *    (second and later passes) and first touch (fresh pages, page faults included), beside the
 *    same operation into malloc'd memory (and, for first touch, into a raw POSIX shm mapping).
 *    Goal: >= 95% of memcpy.
 *
 * BENCH_QUICK=1: 32 MiB and few repetitions (a smoke run). Output convention: benches/README.md. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_common.h"
#include "mpx.h"

#define BENCH "shm"

/* Names this run may leave behind if killed; removed at exit and on SIGINT/SIGTERM. */
static char g_mpx_name[64], g_raw_name[64];

static void cleanup(void) {
    if (g_mpx_name[0]) mpx_shm_unlink(g_mpx_name);
    if (g_raw_name[0]) shm_unlink(g_raw_name);
}

static void on_signal(int sig) {
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void die_mpx(const char *what, mpx_status st) {
    fprintf(stderr, "shm_bench: %s: %s: %s\n", what, mpx_status_name(st), mpx_last_error());
    exit(1);
}

static void die_os(const char *what) {
    fprintf(stderr, "shm_bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xalloc(size_t size) {
    /* Page-aligned like the mpx data, so both sides of a comparison copy with the same alignment. */
    void *p = aligned_alloc(4096, size);
    if (p == NULL) die_os("aligned_alloc");
    return p;
}

/* ---------------------------------------------------------------- lifecycle */

enum { ST_CREATE, ST_OPEN, ST_CLOSE_OPENER, ST_CLOSE_CREATOR, ST_UNLINK, NSTEPS };
static const char *const STEP_NAMES[NSTEPS] = {"create", "open", "close (opener)", "close (creator)",
                                               "unlink"};
/* What the raw anchor does for each step. */
static const char *const RAW_STEPS[NSTEPS] = {
    "shm_open(O_CREAT|O_EXCL)+ftruncate+mmap", "shm_open+fstat+mmap", "munmap+close", "munmap+close",
    "shm_unlink"};

/* One mpx cycle; writes the µs each step took to t[] (t == NULL: no open, no per-step times). */
static double bench_mpx_cycle(size_t size, int with_open, double *t) {
    mpx_shm *a = NULL, *b = NULL;
    mpx_status st;
    uint64_t t0 = bench_now_ns();
    if ((st = mpx_shm_create(g_mpx_name, size, 0, &a)) != MPX_OK) die_mpx("mpx_shm_create", st);
    uint64_t t1 = bench_now_ns();
    if (with_open && (st = mpx_shm_open(g_mpx_name, 0, &b)) != MPX_OK) die_mpx("mpx_shm_open", st);
    uint64_t t2 = bench_now_ns();
    mpx_shm_close(b);
    uint64_t t3 = bench_now_ns();
    mpx_shm_close(a);
    uint64_t t4 = bench_now_ns();
    if ((st = mpx_shm_unlink(g_mpx_name)) != MPX_OK) die_mpx("mpx_shm_unlink", st);
    uint64_t t5 = bench_now_ns();
    if (t) {
        t[ST_CREATE] = (double)(t1 - t0) / 1e3;
        t[ST_OPEN] = (double)(t2 - t1) / 1e3;
        t[ST_CLOSE_OPENER] = (double)(t3 - t2) / 1e3;
        t[ST_CLOSE_CREATOR] = (double)(t4 - t3) / 1e3;
        t[ST_UNLINK] = (double)(t5 - t4) / 1e3;
    }
    return (double)(t5 - t0) / 1e3;
}

/* The same cycle with the raw calls: what any shared-memory library must at least do. */
static double raw_cycle(size_t size, int with_open, double *t) {
    uint64_t t0 = bench_now_ns();
    int fa = shm_open(g_raw_name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fa < 0) die_os("shm_open(O_CREAT)");
    if (ftruncate(fa, (off_t)size) != 0) die_os("ftruncate");
    void *pa = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fa, 0);
    if (pa == MAP_FAILED) die_os("mmap");
    uint64_t t1 = bench_now_ns();
    int fb = -1;
    void *pb = MAP_FAILED;
    struct stat sb;
    if (with_open) {
        fb = shm_open(g_raw_name, O_RDWR, 0);
        if (fb < 0) die_os("shm_open");
        if (fstat(fb, &sb) != 0) die_os("fstat");
        pb = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fb, 0);
        if (pb == MAP_FAILED) die_os("mmap");
    }
    uint64_t t2 = bench_now_ns();
    if (with_open) {
        munmap(pb, (size_t)sb.st_size);
        close(fb);
    }
    uint64_t t3 = bench_now_ns();
    munmap(pa, size);
    close(fa);
    uint64_t t4 = bench_now_ns();
    if (shm_unlink(g_raw_name) != 0) die_os("shm_unlink");
    uint64_t t5 = bench_now_ns();
    if (t) {
        t[ST_CREATE] = (double)(t1 - t0) / 1e3;
        t[ST_OPEN] = (double)(t2 - t1) / 1e3;
        t[ST_CLOSE_OPENER] = (double)(t3 - t2) / 1e3;
        t[ST_CLOSE_CREATOR] = (double)(t4 - t3) / 1e3;
        t[ST_UNLINK] = (double)(t5 - t4) / 1e3;
    }
    return (double)(t5 - t0) / 1e3;
}

/* Runs n cycles of each, alternating blocks of mpx and raw so both see the same noise, and
 * reports the medians. */
static void bench_lifecycle(size_t size, const char *size_label, int with_open, int per_step, long n) {
    double *mc = calloc((size_t)n, sizeof *mc), *rc = calloc((size_t)n, sizeof *rc);
    double *ms = calloc((size_t)n * NSTEPS, sizeof *ms), *rs = calloc((size_t)n * NSTEPS, sizeof *rs);
    if (!mc || !rc || !ms || !rs) die_os("calloc");
    /* Warm up: first calls load code, fault in the library's pages, create the TLS error slot. */
    for (int i = 0; i < 20; i++) {
        bench_mpx_cycle(size, with_open, NULL);
        raw_cycle(size, with_open, NULL);
    }
    const long block = 50;
    for (long i = 0; i < n; i += block) {
        for (long j = i; j < n && j < i + block; j++) mc[j] = bench_mpx_cycle(size, with_open, ms + j * NSTEPS);
        for (long j = i; j < n && j < i + block; j++) rc[j] = raw_cycle(size, with_open, rs + j * NSTEPS);
    }

    char fig[160], anchor[200];
    snprintf(fig, sizeof fig, "%s cycle, %s", with_open ? "create+open+close+unlink" : "create+close+unlink",
             size_label);
    snprintf(anchor, sizeof anchor, "raw shm_open+ftruncate+mmap%s+munmap+close+shm_unlink",
             with_open ? "+shm_open+fstat+mmap" : "");
    bench_result(BENCH, fig, bench_median(mc, (size_t)n), "us", anchor, bench_median(rc, (size_t)n), 0,
                 NULL, 0);

    if (per_step) {
        double *col = calloc((size_t)n, sizeof *col), *rcol = calloc((size_t)n, sizeof *rcol);
        if (!col || !rcol) die_os("calloc");
        for (int s = 0; s < NSTEPS; s++) {
            for (long j = 0; j < n; j++) {
                col[j] = ms[j * NSTEPS + s];
                rcol[j] = rs[j * NSTEPS + s];
            }
            snprintf(fig, sizeof fig, "step: %s, %s", STEP_NAMES[s], size_label);
            snprintf(anchor, sizeof anchor, "raw %s", RAW_STEPS[s]);
            bench_result(BENCH, fig, bench_median(col, (size_t)n), "us", anchor, bench_median(rcol, (size_t)n),
                         0, NULL, 0);
        }
        free(col);
        free(rcol);
    }
    free(mc);
    free(rc);
    free(ms);
    free(rs);
}

/* ---------------------------------------------------------------- bandwidth */

/* A raw POSIX shm mapping of `size` fresh bytes (the first-touch anchor for shared pages). */
static void *raw_map(size_t size, int *fd) {
    *fd = shm_open(g_raw_name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (*fd < 0) die_os("shm_open(O_CREAT)");
    if (ftruncate(*fd, (off_t)size) != 0) die_os("ftruncate");
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    if (p == MAP_FAILED) die_os("mmap");
    return p;
}

static void raw_unmap(void *p, size_t size, int fd) {
    munmap(p, size);
    close(fd);
    shm_unlink(g_raw_name);
}

static mpx_shm *bench_buf_new(size_t size) {
    mpx_shm *s = NULL;
    mpx_status st = mpx_shm_create(g_mpx_name, size, 0, &s);
    if (st != MPX_OK) die_mpx("mpx_shm_create", st);
    return s;
}

static void bench_buf_free(mpx_shm *s) {
    mpx_shm_close(s);
    mpx_shm_unlink(g_mpx_name);
}

/* One timed fill of dst (memcpy from src, or memset when src is NULL); seconds. */
static double fill(void *dst, const void *src, size_t size, int byte) {
    double t = bench_now();
    if (src)
        memcpy(dst, src, size);
    else
        memset(dst, byte, size);
    bench_clobber(dst);
    return bench_now() - t;
}

static void bench_bandwidth(size_t size, const char *size_label, int warm_passes, int cold_reps) {
    char *src = xalloc(size);
    memset(src, 0x5a, size); /* warm source: every page present */
    memset(src, 0xa5, size);

    /* First touch: a fresh destination each repetition, so every page faults in during the fill.
     * Kinds: 0 malloc (anonymous pages), 1 mpx buffer, 2 raw POSIX shm. */
    for (int op = 0; op < 2; op++) {
        double *cold[3];
        for (int k = 0; k < 3; k++)
            if (!(cold[k] = calloc((size_t)cold_reps, sizeof(double)))) die_os("calloc");
        for (int r = 0; r < cold_reps; r++) {
            const void *from = op == 0 ? src : NULL;
            /* Rotate which kind goes first, so none always runs on the freshest CPU state. */
            for (int i = 0; i < 3; i++) {
                int k = (i + r) % 3;
                if (k == 0) {
                    char *m = xalloc(size);
                    cold[0][r] = bench_gbps((double)size, fill(m, from, size, r + 1));
                    free(m);
                } else if (k == 1) {
                    mpx_shm *s = bench_buf_new(size);
                    cold[1][r] = bench_gbps((double)size, fill(mpx_shm_ptr(s), from, size, r + 1));
                    bench_buf_free(s);
                } else {
                    int fd;
                    void *p = raw_map(size, &fd);
                    cold[2][r] = bench_gbps((double)size, fill(p, from, size, r + 1));
                    raw_unmap(p, size, fd);
                }
            }
        }
        const char *what = op == 0 ? "memcpy" : "memset";
        char fig[160], a0[160], a2[160];
        snprintf(fig, sizeof fig, "fill %s mpx buffer from C, %s, first touch", size_label, what);
        snprintf(a0, sizeof a0, "%s into fresh malloc'd memory", what);
        snprintf(a2, sizeof a2, "%s into fresh raw POSIX shm", what);
        double mpx_v = bench_median(cold[1], (size_t)cold_reps);
        bench_result(BENCH, fig, mpx_v, "GB/s", a0, bench_median(cold[0], (size_t)cold_reps), 1, NULL, 0);
        snprintf(fig, sizeof fig, "fill %s mpx buffer from C, %s, first touch (vs shm)", size_label, what);
        bench_result(BENCH, fig, mpx_v, "GB/s", a2, bench_median(cold[2], (size_t)cold_reps), 1,
                     ">= 0.95 of raw shm", 0.95);
        for (int k = 0; k < 3; k++) free(cold[k]);
    }

    /* Warm: the destination's pages are present; alternate anchor and mpx passes. */
    char *dst = xalloc(size);
    mpx_shm *s = bench_buf_new(size);
    char *shm = (char *)mpx_shm_ptr(s);
    memset(dst, 1, size);
    memset(shm, 1, size);
    double *wa = calloc((size_t)warm_passes, sizeof(double)), *wm = calloc((size_t)warm_passes, sizeof(double));
    if (!wa || !wm) die_os("calloc");
    for (int op = 0; op < 2; op++) {
        const void *from = op == 0 ? src : NULL;
        /* One untimed pass each, so caches and predictors start equal. */
        fill(dst, from, size, 2);
        fill(shm, from, size, 2);
        for (int r = 0; r < warm_passes; r++) {
            if (r % 2 == 0) {
                wa[r] = bench_gbps((double)size, fill(dst, from, size, r + 3));
                wm[r] = bench_gbps((double)size, fill(shm, from, size, r + 3));
            } else {
                wm[r] = bench_gbps((double)size, fill(shm, from, size, r + 3));
                wa[r] = bench_gbps((double)size, fill(dst, from, size, r + 3));
            }
        }
        const char *what = op == 0 ? "memcpy" : "memset";
        char fig[160], anchor[160], goal[64];
        snprintf(fig, sizeof fig, "fill %s mpx buffer from C, %s, warm", size_label, what);
        snprintf(anchor, sizeof anchor, op == 0 ? "memcpy between malloc'd buffers" : "memset of a malloc'd buffer");
        snprintf(goal, sizeof goal, ">= 0.95 of %s", what);
        bench_result(BENCH, fig, bench_median(wm, (size_t)warm_passes), "GB/s", anchor,
                     bench_median(wa, (size_t)warm_passes), 1, goal, 0.95);
    }
    /* Check the copy really happened (the last memset wrote warm_passes + 2). */
    if ((unsigned char)shm[size / 2] != (unsigned char)(warm_passes + 2)) {
        fprintf(stderr, "shm_bench: fill check failed\n");
        exit(1);
    }
    free(wa);
    free(wm);
    bench_buf_free(s);
    free(dst);
    free(src);
}

int main(void) {
    snprintf(g_mpx_name, sizeof g_mpx_name, "bench-shm-c-%d", (int)getpid());
    snprintf(g_raw_name, sizeof g_raw_name, "/bench-shm-raw-%d", (int)getpid());
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    int quick = bench_quick();
    long cycles = bench_pick(2000, 200);
    size_t big = quick ? (size_t)32 << 20 : (size_t)256 << 20;
    const char *big_label = quick ? "32 MiB" : "256 MiB";

    printf("shm_bench (C): mpx %s, %s mode\n", mpx_version(), quick ? "quick" : "full");
    printf("lifecycle of a named buffer, median of %ld cycles (lower is better)\n", cycles);
    fflush(stdout);
    bench_lifecycle(4096, "4 KiB", 1, 1, cycles);
    bench_lifecycle(4096, "4 KiB", 0, 0, cycles);
    bench_lifecycle(big, big_label, 1, 0, cycles / 4);

    printf("bandwidth of filling a %s buffer (higher is better)\n", big_label);
    fflush(stdout);
    bench_bandwidth(big, big_label, (int)bench_pick(9, 3), (int)bench_pick(3, 1));
    return 0;
}
