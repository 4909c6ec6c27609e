/* conn_bench: mpx connections from C against raw pipes and socketpairs, and against CPython's
 * multiprocessing.Pipe, all measured in the same run. Output: a readable line and a RESULT line
 * per figure (convention: benches/README.md).
 *
 *   conn_bench [MESSAGES]     (one-way messages per case and pass; default 500000, quick 50000)
 *
 * 1. Throughput: a forked child sends MESSAGES 64-byte messages one way, the parent receives
 *    them; messages per second. Raw anchors: write()/read() of exactly 64 bytes per message on a
 *    pipe and on a Unix socketpair (no framing), and the same framing as mpx written by hand over
 *    a raw pipe. mpx: mpx_pipe(false) (a pipe) received into a buffer (mpx_conn_recv) or
 *    allocated (mpx_conn_recv_alloc), the same with SIGPIPE ignored (mpx guards pipe writes
 *    against SIGPIPE in a C program that kept the default; ignoring it shows what that costs),
 *    and mpx_pipe(true) (a socketpair). Goal (issue 6): at least 90% of a raw pipe's rate.
 * 2. Round-trip latency: 64 bytes there and back to a forked echo child; median and p99.
 * 3. CPython anchor: Pipe(duplex=False) send_bytes/recv_bytes one way and Pipe() round trips,
 *    run by python3 once per pass (skipped, with a note, when python3 is not there).
 *
 * Every case runs once per pass and the passes alternate, so load from other users of the
 * machine hits all alike; rates are medians over passes, latencies are quantiles of all round
 * trips of all passes. BENCH_QUICK=1: a smoke run. Never a test. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "mpx.h"

#define BENCH "conn"
#define MSG 64
#define MAXPASS 9

static void die(const char *what, mpx_status st) {
    fprintf(stderr, "conn_bench: %s: %s: %s\n", what, mpx_status_name(st), mpx_last_error());
    exit(1);
}

static void die_os(const char *what) {
    fprintf(stderr, "conn_bench: %s: %s\n", what, strerror(errno));
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
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) die_os("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "conn_bench: child failed (status %#x)\n", status);
        exit(1);
    }
}

static void make_pair(int socket_pair, int fds[2]) {
    if (socket_pair ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) : pipe2(fds, O_CLOEXEC))
        die_os("pipe/socketpair");
}

/* ---- throughput ----------------------------------------------------------------------------- */

/* A hand-rolled framed stream over a raw pipe, as a C programmer would write it: the writer
 * sends a 4-byte length and the payload in one write, the reader reads the length, then the
 * body (two reads per message). */
static double raw_framed(long n) {
    int fds[2];
    make_pair(0, fds);
    pid_t pid = fork();
    if (pid < 0) die_os("fork");
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
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (read_full(fds[0], h, 4)) die_os("read");
        uint32_t len = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
        if (len > sizeof m || read_full(fds[0], m, len)) die_os("read");
    }
    double t = (double)(bench_now_ns() - t0) * 1e-9;
    close(fds[0]);
    reap(pid);
    return (double)n / t;
}

/* chunk: 0 = read exactly 64 bytes per message; else read up to `chunk` bytes at a time. */
static double raw_oneway(int socket_pair, long n, size_t chunk) {
    int fds[2];
    make_pair(socket_pair, fds);
    int rd = fds[0], wr = fds[1];
    pid_t pid = fork();
    if (pid < 0) die_os("fork");
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
    uint64_t t0 = bench_now_ns();
    if (chunk) {
        size_t want = (size_t)n * MSG, got = 0;
        while (got < want) {
            ssize_t r = read(rd, big, chunk);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) die_os("read");
            got += (size_t)r;
        }
    } else {
        for (long i = 0; i < n; i++)
            if (read_full(rd, m, MSG)) die_os("read");
    }
    double t = (double)(bench_now_ns() - t0) * 1e-9;
    close(rd);
    reap(pid);
    return (double)n / t;
}

