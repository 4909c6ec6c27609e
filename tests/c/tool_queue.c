/* tool_queue.c: a command-line producer and consumer over an mpx queue, written in C, for
 * cross-language tests. tests/cpp/tool_queue.cpp is the same tool in C++.
 *
 *   tool_queue create NAME CAPACITY [MAXMSGS [joinable|simple]]
 *                                        create the queue (kept for other processes)
 *   tool_queue produce NAME ID COUNT [SIZE]
 *                                        put COUNT messages "ID:SEQ" (SEQ = 0..COUNT-1); with
 *                                        SIZE, each is padded to SIZE bytes with "|" then 'x's
 *   tool_queue consume NAME COUNT [--print] [--exact]
 *                                        get COUNT messages, check each (format, padding) and
 *                                        that each producer's SEQs arrive in increasing order,
 *                                        never twice; --print prints each "ID:SEQ"; --exact also
 *                                        requires every producer's SEQs to be 0, 1, 2, ...
 *                                        Prints "producer ID: N messages, SEQ FIRST..LAST" per
 *                                        producer, then "consumed N messages, checksum XXXXXXXX"
 *   tool_queue drain NAME                get until empty; prints "drained N"
 *   tool_queue shutdown NAME             shut the queue down (blocked callers get CLOSED)
 *   tool_queue unlink NAME               remove the name
 *
 * ID is 0..65535. The checksum is the sum (mod 2^32) of the FNV-1a 32 of every message's
 * bytes, so it does not depend on the order of arrival: h = 0x811c9dc5; for each byte:
 * h ^= byte, h *= 0x01000193 (mod 2^32). Every wait is bounded by MPX_TOOL_TIMEOUT seconds
 * (default 30). Exit codes: 0 success; 1 a check failed; 2 usage error; 100 + (-status) when an
 * mpx call fails (e.g. 102 = MPX_E_NOT_FOUND, 104 = MPX_E_TIMEOUT, 107 = MPX_E_CLOSED).
 */
#include <mpx.h>

#define TOOL_NAME "tool_queue (C)"
#include "tool_util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IDS 65536

static int usage(void) {
    fprintf(stderr,
            "usage: tool_queue create NAME CAPACITY [MAXMSGS [joinable|simple]] | produce NAME ID COUNT [SIZE] |\n"
            "                  consume NAME COUNT [--print] [--exact] | drain NAME | shutdown NAME | unlink NAME\n");
    return 2;
}

static int64_t timeout_ns(void) {
    const char *t = getenv("MPX_TOOL_TIMEOUT");
    long s = t ? atol(t) : 30;
    return (int64_t)(s > 0 ? s : 30) * 1000000000LL;
}

/* Parses "ID:SEQ" optionally followed by "|" and 'x's. 0 if well formed. */
static int parse(const uint8_t *m, size_t len, unsigned *id, unsigned long long *seq) {
    char head[48];
    size_t n = 0;
    while (n < len && n < sizeof head - 1 && m[n] != '|') {
        head[n] = (char)m[n];
        n++;
    }
    head[n] = 0;
    char *colon = strchr(head, ':'), *end;
    if (!colon || colon == head) return -1;
    *colon = 0;
    errno = 0;
    unsigned long id_v = strtoul(head, &end, 10);
    if (*end || errno || id_v >= MAX_IDS) return -1;
    unsigned long long seq_v = strtoull(colon + 1, &end, 10);
    if (*end || errno || colon[1] == 0) return -1;
    if (n < len) {
        if (m[n] != '|') return -1;
        for (size_t k = n + 1; k < len; k++)
            if (m[k] != 'x') return -1;
    }
    *id = (unsigned)id_v;
    *seq = seq_v;
    return 0;
}

static int produce(mpx_queue *q, unsigned id, unsigned long long count, size_t size) {
    size_t cap = size > 64 ? size : 64;
    uint8_t *m = malloc(cap);
    if (!m) return 1;
    int64_t t = timeout_ns();
    for (unsigned long long seq = 0; seq < count; seq++) {
        int n = snprintf((char *)m, cap, "%u:%llu", id, seq);
        size_t len = (size_t)n;
        if (size > len) {
            m[len++] = '|';
            while (len < size) m[len++] = 'x';
        }
        mpx_status st = mpx_queue_put(q, m, len, t);
        if (st != MPX_OK) {
            free(m);
            return fail("put", st);
        }
    }
    free(m);
    fprintf(stderr, "tool_queue (C): producer %u put %llu messages\n", id, count);
    return 0;
}

