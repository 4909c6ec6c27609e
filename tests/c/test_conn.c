/* Connections from C: pipes, framing, buffer-too-small, timeouts, end of stream, limits,
 * listeners and clients with the authkey handshake, descriptor and shm passing, inherited
 * descriptors, SIGPIPE safety, garbage input and NULL arguments. Children are forked; every wait
 * is bounded. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define SEC 1000000000LL
#define T (20 * SEC)

static uint8_t *pattern(size_t n, unsigned seed) {
    uint8_t *p = malloc(n ? n : 1);
    if (!p) exit(2);
    t_fill(p, n, seed);
    return p;
}

/* In a child: receive messages and send each back reversed until the peer closes. */
static int echo_reversed(mpx_conn *c) {
    for (;;) {
        uint8_t *m = NULL;
        size_t len = 0;
        mpx_status st = mpx_conn_recv_alloc(c, &m, &len, T);
        if (st == MPX_E_CLOSED) return 0;
        if (st) return 10;
        for (size_t i = 0; i < len / 2; i++) {
            uint8_t x = m[i];
            m[i] = m[len - 1 - i];
            m[len - 1 - i] = x;
        }
        st = mpx_conn_send(c, m, len);
        mpx_free(m);
        if (st) return 11;
    }
}

static int reversed_equal(const uint8_t *a, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[n - 1 - i]) return 0;
    return 1;
}