static double mpx_oneway(int duplex, int alloc, long n) {
    mpx_conn *a = NULL, *b = NULL;
    mpx_status st = mpx_pipe(duplex, &a, &b);
    if (st) die("mpx_pipe", st);
    /* a receives, b sends (for a duplex pipe too) */
    pid_t pid = fork();
    if (pid < 0) die_os("fork");
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
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (alloc) {
            uint8_t *p = NULL;
            st = mpx_conn_recv_alloc(a, &p, &len, MPX_FOREVER);
            mpx_free(p);
        } else {
            st = mpx_conn_recv(a, m, sizeof m, &len, MPX_FOREVER);
        }
        if (st || len != MSG) die("recv", st);
    }
    double t = (double)(bench_now_ns() - t0) * 1e-9;
    mpx_conn_close(a);
    reap(pid);
    return (double)n / t;
}

/* ---- latency ------------------------------------------------------------------------------ */

/* Round trips over raw descriptors: two pipes, or one socketpair. Appends µs to rtt. */
static void raw_latency(int socket_pair, long n, double *rtt) {
    int ab[2], ba[2];
    make_pair(socket_pair, ab);
    if (socket_pair) {
        ba[0] = ab[0];
        ba[1] = ab[1];
    } else {
        make_pair(0, ba);
    }
    /* parent writes ab[1] and reads ba[0]; the child reads ab[0] and writes ba[1]. For a
     * socketpair: parent uses ab[1] both ways, the child ab[0]. */
    int p_wr = ab[1], p_rd = socket_pair ? ab[1] : ba[0];
    int c_rd = ab[0], c_wr = socket_pair ? ab[0] : ba[1];
    pid_t pid = fork();
    if (pid < 0) die_os("fork");
    if (pid == 0) {
        close(p_wr);
        if (!socket_pair) close(p_rd);
        uint8_t m[MSG];
        for (long i = 0; i < n; i++)
            if (read_full(c_rd, m, MSG) || write_full(c_wr, m, MSG)) _exit(1);
        _exit(0);
    }
    close(c_rd);
    if (!socket_pair) close(c_wr);
    uint8_t m[MSG];
    memset(m, 1, sizeof m);
    for (long i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        if (write_full(p_wr, m, MSG) || read_full(p_rd, m, MSG)) die_os("round trip");
        rtt[i] = (double)(bench_now_ns() - t0) / 1e3;
    }
    close(p_wr);
    if (!socket_pair) close(p_rd);
    reap(pid);
}

/* duplex: one mpx socketpair; otherwise two one-way mpx pipes. Appends µs to rtt. */
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
    if (pid < 0) die_os("fork");
    if (pid == 0) {
        uint8_t m[MSG];
        size_t len;
        for (long i = 0; i < n; i++)
            if (mpx_conn_recv(theirs_recv, m, sizeof m, &len, MPX_FOREVER) || mpx_conn_send(theirs_send, m, len))
                _exit(1);
        _exit(0);
    }
    uint8_t m[MSG];
    memset(m, 1, sizeof m);
    size_t len;
    for (long i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        if ((st = mpx_conn_send(mine_send, m, MSG)) || (st = mpx_conn_recv(mine_recv, m, sizeof m, &len, MPX_FOREVER)))
            die("round trip", st);
        rtt[i] = (double)(bench_now_ns() - t0) / 1e3;
    }
    reap(pid);
    mpx_conn_close(a);
    mpx_conn_close(b);
    mpx_conn_close(c);
    mpx_conn_close(d);
}

/* ---- CPython anchor ----------------------------------------------------------------------- */

/* One pass: `n` 64-byte send_bytes/recv_bytes one way through Pipe(duplex=False) (forked
 * sender), then `rounds` round trips through Pipe() to a forked echo child. Prints
 * "ONEWAY rate" and "RTT us us ...". The script travels in the environment. */
static const char *PY_ANCHOR =
    "import os, sys, time\n"
    "from multiprocessing import Pipe\n"
    "n, rounds = int(sys.argv[1]), int(sys.argv[2])\n"
    "r, w = Pipe(duplex=False)\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    r.close(); m = b'x' * 64\n"
    "    for _ in range(n): w.send_bytes(m)\n"
    "    os._exit(0)\n"
    "w.close(); t0 = time.perf_counter()\n"
    "for _ in range(n): r.recv_bytes()\n"
    "rate = n / (time.perf_counter() - t0); os.waitpid(pid, 0); r.close()\n"
    "print('ONEWAY %.6g' % rate)\n"
    "a, b = Pipe()\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    a.close()\n"
    "    for _ in range(rounds): b.send_bytes(b.recv_bytes())\n"
    "    os._exit(0)\n"
    "b.close(); m = b'x' * 64; rtt = []; clock = time.perf_counter\n"
    "for _ in range(rounds):\n"
    "    t0 = clock(); a.send_bytes(m); a.recv_bytes(); rtt.append(clock() - t0)\n"
    "os.waitpid(pid, 0)\n"
    "print('RTT ' + ' '.join('%.3f' % (x * 1e6) for x in rtt))\n";

