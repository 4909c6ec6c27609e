/* conn_bench.c: mpx connections against raw pipes/sockets in the same run.
 *
 *   conn_bench [MESSAGES]     (default 1000000 one-way messages, MESSAGES/50 round trips)
 *
 * 1. Throughput: a forked child sends MESSAGES 64-byte messages one way, the parent receives
 *    them; messages per second. Raw baselines: write()/read() of exactly 64 bytes per message
 *    on a pipe and on a Unix socketpair (no framing). mpx: mpx_pipe(false) (pipe) and
 *    mpx_pipe(true) (socketpair), received into a buffer (mpx_conn_recv) or allocated
 *    (mpx_conn_recv_alloc). A C program's SIGPIPE kills by default, so mpx guards pipe writes
 *    against it; the run with SIGPIPE ignored (as in Python and Rust programs) shows that cost.
 * 2. Round-trip latency: 64 bytes there and back to a forked echo child; median and p99.
 *
 * Output: one line per case, then the ratios to raw. Never a test: numbers depend on the machine.
 */
#include <mpx.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 64
#define FOREVER MPX_FOREVER

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, mpx_status st) {
    fprintf(stderr, "conn_bench: %s: %s: %s\n", what, mpx_status_name(st), mpx_last_error());
    exit(1);
}

static int read_full(int fd, uint8_t *p, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const uint8_t *p, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = write(fd, p + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        done += (size_t)r;
    }
    return 0;
}

static void reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "conn_bench: child failed (status %d)\n", status);
        exit(1);
    }
}

/* ---- throughput ------------------------------------------------------------------------- */

/* A hand-rolled framed stream over a raw pipe, as a C programmer would write it: the writer
 * sends a 4-byte length and the payload in one write, the reader reads the length, then the
 * body (two reads per message). */
static double raw_framed(long n) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) {
        perror("pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        uint8_t m[4 + MSG];
        memset(m, 7, sizeof m);
        m[0] = m[1] = m[2] = 0;
        m[3] = MSG;
        for (long i = 0; i < n; i++)
            if (write_full(fds[1], m, sizeof m)) _exit(1);
        _exit(0);
    }
    close(fds[1]);
    uint8_t h[4], m[256];
    double t0 = now();
    for (long i = 0; i < n; i++) {
        if (read_full(fds[0], h, 4)) exit(1);
        uint32_t len = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
        if (len > sizeof m || read_full(fds[0], m, len)) exit(1);
    }
    double t = now() - t0;
    close(fds[0]);
    reap(pid);
    return (double)n / t;
}

/* chunk: 0 = read exactly 64 bytes per message; else read up to `chunk` bytes at a time. */
static double raw_oneway_chunk(int socket_pair, long n, size_t chunk);
static double raw_oneway(int socket_pair, long n) { return raw_oneway_chunk(socket_pair, n, 0); }

static double raw_oneway_chunk(int socket_pair, long n, size_t chunk) {
    int fds[2];
    if (socket_pair ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) : pipe2(fds, O_CLOEXEC)) {
        perror("pipe");
        exit(1);
    }
    int rd = fds[0], wr = fds[1];
    pid_t pid = fork();
    if (pid == 0) {
        close(rd);
        uint8_t m[MSG];
        memset(m, 7, sizeof m);
        for (long i = 0; i < n; i++)
            if (write_full(wr, m, MSG)) _exit(1);
        _exit(0);
    }
    close(wr);
    static uint8_t big[1 << 16];
    uint8_t m[MSG];
    double t0 = now();
    if (chunk) {
        size_t want = (size_t)n * MSG, got = 0;
        while (got < want) {
            ssize_t r = read(rd, big, chunk);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) exit(1);
            got += (size_t)r;
        }
    } else {
        for (long i = 0; i < n; i++)
            if (read_full(rd, m, MSG)) {
                fprintf(stderr, "conn_bench: raw read failed\n");
                exit(1);
            }
    }
    double t = now() - t0;
    close(rd);
    reap(pid);
    return (double)n / t;
}

static double mpx_oneway(int duplex, int alloc, long n) {
    mpx_conn *a = NULL, *b = NULL;
    mpx_status st = mpx_pipe(duplex, &a, &b);
    if (st) die("mpx_pipe", st);
    /* one-way: a receives, b sends; duplex: either way, same roles */
    pid_t pid = fork();
    if (pid == 0) {
        mpx_conn_close(a);
        uint8_t m[MSG];
        memset(m, 7, sizeof m);
        for (long i = 0; i < n; i++)
            if (mpx_conn_send(b, m, MSG)) _exit(1);
        mpx_conn_close(b);
        _exit(0);
    }
    mpx_conn_close(b);
    uint8_t m[MSG];
    size_t len = 0;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        if (alloc) {
            uint8_t *p = NULL;
            st = mpx_conn_recv_alloc(a, &p, &len, FOREVER);
            mpx_free(p);
        } else {
            st = mpx_conn_recv(a, m, sizeof m, &len, FOREVER);
        }
        if (st || len != MSG) die("recv", st);
    }
    double t = now() - t0;
    mpx_conn_close(a);
    reap(pid);
    return (double)n / t;
}