static void test_null_and_bad_arguments(void) {
    mpx_conn *a = NULL, *b = NULL;
    size_t len = 0;
    bool ready = false;
    int fd = -1;
    CHECK_STATUS(mpx_pipe(true, NULL, &b), MPX_E_INVALID, "a", "pipe with NULL out");
    CHECK_STATUS(mpx_conn_send(NULL, (const uint8_t *)"x", 1), MPX_E_INVALID, "conn", "send on NULL");
    CHECK_STATUS(mpx_conn_recv(NULL, NULL, 0, &len, 0), MPX_E_INVALID, "conn", "recv on NULL");
    CHECK_STATUS(mpx_conn_poll(NULL, 0, &ready), MPX_E_INVALID, "conn", "poll on NULL");
    CHECK_STATUS(mpx_conn_fileno(NULL, &fd), MPX_E_INVALID, "conn", "fileno on NULL");
    REQUIRE(mpx_pipe(true, &a, &b) == MPX_OK, "pipe");
    CHECK_STATUS(mpx_conn_send(a, NULL, 5), MPX_E_INVALID, "buf", "send NULL buffer of 5 bytes");
    CHECK_STATUS(mpx_conn_send(a, NULL, 0), MPX_OK, "", "send NULL buffer of 0 bytes");
    CHECK_STATUS(mpx_conn_recv(b, NULL, 10, &len, 0), MPX_E_INVALID, "buf", "recv NULL buffer with cap 10");
    CHECK_STATUS(mpx_conn_recv(b, NULL, 0, NULL, 0), MPX_E_INVALID, "len", "recv with NULL len");
    CHECK_STATUS(mpx_conn_recv(b, NULL, 0, &len, T), MPX_OK, "", "recv the empty message into no buffer");
    CHECK(len == 0, "empty message has length 0");
    CHECK_STATUS(mpx_conn_recv_alloc(b, NULL, &len, 0), MPX_E_INVALID, "buf", "recv_alloc with NULL out");
    CHECK_STATUS(mpx_conn_poll(b, 0, NULL), MPX_E_INVALID, "ready", "poll with NULL ready");
    CHECK_STATUS(mpx_conn_set_max_message_size(NULL, 5), MPX_E_INVALID, "conn", "max size on NULL");
    int fds[2] = {0, 1};
    CHECK_STATUS(mpx_conn_send_fds(a, NULL, 1), MPX_E_INVALID, "fds", "send_fds NULL");
    CHECK_STATUS(mpx_conn_send_fds(a, fds, 0), MPX_E_INVALID, "descriptors", "send_fds of 0");
    CHECK_STATUS(mpx_conn_send_fds(a, fds, 254), MPX_E_INVALID, "253", "send_fds of 254");
    size_t n = 0, nready = 0;
    CHECK_STATUS(mpx_conn_recv_fds(b, NULL, 3, &n, 0), MPX_E_INVALID, "fds", "recv_fds NULL with cap 3");
    bool flags[1];
    CHECK_STATUS(mpx_conn_wait(NULL, 1, 0, flags, &nready), MPX_E_INVALID, "conns", "wait on NULL list");
    const mpx_conn *list[1] = {b};
    CHECK_STATUS(mpx_conn_wait(list, 0, 0, flags, &nready), MPX_E_INVALID, "count", "wait on 0 connections");
    const mpx_conn *nulls[1] = {NULL};
    CHECK_STATUS(mpx_conn_wait(nulls, 1, 0, flags, &nready), MPX_E_INVALID, "conns[0]", "wait with a NULL entry");
    CHECK_STATUS(mpx_conn_from_fd(-1, 0, &a), MPX_E_INVALID, "fd", "from_fd(-1)");
    CHECK_STATUS(mpx_conn_from_fd(999, 0, &a), MPX_E_INVALID, "not an open", "from_fd of a closed number");
    int file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    mpx_conn *x = NULL;
    CHECK_STATUS(mpx_conn_from_fd(file, 0, &x), MPX_E_INVALID, "not a socket or a pipe", "from_fd of a file");
    CHECK(fcntl(file, F_GETFD) >= 0, "a refused descriptor stays open and the caller's");
    close(file);
    CHECK_STATUS(mpx_conn_from_fd(0, 99, &x), MPX_E_INVALID, "flag", "from_fd with unknown flags");
    mpx_listener *l = NULL;
    CHECK_STATUS(mpx_listener_create(NULL, 1, NULL, 0, &l), MPX_E_INVALID, "address", "listen on NULL");
    CHECK_STATUS(mpx_listener_create("nowhere", 1, NULL, 0, &l), MPX_E_INVALID, "expected", "listen on a bad address");
    CHECK_STATUS(mpx_listener_create("tcp:127.0.0.1:0", 0, NULL, 0, &l), MPX_E_INVALID, "backlog", "backlog 0");
    CHECK_STATUS(mpx_listener_create("tcp:127.0.0.1:0", 1, NULL, 0, NULL), MPX_E_INVALID, "out", "listen NULL out");
    /* Absurd authkey lengths are refused before anything is allocated (issue 11: SIZE_MAX
     * used to abort the process with "memory allocation failed"). */
    static const uint8_t k1[1] = {'k'};
    CHECK_STATUS(mpx_listener_create("tcp:127.0.0.1:0", 1, k1, SIZE_MAX, &l), MPX_E_INVALID, "authkey",
                 "listen with an authkey of SIZE_MAX bytes");
    CHECK_STATUS(mpx_client_connect("tcp:127.0.0.1:1", k1, SIZE_MAX, T, &x), MPX_E_INVALID, "authkey",
                 "connect with an authkey of SIZE_MAX bytes");
    size_t big = (1u << 20) + 1;
    uint8_t *bigkey = calloc(big, 1);
    REQUIRE(bigkey != NULL, "calloc");
    CHECK_STATUS(mpx_listener_create("tcp:127.0.0.1:0", 1, bigkey, big, &l), MPX_E_INVALID, "longer than",
                 "listen with an authkey over 1 MiB");
    CHECK_STATUS(mpx_client_connect("tcp:127.0.0.1:1", bigkey, big, T, &x), MPX_E_INVALID, "longer than",
                 "connect with an authkey over 1 MiB");
    mpx_listener *lk = NULL;
    CHECK(mpx_listener_create("tcp:127.0.0.1:0", 1, bigkey, big - 1, &lk) == MPX_OK, "an authkey of 1 MiB is taken");
    mpx_listener_close(lk);
    free(bigkey);
    CHECK_STATUS(mpx_listener_accept(NULL, 0, &x), MPX_E_INVALID, "listener", "accept on NULL");
    CHECK_STATUS(mpx_client_connect(NULL, NULL, 0, T, &x), MPX_E_INVALID, "address", "connect to NULL");
    CHECK_STATUS(mpx_client_connect("tcp:[::1:5", NULL, 0, T, &x), MPX_E_INVALID, "]", "connect to a bad IPv6 address");
    mpx_conn_close(NULL);
    mpx_listener_close(NULL);
    mpx_conn_close(a);
    mpx_conn_close(b);
}

static void test_duplex_sizes_with_a_forked_child(void) {
    mpx_conn *a = NULL, *b = NULL;
    REQUIRE(mpx_pipe(true, &a, &b) == MPX_OK, "pipe");
    uint32_t flags = 0;
    CHECK(mpx_conn_flags(a, &flags) == MPX_OK && flags == (MPX_CONN_READABLE | MPX_CONN_WRITABLE | MPX_CONN_UNIX),
          "duplex flags are readable|writable|unix (%u)", flags);
    pid_t pid = fork();
    if (pid == 0) {
        mpx_conn_close(a);
        _exit(echo_reversed(b));
    }
    mpx_conn_close(b);
    size_t sizes[] = {0, 1, 100, 8192, 65536, 65537, 17u << 20};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *m = pattern(sizes[i], i);
        uint8_t *r = NULL;
        size_t len = 0;
        mpx_status st = mpx_conn_send(a, m, sizes[i]);
        if (st == MPX_OK) st = mpx_conn_recv_alloc(a, &r, &len, T);
        CHECK(st == MPX_OK && r != NULL && len == sizes[i] && reversed_equal(m, r, len), "%zu bytes there and back (%s)",
              sizes[i], mpx_status_name(st));
        mpx_free(r);
        free(m);
    }
    mpx_conn_close(a);
    CHECK(t_exited(t_wait(pid, 20), 0), "echo child saw the end and exited 0");
}

