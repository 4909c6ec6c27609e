/* contract.h: the runner behind the generated C ABI contract test (gen_contract.py writes
 * build/tests/c/contract/test_contract.c, which includes this file; docs/C-API.md, "How the
 * contract is checked").
 *
 * Every check runs in its own forked child under alarm(CT_ALARM_S), so a crash or a call that
 * blocks is reported as a failure of that function instead of ending or hanging the run. The
 * child sends its result (status, last error, out-parameters written on failure) back through a
 * pipe; the parent prints one line per check in table order, removes what a check left in
 * /dev/shm and ends with "test_contract: N functions covered of M exported, K checks, F failures".
 */
#ifndef MPX_CONTRACT_H
#define MPX_CONTRACT_H

#include "testutil.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#define CT_ALARM_S 5       /* a check that has not returned by then is "blocked" */
#define CT_BACKUP_S 15     /* the parent's own limit, should the alarm not end the child */
#define CT_PARALLEL 8      /* checks in flight: most of a run's time is blocked checks sleeping */
#define CT_N 256           /* elements of every out-buffer the generated calls pass */
#define CT_SENTINEL 0xA5   /* out-parameters are filled with this before a call */

enum ct_expect {
    CT_INVALID, /* returns MPX_E_INVALID with a message, writes no out-parameter */
    CT_USABLE,  /* plausible arguments: anything but MPX_E_INVALID / MPX_E_PANIC */
    CT_VALUE,   /* a non-status function returns its documented value for NULL */
    CT_NOCRASH, /* a void function returns */
    CT_SMOKE    /* a function without pointer arguments: the generated expression holds */
};

/* Which argument pattern a run uses; -1 for none. */
struct ct_pat {
    int null_idx;      /* this parameter is NULL */
    int zero_idx;      /* this length parameter is 0 */
    int elem_null;     /* the handle array's element is NULL */
    int timeout_set;   /* the timeout parameter is `timeout` (else the plausible 0) */
    int64_t timeout;
};

/* What a child reports. Small enough to go through a pipe in one atomic write. */
struct ct_res {
    int done;
    int has_status;
    int32_t status;
    int ok;            /* CT_VALUE / CT_SMOKE verdict */
    int written;       /* an out-parameter changed although the call failed */
    char note[200];
    char msg[160];     /* mpx_last_error() after the call */
};

typedef void (*ct_run_fn)(const struct ct_pat *, struct ct_res *);

struct ct_check {
    const char *fn;
    const char *pattern;
    ct_run_fn run;
    struct ct_pat pat;
    enum ct_expect expect;
    int must_fail; /* a runner self-test: broken on purpose, so it must be judged a failure */
};

#define CT_NUL(i) (p->null_idx == (i))
#define CT_ZERO(i) (p->zero_idx == (i))

/* Names for this check: the argument name (must not exist after a failed call) and factory
 * names (named objects a factory makes; removed by the parent, never reported). */
static char ct_prefix[64];
static char ct_arg_name[80];
static int ct_fac_count = 0;
static char ct_fac_names[8][96];

static inline const char *ct_fac_name(void) {
    int i = ct_fac_count++ & 7;
    snprintf(ct_fac_names[i], sizeof ct_fac_names[0], "%sf%d", ct_prefix, i);
    return ct_fac_names[i];
}

/* Input data the generated calls pass; all of it is valid for every function that reads it. */
static const uint8_t ct_bytes[64] = "contract-bytes-contract-bytes-contract-bytes-contract-bytes";
static const int ct_fds[1] = {1};
static const int ct_cpus[1] = {0};
static const size_t ct_lens[2] = {4, 4};

/* The other ends of factory-made connections stay open, so a receive has something to wait on. */
static mpx_conn *ct_peers[16];
static int ct_npeers = 0;
static inline void ct_keep(mpx_conn *c) {
    if (ct_npeers < 16) ct_peers[ct_npeers++] = c;
}

