/* test_sync: the C API of Lock, RLock, Semaphore, Condition, Event and Barrier, with forked
 * processes: exact counters, owner death (and a 200-kill loop), cross-process wakeups, bad
 * input. Every wait is bounded. */
#include "testutil_sync.h"

#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* ---- Lock ----------------------------------------------------------------------------------- */

static void test_lock_basics(void) {
    const char *n = t_name("lock");
    mpx_lock *a = NULL, *b = NULL;
    REQUIRE(mpx_lock_create(n, 0, &a) == MPX_OK, "create");
    REQUIRE(mpx_lock_open(n, 0, &b) == MPX_OK, "open");
    CHECK(strcmp(mpx_lock_name(a), n) == 0, "name");
    CHECK(!mpx_lock_is_locked(a), "free at first");
    CHECK_STATUS(mpx_lock_acquire(a, MPX_FOREVER), MPX_OK, "", "acquire");
    CHECK(mpx_lock_is_locked(b) && mpx_lock_is_mine(b), "held, by us");
    CHECK_STATUS(mpx_lock_acquire(b, 0), MPX_E_TIMEOUT, "timed out", "try while held");
    double t = ts_now();
    CHECK_STATUS(mpx_lock_acquire(b, TS_MS(20)), MPX_E_TIMEOUT, n, "20 ms timeout while held");
    CHECK(ts_now() - t >= 0.019, "waited the timeout (%.1f ms)", (ts_now() - t) * 1e3);
    CHECK_STATUS(mpx_lock_release(b), MPX_OK, "", "release through another handle");
    CHECK_STATUS(mpx_lock_release(a), MPX_E_STATE, "not held", "release when not held");
    CHECK_STATUS(mpx_lock_create(n, 0, &b), MPX_E_EXISTS, "exists", "create an existing name");
    mpx_semaphore *s = NULL;
    CHECK_STATUS(mpx_semaphore_open(n, 0, &s), MPX_E_KIND, "not a semaphore", "open a lock as a semaphore");
    mpx_rlock *r = NULL;
    CHECK_STATUS(mpx_rlock_open(n, 0, &r), MPX_E_KIND, "not a rlock", "open a lock as an rlock");
    CHECK_STATUS(mpx_lock_open(n, MPX_F_READ_ONLY, &b), MPX_E_INVALID, "read-only", "open a lock read-only");
    CHECK_STATUS(mpx_lock_acquire(a, -2), MPX_E_INVALID, "negative", "timeout -2");
    CHECK_STATUS(mpx_lock_acquire(a, INT64_MIN), MPX_E_INVALID, "negative", "timeout INT64_MIN");
    int fd = -1;
    CHECK_STATUS(mpx_lock_fd(a, &fd), MPX_OK, "", "fd");
    mpx_lock *c = NULL;
    CHECK_STATUS(mpx_lock_open_fd(fd, 0, &c), MPX_OK, "", "open_fd");
    CHECK_STATUS(mpx_lock_acquire(c, 0), MPX_OK, "", "acquire through the fd handle");
    CHECK(mpx_lock_is_locked(a), "same lock");
    CHECK_STATUS(mpx_lock_release(a), MPX_OK, "", "release");
    mpx_lock_close(c);
    mpx_lock_close(b);
    CHECK_STATUS(mpx_lock_unlink(n), MPX_OK, "", "unlink");
    CHECK_STATUS(mpx_lock_unlink(n), MPX_E_NOT_FOUND, "no such object", "unlink again");
    CHECK_STATUS(mpx_lock_open(n, 0, &b), MPX_E_NOT_FOUND, "no such object", "open after unlink");
    mpx_lock_close(a);
}

