"""mpx.Value, Array, RawValue and RawArray: multiprocessing's semantics (synchronized wrappers,
get_lock/get_obj, lock=False/True/<lock>, ctypes types as typecodes, slices, len, iteration),
zero-copy numpy views, pickling to children of every start method, named values, and bad
input. Real processes; every wait bounded."""

import ctypes
import multiprocessing
import multiprocessing.sharedctypes as std_sharedctypes
import os
import pickle
import threading

import numpy as np
import pytest

import mpx
from mpx import sharedctypes

TIMEOUT = 30


#
# Targets (module level: spawned children import this module)
#


def child_increment(v, arr, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1
        with arr.get_lock():
            arr[0] += 1
            arr[1] += 2


def child_raw_write(raw_value, raw_array):
    raw_value.value = 99
    raw_array[:] = list(range(10, 10 + len(raw_array)))


def child_numpy_write(arr, seed):
    a = np.frombuffer(arr.get_obj(), dtype=np.float64)
    a[:] = np.arange(len(a)) * seed


def child_hold_value_lock(v):
    if not v.get_lock().acquire(timeout=TIMEOUT):
        os._exit(3)
    os._exit(0)


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int)]


class Inner(ctypes.Structure):
    _fields_ = [("a", ctypes.c_double), ("tag", ctypes.c_char * 8)]


class Outer(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint16), ("inner", Inner), ("pts", Point * 2)]


def child_move_points(v, arr, outer, raw):
    with v.get_lock():
        v.x += 10
    v.y = -v.y
    arr[1] = (30, 40)
    with outer:
        outer.inner.tag = b"child"
        outer.pts[0].y = 7
        outer.id = 65535
    raw.x = 99


def start(method, target, *args):
    if method == "stdlib-spawn":
        p = multiprocessing.get_context("spawn").Process(target=target, args=args)
    else:
        p = mpx.get_context(method).Process(target=target, args=args)
    p.start()
    return p


def join(p):
    p.join(TIMEOUT * 2)
    if p.exitcode is None:
        p.kill()
        p.join(10)
    return p.exitcode


@pytest.fixture
def named(make_name):
    made = []

    def name(tag="v"):
        n = make_name(tag)
        made.append(n)
        return n

    yield name
    for n in made:
        try:
            mpx.Value.unlink_name(n)
        except FileNotFoundError:
            pass


#
# Semantics
#


def test_value_like_multiprocessing():
    v = mpx.Value("i", 7)
    m = multiprocessing.Value("i", 7)
    assert type(v).__name__ == type(m).__name__ == "Synchronized"
    assert v.value == m.value == 7
    assert repr(v) == repr(m) == "<Synchronized wrapper for c_int(7)>"
    assert type(v.get_obj()) is ctypes.c_int
    v.value = 8
    assert v.get_obj().value == 8
    with v:
        v.value += 1
    assert v.acquire() and v.acquire(timeout=1)  # the default lock is recursive
    v.release()
    v.release()
    with pytest.raises(AssertionError, match="not owned"):
        v.release()
    assert mpx.Value("d").value == 0.0
    assert mpx.Value(ctypes.c_double, 1.5).value == 1.5
    assert mpx.Value("c", b"x").value == b"x"
    assert mpx.Value("u", "z").value == "z"
    assert mpx.Value("Q", 2**64 - 1).value == 2**64 - 1
    assert mpx.Value("b", -5).value == -5
    # ctypes' own conversion rules, as in multiprocessing (silently wraps).
    assert mpx.Value("B", 257).value == multiprocessing.Value("B", 257).value == 1
    with pytest.raises(TypeError):
        mpx.Value("i", "text")


def test_typecodes_and_types():
    for code, t in sharedctypes.typecode_to_type.items():
        v = mpx.RawValue(code)
        assert type(v) is t and ctypes.sizeof(v) == ctypes.sizeof(t)
        a = mpx.RawArray(t, 3)
        assert a._type_ is t and len(a) == 3
    for bad in ("x", "ii", "", int, None, ctypes.c_int(3)):
        with pytest.raises(TypeError, match="unsupported"):
            mpx.Value(bad)


