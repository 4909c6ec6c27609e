//! Semaphore, BoundedSemaphore, Condition, Event, Barrier: semantics across real processes and
//! bad input.

#[path = "sync_util.rs"]
mod util;

use std::time::{Duration, Instant};

use mpx::sync::MAX_VALUE;
use mpx::Object;
use mpx::{
    Acquired, Barrier, CondLock, Condition, ErrorKind, Event, Flags, Lock, RLock, Semaphore, SemaphoreSpec, Timeout,
    Value, ValueSpec,
};
use util::*;

const TRY: Duration = Duration::ZERO;

// ---- Semaphore -------------------------------------------------------------------------------

#[test]
fn semaphore_basics() {
    let mut names = Names::new();
    let n = names.add("sem");
    let s = Semaphore::create(&n, SemaphoreSpec::new(2), Flags::default()).unwrap();
    let o = Semaphore::open(&n, Flags::default()).unwrap();
    assert_eq!((o.get_value(), o.max_value(), o.is_bounded(), o.is_undo()), (2, MAX_VALUE, false, false));
    s.acquire(TRY).unwrap();
    o.acquire(Timeout::Forever).unwrap();
    assert_eq!(s.get_value(), 0);
    let e = s.try_acquire().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains(&n), "{}", e.message());
    let t = Instant::now();
    assert_eq!(s.acquire(Duration::from_millis(20)).unwrap_err().kind(), ErrorKind::Timeout);
    assert!(t.elapsed() >= Duration::from_millis(20));
    // Unbounded: may go past the initial value.
    for _ in 0..5 {
        s.release().unwrap();
    }
    assert_eq!(o.get_value(), 5);
    assert_eq!(Semaphore::open(&n, Flags::READ_ONLY).err().unwrap().kind(), ErrorKind::Invalid);
}

#[test]
fn bounded_semaphore_over_release() {
    let s = Semaphore::create_anonymous(SemaphoreSpec::bounded(2)).unwrap();
    assert!(s.is_bounded());
    let e = s.release().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::State);
    assert!(e.message().contains("released too many times"), "{}", e.message());
    assert_eq!(s.get_value(), 2);
    s.acquire(TRY).unwrap();
    s.release().unwrap();
    assert_eq!(s.release().unwrap_err().kind(), ErrorKind::State);
    // Same with undo.
    let u = Semaphore::create_anonymous(SemaphoreSpec::bounded(1).with_undo(true)).unwrap();
    assert_eq!(u.release().unwrap_err().kind(), ErrorKind::State);
    u.acquire(TRY).unwrap();
    u.release().unwrap();
    assert_eq!(u.release().unwrap_err().kind(), ErrorKind::State);
    assert_eq!(u.get_value(), 1);
}

#[test]
fn semaphore_bad_specs() {
    let cases = [
        SemaphoreSpec { value: 3, max: Some(2), undo: false },
        SemaphoreSpec { value: 0, max: Some(0), undo: false },
        SemaphoreSpec { value: 0, max: Some(MAX_VALUE + 1), undo: false },
        SemaphoreSpec { value: MAX_VALUE + 1, max: None, undo: true },
    ];
    for c in cases {
        let e = Semaphore::create_anonymous(c).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{c:?}");
    }
    let s = Semaphore::create_anonymous(SemaphoreSpec::new(MAX_VALUE)).unwrap();
    assert_eq!(s.release().unwrap_err().kind(), ErrorKind::State);
}

#[test]
fn semaphore_handoff_between_processes() {
    // Ping-pong: each side releases the other's semaphore and waits on its own.
    for undo in [false, true] {
        let ping = Semaphore::create_anonymous(SemaphoreSpec::new(0).with_undo(undo)).unwrap();
        let pong = Semaphore::create_anonymous(SemaphoreSpec::new(0).with_undo(undo)).unwrap();
        const N: usize = 2000;
        let mut c = fork(|| {
            for _ in 0..N {
                if ping.acquire(WAIT).is_err() || pong.release().is_err() {
                    return 1;
                }
            }
            0
        });
        for _ in 0..N {
            ping.release().unwrap();
            pong.acquire(WAIT).unwrap();
        }
        assert_eq!(c.wait(), Exit::Code(0));
        assert_eq!((ping.get_value(), pong.get_value()), (0, 0));
    }
}