static void test_null_args(void) {
    mpx_lock *l = NULL;
    CHECK_STATUS(mpx_lock_create(NULL, 0, &l), MPX_E_INVALID, "name is NULL", "lock_create(NULL name)");
    CHECK_STATUS(mpx_lock_create("x", 0, NULL), MPX_E_INVALID, "out", "lock_create(NULL out)");
    CHECK_STATUS(mpx_lock_acquire(NULL, 0), MPX_E_INVALID, "lock is NULL", "lock_acquire(NULL)");
    CHECK_STATUS(mpx_lock_release(NULL), MPX_E_INVALID, "lock is NULL", "lock_release(NULL)");
    CHECK_STATUS(mpx_rlock_acquire(NULL, 0), MPX_E_INVALID, "NULL", "rlock_acquire(NULL)");
    CHECK_STATUS(mpx_rlock_release(NULL), MPX_E_INVALID, "NULL", "rlock_release(NULL)");
    CHECK_STATUS(mpx_semaphore_acquire(NULL, 0), MPX_E_INVALID, "NULL", "semaphore_acquire(NULL)");
    CHECK_STATUS(mpx_semaphore_release(NULL), MPX_E_INVALID, "NULL", "semaphore_release(NULL)");
    CHECK_STATUS(mpx_condition_wait(NULL, 0), MPX_E_INVALID, "NULL", "condition_wait(NULL)");
    CHECK_STATUS(mpx_condition_notify(NULL, 1), MPX_E_INVALID, "NULL", "condition_notify(NULL)");
    CHECK_STATUS(mpx_event_set(NULL), MPX_E_INVALID, "NULL", "event_set(NULL)");
    CHECK_STATUS(mpx_event_wait(NULL, 0), MPX_E_INVALID, "NULL", "event_wait(NULL)");
    CHECK_STATUS(mpx_barrier_wait(NULL, 0, NULL), MPX_E_INVALID, "NULL", "barrier_wait(NULL)");
    CHECK_STATUS(mpx_barrier_abort(NULL), MPX_E_INVALID, "NULL", "barrier_abort(NULL)");
    CHECK_STATUS(mpx_lock_fd(NULL, NULL), MPX_E_INVALID, "NULL", "lock_fd(NULL, NULL)");
    CHECK_STATUS(mpx_lock_open_fd(-1, 0, &l), MPX_E_INVALID, "not a file descriptor", "lock_open_fd(-1)");
    CHECK_STATUS(mpx_lock_unlink(NULL), MPX_E_INVALID, "NULL", "lock_unlink(NULL)");
    CHECK_STATUS(mpx_lock_open("bad/name", 0, &l), MPX_E_INVALID, "not allowed", "lock_open(bad name)");
    CHECK(!mpx_lock_is_locked(NULL) && mpx_lock_name(NULL) == NULL && mpx_rlock_depth(NULL) == 0 &&
              mpx_semaphore_get_value(NULL) == 0 && !mpx_event_is_set(NULL) && mpx_barrier_parties(NULL) == 0 &&
              !mpx_barrier_is_broken(NULL),
          "getters on NULL return 0 / false / NULL");
    mpx_lock_close(NULL);
    mpx_rlock_close(NULL);
    mpx_semaphore_close(NULL);
    mpx_condition_close(NULL);
    mpx_event_close(NULL);
    mpx_barrier_close(NULL);
    CHECK(1, "close(NULL) is a no-op for every kind");
    mpx_lock *a = NULL;
    mpx_rlock *r = NULL;
    REQUIRE(mpx_lock_create_anonymous(&a) == MPX_OK && mpx_rlock_create_anonymous(&r) == MPX_OK, "anonymous locks");
    mpx_condition *c = NULL;
    CHECK_STATUS(mpx_condition_create_anonymous(a, r, &c), MPX_E_INVALID, "not both", "condition with a lock and an rlock");
    CHECK_STATUS(mpx_lock_create(t_name("flags"), 1u << 20, &l), MPX_E_INVALID, "unknown flag", "unknown flag bits");
    mpx_semaphore *s = NULL;
    CHECK_STATUS(mpx_semaphore_create_anonymous(0, 0, 1u << 20, &s), MPX_E_INVALID, "unknown flag", "semaphore: unknown flag bits");
    mpx_lock_close(a);
    mpx_rlock_close(r);
}

struct counter_arg {
    mpx_lock *lock;
    volatile int64_t *counter;
    int n;
};

static int counter_child(void *p) {
    struct counter_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        if (mpx_lock_acquire(a->lock, TS_WAIT) != MPX_OK) return 2;
        *a->counter = *a->counter + 1; /* plain read-modify-write: only the lock makes it exact */
        if (mpx_lock_release(a->lock) != MPX_OK) return 3;
    }
    return 0;
}

static void test_lock_counter(void) {
    mpx_lock *l = NULL;
    mpx_shm *m = NULL;
    REQUIRE(mpx_lock_create_anonymous(&l) == MPX_OK, "lock");
    REQUIRE(mpx_shm_create_anonymous(64, &m) == MPX_OK, "counter memory");
    struct counter_arg a = {l, (volatile int64_t *)mpx_shm_ptr(m), 200000};
    pid_t p1 = ts_fork(counter_child, &a), p2 = ts_fork(counter_child, &a);
    int s1 = t_wait(p1, 120), s2 = t_wait(p2, 120);
    CHECK(t_exited(s1, 0) && t_exited(s2, 0), "two processes x 200000 increments finished");
    CHECK(*a.counter == 400000, "counter exact: %lld", (long long)*a.counter);
    mpx_shm_close(m);
    mpx_lock_close(l);
}

static int hold_and_exit(void *p) {
    return mpx_lock_acquire((mpx_lock *)p, 0) == MPX_OK ? 0 : 1; /* exits holding it */
}

static void test_lock_owner_death(void) {
    mpx_lock *l = NULL;
    REQUIRE(mpx_lock_create_anonymous(&l) == MPX_OK, "lock");
    pid_t p = ts_fork(hold_and_exit, l);
    CHECK(t_exited(t_wait(p, 20), 0), "child took the lock and exited");
    double t = ts_now();
    CHECK_STATUS(mpx_lock_acquire(l, TS_WAIT), MPX_E_OWNER_DIED, "died holding it", "acquire after the holder died");
    CHECK(ts_now() - t < 2.0, "noticed in %.1f ms", (ts_now() - t) * 1e3);
    CHECK(mpx_lock_is_mine(l), "and the lock is held by us");
    CHECK_STATUS(mpx_lock_release(l), MPX_OK, "", "release");
    CHECK_STATUS(mpx_lock_acquire(l, 0), MPX_OK, "", "clean afterwards");
    mpx_lock_release(l);
    mpx_lock_close(l);
}

static int hold_forever(void *p) {
    mpx_lock *l = p;
    uint64_t seed = (uint64_t)getpid() * 2654435761u + 1;
    for (;;) {
        mpx_status st = mpx_lock_acquire(l, TS_WAIT);
        if (st != MPX_OK && st != MPX_E_OWNER_DIED) return 1; /* OWNER_DIED: acquired too */
        for (uint64_t i = ts_rand(&seed) % 2000; i > 0; i--) __asm__ volatile("" ::: "memory");
        mpx_lock_release(l);
    }
    return 0;
}

