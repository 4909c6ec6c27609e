/* test_shm.c: the shared-memory C ABI (mpx_shm_*) from C, with real processes.
 *
 * Self-checking: prints one line per check and "test_shm: N passed, M failed"; exits non-zero on
 * any failure. Every child is reaped with a bounded wait; every name is removed at exit.
 * Run with `--child-anon FD` it is the exec'd child of the anonymous-buffer test.
 */
#include "testutil.h"

#include <stdbool.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define SIZE 10000u

/* ---- exec'd child: opens an inherited anonymous buffer by fd, checks seed 5, writes seed 6 -- */
static int child_anon(const char *fdarg) {
    int fd = atoi(fdarg);
    mpx_shm *shm = NULL;
    if (mpx_shm_open_fd(fd, 0, &shm) != MPX_OK) {
        fprintf(stderr, "child: mpx_shm_open_fd(%d): %s\n", fd, mpx_last_error());
        return 10;
    }
    if (mpx_shm_size(shm) != SIZE) return 11;
    if (t_mismatch(mpx_shm_ptr(shm), SIZE, 5) != (size_t)-1) return 12;
    t_fill(mpx_shm_ptr(shm), SIZE, 6);
    mpx_shm_close(shm);
    return 0;
}

static void test_version(void) {
    CHECK(mpx_abi_version() == MPX_ABI_VERSION, "mpx_abi_version() == MPX_ABI_VERSION (%u)", mpx_abi_version());
    const char *v = mpx_version();
    CHECK(v != NULL && v[0] >= '0' && v[0] <= '9' && strchr(v, '.') != NULL, "mpx_version() = \"%s\"", v ? v : "(null)");
}

