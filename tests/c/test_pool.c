/* test_pool.c: the pool C ABI (mpx_pool_*, mpx_task_out_*) from C, with real forked workers.
 *
 * Results value by value, map order, task errors with type/message/traceback, an unknown
 * function, status returns, a callback that aborts, a worker SIGKILLed in a task (its pid from
 * mpx_pool_worker), close/submit/join/terminate, max tasks per child, a named pool's objects
 * gone from /dev/shm, bad arguments. Every blocking call is bounded; no check is on time.
 */
#include "testutil.h"

#include <stdbool.h>

#define W (30LL * 1000 * 1000 * 1000) /* 30 s: every blocking call in the test is bounded */
#define MS (1000LL * 1000)

static uint64_t get_u64(const uint8_t *b) {
    uint64_t x;
    memcpy(&x, b, 8);
    return x;
}

/* ---- task functions (run in the workers) ------------------------------------------------ */

static int32_t f_square(void *user, const uint8_t *args, size_t len, mpx_task_out *out) {
    (void)user;
    if (len != 8) return mpx_task_out_error(out, MPX_E_INVALID, "ValueError", "need 8 bytes", "Traceback: in square");
    uint64_t x = get_u64(args) * get_u64(args);
    return mpx_task_out_set(out, (const uint8_t *)&x, 8);
}

static int32_t f_fail(void *user, const uint8_t *args, size_t len, mpx_task_out *out) {
    (void)user;
    char msg[64];
    snprintf(msg, sizeof msg, "bad input %.*s", (int)len, (const char *)args);
    mpx_task_out_error(out, MPX_E_INVALID, "ValueError", msg, "Traceback: in f_fail");
    return 0; /* the error set wins over the return value */
}

/* Fails by its return value alone: the status given in the argument byte. */
static int32_t f_status(void *user, const uint8_t *args, size_t len, mpx_task_out *out) {
    (void)user;
    (void)out;
    return len == 1 ? (int8_t)args[0] : 0;
}

static int32_t f_abort(void *user, const uint8_t *args, size_t len, mpx_task_out *out) {
    (void)user, (void)args, (void)len, (void)out;
    abort();
}

/* Runs until its worker is killed (bounded: a minute, so a broken test leaves nothing). */
static int32_t f_block(void *user, const uint8_t *args, size_t len, mpx_task_out *out) {
    (void)user, (void)args, (void)len, (void)out;
    sleep(60);
    return 0;
}

static int32_t f_pid(void *user, const uint8_t *args, size_t len, mpx_task_out *out) {
    (void)user, (void)args, (void)len;
    uint64_t p = (uint64_t)getpid();
    return mpx_task_out_set(out, (const uint8_t *)&p, 8);
}

/* The user pointer reaches the function: it adds *(uint64_t *)user. */
static int32_t f_add(void *user, const uint8_t *args, size_t len, mpx_task_out *out) {
    if (len != 8) return MPX_E_INVALID;
    uint64_t x = get_u64(args) + *(const uint64_t *)user;
    return mpx_task_out_set(out, (const uint8_t *)&x, 8);
}

static uint64_t add_base = 1000;

/* A result of as many bytes as the argument says. */
static int32_t f_big(void *user, const uint8_t *args, size_t len, mpx_task_out *out) {
    (void)user;
    if (len != 8) return MPX_E_INVALID;
    size_t n = (size_t)get_u64(args);
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return MPX_E_OS;
    memset(b, 7, n);
    mpx_status st = mpx_task_out_set(out, b, n);
    free(b);
    return st;
}

