/* sync_bench: mpx locks and semaphores from C against their anchors, measured in the same run
 * (mpx and each anchor alternate in blocks or passes; medians). Output: a readable line and a
 * RESULT line per figure (convention: benches/README.md).
 *
 * 1. Uncontended acquire+release, one process (ns per pair). Goal for mpx_lock (issue 4):
 *    under 30 ns, no system call. Anchor: a process-shared *robust* pthread mutex, the pthread
 *    object with the same promise (a holder's death is reported to the next owner); a plain
 *    process-shared mutex is shown too. RLock, Semaphore (plain and undo) and the Value's
 *    embedded lock beside the matching pthread/POSIX objects.
 * 2. Two processes incrementing one counter under a lock (increments/s, the count is checked).
 *    C anchor: the same loop under a robust process-shared pthread mutex. The goal
 *    (at least 10x multiprocessing.Lock + Value) is judged against CPython's multiprocessing
 *    measured in this run too (`with v.get_lock(): v.value += 1` in two forked processes, run
 *    by python3 between the C passes); skipped, with a note, when python3 is not there.
 *    Lock-free: mpx_value_fetch_add_i64 (a call) and the inline path (mpx_value_int_ptr once,
 *    then the header's mpx_elem_fetch_add_i64, issue 12) beside atomic_fetch_add on shared
 *    memory; goal of the inline path: = 1.
 * 3. Semaphore handoff round trip between two processes (us, median and p99), beside the
 *    machine's limits measured here as ../shared/anchors/limits.c does: a spin ping-pong on a
 *    shared word (nothing is faster) and a futex wait/wake ping-pong (the price of sleeping),
 *    and beside a process-shared POSIX sem_t.
 *
 *   sync_bench [uncontended] [counter] [handoff]     (default: all three sections)
 *
 * Only anonymous objects (nothing in /dev/shm). BENCH_QUICK=1: a smoke run. Never a test. */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "mpx.h"

#define BENCH "sync"

static void die(const char *what, mpx_status st) {
    fprintf(stderr, "sync_bench: %s: %s (%s)\n", what, mpx_status_name(st), mpx_last_error());
    exit(1);
}