static void test_status_names(void) {
    static const struct {
        mpx_status code;
        const char *name;
    } table[] = {
        {MPX_OK, "MPX_OK"},
        {MPX_E_INVALID, "MPX_E_INVALID"},
        {MPX_E_NOT_FOUND, "MPX_E_NOT_FOUND"},
        {MPX_E_EXISTS, "MPX_E_EXISTS"},
        {MPX_E_TIMEOUT, "MPX_E_TIMEOUT"},
        {MPX_E_FULL, "MPX_E_FULL"},
        {MPX_E_EMPTY, "MPX_E_EMPTY"},
        {MPX_E_CLOSED, "MPX_E_CLOSED"},
        {MPX_E_TOO_BIG, "MPX_E_TOO_BIG"},
        {MPX_E_KIND, "MPX_E_KIND"},
        {MPX_E_VERSION, "MPX_E_VERSION"},
        {MPX_E_CORRUPT, "MPX_E_CORRUPT"},
        {MPX_E_PERMISSION, "MPX_E_PERMISSION"},
        {MPX_E_OWNER_DIED, "MPX_E_OWNER_DIED"},
        {MPX_E_WORKER_DIED, "MPX_E_WORKER_DIED"},
        {MPX_E_AUTH, "MPX_E_AUTH"},
        {MPX_E_OS, "MPX_E_OS"},
        {MPX_E_PANIC, "MPX_E_PANIC"},
        {MPX_E_BUFFER_TOO_SMALL, "MPX_E_BUFFER_TOO_SMALL"},
        {MPX_E_BROKEN, "MPX_E_BROKEN"},
        {MPX_E_STATE, "MPX_E_STATE"},
        {MPX_E_UNSUPPORTED, "MPX_E_UNSUPPORTED"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const char *n = mpx_status_name(table[i].code);
        if (n == NULL || strcmp(n, table[i].name) != 0) {
            printf("      mpx_status_name(%d) = \"%s\", wanted \"%s\"\n", table[i].code, n ? n : "(null)", table[i].name);
            bad++;
        }
    }
    CHECK(bad == 0, "mpx_status_name names all %zu codes", sizeof table / sizeof table[0]);
    const mpx_status unknown[] = {1, -22, 12345, INT32_MIN};
    bad = 0;
    for (size_t i = 0; i < 4; i++) {
        const char *n = mpx_status_name(unknown[i]);
        if (n == NULL || strcmp(n, "MPX_E_UNKNOWN") != 0) bad++;
    }
    CHECK(bad == 0, "mpx_status_name of 1, -22, 12345, INT32_MIN is MPX_E_UNKNOWN");
}

/* Create, inspect, write, open a second handle, read through it. */
static void test_create_open(void) {
    const char *name = t_name("basic");
    mpx_shm *a = NULL, *b = NULL;
    CHECK_STATUS(mpx_shm_create(name, SIZE, 0, &a), MPX_OK, "", "create");
    REQUIRE(a != NULL, "create wrote the handle");
    CHECK(mpx_shm_size(a) == SIZE, "size is %u (got %zu)", SIZE, mpx_shm_size(a));
    CHECK(strcmp(mpx_shm_name(a), name) == 0, "name is \"%s\"", mpx_shm_name(a));
    uint8_t *pa = mpx_shm_ptr(a);
    CHECK(pa != NULL && ((uintptr_t)pa % 4096) == 0, "data pointer %p is page-aligned", (void *)pa);
    size_t off = 0;
    CHECK_STATUS(mpx_shm_data_offset(a, &off), MPX_OK, "", "data_offset");
    CHECK(off >= 512 && off % 4096 == 0, "data offset %zu is a page multiple past the header", off);
    int fd = -1;
    CHECK_STATUS(mpx_shm_fd(a, &fd), MPX_OK, "", "fd");
    CHECK(fd >= 0 && fcntl(fd, F_GETFD) >= 0, "fd %d is open", fd);
    struct stat st;
    char path[300];
    t_path(path, sizeof path, name);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && (size_t)st.st_size == off + SIZE,
          "%s exists, mode 0600, %zu bytes", path, off + SIZE);
    size_t zeros = 0;
    for (size_t i = 0; i < SIZE; i++) zeros += pa[i] == 0;
    CHECK(zeros == SIZE, "a new buffer is zeroed");
    t_fill(pa, SIZE, 1);

    CHECK_STATUS(mpx_shm_open(name, 0, &b), MPX_OK, "", "open a second handle");
    REQUIRE(b != NULL, "open wrote the handle");
    CHECK(mpx_shm_size(b) == SIZE && strcmp(mpx_shm_name(b), name) == 0, "opened handle has the same size and name");
    CHECK(t_mismatch(mpx_shm_ptr(b), SIZE, 1) == (size_t)-1, "second handle reads what the first wrote");
    mpx_shm_ptr(b)[SIZE - 1] = 0xAB;
    CHECK(pa[SIZE - 1] == 0xAB, "a write through one handle is seen through the other");

    mpx_shm *c = (mpx_shm *)&fd; /* sentinel: must stay untouched on failure */
    CHECK_STATUS(mpx_shm_create(name, SIZE, 0, &c), MPX_E_EXISTS, "exists", "create an existing name");
    CHECK(c == (mpx_shm *)&fd, "out-param untouched on failure");
    CHECK(pa[0] == 1 && pa[SIZE - 1] == 0xAB, "the existing buffer is unchanged by the failed create");

    mpx_shm_close(b);
    CHECK(t_exists(name), "closing a handle does not remove the name");
    CHECK_STATUS(mpx_shm_unlink(name), MPX_OK, "", "unlink");
    CHECK(!t_exists(name), "unlink removes /dev/shm/mpx.<name>");
    CHECK(pa[0] == 1, "the open handle keeps working after unlink");
    CHECK_STATUS(mpx_shm_open(name, 0, &b), MPX_E_NOT_FOUND, "no such object", "open after unlink");
    CHECK_STATUS(mpx_shm_unlink(name), MPX_E_NOT_FOUND, name, "unlink twice");
    mpx_shm *d = NULL;
    CHECK_STATUS(mpx_shm_create(name, SIZE, 0, &d), MPX_OK, "", "create the name again");
    if (d) {
        CHECK(mpx_shm_ptr(d)[0] == 0, "the new object is a fresh zeroed buffer, not the unlinked one");
        mpx_shm_close(d);
        mpx_shm_unlink(name);
    }
    mpx_shm_close(a);
}

static void test_modes(void) {
    const struct {
        uint32_t flag;
        unsigned mode;
    } cases[] = {{MPX_F_MODE_GROUP, 0660}, {MPX_F_MODE_ALL, 0666}};
    for (int i = 0; i < 2; i++) {
        const char *name = t_name("mode");
        mpx_shm *s = NULL;
        struct stat st;
        char path[300];
        t_path(path, sizeof path, name);
        mode_t old = umask(022); /* the library must not let the umask narrow the mode */
        mpx_status r = mpx_shm_create(name, 64, cases[i].flag, &s);
        umask(old);
        CHECK(r == MPX_OK && stat(path, &st) == 0 && (st.st_mode & 0777) == cases[i].mode,
              "create with flag %u gives mode %o under umask 022", cases[i].flag, cases[i].mode);
        mpx_shm_close(s);
        mpx_shm_unlink(name);
    }
}

