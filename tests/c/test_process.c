/* Processes from C: spawn, fork with a callback, entry points by fork/spawn/forkserver, exit
 * codes, join timeouts, signals, sentinels, daemons, identity and bad input. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mpx.h"

static int passed, failed;
#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            passed++;                                                                \
        } else {                                                                     \
            failed++;                                                                \
            fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, mpx_last_error());                                        \
        }                                                                            \
    } while (0)
#define SECOND 1000000000LL

static int entry_len(const uint8_t *arg, size_t len, void *user) {
    (void)arg;
    (void)user;
    return (int)(len & 0xff);
}

static int entry_sum(const uint8_t *arg, size_t len, void *user) {
    int s = *(int *)user; /* user pointer survives fork and is re-registered after exec */
    for (size_t i = 0; i < len; i++) s += arg[i];
    return s & 0xff;
}

static int entry_name(const uint8_t *arg, size_t len, void *user) {
    (void)user;
    char buf[64];
    size_t n = 0;
    if (mpx_current_name(buf, sizeof buf, &n) != MPX_OK) return 2;
    return n == len && memcmp(buf, arg, len) == 0 ? 0 : 1;
}

static int entry_sleep(const uint8_t *arg, size_t len, void *user) {
    (void)arg;
    (void)len;
    (void)user;
    sleep(30);
    return 0;
}

/* arg "IN OUT": reads one byte from descriptor IN, writes it plus one to OUT. Both must be kept
 * at those numbers and not close-on-exec. */
static int entry_relay(const uint8_t *arg, size_t len, void *user) {
    (void)user;
    char text[32];
    int in = -1, out = -1;
    if (len >= sizeof text) return 2;
    memcpy(text, arg, len);
    text[len] = 0;
    if (sscanf(text, "%d %d", &in, &out) != 2) return 2;
    if (fcntl(in, F_GETFD) != 0 || fcntl(out, F_GETFD) != 0) return 3;
    struct pollfd pf = {.fd = in, .events = POLLIN};
    unsigned char c = 0;
    if (poll(&pf, 1, 20000) != 1 || read(in, &c, 1) != 1) return 4;
    c++;
    return write(out, &c, 1) == 1 ? 0 : 5;
}

static int child_fn(void *user) { return *(int *)user + 1; }

static int crash_fn(void *user) {
    (void)user;
    raise(SIGSEGV);
    return 0;
}

static int is_dead(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'Z';
}

static void test_spawn(void) {
    mpx_process *p = NULL;
    int code = -999;
    const char *argv_exit[] = {"sh", "-c", "exit 7", NULL};
    CHECK(mpx_spawn("sh", argv_exit, NULL, &p) == MPX_OK);
    CHECK(mpx_process_join(p, 10 * SECOND, &code) == MPX_OK && code == 7);
    mpx_process_close(p);

    const char *argv_sleep[] = {"sleep", "30", NULL};
    CHECK(mpx_spawn("sleep", argv_sleep, NULL, &p) == MPX_OK);
    CHECK(mpx_process_join(p, 20 * 1000000LL, &code) == MPX_E_TIMEOUT);
    bool alive = false, finished = true;
    CHECK(mpx_process_is_alive(p, &alive) == MPX_OK && alive);
    CHECK(mpx_process_exitcode(p, &finished, &code) == MPX_OK && !finished);
    int fd = -1;
    CHECK(mpx_process_sentinel(p, &fd) == MPX_OK && fd >= 0);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pfd, 1, 0) == 0);
    CHECK(mpx_process_terminate(p) == MPX_OK);
    CHECK(poll(&pfd, 1, 10000) == 1);
    CHECK(mpx_process_join(p, MPX_FOREVER, &code) == MPX_OK && code == -SIGTERM);
    CHECK(mpx_process_exitcode(p, &finished, &code) == MPX_OK && finished && code == -SIGTERM);
    mpx_process_close(p);

    CHECK(mpx_spawn("sleep", argv_sleep, NULL, &p) == MPX_OK);
    CHECK(mpx_process_kill(p) == MPX_OK);
    CHECK(mpx_process_join(p, 10 * SECOND, &code) == MPX_OK && code == -SIGKILL);
    mpx_process_close(p);

    /* Options: environment, cwd, stdout to a file. */
    mpx_proc_opts *o = NULL;
    CHECK(mpx_proc_opts_new(&o) == MPX_OK);
    CHECK(mpx_proc_opts_setenv(o, "MPX_C_VAR", "hello") == MPX_OK);
    CHECK(mpx_proc_opts_set_cwd(o, "/tmp") == MPX_OK);
    char out[128];
    snprintf(out, sizeof out, "/tmp/mpx-test-process-%d.txt", (int)getpid());
    CHECK(mpx_proc_opts_set_stdio_file(o, 1, out, false) == MPX_OK);
    const char *argv_env[] = {"sh", "-c", "printf '%s %s' \"$MPX_C_VAR\" \"$(pwd)\"", NULL};
    CHECK(mpx_spawn("sh", argv_env, o, &p) == MPX_OK);
    CHECK(mpx_process_join(p, 10 * SECOND, &code) == MPX_OK && code == 0);
    mpx_process_close(p);
    mpx_proc_opts_free(o);
    FILE *f = fopen(out, "r");
    char got[128] = {0};
    if (f) {
        size_t n = fread(got, 1, sizeof got - 1, f);
        got[n] = 0;
        fclose(f);
    }
    CHECK(strcmp(got, "hello /tmp") == 0);
    unlink(out);
}