static mpx_pool_registry *registry(void) {
    mpx_pool_registry *r = NULL;
    REQUIRE(mpx_pool_registry_new(&r) == MPX_OK, "registry");
    REQUIRE(mpx_pool_registry_add(r, "square", f_square, NULL) == MPX_OK &&
                mpx_pool_registry_add(r, "fail", f_fail, NULL) == MPX_OK &&
                mpx_pool_registry_add(r, "status", f_status, NULL) == MPX_OK &&
                mpx_pool_registry_add(r, "abort", f_abort, NULL) == MPX_OK &&
                mpx_pool_registry_add(r, "block", f_block, NULL) == MPX_OK &&
                mpx_pool_registry_add(r, "pid", f_pid, NULL) == MPX_OK &&
                mpx_pool_registry_add(r, "add", f_add, &add_base) == MPX_OK &&
                mpx_pool_registry_add(r, "big", f_big, NULL) == MPX_OK,
            "register the functions");
    return r;
}

static mpx_pool *make_pool(const char *name, size_t workers, uint64_t max_tasks) {
    mpx_pool_registry *r = registry();
    mpx_pool_opts *o = NULL;
    REQUIRE(mpx_pool_opts_new(&o) == MPX_OK && mpx_pool_opts_set_workers(o, workers) == MPX_OK &&
                mpx_pool_opts_set_max_tasks_per_child(o, max_tasks) == MPX_OK,
            "options");
    mpx_pool *p = NULL;
    REQUIRE(mpx_pool_create(name, o, r, &p) == MPX_OK && p != NULL, "create a pool of %zu", workers);
    mpx_pool_opts_free(o);
    mpx_pool_registry_free(r); /* the pool has its copy */
    return p;
}

static uint64_t submit_u64(mpx_pool *p, const char *f, uint64_t x) {
    uint64_t id = 0;
    mpx_status st = mpx_pool_submit(p, f, (const uint8_t *)&x, 8, &id);
    REQUIRE(st == MPX_OK, "submit %s(%llu): %s", f, (unsigned long long)x, mpx_status_name(st));
    return id;
}

/* Waits for a task and returns its 8-byte result (UINT64_MAX on any failure). */
static uint64_t wait_u64(mpx_pool *p, uint64_t id) {
    uint8_t *out = NULL;
    size_t len = 0;
    if (mpx_pool_wait(p, id, W, &out, &len) != MPX_OK) return UINT64_MAX;
    uint64_t v = len == 8 ? get_u64(out) : UINT64_MAX;
    mpx_free(out);
    return v;
}

/* Whether every slot has a live worker (starting, idle or busy) with a pid. */
static bool all_alive(mpx_pool *p) {
    for (size_t i = 0; i < mpx_pool_size(p); i++) {
        int32_t pid = 0;
        uint32_t state = 0;
        uint64_t task = 0, done = 0, failed = 0;
        if (mpx_pool_worker(p, i, &pid, &state, &task, &done, &failed) != MPX_OK) return false;
        if (pid <= 0 || (state != MPX_POOL_WORKER_IDLE && state != MPX_POOL_WORKER_BUSY)) return false;
    }
    return true;
}

/* Polls (bounded) until all_alive, letting the owner look at its workers meanwhile. */
static bool until_all_alive(mpx_pool *p) {
    for (int i = 0; i < 15000; i++) {
        if (all_alive(p)) return true;
        uint64_t id = submit_u64(p, "square", 1);
        wait_u64(p, id);
        usleep(2000);
    }
    return false;
}

