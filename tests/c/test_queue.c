/* test_queue.c: the queue C ABI (mpx_queue_*) from C, with real processes.
 *
 * Self-checking: prints one line per check and "test_queue: N passed, M failed"; exits non-zero
 * on any failure. Every child is reaped with a bounded wait; every name is removed at exit.
 */
#include "testutil.h"

#include <stdbool.h>

#define W (20LL * 1000 * 1000 * 1000) /* 20 s: every blocking call in the test is bounded */
#define MS (1000LL * 1000)

/* Message i of producer p: "p:i:" and a pattern, `len` bytes (len >= 16). */
static size_t make_msg(uint8_t *buf, unsigned p, unsigned i, size_t len) {
    int n = snprintf((char *)buf, len, "%02u:%08u:", p, i);
    for (size_t k = (size_t)n; k < len; k++) buf[k] = (uint8_t)(k * 31u + p * 7u + i);
    return len;
}

/* Checks a message and returns its producer and number through p and i; 0 if whole. */
static int check_msg(const uint8_t *m, size_t len, unsigned *p, unsigned *i) {
    uint8_t want[4096];
    if (len < 16 || len > sizeof want) return -1;
    if (sscanf((const char *)m, "%2u:%8u:", p, i) != 2) return -1;
    make_msg(want, *p, *i, len);
    return memcmp(m, want, len) == 0 ? 0 : -1;
}

static void test_basics(void) {
    const char *name = t_name("basic");
    mpx_queue *q = NULL, *q2 = NULL;
    CHECK_STATUS(mpx_queue_create(name, 1000, 0, 0, &q), MPX_OK, "", "create a named queue of 1000 bytes");
    REQUIRE(q != NULL, "create wrote the handle");
    CHECK(mpx_queue_capacity(q) == 4096 && mpx_queue_max_message(q) == 4088, "capacity %zu, max message %zu",
          mpx_queue_capacity(q), mpx_queue_max_message(q));
    CHECK(strcmp(mpx_queue_name(q), name) == 0 && t_exists(name), "named \"%s\", in /dev/shm", mpx_queue_name(q));
    CHECK(mpx_queue_variant(q) == 0 && mpx_queue_max_messages(q) == 0, "plain queue, no message limit");
    CHECK(mpx_queue_empty(q) && !mpx_queue_full(q) && mpx_queue_qsize(q) == 0, "a new queue is empty");

    CHECK_STATUS(mpx_queue_put(q, "hello", 5, 0), MPX_OK, "", "put");
    CHECK_STATUS(mpx_queue_put(q, NULL, 0, 0), MPX_OK, "", "put an empty message (NULL, 0)");
    CHECK(mpx_queue_qsize(q) == 2 && mpx_queue_bytes_used(q) == 16 + 8, "qsize 2, 24 ring bytes used");
    CHECK_STATUS(mpx_queue_open(name, 0, &q2), MPX_OK, "", "open a second handle");
    char buf[64];
    size_t len = 0;
    CHECK_STATUS(mpx_queue_get(q2, buf, sizeof buf, &len, 0), MPX_OK, "", "get through the second handle");
    CHECK(len == 5 && memcmp(buf, "hello", 5) == 0, "got \"hello\"");
    len = 99;
    CHECK_STATUS(mpx_queue_get(q2, NULL, 0, &len, 0), MPX_OK, "", "get the empty message into no buffer");
    CHECK(len == 0, "its length is 0");
    CHECK_STATUS(mpx_queue_get(q, buf, sizeof buf, &len, 0), MPX_E_EMPTY, "empty", "get from an empty queue, timeout 0");
    long long t0 = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK_STATUS(mpx_queue_get(q, buf, sizeof buf, &len, 20 * MS), MPX_E_TIMEOUT, "timed out", "get with a 20 ms timeout");
    clock_gettime(CLOCK_MONOTONIC, &b);
    t0 = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    CHECK(t0 >= 20 * MS && t0 < 2000 * MS, "it waited %lld ms", t0 / MS);

    /* A message larger than the buffer: the size needed, and it stays queued. */
    CHECK_STATUS(mpx_queue_put(q, "0123456789", 10, 0), MPX_OK, "", "put 10 bytes");
    len = 0;
    CHECK_STATUS(mpx_queue_get(q, buf, 4, &len, 0), MPX_E_BUFFER_TOO_SMALL, "10 bytes", "get into 4 bytes");
    CHECK(len == 10 && mpx_queue_qsize(q) == 1, "needed size 10 reported, message still queued");
    len = 0;
    CHECK_STATUS(mpx_queue_get(q, NULL, 0, &len, 0), MPX_E_BUFFER_TOO_SMALL, "", "ask the size with no buffer");
    CHECK(len == 10, "size 10");
    uint8_t *data = NULL;
    CHECK_STATUS(mpx_queue_get_alloc(q, &data, &len, 0), MPX_OK, "", "get_alloc");
    CHECK(data != NULL && len == 10 && memcmp(data, "0123456789", 10) == 0, "get_alloc returned the 10 bytes");
    mpx_free(data);

    int fd = -1;
    CHECK_STATUS(mpx_queue_fd(q, &fd), MPX_OK, "", "fd");
    CHECK(fd >= 0 && fcntl(fd, F_GETFD) >= 0, "fd %d is open", fd);
    mpx_queue_close(q2);
    CHECK_STATUS(mpx_queue_unlink_self(q), MPX_OK, "", "unlink_self");
    CHECK(!t_exists(name), "the name is gone");
    CHECK_STATUS(mpx_queue_unlink(name), MPX_E_NOT_FOUND, "no such object", "unlink again");
    CHECK_STATUS(mpx_queue_put(q, "x", 1, 0), MPX_OK, "", "the open handle keeps working");
    mpx_queue_close(q);
}