static void die_os(const char *what) {
    fprintf(stderr, "sync_bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

#define TRY(call)                           \
    do {                                    \
        mpx_status st_ = (call);            \
        if (st_ != MPX_OK) die(#call, st_); \
    } while (0)

static void *shared_mem(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die_os("mmap");
    memset(p, 0, n);
    return p;
}

static void reap(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) die_os("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "sync_bench: a child failed (status %#x)\n", status);
        exit(1);
    }
}

/* A process-shared pthread mutex in shared memory; robust and/or recursive. */
static pthread_mutex_t *shared_mutex(int robust, int recursive) {
    pthread_mutex_t *m = shared_mem(sizeof *m);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (robust) pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (recursive) pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    if (pthread_mutex_init(m, &a) != 0) die_os("pthread_mutex_init");
    pthread_mutexattr_destroy(&a);
    return m;
}

/* ---- 1. uncontended ----------------------------------------------------------------------- */

static mpx_lock *g_lock;
static mpx_rlock *g_rlock;
static mpx_semaphore *g_sem, *g_sem_undo;
static mpx_value *g_value;
static pthread_mutex_t *g_mutex, *g_robust, *g_robust_rec;
static sem_t *g_psem;

/* One block of n acquire+release pairs, ns per pair. A function per case, so the loop body is
 * the bare calls (no indirect call inside the timed loop). */
#define PAIRS(fn, acquire, release)                       \
    static double fn(long n) {                            \
        uint64_t t = bench_now_ns();                      \
        for (long i = 0; i < n; i++) {                    \
            acquire;                                      \
            release;                                      \
        }                                                 \
        return (double)(bench_now_ns() - t) / (double)n;  \
    }

PAIRS(p_lock, mpx_lock_acquire(g_lock, MPX_FOREVER), mpx_lock_release(g_lock))
PAIRS(p_lock_try, mpx_lock_acquire(g_lock, 0), mpx_lock_release(g_lock))
PAIRS(p_rlock, mpx_rlock_acquire(g_rlock, MPX_FOREVER), mpx_rlock_release(g_rlock))
PAIRS(p_sem, mpx_semaphore_acquire(g_sem, MPX_FOREVER), mpx_semaphore_release(g_sem))
PAIRS(p_sem_undo, mpx_semaphore_acquire(g_sem_undo, MPX_FOREVER), mpx_semaphore_release(g_sem_undo))
PAIRS(p_value, mpx_value_acquire(g_value, MPX_FOREVER), mpx_value_release(g_value))
PAIRS(p_mutex, pthread_mutex_lock(g_mutex), pthread_mutex_unlock(g_mutex))
PAIRS(p_robust, pthread_mutex_lock(g_robust), pthread_mutex_unlock(g_robust))
PAIRS(p_robust_try, pthread_mutex_trylock(g_robust), pthread_mutex_unlock(g_robust))
PAIRS(p_robust_rec, pthread_mutex_lock(g_robust_rec), pthread_mutex_unlock(g_robust_rec))
PAIRS(p_psem, sem_wait(g_psem), sem_post(g_psem))

typedef double (*pairs_fn)(long);

/* Alternating blocks of mpx and anchor; reports both medians (lower is better). */
static void compare_pairs(const char *figure, pairs_fn ours, const char *anchor, pairs_fn theirs, long n,
                          const char *goal) {
    enum { MAXB = 31 };
    long blocks = bench_pick(21, 3);
    double a[MAXB], b[MAXB];
    ours(n / 10);
    theirs(n / 10); /* warm-up */
    for (long i = 0; i < blocks; i++) {
        a[i] = ours(n);
        b[i] = theirs(n);
    }
    bench_result(BENCH, figure, bench_median(a, (size_t)blocks), "ns", anchor, bench_median(b, (size_t)blocks), 0,
                 goal, 0);
}

static void bench_uncontended(void) {
    printf("uncontended acquire + release, one process (ns per pair, median of alternating blocks):\n");
    long n = bench_pick(200000, 20000);
    TRY(mpx_lock_create_anonymous(&g_lock));
    TRY(mpx_rlock_create_anonymous(&g_rlock));
    TRY(mpx_semaphore_create_anonymous(1, 0, 0, &g_sem));
    TRY(mpx_semaphore_create_anonymous(1, 0, MPX_SEM_UNDO, &g_sem_undo));
    TRY(mpx_value_create_anonymous('q', 1, NULL, 0, MPX_VALUE_LOCK, &g_value));
    /* Each mpx call is checked once outside the timed loops. */
    TRY(mpx_lock_acquire(g_lock, MPX_FOREVER));
    TRY(mpx_lock_release(g_lock));
    TRY(mpx_rlock_acquire(g_rlock, MPX_FOREVER));
    TRY(mpx_rlock_release(g_rlock));
    TRY(mpx_semaphore_acquire(g_sem, MPX_FOREVER));
    TRY(mpx_semaphore_release(g_sem));
    TRY(mpx_semaphore_acquire(g_sem_undo, MPX_FOREVER));
    TRY(mpx_semaphore_release(g_sem_undo));
    TRY(mpx_value_acquire(g_value, MPX_FOREVER));
    TRY(mpx_value_release(g_value));
    g_mutex = shared_mutex(0, 0);
    g_robust = shared_mutex(1, 0);
    g_robust_rec = shared_mutex(1, 1);
    g_psem = shared_mem(sizeof *g_psem);
    if (sem_init(g_psem, 1, 1) != 0) die_os("sem_init");

    compare_pairs("uncontended Lock acquire(FOREVER)+release, C", p_lock,
                  "robust process-shared pthread mutex lock+unlock", p_robust, n, "under 30 ns, no syscall");
    compare_pairs("uncontended Lock acquire(FOREVER)+release, C (vs plain mutex)", p_lock,
                  "process-shared pthread mutex (not robust) lock+unlock", p_mutex, n, NULL);
    compare_pairs("uncontended Lock acquire(0)+release, C", p_lock_try, "robust pthread mutex trylock+unlock",
                  p_robust_try, n, NULL);
    compare_pairs("uncontended RLock acquire+release, C", p_rlock,
                  "robust recursive process-shared pthread mutex", p_robust_rec, n, NULL);
    compare_pairs("uncontended Value lock (embedded RLock) acquire+release, C", p_value,
                  "robust recursive process-shared pthread mutex", p_robust_rec, n, NULL);
    compare_pairs("uncontended Semaphore acquire+release, C", p_sem, "process-shared POSIX sem_t wait+post",
                  p_psem, n, NULL);
    compare_pairs("uncontended Semaphore acquire+release, MPX_SEM_UNDO, C", p_sem_undo,
                  "process-shared POSIX sem_t wait+post (no undo)", p_psem, n / 4, NULL);

    mpx_lock_close(g_lock);
    mpx_rlock_close(g_rlock);
    mpx_semaphore_close(g_sem);
    mpx_semaphore_close(g_sem_undo);
    mpx_value_close(g_value);
}

/* ---- 2. two processes incrementing one counter -------------------------------------------- */

enum { K_MPX_LOCK, K_MPX_VALUE_LOCK, K_MPX_FETCH_ADD, K_MPX_ELEM, K_ROBUST, K_ATOMIC, K_COUNT };

static mpx_lock *c_lock;
static mpx_value *c_value, *c_raw, *c_elem_v;
static void *c_elem; /* element 0 of c_elem_v, from mpx_value_int_ptr (the inline path) */
static pthread_mutex_t *c_robust;
static volatile int64_t *c_counter; /* shared: the locked counters */
static _Atomic int64_t *c_atomic;   /* shared: the lock-free anchor */

static int64_t counter_now(int kind) {
    switch (kind) {
    case K_MPX_VALUE_LOCK:
        return *(volatile int64_t *)mpx_value_ptr(c_value);
    case K_MPX_FETCH_ADD:
        return *(volatile int64_t *)mpx_value_ptr(c_raw);
    case K_MPX_ELEM:
        return mpx_elem_load_i64(c_elem);
    case K_ATOMIC:
        return atomic_load(c_atomic);
    default:
        return *c_counter;
    }
}

static void counter_reset(int kind) {
    switch (kind) {
    case K_MPX_VALUE_LOCK:
        *(volatile int64_t *)mpx_value_ptr(c_value) = 0;
        break;
    case K_MPX_FETCH_ADD:
        *(volatile int64_t *)mpx_value_ptr(c_raw) = 0;
        break;
    case K_MPX_ELEM:
        mpx_elem_store_i64(c_elem, 0);
        break;
    case K_ATOMIC:
        atomic_store(c_atomic, 0);
        break;
    default:
        *c_counter = 0;
    }
}

static void inc_loop(int kind, long n) {
    volatile int64_t *v = (volatile int64_t *)mpx_value_ptr(c_value);
    for (long i = 0; i < n; i++) {
        switch (kind) {
        case K_MPX_LOCK:
            mpx_lock_acquire(c_lock, MPX_FOREVER);
            *c_counter = *c_counter + 1;
            mpx_lock_release(c_lock);
            break;
        case K_MPX_VALUE_LOCK:
            mpx_value_acquire(c_value, MPX_FOREVER);
            *v = *v + 1;
            mpx_value_release(c_value);
            break;
        case K_MPX_FETCH_ADD:
            mpx_value_fetch_add_i64(c_raw, 0, 1, NULL);
            break;
        case K_MPX_ELEM:
            mpx_elem_fetch_add_i64(c_elem, 1);
            break;
        case K_ROBUST:
            pthread_mutex_lock(c_robust);
            *c_counter = *c_counter + 1;
            pthread_mutex_unlock(c_robust);
            break;
        case K_ATOMIC:
            atomic_fetch_add(c_atomic, 1);
            break;
        }
    }
}

/* Start line of run_counter's children, in shared memory (each on its own cache line). */
static _Atomic int *c_ready, *c_go;

/* Two forked processes run n increments each, timed from the start to both exits. Both are
 * running when they start (each announces itself, then spins on the start flag, which the parent
 * sets once both are there): started by a pipe, the second child's wake-up often came after the
 * first had done most of its work, and the row measured how much the two overlapped rather
 * than the contended operation. Returns increments per second; exits if the count is wrong. */
static double run_counter(int kind, long n) {
    counter_reset(kind);
    atomic_store(c_ready, 0);
    atomic_store(c_go, 0);
    fflush(stdout);
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        pids[c] = fork();
        if (pids[c] < 0) die_os("fork");
        if (pids[c] == 0) {
            atomic_fetch_add(c_ready, 1);
            uint64_t until = bench_now_ns() + 10000000000ull; /* a lost parent must not hang us */
            while (!atomic_load(c_go))
                if (bench_now_ns() > until) _exit(1);
            inc_loop(kind, n);
            _exit(0);
        }
    }
    while (atomic_load(c_ready) < 2)
        sched_yield();
    uint64_t t = bench_now_ns();
    atomic_store(c_go, 1);
    reap(pids[0]);
    reap(pids[1]);
    double secs = (double)(bench_now_ns() - t) * 1e-9;
    int64_t got = counter_now(kind);
    if (got != 2 * n) {
        fprintf(stderr, "sync_bench: counter kind %d: %lld, expected %lld\n", kind, (long long)got,
                (long long)(2 * n));
        exit(1);
    }
    return (double)(2 * n) / secs;
}

/* CPython's multiprocessing idiom, in two forked processes, timed like run_counter. The script
 * travels in the environment (no temporary file to clean up). */
static const char *PY_COUNTER =
    "import multiprocessing as mp, os, sys, time\n"
    "n = int(sys.argv[1])\n"
    "v = mp.Value('q', 0)\n"
    "pids, gos = [], []\n"
    "for _ in range(2):\n"
    "    r, w = os.pipe()\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        os.close(w); os.read(r, 1)\n"
    "        for _ in range(n):\n"
    "            with v.get_lock():\n"
    "                v.value += 1\n"
    "        os._exit(0)\n"
    "    os.close(r); pids.append(pid); gos.append(w)\n"
    "t = time.perf_counter()\n"
    "for w in gos:\n"
    "    os.write(w, b'g'); os.close(w)\n"
    "for pid in pids:\n"
    "    os.waitpid(pid, 0)\n"
    "secs = time.perf_counter() - t\n"
    "assert v.value == 2 * n, v.value\n"
    "print('RATE %.6g' % (2 * n / secs))\n";

/* Increments/s of multiprocessing Lock + Value, or NAN if python3 failed. */
static double python_counter(long n) {
    setenv("MPX_BENCH_PY", PY_COUNTER, 1);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "python3 -c 'import os; exec(os.environ[\"MPX_BENCH_PY\"])' %ld 2>&1", n);
    fflush(stdout);
    FILE *f = popen(cmd, "r");
    if (!f) return NAN;
    char line[512];
    double rate = NAN;
    while (fgets(line, sizeof line, f)) {
        double r;
        if (sscanf(line, "RATE %lf", &r) == 1)
            rate = r;
        else
            printf("  python3: %s", line);
    }
    if (pclose(f) != 0) return NAN;
    return rate;
}

static void bench_counter(void) {
    printf("two processes incrementing one counter (increments/s, exactness checked; median of alternating "
           "rounds):\n");
    long n = bench_pick(1000000, 50000), npy = bench_pick(100000, 5000);
    int rounds = (int)bench_pick(5, 1);
    TRY(mpx_lock_create_anonymous(&c_lock));
    TRY(mpx_value_create_anonymous('q', 1, NULL, 0, MPX_VALUE_LOCK, &c_value));
    TRY(mpx_value_create_anonymous('q', 1, NULL, 0, 0, &c_raw));
    TRY(mpx_value_create_anonymous('q', 1, NULL, 0, 0, &c_elem_v));
    TRY(mpx_value_int_ptr(c_elem_v, 0, sizeof(int64_t), true, &c_elem));
    c_robust = shared_mutex(1, 0);
    c_counter = shared_mem(4096);
    c_atomic = (_Atomic int64_t *)(c_counter + 64); /* its own cache line */
    c_ready = (_Atomic int *)(c_counter + 128);
    c_go = (_Atomic int *)(c_counter + 192);

    double r[K_COUNT][8], py[8];
    int npy_ok = 0;
    for (int i = 0; i < rounds; i++) {
        for (int k = 0; k < K_COUNT; k++) r[k][i] = run_counter(k, n);
        double p = python_counter(npy);
        if (isfinite(p)) py[npy_ok++] = p;
    }
    double m[K_COUNT];
    for (int k = 0; k < K_COUNT; k++) m[k] = bench_median(r[k], (size_t)rounds);
    char fig[160];
    snprintf(fig, sizeof fig, "2 processes x %ld increments under mpx_lock, C", n);
    bench_result(BENCH, fig, m[K_MPX_LOCK], "incr/s", "robust process-shared pthread mutex, same loop",
                 m[K_ROBUST], 1, NULL, 0);
    if (npy_ok > 0) {
        snprintf(fig, sizeof fig, "2 processes x %ld increments under mpx_lock, C (vs multiprocessing)", n);
        bench_result(BENCH, fig, m[K_MPX_LOCK], "incr/s",
                     "multiprocessing Lock + Value, 2 processes (python3, same run)", bench_median(py, (size_t)npy_ok),
                     1, ">= 10x multiprocessing", 10.0);
    } else {
        printf("  (python3 multiprocessing anchor unavailable: no figure against multiprocessing)\n");
    }
    snprintf(fig, sizeof fig, "2 processes x %ld increments under the Value's lock (RLock), C", n);
    bench_result(BENCH, fig, m[K_MPX_VALUE_LOCK], "incr/s", "robust process-shared pthread mutex, same loop",
                 m[K_ROBUST], 1, NULL, 0);
    snprintf(fig, sizeof fig, "2 processes x %ld mpx_value_fetch_add_i64 (no lock), C", n);
    bench_result(BENCH, fig, m[K_MPX_FETCH_ADD], "incr/s", "atomic fetch_add on shared memory", m[K_ATOMIC], 1,
                 NULL, 0);
    snprintf(fig, sizeof fig, "2 processes x %ld mpx fetch_add via element pointer (inline), C", n);
    bench_result(BENCH, fig, m[K_MPX_ELEM], "incr/s", "atomic fetch_add on shared memory", m[K_ATOMIC], 1, NULL, 0);

    mpx_lock_close(c_lock);
    mpx_value_close(c_value);
    mpx_value_close(c_raw);
    mpx_value_close(c_elem_v);
}

/* ---- 3. handoff round trip ----------------------------------------------------------------- */

enum { H_MPX, H_POSIX, H_SPIN, H_FUTEX, H_COUNT };

#define SPIN_STOP UINT32_MAX

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long futex(_Atomic uint32_t *w, int op, uint32_t v) {
    return syscall(SYS_futex, w, op, v, NULL, NULL, 0);
}

/* One pass of `rounds` round trips (after `warm` untimed ones) with a forked partner; writes
 * the per-round µs into out and returns how many were taken (the spin pass stops early if it
 * runs past its time budget, which only happens when the machine is very busy). */
static long handoff_pass(int kind, long warm, long rounds, double *out) {
    static mpx_semaphore *ping, *pong;
    static sem_t *ps;
    static _Atomic uint32_t *word;
    if (!ping) {
        TRY(mpx_semaphore_create_anonymous(0, 0, 0, &ping));
        TRY(mpx_semaphore_create_anonymous(0, 0, 0, &pong));
        ps = shared_mem(2 * sizeof *ps);
        if (sem_init(&ps[0], 1, 0) || sem_init(&ps[1], 1, 0)) die_os("sem_init");
        word = shared_mem(4096);
    }
    long total = warm + rounds;
    atomic_store(&word[0], 0);
    atomic_store(&word[32], 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) die_os("fork");
    if (pid == 0) {
        for (uint32_t i = 0; i < (uint32_t)total; i++) {
            switch (kind) {
            case H_MPX:
                if (mpx_semaphore_acquire(ping, MPX_FOREVER) || mpx_semaphore_release(pong)) _exit(1);
                break;
            case H_POSIX:
                while (sem_wait(&ps[0]) != 0) {
                }
                sem_post(&ps[1]);
                break;
            case H_SPIN: {
                uint32_t v;
                while ((v = atomic_load_explicit(&word[0], memory_order_acquire)) != 2 * i + 1) {
                    if (v == SPIN_STOP) _exit(0);
                    cpu_relax();
                }
                atomic_store_explicit(&word[0], 2 * i + 2, memory_order_release);
                break;
            }
            case H_FUTEX: {
                uint32_t v;
                while ((v = atomic_load(&word[32])) != 2 * i + 1) futex(&word[32], FUTEX_WAIT, v);
                atomic_store(&word[32], 2 * i + 2);
                futex(&word[32], FUTEX_WAKE, 1);
                break;
            }
            }
        }
        _exit(0);
    }
    uint64_t budget_end = bench_now_ns() + 3000000000ull; /* spin only: 3 s per pass at most */
    long taken = 0;
    for (uint32_t i = 0; i < (uint32_t)total; i++) {
        uint64_t t = bench_now_ns();
        switch (kind) {
        case H_MPX:
            TRY(mpx_semaphore_release(ping));
            TRY(mpx_semaphore_acquire(pong, MPX_FOREVER));
            break;
        case H_POSIX:
            sem_post(&ps[0]);
            while (sem_wait(&ps[1]) != 0) {
            }
            break;
        case H_SPIN: {
            atomic_store_explicit(&word[0], 2 * i + 1, memory_order_release);
            unsigned spins = 0;
            while (atomic_load_explicit(&word[0], memory_order_acquire) != 2 * i + 2) {
                cpu_relax();
                if (++spins % 4096 == 0 && bench_now_ns() > budget_end) {
                    atomic_store(&word[0], SPIN_STOP);
                    reap(pid);
                    return taken;
                }
            }
            break;
        }
        case H_FUTEX: {
            atomic_store(&word[32], 2 * i + 1);
            futex(&word[32], FUTEX_WAKE, 1);
            uint32_t v;
            while ((v = atomic_load(&word[32])) != 2 * i + 2) futex(&word[32], FUTEX_WAIT, v);
            break;
        }
        }
        if (i >= warm) out[taken++] = (double)(bench_now_ns() - t) / 1e3;
    }
    reap(pid);
    return taken;
}

static void bench_handoff(void) {
    printf("handoff round trip between two processes (ping -> pong -> ping, us; alternating passes):\n");
    long rounds = bench_pick(4000, 400), passes = bench_pick(5, 1), warm = 100;
    double *s[H_COUNT];
    long n[H_COUNT] = {0};
    for (int k = 0; k < H_COUNT; k++) {
        s[k] = malloc(sizeof(double) * (size_t)(rounds * passes));
        if (!s[k]) die_os("malloc");
    }
    for (long p = 0; p < passes; p++)
        for (int k = 0; k < H_COUNT; k++) n[k] += handoff_pass(k, warm, rounds, s[k] + n[k]);
    double med[H_COUNT], p99[H_COUNT];
    for (int k = 0; k < H_COUNT; k++) {
        med[k] = bench_median(s[k], (size_t)n[k]);
        p99[k] = bench_quantile(s[k], (size_t)n[k], 0.99);
    }
    if (n[H_SPIN] < rounds * passes)
        printf("  (spin limit: %ld of %ld round trips within its time budget: the machine is busy)\n", n[H_SPIN],
               rounds * passes);
    const char *fig = "Semaphore handoff round trip, 2 processes, C, median";
    bench_result(BENCH, fig, med[H_MPX], "us", "limit: spin ping-pong on a shared word", med[H_SPIN], 0, NULL, 0);
    bench_result(BENCH, fig, med[H_MPX], "us", "limit: futex wait/wake ping-pong", med[H_FUTEX], 0, NULL, 0);
    bench_result(BENCH, fig, med[H_MPX], "us", "process-shared POSIX sem_t", med[H_POSIX], 0, NULL, 0);
    fig = "Semaphore handoff round trip, 2 processes, C, p99";
    bench_result(BENCH, fig, p99[H_MPX], "us", "limit: futex wait/wake ping-pong, p99", p99[H_FUTEX], 0, NULL, 0);
    bench_result(BENCH, fig, p99[H_MPX], "us", "process-shared POSIX sem_t, p99", p99[H_POSIX], 0, NULL, 0);
    printf("  (context: spin ping-pong p99 %.3g us)\n", p99[H_SPIN]);
    for (int k = 0; k < H_COUNT; k++) free(s[k]);
}

/* Whether section `name` was asked for on the command line (all when none was named). */
static int want(int argc, char **argv, const char *name) {
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("sync_bench (C): mpx %s, %s mode\n", mpx_version(), bench_quick() ? "quick" : "full");
    if (want(argc, argv, "uncontended")) bench_uncontended();
    if (want(argc, argv, "counter")) bench_counter();
    if (want(argc, argv, "handoff")) bench_handoff();
    return 0;
}