/* The pid of the worker running `task`, once one does (0 if none within the bound). */
static int32_t runner_of(mpx_pool *p, uint64_t task) {
    for (int k = 0; k < 15000; k++) {
        bool ready = false;
        mpx_pool_ready(p, task, &ready); /* collects results, so the table moves on */
        for (size_t i = 0; i < mpx_pool_size(p); i++) {
            int32_t pid = 0;
            uint32_t state = 0;
            uint64_t t = 0, done = 0, failed = 0;
            if (mpx_pool_worker(p, i, &pid, &state, &t, &done, &failed) == MPX_OK && state == MPX_POOL_WORKER_BUSY &&
                t == task && pid > 0)
                return pid;
        }
        usleep(2000);
    }
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_results(void) {
    mpx_pool *p = make_pool(NULL, 2, 0);
    CHECK(mpx_pool_size(p) == 2 && strcmp(mpx_pool_name(p), "") == 0, "2 workers, anonymous");
    enum { N = 300 };
    uint64_t ids[N];
    for (uint64_t i = 0; i < N; i++) ids[i] = submit_u64(p, "square", i);
    int bad = 0;
    for (uint64_t i = 0; i < N; i++)
        if (wait_u64(p, ids[i]) != i * i) bad++;
    CHECK(bad == 0, "%d results of square, value by value: %d wrong", N, bad);
    for (size_t i = 0; i < 2; i++) {
        int32_t pid = 0;
        uint32_t state = 0;
        uint64_t task = 0, done = 0, failed = 0;
        CHECK_STATUS(mpx_pool_worker(p, i, &pid, &state, &task, &done, &failed), MPX_OK, "", "worker slot");
        /* On a loaded machine one worker may do everything before the other has started. */
        CHECK((pid > 0 || state == MPX_POOL_WORKER_STARTING) && failed == 0, "slot %zu: pid %d, state %u, %llu done",
              i, pid, state, (unsigned long long)done);
    }
    /* A worker counts a task in its slot just after it put the result: the last count may lag
     * the last result a moment, so the sum is polled (bounded). */
    uint64_t done_sum = 0;
    for (int k = 0; k < 15000 && done_sum != N; k++) {
        done_sum = 0;
        for (size_t i = 0; i < 2; i++) {
            int32_t pid = 0;
            uint32_t state = 0;
            uint64_t task = 0, done = 0, failed = 0;
            mpx_pool_worker(p, i, &pid, &state, &task, &done, &failed);
            done_sum += done;
        }
        if (done_sum != N) usleep(2000);
    }
    CHECK(done_sum == N, "the slots' done counts add up to %d (%llu)", N, (unsigned long long)done_sum);
    uint8_t *out = NULL;
    size_t len = 0;
    CHECK_STATUS(mpx_pool_wait(p, ids[0], W, &out, &len), MPX_E_INVALID, "", "a second wait of a consumed task");
    CHECK_STATUS(mpx_pool_wait(p, 999999, W, &out, &len), MPX_E_INVALID, "", "a wait of an id never given");

    /* The user pointer, ready and wait_any. */
    uint64_t a = submit_u64(p, "add", 5);
    CHECK(wait_u64(p, a) == 1005, "add(5) with the user pointer's 1000 is 1005");
    uint64_t b = submit_u64(p, "block", 0), c = submit_u64(p, "square", 9);
    uint64_t both[2] = {b, c}, got = 0;
    CHECK_STATUS(mpx_pool_wait_any(p, both, 2, W, &got), MPX_OK, "", "wait_any of a blocked and a quick task");
    CHECK(got == c, "the quick one finished first (%llu)", (unsigned long long)got);
    bool ready = false;
    CHECK_STATUS(mpx_pool_ready(p, c, &ready), MPX_OK, "", "ready");
    CHECK(ready, "it is ready, its result kept");
    CHECK(wait_u64(p, c) == 81, "and waits for 81");
    CHECK_STATUS(mpx_pool_ready(p, b, &ready), MPX_OK, "", "ready of the blocked task");
    CHECK(!ready, "not ready");
    CHECK_STATUS(mpx_pool_wait(p, b, 0, &out, &len), MPX_E_TIMEOUT, "", "wait with timeout 0 of a blocked task");
    CHECK_STATUS(mpx_pool_wait_any(p, &b, 1, 20 * MS, &got), MPX_E_TIMEOUT, "", "wait_any with a 20 ms timeout");
    CHECK_STATUS(mpx_pool_wait_any(p, NULL, 0, 0, &got), MPX_E_INVALID, "none of the 0", "wait_any of no task");

    /* map: in order, for several chunk sizes; an empty map. */
    enum { M = 100 };
    uint64_t items[M];
    size_t lens[M], out_lens[M];
    for (size_t i = 0; i < M; i++) items[i] = i, lens[i] = 8;
    size_t chunks[] = {0, 1, 7, 1000};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        uint8_t *res = NULL;
        mpx_status st = mpx_pool_map(p, "square", (const uint8_t *)items, lens, M, chunks[k], W, &res, out_lens);
        int wrong = st == MPX_OK ? 0 : M;
        for (size_t i = 0; st == MPX_OK && i < M; i++)
            if (out_lens[i] != 8 || get_u64(res + 8 * i) != i * i) wrong++;
        CHECK(st == MPX_OK && wrong == 0, "map of %d with chunksize %zu: %s, %d wrong", M, chunks[k],
              mpx_status_name(st), wrong);
        mpx_free(res);
    }
    uint8_t *res = NULL;
    CHECK_STATUS(mpx_pool_map(p, "square", NULL, NULL, 0, 0, W, &res, NULL), MPX_OK, "", "an empty map");
    mpx_free(res);
    lens[13] = 3; /* item 13 of 3 bytes: square refuses it, the map fails */
    CHECK_STATUS(mpx_pool_map(p, "square", (const uint8_t *)items, lens, 20, 3, W, &res, out_lens), MPX_E_INVALID,
                 "need 8 bytes", "a map with a bad item fails with its error");
    CHECK(until_all_alive(p), "the pool goes on");
    mpx_pool_free(p); /* terminates: the blocked task's worker is killed */
}