#[test]
fn semaphore_as_mutex_keeps_counter_exact() {
    let s = Semaphore::create_anonymous(SemaphoreSpec::bounded(1).with_undo(true)).unwrap();
    let v = Value::create_anonymous(ValueSpec::new(b'i', 1, false)).unwrap();
    const N: i32 = 5000;
    let kids: Vec<Child> = (0..2)
        .map(|_| {
            fork(|| {
                for _ in 0..N {
                    if s.acquire(WAIT).is_err() {
                        return 1;
                    }
                    let x: i32 = v.get(0).unwrap();
                    v.set(0, x + 1).unwrap();
                    s.release().unwrap();
                }
                0
            })
        })
        .collect();
    for mut k in kids {
        assert_eq!(k.wait_for(Duration::from_secs(120)), Exit::Code(0));
    }
    assert_eq!(v.get::<i32>(0).unwrap(), 2 * N);
    assert_eq!(s.get_value(), 1);
}

#[test]
fn undo_returns_permits_of_a_process_that_exits() {
    let s = Semaphore::create_anonymous(SemaphoreSpec::new(3).with_undo(true)).unwrap();
    let mut c = fork(|| {
        for _ in 0..2 {
            if s.acquire(TRY).is_err() {
                return 1;
            }
        }
        i32::from(s.held_by_me() != 2)
    });
    assert_eq!(c.wait(), Exit::Code(0));
    assert_eq!(s.get_value(), 1);
    // A blocked acquire gives them back by itself.
    s.acquire(TRY).unwrap();
    s.acquire(WAIT).unwrap();
    s.acquire(WAIT).unwrap();
    assert_eq!(s.get_value(), 0);
    for _ in 0..3 {
        s.release().unwrap();
    }
    assert_eq!(s.get_value(), 3);
}

#[test]
fn undo_table_full() {
    // UNDO_SLOTS live processes hold a permit each: one more process cannot take one.
    let n = mpx::sync::UNDO_SLOTS;
    let s = Semaphore::create_anonymous(SemaphoreSpec::new(n + 5).with_undo(true)).unwrap();
    let go = Event::create_anonymous(()).unwrap();
    let kids: Vec<Child> = (0..n)
        .map(|_| {
            fork(|| {
                if s.acquire(TRY).is_err() {
                    return 1;
                }
                i32::from(go.wait(WAIT).is_err())
            })
        })
        .collect();
    assert!(eventually(|| s.get_value() == 5), "children did not all acquire");
    let e = s.try_acquire().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Full);
    assert!(e.message().contains("undo table full"), "{}", e.message());
    assert_eq!(s.get_value(), 5);
    go.set();
    for mut k in kids {
        assert_eq!(k.wait(), Exit::Code(0));
    }
    // Their permits come back; now there is room again.
    assert_eq!(s.reclaim().unwrap(), n);
    s.acquire(TRY).unwrap();
    s.release().unwrap();
    assert_eq!(s.get_value(), n + 5);
}

// ---- Event -----------------------------------------------------------------------------------