/* Runs one pass of the CPython anchor; returns its one-way rate (NAN on failure) and appends
 * its round trips (µs) to rtt, counting them in *nrtt (at most cap). */
static double python_pass(long n, long rounds, double *rtt, long *nrtt, long cap) {
    setenv("MPX_BENCH_PY", PY_ANCHOR, 1);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "python3 -c 'import os; exec(os.environ[\"MPX_BENCH_PY\"])' %ld %ld 2>&1", n, rounds);
    fflush(stdout);
    FILE *f = popen(cmd, "r");
    if (!f) return NAN;
    char *line = NULL;
    size_t linecap = 0;
    double rate = NAN;
    while (getline(&line, &linecap, f) > 0) {
        if (strncmp(line, "ONEWAY ", 7) == 0) {
            rate = strtod(line + 7, NULL);
        } else if (strncmp(line, "RTT ", 4) == 0) {
            char *p = line + 4, *end;
            for (;;) {
                double x = strtod(p, &end);
                if (end == p || *nrtt >= cap) break;
                rtt[(*nrtt)++] = x;
                p = end;
            }
        } else {
            printf("  python3: %s", line);
        }
    }
    free(line);
    if (pclose(f) != 0) return NAN;
    return rate;
}

/* ---- main --------------------------------------------------------------------------------- */