static inline void ct_note(struct ct_res *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void ct_note(struct ct_res *r, const char *fmt, ...) {
    size_t used = strlen(r->note);
    if (used + 1 >= sizeof r->note) return;
    if (used) {
        r->note[used++] = ';';
        r->note[used++] = ' ';
        r->note[used] = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->note + used, sizeof r->note - used, fmt, ap);
    va_end(ap);
}

static inline void ct_status(struct ct_res *r, mpx_status st) {
    r->has_status = 1;
    r->status = st;
    const char *m = mpx_last_error();
    snprintf(r->msg, sizeof r->msg, "%s", m ? m : "(null)");
}

/* A failure in the contract's sense: out-parameters must be as they were. BUFFER_TOO_SMALL
 * documents the needed length it writes; OWNER_DIED is an acquire that succeeded. */
static inline int ct_failed(mpx_status st) {
    return st != MPX_OK && st != MPX_E_BUFFER_TOO_SMALL && st != MPX_E_OWNER_DIED;
}

static inline int ct_untouched(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != CT_SENTINEL) return 0;
    return 1;
}

static inline void ct_written(struct ct_res *r, const char *param) {
    r->written = 1;
    ct_note(r, "out-parameter `%s` written although the call failed", param);
}

/* Factory helper: a made handle or a note saying why there is none. */
#define CT_MADE(what, st, h)                                                                     \
    do {                                                                                         \
        if ((st) != MPX_OK || !(h)) {                                                            \
            ct_note(r, "factory %s failed: %s (%s)", (what), mpx_status_name(st), mpx_last_error()); \
            return NULL;                                                                         \
        }                                                                                        \
    } while (0)

/* A setup step of a generated check that must succeed. */
#define CT_SETUP(cond, what)                                             \
    do {                                                                 \
        if (!(cond)) {                                                   \
            ct_note(r, "setup failed: %s (%s)", (what), mpx_last_error()); \
            return;                                                      \
        }                                                                \
    } while (0)

/* The child of the process factory: waits to be killed (daemonic, so it dies with the check). */
static int ct_child_pause(void *user) {
    (void)user;
    for (;;) pause();
    return 0;
}

/* A plain child for mpx_process_adopt: dies with the check, or after 20 s at the latest. */
static inline pid_t ct_fork_pause(void) {
    pid_t kid = fork();
    if (kid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(20);
        for (;;) pause();
    }
    return kid;
}

static int ct_entry_noop(const uint8_t *arg, size_t len, void *user) {
    (void)arg;
    (void)len;
    (void)user;
    return 0;
}

static const char *ct_signame(int sig) {
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGABRT: return "SIGABRT";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTRAP: return "SIGTRAP";
    default: return "a signal";
    }
}

/* Removes every /dev/shm/mpx.<prefix>* ; returns how many matched `flag` (a sub-prefix) and
 * puts the first such name in `first`. */
static int ct_sweep(const char *prefix, const char *flag, char *first, size_t cap) {
    char pre[128], fl[128];
    snprintf(pre, sizeof pre, "mpx.%s", prefix);
    snprintf(fl, sizeof fl, "mpx.%s", flag ? flag : "");
    int flagged = 0;
    DIR *d = opendir("/dev/shm");
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, pre, strlen(pre)) != 0) continue;
        if (flag && strncmp(e->d_name, fl, strlen(fl)) == 0) {
            if (flagged++ == 0 && first) snprintf(first, cap, "/dev/shm/%s", e->d_name);
        }
        char path[400];
        snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
        unlink(path);
    }
    closedir(d);
    return flagged;
}

struct ct_slot {
    pid_t pid;
    int fd;
    struct timespec start;
};