static void test_fork(void) {
    mpx_process *p = NULL;
    int code = -1, base = 41;
    CHECK(mpx_fork(child_fn, &base, NULL, &p) == MPX_OK);
    CHECK(mpx_process_pid(p) > 0);
    CHECK(mpx_process_join(p, 10 * SECOND, &code) == MPX_OK && code == 42);
    mpx_process_close(p);
    CHECK(mpx_fork(crash_fn, NULL, NULL, &p) == MPX_OK);
    CHECK(mpx_process_join(p, 10 * SECOND, &code) == MPX_OK && code == -SIGSEGV);
    mpx_process_close(p);
}

static void test_entries(void) {
    const uint32_t methods[] = {MPX_START_FORK, MPX_START_SPAWN, MPX_START_FORKSERVER};
    for (int m = 0; m < 3; m++) {
        mpx_process *p = NULL;
        int code = -1;
        uint8_t arg[5] = {1, 2, 3, 4, 5};
        CHECK(mpx_start(methods[m], "len", arg, sizeof arg, NULL, &p) == MPX_OK);
        CHECK(mpx_process_join(p, 20 * SECOND, &code) == MPX_OK && code == 5);
        mpx_process_close(p);
        CHECK(mpx_start(methods[m], "sum", arg, sizeof arg, NULL, &p) == MPX_OK);
        CHECK(mpx_process_join(p, 20 * SECOND, &code) == MPX_OK && code == 100 + 15);
        mpx_process_close(p);
        mpx_proc_opts *o = NULL;
        mpx_proc_opts_new(&o);
        mpx_proc_opts_set_name(o, "zed");
        CHECK(mpx_start(methods[m], "name", (const uint8_t *)"zed", 3, o, &p) == MPX_OK);
        CHECK(strcmp(mpx_process_name(p), "zed") == 0);
        CHECK(mpx_process_join(p, 20 * SECOND, &code) == MPX_OK && code == 0);
        mpx_process_close(p);
        mpx_proc_opts_free(o);
        CHECK(mpx_start(methods[m], "sleep", NULL, 0, NULL, &p) == MPX_OK);
        CHECK(mpx_process_join(p, 10 * 1000000LL, &code) == MPX_E_TIMEOUT);
        CHECK(mpx_process_kill(p) == MPX_OK);
        CHECK(mpx_process_join(p, 20 * SECOND, &code) == MPX_OK && code == -SIGKILL);
        mpx_process_close(p);
        CHECK(mpx_start(methods[m], "no-such-entry", NULL, 0, NULL, &p) == MPX_E_NOT_FOUND);
    }
}

/* Bad descriptors are MPX_E_INVALID, not a panic (issue 11: -1 gave MPX_E_PANIC and a
 * backtrace). */
