/* test_value: the C API of shared values and arrays: typecodes, the typed-bytes get/set, int64
 * and double helpers, bulk read/write, the embedded lock, zero-copy pointer, read-only opens,
 * processes sharing a value, bad input. */
#include "testutil_sync.h"

static void test_types(void) {
    const char codes[] = "cubBhHiIlLqQfd";
    const size_t sizes[] = {1, 4, 1, 1, 2, 2, 4, 4, sizeof(long), sizeof(unsigned long), 8, 8, 4, 8};
    int ok = 1;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        mpx_value *v = NULL;
        if (mpx_value_create_anonymous(codes[i], 3, NULL, 0, 0, &v) != MPX_OK) {
            ok = 0;
            continue;
        }
        ok &= mpx_value_typecode(v) == codes[i] && mpx_value_itemsize(v) == sizes[i] && mpx_value_count(v) == 3;
        ok &= ((uintptr_t)mpx_value_ptr(v) % 64) == 0;
        mpx_value_close(v);
    }
    CHECK(ok, "every typecode: itemsize, count, 64-byte aligned data");
    mpx_value *v = NULL;
    CHECK_STATUS(mpx_value_create_anonymous('z', 1, NULL, 0, 0, &v), MPX_E_INVALID, "unknown typecode", "typecode 'z'");
    int32_t init[2] = {1, 2};
    CHECK_STATUS(mpx_value_create_anonymous('i', 3, init, sizeof init, 0, &v), MPX_E_INVALID, "initial data", "init size mismatch");
    CHECK_STATUS(mpx_value_create_anonymous('i', 3, NULL, 12, 0, &v), MPX_E_INVALID, "init is NULL", "init NULL with a size");
    CHECK_STATUS(mpx_value_create_anonymous('i', 1, NULL, 0, MPX_F_UNLINK_ON_LAST_CLOSE, &v), MPX_E_INVALID, "only MPX_VALUE_LOCK", "object flags on an anonymous value");
    CHECK_STATUS(mpx_value_create_anonymous('q', SIZE_MAX / 4, NULL, 0, 0, &v), MPX_E_INVALID, "too large", "huge count");
}

static void test_access(void) {
    const char *n = t_name("val");
    double init[3] = {1.5, -2.25, 1e300};
    mpx_value *v = NULL, *o = NULL;
    REQUIRE(mpx_value_create(n, 'd', 3, init, sizeof init, 0, &v) == MPX_OK, "array of 3 doubles");
    REQUIRE(mpx_value_open(n, 0, &o) == MPX_OK, "open");
    CHECK(strcmp(mpx_value_name(o), n) == 0, "name");
    double d = 0;
    CHECK_STATUS(mpx_value_get(o, 2, &d, sizeof d), MPX_OK, "", "get element 2");
    CHECK(d == 1e300, "initial value seen by the opener");
    d = 42.5;
    CHECK_STATUS(mpx_value_set(v, 0, &d, sizeof d), MPX_OK, "", "set element 0");
    CHECK(((double *)mpx_value_ptr(o))[0] == 42.5, "zero-copy pointer sees it");
    float f = 0;
    CHECK_STATUS(mpx_value_get(o, 0, &f, sizeof f), MPX_E_INVALID, "elements are 8 bytes", "get with the wrong size");
    CHECK_STATUS(mpx_value_get(o, 3, &d, sizeof d), MPX_E_INVALID, "out of range", "index 3 of 3");
    CHECK_STATUS(mpx_value_get_f64(o, 1, &d), MPX_OK, "", "get_f64");
    CHECK(d == -2.25, "get_f64 value");
    int64_t i64 = 0;
    CHECK_STATUS(mpx_value_get_i64(o, 1, &i64), MPX_E_INVALID, "integer typecode", "get_i64 on doubles");
    double out[2];
    CHECK_STATUS(mpx_value_read(o, 1, out, sizeof out), MPX_OK, "", "read elements 1..3");
    CHECK(out[0] == -2.25 && out[1] == 1e300, "read values");
    CHECK_STATUS(mpx_value_read(o, 2, out, sizeof out), MPX_E_INVALID, "out of range", "read past the end");
    CHECK_STATUS(mpx_value_read(o, 0, out, 5), MPX_E_INVALID, "whole number", "read 5 bytes");
    double zeros[3] = {0, 0, 0};
    CHECK_STATUS(mpx_value_write(o, 0, zeros, sizeof zeros), MPX_OK, "", "write all");
    CHECK_STATUS(mpx_value_get_f64(v, 2, &d), MPX_OK, "", "get_f64");
    CHECK(d == 0, "written");
    CHECK_STATUS(mpx_value_get(NULL, 0, &d, sizeof d), MPX_E_INVALID, "NULL", "get(NULL)");
    CHECK_STATUS(mpx_value_get(o, 0, NULL, sizeof d), MPX_E_INVALID, "NULL", "get(out NULL)");
    CHECK_STATUS(mpx_value_set(o, 0, NULL, sizeof d), MPX_E_INVALID, "NULL", "set(in NULL)");
    CHECK(mpx_value_typecode(NULL) == 0 && mpx_value_ptr(NULL) == NULL && mpx_value_count(NULL) == 0 && !mpx_value_has_lock(NULL),
          "getters on NULL");
    mpx_lock *l = NULL;
    CHECK_STATUS(mpx_lock_open(n, 0, &l), MPX_E_KIND, "not a lock", "open a value as a lock");

    /* Read-only. */
    mpx_value *r = NULL;
    REQUIRE(mpx_value_open(n, MPX_F_READ_ONLY, &r) == MPX_OK, "open read-only");
    CHECK_STATUS(mpx_value_get_f64(r, 0, &d), MPX_OK, "", "get on read-only");
    CHECK_STATUS(mpx_value_set_f64(r, 0, 1.0), MPX_E_PERMISSION, "read-only", "set on read-only");
    mpx_value_close(r);
    mpx_value_close(o);
    mpx_value_close(v);
    CHECK_STATUS(mpx_value_unlink(n), MPX_OK, "", "unlink");
}