static void test_lock_kill_loop(void) {
    mpx_lock *l = NULL;
    REQUIRE(mpx_lock_create_anonymous(&l) == MPX_OK, "lock");
    uint64_t seed = (uint64_t)ts_now() * 1000003 + 7;
    int died = 0, failed = 0;
    double start = ts_now();
    for (int round = 0; round < 200 && ts_now() - start < 120; round++) {
        pid_t p = ts_fork(hold_forever, l);
        ts_sleep_us((long)(ts_rand(&seed) % 2000));
        kill(p, SIGKILL);
        if (round % 2 == 0) t_wait(p, 20); /* else: still an unreaped zombie while we acquire */
        mpx_status st = mpx_lock_acquire(l, TS_MS(5000));
        if (st == MPX_E_OWNER_DIED)
            died++;
        else if (st != MPX_OK)
            failed++;
        if (st == MPX_OK || st == MPX_E_OWNER_DIED) mpx_lock_release(l);
        if (round % 2 == 1) t_wait(p, 20);
    }
    CHECK(failed == 0, "200 kills of a lock holder: every acquire succeeded (%d owner deaths, %.2f s)", died, ts_now() - start);
    CHECK(died > 0, "owner death was reported (%d times)", died);
    CHECK(!mpx_lock_is_locked(l), "free at the end");
    mpx_lock_close(l);
}

/* ---- RLock ---------------------------------------------------------------------------------- */

struct rcounter_arg {
    mpx_rlock *r;
    volatile int64_t *counter;
    int n;
};

static int rcounter_child(void *p) {
    struct rcounter_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        if (mpx_rlock_acquire(a->r, TS_WAIT) != MPX_OK) return 2;
        if (mpx_rlock_acquire(a->r, 0) != MPX_OK) return 3; /* nested: never waits */
        *a->counter = *a->counter + 1;
        if (mpx_rlock_release(a->r) != MPX_OK || mpx_rlock_release(a->r) != MPX_OK) return 4;
    }
    return 0;
}

static void test_rlock_counter(void) {
    mpx_rlock *r = NULL;
    mpx_shm *m = NULL;
    REQUIRE(mpx_rlock_create_anonymous(&r) == MPX_OK, "rlock");
    REQUIRE(mpx_shm_create_anonymous(64, &m) == MPX_OK, "counter memory");
    struct rcounter_arg a = {r, (volatile int64_t *)mpx_shm_ptr(m), 100000};
    pid_t p1 = ts_fork(rcounter_child, &a), p2 = ts_fork(rcounter_child, &a);
    int s1 = t_wait(p1, 120), s2 = t_wait(p2, 120);
    CHECK(t_exited(s1, 0) && t_exited(s2, 0), "two processes x 100000 nested rlock increments finished");
    CHECK(*a.counter == 200000 && !mpx_rlock_is_locked(r), "counter exact: %lld", (long long)*a.counter);
    mpx_shm_close(m);
    mpx_rlock_close(r);
}

static int rlock_foreign(void *p) {
    mpx_rlock *r = p;
    if (mpx_rlock_acquire(r, 0) != MPX_E_TIMEOUT) return 1;
    if (mpx_rlock_release(r) != MPX_E_STATE) return 2;
    return 0;
}

static void test_rlock(void) {
    const char *n = t_name("rlock");
    mpx_rlock *r = NULL;
    REQUIRE(mpx_rlock_create(n, 0, &r) == MPX_OK, "create");
    CHECK_STATUS(mpx_rlock_acquire(r, 0), MPX_OK, "", "acquire");
    CHECK_STATUS(mpx_rlock_acquire(r, 0), MPX_OK, "", "acquire again (recursive)");
    CHECK(mpx_rlock_depth(r) == 2, "depth 2");
    pid_t p = ts_fork(rlock_foreign, r);
    CHECK(t_exited(t_wait(p, 20), 0), "another process can neither acquire nor release it");
    CHECK_STATUS(mpx_rlock_release(r), MPX_OK, "", "release 1");
    CHECK(mpx_rlock_is_locked(r), "still held");
    CHECK_STATUS(mpx_rlock_release(r), MPX_OK, "", "release 2");
    CHECK(!mpx_rlock_is_locked(r), "free");
    CHECK_STATUS(mpx_rlock_release(r), MPX_E_STATE, "not held", "release when not held");
    mpx_rlock_close(r);
}

/* ---- Semaphore ------------------------------------------------------------------------------ */

struct pingpong {
    mpx_semaphore *ping, *pong;
    int n;
};

static int pong_child(void *p) {
    struct pingpong *a = p;
    for (int i = 0; i < a->n; i++) {
        if (mpx_semaphore_acquire(a->ping, TS_WAIT) != MPX_OK) return 1;
        if (mpx_semaphore_release(a->pong) != MPX_OK) return 2;
    }
    return 0;
}

static int take_two_and_exit(void *p) {
    mpx_semaphore *s = p;
    return mpx_semaphore_acquire(s, 0) == MPX_OK && mpx_semaphore_acquire(s, 0) == MPX_OK ? 0 : 1;
}

