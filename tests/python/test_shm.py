"""mpx.shared_memory.SharedMemory: the standard library's behaviour, with real processes, numpy
zero copy, the buffer-safety rules, and what mpx adds (no tracker, read-only, anonymous)."""

import ctypes
import fcntl
import gc
import multiprocessing
import os
import pickle
import re
import select
import signal

import numpy as np
import pytest

import mpx
import mpx.shared_memory as shared_memory
from mpx.shared_memory import SharedMemory

SHM_DIR = "/dev/shm"
TIMEOUT = 60  # seconds, for every wait on a child


def path_of(name):
    return os.path.join(SHM_DIR, "mpx." + name)


@pytest.fixture
def shm(unique_name):
    """A fresh 4096-byte buffer, closed and unlinked after the test whatever happened."""
    s = SharedMemory(unique_name, create=True, size=4096)
    yield s
    cleanup(s)


def cleanup(*objs):
    for s in objs:
        try:
            s.close()
        except BufferError:
            pass
        if s.name is not None:
            try:
                s.unlink()
            except FileNotFoundError:
                pass


def open_fds():
    return len(os.listdir("/proc/self/fd"))


# --------------------------------------------------------------------------------------------
# The standard library's behaviour


def test_basics_like_stdlib(unique_name):
    sms = SharedMemory(unique_name, create=True, size=512)
    try:
        assert sms.name == unique_name
        assert sms.size == 512
        assert len(sms.buf) == 512
        assert sms.name in str(sms)
        assert str(sms.size) in str(sms)
        assert bytes(sms.buf) == bytes(512)  # created zeroed
        sms.buf[0] = 42
        assert sms.buf[0] == 42

        also = SharedMemory(unique_name)
        assert also.buf[0] == 42
        also.close()

        # The size is ignored when attaching: the segment's own size is reported.
        same = SharedMemory(unique_name, size=20 * sms.size)
        assert same.size == 512
        same.close()
        SharedMemory(unique_name, size=2**70).close()

        with pytest.raises(FileExistsError):
            SharedMemory(unique_name, create=True, size=512)
    finally:
        sms.close()
        sms.unlink()


def test_buf_is_a_byte_memoryview(shm):
    buf = shm.buf
    assert type(buf) is memoryview
    assert buf.format == "B" and buf.itemsize == 1 and buf.ndim == 1
    assert buf.nbytes == 4096 and buf.contiguous
    assert not buf.readonly
    assert shm.buf is buf  # the same view each time, as the standard library
    assert shm.readonly is False


def test_repr_matches_stdlib(shm):
    assert repr(shm) == "SharedMemory(%r, size=4096)" % shm.name


def test_size_is_exact_not_rounded(unique_name):
    a = SharedMemory(unique_name, create=True, size=10)
    try:
        b = SharedMemory(unique_name)
        assert (a.size, len(a.buf), b.size, len(b.buf)) == (10, 10, 10, 10)
        b.close()
    finally:
        cleanup(a)


def test_stdlib_argument_errors(unique_name):
    with pytest.raises(ValueError):
        SharedMemory(create=True, size=-2)
    with pytest.raises(ValueError):
        SharedMemory(create=True, size=0)
    with pytest.raises(ValueError):
        SharedMemory(create=True)  # no size
    with pytest.raises(ValueError):
        SharedMemory(create=False)  # no name
    with pytest.raises(ValueError):
        SharedMemory(unique_name, size=-1)  # negative is refused even when attaching
    with pytest.raises(FileNotFoundError):
        SharedMemory(unique_name)
    assert not os.path.exists(path_of(unique_name))


def test_create_existing_name_raises_and_keeps_the_original(shm):
    shm.buf[:3] = b"abc"
    with pytest.raises(FileExistsError) as ei:
        SharedMemory(shm.name, create=True, size=100)
    assert shm.name in str(ei.value)
    other = SharedMemory(shm.name)
    assert other.size == 4096 and bytes(other.buf[:3]) == b"abc"
    other.close()