static void test_batches_and_zero_copy(void) {
    mpx_queue *q = NULL;
    REQUIRE(mpx_queue_create_anonymous(8192, 0, 0, &q) == MPX_OK, "create_anonymous");
    CHECK(mpx_queue_name(q)[0] == 0, "anonymous name is \"\"");
    /* put_many: a flat buffer and lengths. */
    uint8_t flat[4096];
    size_t lens[32], off = 0;
    for (unsigned i = 0; i < 20; i++) {
        lens[i] = 16 + i * 5;
        make_msg(flat + off, 1, i, lens[i]);
        off += lens[i];
    }
    CHECK_STATUS(mpx_queue_put_many(q, flat, lens, 20, 0), MPX_OK, "", "put_many of 20 messages");
    CHECK(mpx_queue_qsize(q) == 20, "qsize 20");
    CHECK_STATUS(mpx_queue_put_many(q, NULL, NULL, 0, 0), MPX_OK, "", "put_many of none");
    uint8_t out[4096];
    size_t got_lens[32], count = 0;
    CHECK_STATUS(mpx_queue_get_many(q, out, sizeof out, got_lens, 8, &count, 0), MPX_OK, "", "get_many up to 8");
    int ok = count == 8;
    off = 0;
    for (size_t k = 0; ok && k < count; k++) {
        unsigned p, i;
        ok = check_msg(out + off, got_lens[k], &p, &i) == 0 && p == 1 && i == k;
        off += got_lens[k];
    }
    CHECK(ok, "got messages 0..7 back to back in order (count %zu)", count);
    /* A buffer that holds only some: as many as fit. */
    CHECK_STATUS(mpx_queue_get_many(q, out, 100, got_lens, 32, &count, 0), MPX_OK, "", "get_many into 100 bytes");
    CHECK(count == 1 && got_lens[0] == 56, "one message (56 bytes) fit, count %zu", count);
    CHECK_STATUS(mpx_queue_get_many(q, out, 10, got_lens, 32, &count, 0), MPX_E_BUFFER_TOO_SMALL, "61 bytes",
                 "get_many when the first does not fit");
    CHECK(got_lens[0] == 61, "lens[0] reports 61 bytes needed");
    CHECK_STATUS(mpx_queue_get_many(q, out, sizeof out, got_lens, 32, &count, 0), MPX_OK, "", "get the rest");
    CHECK(count == 11 && mpx_queue_empty(q), "11 more, queue empty");
    CHECK_STATUS(mpx_queue_get_many(q, out, sizeof out, got_lens, 32, &count, 0), MPX_E_EMPTY, "", "get_many on empty");

    /* reserve / commit / abort. */
    void *w = NULL;
    CHECK_STATUS(mpx_queue_reserve(q, 1000, 0, &w), MPX_OK, "", "reserve 1000 bytes");
    CHECK(w != NULL && (uintptr_t)w % 8 == 0, "an 8-byte aligned pointer");
    memcpy(w, "zero-copy", 9);
    CHECK_STATUS(mpx_queue_put(q, "x", 1, 0), MPX_E_STATE, "reservation", "put while this thread holds a reservation");
    CHECK_STATUS(mpx_queue_commit(q, 1001), MPX_E_INVALID, "1000 bytes reserved", "commit more than reserved");
    CHECK_STATUS(mpx_queue_commit(q, 9), MPX_OK, "", "commit 9 bytes");
    CHECK_STATUS(mpx_queue_commit(q, 9), MPX_E_STATE, "no reservation", "commit again");
    CHECK_STATUS(mpx_queue_reserve(q, 10, 0, &w), MPX_OK, "", "reserve again");
    CHECK_STATUS(mpx_queue_abort(q), MPX_OK, "", "abort");
    CHECK_STATUS(mpx_queue_abort(q), MPX_E_STATE, "", "abort again");
    CHECK(mpx_queue_qsize(q) == 1, "only the committed message is queued");

    /* read / read_commit / read_abort. */
    const void *r = NULL;
    size_t len = 0;
    CHECK_STATUS(mpx_queue_read(q, 0, &r, &len), MPX_OK, "", "read in place");
    CHECK(len == 9 && memcmp(r, "zero-copy", 9) == 0, "sees \"zero-copy\" in place");
    CHECK_STATUS(mpx_queue_get(q, out, sizeof out, &len, 0), MPX_E_STATE, "in-place read", "get while reading in place");
    CHECK_STATUS(mpx_queue_read_abort(q), MPX_OK, "", "read_abort leaves it");
    CHECK(mpx_queue_qsize(q) == 1, "still queued");
    CHECK_STATUS(mpx_queue_read(q, 0, &r, &len), MPX_OK, "", "read again");
    CHECK_STATUS(mpx_queue_read_commit(q), MPX_OK, "", "read_commit removes it");
    CHECK(mpx_queue_empty(q), "empty");
    CHECK_STATUS(mpx_queue_read_commit(q), MPX_E_STATE, "", "read_commit with no read open");
    CHECK_STATUS(mpx_queue_read(q, 0, &r, &len), MPX_E_EMPTY, "", "read on empty");
    mpx_queue_close(q);
}