static double ct_elapsed(const struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static const char *ct_expect_text(enum ct_expect e) {
    switch (e) {
    case CT_INVALID: return "wanted MPX_E_INVALID";
    case CT_USABLE: return "wanted anything but MPX_E_INVALID / MPX_E_PANIC";
    case CT_VALUE: return "wanted the documented value";
    case CT_NOCRASH: return "wanted a return";
    case CT_SMOKE: return "wanted the expression to hold";
    }
    return "";
}

/* Appends to a line, truncating. */
static void ct_put(char *line, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void ct_put(char *line, size_t cap, const char *fmt, ...) {
    size_t u = strlen(line);
    if (u + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + u, cap - u, fmt, ap);
    va_end(ap);
}

/* Judges one finished check and formats its line into `line`; returns 1 if it passed. */
static int ct_judge(const struct ct_check *c, int wstatus, int killed, const struct ct_res *r, int got, char *line,
                    size_t cap) {
    char what[512] = "";
    int ok = 0;
    if (killed) {
        snprintf(what, sizeof what, "blocked (killed by the runner after %d s)", CT_BACKUP_S);
    } else if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGALRM) {
        snprintf(what, sizeof what, "blocked (timeout: no return within %d s)", CT_ALARM_S);
    } else if (WIFSIGNALED(wstatus)) {
        snprintf(what, sizeof what, "killed by %s (%d)", ct_signame(WTERMSIG(wstatus)), WTERMSIG(wstatus));
    } else if (!got || !r->done) {
        snprintf(what, sizeof what, "the check ended without a result (exit code %d)%s%s",
                 WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1, got && r->note[0] ? ": " : "",
                 got ? r->note : "");
    } else {
        switch (c->expect) {
        case CT_INVALID:
            ok = r->has_status && r->status == MPX_E_INVALID && !r->written && r->msg[0];
            if (r->has_status && r->status == MPX_E_INVALID && !r->msg[0])
                snprintf(what, sizeof what, "MPX_E_INVALID but mpx_last_error() is empty");
            else
                snprintf(what, sizeof what, "%s%s", r->has_status ? mpx_status_name(r->status) : "no status",
                         r->written ? " but wrote an out-parameter" : "");
            break;
        case CT_USABLE:
            ok = r->has_status && r->status != MPX_E_INVALID && r->status != MPX_E_PANIC && !r->written;
            snprintf(what, sizeof what, "%s", r->has_status ? mpx_status_name(r->status) : "no status");
            break;
        case CT_VALUE:
        case CT_SMOKE:
            ok = r->ok;
            snprintf(what, sizeof what, "%s", r->ok ? "as documented" : "not as documented");
            break;
        case CT_NOCRASH:
            ok = 1;
            snprintf(what, sizeof what, "returned");
            break;
        }
    }
    /* A failed call must not leave the object it was asked to create. */
    char left[300] = "";
    int nleft = ct_sweep(ct_prefix, ct_arg_name, left, sizeof left);
    if (nleft && c->expect != CT_USABLE) {
        ok = 0;
        size_t u = strlen(what);
        snprintf(what + u, sizeof what - u, "; left %s behind", left);
    }
    line[0] = 0;
    if (ok) {
        ct_put(line, cap, "ok    %s(%s) -> %s", c->fn, c->pattern, what);
        if (got && r->has_status && r->status != MPX_OK && r->msg[0]) ct_put(line, cap, " (\"%s\")", r->msg);
        if (got && r->note[0]) ct_put(line, cap, " [%s]", r->note);
    } else {
        ct_put(line, cap, "FAIL  %s(%s) -> %s, %s", c->fn, c->pattern, what, ct_expect_text(c->expect));
        if (got && r->done && r->has_status && r->msg[0]) ct_put(line, cap, " (last error: \"%s\")", r->msg);
        if (got && r->done && r->note[0]) ct_put(line, cap, " [%s]", r->note);
    }
    return ok;
}

static void ct_set_names(int idx) {
    snprintf(ct_prefix, sizeof ct_prefix, "ct-%d-%d-", (int)getpid(), idx);
    snprintf(ct_arg_name, sizeof ct_arg_name, "%sa", ct_prefix);
    ct_fac_count = 0;
}

/* Runs one check in a child; the parent keeps the pipe. */
static int ct_launch(const struct ct_check *c, int idx, struct ct_slot *s) {
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
    ct_set_names(idx);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        close(pfd[0]);
        alarm(CT_ALARM_S);
        struct ct_res r;
        memset(&r, 0, sizeof r);
        c->run(&c->pat, &r);
        r.done = 1;
        ssize_t n = write(pfd[1], &r, sizeof r);
        _exit(n == (ssize_t)sizeof r ? 0 : 3);
    }
    close(pfd[1]);
    s->pid = pid;
    s->fd = pfd[0];
    clock_gettime(CLOCK_MONOTONIC, &s->start);
    return 0;
}