def test_structures_like_multiprocessing():
    v, m = mpx.Value(Point, 1, 2), multiprocessing.Value(Point, 1, 2)
    assert type(v).__name__ == type(m).__name__ == "SynchronizedPoint"
    assert (v.x, v.y) == (m.x, m.y) == (1, 2)
    assert repr(v).startswith("<SynchronizedPoint wrapper for <")
    v.x = 5  # a property per field, under the lock
    assert type(v.get_obj()) is Point and v.get_obj().x == 5
    with v:
        assert v.get_lock().acquire(timeout=1)  # the embedded lock, recursive
        v.get_lock().release()
        v.y += 1
    assert v.y == 3
    # Stored as bytes (typecode 'B'), laid out as ctypes (and C) lay the struct out.
    assert v.typecode == "B" and v.get_obj()._wrapper.count == ctypes.sizeof(Point)
    assert bytes(memoryview(v.get_obj()).cast("B")) == bytes(Point(5, 3))
    raw = mpx.RawValue(Point, 3, 4)
    assert type(raw) is Point and (raw.x, raw.y) == (3, 4)
    assert (mpx.Value(Point, lock=False).x, mpx.Value(Point, 0, 8).y) == (0, 8)
    # Arrays of structures: tuples initialise elements, as ctypes (and multiprocessing) do.
    a, ma = mpx.Array(Point, [(1, 2), (3, 4)]), multiprocessing.Array(Point, [(1, 2), (3, 4)])
    assert type(a).__name__ == type(ma).__name__ == "SynchronizedArray"
    assert len(a) == 2 and (a[1].x, a[1].y) == (ma[1].x, ma[1].y) == (3, 4)
    a[0] = (5, 6)
    assert a[0].y == 6 and [p.x for p in a] == [5, 3]
    ra = mpx.RawArray(Point, 3)
    assert type(ra) is Point * 3 and ra[2].y == 0
    assert len(mpx.Array(Point, 0)) == 0
    with pytest.raises(TypeError):
        mpx.Value(Point, 1, 2, 3)  # too many initialisers, ctypes' own error
    # Nested structures and c_char array fields: the fields read and write shared memory.
    o = mpx.Value(Outer)
    o.inner.a = 1.5
    o.inner.tag = b"abc"
    o.pts[1].x = 9
    assert o.get_obj().inner.tag == b"abc" and o.get_obj().pts[1].x == 9 and o.inner.a == 1.5
    # Arrays of c_char as a type: SynchronizedString with .value and .raw, as in CPython.
    st = mpx.Value(ctypes.c_char * 6)
    assert type(st).__name__ == type(multiprocessing.Value(ctypes.c_char * 6)).__name__ == "SynchronizedString"
    st.value = b"hi"
    assert st.raw == b"hi\0\0\0\0" and st.value == b"hi"
    # Other simple types without a typecode: c_bool, and the locked value of its wrapper.
    b = mpx.Value(ctypes.c_bool, True)
    assert type(b).__name__ == "Synchronized" and b.value is True
    b.value = False
    assert b.value is False
    assert mpx.Array(ctypes.c_bool, [True, False, True])[:] == [True, False, True]
    w = sharedctypes.synchronized(mpx.RawValue(Point, 1, 1), mpx.Lock())
    w.x = 2
    assert type(w).__name__ == "SynchronizedPoint" and w.get_obj().x == 2 and not w.get_lock().locked()


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver", "stdlib-spawn"])
def test_a_child_modifies_structure_fields(method):
    v = mpx.Value(Point, 1, 2)
    arr = mpx.Array(Point, [(1, 2), (3, 4)])
    outer = mpx.Value(Outer)
    raw = mpx.RawValue(Point)
    assert join(start(method, child_move_points, v, arr, outer, raw)) == 0
    assert (v.x, v.y) == (11, -2)
    assert (arr[1].x, arr[1].y) == (30, 40) and (arr[0].x, arr[0].y) == (1, 2)
    assert outer.inner.tag == b"child" and outer.pts[0].y == 7 and outer.id == 65535
    assert raw.x == 99