static void test_one_way_pipe(void) {
    mpx_conn *r = NULL, *w = NULL;
    REQUIRE(mpx_pipe(false, &r, &w) == MPX_OK, "one-way pipe");
    uint32_t fr = 0, fw = 0;
    mpx_conn_flags(r, &fr);
    mpx_conn_flags(w, &fw);
    CHECK(fr == MPX_CONN_READABLE && fw == MPX_CONN_WRITABLE, "first end reads, second writes (%u, %u)", fr, fw);
    size_t len = 0;
    uint8_t buf[16];
    CHECK_STATUS(mpx_conn_send(r, buf, 1), MPX_E_INVALID, "read-only", "send on the read end");
    CHECK_STATUS(mpx_conn_recv(w, buf, sizeof buf, &len, 0), MPX_E_INVALID, "write-only", "recv on the write end");
    CHECK_STATUS(mpx_conn_send_fds(w, (int[]){0}, 1), MPX_E_UNSUPPORTED, "Unix", "send_fds over a pipe");
    CHECK_STATUS(mpx_conn_send(w, (const uint8_t *)"one way", 7), MPX_OK, "", "send one way");
    CHECK_STATUS(mpx_conn_recv(r, buf, sizeof buf, &len, T), MPX_OK, "", "recv one way");
    CHECK(len == 7 && memcmp(buf, "one way", 7) == 0, "message intact");
    mpx_conn_close(w);
    CHECK_STATUS(mpx_conn_recv(r, buf, sizeof buf, &len, T), MPX_E_CLOSED, "closed", "writer gone: end of stream");
    mpx_conn_close(r);
}

static void test_buffer_too_small_keeps_the_message(void) {
    mpx_conn *a = NULL, *b = NULL;
    REQUIRE(mpx_pipe(true, &a, &b) == MPX_OK, "pipe");
    uint8_t *m = pattern(1000, 3);
    mpx_conn_send(a, m, 1000);
    mpx_conn_send(a, (const uint8_t *)"tail", 4);
    uint8_t small[10], big[1000];
    size_t len = 0;
    CHECK_STATUS(mpx_conn_recv(b, small, sizeof small, &len, T), MPX_E_BUFFER_TOO_SMALL, "1000", "recv into 10 bytes");
    CHECK(len == 1000, "*len tells the size needed (%zu)", len);
    CHECK_STATUS(mpx_conn_recv(b, NULL, 0, &len, T), MPX_E_BUFFER_TOO_SMALL, "kept", "asking again with no buffer");
    CHECK_STATUS(mpx_conn_recv(b, big, sizeof big, &len, T), MPX_OK, "", "recv with room");
    CHECK(len == 1000 && memcmp(big, m, 1000) == 0, "the kept message is whole");
    CHECK_STATUS(mpx_conn_recv(b, small, sizeof small, &len, T), MPX_OK, "", "the next message follows");
    CHECK(len == 4 && memcmp(small, "tail", 4) == 0, "next message intact");
    free(m);
    mpx_conn_close(a);
    mpx_conn_close(b);
}