static void test_limits_and_full(void) {
    mpx_queue *q = NULL;
    REQUIRE(mpx_queue_create_anonymous(100, 3, 0, &q) == MPX_OK, "create with a limit of 3 messages");
    CHECK(mpx_queue_max_messages(q) == 3, "max_messages 3");
    for (int i = 0; i < 3; i++) mpx_queue_put(q, "m", 1, 0);
    CHECK(mpx_queue_full(q), "full at 3 messages");
    CHECK_STATUS(mpx_queue_put(q, "m", 1, 0), MPX_E_FULL, "no room", "put on a full queue, timeout 0");
    CHECK_STATUS(mpx_queue_put(q, "m", 1, 10 * MS), MPX_E_TIMEOUT, "timed out", "put with a 10 ms timeout");
    size_t lens[4] = {1, 1, 1, 1};
    CHECK_STATUS(mpx_queue_put_many(q, "abcd", lens, 4, MPX_FOREVER), MPX_E_TOO_BIG, "limit of 3",
                 "a batch over the message limit is TOO_BIG at once");
    static uint8_t big[5000];
    CHECK_STATUS(mpx_queue_put(q, big, 4089, MPX_FOREVER), MPX_E_TOO_BIG, "can never fit", "a message over 4088 bytes");
    void *w;
    CHECK_STATUS(mpx_queue_reserve(q, 4089, MPX_FOREVER, &w), MPX_E_TOO_BIG, "", "reserve over the limit");
    mpx_queue_close(q);
    REQUIRE(mpx_queue_create_anonymous(4000, 0, 0, &q) == MPX_OK, "create");
    CHECK_STATUS(mpx_queue_put(q, big, 4088, 0), MPX_OK, "", "the largest message fits an empty queue");
    CHECK(mpx_queue_full(q), "then the ring is full");
    mpx_queue_close(q);
}

