/* tool_conn.c: a command-line client/listener over mpx connections, written in C, for the
 * interop tests against CPython's multiprocessing.connection (tests/python/test_conn_interop.py).
 *
 *   tool_conn client ADDR KEY ACTION...   connect to ADDR, then run ACTION
 *   tool_conn serve  ADDR KEY ACTION...   listen at ADDR, print "listening <address>" (the real
 *                                         address: the port for tcp:host:0), accept one client,
 *                                         then run ACTION
 *
 * ADDR: unix:/path, unix:@name, tcp:host:port, tcp:[::1]:port. KEY: the authkey, or "-" for none.
 * ACTION:
 *   drive SIZE...     for message i (0, 1, ...): send pattern(SIZE, i), then receive the reply
 *                     and check it is pattern(SIZE, i + 1)
 *   respond COUNT     COUNT times: receive message i, check it is pattern(len, i), reply with
 *                     pattern(len, i + 1)
 *   send-shm SIZE SEED   (Unix) send an anonymous shm buffer filled with pattern(SIZE, SEED), wait
 *                     for a message "ok", then check the peer set byte 0 to 0xAB
 *   recv-fd           (Unix) receive one descriptor, map the whole file and reply with its
 *                     "<size> <fnv1a32 as 8 hex digits>"
 *
 * Pattern: byte j of pattern(n, seed) = (j * 31 + seed) mod 256. Every wait is bounded (30 s).
 * Exit codes: 0 success; 1 a check failed; 2 usage; 100 + (-status) when an mpx call fails
 * (104 = MPX_E_TIMEOUT, 107 = MPX_E_CLOSED, 115 = MPX_E_AUTH). Messages go to stderr.
 */
#include <mpx.h>

#define TOOL_NAME "tool_conn"
#include "tool_util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TIMEOUT_NS (30LL * 1000 * 1000 * 1000)

static int usage(void) {
    fprintf(stderr,
            "usage: tool_conn client|serve ADDR KEY drive SIZE... | respond COUNT |\n"
            "                                      send-shm SIZE SEED | recv-fd\n");
    return 2;
}

static int matches(const uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(i * 31u + seed)) {
            fprintf(stderr, "tool_conn: byte %zu of a %zu-byte message is %u, wanted %u\n", i, n, p[i],
                    (uint8_t)(i * 31u + seed));
            return 0;
        }
    return 1;
}

static int drive(mpx_conn *c, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        unsigned long long size;
        if (number(argv[i], 1ULL << 34, &size)) return 2;
        uint8_t *m = malloc(size ? size : 1);
        if (!m) return 1;
        fill(m, size, (unsigned)i);
        mpx_status st = mpx_conn_send(c, m, size);
        free(m);
        if (st) return fail("send", st);
        uint8_t *r = NULL;
        size_t len = 0;
        if ((st = mpx_conn_recv_alloc(c, &r, &len, TIMEOUT_NS))) return fail("recv", st);
        int ok = len == size && matches(r, len, (unsigned)i + 1);
        if (len != size) fprintf(stderr, "tool_conn: reply %d has %zu bytes, wanted %llu\n", i, len, size);
        mpx_free(r);
        if (!ok) return 1;
    }
    printf("ok %d\n", argc);
    return 0;
}

static int respond(mpx_conn *c, unsigned long long count) {
    for (unsigned long long i = 0; i < count; i++) {
        uint8_t *m = NULL;
        size_t len = 0;
        mpx_status st = mpx_conn_recv_alloc(c, &m, &len, TIMEOUT_NS);
        if (st) return fail("recv", st);
        int ok = matches(m, len, (unsigned)i);
        if (ok) {
            fill(m, len, (unsigned)i + 1);
            st = mpx_conn_send(c, m, len);
        }
        mpx_free(m);
        if (!ok) return 1;
        if (st) return fail("send", st);
    }
    printf("ok %llu\n", count);
    return 0;
}

static int send_shm(mpx_conn *c, unsigned long long size, unsigned long long seed) {
    mpx_shm *shm = NULL;
    mpx_status st = mpx_shm_create_anonymous(size, &shm);
    if (st) return fail("shm", st);
    uint8_t *p = mpx_shm_ptr(shm);
    fill(p, size, (unsigned)seed);
    int rc = 0;
    uint8_t ack[16];
    size_t len = 0;
    if ((st = mpx_conn_send_shm(c, shm))) {
        rc = fail("send_shm", st);
    } else if ((st = mpx_conn_recv(c, ack, sizeof ack, &len, TIMEOUT_NS))) {
        rc = fail("recv ack", st);
    } else if (len != 2 || memcmp(ack, "ok", 2) != 0) {
        fprintf(stderr, "tool_conn: unexpected ack\n");
        rc = 1;
    } else if (p[0] != 0xAB) {
        fprintf(stderr, "tool_conn: the peer's write (byte 0 = 0xAB) is not visible: %u\n", p[0]);
        rc = 1;
    } else {
        printf("ok shm %llu\n", size);
    }
    mpx_shm_close(shm);
    return rc;
}

static int recv_fd(mpx_conn *c) {
    int fd = -1;
    size_t n = 0;
    mpx_status st = mpx_conn_recv_fds(c, &fd, 1, &n, TIMEOUT_NS);
    if (st) return fail("recv_fds", st);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        perror("tool_conn: fstat");
        return 1;
    }
    size_t size = (size_t)sb.st_size;
    uint32_t h = fnv1a(NULL, 0);
    if (size > 0) {
        void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            perror("tool_conn: mmap");
            return 1;
        }
        h = fnv1a(p, size);
        munmap(p, size);
    }
    close(fd);
    char reply[64];
    int len = snprintf(reply, sizeof reply, "%zu %08x", size, h);
    if ((st = mpx_conn_send(c, (const uint8_t *)reply, (size_t)len))) return fail("send", st);
    printf("ok fd %s\n", reply);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 5) return usage();
    const char *mode = argv[1], *addr = argv[2], *key = argv[3], *action = argv[4];
    const uint8_t *k = strcmp(key, "-") == 0 ? NULL : (const uint8_t *)key;
    size_t klen = k ? strlen(key) : 0;
    mpx_conn *c = NULL;
    mpx_listener *l = NULL;
    mpx_status st;
    if (strcmp(mode, "client") == 0) {
        if ((st = mpx_client_connect(addr, k, klen, TIMEOUT_NS, &c))) return fail("connect", st);
    } else if (strcmp(mode, "serve") == 0) {
        if ((st = mpx_listener_create(addr, 4, k, klen, &l))) return fail("listen", st);
        char real[256];
        if ((st = mpx_listener_address(l, real, sizeof real, NULL))) return fail("address", st);
        printf("listening %s\n", real);
        st = mpx_listener_accept(l, TIMEOUT_NS, &c);
        mpx_listener_close(l);
        if (st) return fail("accept", st);
    } else {
        return usage();
    }
    int rc;
    unsigned long long a = 0, b = 0;
    if (strcmp(action, "drive") == 0) {
        rc = drive(c, argc - 5, argv + 5);
    } else if (strcmp(action, "respond") == 0 && argc == 6) {
        rc = number(argv[5], 1000000, &a) ? 2 : respond(c, a);
    } else if (strcmp(action, "send-shm") == 0 && argc == 7) {
        rc = number(argv[5], 1ULL << 32, &a) || number(argv[6], 255, &b) ? 2 : send_shm(c, a, b);
    } else if (strcmp(action, "recv-fd") == 0 && argc == 5) {
        rc = recv_fd(c);
    } else {
        rc = usage();
    }
    mpx_conn_close(c);
    return rc;
}
