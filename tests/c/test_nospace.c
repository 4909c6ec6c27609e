/* test_nospace.c: a full /dev/shm is an error, never a SIGBUS (issue 11).
 *
 * The checks run in a child that has a private mount namespace with a 16 MiB tmpfs on /dev/shm
 * (unshare(CLONE_NEWNS) as root), so filling it up disturbs nothing else. Before the library
 * reserved memory at creation, a 64 MiB buffer was created "successfully" and the child died of
 * SIGBUS when it touched the 16th MiB; a queue put and a value create died inside the library
 * once the tmpfs was full. The parent checks that the child ended normally and passed.
 * Where a mount namespace cannot be made (not root, no CAP_SYS_ADMIN), it says so and skips.
 */
#include "testutil.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#define MiB (1024u * 1024u)

/* 0: ready; 1: not allowed here (skip, with the reason on stdout); -1: failed. */
static int private_small_shm(void) {
    if (unshare(CLONE_NEWNS) != 0) {
        printf("SKIP  cannot make a mount namespace here (unshare: %s); needs root\n", strerror(errno));
        return 1;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        printf("SKIP  cannot make mounts private (%s)\n", strerror(errno));
        return 1;
    }
    if (mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=16m,mode=1777") != 0) {
        printf("SKIP  cannot mount a tmpfs on /dev/shm (%s)\n", strerror(errno));
        return 1;
    }
    return 0;
}

static unsigned long long free_bytes(void) {
    struct statvfs v;
    return statvfs("/dev/shm", &v) == 0 ? (unsigned long long)v.f_bavail * v.f_frsize : 0;
}

static int run_checks(void) {
    t_init("test_nospace-child");
    mpx_shm *shm = NULL;

    /* A buffer larger than the whole tmpfs: refused at create, with the numbers, and the name
     * is not left behind. */
    const char *big = t_name("big");
    CHECK_STATUS(mpx_shm_create(big, 64 * MiB, 0, &shm), MPX_E_OS, "needed", "64 MiB buffer on a 16 MiB /dev/shm");
    CHECK(mpx_last_errno() == ENOSPC, "errno is ENOSPC (%d)", mpx_last_errno());
    CHECK(strstr(mpx_last_error(), "free") != NULL, "the message says what is free: %s", mpx_last_error());
    CHECK(shm == NULL, "no handle written");
    CHECK(!t_exists(big), "the failed create left no file");

    /* One that fits is usable to its last byte (no page of it can be missing). */
    const char *fits = t_name("fits");
    CHECK_STATUS(mpx_shm_create(fits, 8 * MiB, 0, &shm), MPX_OK, "", "8 MiB buffer");
    if (shm) {
        uint8_t *p = mpx_shm_ptr(shm);
        memset(p, 0xA5, 8 * MiB);
        CHECK(p[8 * MiB - 1] == 0xA5, "every page of it can be written");
    }

    /* Fill the rest with values: the create that finds no room fails cleanly, the ones before
     * stay usable. (256 KiB each, so the names fit testutil's table.) */
    enum { ELEMS = 32768, MAXV = 128 };
    mpx_value *vals[MAXV];
    int nvals = 0;
    mpx_status st = MPX_OK;
    while (nvals < MAXV) {
        st = mpx_value_create(t_name("v"), 'q', ELEMS, NULL, 0, 0, &vals[nvals]);
        if (st != MPX_OK)
            break;
        nvals++;
    }
    CHECK(st == MPX_E_OS && mpx_last_errno() == ENOSPC, "values until /dev/shm is full: %d made, then %s (%s)",
          nvals, mpx_status_name(st), mpx_last_error());
    int usable = 1;
    for (int i = 0; i < nvals; i++) {
        int64_t v = 0;
        usable = usable && mpx_value_set_i64(vals[i], ELEMS - 1, i) == MPX_OK &&
                 mpx_value_get_i64(vals[i], ELEMS - 1, &v) == MPX_OK && v == i;
    }
    CHECK(nvals > 0 && usable, "the %d values made before stay usable", nvals);

    /* Nothing more can be created that does not fit: a clean error each time, whatever the kind. */
    mpx_queue *q = NULL;
    CHECK_STATUS(mpx_queue_create(t_name("q"), 1 * MiB, 0, 0, &q), MPX_E_OS, "ENOSPC", "a 1 MiB queue on a full /dev/shm");
    mpx_shm *more = NULL;
    CHECK_STATUS(mpx_shm_create(t_name("more"), 1 * MiB, 0, &more), MPX_E_OS, "ENOSPC", "a 1 MiB buffer on a full /dev/shm");

    /* Give it all back: close every handle and remove every name. */
    if (shm)
        mpx_shm_close(shm);
    shm = NULL;
    for (int i = 0; i < nvals; i++)
        mpx_value_close(vals[i]);
    t_cleanup();
    CHECK(free_bytes() > 15 * MiB, "all given back (%llu bytes free)", free_bytes());

    const char *qn = t_name("q2");
    CHECK_STATUS(mpx_queue_create(qn, 4 * MiB, 0, 0, &q), MPX_OK, "", "a 4 MiB queue");
    const char *hog = t_name("hog");
    mpx_shm *rest = NULL;
    /* Take everything else, so a queue whose ring were not reserved would fault below. */
    size_t room = (size_t)free_bytes();
    while (room > 64 * 1024 && mpx_shm_create(hog, room, 0, &rest) != MPX_OK)
        room -= 64 * 1024;
    CHECK(rest != NULL, "the rest of /dev/shm taken (%zu bytes)", room);
    if (q) {
        static uint8_t msg[64 * 1024];
        int puts = 0;
        while (mpx_queue_put(q, msg, sizeof msg, 0) == MPX_OK)
            puts++;
        CHECK(puts >= 60, "the queue takes %d puts of 64 KiB with /dev/shm full (no SIGBUS)", puts);
        mpx_queue_close(q);
    }
    if (rest)
        mpx_shm_close(rest);

    /* The opt-out: MPX_F_NORESERVE creates at once whatever the size (and touching beyond what
     * /dev/shm holds would be SIGBUS, so this test does not touch it). */
    const char *lazy = t_name("lazy");
    CHECK_STATUS(mpx_shm_create(lazy, 64 * MiB, MPX_F_NORESERVE, &shm), MPX_OK, "", "64 MiB with MPX_F_NORESERVE");
    if (shm)
        mpx_shm_close(shm);
    mpx_lock *nl = NULL;
    CHECK_STATUS(mpx_lock_create(t_name("nl"), MPX_F_NORESERVE, &nl), MPX_E_INVALID, "buffers only",
                 "MPX_F_NORESERVE on a lock");
    return t_finish();
}

int main(void) {
    t_init("test_nospace");
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        int r = private_small_shm();
        if (r != 0)
            _exit(r == 1 ? 77 : 1);
        _exit(run_checks());
    }
    int status = t_wait(pid, 120);
    if (t_exited(status, 77)) {
        printf("test_nospace: skipped (see above)\n");
        return 0;
    }
    CHECK(status != -1 && WIFEXITED(status), "the child ended normally (status %#x%s)", status,
          status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS ? ": killed by SIGBUS" : "");
    CHECK(t_exited(status, 0), "the child's checks passed");
    return t_finish();
}