def test_stdlib_documentation_example():
    # https://docs.python.org/3/library/multiprocessing.shared_memory.html, first example.
    shm_a = SharedMemory(create=True, size=10)
    try:
        assert type(shm_a.buf) is memoryview
        buffer = shm_a.buf
        assert len(buffer) == 10
        buffer[:4] = bytearray([22, 33, 44, 55])
        buffer[4] = 100
        shm_b = SharedMemory(shm_a.name)
        import array

        assert array.array("b", shm_b.buf[:5]).tolist() == [22, 33, 44, 55, 100]
        shm_b.buf[:5] = b"howdy"
        assert bytes(shm_a.buf[:5]) == b"howdy"
        shm_b.close()
        shm_a.close()  # `buffer` still refers to the view: it is released, as in the stdlib
        assert shm_a.buf is None
        with pytest.raises(ValueError):
            buffer[0]
    finally:
        shm_a.unlink()


def test_stdlib_numpy_documentation_example():
    a = np.array([1, 1, 2, 3, 5, 8])
    shm = SharedMemory(create=True, size=a.nbytes)
    try:
        b = np.ndarray(a.shape, dtype=a.dtype, buffer=shm.buf)
        b[:] = a[:]
        existing = SharedMemory(name=shm.name)
        c = np.ndarray((6,), dtype=np.int64, buffer=existing.buf)
        assert c.tolist() == [1, 1, 2, 3, 5, 8]
        c[-1] = 888
        assert b.tolist() == [1, 1, 2, 3, 5, 888]
        del c
        existing.close()
        del b
        shm.close()
    finally:
        shm.unlink()


def test_close_is_idempotent_and_keeps_name_and_size(shm):
    name = shm.name
    shm.close()
    shm.close()
    assert shm.buf is None
    assert shm.name == name and shm.size == 4096
    with pytest.raises(ValueError):
        shm.fd


def test_unlink_after_close_like_stdlib(unique_name):
    s = SharedMemory(unique_name, create=True, size=100)
    s.close()
    s.unlink()
    assert not os.path.exists(path_of(unique_name))


def test_embedded_null_like_stdlib(shm):
    with pytest.raises(ValueError):
        SharedMemory(shm.name + "\0a", create=False, size=512)
    orig = shm._name
    try:
        shm._name = orig + "\0a"
        with pytest.raises(ValueError):
            shm.unlink()
    finally:
        shm._name = orig
    assert os.path.exists(path_of(shm.name))  # the NUL did not cut the name and unlink it


def test_track_keyword_is_accepted_and_nothing_is_tracked(unique_name, run_py):
    # Python 3.13 code passes track=False; mpx never tracks, so both values behave the same.
    s = SharedMemory(unique_name, create=True, size=64, track=False)
    try:
        run_py(
            """
            import sys
            from mpx.shared_memory import SharedMemory
            SharedMemory(sys.argv[1], track=True).buf[0] = 7
            """,
            unique_name,
        )
        assert s.buf[0] == 7 and os.path.exists(path_of(unique_name))
    finally:
        cleanup(s)


def test_subclass_is_preserved_by_pickle(unique_name):
    class Mine(SharedMemory):
        pass

    m = Mine(unique_name, create=True, size=32)
    try:
        r = m.__reduce__()
        assert r == (Mine, (unique_name, False, 32))
    finally:
        cleanup(m)


# --------------------------------------------------------------------------------------------
# Names


def test_generated_names(run_py):
    made = [SharedMemory(create=True, size=16) for _ in range(5)]
    try:
        names = [s.name for s in made]
        assert len(set(names)) == 5
        for n in names:
            assert re.fullmatch(r"psm_[0-9a-f]{8}", n), n
            assert os.path.exists(path_of(n))
        # Another process opens a generated name like any other.
        made[0].buf[0] = 99
        out = run_py(
            "import sys; from mpx.shared_memory import SharedMemory as S; print(S(sys.argv[1]).buf[0])",
            names[0],
        ).stdout
        assert out.strip() == "99"
    finally:
        cleanup(*made)
    for n in names:
        assert not os.path.exists(path_of(n))


