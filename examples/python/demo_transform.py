"""demo_transform.py: step 2 of `make demo` (examples/demo.py). Maps the float32 buffer NAME
that a C program created as a numpy array, without copying, and transforms it in place:
y = 2 * x + 1. A C++ program then verifies the result.

usage: demo_transform.py NAME
"""

import sys

import numpy as np

from mpx.shared_memory import SharedMemory


def main(name):
    shm = SharedMemory(name)
    try:
        x = np.ndarray((shm.size // 4,), dtype=np.float32, buffer=shm.buf)  # a view, not a copy
        before = x[:3].tolist()
        x *= 2
        x += 1
        print(
            "[Python] demo_transform: mapped %d floats as a numpy array and computed y = 2x + 1 "
            "in place: %s -> %s ... %g" % (x.size, before, x[:3].tolist(), x[-1])
        )
        del x  # release the view so the buffer can be unmapped
    finally:
        shm.close()  # never unlinks: the C++ verifier opens it next


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: demo_transform.py NAME")
    main(sys.argv[1])