static void test_errors(void) {
    mpx_pool *p = make_pool(NULL, 2, 0);
    uint64_t id = 0;
    CHECK_STATUS(mpx_pool_submit(p, "fail", (const uint8_t *)"xyz", 3, &id), MPX_OK, "", "submit fail");
    CHECK_STATUS(mpx_pool_wait(p, id, W, &(uint8_t *){NULL}, &(size_t){0}), MPX_E_INVALID,
                 "ValueError: bad input xyz", "a task error comes back with its status and message");
    CHECK(strstr(mpx_last_error(), "Traceback: in f_fail") != NULL, "and the traceback: \"%s\"", mpx_last_error());

    CHECK_STATUS(mpx_pool_submit(p, "fail", (const uint8_t *)"q", 1, &id), MPX_OK, "", "submit fail");
    uint8_t *out = NULL;
    size_t len = 0;
    char *type = NULL, *msg = NULL, *tb = NULL;
    CHECK_STATUS(mpx_pool_wait_error(p, id, W, &out, &len, &type, &msg, &tb), MPX_E_INVALID, "bad input q",
                 "wait_error of a failed task");
    CHECK(type && msg && tb && strcmp(type, "ValueError") == 0 && strcmp(msg, "bad input q") == 0 &&
              strcmp(tb, "Traceback: in f_fail") == 0,
          "type \"%s\", message \"%s\", traceback \"%s\"", type ? type : "", msg ? msg : "", tb ? tb : "");
    CHECK(out == NULL, "no result written for a failed task");
    mpx_free(type), mpx_free(msg), mpx_free(tb);
    type = msg = tb = NULL;

    /* A successful wait_error writes the result and none of the strings. */
    id = submit_u64(p, "square", 4);
    CHECK_STATUS(mpx_pool_wait_error(p, id, W, &out, &len, &type, &msg, &tb), MPX_OK, "", "wait_error of a success");
    CHECK(len == 8 && get_u64(out) == 16 && type == NULL && msg == NULL && tb == NULL, "16, no error strings");
    mpx_free(out);

    /* An unknown function fails its task only. */
    CHECK_STATUS(mpx_pool_submit(p, "no-such-function", NULL, 0, &id), MPX_OK, "", "submit an unknown function");
    uint64_t ok = submit_u64(p, "square", 5);
    CHECK_STATUS(mpx_pool_wait_error(p, id, W, &out, &len, &type, &msg, &tb), MPX_E_NOT_FOUND,
                 "no function 'no-such-function'", "its task fails with MPX_E_NOT_FOUND");
    CHECK(type && strcmp(type, "UnknownFunction") == 0, "type \"%s\"", type ? type : "");
    mpx_free(type), mpx_free(msg), mpx_free(tb);
    CHECK(wait_u64(p, ok) == 25, "the next task runs");

    /* A status returned without an outcome; a value that is no status. */
    uint8_t s = (uint8_t)(int8_t)MPX_E_BROKEN;
    CHECK_STATUS(mpx_pool_submit(p, "status", &s, 1, &id), MPX_OK, "", "submit status(MPX_E_BROKEN)");
    CHECK_STATUS(mpx_pool_wait(p, id, W, &out, &len), MPX_E_BROKEN, "returned MPX_E_BROKEN",
                 "a function returning MPX_E_BROKEN fails its task so");
    s = 7;
    CHECK_STATUS(mpx_pool_submit(p, "status", &s, 1, &id), MPX_OK, "", "submit status(7)");
    CHECK_STATUS(mpx_pool_wait(p, id, W, &out, &len), MPX_E_INVALID, "returned 7", "a return of 7 is MPX_E_INVALID");
    CHECK_STATUS(mpx_pool_submit(p, "status", NULL, 0, &id), MPX_OK, "", "submit status() (returns 0)");
    out = NULL;
    CHECK_STATUS(mpx_pool_wait(p, id, W, &out, &len), MPX_OK, "", "0 with nothing set: an empty result");
    CHECK(out != NULL && len == 0, "a non-NULL pointer and 0 bytes");
    mpx_free(out);
    mpx_pool_free(p);
}