def test_generated_name_collision_retries(monkeypatch, unique_name):
    # As CPython's test: _make_filename returns a taken name first, then a free one.
    taken = SharedMemory(unique_name + "-a", create=True, size=1)
    free = unique_name + "-b"
    names = iter([taken.name, free])
    monkeypatch.setattr(shared_memory, "_make_filename", lambda: next(names))
    try:
        s = SharedMemory(create=True, size=1)
        assert s._name == free and s.name == free
        cleanup(s)
    finally:
        cleanup(taken)


def test_longest_name(unique_name):
    name = (unique_name + "-" + "x" * 200)[:200]
    s = SharedMemory(name, create=True, size=1)
    try:
        assert s.name == name and os.path.exists(path_of(name))
    finally:
        cleanup(s)


# --------------------------------------------------------------------------------------------
# Across processes


def test_parent_creates_child_attaches_writes_reads(shm, run_py):
    shm.buf[:5] = b"howdy"
    out = run_py(
        """
        import sys
        from mpx.shared_memory import SharedMemory
        s = SharedMemory(sys.argv[1])
        print(bytes(s.buf[:5]).decode(), s.size)
        s.buf[100:105] = b"HELLO"
        s.close()
        """,
        shm.name,
    ).stdout.split()
    assert out == ["howdy", "4096"]
    assert bytes(shm.buf[100:105]) == b"HELLO"


def test_child_creates_parent_attaches(unique_name, run_py):
    out = run_py(
        """
        import sys
        from mpx.shared_memory import SharedMemory
        s = SharedMemory(sys.argv[1], create=True, size=1000)
        s.buf[:]= bytes(range(250)) * 4
        print(s.name)
        """,
        unique_name,
    ).stdout.strip()
    assert out == unique_name
    # The creator exited without unlinking: the buffer and its contents are still there.
    s = SharedMemory(unique_name)
    try:
        assert s.size == 1000 and bytes(s.buf) == bytes(range(250)) * 4
    finally:
        cleanup(s)


def test_numpy_zero_copy_both_directions(shm, run_py):
    n = 4096 // 8
    arr = np.ndarray((n,), dtype=np.int64, buffer=shm.buf)
    arr[:] = np.arange(n)
    # Parent writes through numpy are the buffer's bytes (no copy in between).
    assert bytes(shm.buf[8:16]) == (1).to_bytes(8, "little")
    out = run_py(
        """
        import sys
        import numpy as np
        from mpx.shared_memory import SharedMemory
        s = SharedMemory(sys.argv[1])
        a = np.ndarray((int(sys.argv[2]),), dtype=np.int64, buffer=s.buf)
        print(int(a.sum()))
        a *= -2          # in place: the parent's array must see it
        del a
        s.close()
        """,
        shm.name,
        n,
    ).stdout
    assert int(out) == n * (n - 1) // 2
    assert (arr == -2 * np.arange(n)).all()  # the same array object, not re-read
    del arr


def test_frombuffer_views_share_memory(shm):
    other = SharedMemory(shm.name)
    try:
        a = np.frombuffer(shm.buf, dtype=np.uint32)
        b = np.frombuffer(other.buf, dtype=np.uint32)
        assert a.flags.writeable
        a[10] = 0xDEADBEEF
        assert b[10] == 0xDEADBEEF
        del a, b
    finally:
        other.close()


