/* shm_hello.c: a named shared-memory buffer from C. Any process, in any language, can open
 * "hello-c" by name while it exists; here a second handle stands in for that other process. */
#include <mpx.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    mpx_shm *shm, *other;
    if (mpx_shm_create("hello-c", 4096, MPX_F_UNLINK_ON_LAST_CLOSE, &shm) != MPX_OK ||
        mpx_shm_open("hello-c", 0, &other) != MPX_OK) {
        fprintf(stderr, "mpx: %s\n", mpx_last_error());
        return 1;
    }
    strcpy((char *)mpx_shm_ptr(shm), "hello from C");
    printf("%s (%zu bytes, /dev/shm/mpx.%s)\n", (char *)mpx_shm_ptr(other), mpx_shm_size(other), mpx_shm_name(other));
    mpx_shm_close(other);
    mpx_shm_close(shm); /* the last user closed: the name goes with it */
    return 0;
}