enum { T_RAW_PIPE, T_RAW_CHUNK, T_RAW_FRAMED, T_MPX_PIPE, T_RAW_SOCK, T_MPX_SOCK, T_MPX_ALLOC, T_MPX_IGN, T_COUNT };
enum { L_RAW_PIPE, L_MPX_PIPE, L_RAW_SOCK, L_MPX_SOCK, L_PY, L_COUNT };

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : bench_pick(500000, 50000);
    if (n < 1000) n = 1000;
    long passes = bench_pick(5, 1), rounds = bench_pick(4000, 400), py_n = n / 5, py_rounds = rounds / 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("conn_bench (C): mpx %s, %s mode; %ld one-way messages of %d bytes and %ld round trips per case, "
           "%ld alternating passes\n",
           mpx_version(), bench_quick() ? "quick" : "full", n, MSG, rounds, passes);

    double rate[T_COUNT][MAXPASS], py_rate[MAXPASS];
    long py_ok = 0;
    double *lat[L_COUNT];
    long nlat[L_COUNT] = {0}, cap = rounds * passes;
    for (int k = 0; k < L_COUNT; k++) {
        lat[k] = malloc(sizeof(double) * (size_t)cap);
        if (!lat[k]) die_os("malloc");
    }
    for (long p = 0; p < passes; p++) {
        rate[T_RAW_PIPE][p] = raw_oneway(0, n, 0);
        rate[T_RAW_CHUNK][p] = raw_oneway(0, n, 1 << 16);
        rate[T_RAW_FRAMED][p] = raw_framed(n);
        rate[T_MPX_PIPE][p] = mpx_oneway(0, 0, n);
        rate[T_RAW_SOCK][p] = raw_oneway(1, n, 0);
        rate[T_MPX_SOCK][p] = mpx_oneway(1, 0, n);
        rate[T_MPX_ALLOC][p] = mpx_oneway(0, 1, n);
        signal(SIGPIPE, SIG_IGN);
        rate[T_MPX_IGN][p] = mpx_oneway(0, 0, n);
        signal(SIGPIPE, SIG_DFL);

        raw_latency(0, rounds, lat[L_RAW_PIPE] + nlat[L_RAW_PIPE]);
        nlat[L_RAW_PIPE] += rounds;
        mpx_latency(0, rounds, lat[L_MPX_PIPE] + nlat[L_MPX_PIPE]);
        nlat[L_MPX_PIPE] += rounds;
        raw_latency(1, rounds, lat[L_RAW_SOCK] + nlat[L_RAW_SOCK]);
        nlat[L_RAW_SOCK] += rounds;
        mpx_latency(1, rounds, lat[L_MPX_SOCK] + nlat[L_MPX_SOCK]);
        nlat[L_MPX_SOCK] += rounds;

        double r = python_pass(py_n, py_rounds, lat[L_PY], &nlat[L_PY], cap);
        if (isfinite(r)) py_rate[py_ok++] = r;
    }

    double m[T_COUNT];
    for (int k = 0; k < T_COUNT; k++) m[k] = bench_median(rate[k], (size_t)passes);
    printf("64-byte messages one way (msgs/s, median of %ld passes):\n", passes);
    const char *fig = "64 B one way, mpx one-way pipe, mpx_conn_recv into a buffer, C";
    bench_result(BENCH, fig, m[T_MPX_PIPE], "msgs/s", "raw pipe, write/read of 64 B (no framing)", m[T_RAW_PIPE], 1,
                 ">= 0.9 of a raw pipe", 0.9);
    bench_result(BENCH, fig, m[T_MPX_PIPE], "msgs/s", "raw pipe, same framing by hand (read length, then body)",
                 m[T_RAW_FRAMED], 1, NULL, 0);
    bench_result(BENCH, "64 B one way, mpx one-way pipe, mpx_conn_recv_alloc, C", m[T_MPX_ALLOC], "msgs/s",
                 "raw pipe, write/read of 64 B (no framing)", m[T_RAW_PIPE], 1, NULL, 0);
    bench_result(BENCH, "64 B one way, mpx one-way pipe, SIGPIPE ignored, C", m[T_MPX_IGN], "msgs/s",
                 "raw pipe, write/read of 64 B (no framing)", m[T_RAW_PIPE], 1, NULL, 0);
    bench_result(BENCH, "64 B one way, mpx duplex pipe (socketpair), C", m[T_MPX_SOCK], "msgs/s",
                 "raw socketpair, write/read of 64 B (no framing)", m[T_RAW_SOCK], 1, NULL, 0);
    printf("  (context: raw pipe with a reader taking up to 64 KiB per read: %.3g msgs/s, %.2f of the raw pipe)\n",
           m[T_RAW_CHUNK], m[T_RAW_CHUNK] / m[T_RAW_PIPE]);
    if (py_ok > 0)
        bench_result(BENCH, fig, m[T_MPX_PIPE], "msgs/s",
                     "CPython Pipe(duplex=False) send_bytes/recv_bytes (python3, same run)",
                     bench_median(py_rate, (size_t)py_ok), 1, NULL, 0);

    printf("64-byte round trips (us, quantiles of all round trips):\n");
    double med[L_COUNT], p99[L_COUNT];
    for (int k = 0; k < L_COUNT; k++) {
        med[k] = nlat[k] ? bench_median(lat[k], (size_t)nlat[k]) : NAN;
        p99[k] = nlat[k] ? bench_quantile(lat[k], (size_t)nlat[k], 0.99) : NAN;
    }
    bench_result(BENCH, "64 B round trip, mpx one-way pipes (two), C, median", med[L_MPX_PIPE], "us",
                 "raw pipes (two), write/read of 64 B", med[L_RAW_PIPE], 0, NULL, 0);
    bench_result(BENCH, "64 B round trip, mpx one-way pipes (two), C, p99", p99[L_MPX_PIPE], "us",
                 "raw pipes (two), p99", p99[L_RAW_PIPE], 0, NULL, 0);
    bench_result(BENCH, "64 B round trip, mpx duplex pipe (socketpair), C, median", med[L_MPX_SOCK], "us",
                 "raw socketpair, write/read of 64 B", med[L_RAW_SOCK], 0, NULL, 0);
    bench_result(BENCH, "64 B round trip, mpx duplex pipe (socketpair), C, p99", p99[L_MPX_SOCK], "us",
                 "raw socketpair, p99", p99[L_RAW_SOCK], 0, NULL, 0);
    if (nlat[L_PY] > 0)
        bench_result(BENCH, "64 B round trip, mpx duplex pipe (socketpair), C, median (vs CPython)", med[L_MPX_SOCK],
                     "us", "CPython Pipe() send_bytes/recv_bytes (python3, same run)", med[L_PY], 0, NULL, 0);
    if (py_ok == 0 || nlat[L_PY] == 0) printf("  (python3 unavailable or failed: no CPython anchor)\n");
    for (int k = 0; k < L_COUNT; k++) free(lat[k]);
    return 0;
}