static void test_forkserver_serve_bad_fd(void) {
    char *entry = NULL;
    uint8_t *arg = NULL;
    size_t len = 0;
    CHECK(mpx_forkserver_serve(-1, &entry, &arg, &len) == MPX_E_INVALID);
    CHECK(strstr(mpx_last_error(), "descriptor") != NULL);
    int fds[2];
    CHECK(pipe(fds) == 0);
    close(fds[0]);
    close(fds[1]);
    CHECK(mpx_forkserver_serve(fds[0], &entry, &arg, &len) == MPX_E_INVALID);
    CHECK(strstr(mpx_last_error(), "not an open descriptor") != NULL);
}

static void test_forkserver_keep_fd(void) {
    /* Two pipe ends at high numbers travel to a fork-server child and work there. */
    int to_child[2], from_child[2];
    CHECK(pipe2(to_child, O_CLOEXEC) == 0 && pipe2(from_child, O_CLOEXEC) == 0);
    int in = fcntl(to_child[0], F_DUPFD_CLOEXEC, 200), out = fcntl(from_child[1], F_DUPFD_CLOEXEC, 300);
    CHECK(in >= 200 && out >= 300);
    mpx_proc_opts *o = NULL;
    mpx_proc_opts_new(&o);
    CHECK(mpx_proc_opts_keep_fd(o, in) == MPX_OK && mpx_proc_opts_keep_fd(o, out) == MPX_OK);
    char arg[32];
    int n = snprintf(arg, sizeof arg, "%d %d", in, out);
    mpx_process *p = NULL;
    int code = -1;
    CHECK(mpx_start(MPX_START_FORKSERVER, "relay", (const uint8_t *)arg, (size_t)n, o, &p) == MPX_OK);
    unsigned char c = 41;
    CHECK(write(to_child[1], &c, 1) == 1);
    struct pollfd pf = {.fd = from_child[0], .events = POLLIN};
    CHECK(poll(&pf, 1, 20000) == 1 && read(from_child[0], &c, 1) == 1 && c == 42);
    CHECK(p && mpx_process_join(p, 20 * SECOND, &code) == MPX_OK && code == 0);
    mpx_process_close(p);
    mpx_proc_opts_free(o);
    /* More than one request carries: a clear MPX_E_INVALID, and the server serves on. */
    mpx_proc_opts_new(&o);
    int dups[254];
    for (int i = 0; i < 254; i++) {
        dups[i] = fcntl(in, F_DUPFD_CLOEXEC, 3);
        mpx_proc_opts_keep_fd(o, dups[i]);
    }
    p = NULL;
    CHECK(mpx_start(MPX_START_FORKSERVER, "relay", (const uint8_t *)arg, (size_t)n, o, &p) == MPX_E_INVALID);
    CHECK(strstr(mpx_last_error(), "at most 253") != NULL);
    CHECK(p == NULL);
    for (int i = 0; i < 254; i++) close(dups[i]);
    mpx_proc_opts_free(o);
    CHECK(mpx_start(MPX_START_FORKSERVER, "len", (const uint8_t *)"ab", 2, NULL, &p) == MPX_OK);
    CHECK(mpx_process_join(p, 20 * SECOND, &code) == MPX_OK && code == 2);
    mpx_process_close(p);
    close(in);
    close(out);
    close(to_child[0]);
    close(to_child[1]);
    close(from_child[0]);
    close(from_child[1]);
}

