/* testutil.h: helpers shared by the C (and C++) test programs. Header-only: the Makefile compiles
 * every test alone.
 *
 * Checks print one line each ("ok" / "FAIL" with file:line) and count into t_passed/t_failed;
 * t_finish() prints "<prog>: N passed, M failed" and returns the exit code. Names made with
 * t_name() are recorded and removed by t_cleanup() (also registered with atexit), so a test
 * leaves nothing in /dev/shm even when it stops early. Children are reaped with a bounded wait.
 */
#ifndef MPX_TESTUTIL_H
#define MPX_TESTUTIL_H

#include <mpx.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int t_passed = 0;
static int t_failed = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            t_passed++;                                                    \
            printf("ok    ");                                              \
        } else {                                                           \
            t_failed++;                                                    \
            printf("FAIL  %s:%d: (%s) ", __FILE__, __LINE__, #cond);       \
        }                                                                  \
        printf(__VA_ARGS__);                                               \
        printf("\n");                                                      \
        fflush(stdout);                                                    \
    } while (0)

/* The call returns `want`; for an error, mpx_last_error() is non-empty and contains `needle`
 * (pass "" to only require a message). */
#define CHECK_STATUS(call, want, needle, desc)                                               \
    do {                                                                                     \
        mpx_status t_st_ = (call);                                                           \
        const char *t_msg_ = mpx_last_error();                                               \
        int t_ok_ = t_st_ == (want);                                                         \
        if ((want) != MPX_OK)                                                                \
            t_ok_ = t_ok_ && t_msg_ && t_msg_[0] && strstr(t_msg_, (needle)) != NULL;        \
        if (t_ok_) {                                                                         \
            t_passed++;                                                                      \
            printf("ok    %s -> %s", (desc), mpx_status_name(t_st_));                        \
            if ((want) != MPX_OK) printf(" (\"%s\")", t_msg_);                               \
            printf("\n");                                                                    \
        } else {                                                                             \
            t_failed++;                                                                      \
            printf("FAIL  %s:%d: %s -> %s, wanted %s with a message containing \"%s\"; "     \
                   "last error: \"%s\"\n",                                                   \
                   __FILE__, __LINE__, (desc), mpx_status_name(t_st_), mpx_status_name(want), \
                   (needle), t_msg_ ? t_msg_ : "(null)");                                    \
        }                                                                                    \
        fflush(stdout);                                                                      \
    } while (0)

/* Aborts the test program (after cleanup) when a precondition for the following checks fails. */
#define REQUIRE(cond, ...)                                                     \
    do {                                                                       \
        if (!(cond)) {                                                         \
            t_failed++;                                                        \
            printf("FAIL  %s:%d: required (%s): ", __FILE__, __LINE__, #cond); \
            printf(__VA_ARGS__);                                               \
            printf(" [last error: %s]\n", mpx_last_error());                   \
            printf("%s: %d passed, %d failed\n", t_prog, t_passed, t_failed);  \
            fflush(stdout);                                                    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static const char *t_prog = "test";

/* ---- names ---------------------------------------------------------------------------- */

#define T_MAX_NAMES 256
static char t_names[T_MAX_NAMES][64];
static int t_name_count = 0;
static pid_t t_owner_pid = 0;

/* Removes every name this program made (ignoring those already gone). Only the process that
 * made them does it, so a forked child exiting does not remove the parent's objects. */
static inline void t_cleanup(void) {
    if (getpid() != t_owner_pid) return;
    for (int i = 0; i < t_name_count; i++) mpx_shm_unlink(t_names[i]);
    t_name_count = 0;
}

static inline void t_init(const char *prog) {
    t_prog = prog;
    t_owner_pid = getpid();
    setvbuf(stdout, NULL, _IOLBF, 0);
    atexit(t_cleanup);
}

/* A fresh name unique to this process, "t-<prog>-<pid>-<n>-<tag>", recorded for cleanup. */
static inline const char *t_name(const char *tag) {
    if (t_name_count >= T_MAX_NAMES) {
        fprintf(stderr, "t_name: too many names\n");
        exit(2);
    }
    char *n = t_names[t_name_count];
    snprintf(n, sizeof t_names[0], "t-%s-%d-%d-%s", t_prog, (int)getpid(), t_name_count, tag);
    t_name_count++;
    return n;
}

/* /dev/shm/mpx.<name> */
static inline void t_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "/dev/shm/mpx.%s", name); }

static inline int t_exists(const char *name) {
    char p[300];
    t_path(p, sizeof p, name);
    struct stat st;
    return lstat(p, &st) == 0;
}

static inline int t_finish(void) {
    t_cleanup();
    printf("%s: %d passed, %d failed\n", t_prog, t_passed, t_failed);
    fflush(stdout);
    return t_failed == 0 ? 0 : 1;
}

/* ---- processes ------------------------------------------------------------------------ */

/* Waits for `pid` at most `seconds`; kills it (SIGKILL) and reaps it if it is still running.
 * Returns the wait status, or -1 if it had to be killed (a hang is a failure). */
static inline int t_wait(pid_t pid, double seconds) {
    struct timespec nap = {0, 2 * 1000 * 1000};
    long rounds = (long)(seconds * 500.0);
    for (long i = 0; i <= rounds; i++) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0 && errno != EINTR) return -1;
        nanosleep(&nap, NULL);
    }
    kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    fprintf(stderr, "t_wait: child %d did not finish in %.1f s: killed\n", (int)pid, seconds);
    return -1;
}