static void test_bad_input(void) {
    mpx_queue *q = NULL, *sentinel = (mpx_queue *)&q;
    const char *name = t_name("bad");
    mpx_queue *out = sentinel;
    CHECK_STATUS(mpx_queue_create(name, 0, 0, 0, &out), MPX_E_INVALID, "capacity 0", "capacity 0");
    CHECK(out == sentinel && !t_exists(name), "nothing written, nothing created");
    CHECK_STATUS(mpx_queue_create(name, (size_t)MPX_QUEUE_MAX_CAPACITY + 1, 0, 0, &out), MPX_E_INVALID, "exceeds",
                 "capacity over the maximum");
    CHECK_STATUS(mpx_queue_create(name, 64, 0, MPX_QUEUE_JOINABLE | MPX_QUEUE_SIMPLE, &out), MPX_E_INVALID, "exclude",
                 "joinable and simple at once");
    CHECK_STATUS(mpx_queue_create(name, 64, 5, MPX_QUEUE_SIMPLE, &out), MPX_E_INVALID, "simple", "simple with a limit");
    CHECK_STATUS(mpx_queue_create(name, 64, 0, 0x400000, &out), MPX_E_INVALID, "unknown flag", "unknown flag bits");
    CHECK_STATUS(mpx_queue_create(NULL, 64, 0, 0, &out), MPX_E_INVALID, "name is NULL", "NULL name");
    CHECK_STATUS(mpx_queue_create("bad name", 64, 0, 0, &out), MPX_E_INVALID, "", "a name with a space");
    CHECK_STATUS(mpx_queue_create(name, 64, 0, 0, NULL), MPX_E_INVALID, "out", "NULL out");
    CHECK(!t_exists(name), "still nothing created");
    CHECK_STATUS(mpx_queue_create_anonymous(64, 0, MPX_F_UNLINK_ON_LAST_CLOSE, &out), MPX_E_INVALID, "named objects",
                 "anonymous with a named-object flag");
    CHECK_STATUS(mpx_queue_open(name, 0, &out), MPX_E_NOT_FOUND, "no such object", "open a missing queue");
    CHECK_STATUS(mpx_queue_open_fd(-1, 0, &out), MPX_E_INVALID, "", "open_fd(-1)");
    CHECK(out == sentinel, "out-param untouched by every failure");

    REQUIRE(mpx_queue_create(name, 64, 0, 0, &q) == MPX_OK, "create");
    CHECK_STATUS(mpx_queue_open(name, MPX_F_READ_ONLY, &out), MPX_E_INVALID, "read-only", "open read-only");
    mpx_lock *lock = NULL;
    CHECK_STATUS(mpx_lock_open(name, 0, &lock), MPX_E_KIND, "not a lock", "open the queue as a lock");
    const char *lname = t_name("lock");
    REQUIRE(mpx_lock_create(lname, 0, &lock) == MPX_OK, "create a lock");
    CHECK_STATUS(mpx_queue_open(lname, 0, &out), MPX_E_KIND, "a lock, not a queue", "open a lock as a queue");
    mpx_lock_close(lock);

    char buf[8];
    size_t len = 7, lens[2], count;
    const void *r;
    void *w;
    CHECK_STATUS(mpx_queue_put(NULL, "x", 1, 0), MPX_E_INVALID, "queue is NULL", "put on NULL");
    CHECK_STATUS(mpx_queue_put(q, NULL, 3, 0), MPX_E_INVALID, "data is NULL", "put NULL data with length 3");
    CHECK_STATUS(mpx_queue_put(q, "x", 1, -2), MPX_E_INVALID, "negative", "timeout -2");
    CHECK_STATUS(mpx_queue_get(q, buf, sizeof buf, NULL, 0), MPX_E_INVALID, "len", "get with NULL len");
    CHECK_STATUS(mpx_queue_get(q, NULL, 8, &len, 0), MPX_E_INVALID, "buf is NULL", "get with NULL buf and cap 8");
    CHECK(len == 7, "len untouched");
    CHECK_STATUS(mpx_queue_get(NULL, buf, 8, &len, 0), MPX_E_INVALID, "", "get on NULL");
    CHECK_STATUS(mpx_queue_get_alloc(q, NULL, &len, 0), MPX_E_INVALID, "", "get_alloc with NULL data");
    CHECK_STATUS(mpx_queue_put_many(q, "ab", NULL, 2, 0), MPX_E_INVALID, "lens is NULL", "put_many with NULL lens");
    size_t huge[2] = {SIZE_MAX, 2};
    CHECK_STATUS(mpx_queue_put_many(q, "ab", huge, 2, 0), MPX_E_INVALID, "", "put_many with lengths that overflow");
    CHECK_STATUS(mpx_queue_get_many(q, buf, 8, lens, 0, &count, 0), MPX_E_INVALID, "max_n", "get_many of 0");
    CHECK_STATUS(mpx_queue_get_many(q, buf, 8, NULL, 2, &count, 0), MPX_E_INVALID, "lens", "get_many with NULL lens");
    CHECK_STATUS(mpx_queue_get_many(q, buf, 8, lens, 2, NULL, 0), MPX_E_INVALID, "count", "get_many with NULL count");
    CHECK_STATUS(mpx_queue_reserve(q, 1, 0, NULL), MPX_E_INVALID, "ptr", "reserve with NULL ptr");
    CHECK_STATUS(mpx_queue_reserve(NULL, 1, 0, &w), MPX_E_INVALID, "", "reserve on NULL");
    CHECK_STATUS(mpx_queue_read(q, 0, NULL, &len), MPX_E_INVALID, "", "read with NULL ptr");
    CHECK_STATUS(mpx_queue_read(q, 0, &r, NULL), MPX_E_INVALID, "", "read with NULL len");
    CHECK_STATUS(mpx_queue_commit(NULL, 1), MPX_E_INVALID, "", "commit on NULL");
    CHECK_STATUS(mpx_queue_abort(NULL), MPX_E_INVALID, "", "abort on NULL");
    CHECK_STATUS(mpx_queue_read_commit(NULL), MPX_E_INVALID, "", "read_commit on NULL");
    CHECK_STATUS(mpx_queue_read_abort(NULL), MPX_E_INVALID, "", "read_abort on NULL");
    CHECK_STATUS(mpx_queue_shutdown(NULL), MPX_E_INVALID, "", "shutdown on NULL");
    CHECK_STATUS(mpx_queue_task_done(NULL), MPX_E_INVALID, "", "task_done on NULL");
    CHECK_STATUS(mpx_queue_join(NULL, 0), MPX_E_INVALID, "", "join on NULL");
    CHECK_STATUS(mpx_queue_fd(NULL, (int *)&len), MPX_E_INVALID, "", "fd on NULL");
    CHECK_STATUS(mpx_queue_fd(q, NULL), MPX_E_INVALID, "", "fd with NULL out");
    CHECK_STATUS(mpx_queue_unlink(NULL), MPX_E_INVALID, "", "unlink NULL");
    CHECK_STATUS(mpx_queue_unlink_self(NULL), MPX_E_INVALID, "", "unlink_self on NULL");
    CHECK(mpx_queue_qsize(NULL) == 0 && mpx_queue_empty(NULL) && !mpx_queue_full(NULL) && mpx_queue_capacity(NULL) == 0 &&
              mpx_queue_max_message(NULL) == 0 && mpx_queue_max_messages(NULL) == 0 && mpx_queue_bytes_used(NULL) == 0 &&
              mpx_queue_variant(NULL) == 0 && mpx_queue_unfinished(NULL) == 0 && mpx_queue_recoveries(NULL) == 0 &&
              !mpx_queue_is_shutdown(NULL) && mpx_queue_name(NULL) == NULL,
          "accessors give neutral values for NULL");
    mpx_queue_close(NULL);
    CHECK(1, "close(NULL) is a no-op");
    CHECK_STATUS(mpx_queue_task_done(q), MPX_E_UNSUPPORTED, "not a joinable queue", "task_done on a plain queue");
    mpx_queue_close(q);
}