static void test_timeouts_poll_wait_and_eof(void) {
    mpx_conn *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    REQUIRE(mpx_pipe(true, &a, &b) == MPX_OK && mpx_pipe(true, &c, &d) == MPX_OK, "pipes");
    uint8_t buf[8];
    size_t len = 0;
    bool ready = true;
    CHECK_STATUS(mpx_conn_recv(b, buf, sizeof buf, &len, 0), MPX_E_TIMEOUT, "timeout", "non-blocking recv on nothing");
    CHECK_STATUS(mpx_conn_recv(b, buf, sizeof buf, &len, 20 * 1000000LL), MPX_E_TIMEOUT, "timeout", "20 ms recv on nothing");
    CHECK(mpx_conn_poll(b, 0, &ready) == MPX_OK && !ready, "poll: nothing to read");
    const mpx_conn *list[2] = {b, d};
    bool flags[2] = {true, true};
    size_t nready = 9;
    CHECK(mpx_conn_wait(list, 2, 10 * 1000000LL, flags, &nready) == MPX_OK && nready == 0 && !flags[0] && !flags[1],
          "wait times out with nothing ready");
    mpx_conn_send(c, (const uint8_t *)"d", 1);
    CHECK(mpx_conn_wait(list, 2, T, flags, &nready) == MPX_OK && nready == 1 && !flags[0] && flags[1], "wait: second ready");
    CHECK(mpx_conn_poll(d, T, &ready) == MPX_OK && ready, "poll: ready");
    mpx_conn_close(a);
    CHECK(mpx_conn_poll(b, T, &ready) == MPX_OK && ready, "a closed peer polls ready");
    CHECK_STATUS(mpx_conn_recv(b, buf, sizeof buf, &len, T), MPX_E_CLOSED, "closed", "recv after the peer closed");
    CHECK_STATUS(mpx_conn_send(b, buf, 1), MPX_E_CLOSED, "closed", "send after the peer closed (no SIGPIPE)");
    mpx_conn_close(b);
    mpx_conn_close(c);
    mpx_conn_close(d);
}

static void test_limits_and_garbage(void) {
    mpx_conn *a = NULL, *b = NULL;
    REQUIRE(mpx_pipe(true, &a, &b) == MPX_OK, "pipe");
    CHECK_STATUS(mpx_conn_set_max_message_size(b, 100), MPX_OK, "", "max 100 bytes");
    uint8_t *m = pattern(200, 1);
    uint8_t *r = NULL;
    size_t len = 0;
    mpx_conn_send(a, m, 100);
    CHECK_STATUS(mpx_conn_recv_alloc(b, &r, &len, T), MPX_OK, "", "100 bytes pass");
    mpx_free(r);
    mpx_conn_send(a, m, 200);
    CHECK_STATUS(mpx_conn_recv_alloc(b, &r, &len, T), MPX_E_TOO_BIG, "exceeds the maximum of 100", "200 bytes refused");
    CHECK_STATUS(mpx_conn_recv_alloc(b, &r, &len, T), MPX_E_BROKEN, "unusable", "then the connection is unusable");
    CHECK_STATUS(mpx_conn_recv_alloc(a, &r, &len, T), MPX_E_CLOSED, "closed", "and the peer sees the end");
    free(m);
    mpx_conn_close(a);
    mpx_conn_close(b);

    /* Raw garbage from a socketpair peer. */
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    mpx_conn *c = NULL;
    REQUIRE(mpx_conn_from_fd(sv[0], 0, &c) == MPX_OK, "from_fd of a socket");
    const uint8_t neg[4] = {0xff, 0xff, 0xff, 0xfe};
    CHECK(write(sv[1], neg, 4) == 4, "raw write");
    CHECK_STATUS(mpx_conn_recv_alloc(c, &r, &len, T), MPX_E_CORRUPT, "negative", "a negative length is corrupt");
    mpx_conn_close(c);
    close(sv[1]);

    /* Huge length, short body, then the peer hangs up: no allocation of the promised size. */
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    REQUIRE(mpx_conn_from_fd(sv[0], 0, &c) == MPX_OK, "from_fd of a socket");
    mpx_conn_set_max_message_size(c, 1 << 20);
    const uint8_t huge[12] = {0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0, 0, 0, 0, 0};
    CHECK(write(sv[1], huge, 12) == 12, "raw write");
    CHECK_STATUS(mpx_conn_recv_alloc(c, &r, &len, T), MPX_E_TOO_BIG, "exceeds", "an 8-byte length beyond the maximum");
    mpx_conn_close(c);
    close(sv[1]);

    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    REQUIRE(mpx_conn_from_fd(sv[0], 0, &c) == MPX_OK, "from_fd of a socket");
    const uint8_t part[7] = {0, 0, 0, 10, 'a', 'b', 'c'};
    CHECK(write(sv[1], part, 7) == 7, "raw write");
    close(sv[1]);
    CHECK_STATUS(mpx_conn_recv_alloc(c, &r, &len, T), MPX_E_CLOSED, "3 of 10", "the peer hangs up mid-message");
    mpx_conn_close(c);
}