/* read() of exactly one byte that gives up after `seconds`; 1 on success, 0 on EOF, timeout or
 * error (so a child that hangs instead of signalling cannot hang the test). */
static inline int t_read1(int fd, char *c, int seconds) {
    struct pollfd p = {fd, POLLIN, 0};
    int r;
    while ((r = poll(&p, 1, seconds * 1000)) < 0 && errno == EINTR) {
    }
    if (r != 1) return 0;
    return read(fd, c, 1) == 1;
}

/* Whether a wait status is a normal exit with code `code`. */
static inline int t_exited(int status, int code) { return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code; }

/* Whether a wait status is death by signal `sig`. */
static inline int t_signaled(int status, int sig) { return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == sig; }

/* ---- data patterns -------------------------------------------------------------------- */

/* The test pattern: byte i = (i * 31 + seed) mod 256 (tool_shm documents the same one). */
static inline void t_fill(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 31u + seed);
}

/* Index of the first byte that differs from the pattern, or (size_t)-1 if all match. */
static inline size_t t_mismatch(const uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(i * 31u + seed)) return i;
    return (size_t)-1;
}

/* FNV-1a 32 continuing from `h` (start with 0x811c9dc5). */
static inline uint32_t t_fnv1a(uint32_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x01000193u;
    }
    return h;
}

/* ---- segment header patching (layout version 1, see src/object/header.rs) -------------- */

enum {
    T_OFF_MAGIC = 0,
    T_OFF_VERSION = 8,
    T_OFF_KIND = 12,
    T_OFF_FLAGS = 16,
    T_OFF_HEADER_SIZE = 20,
    T_OFF_TOTAL_SIZE = 24,
    T_OFF_DATA_OFFSET = 32,
    T_OFF_DATA_SIZE = 40,
    T_OFF_CREATOR_PID = 48,
    T_OFF_NAME_LEN = 52,
    T_OFF_CHECKSUM = 96,
    T_OFF_READY = 100,
    T_OFF_NAME = 128,
    T_HEADER_SIZE = 512
};

/* Reads the 512-byte header of /dev/shm/mpx.<name>; 0 on success. */
static inline int t_read_header(const char *name, uint8_t *h) {
    char p[300];
    t_path(p, sizeof p, name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = pread(fd, h, T_HEADER_SIZE, 0);
    close(fd);
    return n == T_HEADER_SIZE ? 0 : -1;
}

static inline int t_write_header(const char *name, const uint8_t *h) {
    char p[300];
    t_path(p, sizeof p, name);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = pwrite(fd, h, T_HEADER_SIZE, 0);
    close(fd);
    return n == T_HEADER_SIZE ? 0 : -1;
}

/* Little-endian field access (the header is native-endian; this machine is little-endian). */
static inline uint32_t t_get32(const uint8_t *h, int off) {
    uint32_t v;
    memcpy(&v, h + off, 4);
    return v;
}
static inline uint64_t t_get64(const uint8_t *h, int off) {
    uint64_t v;
    memcpy(&v, h + off, 8);
    return v;
}
static inline void t_put32(uint8_t *h, int off, uint32_t v) { memcpy(h + off, &v, 4); }
static inline void t_put64(uint8_t *h, int off, uint64_t v) { memcpy(h + off, &v, 8); }

/* The checksum the library expects: FNV-1a 32 over bytes [0,96) then the name's bytes. */
static inline uint32_t t_header_checksum(const uint8_t *h) {
    uint32_t len = t_get32(h, T_OFF_NAME_LEN);
    if (len > 200) len = 200;
    uint32_t sum = t_fnv1a(0x811c9dc5u, h, 96);
    return t_fnv1a(sum, h + T_OFF_NAME, len);
}

static inline void t_fix_checksum(uint8_t *h) { t_put32(h, T_OFF_CHECKSUM, t_header_checksum(h)); }

/* Patches a u32 (width 4) or u64 (width 8) field of a segment's header, optionally recomputing
 * the checksum so that only the patched field is wrong. 0 on success. */
static inline int t_patch(const char *name, int off, int width, uint64_t value, int fix_checksum) {
    uint8_t h[T_HEADER_SIZE];
    if (t_read_header(name, h) != 0) return -1;
    if (width == 4)
        t_put32(h, off, (uint32_t)value);
    else
        t_put64(h, off, value);
    if (fix_checksum) t_fix_checksum(h);
    return t_write_header(name, h);
}

/* Truncates /dev/shm/mpx.<name> to `size` bytes. 0 on success. */
static inline int t_truncate(const char *name, off_t size) {
    char p[300];
    t_path(p, sizeof p, name);
    return truncate(p, size);
}

#endif /* MPX_TESTUTIL_H */
