"""shm_hello.py: a named shared-memory buffer from Python, with the standard library's API.
Any process, in any language, can open "hello-py" by name while it exists."""
from mpx.shared_memory import SharedMemory

shm = SharedMemory("hello-py", create=True, size=4096)
try:
    shm.buf[:14] = b"hello from Py!"
    other = SharedMemory("hello-py")  # as another process would
    print(bytes(other.buf[:14]).decode(), "(%d bytes)" % other.size)
    other.close()
finally:
    shm.close()
    shm.unlink()  # nothing is removed behind your back: the creator unlinks