/* A forked child opens by name, verifies the parent's bytes and writes its own. */
static void test_fork_child(void) {
    const char *name = t_name("fork");
    mpx_shm *a = NULL;
    REQUIRE(mpx_shm_create(name, SIZE, 0, &a) == MPX_OK, "create");
    t_fill(mpx_shm_ptr(a), SIZE, 2);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        mpx_shm *b = NULL;
        if (mpx_shm_open(name, 0, &b) != MPX_OK) _exit(10);
        if (mpx_shm_size(b) != SIZE) _exit(11);
        if (t_mismatch(mpx_shm_ptr(b), SIZE, 2) != (size_t)-1) _exit(12);
        t_fill(mpx_shm_ptr(b), SIZE, 3);
        mpx_shm_close(b);
        _exit(0);
    }
    int status = t_wait(pid, 30);
    CHECK(t_exited(status, 0), "forked child opened by name, saw the parent's bytes, wrote (status %#x)", status);
    CHECK(t_mismatch(mpx_shm_ptr(a), SIZE, 3) == (size_t)-1, "parent sees every byte the child wrote");
    mpx_shm_close(a);
    mpx_shm_unlink(name);
}

static void test_anonymous(const char *self) {
    mpx_shm *a = NULL;
    CHECK_STATUS(mpx_shm_create_anonymous(SIZE, &a), MPX_OK, "", "create_anonymous");
    REQUIRE(a != NULL, "create_anonymous wrote the handle");
    CHECK(mpx_shm_size(a) == SIZE, "anonymous size is %u", SIZE);
    CHECK(mpx_shm_name(a) != NULL && mpx_shm_name(a)[0] == 0, "anonymous name is \"\"");
    CHECK(((uintptr_t)mpx_shm_ptr(a) % 4096) == 0, "anonymous data is page-aligned");
    int fd = -1;
    REQUIRE(mpx_shm_fd(a, &fd) == MPX_OK, "fd");
    CHECK(ftruncate(fd, 1 << 20) != 0 && errno == EPERM, "the memfd is sealed against resizing");
    t_fill(mpx_shm_ptr(a), SIZE, 4);

    /* Forked child: the fd is inherited as it is. */
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        mpx_shm *b = NULL;
        if (mpx_shm_open_fd(fd, 0, &b) != MPX_OK) _exit(10);
        if (mpx_shm_size(b) != SIZE) _exit(11);
        if (t_mismatch(mpx_shm_ptr(b), SIZE, 4) != (size_t)-1) _exit(12);
        t_fill(mpx_shm_ptr(b), SIZE, 5);
        mpx_shm_close(b);
        _exit(0);
    }
    int status = t_wait(pid, 30);
    CHECK(t_exited(status, 0), "forked child opened the anonymous buffer by fd and wrote (status %#x)", status);
    CHECK(t_mismatch(mpx_shm_ptr(a), SIZE, 5) == (size_t)-1, "parent sees the child's writes to the anonymous buffer");

    /* Exec'd child: the handle's fd is close-on-exec, so pass a duplicate that is not. */
    int keep = fcntl(fd, F_DUPFD, 3);
    REQUIRE(keep >= 0, "dup");
    pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        char arg[16];
        snprintf(arg, sizeof arg, "%d", keep);
        execl(self, self, "--child-anon", arg, (char *)NULL);
        _exit(127);
    }
    close(keep);
    status = t_wait(pid, 30);
    CHECK(t_exited(status, 0), "exec'd child opened the inherited fd, saw the bytes and wrote (status %#x)", status);
    CHECK(t_mismatch(mpx_shm_ptr(a), SIZE, 6) == (size_t)-1, "parent sees the exec'd child's writes");

    mpx_shm *r = NULL;
    CHECK_STATUS(mpx_shm_open_fd(fd, MPX_F_READ_ONLY, &r), MPX_OK, "", "open_fd read-only");
    CHECK(r && mpx_shm_ptr(r)[0] == mpx_shm_ptr(a)[0], "read-only fd view reads the same bytes");
    mpx_shm_close(r);
    mpx_shm *x = NULL;
    CHECK_STATUS(mpx_shm_open_fd(fd, MPX_F_UNLINK_ON_LAST_CLOSE, &x), MPX_E_INVALID, "named", "open_fd with UNLINK_ON_LAST_CLOSE");
    CHECK_STATUS(mpx_shm_open_fd(-1, 0, &x), MPX_E_INVALID, "", "open_fd(-1)");
    CHECK_STATUS(mpx_shm_open_fd(987654, 0, &x), MPX_E_INVALID, "", "open_fd of a closed descriptor");
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK_STATUS(mpx_shm_open_fd(devnull, 0, &x), MPX_E_INVALID, "regular", "open_fd of /dev/null");
    close(devnull);
    /* A regular file of garbage: never trusted. */
    FILE *tmp = tmpfile();
    REQUIRE(tmp != NULL, "tmpfile");
    for (int i = 0; i < 8192; i++) fputc((i * 7) & 0xff, tmp);
    fflush(tmp);
    /* (The library first waits, bounded, for a creator to publish the header: a few seconds.) */
    CHECK_STATUS(mpx_shm_open_fd(fileno(tmp), 0, &x), MPX_E_CORRUPT, "", "open_fd of a file of garbage");
    fclose(tmp);
    CHECK(x == NULL, "no handle written by the failed open_fd calls");
    mpx_shm_close(a);
}