static void test_dead_workers(void) {
    mpx_pool *p = make_pool(NULL, 2, 0);
    /* A callback that aborts: exactly its task fails; the others succeed; 2 workers stay. */
    enum { N = 60 };
    uint64_t ids[N], ab = 0;
    for (uint64_t i = 0; i < N; i++) {
        ids[i] = submit_u64(p, "square", i);
        if (i == N / 2) REQUIRE(mpx_pool_submit(p, "abort", NULL, 0, &ab) == MPX_OK, "submit abort");
    }
    uint8_t *out = NULL;
    size_t len = 0;
    CHECK_STATUS(mpx_pool_wait(p, ab, W, &out, &len), MPX_E_WORKER_DIED, "killed by signal 6",
                 "the task whose callback aborted fails with MPX_E_WORKER_DIED");
    int bad = 0;
    for (uint64_t i = 0; i < N; i++)
        if (wait_u64(p, ids[i]) != i * i) bad++;
    CHECK(bad == 0, "the other %d tasks succeed (%d wrong)", N, bad);
    CHECK(mpx_pool_size(p) == 2 && until_all_alive(p), "the pool keeps 2 live workers");

    /* SIGKILL of a worker blocked in a task, its pid from the worker table. */
    uint64_t b = submit_u64(p, "block", 0);
    int32_t pid = runner_of(p, b);
    REQUIRE(pid > 0, "a worker runs the blocking task");
    CHECK(kill(pid, SIGKILL) == 0, "SIGKILL worker %d", pid);
    char *type = NULL, *msg = NULL, *tb = NULL;
    CHECK_STATUS(mpx_pool_wait_error(p, b, W, &out, &len, &type, &msg, &tb), MPX_E_WORKER_DIED, "killed by signal 9",
                 "its task fails with MPX_E_WORKER_DIED");
    CHECK(type && strcmp(type, "WorkerDied") == 0, "type \"%s\"", type ? type : "");
    mpx_free(type), mpx_free(msg), mpx_free(tb);
    uint64_t after = submit_u64(p, "square", 12);
    CHECK(wait_u64(p, after) == 144, "the pool goes on");
    CHECK(until_all_alive(p), "with 2 live workers again");
    for (size_t i = 0; i < 2; i++) {
        int32_t wp = 0;
        uint32_t state = 0;
        uint64_t task = 0, done = 0, failed = 0;
        mpx_pool_worker(p, i, &wp, &state, &task, &done, &failed);
        CHECK(wp != pid, "slot %zu's worker is not the killed one (%d)", i, wp);
    }
    mpx_pool_free(p);
}