def test_named_structures(named):
    n = named()
    v = mpx.Value.create(n, Point, 1, 2)
    assert v.name == n
    o = mpx.Value.open(n, typecode_or_type=Point)
    assert type(o).__name__ == "SynchronizedPoint" and (o.x, o.y) == (1, 2)
    o.y = 20
    assert v.y == 20
    assert pickle.loads(pickle.dumps(v)).y == 20  # named: by name, with the view's type
    assert mpx.RawValue.open(n, Point).y == 20
    assert mpx.Array.open(n, lock=False, typecode_or_type=Point)[0].x == 1
    assert mpx.Array.open(n, lock=False)[:] == list(bytes(Point(1, 20)))  # the bytes themselves
    with pytest.raises(ValueError, match="Array.open"):
        mpx.Value.open(n)  # 8 bytes: an array of 'B'
    with pytest.raises(ValueError, match="whole number"):
        mpx.Value.open(n, typecode_or_type=Outer)
    an = named()
    a = mpx.Array.create(an, Point, [(1, 2), (3, 4), (5, 6)])
    assert [p.y for p in mpx.Array.open(an, typecode_or_type=Point)] == [2, 4, 6]
    with pytest.raises(TypeError, match="typecode"):
        mpx.Value.open(mpx.Value.create(named(), "i", 1).name, typecode_or_type=Point)
    del a


def test_lock_argument():
    raw = mpx.Value("i", 1, lock=False)
    assert type(raw) is ctypes.c_int and raw.value == 1
    assert not hasattr(raw, "get_lock")
    assert isinstance(mpx.Value("i", lock=None).get_lock(), type(mpx.Value("i").get_lock()))
    lock = mpx.Lock()
    v = mpx.Value("i", 1, lock=lock)
    assert v.get_lock() is lock
    with v:
        assert lock.locked()
    rl = mpx.RLock()
    a = mpx.Array("i", 3, lock=rl)
    assert a.get_lock() is rl
    # Any object with acquire/release, as multiprocessing accepts.
    tl = threading.Lock()
    assert mpx.Value("i", lock=tl).get_lock() is tl
    with pytest.raises(AttributeError, match="acquire"):
        mpx.Value("i", lock="not a lock")
    with pytest.raises(AttributeError, match="acquire"):
        mpx.Array("i", 2, lock=5)


def test_array_like_multiprocessing():
    a = mpx.Array("i", [1, 2, 3, 4, 5])
    m = multiprocessing.Array("i", [1, 2, 3, 4, 5])
    assert type(a).__name__ == type(m).__name__ == "SynchronizedArray"
    assert len(a) == 5 and a[:] == m[:] == [1, 2, 3, 4, 5]
    assert list(a) == [1, 2, 3, 4, 5] and sum(a) == 15
    assert a[1:4] == [2, 3, 4] and a[::-2] == [5, 3, 1] and a[-1] == 5
    a[0] = 10
    a[1:3] = [20, 30]
    assert a[:] == [10, 20, 30, 4, 5]
    with pytest.raises(IndexError):
        a[5]
    with pytest.raises(ValueError):
        a[0:2] = [1, 2, 3]  # ctypes refuses a slice of another length
    assert mpx.Array("d", 4)[:] == [0.0] * 4
    assert len(mpx.Array(ctypes.c_short, range(7))) == 7
    assert len(mpx.Array("i", 0)) == 0
    with pytest.raises(ValueError):
        mpx.Array("i", -1)
    s = mpx.Array("c", b"hello")
    assert type(s).__name__ == "SynchronizedString"
    assert s.value == b"hello" and s.raw == b"hello"
    s.value = b"hi"
    assert s.raw == b"hi\0lo"  # ctypes writes the NUL and leaves the rest
    r = mpx.RawArray("d", [0.5, 1.5])
    assert type(r).__name__ == "c_double_Array_2" and r[:] == [0.5, 1.5]


def test_zero_copy_numpy_and_memoryview():
    a = mpx.Array("d", 1000)
    view = np.frombuffer(a.get_obj(), dtype=np.float64)
    assert view.shape == (1000,)
    view[:] = np.arange(1000)
    assert a[999] == 999.0 and a[10:13] == [10.0, 11.0, 12.0]
    a[5] = -1.0
    assert view[5] == -1.0
    m = memoryview(a.get_obj())
    assert m.format == "<d" and m.nbytes == 8000 and not m.readonly
    ints = mpx.RawArray("i", 16)
    iv = np.ctypeslib.as_array(ints)
    iv += 3
    assert ints[:] == [3] * 16
    # The memory outlives the wrapper while a view uses it.
    del a
    view[0] = 42.0
    assert view[0] == 42.0