static void test_sigpipe_is_closed_not_death(void) {
    /* A C program: SIGPIPE has its default action (kill) unless mpx protects the write. */
    signal(SIGPIPE, SIG_DFL);
    mpx_conn *r = NULL, *w = NULL;
    REQUIRE(mpx_pipe(false, &r, &w) == MPX_OK, "one-way pipe");
    mpx_conn_close(r);
    CHECK_STATUS(mpx_conn_send(w, (const uint8_t *)"x", 1), MPX_E_CLOSED, "closed", "send to a pipe without reader");
    mpx_conn_close(w);
    /* Other code's writes keep the default behaviour: a forked child dies of SIGPIPE. */
    pid_t pid = fork();
    if (pid == 0) {
        int p[2];
        if (pipe(p)) _exit(3);
        close(p[0]);
        if (write(p[1], "x", 1) < 0) _exit(4);
        _exit(5);
    }
    CHECK(t_signaled(t_wait(pid, 20), SIGPIPE), "a plain write to a broken pipe still raises SIGPIPE");
}

static void test_inherited_descriptor(void) {
    mpx_conn *a = NULL, *b = NULL;
    REQUIRE(mpx_pipe(true, &a, &b) == MPX_OK, "pipe");
    int fa = -1, fb = -1;
    mpx_conn_fileno(a, &fa);
    mpx_conn_fileno(b, &fb);
    pid_t pid = fork();
    if (pid == 0) {
        /* As a program that inherited descriptor fb would: re-open it by number. */
        close(fa);
        int fd = dup(fb);
        mpx_conn *c = NULL;
        if (mpx_conn_from_fd(fd, 0, &c) != MPX_OK) _exit(20);
        int rc = echo_reversed(c);
        mpx_conn_close(c);
        _exit(rc);
    }
    mpx_conn_close(b);
    uint8_t *m = pattern(70000, 4);
    uint8_t *r = NULL;
    size_t len = 0;
    mpx_status st = mpx_conn_send(a, m, 70000);
    if (!st) st = mpx_conn_recv_alloc(a, &r, &len, T);
    CHECK(st == MPX_OK && len == 70000 && reversed_equal(m, r, len), "child re-opened the inherited descriptor");
    mpx_free(r);
    free(m);
    mpx_conn_close(a);
    CHECK(t_exited(t_wait(pid, 20), 0), "child exited 0");
}

static void test_fd_and_shm_passing(void) {
    mpx_conn *a = NULL, *b = NULL;
    REQUIRE(mpx_pipe(true, &a, &b) == MPX_OK, "pipe");
    mpx_shm *shm = NULL;
    REQUIRE(mpx_shm_create_anonymous(1 << 20, &shm) == MPX_OK, "anonymous shm");
    uint8_t *p = mpx_shm_ptr(shm);
    t_fill(p, 1 << 20, 9);
    pid_t pid = fork();
    if (pid == 0) {
        mpx_conn_close(a);
        mpx_shm *got = NULL;
        if (mpx_conn_recv_shm(b, 0, T, &got) != MPX_OK) _exit(30);
        uint8_t *q = mpx_shm_ptr(got);
        if (mpx_shm_size(got) != 1 << 20 || t_mismatch(q, 1 << 20, 9) != (size_t)-1) _exit(31);
        q[0] = 0xAB;
        mpx_conn_send(b, (const uint8_t *)"done", 4);
        mpx_shm_close(got);
        _exit(0);
    }
    CHECK_STATUS(mpx_conn_send_shm(a, shm), MPX_OK, "", "send an anonymous buffer");
    uint8_t ack[8];
    size_t len = 0;
    CHECK_STATUS(mpx_conn_recv(a, ack, sizeof ack, &len, T), MPX_OK, "", "child acknowledged");
    CHECK(p[0] == 0xAB, "the child wrote into the same memory");
    CHECK(t_exited(t_wait(pid, 20), 0), "child exited 0");
    mpx_shm_close(shm);

    /* Descriptor messages and ordinary messages keep their order and kinds. */
    int pfd[2];
    REQUIRE(pipe2(pfd, O_CLOEXEC) == 0, "pipe2");
    int three[3] = {pfd[0], pfd[1], pfd[1]};
    mpx_conn_send(a, (const uint8_t *)"first", 5);
    CHECK_STATUS(mpx_conn_send_fds(a, three, 3), MPX_OK, "", "send three descriptors");
    int got[3] = {-1, -1, -1};
    size_t n = 0;
    CHECK_STATUS(mpx_conn_recv_fds(b, got, 3, &n, T), MPX_E_STATE, "ordinary message", "recv_fds when a message is next");
    CHECK_STATUS(mpx_conn_recv(b, ack, sizeof ack, &len, T), MPX_OK, "", "the message first");
    CHECK_STATUS(mpx_conn_recv(b, ack, sizeof ack, &len, T), MPX_E_STATE, "recv_fds", "recv when descriptors are next");
    CHECK_STATUS(mpx_conn_recv_fds(b, got, 2, &n, T), MPX_E_BUFFER_TOO_SMALL, "3", "room for 2 of 3");
    CHECK(n == 3, "*n tells how many (%zu)", n);
    CHECK_STATUS(mpx_conn_recv_fds(b, got, 3, &n, T), MPX_OK, "", "receive the three");
    CHECK(n == 3 && got[0] > 2 && got[1] > 2 && got[2] > 2 && got[0] != pfd[0], "three new descriptors");
    CHECK((fcntl(got[0], F_GETFD) & FD_CLOEXEC) != 0, "received descriptors are close-on-exec");
    CHECK(write(got[1], "z", 1) == 1, "write through a received descriptor");
    char c = 0;
    CHECK(t_read1(pfd[0], &c, 5) && c == 'z', "read it through the original");
    for (int i = 0; i < 3; i++) close(got[i]);
    close(pfd[0]);
    close(pfd[1]);
    mpx_conn_close(a);
    mpx_conn_close(b);
}