/* ---- latency ---------------------------------------------------------------------------- */

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static void report_latency(const char *name, double *rtt, long n) {
    qsort(rtt, (size_t)n, sizeof *rtt, cmp_double);
    printf("  %-34s median %7.2f us   p99 %7.2f us\n", name, rtt[n / 2] * 1e6, rtt[(n * 99) / 100] * 1e6);
}

static void raw_latency(long n, double *rtt) {
    int ab[2], ba[2];
    if (pipe2(ab, O_CLOEXEC) || pipe2(ba, O_CLOEXEC)) {
        perror("pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(ab[1]);
        close(ba[0]);
        uint8_t m[MSG];
        for (long i = 0; i < n; i++)
            if (read_full(ab[0], m, MSG) || write_full(ba[1], m, MSG)) _exit(1);
        _exit(0);
    }
    close(ab[0]);
    close(ba[1]);
    uint8_t m[MSG];
    memset(m, 1, sizeof m);
    for (long i = 0; i < n; i++) {
        double t0 = now();
        if (write_full(ab[1], m, MSG) || read_full(ba[0], m, MSG)) exit(1);
        rtt[i] = now() - t0;
    }
    close(ab[1]);
    close(ba[0]);
    reap(pid);
}

/* duplex: one socketpair; otherwise two one-way mpx pipes. */
static void mpx_latency(int duplex, long n, double *rtt) {
    mpx_conn *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    mpx_status st;
    mpx_conn *mine_send, *mine_recv, *theirs_send, *theirs_recv;
    if (duplex) {
        if ((st = mpx_pipe(true, &a, &b))) die("mpx_pipe", st);
        mine_send = mine_recv = a;
        theirs_send = theirs_recv = b;
    } else {
        /* a receives / b sends (child -> parent); c receives / d sends (parent -> child) */
        if ((st = mpx_pipe(false, &a, &b)) || (st = mpx_pipe(false, &c, &d))) die("mpx_pipe", st);
        mine_recv = a;
        theirs_send = b;
        theirs_recv = c;
        mine_send = d;
    }
    pid_t pid = fork();
    if (pid == 0) {
        uint8_t m[MSG];
        size_t len;
        for (long i = 0; i < n; i++)
            if (mpx_conn_recv(theirs_recv, m, sizeof m, &len, FOREVER) || mpx_conn_send(theirs_send, m, len)) _exit(1);
        _exit(0);
    }
    uint8_t m[MSG];
    memset(m, 1, sizeof m);
    size_t len;
    for (long i = 0; i < n; i++) {
        double t0 = now();
        if ((st = mpx_conn_send(mine_send, m, MSG)) || (st = mpx_conn_recv(mine_recv, m, sizeof m, &len, FOREVER)))
            die("round trip", st);
        rtt[i] = now() - t0;
    }
    reap(pid);
    mpx_conn_close(a);
    mpx_conn_close(b);
    mpx_conn_close(c);
    mpx_conn_close(d);
}

/* CPython's multiprocessing.Pipe in the same run, as the anchor the Python binding is measured
 * against: 64-byte send_bytes/recv_bytes one way (forked sender), and round trips. */
static const char *PY_ANCHOR =
    "import os, sys, time\n"
    "from multiprocessing import Pipe\n"
    "n = int(sys.argv[1]); rounds = n // 10\n"
    "best = 0\n"
    "for rep in range(3):\n"
    "    r, w = Pipe(duplex=False)\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        r.close(); m = b'x' * 64\n"
    "        for _ in range(n): w.send_bytes(m)\n"
    "        os._exit(0)\n"
    "    w.close(); t0 = time.perf_counter()\n"
    "    for _ in range(n): r.recv_bytes()\n"
    "    best = max(best, n / (time.perf_counter() - t0)); os.waitpid(pid, 0); r.close()\n"
    "print('  %-44s %10.0f msgs/s' % ('CPython Pipe(duplex=False), 64 bytes', best))\n"
    "a, b = Pipe()\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    a.close()\n"
    "    for _ in range(rounds): b.send_bytes(b.recv_bytes())\n"
    "    os._exit(0)\n"
    "b.close(); m = b'x' * 64; rtt = []\n"
    "for _ in range(rounds):\n"
    "    t0 = time.perf_counter(); a.send_bytes(m); a.recv_bytes(); rtt.append(time.perf_counter() - t0)\n"
    "os.waitpid(pid, 0); rtt.sort()\n"
    "print('  %-34s median %7.2f us   p99 %7.2f us' % ('CPython Pipe() round trip', rtt[len(rtt)//2]*1e6, rtt[len(rtt)*99//100]*1e6))\n";

static void python_anchor(long n) {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "python3 - %ld 2>&1", n);
    FILE *f = popen(cmd, "w");
    if (!f) {
        printf("  (python3 not available: no CPython anchor)\n");
        return;
    }
    fputs(PY_ANCHOR, f);
    int rc = pclose(f);
    if (rc != 0) printf("  (python3 failed: no CPython anchor)\n");
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (n < 1000) n = 1000;
    long rounds = n / 50;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("conn_bench: %ld one-way messages of %d bytes, %ld round trips (mpx %s)\n", n, MSG, rounds, mpx_version());

    /* Interleave the runs so that load from other users of the machine hits all alike. */
    double raw_framed_pipe = 0, raw_chunk = 0, raw_pipe = 0, raw_sock = 0, mpx_pipe_buf = 0, mpx_pipe_alloc = 0, mpx_sock = 0, mpx_pipe_ign = 0;
    for (int rep = 0; rep < 5; rep++) {
        double v;
        if ((v = raw_oneway(0, n)) > raw_pipe) raw_pipe = v;
        if ((v = raw_oneway_chunk(0, n, sizeof(uint8_t[1 << 16]))) > raw_chunk) raw_chunk = v;
        if ((v = raw_framed(n)) > raw_framed_pipe) raw_framed_pipe = v;
        if ((v = mpx_oneway(0, 0, n)) > mpx_pipe_buf) mpx_pipe_buf = v;
        if ((v = raw_oneway(1, n)) > raw_sock) raw_sock = v;
        if ((v = mpx_oneway(1, 0, n)) > mpx_sock) mpx_sock = v;
        if ((v = mpx_oneway(0, 1, n)) > mpx_pipe_alloc) mpx_pipe_alloc = v;
        signal(SIGPIPE, SIG_IGN);
        if ((v = mpx_oneway(0, 0, n)) > mpx_pipe_ign) mpx_pipe_ign = v;
        signal(SIGPIPE, SIG_DFL);
    }
    printf("throughput, 64-byte messages one way (best of 5):\n");
    printf("  %-44s %10.0f msgs/s\n", "raw pipe, write/read 64 bytes", raw_pipe);
    printf("  %-44s %10.0f msgs/s  %5.1f%% of raw pipe\n", "raw pipe, reader takes 64 KiB per read", raw_chunk, 100 * raw_chunk / raw_pipe);
    printf("  %-44s %10.0f msgs/s  %5.1f%% of raw pipe\n", "raw pipe, hand-framed (read length, body)", raw_framed_pipe, 100 * raw_framed_pipe / raw_pipe);
    printf("  %-44s %10.0f msgs/s  %5.1f%% of raw pipe\n", "mpx one-way pipe, recv into buffer", mpx_pipe_buf, 100 * mpx_pipe_buf / raw_pipe);
    printf("  %-44s %10.0f msgs/s  %5.1f%% of raw pipe\n", "mpx one-way pipe, SIGPIPE ignored", mpx_pipe_ign, 100 * mpx_pipe_ign / raw_pipe);
    printf("  %-44s %10.0f msgs/s  %5.1f%% of raw pipe\n", "mpx one-way pipe, recv_alloc", mpx_pipe_alloc, 100 * mpx_pipe_alloc / raw_pipe);
    printf("  %-44s %10.0f msgs/s\n", "raw socketpair, write/read 64 bytes", raw_sock);
    printf("  %-44s %10.0f msgs/s  %5.1f%% of raw socketpair\n", "mpx duplex pipe (socketpair)", mpx_sock, 100 * mpx_sock / raw_sock);

    double *rtt = malloc(sizeof(double) * (size_t)rounds);
    if (!rtt) return 1;
    printf("round-trip latency, 64 bytes:\n");
    raw_latency(rounds, rtt);
    report_latency("raw pipes (two)", rtt, rounds);
    mpx_latency(0, rounds, rtt);
    report_latency("mpx one-way pipes (two)", rtt, rounds);
    mpx_latency(1, rounds, rtt);
    report_latency("mpx duplex pipe (socketpair)", rtt, rounds);
    free(rtt);
    printf("CPython anchor (same machine, same run):\n");
    fflush(stdout);
    python_anchor(n / 5);
    return 0;
}
