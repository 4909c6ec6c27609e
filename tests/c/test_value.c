/* test_value: the C API of shared values and arrays: typecodes, the typed-bytes get/set, int64
 * and double helpers, bulk read/write, the embedded lock, zero-copy pointer, read-only opens,
 * processes sharing a value, bad input, element pointers for inline atomics (mpx_value_int_ptr and
 * the header's mpx_elem_* helpers). */
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

static void test_int_ptr(void) {
    mpx_value *v = NULL, *d = NULL;
    void *e = (void *)&e, *const sentinel = (void *)&e;
    REQUIRE(mpx_value_create_anonymous('i', 3, NULL, 0, 0, &v) == MPX_OK, "ints");
    CHECK_STATUS(mpx_value_int_ptr(NULL, 0, 4, true, &e), MPX_E_INVALID, "NULL", "int_ptr(NULL value)");
    CHECK(e == sentinel, "out not written on failure");
    CHECK_STATUS(mpx_value_int_ptr(v, 0, 4, true, NULL), MPX_E_INVALID, "NULL", "int_ptr(out NULL)");
    CHECK_STATUS(mpx_value_int_ptr(v, 3, 4, true, &e), MPX_E_INVALID, "out of range", "index 3 of 3");
    CHECK_STATUS(mpx_value_int_ptr(v, SIZE_MAX, 4, true, &e), MPX_E_INVALID, "out of range", "index SIZE_MAX");
    CHECK_STATUS(mpx_value_int_ptr(v, 0, 8, true, &e), MPX_E_INVALID, "4-byte elements", "size 8 for 'i'");
    CHECK_STATUS(mpx_value_int_ptr(v, 0, 0, true, &e), MPX_E_INVALID, "4-byte elements", "size 0");
    CHECK(e == sentinel, "out still not written");
    CHECK_STATUS(mpx_value_int_ptr(v, 2, 4, true, &e), MPX_OK, "", "element 2");
    CHECK(e == (char *)mpx_value_ptr(v) + 8 && (uintptr_t)e % 4 == 0, "the element's address, naturally aligned");
    CHECK(mpx_elem_fetch_add_i32(e, 5) == 0 && mpx_elem_fetch_add_i32(e, -7) == 5, "inline fetch_add returns the old value");
    int64_t x = 0;
    CHECK_STATUS(mpx_value_get_i64(v, 2, &x), MPX_OK, "", "get_i64");
    CHECK(x == -2, "the library sees the inline adds (%lld)", (long long)x);
    mpx_elem_store_i32(e, INT32_MAX);
    CHECK(mpx_elem_fetch_add_i32(e, 1) == INT32_MAX && mpx_elem_load_i32(e) == INT32_MIN, "wraps in the element's width");
    CHECK_STATUS(mpx_value_set_i64(v, 2, 41), MPX_OK, "", "set_i64");
    CHECK(mpx_elem_load_i32(e) == 41, "the inline load sees the library's store");
    mpx_value_close(v);

    REQUIRE(mpx_value_create_anonymous('d', 1, NULL, 0, 0, &d) == MPX_OK, "a double");
    CHECK_STATUS(mpx_value_int_ptr(d, 0, 8, true, &e), MPX_E_INVALID, "integer typecode", "int_ptr on 'd'");
    mpx_value_close(d);

    /* Every integer width, at the edge where it wraps, as mpx_value_fetch_add_i64 does. */
    const char codes[] = "bBhHiIqQ";
    int ok = 1;
    for (const char *c = codes; *c; c++) {
        REQUIRE(mpx_value_create_anonymous(*c, 1, NULL, 0, 0, &v) == MPX_OK, "an integer value");
        size_t sz = mpx_value_itemsize(v);
        ok &= mpx_value_int_ptr(v, 0, sz, true, &e) == MPX_OK && (uintptr_t)e % sz == 0;
        int64_t got = 0, want = 0;
        switch (*c) {
        case 'b': mpx_elem_store_i8(e, INT8_MAX); got = mpx_elem_fetch_add_i8(e, 1); got = mpx_elem_load_i8(e); want = INT8_MIN; break;
        case 'B': got = mpx_elem_fetch_add_u8(e, UINT8_MAX); got = mpx_elem_fetch_add_u8(e, 1); got = mpx_elem_load_u8(e); want = 0; break;
        case 'h': mpx_elem_store_i16(e, INT16_MIN); mpx_elem_fetch_add_i16(e, -1); got = mpx_elem_load_i16(e); want = INT16_MAX; break;
        case 'H': mpx_elem_fetch_add_u16(e, (uint16_t)-3); got = mpx_elem_load_u16(e); want = UINT16_MAX - 2; break;
        case 'i': mpx_elem_fetch_add_i32(e, -9); got = mpx_elem_load_i32(e); want = -9; break;
        case 'I': mpx_elem_fetch_add_u32(e, UINT32_MAX); got = mpx_elem_load_u32(e); want = UINT32_MAX; break;
        case 'q': mpx_elem_store_i64(e, INT64_MAX); got = mpx_elem_fetch_add_i64(e, 1); want = INT64_MAX; break;
        case 'Q': mpx_elem_fetch_add_u64(e, 1ull << 40); got = (int64_t)mpx_elem_load_u64(e); want = 1ll << 40; break;
        }
        int64_t lib = 0;
        if (*c != 'q') ok &= mpx_value_get_i64(v, 0, &lib) == MPX_OK && lib == want;
        else ok &= mpx_value_get_i64(v, 0, &lib) == MPX_OK && lib == INT64_MIN;
        if (got != want) {
            ok = 0;
            fprintf(stderr, "test_value: '%c': inline %lld, want %lld (library %lld)", *c, (long long)got, (long long)want, (long long)lib);
        }
        mpx_value_close(v);
    }
    CHECK(ok, "every integer width: inline load/store/fetch_add agree with the library, wrapping");

    /* A read-only handle gives a read pointer only. */
    const char *n = t_name("ptr");
    mpx_value *w = NULL, *ro = NULL;
    REQUIRE(mpx_value_create(n, 'q', 2, NULL, 0, 0, &w) == MPX_OK, "named array");
    REQUIRE(mpx_value_open(n, MPX_F_READ_ONLY, &ro) == MPX_OK, "open read-only");
    CHECK_STATUS(mpx_value_int_ptr(ro, 1, 8, true, &e), MPX_E_PERMISSION, "read-only", "a write pointer from a read-only handle");
    CHECK_STATUS(mpx_value_int_ptr(ro, 1, 8, false, &e), MPX_OK, "", "a read pointer from a read-only handle");
    mpx_value_set_i64(w, 1, 1234);
    CHECK(mpx_elem_load_i64(e) == 1234, "the reader's inline load sees the writer's store");
    mpx_value_close(ro);
    mpx_value_close(w);
    mpx_value_unlink(n);
}