static void test_daemon(void) {
    /* A middle process starts a daemon child and a normal child, then is SIGKILLed: the daemon
     * must die, checked from here; the normal child survives. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t middle = fork();
    if (middle == 0) {
        mpx_proc_opts *o = NULL;
        mpx_proc_opts_new(&o);
        mpx_proc_opts_set_daemon(o, true);
        const char *argv_sleep[] = {"sleep", "60", NULL};
        mpx_process *d = NULL, *n = NULL;
        if (mpx_spawn("sleep", argv_sleep, o, &d) != MPX_OK) _exit(3);
        if (mpx_spawn("sleep", argv_sleep, NULL, &n) != MPX_OK) _exit(3);
        int pids[2] = {mpx_process_pid(d), mpx_process_pid(n)};
        if (write(fds[1], pids, sizeof pids) != sizeof pids) _exit(4);
        sleep(60);
        _exit(0);
    }
    close(fds[1]);
    int pids[2] = {0, 0};
    CHECK(read(fds[0], pids, sizeof pids) == sizeof pids);
    close(fds[0]);
    kill(middle, SIGKILL);
    waitpid(middle, NULL, 0);
    for (int i = 0; i < 1000 && !is_dead(pids[0]); i++) usleep(10000);
    CHECK(is_dead(pids[0]));
    CHECK(!is_dead(pids[1]));
    kill(pids[1], SIGKILL);
    waitpid(pids[0], NULL, 0);
    waitpid(pids[1], NULL, 0);
}

static void test_bad_input(void) {
    mpx_process *p = NULL;
    const char *argv_x[] = {"x", NULL};
    CHECK(mpx_spawn("mpx-no-such-program-xyz", argv_x, NULL, &p) == MPX_E_NOT_FOUND);
    CHECK(strstr(mpx_last_error(), "not found") != NULL);
    CHECK(p == NULL);
    CHECK(mpx_spawn("sh", NULL, NULL, &p) == MPX_E_INVALID);
    CHECK(mpx_spawn(NULL, argv_x, NULL, &p) == MPX_E_INVALID);
    CHECK(mpx_spawn("sh", argv_x, NULL, NULL) == MPX_E_INVALID);
    CHECK(mpx_fork(NULL, NULL, NULL, &p) == MPX_E_INVALID);
    CHECK(mpx_start(99, "len", NULL, 0, NULL, &p) == MPX_E_INVALID);
    CHECK(mpx_start(MPX_START_FORK, "len", NULL, 5, NULL, &p) == MPX_E_INVALID);
    CHECK(mpx_process_join(NULL, 0, NULL) == MPX_E_INVALID);
    bool b;
    int c;
    CHECK(mpx_process_is_alive(NULL, &b) == MPX_E_INVALID);
    CHECK(mpx_process_exitcode(NULL, &b, &c) == MPX_E_INVALID);
    CHECK(mpx_process_terminate(NULL) == MPX_E_INVALID);
    CHECK(mpx_process_pid(NULL) == -1);
    CHECK(mpx_process_name(NULL) == NULL);
    mpx_process_close(NULL);
    CHECK(mpx_proc_opts_set_name(NULL, "x") == MPX_E_INVALID);
    mpx_proc_opts *o = NULL;
    mpx_proc_opts_new(&o);
    CHECK(mpx_proc_opts_set_stdio(o, 5, MPX_STDIO_NULL, -1) == MPX_E_INVALID);
    CHECK(mpx_proc_opts_set_stdio(o, 1, 77, -1) == MPX_E_INVALID);
    CHECK(mpx_proc_opts_setenv(o, "A=B", "x") == MPX_E_INVALID);
    CHECK(mpx_proc_opts_keep_fd(o, -3) == MPX_E_INVALID);
    CHECK(mpx_proc_opts_set_affinity(o, NULL, 0) == MPX_E_INVALID);
    CHECK(mpx_proc_opts_set_nice(o, 100) == MPX_OK); /* validated at start: */
    CHECK(mpx_spawn("true", argv_x, o, &p) == MPX_E_INVALID);
    mpx_proc_opts_free(o);
    CHECK(mpx_process_join((mpx_process *)0, -5, NULL) == MPX_E_INVALID);
    char small[2];
    size_t need = 0;
    CHECK(mpx_current_name(small, sizeof small, &need) == MPX_E_BUFFER_TOO_SMALL && need == 11);
}

int main(int argc, char **argv) {
    static int hundred = 100;
    mpx_entry_register("len", entry_len, NULL);
    mpx_entry_register("sum", entry_sum, &hundred);
    mpx_entry_register("name", entry_name, NULL);
    mpx_entry_register("sleep", entry_sleep, NULL);
    mpx_entry_register("relay", entry_relay, NULL);
    if (mpx_init(argc, (const char *const *)argv) != MPX_OK) {
        fprintf(stderr, "mpx_init: %s\n", mpx_last_error());
        return 1;
    }
    char name[64];
    CHECK(mpx_current_name(name, sizeof name, NULL) == MPX_OK && strcmp(name, "MainProcess") == 0);
    CHECK(mpx_current_pid() == getpid());
    CHECK(mpx_parent_pid() == getppid());
    CHECK(mpx_cpu_count() >= 1);
    test_spawn();
    test_fork();
    test_entries();
    test_forkserver_serve_bad_fd();
    test_forkserver_keep_fd();
    test_daemon();
    test_bad_input();
    printf("test_process: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