static void test_semaphore(void) {
    const char *n = t_name("sem");
    mpx_semaphore *s = NULL, *o = NULL;
    REQUIRE(mpx_semaphore_create(n, 2, 2, 0, &s) == MPX_OK, "bounded semaphore");
    REQUIRE(mpx_semaphore_open(n, 0, &o) == MPX_OK, "open");
    CHECK(mpx_semaphore_get_value(o) == 2 && mpx_semaphore_max_value(o) == 2 && !mpx_semaphore_is_undo(o), "value 2, max 2");
    CHECK_STATUS(mpx_semaphore_release(s), MPX_E_STATE, "released too many times", "bounded over-release");
    CHECK_STATUS(mpx_semaphore_acquire(s, 0), MPX_OK, "", "acquire 1");
    CHECK_STATUS(mpx_semaphore_acquire(o, MPX_FOREVER), MPX_OK, "", "acquire 2");
    CHECK_STATUS(mpx_semaphore_acquire(s, 0), MPX_E_TIMEOUT, "permit", "acquire 3 (try)");
    CHECK_STATUS(mpx_semaphore_acquire(s, TS_MS(10)), MPX_E_TIMEOUT, "permit", "acquire 3 (10 ms)");
    CHECK_STATUS(mpx_semaphore_release(s), MPX_OK, "", "release");
    CHECK_STATUS(mpx_semaphore_release(s), MPX_OK, "", "release");
    CHECK_STATUS(mpx_semaphore_release(s), MPX_E_STATE, "released too many times", "over-release again");
    mpx_semaphore_close(o);
    mpx_semaphore_close(s);
    mpx_semaphore *bad = NULL;
    CHECK_STATUS(mpx_semaphore_create_anonymous(3, 2, 0, &bad), MPX_E_INVALID, "exceeds its maximum", "value above max");

    /* Undo: the permits of a process that exits holding them come back. */
    mpx_semaphore *u = NULL;
    REQUIRE(mpx_semaphore_create_anonymous(3, 0, MPX_SEM_UNDO, &u) == MPX_OK, "undo semaphore");
    CHECK(mpx_semaphore_is_undo(u) && mpx_semaphore_max_value(u) == MPX_SEM_VALUE_MAX, "undo, unbounded");
    pid_t p = ts_fork(take_two_and_exit, u);
    CHECK(t_exited(t_wait(p, 20), 0), "child took two permits and exited");
    CHECK(mpx_semaphore_get_value(u) == 1, "value 1 before reclaim");
    uint32_t back = 0;
    CHECK_STATUS(mpx_semaphore_reclaim(u, &back), MPX_OK, "", "reclaim");
    CHECK(back == 2 && mpx_semaphore_get_value(u) == 3, "two permits came back (%u), value %u", back, mpx_semaphore_get_value(u));
    mpx_semaphore_close(u);

    /* Handoff between processes. */
    struct pingpong a = {NULL, NULL, 5000};
    REQUIRE(mpx_semaphore_create_anonymous(0, 0, 0, &a.ping) == MPX_OK && mpx_semaphore_create_anonymous(0, 0, 0, &a.pong) == MPX_OK, "ping pong");
    p = ts_fork(pong_child, &a);
    int bad_rounds = 0;
    for (int i = 0; i < a.n; i++) {
        if (mpx_semaphore_release(a.ping) != MPX_OK || mpx_semaphore_acquire(a.pong, TS_WAIT) != MPX_OK) bad_rounds++;
    }
    CHECK(bad_rounds == 0 && t_exited(t_wait(p, 20), 0), "5000 handoffs between two processes");
    mpx_semaphore_close(a.ping);
    mpx_semaphore_close(a.pong);
}

/* ---- Condition, Event, Barrier ------------------------------------------------------------- */

struct cond_arg {
    mpx_condition *c;
    volatile int *flag;
};

static int cond_waiter(void *p) {
    struct cond_arg *a = p;
    if (mpx_condition_acquire(a->c, TS_WAIT) != MPX_OK) return 1;
    double end = ts_now() + 20;
    while (*a->flag == 0) {
        if (ts_now() > end) return 2;
        mpx_status st = mpx_condition_wait(a->c, TS_WAIT);
        if (st != MPX_OK) return 3;
    }
    mpx_condition_release(a->c);
    return 0;
}

static void test_condition(void) {
    const char *ln = t_name("clock"), *cn = t_name("cond");
    mpx_lock *l = NULL;
    mpx_condition *c = NULL, *o = NULL;
    REQUIRE(mpx_lock_create(ln, 0, &l) == MPX_OK, "lock");
    REQUIRE(mpx_condition_create(cn, l, NULL, 0, &c) == MPX_OK, "condition over a named lock");
    REQUIRE(mpx_condition_open(cn, NULL, NULL, 0, &o) == MPX_OK, "open (finds the lock by name)");
    CHECK_STATUS(mpx_condition_wait(c, 0), MPX_E_STATE, "not held", "wait without the lock");
    CHECK_STATUS(mpx_condition_notify(c, 1), MPX_E_STATE, "not held", "notify without the lock");
    CHECK_STATUS(mpx_condition_acquire(o, 0), MPX_OK, "", "acquire through the opened handle");
    CHECK(mpx_lock_is_locked(l), "it is the lock's");
    CHECK_STATUS(mpx_condition_wait(c, TS_MS(10)), MPX_E_TIMEOUT, "notify", "wait 10 ms");
    CHECK(mpx_lock_is_mine(l), "lock held again after the timeout");
    CHECK_STATUS(mpx_condition_release(c), MPX_OK, "", "release");

    mpx_shm *m = NULL;
    REQUIRE(mpx_shm_create_anonymous(64, &m) == MPX_OK, "flag memory");
    struct cond_arg a = {o, (volatile int *)mpx_shm_ptr(m)};
    pid_t p1 = ts_fork(cond_waiter, &a), p2 = ts_fork(cond_waiter, &a);
    ts_sleep_us(50000);
    CHECK_STATUS(mpx_condition_acquire(c, TS_WAIT), MPX_OK, "", "acquire to notify");
    *a.flag = 1;
    CHECK_STATUS(mpx_condition_notify_all(c), MPX_OK, "", "notify_all");
    mpx_condition_release(c);
    int s1 = t_wait(p1, 20), s2 = t_wait(p2, 20);
    CHECK(t_exited(s1, 0) && t_exited(s2, 0), "both waiting processes woke and saw the flag");
    mpx_shm_close(m);
    mpx_condition_close(o);
    mpx_condition_close(c);
    mpx_lock_close(l);

    /* An anonymous lock must be passed again at open. */
    mpx_rlock *r = NULL;
    REQUIRE(mpx_rlock_create_anonymous(&r) == MPX_OK, "rlock");
    REQUIRE(mpx_condition_create_anonymous(NULL, r, &c) == MPX_OK, "condition over an anonymous rlock");
    int fd = -1;
    mpx_condition_fd(c, &fd);
    CHECK_STATUS(mpx_condition_open_fd(fd, NULL, NULL, 0, &o), MPX_E_INVALID, "pass that rlock", "open_fd without its rlock");
    CHECK_STATUS(mpx_condition_open_fd(fd, NULL, r, 0, &o), MPX_OK, "", "open_fd with its rlock");
    mpx_condition_close(o);
    mpx_condition_close(c);
    mpx_rlock_close(r);
}