static int consume(mpx_queue *q, unsigned long long count, int print, int exact) {
    static long long last[MAX_IDS];
    static unsigned long long got[MAX_IDS];
    static unsigned long long first[MAX_IDS];
    for (size_t i = 0; i < MAX_IDS; i++) last[i] = -1;
    size_t cap = 4096;
    uint8_t *buf = malloc(cap);
    uint32_t sum = 0;
    int bad = 0;
    int64_t t = timeout_ns();
    for (unsigned long long k = 0; k < count; k++) {
        size_t len = 0;
        mpx_status st = mpx_queue_get(q, buf, cap, &len, t);
        if (st == MPX_E_BUFFER_TOO_SMALL) {
            uint8_t *bigger = realloc(buf, len);
            if (!bigger) return 1;
            buf = bigger;
            cap = len;
            k--;
            continue;
        }
        if (st != MPX_OK) {
            free(buf);
            fprintf(stderr, "tool_queue (C): after %llu of %llu messages\n", k, count);
            return fail("get", st);
        }
        unsigned id;
        unsigned long long seq;
        if (parse(buf, len, &id, &seq) != 0) {
            fprintf(stderr, "tool_queue (C): malformed message %llu (%zu bytes): %.*s\n", k, len, (int)(len < 60 ? len : 60),
                    (const char *)buf);
            bad = 1;
            continue;
        }
        if ((long long)seq <= last[id]) {
            fprintf(stderr, "tool_queue (C): producer %u: %llu after %lld (out of order or twice)\n", id, seq, last[id]);
            bad = 1;
        } else if (exact && (long long)seq != last[id] + 1) {
            fprintf(stderr, "tool_queue (C): producer %u: %llu after %lld (a gap)\n", id, seq, last[id]);
            bad = 1;
        }
        if (got[id]++ == 0) first[id] = seq;
        if ((long long)seq > last[id]) last[id] = (long long)seq;
        sum += fnv1a(buf, len);
        if (print) printf("%u:%llu\n", id, seq);
    }
    free(buf);
    for (size_t i = 0; i < MAX_IDS; i++)
        if (got[i]) printf("producer %zu: %llu messages, seq %llu..%lld\n", i, got[i], first[i], last[i]);
    printf("consumed %llu messages, checksum %08x\n", count, sum);
    return bad;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    const char *cmd = argv[1], *name = argv[2];
    unsigned long long a = 0, b = 0, c = 0;
    mpx_queue *q = NULL;
    mpx_status st;

    if (strcmp(cmd, "create") == 0) {
        if (argc < 4 || argc > 6 || number(argv[3], MPX_QUEUE_MAX_CAPACITY, &a)) return usage();
        if (argc >= 5 && number(argv[4], UINT32_MAX, &b)) return usage();
        uint32_t flags = 0;
        if (argc == 6) {
            if (strcmp(argv[5], "joinable") == 0)
                flags = MPX_QUEUE_JOINABLE;
            else if (strcmp(argv[5], "simple") == 0)
                flags = MPX_QUEUE_SIMPLE;
            else
                return usage();
        }
        if ((st = mpx_queue_create(name, (size_t)a, b, flags, &q)) != MPX_OK) return fail("create", st);
        fprintf(stderr, "tool_queue (C): created '%s', capacity %zu bytes\n", name, mpx_queue_capacity(q));
        mpx_queue_close(q);
        return 0;
    }
    if (strcmp(cmd, "unlink") == 0) {
        if (argc != 3) return usage();
        return (st = mpx_queue_unlink(name)) == MPX_OK ? 0 : fail("unlink", st);
    }
    int print = 0, exact = 0;
    if (strcmp(cmd, "produce") == 0) {
        if (argc < 5 || argc > 6 || number(argv[3], MAX_IDS - 1, &a) || number(argv[4], UINT64_MAX, &b)) return usage();
        if (argc == 6 && number(argv[5], MPX_QUEUE_MAX_CAPACITY, &c)) return usage();
    } else if (strcmp(cmd, "consume") == 0) {
        if (argc < 4 || number(argv[3], UINT64_MAX, &a)) return usage();
        for (int i = 4; i < argc; i++) {
            if (strcmp(argv[i], "--print") == 0)
                print = 1;
            else if (strcmp(argv[i], "--exact") == 0)
                exact = 1;
            else
                return usage();
        }
    } else if (strcmp(cmd, "drain") != 0 && strcmp(cmd, "shutdown") != 0) {
        return usage();
    } else if (argc != 3) {
        return usage();
    }

    if ((st = mpx_queue_open(name, 0, &q)) != MPX_OK) return fail("open", st);
    int rc = 0;
    if (strcmp(cmd, "produce") == 0) {
        rc = produce(q, (unsigned)a, b, (size_t)c);
    } else if (strcmp(cmd, "consume") == 0) {
        rc = consume(q, a, print, exact);
    } else if (strcmp(cmd, "drain") == 0) {
        unsigned long long n = 0;
        uint8_t *data;
        size_t len;
        while ((st = mpx_queue_get_alloc(q, &data, &len, 0)) == MPX_OK) {
            mpx_free(data);
            n++;
        }
        printf("drained %llu\n", n);
        if (st != MPX_E_EMPTY && st != MPX_E_CLOSED) rc = fail("get", st);
    } else {
        if ((st = mpx_queue_shutdown(q)) != MPX_OK) rc = fail("shutdown", st);
    }
    mpx_queue_close(q);
    return rc;
}