#[test]
fn event_basics() {
    let mut names = Names::new();
    let n = names.add("event");
    let e = Event::create(&n, (), Flags::default()).unwrap();
    assert!(!e.is_set());
    assert_eq!(e.wait(TRY).unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(e.wait(Duration::from_millis(10)).unwrap_err().kind(), ErrorKind::Timeout);
    e.set();
    e.set();
    let o = Event::open(&n, Flags::default()).unwrap();
    assert!(o.is_set());
    o.wait(Timeout::Forever).unwrap();
    o.clear();
    assert!(!e.is_set());
}

#[test]
fn event_wakes_waiters_in_other_processes() {
    let e = Event::create_anonymous(()).unwrap();
    let woke = Value::create_anonymous(ValueSpec::new(b'i', 1, false)).unwrap();
    let kids: Vec<Child> = (0..3)
        .map(|_| {
            fork(|| match e.wait(WAIT) {
                Ok(()) => {
                    woke.fetch_add_i64(0, 1).unwrap();
                    0
                }
                Err(_) => 1,
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(woke.get::<i32>(0).unwrap(), 0);
    e.set();
    for mut k in kids {
        assert_eq!(k.wait(), Exit::Code(0));
    }
    assert_eq!(woke.get::<i32>(0).unwrap(), 3);
}

#[test]
fn event_set_then_clear_still_wakes_the_sleeper() {
    let e = Event::create_anonymous(()).unwrap();
    let mut c = fork(|| i32::from(e.wait(WAIT).is_err()));
    std::thread::sleep(Duration::from_millis(50));
    e.set();
    e.clear();
    assert_eq!(c.wait(), Exit::Code(0));
}

// ---- Barrier ---------------------------------------------------------------------------------

#[test]
fn barrier_three_processes_many_rounds() {
    let b = Barrier::create_anonymous(3).unwrap();
    // Each round, each process adds 1 << index: every round must sum to 0b111.
    const ROUNDS: usize = 200;
    let sums = Value::create_anonymous(ValueSpec::new(b'q', ROUNDS, false)).unwrap();
    let kids: Vec<Child> = (0..3)
        .map(|_| {
            fork(|| {
                for r in 0..ROUNDS {
                    match b.wait(WAIT) {
                        Ok(i) if i < 3 => {
                            sums.fetch_add_i64(r, 1 << i).unwrap();
                        }
                        _ => return 1,
                    }
                }
                0
            })
        })
        .collect();
    for mut k in kids {
        assert_eq!(k.wait(), Exit::Code(0));
    }
    for r in 0..ROUNDS {
        assert_eq!(sums.get::<i64>(r).unwrap(), 0b111, "round {r}");
    }
    assert_eq!(b.n_waiting(), 0);
    assert!(!b.is_broken());
}

#[test]
fn barrier_abort_reset_and_timeout() {
    let mut names = Names::new();
    let n = names.add("barrier");
    let b = Barrier::create(&n, 3, Flags::default()).unwrap();
    assert_eq!(b.parties(), 3);
    // Timeout: the timer gets Timeout, the barrier breaks for the other waiter.
    let mut c = fork(|| match b.wait(WAIT) {
        Err(e) if e.kind() == ErrorKind::Broken => 0,
        _ => 1,
    });
    assert!(eventually(|| b.n_waiting() == 1));
    let e = b.wait(Duration::from_millis(30)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains("broken"), "{}", e.message());
    assert_eq!(c.wait(), Exit::Code(0));
    assert!(b.is_broken());
    let e = b.wait(WAIT).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broken);
    assert!(e.message().contains(&n));
    // Reset makes it usable.
    b.reset();
    assert!(!b.is_broken());
    // Reset while someone waits: the waiter gets Broken; the barrier works afterwards.
    let mut c = fork(|| match b.wait(WAIT) {
        Err(e) if e.kind() == ErrorKind::Broken => 0,
        _ => 1,
    });
    assert!(eventually(|| b.n_waiting() == 1));
    b.reset();
    assert_eq!(c.wait(), Exit::Code(0));
    assert_eq!(b.n_waiting(), 0);
    // Abort while someone waits.
    let mut c = fork(|| match b.wait(WAIT) {
        Err(e) if e.kind() == ErrorKind::Broken => 0,
        _ => 1,
    });
    assert!(eventually(|| b.n_waiting() == 1));
    b.abort();
    assert_eq!(c.wait(), Exit::Code(0));
    b.reset();
    // A full round after all that.
    let kids: Vec<Child> = (0..2).map(|_| fork(|| i32::from(b.wait(WAIT).is_err()))).collect();
    let last = b.wait(WAIT).unwrap();
    assert!(last < 3);
    for mut k in kids {
        assert_eq!(k.wait(), Exit::Code(0));
    }
}

#[test]
fn barrier_wait_in_parts() {
    let b = Barrier::create_anonymous(2).unwrap();
    // Parts that time out keep the one arrival; the other party's arrival trips the barrier.
    let a = b.arrive().unwrap();
    assert_eq!(a.index, 0);
    assert_eq!(b.wait_on(&a, TRY).unwrap(), None);
    assert_eq!(b.wait_on(&a, Duration::from_millis(1)).unwrap(), None);
    assert_eq!((b.n_waiting(), b.is_broken()), (1, false));
    let last = b.arrive().unwrap();
    assert_eq!(last.index, 1);
    assert_eq!(b.wait_on(&last, TRY).unwrap(), Some(1));
    assert_eq!(b.wait_on(&a, WAIT).unwrap(), Some(0));
    // Giving up breaks the barrier (Timeout for the one who gives up, Broken for the rest).
    let a = b.arrive().unwrap();
    assert_eq!(b.wait_end(a).unwrap_err().kind(), ErrorKind::Timeout);
    assert!(b.is_broken());
    assert_eq!(b.wait_on(&a, TRY).unwrap_err().kind(), ErrorKind::Broken);
    assert_eq!(b.arrive().unwrap_err().kind(), ErrorKind::Broken);
    b.reset();
    // Given up after it tripped: it passed, nothing breaks.
    let a = b.arrive().unwrap();
    assert_eq!(b.wait(WAIT).unwrap(), 1);
    assert_eq!(b.wait_end(a).unwrap(), 0);
    assert!(!b.is_broken());
    // Reset under a pending wait: Broken, and the new round is not broken by it.
    let a = b.arrive().unwrap();
    b.reset();
    assert_eq!(b.wait_end(a).unwrap_err().kind(), ErrorKind::Broken);
    assert!(!b.is_broken());
    // Across processes, a child waiting in 1 ms parts gets the other index every round.
    let mut c = fork(|| {
        for _ in 0..20 {
            let a = match b.arrive() {
                Ok(a) => a,
                Err(_) => return 1,
            };
            let deadline = Instant::now() + WAIT;
            let i = loop {
                match b.wait_on(&a, Duration::from_millis(1)) {
                    Ok(Some(i)) => break i,
                    Ok(None) if Instant::now() < deadline => continue,
                    _ => return 2,
                }
            };
            if i != a.index {
                return 3;
            }
        }
        0
    });
    let mut mine = Vec::new();
    for _ in 0..20 {
        mine.push(b.wait(WAIT).unwrap());
    }
    assert_eq!(c.wait(), Exit::Code(0));
    assert!(mine.iter().all(|&i| i < 2));
    assert!(!b.is_broken());
}

#[test]
fn barrier_bad_input() {
    assert_eq!(Barrier::create_anonymous(0).err().unwrap().kind(), ErrorKind::Invalid);
    assert_eq!(Barrier::create_anonymous(40000).err().unwrap().kind(), ErrorKind::Invalid);
    let one = Barrier::create_anonymous(1).unwrap();
    assert_eq!(one.wait(TRY).unwrap(), 0);
    assert_eq!(one.wait(TRY).unwrap(), 0);
    // A zero timeout with others missing breaks it at once.
    let two = Barrier::create_anonymous(2).unwrap();
    assert_eq!(two.wait(TRY).unwrap_err().kind(), ErrorKind::Timeout);
    assert!(two.is_broken());
}

// ---- Condition -------------------------------------------------------------------------------

#[test]
fn condition_notify_across_processes() {
    let c = Condition::create_anonymous(None).unwrap();
    let v = Value::create_anonymous(ValueSpec::new(b'i', 2, false)).unwrap();
    // Children wait for v[0] == 1 (predicate loop), then count themselves in v[1].
    let kids: Vec<Child> = (0..2)
        .map(|_| {
            fork(|| {
                let end = Instant::now() + WAIT;
                assert_eq!(c.acquire(WAIT).unwrap(), Acquired::Clean);
                while v.get::<i32>(0).unwrap() == 0 {
                    let left = end.saturating_duration_since(Instant::now());
                    match c.wait(left) {
                        Ok(Acquired::Clean) => {}
                        _ => return 1,
                    }
                }
                v.fetch_add_i64(1, 1).unwrap();
                c.release().unwrap();
                0
            })
        })
        .collect();
    assert!(eventually(|| c.n_waiting() == 2));
    assert_eq!(c.acquire(WAIT).unwrap(), Acquired::Clean);
    v.set::<i32>(0, 1).unwrap();
    c.notify_all().unwrap();
    c.release().unwrap();
    for mut k in kids {
        assert_eq!(k.wait(), Exit::Code(0));
    }
    assert_eq!(v.get::<i32>(1).unwrap(), 2);
}

#[test]
fn condition_notify_one_wakes_exactly_one() {
    let c = Condition::create_anonymous(None).unwrap();
    let woke = Value::create_anonymous(ValueSpec::new(b'i', 1, false)).unwrap();
    let kids: Vec<Child> = (0..3)
        .map(|_| {
            fork(|| {
                assert_eq!(c.acquire(WAIT).unwrap(), Acquired::Clean);
                let r = c.wait(WAIT);
                woke.fetch_add_i64(0, 1).unwrap();
                c.release().unwrap();
                i32::from(r.is_err())
            })
        })
        .collect();
    assert!(eventually(|| c.n_waiting() == 3));
    for expect in 1..=3 {
        assert_eq!(c.acquire(WAIT).unwrap(), Acquired::Clean);
        c.notify(1).unwrap();
        c.release().unwrap();
        assert!(eventually(|| woke.get::<i32>(0).unwrap() >= expect));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(woke.get::<i32>(0).unwrap(), expect, "notify(1) woke more than one");
    }
    for mut k in kids {
        assert_eq!(k.wait(), Exit::Code(0));
    }
}

#[test]
fn condition_wait_timeout_and_misuse() {
    let mut names = Names::new();
    let n = names.add("cond");
    let c = Condition::create(&n, None, Flags::default()).unwrap();
    assert!(c.has_own_lock());
    let e = c.wait(TRY).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::State);
    assert!(e.message().contains("not held"), "{}", e.message());
    assert_eq!(c.notify(1).unwrap_err().kind(), ErrorKind::State);
    assert_eq!(c.notify_all().unwrap_err().kind(), ErrorKind::State);
    // Own lock is recursive: wait releases every level and restores them.
    assert_eq!(c.acquire(TRY).unwrap(), Acquired::Clean);
    assert_eq!(c.acquire(TRY).unwrap(), Acquired::Clean);
    let t = Instant::now();
    assert_eq!(c.wait(Duration::from_millis(20)).unwrap_err().kind(), ErrorKind::Timeout);
    assert!(t.elapsed() >= Duration::from_millis(20));
    assert!(c.is_mine());
    assert_eq!(c.wait(TRY).unwrap_err().kind(), ErrorKind::Timeout);
    // While we waited, another process could take the lock.
    c.release().unwrap();
    assert!(c.is_mine());
    c.release().unwrap();
    assert!(!c.is_mine());
    assert_eq!(c.release().unwrap_err().kind(), ErrorKind::State);
    // notify with nobody waiting is fine.
    assert_eq!(c.acquire(TRY).unwrap(), Acquired::Clean);
    c.notify(5).unwrap();
    c.release().unwrap();
    let o = Condition::open(&n, None, Flags::default()).unwrap();
    let l = Lock::create_anonymous(()).unwrap();
    assert_eq!(
        Condition::open(&n, Some(CondLock::Lock(&l)), Flags::default()).err().unwrap().kind(),
        ErrorKind::Invalid
    );
    drop(o);
}

#[test]
fn condition_with_a_named_lock() {
    let mut names = Names::new();
    let ln = names.add("cl");
    let cn = names.add("cc");
    let lock = Lock::create(&ln, (), Flags::default()).unwrap();
    let c = Condition::create(&cn, Some(CondLock::Lock(&lock)), Flags::default()).unwrap();
    assert!(!c.has_own_lock());
    // The condition's acquire is the lock's.
    assert_eq!(c.acquire(TRY).unwrap(), Acquired::Clean);
    assert!(lock.is_locked() && lock.is_mine());
    c.release().unwrap();
    let cn2 = cn.clone();
    let mut child = fork(move || {
        // Opening by name finds the lock by name.
        let c = Condition::open(&cn2, None, Flags::default()).unwrap();
        assert_eq!(c.acquire(WAIT).unwrap(), Acquired::Clean);
        let r = c.wait(WAIT);
        c.release().unwrap();
        i32::from(r.is_err())
    });
    assert!(eventually(|| c.n_waiting() == 1));
    assert_eq!(lock.acquire(WAIT).unwrap(), Acquired::Clean);
    c.notify(1).unwrap();
    lock.release().unwrap();
    assert_eq!(child.wait(), Exit::Code(0));
    // The lock's name removed and reused by another object: opening the condition says so.
    lock.unlink().unwrap();
    let _other = Lock::create(&ln, (), Flags::default()).unwrap();
    let e = Condition::open(&cn, None, Flags::default()).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[test]
fn condition_with_an_anonymous_rlock() {
    let r = RLock::create_anonymous(()).unwrap();
    let other = RLock::create_anonymous(()).unwrap();
    let c = Condition::create_anonymous(Some(CondLock::RLock(&r))).unwrap();
    let fd = c.fd();
    let e = Condition::from_fd(fd, None, Flags::default()).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.message().contains("pass that rlock"), "{}", e.message());
    assert_eq!(
        Condition::from_fd(fd, Some(CondLock::RLock(&other)), Flags::default()).err().unwrap().kind(),
        ErrorKind::Invalid
    );
    let l = Lock::create_anonymous(()).unwrap();
    assert_eq!(
        Condition::from_fd(fd, Some(CondLock::Lock(&l)), Flags::default()).err().unwrap().kind(),
        ErrorKind::Invalid
    );
    let c2 = Condition::from_fd(fd, Some(CondLock::RLock(&r)), Flags::default()).unwrap();
    assert_eq!(c2.acquire(TRY).unwrap(), Acquired::Clean);
    assert_eq!(r.depth(), 1);
    assert_eq!(c.acquire(TRY).unwrap(), Acquired::Clean);
    assert_eq!(r.depth(), 2);
    assert_eq!(c.wait(TRY).unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(r.depth(), 2);
    c.release().unwrap();
    c2.release().unwrap();
    assert!(!r.is_locked());
}

#[test]
fn condition_waiter_reacquires_from_dead_holder() {
    // The notifier dies holding the lock after notifying: the waiter gets the lock with
    // OwnerDied.
    let c = Condition::create_anonymous(None).unwrap();
    let mut waiter = fork(|| {
        assert_eq!(c.acquire(WAIT).unwrap(), Acquired::Clean);
        match c.wait(WAIT) {
            Ok(Acquired::OwnerDied { .. }) => 0,
            Ok(Acquired::Clean) => 2,
            Err(_) => 1,
        }
    });
    assert!(eventually(|| c.n_waiting() == 1));
    let mut notifier = fork(|| {
        assert_eq!(c.acquire(WAIT).unwrap(), Acquired::Clean);
        c.notify(1).unwrap();
        0 // exits holding the lock
    });
    assert_eq!(notifier.wait(), Exit::Code(0));
    assert_eq!(waiter.wait(), Exit::Code(0));
}

// ---- corrupt state ---------------------------------------------------------------------------

#[test]
fn corrupt_parameters_are_refused() {
    let mut names = Names::new();
    let s = names.add("cs");
    drop(Semaphore::create(&s, SemaphoreSpec::new(1), Flags::default()).unwrap());
    patch_param(&s, 1, 0);
    assert_eq!(Semaphore::open(&s, Flags::default()).err().unwrap().kind(), ErrorKind::Corrupt);
    patch_param(&s, 1, 5);
    patch_param(&s, 2, 1); // undo without a table
    assert_eq!(Semaphore::open(&s, Flags::default()).err().unwrap().kind(), ErrorKind::Corrupt);
    patch_param(&s, 3, 1 << 40); // a table larger than the segment
    assert_eq!(Semaphore::open(&s, Flags::default()).err().unwrap().kind(), ErrorKind::Corrupt);
    patch_param(&s, 3, 4096);
    assert_eq!(Semaphore::open(&s, Flags::default()).err().unwrap().kind(), ErrorKind::Corrupt);

    let b = names.add("cb");
    drop(Barrier::create(&b, 2, Flags::default()).unwrap());
    patch_param(&b, 0, 0);
    assert_eq!(Barrier::open(&b, Flags::default()).err().unwrap().kind(), ErrorKind::Corrupt);

    let c = names.add("cc");
    drop(Condition::create(&c, None, Flags::default()).unwrap());
    patch_param(&c, 0, 2); // external lock, but no reference recorded
    assert_eq!(Condition::open(&c, None, Flags::default()).err().unwrap().kind(), ErrorKind::Corrupt);
    patch_param(&c, 0, 77);
    assert_eq!(Condition::open(&c, None, Flags::default()).err().unwrap().kind(), ErrorKind::Corrupt);
}

#[test]
fn corrupt_state_words_do_not_hang() {
    let mut names = Names::new();
    // A semaphore whose value exceeds its maximum: acquire works, release refuses.
    let s = names.add("sw");
    let sem = Semaphore::create(&s, SemaphoreSpec::bounded(2), Flags::default()).unwrap();
    poke_u32(&s, 0, u32::MAX);
    assert_eq!(sem.release().unwrap_err().kind(), ErrorKind::State);
    sem.acquire(TRY).unwrap();
    // A barrier whose count says more than parties arrived: the next arrival trips it.
    let b = names.add("bw");
    let bar = Barrier::create(&b, 3, Flags::default()).unwrap();
    poke_u32(&b, 0, 0x7FFF);
    assert_eq!(bar.wait(TRY).unwrap(), 2);
    assert_eq!(bar.n_waiting(), 0);
    // An event word with garbage in the generation: still just a flag.
    let e = names.add("ew");
    let ev = Event::create(&e, (), Flags::default()).unwrap();
    poke_u32(&e, 0, 0xFFFF_FFFE);
    assert!(!ev.is_set());
    ev.set();
    assert!(ev.is_set());
    assert_eq!(peek_u32(&e, 0) & 1, 1);
    ev.wait(TRY).unwrap();
}

#[test]
fn uncontended_operations_make_no_system_call() {
    let l = Lock::create_anonymous(()).unwrap();
    let r = RLock::create_anonymous(()).unwrap();
    let s = Semaphore::create_anonymous(SemaphoreSpec::bounded(1)).unwrap();
    let u = Semaphore::create_anonymous(SemaphoreSpec::bounded(1).with_undo(true)).unwrap();
    let v = Value::create_anonymous(ValueSpec::new(b'q', 1, true)).unwrap();
    let e = Event::create_anonymous(()).unwrap();
    let c = Condition::create_anonymous(None).unwrap();
    let b = Barrier::create_anonymous(1).unwrap();
    let mut child = fork(|| {
        // Warm up (fills the identity cache), then any system call but read/write/exit kills us.
        let _ = l.acquire(TRY);
        let _ = l.release();
        // SAFETY: prctl takes integers; strict seccomp only limits this forked child's later system calls.
        if unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_STRICT) } != 0 {
            return 9;
        }
        let mut ok = true;
        for _ in 0..10_000 {
            ok &= l.acquire(Timeout::Forever).is_ok() && l.release().is_ok();
            ok &= r.acquire(Timeout::Forever).is_ok()
                && r.acquire(TRY).is_ok()
                && r.release().is_ok()
                && r.release().is_ok();
            ok &= s.acquire(Timeout::Forever).is_ok() && s.release().is_ok();
            ok &= u.acquire(Timeout::Forever).is_ok() && u.release().is_ok();
            ok &= v.acquire(Timeout::Forever).is_ok() && v.fetch_add_i64(0, 1).is_ok() && v.release().is_ok();
            e.set();
            ok &= e.wait(Timeout::Forever).is_ok();
            e.clear();
            ok &= c.acquire(Timeout::Forever).is_ok() && c.notify(1).is_ok() && c.release().is_ok();
            ok &= b.wait(Timeout::Forever).is_ok();
        }
        // exit_group is not allowed in strict mode; exit (of the only thread) is.
        // SAFETY: SYS_exit ends the calling thread, the child's only one: nothing runs after it.
        unsafe { libc::syscall(libc::SYS_exit, if ok { 0 } else { 1 }) };
        2
    });
    assert_eq!(child.wait(), Exit::Code(0), "a system call was made (SIGKILL) or an operation failed");
}