/* A waiter in another process that waits in parts of 1 ms until notified. */
static int cond_part_waiter(void *p) {
    struct cond_arg *a = p;
    if (mpx_condition_acquire(a->c, TS_WAIT) != MPX_OK) return 1;
    uint64_t t = 0;
    double end = ts_now() + 20;
    *a->flag = 1; /* registered once the first part begins, which the lock orders */
    mpx_status st;
    while ((st = mpx_condition_wait_part(a->c, TS_MS(1), &t)) == MPX_E_TIMEOUT) {
        if (t == 0) return 2;
        if (ts_now() > end) return 3;
    }
    int rc = (st == MPX_OK && t == 0) ? 0 : 4;
    mpx_condition_release(a->c);
    return rc;
}

static void test_condition_wait_in_parts(void) {
    mpx_condition *c = NULL;
    uint64_t t = 0, t2 = 0;
    REQUIRE(mpx_condition_create_anonymous(NULL, NULL, &c) == MPX_OK, "condition");
    CHECK_STATUS(mpx_condition_wait_part(NULL, 0, &t), MPX_E_INVALID, "NULL", "wait_part(NULL cond)");
    CHECK_STATUS(mpx_condition_wait_part(c, 0, NULL), MPX_E_INVALID, "NULL", "wait_part(NULL ticket)");
    CHECK_STATUS(mpx_condition_wait_end(NULL, &t), MPX_E_INVALID, "NULL", "wait_end(NULL cond)");
    CHECK_STATUS(mpx_condition_wait_end(c, NULL), MPX_E_INVALID, "NULL", "wait_end(NULL ticket)");
    CHECK_STATUS(mpx_condition_wait_part(c, 0, &t), MPX_E_STATE, "not held", "wait_part without the lock");
    CHECK(t == 0, "a refused wait leaves the ticket alone");
    REQUIRE(mpx_condition_acquire(c, TS_WAIT) == MPX_OK, "acquire");
    t = 5;
    CHECK_STATUS(mpx_condition_wait_part(c, 0, &t), MPX_E_INVALID, "ticket", "a ticket no call wrote");
    CHECK_STATUS(mpx_condition_wait_part(c, -2, &t), MPX_E_INVALID, "", "a timeout below -1");
    t = 0;
    CHECK_STATUS(mpx_condition_wait_part(c, TS_MS(1), &t), MPX_E_TIMEOUT, "ticket", "first part times out");
    CHECK(t != 0, "the wait goes on: the ticket says so");
    CHECK_STATUS(mpx_condition_wait_part(c, TS_MS(1), &t), MPX_E_TIMEOUT, "", "second part times out");
    CHECK_STATUS(mpx_condition_release(c), MPX_OK, "", "the lock is held between parts");
    CHECK_STATUS(mpx_condition_wait_end(c, &t), MPX_E_STATE, "not held", "wait_end without the lock");
    CHECK(t != 0, "a refused wait_end keeps the ticket");
    REQUIRE(mpx_condition_acquire(c, TS_WAIT) == MPX_OK, "acquire again");

    /* A notify between the parts of a wait is meant for it, not for a waiter that came later. */
    CHECK_STATUS(mpx_condition_notify(c, 1), MPX_OK, "", "notify between the parts");
    CHECK_STATUS(mpx_condition_wait_part(c, TS_MS(1), &t2), MPX_E_TIMEOUT, "", "a later waiter does not take it");
    CHECK(t2 != 0, "the later waiter still waits");
    CHECK_STATUS(mpx_condition_wait_end(c, &t), MPX_OK, "", "the first waiter was notified");
    CHECK(t == 0, "its wait is over");
    CHECK_STATUS(mpx_condition_wait_end(c, &t2), MPX_E_TIMEOUT, "timed out", "the later one just stops");
    CHECK(t2 == 0, "ticket cleared");
    CHECK_STATUS(mpx_condition_wait_end(c, &t2), MPX_E_TIMEOUT, "no wait", "wait_end of no wait");
    /* The next part of a resumed wait after notify: taken at once. */
    CHECK_STATUS(mpx_condition_wait_part(c, TS_MS(1), &t), MPX_E_TIMEOUT, "", "a new wait");
    CHECK_STATUS(mpx_condition_notify(c, 1), MPX_OK, "", "notify it");
    CHECK_STATUS(mpx_condition_wait_part(c, TS_MS(1), &t), MPX_OK, "", "its next part returns notified");
    CHECK(t == 0, "and ends the wait");
    mpx_condition_release(c);

    /* Across processes: each notify wakes the waiter in parts, every time. */
    mpx_shm *m = NULL;
    REQUIRE(mpx_shm_create_anonymous(64, &m) == MPX_OK, "flag memory");
    struct cond_arg a = {c, (volatile int *)mpx_shm_ptr(m)};
    int bad = 0;
    for (int i = 0; i < 50; i++) {
        *a.flag = 0;
        pid_t p = ts_fork(cond_part_waiter, &a);
        double end = ts_now() + 20;
        while (*a.flag == 0 && ts_now() < end) ts_sleep_us(100);
        ts_sleep_us((i % 5) * 300);
        if (mpx_condition_acquire(c, TS_WAIT) != MPX_OK) bad++;
        /* The waiter registered before it let go of the lock: this notify is its own. */
        if (mpx_condition_notify(c, 1) != MPX_OK) bad++;
        mpx_condition_release(c);
        if (!t_exited(t_wait(p, 20), 0)) bad++;
    }
    CHECK(bad == 0, "50 notifies to a waiter in parts: none lost");
    mpx_shm_close(m);
    mpx_condition_close(c);
}

