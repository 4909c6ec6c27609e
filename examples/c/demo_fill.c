/* demo_fill.c: step 1 of `make demo` (examples/demo.py). Creates the named shared-memory buffer
 * NAME holding COUNT float32 values and fills it with the ramp x[i] = i * 0.5. The name is kept
 * for the next programs: a Python one transforms the floats in place, a C++ one verifies them.
 *
 * usage: demo_fill NAME COUNT
 */
#include <mpx.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3 || atol(argv[2]) <= 0) {
        fprintf(stderr, "usage: demo_fill NAME COUNT\n");
        return 2;
    }
    const char *name = argv[1];
    size_t count = (size_t)atol(argv[2]);
    mpx_shm *shm = NULL;
    if (mpx_shm_create(name, count * sizeof(float), 0, &shm) != MPX_OK) {
        fprintf(stderr, "demo_fill: %s\n", mpx_last_error());
        return 1;
    }
    float *x = (float *)mpx_shm_ptr(shm);
    for (size_t i = 0; i < count; i++) x[i] = (float)i * 0.5f;
    printf("[C]      demo_fill: created /dev/shm/mpx.%s (%zu bytes) and wrote %zu floats x[i] = i * 0.5: "
           "%g %g %g ... %g\n",
           mpx_shm_name(shm), mpx_shm_size(shm), count, x[0], x[1], x[2], x[count - 1]);
    mpx_shm_close(shm); /* closing keeps the name: the next program opens it */
    return 0;
}