/* MPX_F_READ_ONLY: reads work, a write faults (in a child, so the test survives). */
static void test_read_only(void) {
    const char *name = t_name("ro");
    mpx_shm *a = NULL, *r = NULL;
    REQUIRE(mpx_shm_create(name, 4096, 0, &a) == MPX_OK, "create");
    t_fill(mpx_shm_ptr(a), 4096, 7);
    CHECK_STATUS(mpx_shm_create(t_name("ro2"), 4096, MPX_F_READ_ONLY, &r), MPX_E_INVALID, "READ_ONLY", "create with MPX_F_READ_ONLY");
    CHECK_STATUS(mpx_shm_open(name, MPX_F_READ_ONLY, &r), MPX_OK, "", "open read-only");
    REQUIRE(r != NULL, "open read-only wrote the handle");
    CHECK(t_mismatch(mpx_shm_ptr(r), 4096, 7) == (size_t)-1, "read-only handle reads the bytes");
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        volatile uint8_t *p = mpx_shm_ptr(r);
        p[10] = 0x55; /* must fault */
        _exit(0);
    }
    int status = t_wait(pid, 30);
    CHECK(t_signaled(status, SIGSEGV), "a write through a read-only mapping kills the writer with SIGSEGV (status %#x)", status);
    CHECK(mpx_shm_ptr(a)[10] == (uint8_t)(10 * 31 + 7), "the buffer is unchanged");
    mpx_shm_close(r);
    mpx_shm_close(a);
    mpx_shm_unlink(name);
}