static void test_lifecycle(void) {
    /* A named pool: its objects are in /dev/shm while it runs, gone after join. */
    const char *name = t_name("pool");
    char tn[128], rn[128];
    snprintf(tn, sizeof tn, "%s.tasks", name);
    snprintf(rn, sizeof rn, "%s.results", name);
    mpx_pool *p = make_pool(name, 2, 0);
    CHECK(strcmp(mpx_pool_name(p), name) == 0, "named \"%s\"", mpx_pool_name(p));
    CHECK(t_exists(name) && t_exists(tn) && t_exists(rn), "its table and queues are in /dev/shm");
    mpx_pool *p2 = NULL;
    mpx_pool_registry *r = registry();
    CHECK_STATUS(mpx_pool_create(name, NULL, r, &p2), MPX_E_EXISTS, "", "a second pool of the same name");
    CHECK(p2 == NULL, "no handle written");
    CHECK_STATUS(mpx_pool_join(p, W), MPX_E_STATE, "before close", "join of an open pool");
    uint64_t id = submit_u64(p, "square", 3);
    CHECK_STATUS(mpx_pool_close(p), MPX_OK, "", "close");
    CHECK_STATUS(mpx_pool_close(p), MPX_OK, "", "close again (idempotent)");
    uint64_t x = 1, id2 = 0;
    CHECK_STATUS(mpx_pool_submit(p, "square", (const uint8_t *)&x, 8, &id2), MPX_E_STATE, "closed",
                 "submit after close");
    CHECK_STATUS(mpx_pool_join(p, W), MPX_OK, "", "join");
    CHECK(wait_u64(p, id) == 9, "the task queued before close ran; its result waits after join");
    for (size_t i = 0; i < 2; i++) {
        int32_t pid = 0;
        uint32_t state = 0;
        uint64_t task = 0, done = 0, failed = 0;
        mpx_pool_worker(p, i, &pid, &state, &task, &done, &failed);
        CHECK(state == MPX_POOL_WORKER_EXITED, "slot %zu exited (%u)", i, state);
    }
    CHECK(!t_exists(name) && !t_exists(tn) && !t_exists(rn), "nothing of the pool left in /dev/shm");
    mpx_pool_free(p);

    /* join with a timeout while a task blocks; terminate fails it with MPX_E_CLOSED. */
    p = make_pool(NULL, 1, 0);
    uint64_t b = submit_u64(p, "block", 0);
    CHECK(runner_of(p, b) > 0, "the worker runs the blocking task");
    CHECK_STATUS(mpx_pool_close(p), MPX_OK, "", "close");
    CHECK_STATUS(mpx_pool_join(p, 50 * MS), MPX_E_TIMEOUT, "still running", "join with a 50 ms timeout");
    CHECK_STATUS(mpx_pool_terminate(p), MPX_OK, "", "terminate");
    CHECK_STATUS(mpx_pool_terminate(p), MPX_OK, "", "terminate again (idempotent)");
    uint8_t *out = NULL;
    size_t len = 0;
    CHECK_STATUS(mpx_pool_wait(p, b, W, &out, &len), MPX_E_CLOSED, "terminated", "the blocked task failed");
    CHECK_STATUS(mpx_pool_join(p, W), MPX_OK, "", "join after terminate");
    mpx_pool_free(p);

    /* max tasks per child: workers are replaced, so more pids than slots serve. */
    p = make_pool(NULL, 2, 3);
    uint64_t pids[24];
    int distinct = 0;
    for (int i = 0; i < 24; i++) {
        pids[i] = wait_u64(p, submit_u64(p, "pid", 0));
        bool seen = false;
        for (int k = 0; k < i; k++) seen = seen || pids[k] == pids[i];
        if (!seen && pids[i] != UINT64_MAX) distinct++;
    }
    CHECK(distinct >= 8, "24 tasks, 3 per worker: %d workers served them", distinct);
    mpx_pool_free(p);
    /* Small queues: a task too large is refused at submit, a result too large fails its task. */
    mpx_pool_opts *o = NULL;
    REQUIRE(mpx_pool_opts_new(&o) == MPX_OK && mpx_pool_opts_set_workers(o, 1) == MPX_OK &&
                mpx_pool_opts_set_task_capacity(o, 4096) == MPX_OK &&
                mpx_pool_opts_set_result_capacity(o, 4096) == MPX_OK,
            "small-queue options");
    REQUIRE(mpx_pool_create(NULL, o, r, &p) == MPX_OK, "a pool with 4 KiB queues");
    mpx_pool_opts_free(o);
    static uint8_t large[20000];
    CHECK_STATUS(mpx_pool_submit(p, "square", large, sizeof large, &id2), MPX_E_TOO_BIG, "",
                 "a task of 20000 bytes into a 4 KiB task queue");
    uint64_t big = submit_u64(p, "big", 20000);
    CHECK_STATUS(mpx_pool_wait(p, big, W, &out, &len), MPX_E_TOO_BIG, "does not fit the result queue",
                 "a result of 20000 bytes fails its task");
    uint64_t small = submit_u64(p, "big", 1000);
    out = NULL;
    CHECK_STATUS(mpx_pool_wait(p, small, W, &out, &len), MPX_OK, "", "a result of 1000 bytes arrives");
    CHECK(out && len == 1000 && out[0] == 7 && out[999] == 7, "all 1000 bytes");
    mpx_free(out);
    mpx_pool_free(p);
    /* The registry outlived the pools made from it. */
    mpx_pool_registry_free(r);
}

