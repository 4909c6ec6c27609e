"""mpx.Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier with real
processes (fork, spawn, forkserver, and the standard library's spawn): multiprocessing's
semantics, pickling to children, named objects, owner death (OwnerDiedWarning) with SIGKILL
loops, and bad input.

Every blocking call has a timeout; children are joined with a timeout and killed if they hang.
"""

import gc
import math
import multiprocessing
import os
import pickle
import random
import signal
import threading
import time
import warnings

import pytest

import mpx
from mpx import sharedctypes, synchronize

TIMEOUT = 30  # seconds for any wait or join: a hang is a failure


#
# Targets for child processes (module level: spawned children import this module).
#


def _exit(code):
    os._exit(code)


def child_increment(lock, counter, n):
    for _ in range(n):
        with lock:
            counter.value += 1  # a read and a write: exact only under the lock


def child_all_kinds(lock, rlock, sem, event, cond, barrier, value, arr):
    """Uses every kind of object it was given; the exit code says what failed."""
    if barrier.wait(timeout=TIMEOUT) not in (0, 1):
        _exit(3)
    with lock:
        value.value += 1
    with rlock:
        with rlock:
            arr[0] = 7
    sem.release()
    with cond:
        value.value += 10
        cond.notify_all()
    event.set()
    if not lock.acquire(timeout=TIMEOUT):
        _exit(4)
    lock.release()


def child_hold_and_exit(lock):
    """Takes the lock and exits holding it."""
    if not lock.acquire(timeout=TIMEOUT):
        _exit(5)
    _exit(0)


def child_wait_event(event, seconds):
    if not event.wait(seconds):
        _exit(6)


def child_cond_waiter(cond, woken, go):
    with cond:
        woken.value += 100  # registered
        if not cond.wait(timeout=TIMEOUT):
            _exit(7)
        woken.value += 1
    go.wait(TIMEOUT)


def child_barrier(barrier, rounds, sums):
    for r in range(rounds):
        i = barrier.wait(timeout=TIMEOUT)
        with sums.get_lock():
            sums[r] += 1 << i


def child_barrier_expect_broken(barrier):
    try:
        barrier.wait(timeout=TIMEOUT)
    except threading.BrokenBarrierError:
        _exit(0)
    _exit(8)


def child_rlock_foreign(rlock):
    if rlock.acquire(block=False):
        _exit(9)
    try:
        rlock.release()
    except AssertionError:
        _exit(0)
    _exit(10)


def child_lock_release_foreign(lock):
    lock.release()  # a Lock may be released by any process


#
# Helpers
#


def start(method, target, *args):
    ctx = mpx.get_context(method)
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def join_all(*procs):
    """Joins (bounded) and returns the exit codes; a hung child is killed and counts as None."""
    codes = []
    for p in procs:
        p.join(TIMEOUT * 2)
        if p.exitcode is None:
            p.kill()
            p.join(10)
            codes.append(None)
        else:
            codes.append(p.exitcode)
    return codes