/* In a child: connect to `addr` with `key` and echo reversed; exit status 100 - status on error. */
static pid_t client_child(const char *addr, const char *key) {
    pid_t pid = fork();
    if (pid == 0) {
        mpx_conn *c = NULL;
        mpx_status st = mpx_client_connect(addr, (const uint8_t *)key, key ? strlen(key) : 0, T, &c);
        if (st) _exit(100 - st);
        int rc = echo_reversed(c);
        mpx_conn_close(c);
        _exit(rc);
    }
    return pid;
}

static void test_listener_and_clients(void) {
    const char *addrs[] = {"tcp:127.0.0.1:0", "tcp:[::1]:0", "unix:@"};
    for (unsigned i = 0; i < 3; i++) {
        mpx_listener *l = NULL;
        REQUIRE(mpx_listener_create(addrs[i], 4, (const uint8_t *)"key", 3, &l) == MPX_OK, "listen %s", addrs[i]);
        char addr[128], tiny[4];
        size_t need = 0;
        CHECK_STATUS(mpx_listener_address(l, tiny, sizeof tiny, &need), MPX_E_BUFFER_TOO_SMALL, "needs", "address into 4 bytes");
        CHECK_STATUS(mpx_listener_address(l, addr, sizeof addr, NULL), MPX_OK, "", "address");
        CHECK(need == strlen(addr) && strlen(addr) > 8, "address %s (%zu bytes)", addr, need);
        pid_t pid = client_child(addr, "key");
        mpx_conn *c = NULL;
        CHECK_STATUS(mpx_listener_accept(l, T, &c), MPX_OK, "", "accept an authenticated client");
        char peer[128];
        size_t plen = 0;
        CHECK_STATUS(mpx_conn_peer_address(c, peer, sizeof peer, &plen), MPX_OK, "", "peer address");
        CHECK(strncmp(peer, addr, 4) == 0 && plen == strlen(peer), "peer %s is of the listener's kind", peer);
        uint8_t *m = pattern(5000, 7), *r = NULL;
        size_t len = 0;
        mpx_status st = c ? mpx_conn_send(c, m, 5000) : MPX_E_INVALID;
        if (!st) st = mpx_conn_recv_alloc(c, &r, &len, T);
        CHECK(st == MPX_OK && len == 5000 && reversed_equal(m, r, len), "exchange over %s", addr);
        mpx_free(r);
        free(m);
        mpx_conn_close(c);
        CHECK(t_exited(t_wait(pid, 20), 0), "client exited 0");
        /* Wrong key: MPX_E_AUTH on both sides. */
        pid = client_child(addr, "other");
        CHECK_STATUS(mpx_listener_accept(l, T, &c), MPX_E_AUTH, "wrong", "accept refuses a wrong key");
        CHECK(t_exited(t_wait(pid, 20), 100 - MPX_E_AUTH), "the client got MPX_E_AUTH too");
        /* No client: the accept timeout. */
        CHECK_STATUS(mpx_listener_accept(l, 20 * 1000000LL, &c), MPX_E_TIMEOUT, "no connection", "accept times out");
        mpx_listener_close(l);
    }

    /* A Unix path: in use while listening, removed at close. */
    char path[128], addr[160];
    snprintf(path, sizeof path, "/tmp/mpx-test-conn-%d.sock", (int)getpid());
    snprintf(addr, sizeof addr, "unix:%s", path);
    mpx_listener *l = NULL, *l2 = NULL;
    REQUIRE(mpx_listener_create(addr, 1, NULL, 0, &l) == MPX_OK, "listen on a path");
    CHECK(access(path, F_OK) == 0, "the socket file exists");
    CHECK_STATUS(mpx_listener_create(addr, 1, NULL, 0, &l2), MPX_E_EXISTS, "in use", "a second listener on the path");
    int lfd = -1;
    CHECK(mpx_listener_fileno(l, &lfd) == MPX_OK && lfd > 2, "listener fileno");
    CHECK_STATUS(mpx_listener_set_handshake_timeout(l, SEC), MPX_OK, "", "handshake timeout setter");
    mpx_listener_close(l);
    CHECK(access(path, F_OK) != 0, "closing the listener removed the socket file");
    mpx_conn *c = NULL;
    CHECK_STATUS(mpx_client_connect(addr, NULL, 0, T, &c), MPX_E_NOT_FOUND, "", "connect to a removed path");

    /* A silent client cannot hold an authenticating accept beyond the timeouts. */
    REQUIRE(mpx_listener_create("tcp:127.0.0.1:0", 1, (const uint8_t *)"k", 1, &l) == MPX_OK, "listen");
    char real[64];
    mpx_listener_address(l, real, sizeof real, NULL);
    int port = atoi(strrchr(real, ':') + 1);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = {htonl(0x7f000001)}};
    REQUIRE(connect(s, (struct sockaddr *)&sin, sizeof sin) == 0, "raw connect");
    mpx_listener_set_handshake_timeout(l, 50 * 1000000LL);
    CHECK_STATUS(mpx_listener_accept(l, MPX_FOREVER, &c), MPX_E_TIMEOUT, "handshake", "a silent client times out");
    close(s);
    mpx_listener_close(l);
}