static void test_int_helpers(void) {
    mpx_value *v = NULL;
    REQUIRE(mpx_value_create_anonymous('h', 2, NULL, 0, 0, &v) == MPX_OK, "shorts");
    CHECK_STATUS(mpx_value_set_i64(v, 0, -32768), MPX_OK, "", "set -32768");
    CHECK_STATUS(mpx_value_set_i64(v, 0, 32768), MPX_E_INVALID, "out of range", "set 32768 into 'h'");
    int64_t x = 0, old = 0;
    CHECK_STATUS(mpx_value_fetch_add_i64(v, 0, -1, &old), MPX_OK, "", "fetch_add -1");
    CHECK_STATUS(mpx_value_get_i64(v, 0, &x), MPX_OK, "", "get");
    CHECK(old == -32768 && x == 32767, "wraps like C short (%lld -> %lld)", (long long)old, (long long)x);
    int16_t s = 7;
    CHECK_STATUS(mpx_value_set(v, 1, &s, sizeof s), MPX_OK, "", "typed-bytes set");
    CHECK_STATUS(mpx_value_get_i64(v, 1, &x), MPX_OK, "", "get_i64");
    CHECK(x == 7, "7");
    CHECK_STATUS(mpx_value_set_f64(v, 0, 1.0), MPX_E_INVALID, "float typecode", "set_f64 on 'h'");
    mpx_value_close(v);
    REQUIRE(mpx_value_create_anonymous('Q', 1, NULL, 0, 0, &v) == MPX_OK, "unsigned long long");
    uint64_t big = UINT64_MAX;
    mpx_value_set(v, 0, &big, sizeof big);
    CHECK_STATUS(mpx_value_get_i64(v, 0, &x), MPX_E_INVALID, "does not fit", "get_i64 of UINT64_MAX");
    CHECK_STATUS(mpx_value_set_i64(v, 0, -1), MPX_E_INVALID, "out of range", "set -1 into 'Q'");
    mpx_value_close(v);
}

struct inc_arg {
    mpx_value *v;
    int n;
    int locked;
};

static int inc_child(void *p) {
    struct inc_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        if (a->locked) {
            if (mpx_value_acquire(a->v, TS_WAIT) != MPX_OK) return 1;
            int64_t x = 0;
            mpx_value_get_i64(a->v, 0, &x);
            mpx_value_set_i64(a->v, 0, x + 1);
            if (mpx_value_release(a->v) != MPX_OK) return 2;
        } else if (mpx_value_fetch_add_i64(a->v, 0, 1, NULL) != MPX_OK) {
            return 3;
        }
    }
    return 0;
}

static int foreign_release(void *p) { return mpx_value_release((mpx_value *)p) == MPX_E_STATE ? 0 : 1; }

static void test_lock_and_processes(void) {
    mpx_value *raw = NULL, *v = NULL;
    REQUIRE(mpx_value_create_anonymous('i', 1, NULL, 0, 0, &raw) == MPX_OK, "raw value");
    CHECK(!mpx_value_has_lock(raw), "no lock");
    CHECK_STATUS(mpx_value_acquire(raw, 0), MPX_E_UNSUPPORTED, "without a lock", "acquire on a raw value");
    struct inc_arg a = {raw, 100000, 0};
    pid_t p1 = ts_fork(inc_child, &a), p2 = ts_fork(inc_child, &a);
    int ok = t_exited(t_wait(p1, 60), 0) & t_exited(t_wait(p2, 60), 0);
    int64_t x = 0;
    mpx_value_get_i64(raw, 0, &x);
    CHECK(ok && x == 200000, "two processes x 100000 fetch_add: %lld", (long long)x);

    REQUIRE(mpx_value_create_anonymous('q', 1, NULL, 0, MPX_VALUE_LOCK, &v) == MPX_OK, "value with a lock");
    CHECK(mpx_value_has_lock(v), "has a lock");
    CHECK_STATUS(mpx_value_acquire(v, 0), MPX_OK, "", "acquire");
    CHECK_STATUS(mpx_value_acquire(v, 0), MPX_OK, "", "acquire again (recursive, like Python's RLock)");
    pid_t p = ts_fork(foreign_release, v);
    CHECK(t_exited(t_wait(p, 20), 0), "another process cannot release it");
    CHECK_STATUS(mpx_value_release(v), MPX_OK, "", "release");
    CHECK_STATUS(mpx_value_release(v), MPX_OK, "", "release");
    CHECK_STATUS(mpx_value_release(v), MPX_E_STATE, "not held", "release when not held");
    struct inc_arg b = {v, 50000, 1};
    p1 = ts_fork(inc_child, &b);
    p2 = ts_fork(inc_child, &b);
    ok = t_exited(t_wait(p1, 60), 0) & t_exited(t_wait(p2, 60), 0);
    mpx_value_get_i64(v, 0, &x);
    CHECK(ok && x == 100000, "two processes x 50000 increments under the value's lock: %lld", (long long)x);
    mpx_value_close(v);
    mpx_value_close(raw);
}

int main(void) {
    t_init("test_value");
    test_types();
    test_access();
    test_int_helpers();
    test_lock_and_processes();
    return t_finish();
}
