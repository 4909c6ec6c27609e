/* tool_util.h: what the C test tools (tests/c/tool_*.c) share: the error exit, strict argument
 * parsing, the byte pattern and the FNV-1a checksum the cross-language tests agree on.
 * Header-only; each tool defines TOOL_NAME (e.g. "tool_shm (C)") before including it. */
#ifndef MPX_TOOL_UTIL_H
#define MPX_TOOL_UTIL_H

#include <mpx.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef TOOL_NAME
#error "define TOOL_NAME before including tool_util.h"
#endif

/* Reports a failed mpx call; the exit code is 100 + (-status) (104 timeout, 115 auth, ...). */
static inline int fail(const char *what, mpx_status st) {
    fprintf(stderr, TOOL_NAME ": %s: %s: %s\n", what, mpx_status_name(st), mpx_last_error());
    return 100 - st;
}

/* Parses a decimal number in [0, max] (no sign, nothing after it); 0 on success. */
static inline int number(const char *s, unsigned long long max, unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max) {
        fprintf(stderr, TOOL_NAME ": '%s' is not a number in 0..%llu\n", s, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* Byte i of the test pattern with `seed`: (i * 31 + seed) mod 256. */
static inline void fill(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 31u + seed);
}

/* 32-bit FNV-1a of n bytes. */
static inline uint32_t fnv1a(const uint8_t *p, size_t n) {
    uint32_t h = 0x811c9dc5u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x01000193u;
    }
    return h;
}

#endif