def fork_do(fn):
    """os.fork a child that runs fn() and exits 0 (1 on an exception); returns its pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        finally:
            os._exit(code)
    return pid


def waitpid_bounded(pid, seconds=TIMEOUT):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        p, status = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("child %d hung" % pid)


def shm_exists(name):
    return os.path.exists("/dev/shm/mpx." + name)


@pytest.fixture
def named(make_name):
    """``named(cls, *args)``: creates a named object and unlinks it at the end."""
    made = []

    def create(cls, *args, **kw):
        name = make_name("sync")
        obj = cls.create(name, *args, **kw)
        made.append((cls, name))
        return obj

    yield create
    for cls, name in made:
        try:
            cls.unlink_name(name)
        except FileNotFoundError:
            pass


#
# Lock
#


def test_lock_semantics():
    lock = mpx.Lock()
    assert isinstance(lock, synchronize.Lock)
    assert repr(lock) == "<Lock(owner=None)>"
    assert lock.acquire() is True
    assert lock.locked()
    assert repr(lock) == "<Lock(owner=MainProcess)>"
    assert lock.acquire(False) is False
    assert lock.acquire(block=False, timeout=10) is False  # block=False ignores the timeout
    t = time.monotonic()
    assert lock.acquire(timeout=0.05) is False
    assert time.monotonic() - t >= 0.045
    lock.release()
    with pytest.raises(ValueError, match="released too many times"):
        lock.release()
    with lock as got:
        assert got is True and lock.locked()
    assert not lock.locked()
    # Any thread may release it.
    lock.acquire()
    th = threading.Thread(target=lock.release)
    th.start()
    th.join(TIMEOUT)
    assert not lock.locked()


def test_lock_released_by_another_process():
    lock = mpx.Lock()
    lock.acquire()
    assert join_all(start("fork", child_lock_release_foreign, lock)) == [0]
    assert not lock.locked()
    assert lock.acquire(timeout=TIMEOUT)
    lock.release()


def test_negative_and_odd_timeouts():
    lock = mpx.Lock()
    lock.acquire()
    # multiprocessing treats a negative timeout as 0: try once, never wait.
    t = time.monotonic()
    assert lock.acquire(timeout=-1) is False
    assert lock.acquire(True, -0.5) is False
    assert mpx.Semaphore(0).acquire(timeout=-3) is False
    ev = mpx.Event()
    assert ev.wait(-1) is False
    cond = mpx.Condition()
    with cond:
        assert cond.wait(-2) is False
    b = mpx.Barrier(2)
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(timeout=-1)
    assert b.broken
    assert time.monotonic() - t < 5
    assert lock.acquire(timeout=0) is False
    with pytest.raises(ValueError, match="NaN"):
        lock.acquire(timeout=float("nan"))
    with pytest.raises(TypeError):
        lock.acquire(timeout="1")
    # Huge timeouts are "without limit", not an overflow.
    lock.release()
    assert lock.acquire(timeout=1e300) is True
    assert lock.acquire(timeout=math.inf, block=False) is False
    lock.release()


def test_lock_counter_exact_across_processes():
    lock = mpx.Lock()
    counter = mpx.RawValue("q", 0)
    n = 20000
    procs = [start("fork", child_increment, lock, counter, n) for _ in range(2)]
    assert join_all(*procs) == [0, 0]
    assert counter.value == 2 * n


#
# RLock
#


def test_rlock_semantics():
    r = mpx.RLock()
    assert r.acquire() and r.acquire(block=False)
    assert r._count() == 2
    assert repr(r) == "<RLock(MainProcess, 2)>"
    # Another thread can neither take nor release it.
    result = []

    def other():
        result.append(r.acquire(timeout=0.01))
        try:
            r.release()
        except AssertionError as e:
            result.append(("AssertionError", isinstance(e, RuntimeError), str(e)))

    th = threading.Thread(target=other)
    th.start()
    th.join(TIMEOUT)
    assert result == [False, ("AssertionError", True, "attempt to release recursive lock not owned by thread")]
    # Another process neither.
    assert join_all(start("fork", child_rlock_foreign, r)) == [0]
    r.release()
    assert r.locked()
    r.release()
    assert not r.locked() and repr(r) == "<RLock(None, 0)>"
    with pytest.raises(mpx.NotOwnedError):
        r.release()
    with r:
        with r:
            assert r._count() == 2


#
# Semaphores
#


def test_semaphore_semantics():
    s = mpx.Semaphore(2)
    assert s.get_value() == 2 and repr(s) == "<Semaphore(value=2)>"
    assert s.acquire() and s.acquire(timeout=1)
    assert s.acquire(False) is False
    t = time.monotonic()
    assert s.acquire(timeout=0.03) is False
    assert time.monotonic() - t >= 0.025
    for _ in range(5):
        s.release()  # an unbounded semaphore may go above its initial value
    assert s.get_value() == 5
    with s:
        assert s.get_value() == 4
    assert s.get_value() == 5
    assert not s.undo and s.maxvalue == mpx.synchronize.SEM_VALUE_MAX
    with pytest.raises(ValueError, match=">= 0"):
        mpx.Semaphore(-1)
    with pytest.raises(ValueError, match="SEM_VALUE_MAX"):
        mpx.Semaphore(1 << 31)
    with pytest.raises(TypeError):
        mpx.Semaphore(1.5)


def test_bounded_semaphore():
    b = mpx.BoundedSemaphore(2)
    assert repr(b) == "<BoundedSemaphore(value=2, maxvalue=2)>"
    with pytest.raises(ValueError, match="released too many times"):
        b.release()
    assert b.get_value() == 2  # the failed release changed nothing
    b.acquire()
    b.release()
    with pytest.raises(ValueError):
        b.release()
    with pytest.raises(ValueError):
        mpx.BoundedSemaphore(0)
    assert isinstance(b, mpx.Semaphore)


def test_semaphore_handoff_between_processes():
    ping, pong = mpx.Semaphore(0), mpx.Semaphore(0)

    def body():
        for _ in range(500):
            if not ping.acquire(timeout=TIMEOUT):
                raise SystemExit(1)
            pong.release()

    pid = fork_do(body)
    for _ in range(500):
        ping.release()
        assert pong.acquire(timeout=TIMEOUT)
    assert waitpid_bounded(pid) == 0


def test_semaphore_undo_gives_back_a_dead_process_permits():
    s = mpx.Semaphore(3, undo=True)
    assert s.undo

    def take_two():
        assert s.acquire(False) and s.acquire(False)

    assert waitpid_bounded(fork_do(take_two)) == 0
    assert s.get_value() == 1
    assert s.reclaim() == 2
    assert s.get_value() == 3
    plain = mpx.Semaphore(3)
    assert waitpid_bounded(fork_do(lambda: plain.acquire(False))) == 0
    assert plain.reclaim() == 0 and plain.get_value() == 2  # without undo, a permit is lost


#
# Condition
#


def test_condition_semantics():
    cond = mpx.Condition()
    with pytest.raises(AssertionError, match="must acquire"):
        cond.wait(0.01)
    with pytest.raises(RuntimeError):
        cond.notify()
    with pytest.raises(mpx.NotOwnedError):
        cond.notify_all()
    with cond:
        with cond:  # its own lock is recursive
            t = time.monotonic()
            assert cond.wait(0.03) is False
            assert time.monotonic() - t >= 0.025
        assert cond.wait_for(lambda: 42) == 42
        assert cond.wait_for(lambda: 0, timeout=0.02) == 0
        cond.notify(0)
        cond.notify(5)
        cond.notify_all()
    with pytest.raises(ValueError):
        with cond:
            cond.notify(-1)
    with pytest.raises(TypeError, match="mpx.Lock or mpx.RLock"):
        mpx.Condition(threading.Lock())
    # Over a Lock: the lock is the condition's.
    lock = mpx.Lock()
    c2 = mpx.Condition(lock)
    with c2:
        assert lock.locked()
    assert not lock.locked()
    with pytest.raises(ValueError, match="released too many times"):
        c2.release()


def test_condition_notify_n_across_processes():
    lock = mpx.RLock()
    cond = mpx.Condition(lock)
    woken = mpx.Value("i", 0)
    go = mpx.Event()
    procs = [start("fork", child_cond_waiter, cond, woken, go) for _ in range(3)]
    try:
        deadline = time.monotonic() + TIMEOUT
        while woken.value < 300 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert woken.value == 300, "three waiters registered"
        with cond:
            cond.notify(2)
        deadline = time.monotonic() + TIMEOUT
        while woken.value < 302 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.1)
        assert woken.value == 302, "notify(2) woke exactly two"
        with cond:
            cond.notify_all()
        deadline = time.monotonic() + TIMEOUT
        while woken.value < 303 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert woken.value == 303
    finally:
        go.set()
        codes = join_all(*procs)
    assert codes == [0, 0, 0]


def test_condition_wait_for_across_processes():
    cond = mpx.Condition()
    value = mpx.RawValue("i", 0)

    def producer():
        for i in range(1, 6):
            time.sleep(0.01)
            with cond:
                value.value = i
                cond.notify_all()

    pid = fork_do(producer)
    with cond:
        assert cond.wait_for(lambda: value.value == 5, timeout=TIMEOUT)
    assert waitpid_bounded(pid) == 0


#
# Event
#


def test_event_semantics():
    ev = mpx.Event()
    assert not ev.is_set() and "unset" in repr(ev)
    t = time.monotonic()
    assert ev.wait(0.03) is False
    assert time.monotonic() - t >= 0.025
    ev.set()
    assert ev.is_set() and ev.wait() is True and ev.wait(0) is True and " set" in repr(ev)
    ev.clear()
    assert not ev.is_set()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_event_wakes_child(method):
    ev = mpx.Event()
    p = start(method, child_wait_event, ev, TIMEOUT)
    time.sleep(0.05)
    ev.set()
    assert join_all(p) == [0]


#
# Barrier
#


def test_barrier_across_processes():
    b = mpx.Barrier(3)
    assert b.parties == 3 and b.n_waiting == 0 and not b.broken
    rounds = 20
    sums = mpx.Array("i", rounds)
    procs = [start("fork", child_barrier, b, rounds, sums) for _ in range(3)]
    assert join_all(*procs) == [0, 0, 0]
    assert list(sums) == [7] * rounds  # indices 0, 1, 2 once per round


def test_barrier_broken_abort_reset_timeout():
    b = mpx.Barrier(2)
    p = start("fork", child_barrier_expect_broken, b)
    deadline = time.monotonic() + TIMEOUT
    while b.n_waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.002)
    assert b.n_waiting == 1
    b.abort()
    assert join_all(p) == [0]
    assert b.broken
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(timeout=TIMEOUT)
    b.reset()
    assert not b.broken
    # A wait that times out breaks the barrier for everyone, as in Python.
    b3 = mpx.Barrier(3)
    p = start("fork", child_barrier_expect_broken, b3)
    deadline = time.monotonic() + TIMEOUT
    while b3.n_waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.002)
    t = time.monotonic()
    with pytest.raises(mpx.BrokenBarrierError):
        b3.wait(timeout=0.05)
    assert time.monotonic() - t >= 0.045
    assert join_all(p) == [0] and b3.broken
    b3.reset()
    assert not b3.broken and b3.n_waiting == 0
    # The default timeout.
    bt = mpx.Barrier(2, timeout=0.02)
    with pytest.raises(threading.BrokenBarrierError):
        bt.wait()
    with pytest.raises(ValueError):
        mpx.Barrier(0)
    with pytest.raises(TypeError):
        mpx.Barrier(2, action=5)
    assert mpx.Barrier(1).wait() == 0


def test_barrier_action_runs_once_before_release():
    log = mpx.Array("i", 3)  # [action calls, parties that saw the action done, -]

    b = mpx.Barrier(2, action=lambda: log.__setitem__(0, log[0] + 1))

    def party():
        for r in range(5):
            b.wait(timeout=TIMEOUT)
            if log[0] == r + 1:
                with log.get_lock():
                    log[1] += 1

    pid = fork_do(party)
    party()
    assert waitpid_bounded(pid) == 0
    assert log[0] == 5 and log[1] == 10


def test_barrier_failing_action_breaks_it():
    def boom():
        raise RuntimeError("action failed")

    b = mpx.Barrier(2, action=boom)
    p = start("fork", child_barrier_expect_broken, b)
    # The child arrives first, so this process arrives last and runs the action.
    deadline = time.monotonic() + TIMEOUT
    while b.n_waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.002)
    with pytest.raises(RuntimeError, match="action failed"):
        b.wait(timeout=TIMEOUT)
    assert join_all(p) == [0]


#
# Sharing with children of every start method
#


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver", "stdlib-spawn"])
def test_every_kind_reaches_a_child(method):
    lock, rlock, sem, event = mpx.Lock(), mpx.RLock(), mpx.Semaphore(0), mpx.Event()
    cond, barrier = mpx.Condition(), mpx.Barrier(2)
    value, arr = mpx.Value("i", 0), mpx.Array("d", 3)
    args = (lock, rlock, sem, event, cond, barrier, value, arr)
    if method == "stdlib-spawn":
        p = multiprocessing.get_context("spawn").Process(target=child_all_kinds, args=args)
    else:
        p = mpx.get_context(method).Process(target=child_all_kinds, args=args)
    p.start()
    try:
        barrier.wait(timeout=TIMEOUT)
        assert sem.acquire(timeout=TIMEOUT)
        assert event.wait(TIMEOUT)
        with cond:
            assert cond.wait_for(lambda: value.value == 11, timeout=TIMEOUT)
        assert arr[0] == 7.0
    finally:
        p.join(TIMEOUT * 2)
        if p.exitcode is None:
            p.kill()
            p.join(10)
    assert p.exitcode == 0


def test_pickle_by_name_opens_the_same_object(named):
    for obj in (named(mpx.Lock), named(mpx.RLock), named(mpx.Semaphore, 3, undo=True),
                named(mpx.BoundedSemaphore, 2), named(mpx.Event), named(mpx.Condition),
                named(mpx.Condition, named(mpx.Lock)), named(mpx.Barrier, 4, timeout=2.5)):
        copy = pickle.loads(pickle.dumps(obj))
        assert type(copy) is type(obj) and copy.name == obj.name and copy._h is not obj._h
    lock = named(mpx.Lock)
    lock2 = pickle.loads(pickle.dumps(lock))
    lock2.acquire()
    assert lock.locked()
    lock.release()
    bounded = named(mpx.BoundedSemaphore, 1)
    sem = pickle.loads(pickle.dumps(bounded))
    with pytest.raises(ValueError):
        sem.release()  # the bound is the object's
    barrier = named(mpx.Barrier, 4, timeout=2.5)
    b = pickle.loads(pickle.dumps(barrier))
    assert b.parties == 4 and b._timeout == 2.5
    # An unlink-on-last-close name lives as long as a process holds the object: one that is
    # gone by the time the pickle is opened cannot be found.
    data = pickle.dumps(named(mpx.Event, unlink_on_last_close=True))
    gc.collect()
    with pytest.raises(FileNotFoundError):
        pickle.loads(data)
    cl = named(mpx.Lock)
    c = named(mpx.Condition, cl)
    c2 = pickle.loads(pickle.dumps(c))
    with c2:
        assert cl.locked()


def test_anonymous_objects_pickle_only_for_a_child_being_started():
    from multiprocessing import context as std_context
    from multiprocessing.reduction import ForkingPickler

    from mpx._spawn import _SpawningPopen

    before = set(os.listdir("/dev/shm"))
    objs = (mpx.Lock(), mpx.RLock(), mpx.Semaphore(3, undo=True), mpx.BoundedSemaphore(2), mpx.Event(),
            mpx.Condition(), mpx.Condition(mpx.Lock()), mpx.Barrier(4, timeout=2.5))
    assert set(os.listdir("/dev/shm")) == before, "anonymous objects are not in /dev/shm"
    for obj in objs:
        assert obj.name is None
        # As multiprocessing's: RuntimeError outside process start, with any pickler.
        with pytest.raises(RuntimeError, match="^%s objects should only be shared between processes through "
                           "inheritance" % type(obj).__name__):
            pickle.dumps(obj)
        with pytest.raises(RuntimeError, match="through inheritance"):
            ForkingPickler.dumps(obj)
        with pytest.raises(ValueError, match="no name"):
            obj.unlink()
        # While a process is being started, the descriptor goes to the child.
        popen = _SpawningPopen()
        std_context.set_spawning_popen(popen)
        try:
            ForkingPickler.dumps(obj)
        finally:
            std_context.set_spawning_popen(None)
        lock = getattr(obj, "_lock", None)
        assert popen.fds == [obj.fd] + ([lock.fd] if lock is not None else [])
    # A Queue cannot carry one either (it pickles what it is given).
    with pytest.raises(RuntimeError):
        mpx.Queue().put(mpx.Lock())


def test_named_unlink_on_last_close_goes_away_with_the_last_user(make_name):
    lock = mpx.Lock.create(make_name("lock"), unlink_on_last_close=True)
    name = lock.name
    assert shm_exists(name)
    other = mpx.Lock.open(name)
    lock.close()
    assert shm_exists(name), "still in use by the other handle"
    del other
    gc.collect()
    assert not shm_exists(name)
    # A forked child that still has it open keeps it alive.
    ev = mpx.Event.create(make_name("ev"), unlink_on_last_close=True)
    name = ev.name
    stop = mpx.Event()
    p = start("fork", child_wait_event, stop, TIMEOUT)
    ev.close()
    assert shm_exists(name)
    stop.set()
    assert join_all(p) == [0]


#
# Named objects, for other programs
#


def test_named_objects_and_wrong_kinds(named, make_name):
    lock = named(mpx.Lock)
    assert mpx.Lock.open(lock.name).name == lock.name
    with pytest.raises(FileExistsError):
        mpx.Lock.create(lock.name)
    for cls in (mpx.RLock, mpx.Semaphore, mpx.BoundedSemaphore, mpx.Condition, mpx.Event, mpx.Barrier):
        with pytest.raises(mpx.KindError, match="not a"):
            cls.open(lock.name)
    with pytest.raises(mpx.KindError):
        mpx.Value.open(lock.name)
    sem = named(mpx.Semaphore, 2, undo=True)
    assert mpx.Semaphore.open(sem.name).undo
    with pytest.raises(mpx.KindError):
        mpx.Lock.open(sem.name)
    bs = named(mpx.BoundedSemaphore, 1)
    with pytest.raises(ValueError):
        mpx.Semaphore.open(bs.name).release()
    ev = named(mpx.Event)
    ev2 = mpx.Event.open(ev.name)
    ev2.set()
    assert ev.is_set()
    b = named(mpx.Barrier, 3)
    assert mpx.Barrier.open(b.name).parties == 3
    c = named(mpx.Condition, lock)
    with mpx.Condition.open(c.name):
        assert lock.locked()
    missing = make_name("missing")
    with pytest.raises(FileNotFoundError):
        mpx.Lock.open(missing)
    with pytest.raises(FileNotFoundError):
        mpx.Lock.unlink_name(missing)
    with pytest.raises(ValueError, match="not allowed|invalid"):
        mpx.Lock.create("bad/name")
    with pytest.raises(ValueError):
        mpx.Event.open("")
    with pytest.raises(TypeError):
        mpx.Lock.open(5)
    # unlink removes the name; the objects stay usable.
    r = named(mpx.RLock)
    r.unlink()
    with pytest.raises(FileNotFoundError):
        mpx.RLock.open(r.name)
    with r:
        pass


def test_from_fd(named):
    ev = named(mpx.Event)
    fd = os.dup(ev.fd)
    try:
        ev2 = mpx.Event.from_fd(fd)
    finally:
        os.close(fd)
    ev2.set()
    assert ev.is_set()
    # Opened by descriptor, the handle still learns the name from the segment's header (it
    # still names this very object), so it pickles by name like the original.
    assert ev2.name == ev.name
    assert pickle.loads(pickle.dumps(ev2)).is_set()
    with pytest.raises(ValueError):
        mpx.Lock.from_fd(-1)
    with pytest.raises(mpx.KindError):
        mpx.Lock.from_fd(ev.fd)
    # Either handle may close last: the last one removes the generated name.
    ev2.close()
    ev.close()


def test_closed_objects():
    for obj, use in [
        (mpx.Lock(), lambda o: o.acquire()),
        (mpx.Lock(), lambda o: o.release()),
        (mpx.Lock(), lambda o: o.__enter__()),
        (mpx.RLock(), lambda o: o.acquire(timeout=1)),
        (mpx.Semaphore(), lambda o: o.acquire(False)),
        (mpx.Semaphore(), lambda o: o.release()),
        (mpx.Semaphore(), lambda o: o.get_value()),
        (mpx.Event(), lambda o: o.set()),
        (mpx.Event(), lambda o: o.wait(1)),
        (mpx.Event(), lambda o: o.is_set()),
        (mpx.Condition(), lambda o: o.wait(0)),
        (mpx.Condition(), lambda o: o.acquire()),
        (mpx.Condition(), lambda o: o.notify()),
        (mpx.Barrier(2), lambda o: o.wait(1)),
        (mpx.Barrier(2), lambda o: o.abort()),
        (mpx.Barrier(2), lambda o: o.parties),
    ]:
        obj.close()
        assert obj.closed
        with pytest.raises(ValueError, match="closed"):
            use(obj)
        obj.close()  # a second close is a no-op
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(obj)


#
# Owner death
#


def test_owner_died_warning():
    lock = mpx.Lock()
    assert join_all(start("fork", child_hold_and_exit, lock)) == [0]
    assert lock.locked()
    with pytest.warns(mpx.OwnerDiedWarning, match="died holding it") as rec:
        assert lock.acquire(timeout=TIMEOUT) is True
    assert issubclass(mpx.OwnerDiedWarning, RuntimeWarning)
    assert "pid" in str(rec[0].message)
    lock.release()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lock.acquire(timeout=TIMEOUT)  # clean now: no warning
        lock.release()
    # The context manager and the other lock kinds warn the same way.
    assert join_all(start("fork", child_hold_and_exit, lock)) == [0]
    with pytest.warns(mpx.OwnerDiedWarning):
        with lock:
            pass
    r = mpx.RLock()
    assert join_all(start("fork", child_hold_and_exit, r)) == [0]
    with pytest.warns(mpx.OwnerDiedWarning):
        assert r.acquire(timeout=TIMEOUT)
    assert r._count() == 1
    r.release()
    cond = mpx.Condition()
    assert join_all(start("fork", child_hold_and_exit, cond)) == [0]
    with pytest.warns(mpx.OwnerDiedWarning):
        with cond:
            pass
    v = mpx.Value("i", 0)
    assert join_all(start("fork", child_hold_and_exit, v.get_lock())) == [0]
    with pytest.warns(mpx.OwnerDiedWarning):
        with v.get_lock():
            v.value += 1
    # As an error, for programs that prefer one.
    assert join_all(start("fork", child_hold_and_exit, lock)) == [0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", mpx.OwnerDiedWarning)
        with pytest.raises(mpx.OwnerDiedWarning):
            lock.acquire(timeout=TIMEOUT)
    assert lock.locked()  # it was acquired all the same
    lock.release()


def _kill_loop(make_obj, hold, acquire, release, rounds, seconds):
    """SIGKILLs a child that loops on `hold(obj, counter)` at random moments; after each kill the
    parent must acquire within the timeout. Returns (rounds, owner deaths, failures)."""
    obj = make_obj()
    counter = mpx.RawValue("q", 0)
    rng = random.Random(os.getpid())
    died = failed = done = 0
    start_t = time.monotonic()
    while done < rounds and time.monotonic() - start_t < seconds:
        before = counter.value

        def body():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                while True:
                    hold(obj, counter)

        pid = fork_do(body)
        # Let it get going (bounded), then kill it at a random moment.
        deadline = time.monotonic() + 5
        while counter.value == before and time.monotonic() < deadline:
            time.sleep(0.0002)
        time.sleep(rng.random() * 0.002)
        os.kill(pid, signal.SIGKILL)
        zombie = done % 2 == 1
        if not zombie:
            os.waitpid(pid, 0)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            ok = acquire(obj)
        if not ok:
            failed += 1
        else:
            died += sum(issubclass(w.category, mpx.OwnerDiedWarning) for w in rec)
            release(obj)
        if zombie:
            os.waitpid(pid, 0)
        done += 1
    return obj, done, died, failed


def _hold_lock(lock, counter):
    with lock:
        counter.value += 1


def test_kill_loop_lock():
    lock, done, died, failed = _kill_loop(
        mpx.Lock, _hold_lock, lambda l: l.acquire(timeout=10), lambda l: l.release(), rounds=150, seconds=40)
    assert failed == 0, "every acquisition after a kill succeeded"
    assert done >= 20, "the loop ran (%d rounds)" % done
    assert died > 0, "owner death was reported (%d of %d rounds)" % (died, done)
    assert not lock.locked()


def test_kill_loop_rlock():
    def hold(r, counter):
        with r:
            with r:
                counter.value += 1

    r, done, died, failed = _kill_loop(
        mpx.RLock, hold, lambda l: l.acquire(timeout=10), lambda l: l.release(), rounds=60, seconds=20)
    assert failed == 0 and done >= 10 and died > 0, (done, died, failed)
    assert r._count() == 0 and not r.locked()


def test_kill_loop_undo_semaphore():
    def hold(s, counter):
        if s.acquire(timeout=10):
            counter.value += 1
            s.release()

    def acquire_all(s):
        return s.acquire(timeout=10) and s.acquire(timeout=10)

    def release_all(s):
        s.release()
        s.release()

    s, done, died, failed = _kill_loop(
        lambda: mpx.Semaphore(2, undo=True), hold, acquire_all, release_all, rounds=60, seconds=20)
    assert failed == 0 and done >= 10, (done, failed)
    s.reclaim()
    assert s.get_value() == 2, "the count is whole again"


def child_open_then_wait(lock, opened, stop):
    opened.set()
    if not stop.wait(TIMEOUT):
        _exit(11)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_child_that_outlives_the_parents_object_removes_the_name(method, make_name):
    lock, opened, stop = mpx.Lock.create(make_name("lock"), unlink_on_last_close=True), mpx.Event(), mpx.Event()
    name = lock.name
    p = start(method, child_open_then_wait, lock, opened, stop)
    try:
        assert opened.wait(TIMEOUT)
        lock.close()
        assert shm_exists(name), "the child still uses it"
    finally:
        stop.set()
        codes = join_all(p)
    assert codes == [0]
    assert not shm_exists(name), "the child, its last user, closed it at exit"


def test_use_after_exit_cleanup_is_an_error_not_a_crash(run_py, make_name):
    r = run_py(
        """
        import atexit, os, mpx
        box = {}

        def late():
            # Runs after multiprocessing's exit finalizers closed the lock.
            try:
                box["lock"].acquire()
                print("acquired")
            except ValueError as e:
                print("error:", e)
            print("exists:", os.path.exists("/dev/shm/mpx." + box["lock"].name))

        atexit.register(late)
        box["lock"] = mpx.Lock.create("%s", unlink_on_last_close=True)
        box["lock"].acquire()
        box["lock"].release()
        """ % make_name("lock")
    )
    lines = r.stdout.splitlines()
    assert lines[0].startswith("error:") and "closed" in lines[0]
    assert lines[1] == "exists: False"


#
# The hot methods (acquire, release, __enter__, __exit__): C methods with the accelerator,
# Python ones without (the suite runs both ways: MPX_NO_SPEEDUPS=1). Both must behave alike.
#


def _lock_kinds():
    """(name, make, hold, free): objects with acquire/release/context manager; ``hold(obj)``
    makes the object unavailable to this thread for a while, ``free()`` undoes it."""

    def held_by_thread(obj):
        got, stop = threading.Event(), threading.Event()

        def body():
            with obj:
                got.set()
                stop.wait(TIMEOUT)

        th = threading.Thread(target=body)
        th.start()
        assert got.wait(TIMEOUT)

        def free():
            stop.set()
            th.join(TIMEOUT)

        return free

    def lock_held(obj):
        assert obj.acquire(False)
        return obj.release

    def sem_empty(obj):
        assert obj.acquire(False)
        return obj.release

    return [
        ("Lock", mpx.Lock, lock_held),
        ("RLock", mpx.RLock, held_by_thread),
        ("Semaphore", lambda: mpx.Semaphore(1), sem_empty),
        ("undo Semaphore", lambda: mpx.Semaphore(1, undo=True), sem_empty),
        ("BoundedSemaphore", lambda: mpx.BoundedSemaphore(1), sem_empty),
        ("Value lock", lambda: mpx.Value("i", 0).get_lock(), held_by_thread),
    ]


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("kind", _lock_kinds(), ids=lambda k: k[0])
def test_waits_without_limit_let_signal_handlers_run(kind):
    """A wait without limit runs in slices: a signal handler runs during it, and an exception it
    raises ends the wait (Ctrl-C), for acquire(), acquire(True) and `with`."""
    _, make, hold = kind
    obj = make()
    free = hold(obj)
    old = signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(_Interrupted()))
    try:
        for use in (lambda o: o.acquire(), lambda o: o.acquire(True), lambda o: o.__enter__()):
            t = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            with pytest.raises(_Interrupted):
                use(obj)
            assert time.monotonic() - t < 5, "the handler ran within a slice or two"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        free()
    # Nothing was taken by the interrupted waits: one acquisition, one release, then free again.
    assert obj.acquire(timeout=TIMEOUT) is True
    obj.release()
    assert obj.acquire(False) is True
    obj.release()


@pytest.mark.parametrize("kind", _lock_kinds(), ids=lambda k: k[0])
def test_hot_methods_semantics(kind):
    name, make, hold = kind
    obj = make()
    assert obj.acquire() is True
    obj.release()
    assert obj.acquire(True) is True
    obj.__exit__(None, None, None)
    with obj as got:
        assert got is True
    assert obj.acquire(False) is True and obj.release() is None
    assert obj.acquire(block=False) is True
    obj.release()
    assert obj.acquire(True, None) is True  # positional timeout: the general path
    obj.release()
    free = hold(obj)
    try:
        assert obj.acquire(False) is False
        assert obj.acquire(block=False) is False
        t = time.monotonic()
        assert obj.acquire(timeout=0.05) is False
        assert time.monotonic() - t >= 0.045
        assert obj.acquire(True, 0.01) is False
    finally:
        free()
    # __exit__ never swallows the exception of the block.
    with pytest.raises(KeyError):
        with obj:
            raise KeyError("x")
    assert obj.acquire(False) is True
    obj.release()
    with pytest.raises(TypeError):
        obj.acquire(True, None, 3)
    with pytest.raises(TypeError):
        obj.acquire(bogus=1)


def test_release_errors_from_every_path():
    lock, r, b = mpx.Lock(), mpx.RLock(), mpx.BoundedSemaphore(1)
    for use in (lambda o: o.release(), lambda o: o.__exit__(None, None, None)):
        with pytest.raises(ValueError, match="released too many times"):
            use(lock)
        with pytest.raises(ValueError, match="released too many times"):
            use(b)
        with pytest.raises(mpx.NotOwnedError):
            use(r)
        with pytest.raises(mpx.NotOwnedError):
            use(mpx.Value("i", 0).get_lock())


def test_owner_died_warning_points_at_the_caller():
    """The warning's location is the line that acquired, whichever path (C or Python) took it,
    so Python's once-per-location filter works as for any warning."""
    lock = mpx.Lock()
    v = mpx.Value("i", 0)
    uses = [
        (lock, lambda: lock.acquire()),
        (lock, lambda: lock.acquire(True)),
        (lock, lambda: lock.acquire(timeout=TIMEOUT)),
        (lock, lambda: lock.acquire(False)),
        (lock, lambda: lock.__enter__()),
        (v.get_lock(), lambda: v.get_lock().acquire()),
        (v.get_lock(), lambda: v.get_lock().acquire(timeout=TIMEOUT)),
    ]
    for obj, use in uses:
        assert join_all(start("fork", child_hold_and_exit, obj)) == [0]
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            assert use() is True
        assert [w.category for w in rec] == [mpx.OwnerDiedWarning]
        # The lambda's line: the acquiring call itself, not one of its callers.
        assert (rec[0].filename, rec[0].lineno) == (__file__, use.__code__.co_firstlineno)
        obj.release()


def test_hot_methods_come_from_the_accelerator_when_it_is_on():
    on = synchronize._LockCore is not None
    assert on == (synchronize._SPEEDUPS and not os.environ.get("MPX_NO_SPEEDUPS"))
    for obj in (mpx.Lock(), mpx.RLock(), mpx.Semaphore(), mpx.BoundedSemaphore(), mpx.Value("i").get_lock()):
        for meth in ("acquire", "release", "__enter__", "__exit__"):
            is_c = type(getattr(type(obj), meth)).__name__ == "method_descriptor"
            assert is_c == on, (type(obj).__name__, meth)