def test_large_buffer_across_processes(unique_name, run_py):
    size = 16 << 20
    s = SharedMemory(unique_name, create=True, size=size)
    try:
        s.buf[0] = 1
        s.buf[size - 1] = 2
        out = run_py(
            """
            import sys
            from mpx.shared_memory import SharedMemory
            s = SharedMemory(sys.argv[1])
            print(s.size, s.buf[0], s.buf[s.size - 1])
            s.buf[s.size // 2] = 3
            """,
            unique_name,
        ).stdout.split()
        assert out == [str(size), "1", "2"]
        assert s.buf[size // 2] == 3
    finally:
        cleanup(s)


# --------------------------------------------------------------------------------------------
# Pickling


def test_pickle_roundtrip_every_protocol(unique_name):
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        sms = SharedMemory(unique_name, create=True, size=512)
        try:
            sms.buf[0:6] = b"pickle"
            sms2 = pickle.loads(pickle.dumps(sms, protocol=proto))
            assert isinstance(sms2, SharedMemory)
            assert sms2.name == sms.name and sms2.size == 512
            assert bytes(sms2.buf[0:6]) == b"pickle"
            sms.buf[0:6] = b"newval"
            assert bytes(sms2.buf[0:6]) == b"newval"
            sms2.buf[0:6] = b"oldval"
            assert bytes(sms.buf[0:6]) == b"oldval"
            sms2.close()
        finally:
            cleanup(sms)


def test_reduce_is_stdlib_form(shm):
    assert shm.__reduce__() == (SharedMemory, (shm.name, False, 4096))


def test_unpickle_after_unlink_raises(unique_name):
    sms = SharedMemory(unique_name, create=True, size=512)
    data = pickle.dumps(sms)
    sms.close()
    sms.unlink()
    with pytest.raises(FileNotFoundError):
        pickle.loads(data)


def test_pickle_into_child_process(shm, run_py):
    shm.buf[:4] = b"ping"
    out = run_py(
        """
        import pickle, sys
        s = pickle.load(sys.stdin.buffer)
        print(type(s).__module__, s.name, s.size, bytes(s.buf[:4]).decode())
        s.buf[:4] = b"pong"
        s.close()
        """,
        input=pickle.dumps(shm),
    ).stdout.split()
    assert out == ["mpx.shared_memory", shm.name, "4096", "ping"]
    assert bytes(shm.buf[:4]) == b"pong"


def _attach_then_write(name_or_obj, data):
    # Target of the multiprocessing tests (module level, so a spawned child can import it).
    if isinstance(name_or_obj, str):
        s = SharedMemory(name_or_obj)
    else:
        s = name_or_obj
    s.buf[: len(data)] = data
    s.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_process_by_name_and_by_pickle(shm, method, own_pid):
    # As CPython's test_shared_memory_across_processes; spawn pickles the object by name.
    ctx = multiprocessing.get_context(method)
    for arg, data in ((shm.name, b"howdy"), (shm, b"HELLO")):
        p = ctx.Process(target=_attach_then_write, args=(arg, data))
        p.start()
        own_pid(p.pid)
        p.join(TIMEOUT)
        if p.is_alive():
            p.kill()
            p.join(10)
            pytest.fail("child did not finish in %ss" % TIMEOUT)
        assert p.exitcode == 0
        assert bytes(shm.buf[: len(data)]) == data
    assert os.path.exists(path_of(shm.name))  # the children did not unlink it


def test_readonly_pickles_as_readonly(shm):
    ro = SharedMemory(shm.name, readonly=True)
    try:
        again = pickle.loads(pickle.dumps(ro))
        assert again.readonly and again.buf.readonly and again.name == shm.name
        again.close()
    finally:
        ro.close()


# --------------------------------------------------------------------------------------------
# Buffer safety: the memory is never unmapped under a live view


def test_close_with_live_numpy_export_raises_and_memory_stays_valid(shm):
    other = SharedMemory(shm.name)
    try:
        arr = np.frombuffer(shm.buf, dtype=np.uint8)
        with pytest.raises(BufferError):
            shm.close()
        # Still mapped and shared: write through the array, read through another handle.
        arr[:3] = [1, 2, 3]
        assert bytes(other.buf[:3]) == b"\x01\x02\x03"
        other.buf[3] = 4
        assert arr[3] == 4
        assert shm.buf is not None and shm.buf[0] == 1  # the object is still usable
        del arr
        shm.close()
        assert shm.buf is None
    finally:
        other.close()


def test_close_with_ndarray_over_buf_raises_instead_of_crashing(shm):
    # np.ndarray(buffer=...) keeps no buffer export (numpy keeps the raw pointer and the mmap):
    # the standard library unmaps under it; mpx refuses like for an export.
    arr = np.ndarray((4096,), dtype=np.uint8, buffer=shm.buf)
    with pytest.raises(BufferError):
        shm.close()
    arr[:] = 5
    assert shm.buf[4095] == 5
    del arr
    shm.close()


def test_close_with_live_memoryview_slice_raises(shm):
    view = shm.buf[10:20]
    with pytest.raises(BufferError):
        shm.close()
    view[0] = 77
    assert shm.buf[10] == 77  # the object's buf was kept usable
    view.release()
    shm.close()
    assert shm.buf is None


def test_close_after_failed_close_with_nested_views(shm):
    a = shm.buf[0:100]
    b = memoryview(shm.buf)
    with pytest.raises(BufferError):
        shm.close()
    a.release()
    with pytest.raises(BufferError):
        shm.close()
    b.release()
    shm.close()


def test_garbage_collected_object_leaves_live_array_valid(unique_name, run_py):
    # In a child so that any "Exception ignored in __del__" output can be checked.
    res = run_py(
        """
        import gc, sys
        import numpy as np
        from mpx.shared_memory import SharedMemory
        s = SharedMemory(sys.argv[1], create=True, size=4096)
        s.unlink()
        arr = np.ndarray((4096,), dtype=np.uint8, buffer=s.buf)
        f = np.frombuffer(s.buf, dtype=np.uint8)
        del s
        gc.collect()
        arr[:] = 9           # still mapped: no crash
        print(int(arr.sum()), int(f.sum()))
        """,
        unique_name,
    )
    assert res.stdout.split() == [str(9 * 4096), str(9 * 4096)]
    assert res.stderr == ""


def test_view_of_a_temporary_stays_valid(shm):
    # The object is collected during the statement; its view must not be released under it
    # (the standard library raises "operation forbidden on released memoryview object").
    SharedMemory(shm.name).buf[0] = 1
    assert bytes(SharedMemory(shm.name).buf[:1]) == b"\x01"
    assert shm.buf[0] == 1


def in_use(name):
    """Whether some open handle holds the segment's liveness lock (a shared flock)."""
    fd = os.open(path_of(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the probe's lock
    return False


def test_liveness_lock_follows_the_mapping(unique_name):
    s = SharedMemory(unique_name, create=True, size=4096)
    try:
        assert in_use(unique_name)
        s.close()
        assert not in_use(unique_name)
        # An object collected while an array still uses its memory keeps the segment in use
        # until the array goes.
        t = SharedMemory(unique_name)
        arr = np.ndarray((4096,), dtype=np.uint8, buffer=t.buf)
        del t
        gc.collect()
        assert in_use(unique_name)
        arr[0] = 1
        del arr
        gc.collect()
        assert not in_use(unique_name)
    finally:
        s.unlink()


def test_del_closes_and_frees_descriptors(shm):
    gc.collect()
    before = open_fds()
    for _ in range(50):
        s = SharedMemory(shm.name)
        s.buf[0] = 1
        del s
    gc.collect()
    for _ in range(50):
        s = SharedMemory(shm.name)
        s.close()
    assert open_fds() == before


# --------------------------------------------------------------------------------------------
# Unlink


def test_unlink_semantics(unique_name):
    a = SharedMemory(unique_name, create=True, size=64)
    b = SharedMemory(unique_name)
    try:
        a.unlink()
        assert not os.path.exists(path_of(unique_name))
        with pytest.raises(FileNotFoundError):
            SharedMemory(unique_name)
        # Existing mappings keep working and stay shared.
        a.buf[0] = 11
        assert b.buf[0] == 11
        b.buf[1] = 12
        assert a.buf[1] == 12
        # POSIX shared memory is unlinked once: the second call fails.
        with pytest.raises(FileNotFoundError):
            b.unlink()
    finally:
        a.close()
        b.close()


def test_recreate_after_unlink_is_a_new_object(unique_name):
    old = SharedMemory(unique_name, create=True, size=64)
    old.buf[0] = 1
    old.unlink()
    new = SharedMemory(unique_name, create=True, size=128)
    try:
        assert new.size == 128 and new.buf[0] == 0
        new.buf[0] = 2
        assert old.buf[0] == 1
        reopened = SharedMemory(unique_name)
        assert reopened.size == 128 and reopened.buf[0] == 2
        reopened.close()
    finally:
        cleanup(old, new)


def test_stdlib_double_unlink_raises(unique_name):
    uno = SharedMemory(unique_name, create=True, size=5000)
    with pytest.raises(FileNotFoundError):
        try:
            duo = SharedMemory(unique_name)
            duo.unlink()
            duo.close()
            uno.close()
        finally:
            uno.unlink()


# --------------------------------------------------------------------------------------------
# No resource tracker: attaching never unlinks


def test_child_that_attaches_and_exits_does_not_unlink(shm, run_py, popen_py):
    # 1. attaches, writes, exits without closing
    run_py("import sys; from mpx.shared_memory import SharedMemory as S; S(sys.argv[1]).buf[0] = 1", shm.name)
    # 2. attaches, closes, exits
    run_py("import sys; from mpx.shared_memory import SharedMemory as S; s = S(sys.argv[1]); s.buf[1] = 2; s.close()", shm.name)
    # 3. attaches with multiprocessing imported (as stdlib users would), exits
    run_py(
        "import sys, multiprocessing; from mpx.shared_memory import SharedMemory as S; S(sys.argv[1]).buf[2] = 3",
        shm.name,
    )
    # 4. attaches and is killed with SIGKILL
    p = popen_py(
        """
        import sys, time
        from mpx.shared_memory import SharedMemory
        s = SharedMemory(sys.argv[1])
        s.buf[3] = 4
        print("ready", flush=True)
        time.sleep(60)
        """,
        shm.name,
    )
    ready, _, _ = select.select([p.stdout], [], [], TIMEOUT)
    assert ready and p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGKILL)
    assert p.wait(TIMEOUT) == -signal.SIGKILL

    assert os.path.exists(path_of(shm.name))
    again = SharedMemory(shm.name)
    assert bytes(again.buf[:4]) == b"\x01\x02\x03\x04"
    again.close()


# --------------------------------------------------------------------------------------------
# Read-only


def test_readonly_open(shm, run_py):
    ro = SharedMemory(shm.name, readonly=True)
    try:
        assert ro.readonly and ro.buf.readonly and ro.size == 4096
        with pytest.raises(TypeError):
            ro.buf[0] = 1
        arr = np.ndarray((4096,), dtype=np.uint8, buffer=ro.buf)
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0] = 1
        # It sees the writers' changes, in this process and from another one.
        shm.buf[0] = 42
        assert ro.buf[0] == 42 and arr[0] == 42
        run_py("import sys; from mpx.shared_memory import SharedMemory as S; S(sys.argv[1]).buf[1] = 43", shm.name)
        assert ro.buf[1] == 43
        del arr
    finally:
        ro.close()


def test_readonly_child_cannot_write(shm, run_py):
    res = run_py(
        """
        import sys
        from mpx.shared_memory import SharedMemory
        s = SharedMemory(sys.argv[1], readonly=True)
        try:
            s.buf[0] = 1
        except TypeError:
            print("refused")
        """,
        shm.name,
    )
    assert res.stdout.strip() == "refused"
    assert shm.buf[0] == 0


def test_readonly_create_is_refused(unique_name):
    with pytest.raises(ValueError):
        SharedMemory(unique_name, create=True, size=10, readonly=True)
    assert not os.path.exists(path_of(unique_name))


# --------------------------------------------------------------------------------------------
# Anonymous buffers and file descriptors


def test_anonymous_buffer(run_py):
    before = set(os.listdir(SHM_DIR))
    a = SharedMemory.anonymous(8192)
    try:
        assert a.name is None and a.size == 8192 and len(a.buf) == 8192
        assert repr(a) == "SharedMemory(None, size=8192)"
        # Nothing named: no entry in /dev/shm (only other people's objects may have appeared).
        new = {e for e in set(os.listdir(SHM_DIR)) - before if e.startswith("mpx.")}
        assert all(not e.startswith("mpx.psm_") and str(os.getpid()) not in e for e in new)
        assert isinstance(a.fd, int) and a.fd >= 0
        with pytest.raises(TypeError):
            pickle.dumps(a)
        with pytest.raises(ValueError):
            a.unlink()
        a.buf[:5] = b"anon!"
        # Passed to a child by fd: the child maps the same memory.
        fd = a.fd
        out = run_py(
            """
            import sys
            from mpx.shared_memory import SharedMemory
            s = SharedMemory.from_fd(int(sys.argv[1]))
            print(s.name, s.size, bytes(s.buf[:5]).decode())
            s.buf[5:10] = b"child"
            s.close()
            """,
            fd,
            pass_fds=[fd],
        ).stdout.split()
        assert out == ["None", "8192", "anon!"]
        assert bytes(a.buf[:10]) == b"anon!child"
    finally:
        a.close()


def test_from_fd_in_process_and_readonly():
    a = SharedMemory.anonymous(100)
    try:
        b = SharedMemory.from_fd(a.fd)
        assert b.fd != a.fd  # duplicated: each object owns its descriptor
        b.buf[0] = 5
        assert a.buf[0] == 5
        ro = SharedMemory.from_fd(a.fd, readonly=True)
        assert ro.readonly and ro.buf.readonly and ro.buf[0] == 5
        with pytest.raises(TypeError):
            ro.buf[0] = 1
        # The caller keeps its own fd: closing b does not close a's.
        b.close()
        ro.close()
        a.buf[1] = 6
        assert a.buf[1] == 6
    finally:
        a.close()


def test_from_fd_of_a_named_buffer(shm):
    b = SharedMemory.from_fd(shm.fd)
    try:
        assert b.name is None and b.size == 4096
        shm.buf[7] = 7
        assert b.buf[7] == 7
    finally:
        b.close()


def test_from_fd_keeps_memory_after_creator_closes(run_py):
    a = SharedMemory.anonymous(64)
    fd = os.dup(a.fd)
    a.buf[0] = 1
    a.close()
    try:
        b = SharedMemory.from_fd(fd)
        assert b.buf[0] == 1
        b.close()
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# The package


def test_package_surface():
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", mpx.__version__)
    assert os.path.exists(mpx.library_path)
    assert mpx.shared_memory.SharedMemory is SharedMemory
    assert issubclass(mpx.errors.KindError, mpx.errors.MpxError)
    assert "ShareableList" in shared_memory.__doc__  # documented as out of scope


# --------------------------------------------------------------------------------------------
# The two buffer objects behind buf: the accelerator's Mapping over the library's own mapping
# (mpx/_speedups.c), or Python's mmap of the segment (without the accelerator). Same rules.


@pytest.fixture(params=["mapping", "mmap"])
def path(request, monkeypatch):
    if request.param == "mapping":
        if shared_memory._Mapping is None:
            pytest.skip("the accelerator (make pyext) is not built or MPX_NO_SPEEDUPS is set")
    else:
        monkeypatch.setattr(shared_memory, "_Mapping", None)
    return request.param


def test_buffer_object_of_each_path(path, unique_name):
    import mmap

    fds = open_fds()
    a = SharedMemory(unique_name, create=True, size=100)
    b = SharedMemory(unique_name)
    try:
        want = mmap.mmap if path == "mmap" else shared_memory._Mapping
        assert type(a.buf.obj) is want and type(b.buf.obj) is want
        assert a.buf.format == "B" and a.buf.nbytes == 100 and not a.buf.readonly
        a.buf[99] = 42
        assert b.buf[99] == 42 and bytes(b.buf[:2]) == b"\0\0"
        view = b.buf[90:]
        with pytest.raises(BufferError):
            b.close()
        assert b.buf[99] == 42  # still usable after the refused close
        view.release()
        b.close()
        b.close()  # again: nothing to do
        assert b.buf is None
        with pytest.raises(ValueError):
            b.fd
    finally:
        cleanup(b, a)
    assert open_fds() == fds


def test_direct_export_of_the_buffer_object_blocks_close(path, shm):
    raw = memoryview(shm.buf.obj)  # not through buf: a second export of the object itself
    with pytest.raises(BufferError):
        shm.close()
    raw[5] = 5
    assert shm.buf[5] == 5
    raw.release()
    shm.close()
    assert shm.buf is None


def test_readonly_buffer_object_refuses_writes(path, shm):
    ro = SharedMemory(shm.name, readonly=True)
    try:
        assert ro.buf.readonly
        with pytest.raises(TypeError):
            ro.buf[0] = 1
        # The object behind buf refuses a writable export too (the pages are read-only: a
        # write would crash the interpreter).
        with pytest.raises(TypeError):
            memoryview(ro.buf.obj)[0] = 1
        with pytest.raises((BufferError, TypeError)):
            ctypes.c_char.from_buffer(ro.buf.obj)  # asks for a writable buffer
        shm.buf[0] = 9
        assert ro.buf[0] == 9
    finally:
        ro.close()


def test_collected_object_keeps_handle_until_last_user(path, shm):
    fds = open_fds()
    s = SharedMemory(shm.name)
    arr = np.frombuffer(s.buf, dtype=np.uint8)
    del s
    gc.collect()
    arr_w = arr.copy()
    shm.buf[1] = 3
    assert arr[1] == 3 and arr_w[1] == 0  # still the shared memory
    assert open_fds() > fds  # the memory (and its descriptor) lives with the array
    del arr
    gc.collect()
    assert open_fds() == fds


def test_failed_setup_closes_the_handle_and_removes_the_new_name(path, unique_name, monkeypatch):
    def fail(*args, **kw):
        raise MemoryError("injected")

    if path == "mapping":
        monkeypatch.setattr(shared_memory, "_Mapping", fail)
    else:
        monkeypatch.setattr(SharedMemory, "_map", staticmethod(fail))
    fds = open_fds()
    with pytest.raises(MemoryError):
        SharedMemory(unique_name, create=True, size=64)
    assert open_fds() == fds
    assert not os.path.exists(path_of(unique_name))


def test_mapping_refuses_a_null_or_foreign_handle():
    if shared_memory._Mapping is None:
        pytest.skip("the accelerator (make pyext) is not built or MPX_NO_SPEEDUPS is set")
    from mpx._lib import shm_p

    fns = shared_memory._MAPPING_FNS
    with pytest.raises(ValueError):
        shared_memory._Mapping(fns, shm_p(), False)  # NULL: refused, not dereferenced
    with pytest.raises(ValueError):
        shared_memory._Mapping(fns, ctypes.c_int(1), False)  # not pointer-sized
    with pytest.raises(TypeError):
        shared_memory._Mapping(fns, 12345, False)  # not a ctypes pointer at all
    with pytest.raises(ValueError):
        shared_memory._Mapping((0,) * 5, shm_p(), False)


def test_mapping_takes_the_handle_over(unique_name):
    # The Mapping is the handle's only owner: the ctypes pointer it came from is NULL after,
    # so a caller's clean-up (or a second Mapping) can never close or use it again.
    if shared_memory._Mapping is None:
        pytest.skip("the accelerator (make pyext) is not built or MPX_NO_SPEEDUPS is set")
    from mpx._lib import check, lib, shm_p

    h = shm_p()
    check(lib.mpx_shm_create(unique_name.encode(), 64, 0, ctypes.byref(h)))
    try:
        m = shared_memory._Mapping(shared_memory._MAPPING_FNS, h, False)
        assert not h, "the pointer must be NULL once the Mapping owns the handle"
        with pytest.raises(ValueError):
            shared_memory._Mapping(shared_memory._MAPPING_FNS, h, False)
        shared_memory._close(h)  # closing the emptied pointer does nothing
        assert m.handle and m.size == 64
        memoryview(m)[0] = 7
        m.close()
        assert m.handle is None and m.closed
    finally:
        lib.mpx_shm_unlink(unique_name.encode())


def test_closing_the_mapping_behind_buf_leaves_no_stale_handle(unique_name):
    # Reaching into buf.obj and closing it must not leave SharedMemory a freed handle: fd says
    # closed, unlink goes by name, close does nothing more.
    if shared_memory._Mapping is None:
        pytest.skip("the accelerator (make pyext) is not built or MPX_NO_SPEEDUPS is set")
    s = SharedMemory(unique_name, create=True, size=64)
    m = s.buf.obj
    s.buf.release()
    m.close()
    with pytest.raises(ValueError):
        s.fd
    s.unlink()
    assert not os.path.exists(path_of(unique_name))
    s._buf = None
    s.close()