#
# Across processes
#


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver", "stdlib-spawn"])
def test_counter_exact_in_children(method):
    v = mpx.Value("q", 0)
    arr = mpx.Array("i", 2)
    n = 2000 if method != "fork" else 10000
    procs = [start(method, child_increment, v, arr, n) for _ in range(2)]
    assert [join(p) for p in procs] == [0, 0]
    assert v.value == 2 * n
    assert arr[:] == [2 * n, 4 * n]


@pytest.mark.parametrize("method", ["fork", "spawn", "stdlib-spawn"])
def test_raw_objects_reach_children(method):
    rv = mpx.RawValue("i", 1)
    ra = mpx.RawArray("h", 4)
    assert join(start(method, child_raw_write, rv, ra)) == 0
    assert rv.value == 99 and ra[:] == [10, 11, 12, 13]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_numpy_writes_in_a_child(method):
    arr = mpx.Array("d", 64, lock=False)
    assert join(start(method, child_numpy_write, mpx.Array("d", 1), 1.0)) == 0  # a warm-up
    wrapped = sharedctypes.synchronized(arr, mpx.Lock())
    assert join(start(method, child_numpy_write, wrapped, 2.0)) == 0
    assert np.array_equal(np.frombuffer(arr, dtype=np.float64), np.arange(64) * 2.0)


def test_pickling_named_values(named):
    v = mpx.Value.create(named(), "d", 2.5)
    v2 = pickle.loads(pickle.dumps(v))
    v2.value = 3.5
    assert v.value == 3.5 and v2.name == v.name
    with v2:
        assert v.get_lock().acquire(False)  # the same recursive lock, held by this thread
        v.get_lock().release()
    lock = mpx.Lock.create(named(), unlink_on_last_close=True)
    a = mpx.Array.create(named(), "i", [1, 2], lock=lock)
    a2 = pickle.loads(pickle.dumps(a))
    with a2:
        assert a.get_lock().locked()  # the same lock object travelled by name
    # Raw objects travel by name with multiprocessing's pickler (what starting a process uses);
    # plain pickle copies a ctypes value, as it always does.
    from multiprocessing.reduction import ForkingPickler

    r = mpx.RawArray.create(named(), "i", 3)
    r2 = pickle.loads(ForkingPickler.dumps(r))
    r2[1] = 5
    assert r[1] == 5
    rv = mpx.RawValue.create(named(), "i", 4)
    copy = pickle.loads(pickle.dumps(rv))
    copy.value = 6
    assert rv.value == 4


def test_anonymous_values_pickle_only_for_a_child_being_started():
    from multiprocessing import context as std_context
    from multiprocessing.reduction import ForkingPickler

    from mpx._spawn import _SpawningPopen

    before = set(os.listdir("/dev/shm"))
    v, a, r = mpx.Value("d", 2.5), mpx.Array("i", [1, 2]), mpx.RawArray("i", 3)
    assert v.name is None and a.name is None and r._wrapper.name is None
    assert set(os.listdir("/dev/shm")) == before, "anonymous values are not in /dev/shm"
    # As multiprocessing's: RuntimeError outside process start, with any pickler.
    for obj in (v, a, v.get_lock(), mpx.Value("i", lock=mpx.Lock())):
        with pytest.raises(RuntimeError, match="through inheritance"):
            pickle.dumps(obj)
    with pytest.raises(RuntimeError, match="through inheritance"):
        ForkingPickler.dumps(r)
    with pytest.raises(ValueError, match="no name"):
        v.unlink()
    # ctypes' own pickling (plain pickle) of a raw object includes its segment: refused too.
    with pytest.raises(RuntimeError, match="through inheritance"):
        pickle.dumps(mpx.RawValue("i", 4))
    # While a process is being started, the descriptor goes to the child.
    popen = _SpawningPopen()
    std_context.set_spawning_popen(popen)
    try:
        ForkingPickler.dumps((v, r))
    finally:
        std_context.set_spawning_popen(None)
    assert popen.fds == [v.get_obj()._wrapper.fd(), r._wrapper.fd()]
    # Once multiprocessing shares the same ctypes type, its reducer (registered last) handles
    # both its objects and ours, with the same rule.
    mp_raw = std_sharedctypes.RawArray("i", 3)
    with pytest.raises(RuntimeError, match="inheritance"):
        ForkingPickler.dumps(mp_raw)
    with pytest.raises(RuntimeError, match="inheritance"):
        ForkingPickler.dumps(r)
    popen = _SpawningPopen()
    std_context.set_spawning_popen(popen)
    try:
        ForkingPickler.dumps(r)
    finally:
        std_context.set_spawning_popen(None)
    assert popen.fds == [r._wrapper.fd()]