/* ---- runner self-tests: checks broken on purpose, each of which must be judged a failure ---- */

static void ct_self_crash(const struct ct_pat *p, struct ct_res *r) {
    (void)p;
    (void)r;
    raise(SIGSEGV);
}
static void ct_self_block(const struct ct_pat *p, struct ct_res *r) {
    (void)p;
    (void)r;
    for (;;) pause();
}
static void ct_self_wrong_status(const struct ct_pat *p, struct ct_res *r) {
    (void)p;
    ct_status(r, MPX_OK);
}
static void ct_self_no_message(const struct ct_pat *p, struct ct_res *r) {
    (void)p;
    r->has_status = 1;
    r->status = MPX_E_INVALID;
    r->msg[0] = 0;
}
static void ct_self_written(const struct ct_pat *p, struct ct_res *r) {
    (void)p;
    size_t out[2];
    memset(out, CT_SENTINEL, sizeof out);
    out[0] = 7; /* a "failed" call that wrote its result anyway */
    ct_status(r, mpx_shm_open(NULL, 0, NULL));
    if (ct_failed(r->status) && !ct_untouched(out, sizeof out)) ct_written(r, "out");
}
static void ct_self_leaves_object(const struct ct_pat *p, struct ct_res *r) {
    (void)p;
    mpx_shm *h = NULL;
    mpx_shm_create(ct_arg_name, 4096, 0, &h); /* a "failed" call that made its object anyway */
    ct_status(r, mpx_shm_open(NULL, 0, NULL));
}
static void ct_self_exits(const struct ct_pat *p, struct ct_res *r) {
    (void)p;
    (void)r;
    _exit(7);
}
static void ct_self_value(const struct ct_pat *p, struct ct_res *r) {
    (void)p;
    r->ok = 0;
    ct_note(r, "returned 1, documented 0");
}

#define CT_SELF(name, fn, expect) {"runner self-test", name, fn, {-1, -1, 0, 0, 0}, expect, 1}
static const struct ct_check ct_self_tests[] = {
    CT_SELF("a crash", ct_self_crash, CT_INVALID),
    CT_SELF("a call that blocks", ct_self_block, CT_INVALID),
    CT_SELF("MPX_OK where MPX_E_INVALID is due", ct_self_wrong_status, CT_INVALID),
    CT_SELF("MPX_E_INVALID without a message", ct_self_no_message, CT_INVALID),
    CT_SELF("an out-parameter written on failure", ct_self_written, CT_INVALID),
    CT_SELF("an object left by a failed call", ct_self_leaves_object, CT_INVALID),
    CT_SELF("an exit from inside the call", ct_self_exits, CT_INVALID),
    CT_SELF("a wrong value for NULL", ct_self_value, CT_VALUE),
};
#define CT_NSELF ((int)(sizeof ct_self_tests / sizeof ct_self_tests[0]))

/* Runs the self-tests and every check (CT_PARALLEL at a time), prints one line per check in
 * table order, and returns the exit code. */