/* Corrupt header and indices: reported as MPX_E_CORRUPT, never a crash. Offsets: the data
 * area is at 4096 (tail at +128, head at +320), the ring at 8192. */
static void test_corruption(void) {
    const char *name = t_name("corrupt");
    mpx_queue *q = NULL, *q2 = NULL;
    REQUIRE(mpx_queue_create(name, 4096, 0, 0, &q) == MPX_OK, "create");
    for (int i = 0; i < 3; i++) mpx_queue_put(q, "message", 7, 0);
    mpx_queue_close(q);
    uint8_t h[T_HEADER_SIZE];
    REQUIRE(t_read_header(name, h) == 0, "read the header");
    /* A flipped byte in the params (checksummed). */
    REQUIRE(t_patch(name, 64, 8, t_get64(h, 64) + 1, 0) == 0, "patch");
    CHECK_STATUS(mpx_queue_open(name, 0, &q2), MPX_E_CORRUPT, "checksum", "open with a damaged header");
    /* The ring size patched with a fixed checksum: checked against the layout. */
    REQUIRE(t_patch(name, 64, 8, 5000, 1) == 0, "patch");
    CHECK_STATUS(mpx_queue_open(name, 0, &q2), MPX_E_CORRUPT, "layout", "open with a ring size that is not a page multiple");
    REQUIRE(t_write_header(name, h) == 0, "restore the header");
    REQUIRE(mpx_queue_open(name, 0, &q2) == MPX_OK, "the restored queue opens");
    char path[300];
    t_path(path, sizeof path, name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    REQUIRE(fd >= 0, "open the file");
    uint64_t tail = 0, bad = 1ull << 50;
    REQUIRE(pread(fd, &tail, 8, 4096 + 128) == 8, "read the tail");
    CHECK(tail == 3 * 16, "the tail is 48 bytes (3 records of 16)");
    REQUIRE(pwrite(fd, &bad, 8, 4096 + 128) == 8, "spoil the tail");
    char buf[64];
    size_t len;
    CHECK_STATUS(mpx_queue_get(q2, buf, sizeof buf, &len, 0), MPX_E_CORRUPT, "corrupt", "get with a wild tail");
    REQUIRE(pwrite(fd, &tail, 8, 4096 + 128) == 8, "restore the tail");
    /* A put count written over (issue 11: qsize then read 1e19): never more than can fit. */
    uint64_t count = 0, huge = 10000000000000000000ull;
    REQUIRE(pread(fd, &count, 8, 4096 + 136) == 8 && count == 3, "read the put count");
    REQUIRE(pwrite(fd, &huge, 8, 4096 + 136) == 8, "spoil the put count");
    CHECK(mpx_queue_qsize(q2) == mpx_queue_capacity(q2) / 8, "qsize with a spoiled put count is the most the ring holds (%zu), not 1e19",
          mpx_queue_qsize(q2));
    REQUIRE(pwrite(fd, &count, 8, 4096 + 136) == 8, "restore the put count");
    CHECK(mpx_queue_qsize(q2) == 3, "qsize 3 again");
    uint32_t garbage[2] = {0xFFFFFFF0u, 0x12345678u};
    REQUIRE(pwrite(fd, garbage, 8, 8192) == 8, "spoil the first record's header");
    CHECK_STATUS(mpx_queue_get(q2, buf, sizeof buf, &len, 0), MPX_E_CORRUPT, "record", "get a garbage record");
    const void *r;
    CHECK_STATUS(mpx_queue_read(q2, 0, &r, &len), MPX_E_CORRUPT, "record", "read a garbage record");
    close(fd);
    mpx_queue_close(q2);
}

/* Two producer processes and two consumer processes; the consumers send back (producer,
 * number) pairs through a pipe; every message arrives exactly once and in order per producer. */
#define PER 5000
static void test_processes(void) {
    const char *name = t_name("mpmc");
    mpx_queue *q = NULL;
    REQUIRE(mpx_queue_create(name, 16384, 0, 0, &q) == MPX_OK, "create");
    int fds[2];
    REQUIRE(pipe(fds) == 0, "pipe");
    pid_t kids[4];
    for (int p = 0; p < 2; p++) {
        kids[p] = fork();
        if (kids[p] == 0) {
            mpx_queue *c = NULL;
            if (mpx_queue_open(name, 0, &c) != MPX_OK) _exit(10);
            uint8_t m[4096], flat[8 * 600];
            size_t lens[8];
            for (unsigned i = 0; i < PER;) {
                if (p == 0 || i % 5 != 0) {
                    size_t n = make_msg(m, (unsigned)p, i, 16 + (i * 13) % 500);
                    if (mpx_queue_put(c, m, n, W) != MPX_OK) _exit(11);
                    i++;
                } else {
                    size_t off = 0, k = 0;
                    for (; k < 8 && i + k < PER; k++) off += lens[k] = make_msg(flat + off, (unsigned)p, i + (unsigned)k, 16 + k * 60);
                    if (mpx_queue_put_many(c, flat, lens, k, W) != MPX_OK) _exit(12);
                    i += (unsigned)k;
                }
            }
            mpx_queue_close(c);
            _exit(0);
        }
    }
    for (int k = 0; k < 2; k++) {
        kids[2 + k] = fork();
        if (kids[2 + k] == 0) {
            close(fds[0]);
            mpx_queue *c = NULL;
            if (mpx_queue_open(name, 0, &c) != MPX_OK) _exit(10);
            uint8_t out[8192];
            size_t lens[16], count, len;
            int last[2] = {-1, -1};
            for (int round = 0;; round++) {
                mpx_status st;
                if (round % 2) {
                    st = mpx_queue_get_many(c, out, sizeof out, lens, 16, &count, W);
                } else {
                    st = mpx_queue_get(c, out, sizeof out, &len, W);
                    lens[0] = len;
                    count = 1;
                }
                if (st == MPX_E_CLOSED) break;
                if (st != MPX_OK) _exit(11);
                size_t off = 0;
                for (size_t j = 0; j < count; j++) {
                    unsigned p, i;
                    if (check_msg(out + off, lens[j], &p, &i) != 0 || p > 1) _exit(12);
                    if ((int)i <= last[p]) _exit(13);
                    last[p] = (int)i;
                    uint32_t pair[2] = {p, i};
                    if (write(fds[1], pair, sizeof pair) != sizeof pair) _exit(14);
                    off += lens[j];
                }
            }
            _exit(0);
        }
    }
    close(fds[1]);
    static uint8_t seen[2][PER];
    memset(seen, 0, sizeof seen);
    int dups = 0, total = 0;
    uint32_t pair[2];
    while (total < 2 * PER && t_read1(fds[0], (char *)pair, 20)) {
        if (read(fds[0], (char *)pair + 1, sizeof pair - 1) != sizeof pair - 1) break;
        if (pair[0] > 1 || pair[1] >= PER) break;
        dups += seen[pair[0]][pair[1]]++ != 0;
        total++;
    }
    CHECK(total == 2 * PER && dups == 0, "%d of %d messages received, %d twice", total, 2 * PER, dups);
    for (int p = 0; p < 2; p++) CHECK(t_exited(t_wait(kids[p], 30), 0), "producer %d finished", p);
    CHECK(mpx_queue_empty(q), "the queue is drained");
    CHECK_STATUS(mpx_queue_shutdown(q), MPX_OK, "", "shutdown");
    for (int k = 0; k < 2; k++) CHECK(t_exited(t_wait(kids[2 + k], 30), 0), "consumer %d saw every message whole and in order, then CLOSED", k);
    close(fds[0]);
    mpx_queue_close(q);
}

/* Blocked callers in other processes wake on shutdown; the queue drains, then CLOSED. */
static void test_shutdown(void) {
    /* The bounded form: with a reservation open (the producer side held), a shutdown that may
     * not wait changes nothing; once it is committed, the shutdown goes through. */
    mpx_queue *r = NULL;
    REQUIRE(mpx_queue_create_anonymous(4096, 0, 0, &r) == MPX_OK, "create");
    void *slot = NULL;
    REQUIRE(mpx_queue_reserve(r, 8, 0, &slot) == MPX_OK, "reserve");
    pid_t other = fork();
    if (other == 0) _exit(mpx_queue_shutdown_timeout(r, 50 * 1000 * 1000) == MPX_E_TIMEOUT && !mpx_queue_is_shutdown(r) ? 0 : 1);
    CHECK(t_exited(t_wait(other, 30), 0), "shutdown_timeout from another process while a reservation is open -> MPX_E_TIMEOUT, not shut down");
    CHECK_STATUS(mpx_queue_commit(r, 8), MPX_OK, "", "commit the reservation");
    CHECK_STATUS(mpx_queue_shutdown_timeout(r, 0), MPX_OK, "", "then shutdown_timeout(0)");
    CHECK(mpx_queue_is_shutdown(r), "the queue is shut down");
    CHECK_STATUS(mpx_queue_shutdown_timeout(r, -5), MPX_E_INVALID, "negative", "shutdown_timeout(-5)");
    mpx_queue_close(r);

    mpx_queue *full = NULL, *empty = NULL;
    REQUIRE(mpx_queue_create_anonymous(64, 1, 0, &full) == MPX_OK, "create");
    REQUIRE(mpx_queue_create_anonymous(64, 0, 0, &empty) == MPX_OK, "create");
    mpx_queue_put(full, "kept", 4, 0);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            char buf[8];
            size_t len;
            mpx_status st = k == 0 ? mpx_queue_put(full, "x", 1, MPX_FOREVER) : mpx_queue_get(empty, buf, 8, &len, MPX_FOREVER);
            _exit(st == MPX_E_CLOSED ? 0 : 20 - st);
        }
    }
    usleep(100 * 1000);
    CHECK_STATUS(mpx_queue_shutdown(full), MPX_OK, "", "shutdown the full queue");
    CHECK_STATUS(mpx_queue_shutdown(empty), MPX_OK, "", "shutdown the empty queue");
    CHECK(mpx_queue_is_shutdown(full) && mpx_queue_is_shutdown(empty), "both report it");
    CHECK(t_exited(t_wait(kids[0], 20), 0), "a put blocked on a full queue woke with MPX_E_CLOSED");
    CHECK(t_exited(t_wait(kids[1], 20), 0), "a get blocked on an empty queue woke with MPX_E_CLOSED");
    char buf[8];
    size_t len;
    CHECK_STATUS(mpx_queue_get(full, buf, 8, &len, MPX_FOREVER), MPX_OK, "", "what was put before is still delivered");
    CHECK_STATUS(mpx_queue_get(full, buf, 8, &len, MPX_FOREVER), MPX_E_CLOSED, "shut down", "then MPX_E_CLOSED");
    CHECK_STATUS(mpx_queue_put(full, "y", 1, MPX_FOREVER), MPX_E_CLOSED, "shut down", "put after shutdown");
    mpx_queue_close(full);
    mpx_queue_close(empty);
}