/* MPX_F_UNLINK_ON_LAST_CLOSE: the name goes when the last user anywhere closes. */
static void test_unlink_on_last_close(void) {
    const char *name = t_name("last");
    mpx_shm *a = NULL, *b = NULL;
    REQUIRE(mpx_shm_create(name, 4096, MPX_F_UNLINK_ON_LAST_CLOSE, &a) == MPX_OK, "create with UNLINK_ON_LAST_CLOSE");
    REQUIRE(mpx_shm_open(name, 0, &b) == MPX_OK, "open");
    mpx_shm_close(a);
    CHECK(t_exists(name), "the name stays while another handle is open");
    mpx_shm_close(b);
    CHECK(!t_exists(name), "the name is removed when the last handle closes");

    /* Across processes: a child holds it open while the creator closes. */
    REQUIRE(mpx_shm_create(name, 4096, MPX_F_UNLINK_ON_LAST_CLOSE, &a) == MPX_OK, "create again");
    int go[2], ready[2];
    REQUIRE(pipe(go) == 0 && pipe(ready) == 0, "pipes");
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        close(go[1]);
        close(ready[0]);
        /* An inherited handle counts as a use until the child closes it (it shares the parent's
         * open file description and mapping): this child uses its own handle instead. */
        mpx_shm_close(a);
        mpx_shm *c = NULL;
        if (mpx_shm_open(name, 0, &c) != MPX_OK) _exit(10);
        if (write(ready[1], "r", 1) != 1) _exit(11);
        char ch;
        if (!t_read1(go[0], &ch, 30)) _exit(12); /* wait for the parent to close first */
        mpx_shm_close(c);
        _exit(0);
    }
    close(go[0]);
    close(ready[1]);
    char ch;
    CHECK(t_read1(ready[0], &ch, 30), "child opened the buffer");
    mpx_shm_close(a);
    CHECK(t_exists(name), "the name stays while a child process holds it");
    CHECK(write(go[1], "g", 1) == 1, "told the child to close");
    int status = t_wait(pid, 30);
    CHECK(t_exited(status, 0), "child closed and exited (status %#x)", status);
    CHECK(!t_exists(name), "the name is removed when the child, the last user, closes");
    close(go[1]);
    close(ready[0]);

    /* The child dies without closing: the kernel drops its lock, the parent is then last. */
    REQUIRE(mpx_shm_create(name, 4096, MPX_F_UNLINK_ON_LAST_CLOSE, &a) == MPX_OK, "create again");
    pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        mpx_shm *c = NULL;
        if (mpx_shm_open(name, 0, &c) != MPX_OK) _exit(10);
        kill(getpid(), SIGKILL);
        _exit(11);
    }
    status = t_wait(pid, 30);
    CHECK(t_signaled(status, SIGKILL), "child opened and was killed");
    mpx_shm_close(a);
    CHECK(!t_exists(name), "after a killed user, the remaining last close removes the name");

    /* Given at open instead: applies from that handle's close. */
    REQUIRE(mpx_shm_create(name, 4096, 0, &a) == MPX_OK, "create without the flag");
    REQUIRE(mpx_shm_open(name, MPX_F_UNLINK_ON_LAST_CLOSE, &b) == MPX_OK, "open with the flag");
    mpx_shm_close(b);
    CHECK(t_exists(name), "an open-time flag does not remove while the creator holds it");
    REQUIRE(mpx_shm_open(name, MPX_F_UNLINK_ON_LAST_CLOSE, &b) == MPX_OK, "open with the flag again");
    mpx_shm_close(a);
    CHECK(t_exists(name), "a creator without the flag closing does not remove it");
    mpx_shm_close(b);
    CHECK(!t_exists(name), "the flagged handle closing last removes it");
    mpx_shm_unlink(name);
}