static int ct_main(const struct ct_check *table, int ntable, const char *const *exported, int n_exported) {
    int n = CT_NSELF + ntable;
    struct ct_check *checks = calloc((size_t)n, sizeof *checks);
    struct ct_slot *slots = calloc((size_t)n, sizeof *slots);
    int *wst = calloc((size_t)n, sizeof *wst);
    int *killed = calloc((size_t)n, sizeof *killed);
    int *got = calloc((size_t)n, sizeof *got);
    int *state = calloc((size_t)n, sizeof *state); /* 0 waiting, 1 running, 2 done, 3 printed */
    struct ct_res *res = calloc((size_t)n, sizeof *res);
    if (!checks || !slots || !wst || !killed || !got || !state || !res) return 2;
    memcpy(checks, ct_self_tests, sizeof ct_self_tests);
    memcpy(checks + CT_NSELF, table, (size_t)ntable * sizeof *table);
    int next = 0, running = 0, printed = 0, failures = 0, self_failures = 0;
    struct timespec nap = {0, 1000 * 1000};
    while (printed < n) {
        while (running < CT_PARALLEL && next < n) {
            if (ct_launch(&checks[next], next, &slots[next]) != 0) {
                fprintf(stderr, "test_contract: cannot start check %d: %s\n", next, strerror(errno));
                return 2;
            }
            state[next++] = 1;
            running++;
        }
        int status = 0;
        pid_t w = waitpid(-1, &status, WNOHANG);
        if (w > 0) {
            for (int i = 0; i < next; i++) {
                if (state[i] != 1 || slots[i].pid != w) continue;
                wst[i] = status;
                got[i] = read(slots[i].fd, &res[i], sizeof res[i]) == (ssize_t)sizeof res[i];
                close(slots[i].fd);
                state[i] = 2;
                running--;
                break;
            }
        } else {
            for (int i = 0; i < next; i++) {
                if (state[i] == 1 && !killed[i] && ct_elapsed(&slots[i].start) > CT_BACKUP_S) {
                    kill(slots[i].pid, SIGKILL);
                    killed[i] = 1;
                }
            }
            nanosleep(&nap, NULL);
        }
        while (printed < n && state[printed] == 2) {
            const struct ct_check *c = &checks[printed];
            char line[1024];
            ct_set_names(printed);
            int ok = ct_judge(c, wst[printed], killed[printed], &res[printed], got[printed], line, sizeof line);
            if (c->must_fail) {
                /* The line a real failure of this kind would print, after the verdict. */
                if (ok) self_failures++;
                const char *what = strstr(line, " -> ");
                printf("%s  %s: %s is judged a failure (%s)\n", ok ? "FAIL" : "ok  ", c->fn, c->pattern,
                       what ? what + 4 : line);
            } else {
                if (!ok) failures++;
                printf("%s\n", line);
            }
            fflush(stdout);
            state[printed++] = 3;
        }
    }
    int covered = 0;
    for (int f = 0; f < n_exported; f++) {
        int found = 0;
        for (int i = CT_NSELF; i < n && !found; i++) found = strcmp(checks[i].fn, exported[f]) == 0;
        if (found)
            covered++;
        else
            printf("FAIL  %s: exported but no check covers it\n", exported[f]);
    }
    /* Anything a factory or a check left under this run's names. */
    char pre[64];
    snprintf(pre, sizeof pre, "ct-%d-", (int)getpid());
    ct_sweep(pre, NULL, NULL, 0);
    if (self_failures) printf("test_contract: %d runner self-tests FAILED: the results below cannot be trusted\n",
                              self_failures);
    printf("test_contract: %d functions covered of %d exported, %d checks, %d failures\n", covered, n_exported, ntable,
           failures + self_failures);
    fflush(stdout);
    return failures == 0 && self_failures == 0 && covered == n_exported ? 0 : 1;
}

#endif /* MPX_CONTRACT_H */