static void test_joinable(void) {
    mpx_queue *q = NULL;
    REQUIRE(mpx_queue_create_anonymous(4096, 0, MPX_QUEUE_JOINABLE, &q) == MPX_OK, "create a joinable queue");
    CHECK(mpx_queue_variant(q) == MPX_QUEUE_JOINABLE, "variant MPX_QUEUE_JOINABLE");
    CHECK_STATUS(mpx_queue_task_done(q), MPX_E_STATE, "more times", "task_done before any put");
    for (int i = 0; i < 10; i++) mpx_queue_put(q, "t", 1, 0);
    CHECK(mpx_queue_unfinished(q) == 10, "10 unfinished");
    CHECK_STATUS(mpx_queue_join(q, 0), MPX_E_TIMEOUT, "unfinished", "join with timeout 0");
    pid_t pid = fork();
    if (pid == 0) {
        char buf[4];
        size_t len;
        for (int i = 0; i < 10; i++) {
            if (mpx_queue_get(q, buf, 4, &len, W) != MPX_OK) _exit(10);
            usleep(1000);
            if (mpx_queue_task_done(q) != MPX_OK) _exit(11);
        }
        _exit(mpx_queue_task_done(q) == MPX_E_STATE ? 0 : 12);
    }
    CHECK_STATUS(mpx_queue_join(q, W), MPX_OK, "", "join returns once a worker process marked all 10 done");
    CHECK(mpx_queue_unfinished(q) == 0, "0 unfinished");
    CHECK(t_exited(t_wait(pid, 20), 0), "the worker's extra task_done was MPX_E_STATE");
    mpx_queue_close(q);
    REQUIRE(mpx_queue_create_anonymous(64, 0, MPX_QUEUE_SIMPLE, &q) == MPX_OK, "create a simple queue");
    CHECK(mpx_queue_variant(q) == MPX_QUEUE_SIMPLE, "variant MPX_QUEUE_SIMPLE");
    mpx_queue_close(q);
}