static void test_bad_arguments(void) {
    mpx_pool_registry *r = registry();
    mpx_pool *p = NULL;
    CHECK_STATUS(mpx_pool_create(NULL, NULL, NULL, &p), MPX_E_INVALID, "reg is NULL", "create without a registry");
    CHECK_STATUS(mpx_pool_create(NULL, NULL, r, NULL), MPX_E_INVALID, "out", "create without out");
    mpx_pool_opts *o = NULL;
    REQUIRE(mpx_pool_opts_new(&o) == MPX_OK, "options");
    CHECK_STATUS(mpx_pool_opts_set_workers(o, 2000), MPX_OK, "", "2000 workers is checked at create");
    CHECK_STATUS(mpx_pool_create(NULL, o, r, &p), MPX_E_INVALID, "2000 workers", "create with 2000 workers");
    CHECK(p == NULL, "no handle written");
    CHECK_STATUS(mpx_pool_opts_set_workers(NULL, 1), MPX_E_INVALID, "opts is NULL", "set_workers(NULL)");
    CHECK_STATUS(mpx_pool_create("", NULL, r, &p), MPX_E_INVALID, "", "create with an empty name");
    mpx_pool_opts_free(o);
    char longname[300];
    memset(longname, 'f', 256);
    longname[256] = 0;
    CHECK_STATUS(mpx_pool_registry_add(r, longname, f_square, NULL), MPX_E_INVALID, "256 bytes",
                 "register a 256-byte name");
    CHECK_STATUS(mpx_pool_registry_add(r, "", f_square, NULL), MPX_E_INVALID, "0 bytes", "register an empty name");
    CHECK_STATUS(mpx_pool_registry_add(r, "x", NULL, NULL), MPX_E_INVALID, "func is NULL", "register NULL");

    p = make_pool(NULL, 1, 0);
    uint64_t id = 0;
    CHECK_STATUS(mpx_pool_submit(p, longname, NULL, 0, &id), MPX_E_INVALID, "256 bytes", "submit a 256-byte name");
    CHECK_STATUS(mpx_pool_submit(p, NULL, NULL, 0, &id), MPX_E_INVALID, "fname is NULL", "submit a NULL name");
    CHECK_STATUS(mpx_pool_submit(p, "square", NULL, 8, &id), MPX_E_INVALID, "args is NULL", "NULL args with length 8");
    CHECK_STATUS(mpx_pool_submit(NULL, "square", NULL, 0, &id), MPX_E_INVALID, "pool is NULL", "submit to NULL");
    uint8_t *out = NULL;
    size_t len = 0;
    id = submit_u64(p, "square", 2);
    CHECK_STATUS(mpx_pool_wait(p, id, -5, &out, &len), MPX_E_INVALID, "negative", "wait with timeout -5");
    CHECK_STATUS(mpx_pool_wait(p, id, W, NULL, &len), MPX_E_INVALID, "out", "wait with NULL out");
    CHECK(wait_u64(p, id) == 4, "the task is still there after the refused waits");
    int32_t pid;
    uint32_t state;
    uint64_t t, d, f;
    CHECK_STATUS(mpx_pool_worker(p, 1, &pid, &state, &t, &d, &f), MPX_E_INVALID, "slot 1 of 1", "slot out of range");
    CHECK(mpx_pool_size(NULL) == 0 && mpx_pool_name(NULL) == NULL, "size and name of NULL");
    mpx_pool_free(p);
    mpx_pool_free(NULL);
    mpx_pool_registry_free(r);
    mpx_pool_registry_free(NULL);
    mpx_pool_opts_free(NULL);

    /* A task function called directly on an outcome of one's own. */
    mpx_task_out *to = NULL;
    REQUIRE(mpx_task_out_new(&to) == MPX_OK, "task_out_new");
    const uint8_t *data = NULL;
    CHECK_STATUS(mpx_task_out_result(to, &data, &len), MPX_E_STATE, "nothing was set", "an outcome not set");
    uint64_t seven = 7;
    CHECK(f_square(NULL, (const uint8_t *)&seven, 8, to) == 0, "square(7) called directly");
    CHECK_STATUS(mpx_task_out_result(to, &data, &len), MPX_OK, "", "its outcome");
    CHECK(len == 8 && get_u64(data) == 49, "49");
    CHECK(f_square(NULL, (const uint8_t *)&seven, 3, to) == MPX_OK, "square of 3 bytes sets an error");
    CHECK_STATUS(mpx_task_out_result(to, &data, &len), MPX_E_INVALID, "ValueError: need 8 bytes", "its outcome");
    CHECK_STATUS(mpx_task_out_error(to, 0, NULL, "m", NULL), MPX_E_INVALID, "not an MPX_E_* code", "error status 0");
    CHECK_STATUS(mpx_task_out_error(to, 5, NULL, "m", NULL), MPX_E_INVALID, "not an MPX_E_* code", "error status 5");
    CHECK_STATUS(mpx_task_out_error(to, MPX_E_BROKEN, NULL, NULL, NULL), MPX_E_INVALID, "message is NULL",
                 "error without a message");
    CHECK_STATUS(mpx_task_out_set(to, NULL, 0), MPX_OK, "", "set an empty result (NULL, 0)");
    CHECK_STATUS(mpx_task_out_set(to, NULL, 1), MPX_E_INVALID, "data is NULL", "set NULL with length 1");
    mpx_task_out_free(to);
    mpx_task_out_free(NULL);
}

int main(void) {
    t_init("test_pool");
    test_results();
    test_errors();
    test_dead_workers();
    test_lifecycle();
    test_bad_arguments();
    return t_finish();
}