static int event_waiter(void *p) { return mpx_event_wait((mpx_event *)p, TS_WAIT) == MPX_OK ? 0 : 1; }

static void test_event(void) {
    const char *n = t_name("event");
    mpx_event *e = NULL;
    REQUIRE(mpx_event_create(n, 0, &e) == MPX_OK, "event");
    CHECK(!mpx_event_is_set(e), "not set");
    CHECK_STATUS(mpx_event_wait(e, TS_MS(10)), MPX_E_TIMEOUT, "event", "wait 10 ms");
    pid_t p1 = ts_fork(event_waiter, e), p2 = ts_fork(event_waiter, e);
    ts_sleep_us(30000);
    CHECK_STATUS(mpx_event_set(e), MPX_OK, "", "set");
    CHECK(t_exited(t_wait(p1, 20), 0) && t_exited(t_wait(p2, 20), 0), "both waiting processes woke");
    CHECK_STATUS(mpx_event_wait(e, 0), MPX_OK, "", "wait on a set event returns at once");
    CHECK_STATUS(mpx_event_clear(e), MPX_OK, "", "clear");
    CHECK(!mpx_event_is_set(e), "cleared");
    mpx_event_close(e);
}

struct barrier_arg {
    mpx_barrier *b;
    volatile int64_t *sums;
    int rounds;
};

static int barrier_child(void *p) {
    struct barrier_arg *a = p;
    for (int r = 0; r < a->rounds; r++) {
        uint32_t idx = 99;
        if (mpx_barrier_wait(a->b, TS_WAIT, &idx) != MPX_OK || idx > 2) return 1;
        __atomic_fetch_add(&a->sums[r], (int64_t)1 << idx, __ATOMIC_SEQ_CST);
    }
    return 0;
}

static int barrier_broken_child(void *p) {
    return mpx_barrier_wait((mpx_barrier *)p, TS_WAIT, NULL) == MPX_E_BROKEN ? 0 : 1;
}

static void test_barrier(void) {
    mpx_barrier *b = NULL;
    REQUIRE(mpx_barrier_create(t_name("barrier"), 3, 0, &b) == MPX_OK, "barrier");
    CHECK(mpx_barrier_parties(b) == 3, "3 parties");
    mpx_shm *m = NULL;
    REQUIRE(mpx_shm_create_anonymous(100 * 8, &m) == MPX_OK, "sums");
    struct barrier_arg a = {b, (volatile int64_t *)mpx_shm_ptr(m), 100};
    pid_t p[3];
    for (int i = 0; i < 3; i++) p[i] = ts_fork(barrier_child, &a);
    int ok = 1;
    for (int i = 0; i < 3; i++) ok &= t_exited(t_wait(p[i], 30), 0);
    int sums_ok = 1;
    for (int r = 0; r < a.rounds; r++) sums_ok &= a.sums[r] == 7;
    CHECK(ok && sums_ok, "3 processes x 100 rounds: indices 0,1,2 once per round");

    pid_t w = ts_fork(barrier_broken_child, b);
    CHECK(TS_EVENTUALLY(mpx_barrier_n_waiting(b) == 1), "one waiter");
    CHECK_STATUS(mpx_barrier_wait(b, TS_MS(20), NULL), MPX_E_TIMEOUT, "broken", "timeout breaks the barrier");
    CHECK(t_exited(t_wait(w, 20), 0), "the other waiter got MPX_E_BROKEN");
    CHECK(mpx_barrier_is_broken(b), "broken");
    CHECK_STATUS(mpx_barrier_wait(b, 0, NULL), MPX_E_BROKEN, "broken", "wait on a broken barrier");
    CHECK_STATUS(mpx_barrier_reset(b), MPX_OK, "", "reset");
    w = ts_fork(barrier_broken_child, b);
    CHECK(TS_EVENTUALLY(mpx_barrier_n_waiting(b) == 1), "one waiter");
    CHECK_STATUS(mpx_barrier_abort(b), MPX_OK, "", "abort");
    CHECK(t_exited(t_wait(w, 20), 0), "the waiter got MPX_E_BROKEN from abort");
    mpx_barrier *bad = NULL;
    CHECK_STATUS(mpx_barrier_create_anonymous(0, &bad), MPX_E_INVALID, "parties", "0 parties");
    mpx_shm_close(m);
    mpx_barrier_close(b);
}