/* A child adding 1 n times inline through the element's address (inherited over fork: the
 * mapping is shared, so the address is valid in the child). */
struct elem_arg {
    void *elem;
    int n;
};

static int elem_child(void *p) {
    struct elem_arg *a = p;
    for (int i = 0; i < a->n; i++) mpx_elem_fetch_add_i64(a->elem, 1);
    return 0;
}

/* Another process opening the value by name, asking for its own pointer, adding inline. */
static int elem_open_child(void *p) {
    const char *name = p;
    mpx_value *v = NULL;
    void *e = NULL;
    if (mpx_value_open(name, 0, &v) != MPX_OK) return 1;
    if (mpx_value_int_ptr(v, 1, 8, true, &e) != MPX_OK) return 2;
    for (int i = 0; i < 100000; i++) mpx_elem_fetch_add_i64(e, 1);
    mpx_value_close(v);
    return 0;
}

static void test_int_ptr_processes(void) {
    mpx_value *v = NULL;
    void *e = NULL;
    REQUIRE(mpx_value_create_anonymous('q', 1, NULL, 0, 0, &v) == MPX_OK, "anonymous 'q'");
    REQUIRE(mpx_value_int_ptr(v, 0, 8, true, &e) == MPX_OK, "element pointer");
    struct elem_arg a = {e, 200000};
    pid_t p1 = ts_fork(elem_child, &a), p2 = ts_fork(elem_child, &a);
    int ok = t_exited(t_wait(p1, 60), 0) & t_exited(t_wait(p2, 60), 0);
    int64_t x = 0;
    mpx_value_get_i64(v, 0, &x);
    CHECK(ok && x == 400000, "two processes x 200000 inline fetch_add: %lld", (long long)x);
    mpx_value_close(v);

    /* Named, each process with its own mapping (another address), mixed with library calls. */
    const char *n = t_name("ptrproc");
    REQUIRE(mpx_value_create(n, 'q', 2, NULL, 0, 0, &v) == MPX_OK, "named 'q' x 2");
    p1 = ts_fork(elem_open_child, (void *)n);
    p2 = ts_fork(elem_open_child, (void *)n);
    for (int i = 0; i < 100000; i++) mpx_value_fetch_add_i64(v, 1, 1, NULL);
    ok = t_exited(t_wait(p1, 60), 0) & t_exited(t_wait(p2, 60), 0);
    mpx_value_get_i64(v, 1, &x);
    CHECK(ok && x == 300000, "two openers inline + the creator through the library: %lld", (long long)x);
    mpx_value_close(v);
    mpx_value_unlink(n);
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
    test_int_ptr();
    test_int_ptr_processes();
    return t_finish();
}