/* A consumer killed while it reads a message in place leaves it to the next consumer; a
 * producer killed with a reservation open leaves nothing. */
static void test_kills(void) {
    mpx_queue *q = NULL;
    REQUIRE(mpx_queue_create_anonymous(4096, 0, 0, &q) == MPX_OK, "create");
    mpx_queue_put(q, "precious", 8, 0);
    int sync[2];
    REQUIRE(pipe(sync) == 0, "pipe");
    pid_t pid = fork();
    if (pid == 0) {
        const void *r;
        size_t len;
        if (mpx_queue_read(q, W, &r, &len) != MPX_OK) _exit(10);
        if (write(sync[1], "r", 1) != 1) _exit(11);
        pause();
        _exit(0);
    }
    char c;
    CHECK(t_read1(sync[0], &c, 20), "the child reads in place");
    kill(pid, SIGKILL);
    CHECK(t_signaled(t_wait(pid, 20), SIGKILL), "and is killed");
    char buf[16];
    size_t len = 0;
    CHECK_STATUS(mpx_queue_get(q, buf, sizeof buf, &len, W), MPX_OK, "", "the next get takes the lock over");
    CHECK(len == 8 && memcmp(buf, "precious", 8) == 0, "and gets the dead reader's message");
    pid = fork();
    if (pid == 0) {
        void *w;
        if (mpx_queue_reserve(q, 100, W, &w) != MPX_OK) _exit(10);
        memcpy(w, "half", 4);
        if (write(sync[1], "w", 1) != 1) _exit(11);
        pause();
        _exit(0);
    }
    CHECK(t_read1(sync[0], &c, 20), "a child reserves and writes half a message");
    kill(pid, SIGKILL);
    CHECK(t_signaled(t_wait(pid, 20), SIGKILL), "and is killed");
    CHECK_STATUS(mpx_queue_put(q, "next", 4, W), MPX_OK, "", "the next put takes the lock over");
    CHECK_STATUS(mpx_queue_get(q, buf, sizeof buf, &len, W), MPX_OK, "", "get");
    CHECK(len == 4 && memcmp(buf, "next", 4) == 0 && mpx_queue_empty(q), "only the new message is there");
    CHECK(mpx_queue_recoveries(q) == 2, "two recoveries counted (%llu)", (unsigned long long)mpx_queue_recoveries(q));
    close(sync[0]);
    close(sync[1]);
    mpx_queue_close(q);
}