/* VmSize of this process in bytes (its address space). */
static long long vm_size(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %lld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

/* A peer that announces far more than it sends: memory follows the bytes, not the header, and
 * once the peer hangs up every receive form reports the end of the stream. */
static void test_huge_announcements(void) {
    const uint8_t huge[12] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0, 0, 0, 0, 0}; /* 2^40 */
    const int PEERS = 20;
    int sv[20][2];
    mpx_conn *c[20];
    uint8_t *r = NULL;
    size_t len = 0, got = 0;
    long long before = vm_size();
    for (int i = 0; i < PEERS; i++) {
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]) == 0, "socketpair");
        REQUIRE(mpx_conn_from_fd(sv[i][0], 0, &c[i]) == MPX_OK, "from_fd of a socket");
        REQUIRE(write(sv[i][1], huge, 12) == 12, "raw write");
    }
    int timeouts = 0;
    for (int i = 0; i < PEERS; i++)
        timeouts += mpx_conn_recv_alloc(c[i], &r, &len, 1000000) == MPX_E_TIMEOUT;
    long long grown = vm_size() - before;
    CHECK(timeouts == PEERS, "20 announcements of 1 TiB without bodies: %d receives time out", timeouts);
    CHECK(grown < (1LL << 30), "and the address space grew by %lld MiB, not 20 TiB", grown >> 20);

    /* The peers send 5 bytes and hang up: MPX_E_CLOSED from every receive form, every time. */
    for (int i = 0; i < 4; i++) {
        REQUIRE(write(sv[i][1], "12345", 5) == 5, "raw write");
        close(sv[i][1]);
        sv[i][1] = -1;
        for (int round = 0; round < 3; round++) {
            uint8_t small[16];
            got = 0;
            mpx_status st = i == 0   ? mpx_conn_recv_alloc(c[i], &r, &len, T)
                            : i == 1 ? mpx_conn_recv(c[i], small, sizeof small, &len, T)
                            : i == 2 ? mpx_conn_recv_part(c[i], small, sizeof small, &got, &len, T)
                                     : mpx_conn_recv(c[i], NULL, 0, &len, T);
            CHECK_STATUS(st, MPX_E_CLOSED, round == 0 ? "5 of 1099511627776" : "closed",
                         "a 1 TiB announcement, 5 bytes, then the peer hangs up: the end of the stream");
            bool ready = false;
            CHECK(mpx_conn_poll(c[i], 0, &ready) == MPX_OK && ready, "and poll says ready (the end)");
        }
    }
    for (int i = 0; i < PEERS; i++) {
        mpx_conn_close(c[i]);
        if (sv[i][1] >= 0)
            close(sv[i][1]);
    }
}