#
# Named values, for other programs
#


def test_named_values(named):
    n = named()
    v = mpx.Value.create(n, "i", 5)
    assert v.name == n and v.typecode == "i"
    with pytest.raises(FileExistsError):
        mpx.Value.create(n, "i")
    o = mpx.Value.open(n)
    assert type(o).__name__ == "Synchronized" and o.value == 5  # it has its lock
    o.value = 6
    assert v.value == 6
    raw = mpx.Value.open(n, lock=False)
    assert type(raw) is ctypes.c_int and raw.value == 6
    assert mpx.RawValue.open(n).value == 6
    with pytest.raises(ValueError, match="Array.open"):
        mpx.Value.open(mpx.Array.create(named(), "i", 3).name)
    an = named()
    a = mpx.Array.create(an, "d", [1.0, 2.0], lock=False)
    assert type(a).__name__ == "c_double_Array_2"
    assert type(mpx.Array.open(an)).__name__ == "c_double_Array_2"  # no lock of its own: raw
    with pytest.raises(ValueError, match="no lock of its own"):
        mpx.Array.open(an, lock=True)
    lk = mpx.Lock()
    wa = mpx.Array.open(an, lock=lk)
    assert wa.get_lock() is lk and wa[:] == [1.0, 2.0]
    rn = named()
    rv = mpx.RawValue.create(rn, "q", -3)
    assert mpx.Value.open(rn).value == -3
    mpx.RawArray.create(named(), "B", b"abc")
    v.unlink()
    with pytest.raises(FileNotFoundError):
        mpx.Value.open(n)
    assert v.value == 6  # still usable
    with pytest.raises(FileNotFoundError):
        mpx.Value.unlink_name(n)
    del rv


def test_wrong_kinds_and_bad_input(named):
    lock = mpx.Lock.create(named())
    with pytest.raises(mpx.KindError, match="not a value"):
        mpx.Value.open(lock.name)
    with pytest.raises(mpx.KindError):
        mpx.Array.open(lock.name)
    v = mpx.Value.create(named(), "i")
    with pytest.raises(mpx.KindError):
        mpx.Lock.open(v.name)
    with pytest.raises(FileNotFoundError):
        mpx.Value.open(named())
    with pytest.raises(ValueError):
        mpx.Value.create("bad name!", "i")
    with pytest.raises(TypeError):
        mpx.Array("i", 2.5)
    with pytest.raises(TypeError):
        sharedctypes.synchronized(ctypes.c_int(3))
    with pytest.raises(TypeError, match="already"):
        sharedctypes.synchronized(mpx.Value("i"))
    # A failed initialisation of a named value leaves no name behind.
    n = named()
    with pytest.raises(TypeError):
        mpx.Value.create(n, "i", "text")
    with pytest.raises(FileNotFoundError):
        mpx.Value.open(n)


def test_owner_died_on_value_lock():
    v = mpx.Value("i", 0)
    p = mpx.get_context("fork").Process(target=child_hold_value_lock, args=(v,))
    p.start()
    assert join(p) == 0
    with pytest.warns(mpx.OwnerDiedWarning):
        assert v.get_lock().acquire(timeout=TIMEOUT)
    v.get_lock().release()


def test_anonymous_memory_lives_while_a_view_uses_it():
    before = set(os.listdir("/dev/shm"))
    v = mpx.Value("i", 1)
    obj = v.get_obj()
    del v
    view = np.frombuffer(obj, dtype=np.int32)
    del obj
    assert view[0] == 1
    view[0] = 2
    assert view[0] == 2
    del view
    assert set(os.listdir("/dev/shm")) == before


def test_unlink_on_last_close_names_go_away(named):
    v = mpx.Value.create(named(), "i", 1, unlink_on_last_close=True)
    name = v.name
    assert os.path.exists("/dev/shm/mpx." + name)
    obj = v.get_obj()
    del v
    assert os.path.exists("/dev/shm/mpx." + name), "the ctypes object still uses it"
    view = np.frombuffer(obj, dtype=np.int32)
    del obj
    assert view[0] == 1 and os.path.exists("/dev/shm/mpx." + name)
    del view
    assert not os.path.exists("/dev/shm/mpx." + name)
