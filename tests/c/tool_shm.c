/* tool_shm.c: a command-line tool over mpx shared memory, written in C, for cross-language tests
 * (tests/python/test_cross_shm.py). tests/cpp/tool_shm.cpp is the same tool in C++.
 *
 *   tool_shm create NAME SIZE SEED   create NAME with SIZE bytes filled with pattern SEED; the
 *                                    name is kept (no unlink) for another process to open
 *   tool_shm fill NAME SEED          open NAME and fill all of it with pattern SEED
 *   tool_shm verify NAME SEED        open NAME and check every byte against pattern SEED
 *   tool_shm read NAME               print "<size> <fnv1a32 as 8 hex digits>" of the bytes
 *   tool_shm hold NAME SECONDS       open NAME, print "holding NAME", sleep, close
 *   tool_shm unlink NAME             remove NAME
 *
 * Pattern SEED (0..255): byte i = (i * 31 + SEED) mod 256.
 * FNV-1a 32: h = 0x811c9dc5; for each byte: h ^= byte, h *= 0x01000193 (mod 2^32).
 * Exit codes: 0 success; 1 verify found a mismatch; 2 usage error; 100 + (-status) when an mpx
 * call fails (e.g. 102 = MPX_E_NOT_FOUND, 103 = MPX_E_EXISTS). Messages go to stderr.
 */
#include <mpx.h>

#define TOOL_NAME "tool_shm (C)"
#include "tool_util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int usage(void) {
    fprintf(stderr,
            "usage: tool_shm create NAME SIZE SEED | fill NAME SEED | verify NAME SEED | read NAME |\n"
            "                hold NAME SECONDS | unlink NAME\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    const char *cmd = argv[1], *name = argv[2];
    unsigned long long size = 0, seed = 0, secs = 0;
    mpx_shm *shm = NULL;
    mpx_status st;

    if (strcmp(cmd, "create") == 0) {
        if (argc != 5 || number(argv[3], SIZE_MAX, &size) || number(argv[4], 255, &seed)) return usage();
        if ((st = mpx_shm_create(name, (size_t)size, 0, &shm)) != MPX_OK) return fail("create", st);
        fill(mpx_shm_ptr(shm), mpx_shm_size(shm), (unsigned)seed);
        mpx_shm_close(shm);
        fprintf(stderr, "tool_shm (C): created '%s', %llu bytes, pattern %llu\n", name, size, seed);
        return 0;
    }
    if (strcmp(cmd, "unlink") == 0) {
        if (argc != 3) return usage();
        return (st = mpx_shm_unlink(name)) == MPX_OK ? 0 : fail("unlink", st);
    }
    if (strcmp(cmd, "fill") == 0 || strcmp(cmd, "verify") == 0) {
        if (argc != 4 || number(argv[3], 255, &seed)) return usage();
    } else if (strcmp(cmd, "hold") == 0) {
        if (argc != 4 || number(argv[3], 86400, &secs)) return usage();
    } else if (strcmp(cmd, "read") == 0) {
        if (argc != 3) return usage();
    } else {
        return usage();
    }

    if ((st = mpx_shm_open(name, 0, &shm)) != MPX_OK) return fail("open", st);
    uint8_t *p = mpx_shm_ptr(shm);
    size_t n = mpx_shm_size(shm);
    int rc = 0;
    if (strcmp(cmd, "fill") == 0) {
        fill(p, n, (unsigned)seed);
        fprintf(stderr, "tool_shm (C): filled '%s', %zu bytes, pattern %llu\n", name, n, seed);
    } else if (strcmp(cmd, "verify") == 0) {
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n; i++)
            if (p[i] != (uint8_t)(i * 31u + (unsigned)seed) && bad++ == 0) first = i;
        if (bad) {
            fprintf(stderr, "tool_shm (C): '%s': %zu of %zu bytes differ from pattern %llu; first at %zu: %u, expected %u\n",
                    name, bad, n, seed, first, p[first], (uint8_t)(first * 31u + (unsigned)seed));
            rc = 1;
        } else {
            fprintf(stderr, "tool_shm (C): '%s': all %zu bytes match pattern %llu\n", name, n, seed);
        }
    } else if (strcmp(cmd, "read") == 0) {
        uint32_t h = 0x811c9dc5u;
        for (size_t i = 0; i < n; i++) {
            h ^= p[i];
            h *= 0x01000193u;
        }
        printf("%zu %08x\n", n, h);
    } else { /* hold */
        printf("holding %s\n", name);
        fflush(stdout);
        struct timespec t = {(time_t)secs, 0};
        while (nanosleep(&t, &t) != 0 && errno == EINTR) {
        }
    }
    mpx_shm_close(shm);
    return rc;
}