/* A waiter in 1 ms parts: it keeps its arrival across the parts and records its index. */
static int barrier_part_child(void *p) {
    struct barrier_arg *a = p;
    for (int r = 0; r < a->rounds; r++) {
        uint64_t t = 0;
        uint32_t idx = 99;
        mpx_status st;
        double end = ts_now() + 30;
        while ((st = mpx_barrier_wait_part(a->b, TS_MS(1), &t, &idx)) == MPX_E_TIMEOUT && ts_now() < end) {
            if (t == 0) return 2; /* a part that times out keeps the arrival */
        }
        if (st != MPX_OK || t != 0 || idx > 2) return 1;
        __atomic_fetch_add(&a->sums[r], (int64_t)1 << idx, __ATOMIC_SEQ_CST);
    }
    return 0;
}

static void test_barrier_wait_in_parts(void) {
    mpx_barrier *b = NULL;
    uint64_t t = 0;
    uint32_t idx = 99;
    REQUIRE(mpx_barrier_create_anonymous(2, &b) == MPX_OK, "barrier");
    CHECK_STATUS(mpx_barrier_wait_part(NULL, 0, &t, &idx), MPX_E_INVALID, "NULL", "wait_part(NULL barrier)");
    CHECK_STATUS(mpx_barrier_wait_part(b, 0, NULL, &idx), MPX_E_INVALID, "NULL", "wait_part(NULL ticket)");
    CHECK_STATUS(mpx_barrier_wait_end(NULL, &t, &idx), MPX_E_INVALID, "NULL", "wait_end(NULL barrier)");
    CHECK_STATUS(mpx_barrier_wait_end(b, NULL, &idx), MPX_E_INVALID, "NULL", "wait_end(NULL ticket)");
    t = 5;
    CHECK_STATUS(mpx_barrier_wait_part(b, 0, &t, &idx), MPX_E_INVALID, "ticket", "a ticket no call wrote");
    CHECK_STATUS(mpx_barrier_wait_end(b, &t, &idx), MPX_E_INVALID, "ticket", "wait_end of a ticket no call wrote");
    CHECK(t == 5 && mpx_barrier_n_waiting(b) == 0, "a refused ticket changes nothing");
    t = ((uint64_t)1 << 32) | 7; /* index 7 of a 2-party barrier */
    CHECK_STATUS(mpx_barrier_wait_part(b, 0, &t, &idx), MPX_E_INVALID, "ticket", "a ticket with an index past parties");
    t = 0;
    CHECK_STATUS(mpx_barrier_wait_part(b, -2, &t, &idx), MPX_E_INVALID, "", "a timeout below -1");
    CHECK(t == 0 && mpx_barrier_n_waiting(b) == 0, "a refused timeout does not arrive");
    CHECK_STATUS(mpx_barrier_wait_end(b, &t, &idx), MPX_E_TIMEOUT, "no wait", "wait_end of no wait");

    /* Parts that time out keep the one arrival and do not break the barrier. */
    CHECK_STATUS(mpx_barrier_wait_part(b, TS_MS(1), &t, &idx), MPX_E_TIMEOUT, "ticket", "first part times out");
    CHECK(t != 0, "the wait goes on: the ticket says so");
    CHECK_STATUS(mpx_barrier_wait_part(b, 0, &t, &idx), MPX_E_TIMEOUT, "", "second part (0 ns) times out");
    CHECK(mpx_barrier_n_waiting(b) == 1 && !mpx_barrier_is_broken(b), "still one arrival, not broken");
    /* The other party arrives: it trips the barrier, and the next part of the first passes. */
    uint32_t other = 99;
    CHECK_STATUS(mpx_barrier_wait(b, TS_WAIT, &other), MPX_OK, "", "the second party trips it");
    CHECK(other == 1, "the tripping arrival is index 1 (got %u)", other);
    CHECK_STATUS(mpx_barrier_wait_part(b, TS_WAIT, &t, &idx), MPX_OK, "", "the waiter in parts passes");
    CHECK(idx == 0 && t == 0, "with index 0 (got %u), and its ticket cleared", idx);

    /* Giving up breaks the barrier for everyone, as a timeout does. */
    CHECK_STATUS(mpx_barrier_wait_part(b, 0, &t, NULL), MPX_E_TIMEOUT, "", "a new wait");
    CHECK_STATUS(mpx_barrier_wait_end(b, &t, &idx), MPX_E_TIMEOUT, "broken", "abandon it");
    CHECK(t == 0 && mpx_barrier_is_broken(b), "ticket cleared; the barrier is broken");
    CHECK_STATUS(mpx_barrier_wait_part(b, 0, &t, &idx), MPX_E_BROKEN, "broken", "a wait on the broken barrier");
    CHECK(t == 0, "did not arrive");
    CHECK_STATUS(mpx_barrier_reset(b), MPX_OK, "", "reset");

    /* A wait pending while the barrier is reset ends broken (part or end). */
    CHECK_STATUS(mpx_barrier_wait_part(b, 0, &t, &idx), MPX_E_TIMEOUT, "", "a new wait");
    uint64_t kept = t;
    CHECK_STATUS(mpx_barrier_reset(b), MPX_OK, "", "reset under it");
    CHECK_STATUS(mpx_barrier_wait_part(b, 0, &t, &idx), MPX_E_BROKEN, "reset", "its next part: broken");
    CHECK(t == 0 && !mpx_barrier_is_broken(b), "ticket cleared; the reset barrier is usable");
    CHECK_STATUS(mpx_barrier_wait_end(b, &kept, &idx), MPX_E_BROKEN, "reset", "wait_end of the reset wait");
    CHECK(kept == 0 && !mpx_barrier_is_broken(b), "does not break the new round");

    /* A wait that tripped before it was given up passed: wait_end says so, breaks nothing. */
    CHECK_STATUS(mpx_barrier_wait_part(b, 0, &t, &idx), MPX_E_TIMEOUT, "", "a new wait");
    CHECK_STATUS(mpx_barrier_wait(b, TS_WAIT, NULL), MPX_OK, "", "the other party trips it");
    idx = 99;
    CHECK_STATUS(mpx_barrier_wait_end(b, &t, &idx), MPX_OK, "", "given up after it tripped: it passed");
    CHECK(idx == 0 && t == 0 && !mpx_barrier_is_broken(b), "index 0, not broken");
    mpx_barrier_close(b);

    /* Across 3 processes waiting in 1 ms parts: indexes 0, 1, 2 once per round. */
    REQUIRE(mpx_barrier_create_anonymous(3, &b) == MPX_OK, "barrier of 3");
    mpx_shm *m = NULL;
    REQUIRE(mpx_shm_create_anonymous(50 * 8, &m) == MPX_OK, "sums");
    struct barrier_arg a = {b, (volatile int64_t *)mpx_shm_ptr(m), 50};
    pid_t p[3];
    for (int i = 0; i < 3; i++) p[i] = ts_fork(barrier_part_child, &a);
    int ok = 1;
    for (int i = 0; i < 3; i++) ok &= t_exited(t_wait(p[i], 60), 0);
    int sums_ok = 1;
    for (int r = 0; r < a.rounds; r++) sums_ok &= a.sums[r] == 7;
    CHECK(ok && sums_ok, "3 processes x 50 rounds in parts: indices 0,1,2 once per round");
    CHECK(!mpx_barrier_is_broken(b) && mpx_barrier_n_waiting(b) == 0, "not broken, nobody left waiting");
    mpx_shm_close(m);
    mpx_barrier_close(b);
}