/* mpx_conn_recv_part: the caller's buffer holds the message across calls and grows on request. */
static void test_recv_part(void) {
    int sv[2];
    mpx_conn *c = NULL;
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    REQUIRE(mpx_conn_from_fd(sv[0], 0, &c) == MPX_OK, "from_fd of a socket");
    const size_t N = 100000;
    uint8_t *m = pattern(N, 7);
    uint8_t hdr[4] = {0, (uint8_t)(N >> 16), (uint8_t)(N >> 8), (uint8_t)N};
    REQUIRE(write(sv[1], hdr, 4) == 4 && write(sv[1], m, 30000) == 30000, "raw write");
    size_t cap = 1000, got = 0, len = 0;
    uint8_t *buf = malloc(cap);
    mpx_status st;
    CHECK_STATUS(mpx_conn_recv_part(c, buf, cap, NULL, &len, T), MPX_E_INVALID, "got", "NULL got");
    CHECK_STATUS(mpx_conn_recv_part(c, buf, cap, &got, NULL, T), MPX_E_INVALID, "len", "NULL len");
    CHECK_STATUS(mpx_conn_recv_part(c, NULL, 10, &got, &len, T), MPX_E_INVALID, "buf", "NULL buf with room");
    CHECK_STATUS(mpx_conn_recv_part(NULL, buf, cap, &got, &len, T), MPX_E_INVALID, "", "NULL conn");
    CHECK_STATUS(mpx_conn_recv_part(c, buf, cap, &got, &len, -2), MPX_E_INVALID, "", "timeout below -1");
    CHECK_STATUS(mpx_conn_recv_part(c, NULL, 0, &got, &len, T), MPX_E_BUFFER_TOO_SMALL, "full",
                 "NULL with no room: asks for room");
    CHECK(got == 0 && len == N, "and tells the length (%zu)", len);
    int grows = 0;
    while ((st = mpx_conn_recv_part(c, buf, cap, &got, &len, 1000000)) == MPX_E_BUFFER_TOO_SMALL) {
        CHECK(got == cap && len == N, "full at %zu of %zu", got, len);
        cap = cap * 2 < len ? cap * 2 : len;
        buf = realloc(buf, cap);
        grows++;
    }
    CHECK(grows == 5, "the buffer was full and grew %d times", grows);
    CHECK_STATUS(st, MPX_E_TIMEOUT, "", "then the rest has not come yet");
    CHECK(got == 30000 && len == N, "30000 bytes are in the caller's buffer (%zu)", got);
    CHECK_STATUS(mpx_conn_recv(c, buf, cap, &len, 0), MPX_E_STATE, "recv_part", "other receives wait for it");
    size_t wrong = got - 1;
    CHECK_STATUS(mpx_conn_recv_part(c, buf, cap, &wrong, &len, 0), MPX_E_INVALID, "handed", "a wrong count");
    REQUIRE(write(sv[1], m + 30000, N - 30000) == (ssize_t)(N - 30000), "raw write");
    buf = realloc(buf, N);
    cap = N;
    CHECK_STATUS(mpx_conn_recv_part(c, buf, cap, &got, &len, T), MPX_OK, "", "the rest arrives");
    size_t bad = 0;
    while (bad < N && buf[bad] == m[bad])
        bad++;
    CHECK(got == N && len == N && bad == N, "the whole message, once (got %zu, len %zu, same up to %zu)", got, len, bad);
    free(buf);

    /* The peer hangs up in the middle of a part receive: MPX_E_CLOSED with *got back to 0, and
     * the same for every later receive. */
    REQUIRE(write(sv[1], hdr, 4) == 4 && write(sv[1], m, 30000) == 30000, "raw write");
    buf = malloc(N);
    got = 0;
    CHECK_STATUS(mpx_conn_recv_part(c, buf, N, &got, &len, 1000000), MPX_E_TIMEOUT, "", "30000 bytes arrive");
    CHECK(got == 30000, "and are in the buffer (%zu)", got);
    close(sv[1]);
    CHECK_STATUS(mpx_conn_recv_part(c, buf, N, &got, &len, T), MPX_E_CLOSED, "30000 of 100000",
                 "the peer hangs up mid-message");
    CHECK(got == 0, "the buffer holds nothing of a message any more (%zu)", got);
    CHECK_STATUS(mpx_conn_recv_part(c, buf, N, &got, &len, T), MPX_E_CLOSED, "closed", "and after");
    free(buf);
    free(m);
    mpx_conn_close(c);
}

int main(void) {
    t_init("test_conn");
    test_null_and_bad_arguments();
    test_duplex_sizes_with_a_forked_child();
    test_one_way_pipe();
    test_buffer_too_small_keeps_the_message();
    test_timeouts_poll_wait_and_eof();
    test_limits_and_garbage();
    test_huge_announcements();
    test_recv_part();
    test_sigpipe_is_closed_not_death();
    test_inherited_descriptor();
    test_fd_and_shm_passing();
    test_listener_and_clients();
    return t_finish();
}