/* Cross-language: the C++ tool (tests/cpp/tool_queue.cpp, built next to this program by
 * `make native`) produces into a queue this C program consumes, and consumes what it produces. */
static uint32_t fnv(const uint8_t *p, size_t n) { return t_fnv1a(0x811c9dc5u, p, n); }

static pid_t run_tool(const char *tool, char *const argv[], int out_fd) {
    pid_t pid = fork();
    if (pid == 0) {
        if (out_fd >= 0) dup2(out_fd, 1);
        execv(tool, argv);
        _exit(127);
    }
    return pid;
}

static void test_cross_language(const char *self) {
    char tool[4096];
    const char *slash = strrchr(self, '/');
    snprintf(tool, sizeof tool, "%.*s/../cpp/tool_queue", slash ? (int)(slash - self) : 1, slash ? self : ".");
    REQUIRE(access(tool, X_OK) == 0, "the C++ tool %s exists (make native builds it)", tool);
    const char *name = t_name("cross");
    mpx_queue *q = NULL;
    REQUIRE(mpx_queue_create(name, 8192, 0, 0, &q) == MPX_OK, "create");
    /* C++ produces 2000 messages of 40 bytes, C consumes and checks them. */
    char *prod[] = {tool, "produce", (char *)name, "9", "2000", "40", NULL};
    pid_t pid = run_tool(tool, prod, -1);
    int bad = 0;
    for (unsigned i = 0; i < 2000 && !bad; i++) {
        char buf[64], want[64];
        size_t len;
        if (mpx_queue_get(q, buf, sizeof buf, &len, W) != MPX_OK) {
            bad = 1;
            break;
        }
        int n = snprintf(want, sizeof want, "9:%u|", i);
        memset(want + n, 'x', 40 - (size_t)n);
        bad = len != 40 || memcmp(buf, want, 40) != 0;
    }
    CHECK(!bad, "2000 messages from the C++ producer arrived whole, in order");
    CHECK(t_exited(t_wait(pid, 30), 0), "the C++ producer exited 0");
    /* C produces 1500 messages "5:SEQ", C++ consumes them with --exact and prints a checksum. */
    int fds[2];
    REQUIRE(pipe(fds) == 0, "pipe");
    char *cons[] = {tool, "consume", (char *)name, "1500", "--exact", NULL};
    pid = run_tool(tool, cons, fds[1]);
    close(fds[1]);
    uint32_t sum = 0;
    for (unsigned i = 0; i < 1500; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "5:%u", i);
        sum += fnv((const uint8_t *)m, (size_t)n);
        if (mpx_queue_put(q, m, (size_t)n, W) != MPX_OK) break;
    }
    char out[4096] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof out - 1 && (r = read(fds[0], out + got, sizeof out - 1 - got)) > 0) got += (size_t)r;
    close(fds[0]);
    CHECK(t_exited(t_wait(pid, 30), 0), "the C++ consumer checked 1500 messages and exited 0");
    char want[128];
    snprintf(want, sizeof want, "consumed 1500 messages, checksum %08x", sum);
    CHECK(strstr(out, want) != NULL && strstr(out, "producer 5: 1500 messages, seq 0..1499") != NULL,
          "it reports \"%s\"", want);
    mpx_queue_close(q);
}

int main(int argc, char **argv) {
    (void)argc;
    t_init("test_queue");
    test_basics();
    test_batches_and_zero_copy();
    test_limits_and_full();
    test_bad_input();
    test_corruption();
    test_processes();
    test_shutdown();
    test_joinable();
    test_kills();
    test_cross_language(argv[0]);
    return t_finish();
}