/* ---- no system call on the uncontended paths ---------------------------------------------- */

struct nosys {
    mpx_lock *l;
    mpx_rlock *r;
    mpx_semaphore *s;
    mpx_value *v;
    mpx_event *e;
    mpx_condition *c;
};

static int nosys_child(void *p) {
    struct nosys *a = p;
    /* Warm up: the first call fills the process identity cache (getpid, /proc/self/stat). */
    mpx_lock_acquire(a->l, 0);
    mpx_lock_release(a->l);
    /* From here any system call but read/write/exit kills the process (SIGKILL). */
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0) return 9;
    int bad = 0;
    for (int i = 0; i < 10000; i++) {
        bad |= mpx_lock_acquire(a->l, MPX_FOREVER) | mpx_lock_release(a->l);
        bad |= mpx_rlock_acquire(a->r, MPX_FOREVER) | mpx_rlock_acquire(a->r, 0) | mpx_rlock_release(a->r) | mpx_rlock_release(a->r);
        bad |= mpx_semaphore_acquire(a->s, MPX_FOREVER) | mpx_semaphore_release(a->s);
        bad |= mpx_value_acquire(a->v, MPX_FOREVER) | mpx_value_release(a->v);
        bad |= mpx_event_set(a->e) | mpx_event_wait(a->e, MPX_FOREVER) | mpx_event_clear(a->e);
        bad |= mpx_condition_acquire(a->c, MPX_FOREVER) | mpx_condition_notify(a->c, 1) | mpx_condition_release(a->c);
    }
    syscall(SYS_exit, bad ? 1 : 0); /* exit_group is not allowed in strict mode */
    return 2;
}

static void test_no_syscall(void) {
    struct nosys a;
    REQUIRE(mpx_lock_create_anonymous(&a.l) == MPX_OK && mpx_rlock_create_anonymous(&a.r) == MPX_OK &&
                mpx_semaphore_create_anonymous(1, 1, 0, &a.s) == MPX_OK &&
                mpx_value_create_anonymous('q', 1, NULL, 0, MPX_VALUE_LOCK, &a.v) == MPX_OK &&
                mpx_event_create_anonymous(&a.e) == MPX_OK && mpx_condition_create_anonymous(NULL, NULL, &a.c) == MPX_OK,
            "objects");
    pid_t p = ts_fork(nosys_child, &a);
    int st = t_wait(p, 60);
    CHECK(t_exited(st, 0), "10000 rounds of uncontended lock, rlock, semaphore, value lock, event, condition ops "
                            "under SECCOMP_MODE_STRICT (no system call): status %#x", st);
    mpx_lock_close(a.l);
    mpx_rlock_close(a.r);
    mpx_semaphore_close(a.s);
    mpx_value_close(a.v);
    mpx_event_close(a.e);
    mpx_condition_close(a.c);
}

int main(void) {
    t_init("test_sync");
    test_lock_basics();
    test_no_syscall();
    test_null_args();
    test_lock_counter();
    test_lock_owner_death();
    test_lock_kill_loop();
    test_rlock();
    test_rlock_counter();
    test_semaphore();
    test_condition();
    test_condition_wait_in_parts();
    test_event();
    test_barrier();
    test_barrier_wait_in_parts();
    return t_finish();
}