/* NULL pointers, bad names, sizes and flags: MPX_E_INVALID with a message, never a crash. */
static void test_bad_input(void) {
    const char *name = t_name("bad");
    mpx_shm *sentinel = (mpx_shm *)&t_passed;
    mpx_shm *out = sentinel;
    CHECK_STATUS(mpx_shm_create(NULL, 16, 0, &out), MPX_E_INVALID, "NULL", "create(name=NULL)");
    CHECK_STATUS(mpx_shm_create(name, 16, 0, NULL), MPX_E_INVALID, "NULL", "create(out=NULL)");
    CHECK(!t_exists(name), "create with out=NULL made nothing");
    CHECK_STATUS(mpx_shm_open(NULL, 0, &out), MPX_E_INVALID, "NULL", "open(name=NULL)");
    CHECK_STATUS(mpx_shm_open(name, 0, NULL), MPX_E_INVALID, "NULL", "open(out=NULL)");
    CHECK_STATUS(mpx_shm_create_anonymous(16, NULL), MPX_E_INVALID, "NULL", "create_anonymous(out=NULL)");
    CHECK_STATUS(mpx_shm_open_fd(0, 0, NULL), MPX_E_INVALID, "NULL", "open_fd(out=NULL)");
    int fd = -7;
    size_t off = 7;
    CHECK_STATUS(mpx_shm_fd(NULL, &fd), MPX_E_INVALID, "NULL", "fd(shm=NULL)");
    CHECK(fd == -7, "fd out-param untouched");
    CHECK_STATUS(mpx_shm_data_offset(NULL, &off), MPX_E_INVALID, "NULL", "data_offset(shm=NULL)");
    CHECK(off == 7, "offset out-param untouched");
    CHECK_STATUS(mpx_shm_unlink(NULL), MPX_E_INVALID, "NULL", "unlink(NULL)");
    CHECK(mpx_shm_ptr(NULL) == NULL && mpx_shm_size(NULL) == 0 && mpx_shm_name(NULL) == NULL,
          "ptr/size/name of NULL are NULL/0/NULL");
    mpx_shm_close(NULL);
    CHECK(1, "close(NULL) is a no-op");
    mpx_shm *a = NULL;
    REQUIRE(mpx_shm_create(name, 16, 0, &a) == MPX_OK, "create");
    CHECK_STATUS(mpx_shm_fd(a, NULL), MPX_E_INVALID, "NULL", "fd(fd=NULL)");
    CHECK_STATUS(mpx_shm_data_offset(a, NULL), MPX_E_INVALID, "NULL", "data_offset(offset=NULL)");
    mpx_shm_close(a);
    mpx_shm_unlink(name);

    char longname[202];
    memset(longname, 'x', 201);
    longname[201] = 0;
    char maxname[201];
    memset(maxname, 'y', 200);
    maxname[200] = 0;
    const struct {
        const char *name, *needle, *desc;
    } bad[] = {
        {"", "empty", "empty name"},
        {longname, "201 bytes", "201-byte name"},
        {"a/b", "not allowed", "name with '/'"},
        {"/abc", "not allowed", "name starting with '/'"},
        {"a b", "not allowed", "name with a space"},
        {"\xff", "UTF-8", "non-UTF-8 name \"\\xff\""},
        {"caf\xc3\xa9", "not allowed", "non-ASCII UTF-8 name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char desc[120];
        snprintf(desc, sizeof desc, "create: %s", bad[i].desc);
        CHECK_STATUS(mpx_shm_create(bad[i].name, 16, 0, &out), MPX_E_INVALID, bad[i].needle, desc);
        snprintf(desc, sizeof desc, "open: %s", bad[i].desc);
        CHECK_STATUS(mpx_shm_open(bad[i].name, 0, &out), MPX_E_INVALID, bad[i].needle, desc);
        snprintf(desc, sizeof desc, "unlink: %s", bad[i].desc);
        CHECK_STATUS(mpx_shm_unlink(bad[i].name), MPX_E_INVALID, bad[i].needle, desc);
    }
    CHECK(out == sentinel, "no out-param written by any failed call");
    /* 200 bytes is the limit, accepted. */
    a = NULL;
    CHECK_STATUS(mpx_shm_create(maxname, 16, 0, &a), MPX_OK, "", "create with a 200-byte name");
    if (a) {
        CHECK(strcmp(mpx_shm_name(a), maxname) == 0, "200-byte name round-trips");
        mpx_shm_close(a);
        mpx_shm_unlink(maxname);
    }

    const char *n2 = t_name("size");
    CHECK_STATUS(mpx_shm_create(n2, 0, 0, &out), MPX_E_INVALID, "size", "create with size 0");
    CHECK(!t_exists(n2), "no file left by size 0");
    CHECK_STATUS(mpx_shm_create(n2, SIZE_MAX, 0, &out), MPX_E_INVALID, "too large", "create with size SIZE_MAX");
    CHECK(!t_exists(n2), "no file left by size SIZE_MAX");
    CHECK_STATUS(mpx_shm_create_anonymous(0, &out), MPX_E_INVALID, "size", "create_anonymous with size 0");
    CHECK_STATUS(mpx_shm_create(n2, 16, 0x100, &out), MPX_E_INVALID, "flag", "create with unknown flag 0x100");
    CHECK_STATUS(mpx_shm_create(n2, 16, 0x80000000u, &out), MPX_E_INVALID, "flag", "create with unknown flag 0x80000000");
    CHECK(!t_exists(n2), "no file left by unknown flags");
    CHECK_STATUS(mpx_shm_open(t_name("missing"), 0, &out), MPX_E_NOT_FOUND, "no such object", "open a missing name");
    CHECK_STATUS(mpx_shm_unlink(t_name("missing")), MPX_E_NOT_FOUND, "no such object", "unlink a missing name");
    REQUIRE(mpx_shm_create(n2, 16, 0, &a) == MPX_OK, "create");
    CHECK_STATUS(mpx_shm_open(n2, 0x40, &out), MPX_E_INVALID, "flag", "open with unknown flag 0x40");
    int afd = -1;
    mpx_shm_fd(a, &afd);
    CHECK_STATUS(mpx_shm_open_fd(afd, 0x40, &out), MPX_E_INVALID, "flag", "open_fd with unknown flag 0x40");
    mpx_shm_close(a);
    mpx_shm_unlink(n2);
    CHECK(out == sentinel, "no out-param written by any failed call");
}

/* Creates a closed 8192-byte buffer holding pattern 9, ready to be damaged. */
static const char *make_victim(const char *tag) {
    const char *name = t_name(tag);
    mpx_shm *a = NULL;
    REQUIRE(mpx_shm_create(name, 8192, 0, &a) == MPX_OK, "create victim %s", name);
    t_fill(mpx_shm_ptr(a), 8192, 9);
    mpx_shm_close(a);
    return name;
}

static void expect_open(const char *name, mpx_status want, const char *needle, const char *desc) {
    mpx_shm *out = NULL;
    CHECK_STATUS(mpx_shm_open(name, 0, &out), want, needle, desc);
    if (out) mpx_shm_close(out);
    mpx_shm_unlink(name);
}

/* Segments that are not what they claim: detected on open, never trusted. */
static void test_corrupt_segments(void) {
    uint8_t h[T_HEADER_SIZE];
    const char *n = make_victim("ok");
    REQUIRE(t_read_header(n, h) == 0, "read header");
    CHECK(memcmp(h, "MPXSEG\0\x01", 8) == 0 && t_get32(h, T_OFF_VERSION) == 1 && t_get32(h, T_OFF_KIND) == 1,
          "header: magic, layout version 1, kind 1 (buffer)");
    CHECK(t_get32(h, T_OFF_CHECKSUM) == t_header_checksum(h), "stored checksum is FNV-1a over [0,96) and the name");
    CHECK(t_get32(h, T_OFF_NAME_LEN) == strlen(n) && memcmp(h + T_OFF_NAME, n, strlen(n)) == 0, "header holds the name");
    CHECK((int32_t)t_get32(h, T_OFF_CREATOR_PID) == (int32_t)getpid(), "header holds the creator pid");
    CHECK(t_get64(h, T_OFF_TOTAL_SIZE) == 4096 + 8192 && t_get64(h, T_OFF_DATA_OFFSET) == 4096 && t_get64(h, T_OFF_DATA_SIZE) == 8192,
          "header sizes: total 12288, data at 4096, 8192 bytes");
    expect_open(n, MPX_OK, "", "untouched victim opens");

    n = make_victim("kind");
    t_patch(n, T_OFF_KIND, 4, 2, 1);
    expect_open(n, MPX_E_KIND, "lock", "open a segment whose kind is 2 (lock)");

    n = make_victim("kindfd");
    t_patch(n, T_OFF_KIND, 4, 2, 1);
    {
        char path[300];
        t_path(path, sizeof path, n);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        mpx_shm *out = NULL;
        CHECK_STATUS(mpx_shm_open_fd(fd, 0, &out), MPX_E_KIND, "lock", "open_fd of a lock segment");
        if (out) mpx_shm_close(out);
        close(fd);
        mpx_shm_unlink(n);
    }

    n = make_victim("kind99");
    t_patch(n, T_OFF_KIND, 4, 99, 1);
    expect_open(n, MPX_E_CORRUPT, "unknown object kind", "open a segment of unknown kind 99");

    n = make_victim("magic");
    t_patch(n, T_OFF_MAGIC, 4, 0x21444142u /* "BAD!" */, 1);
    expect_open(n, MPX_E_CORRUPT, "magic", "open a segment with bad magic");

    n = make_victim("version");
    t_patch(n, T_OFF_VERSION, 4, 2, 1);
    expect_open(n, MPX_E_VERSION, "version 2", "open a segment of layout version 2");

    n = make_victim("hsize");
    t_patch(n, T_OFF_HEADER_SIZE, 4, 256, 1);
    expect_open(n, MPX_E_CORRUPT, "header size", "open a segment with header size 256");

    n = make_victim("namelen");
    t_patch(n, T_OFF_NAME_LEN, 4, 5000, 1);
    expect_open(n, MPX_E_CORRUPT, "name length", "open a segment with name_len 5000");

    n = make_victim("sum");
    t_patch(n, T_OFF_CREATOR_PID, 4, 1, 0);
    expect_open(n, MPX_E_CORRUPT, "checksum", "open a segment whose creator pid changed (checksum stale)");

    n = make_victim("sum2");
    REQUIRE(t_read_header(n, h) == 0, "read header");
    t_put32(h, T_OFF_CHECKSUM, t_get32(h, T_OFF_CHECKSUM) ^ 0x10);
    t_write_header(n, h);
    expect_open(n, MPX_E_CORRUPT, "checksum", "open a segment with a corrupted checksum");

    n = make_victim("sumname");
    REQUIRE(t_read_header(n, h) == 0, "read header");
    h[T_OFF_NAME] ^= 1; /* the name is covered by the checksum too */
    t_write_header(n, h);
    expect_open(n, MPX_E_CORRUPT, "checksum", "open a segment whose stored name changed");

    n = make_victim("dataoff");
    t_patch(n, T_OFF_DATA_OFFSET, 8, 4096 + 8192, 1);
    expect_open(n, MPX_E_CORRUPT, "outside", "open a segment with data_offset at the end of the file");

    n = make_victim("datasize");
    t_patch(n, T_OFF_DATA_SIZE, 8, 1u << 20, 1);
    expect_open(n, MPX_E_CORRUPT, "outside", "open a segment with data_size past the end of the file");

    n = make_victim("dataovf");
    REQUIRE(t_read_header(n, h) == 0, "read header");
    t_put64(h, T_OFF_DATA_OFFSET, UINT64_MAX - 100);
    t_put64(h, T_OFF_DATA_SIZE, 4096);
    t_fix_checksum(h);
    t_write_header(n, h);
    expect_open(n, MPX_E_CORRUPT, "outside", "open a segment whose data_offset + data_size overflows");

    /* Invariants the header promises (issue 11: these opened, and mpx_shm_ptr was then not
     * page-aligned as documented, or the buffer was empty). */
    n = make_victim("dataunal");
    REQUIRE(t_read_header(n, h) == 0, "read header");
    t_put64(h, T_OFF_DATA_OFFSET, 4088);
    t_put64(h, T_OFF_DATA_SIZE, 8192);
    t_fix_checksum(h);
    t_write_header(n, h);
    expect_open(n, MPX_E_CORRUPT, "page-aligned", "open a buffer whose data offset is 4088");

    n = make_victim("data512");
    t_patch(n, T_OFF_DATA_OFFSET, 8, 512, 1);
    expect_open(n, MPX_E_CORRUPT, "page-aligned", "open a buffer whose data offset is 512");

    n = make_victim("data0");
    t_patch(n, T_OFF_DATA_SIZE, 8, 0, 1);
    expect_open(n, MPX_E_CORRUPT, "data size 0", "open a buffer whose data size is 0");

    n = make_victim("datalow");
    t_patch(n, T_OFF_DATA_OFFSET, 8, 100, 1);
    expect_open(n, MPX_E_CORRUPT, "outside", "open a segment whose data overlaps the header");

    n = make_victim("total");
    t_patch(n, T_OFF_TOTAL_SIZE, 8, 1u << 30, 1);
    expect_open(n, MPX_E_CORRUPT, "truncated", "open a segment whose header claims 1 GiB");

    n = make_victim("short");
    CHECK(t_truncate(n, 8192) == 0, "truncate the file to 8192 bytes (header says 12288)");
    expect_open(n, MPX_E_CORRUPT, "truncated", "open a segment shorter than its header's total_size");

    n = make_victim("tiny");
    CHECK(t_truncate(n, 100) == 0, "truncate the file to 100 bytes");
    expect_open(n, MPX_E_CORRUPT, "truncated", "open a segment shorter than the header (after the bounded wait)");

    n = make_victim("empty");
    CHECK(t_truncate(n, 0) == 0, "truncate the file to 0 bytes");
    expect_open(n, MPX_E_CORRUPT, "truncated", "open an empty segment file");

    /* Never published by a creator that died: detected without the full wait. */
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    t_wait(dead, 10);
    n = make_victim("unready");
    REQUIRE(t_read_header(n, h) == 0, "read header");
    t_put32(h, T_OFF_READY, 0);
    t_put32(h, T_OFF_CREATOR_PID, (uint32_t)dead);
    t_fix_checksum(h);
    t_write_header(n, h);
    expect_open(n, MPX_E_CORRUPT, "never initialised", "open a segment whose creator died before publishing it");

    /* A planted symlink is not followed. */
    const char *target = make_victim("target");
    const char *link = t_name("link");
    char tp[300], lp[300];
    t_path(tp, sizeof tp, target);
    t_path(lp, sizeof lp, link);
    CHECK(symlink(tp, lp) == 0, "plant a symlink /dev/shm/mpx.<name> -> another segment");
    expect_open(link, MPX_E_PERMISSION, "symbolic link", "open through a symlink");
    CHECK(t_exists(target), "unlinking the symlink name left its target alone");
    mpx_shm_unlink(target);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--child-anon") == 0) return child_anon(argv[2]);
    t_init("test_shm");
    test_version();
    test_status_names();
    test_create_open();
    test_modes();
    test_fork_child();
    test_anonymous("/proc/self/exe");
    test_read_only();
    test_unlink_on_last_close();
    test_bad_input();
    test_corrupt_segments();
    return t_finish();
}
