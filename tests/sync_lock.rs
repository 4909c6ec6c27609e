//! Lock and RLock: semantics, contention between processes, owner death, bad input.

#[path = "sync_util.rs"]
mod util;

use std::time::{Duration, Instant};

use mpx::Object;
use mpx::{Acquired, ErrorKind, Flags, Lock, RLock, Semaphore, Timeout, Value, ValueSpec};
use util::*;

const TRY: Duration = Duration::ZERO;

#[test]
fn lock_basics() {
    let mut names = Names::new();
    let n = names.add("lock");
    let a = Lock::create(&n, (), Flags::default()).unwrap();
    let b = Lock::open(&n, Flags::default()).unwrap();
    assert!(!a.is_locked());
    assert_eq!(a.acquire(Timeout::Forever).unwrap(), Acquired::Clean);
    assert!(b.is_locked() && a.is_mine() && b.is_mine());
    assert_eq!(a.holder_pid(), Some(std::process::id()));
    // Not recursive: a second acquire times out.
    assert_eq!(b.try_acquire().unwrap_err().kind(), ErrorKind::Timeout);
    let t = Instant::now();
    assert_eq!(b.acquire(Duration::from_millis(30)).unwrap_err().kind(), ErrorKind::Timeout);
    assert!(t.elapsed() >= Duration::from_millis(30));
    // Released through another handle (any holder of a handle may release a Lock).
    b.release().unwrap();
    assert!(!a.is_locked());
    let e = a.release().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::State);
    assert!(e.message().contains(&n) && e.message().contains("not held"), "{}", e.message());
    // Another thread may release it too.
    assert_eq!(a.acquire(TRY).unwrap(), Acquired::Clean);
    std::thread::scope(|s| {
        s.spawn(|| b.release().unwrap());
    });
    assert!(!a.is_locked());
    assert_eq!(Lock::create(&n, (), Flags::default()).err().unwrap().kind(), ErrorKind::Exists);
    a.unlink().unwrap();
    assert_eq!(Lock::open(&n, Flags::default()).err().unwrap().kind(), ErrorKind::NotFound);
}

#[test]
fn bad_input() {
    let mut names = Names::new();
    let n = names.add("kind");
    let _l = Lock::create(&n, (), Flags::default()).unwrap();
    assert_eq!(RLock::open(&n, Flags::default()).err().unwrap().kind(), ErrorKind::Kind);
    assert_eq!(Semaphore::open(&n, Flags::default()).err().unwrap().kind(), ErrorKind::Kind);
    assert_eq!(Value::open(&n, Flags::default()).err().unwrap().kind(), ErrorKind::Kind);
    let e = Lock::open(&n, Flags::READ_ONLY).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.message().contains("read-only"));
    assert_eq!(Lock::open("bad/name", Flags::default()).err().unwrap().kind(), ErrorKind::Invalid);
    assert_eq!(Lock::create(&names.add("x"), (), Flags(1 << 20)).err().unwrap().kind(), ErrorKind::Invalid);
    assert_eq!(Lock::from_fd(-1, Flags::default()).err().unwrap().kind(), ErrorKind::Invalid);
}

#[test]
fn anonymous_lock_shared_with_child() {
    let l = Lock::create_anonymous(()).unwrap();
    assert!(l.name().is_none());
    let fd = l.fd();
    assert_eq!(l.acquire(TRY).unwrap(), Acquired::Clean);
    let mut c = fork(move || {
        let l = Lock::from_fd(fd, Flags::default()).unwrap();
        // Held by the parent: try fails, then the parent releases it and we get it.
        if l.try_acquire().is_ok() {
            return 1;
        }
        match l.acquire(WAIT) {
            Ok(Acquired::Clean) => {}
            _ => return 2,
        }
        l.release().unwrap();
        0
    });
    std::thread::sleep(Duration::from_millis(20));
    l.release().unwrap();
    assert_eq!(c.wait(), Exit::Code(0));
}

/// The classic test: processes increment a plain counter under the lock; not one is lost.
#[test]
fn counter_exact_under_contention() {
    let mut names = Names::new();
    let ln = names.add("cnt-lock");
    let vn = names.add("cnt-val");
    let lock = Lock::create(&ln, (), Flags::default()).unwrap();
    let val = Value::create(&vn, ValueSpec::new(b'q', 1, false), Flags::default()).unwrap();
    const PROCS: i64 = 3;
    const N: i64 = 30_000;
    let kids: Vec<Child> = (0..PROCS)
        .map(|_| {
            let (ln, vn) = (ln.clone(), vn.clone());
            fork(move || {
                let l = Lock::open(&ln, Flags::default()).unwrap();
                let v = Value::open(&vn, Flags::default()).unwrap();
                for _ in 0..N {
                    if l.acquire(WAIT).is_err() {
                        return 2;
                    }
                    // Deliberately not atomic: only the lock keeps it exact.
                    let x: i64 = v.get(0).unwrap();
                    v.set(0, x + 1).unwrap();
                    l.release().unwrap();
                }
                0
            })
        })
        .collect();
    for mut k in kids {
        assert_eq!(k.wait_for(Duration::from_secs(120)), Exit::Code(0));
    }
    assert_eq!(val.get::<i64>(0).unwrap(), PROCS * N);
    assert!(!lock.is_locked());
}

#[test]
fn lock_released_by_another_process() {
    let mut names = Names::new();
    let n = names.add("xrel");
    let l = Lock::create(&n, (), Flags::default()).unwrap();
    assert_eq!(l.acquire(TRY).unwrap(), Acquired::Clean);
    let n2 = n.clone();
    let mut c = fork(move || {
        let l = Lock::open(&n2, Flags::default()).unwrap();
        i32::from(l.release().is_err())
    });
    assert_eq!(c.wait(), Exit::Code(0));
    assert!(!l.is_locked());
}

fn holder_exits_while_holding(reap_first: bool) {
    let mut names = Names::new();
    let n = names.add("died");
    let l = Lock::create(&n, (), Flags::default()).unwrap();
    let n2 = n.clone();
    let mut c = fork(move || {
        let l = Lock::open(&n2, Flags::default()).unwrap();
        assert_eq!(l.acquire(TRY).unwrap(), Acquired::Clean);
        0 // exits holding it
    });
    if reap_first {
        assert_eq!(c.wait(), Exit::Code(0));
    } else {
        // A zombie (dead, not yet reaped) holder must count as dead too.
        c.wait_dead_unreaped();
    }
    assert!(l.is_locked());
    let t = Instant::now();
    let a = l.acquire(WAIT).unwrap();
    let took = t.elapsed();
    assert_eq!(a, Acquired::OwnerDied { pid: c.pid as u32 });
    eprintln!("owner death noticed after {took:?} (reaped first: {reap_first})");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // Held now, normally.
    assert!(l.is_mine());
    l.release().unwrap();
    assert_eq!(l.try_acquire().unwrap(), Acquired::Clean);
    l.release().unwrap();
    c.wait();
}

#[test]
fn owner_death_reaped() {
    holder_exits_while_holding(true);
}

#[test]
fn owner_death_zombie() {
    holder_exits_while_holding(false);
}

#[test]
fn owner_death_wakes_a_sleeping_waiter() {
    // The waiter is asleep before the holder dies; it must notice within the liveness slice.
    let mut names = Names::new();
    let n = names.add("sleeper");
    let l = Lock::create(&n, (), Flags::default()).unwrap();
    let n2 = n.clone();
    let mut holder = fork(move || {
        let l = Lock::open(&n2, Flags::default()).unwrap();
        assert_eq!(l.acquire(TRY).unwrap(), Acquired::Clean);
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    assert!(eventually(|| l.is_locked()));
    let n3 = n.clone();
    let mut waiter = fork(move || {
        let l = Lock::open(&n3, Flags::default()).unwrap();
        let t = Instant::now();
        match l.acquire(WAIT) {
            // Exit code: milliseconds from the start of the wait, capped.
            Ok(Acquired::OwnerDied { .. }) => (t.elapsed().as_millis() as i32).min(250),
            _ => 255,
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    holder.kill();
    let code = match waiter.wait() {
        Exit::Code(c) => c,
        e => panic!("waiter ended with {e:?}"),
    };
    let after_death = t.elapsed();
    assert_ne!(code, 255, "waiter did not get OwnerDied");
    eprintln!("sleeping waiter took over {after_death:?} after the SIGKILL");
    assert!(after_death < Duration::from_secs(2));
}

#[test]
fn rlock_semantics() {
    let mut names = Names::new();
    let n = names.add("rlock");
    let r = RLock::create(&n, (), Flags::default()).unwrap();
    assert_eq!(r.depth(), 0);
    assert_eq!(r.acquire(TRY).unwrap(), Acquired::Clean);
    assert_eq!(r.acquire(TRY).unwrap(), Acquired::Clean);
    assert_eq!(r.acquire(Timeout::Forever).unwrap(), Acquired::Clean);
    assert_eq!(r.depth(), 3);
    // Another thread neither gets it nor may release it.
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(r.depth(), 0);
            assert_eq!(r.try_acquire().unwrap_err().kind(), ErrorKind::Timeout);
            let e = r.release().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::State);
            assert!(e.message().contains("another thread"), "{}", e.message());
        });
    });
    // Another process neither.
    let n2 = n.clone();
    let mut c = fork(move || {
        let r = RLock::open(&n2, Flags::default()).unwrap();
        let a = r.try_acquire().is_err();
        let b = r.release().map_err(|e| e.kind()) == Err(ErrorKind::State);
        if a && b {
            0
        } else {
            1
        }
    });
    assert_eq!(c.wait(), Exit::Code(0));
    r.release().unwrap();
    r.release().unwrap();
    assert!(r.is_locked());
    r.release().unwrap();
    assert!(!r.is_locked());
    assert_eq!(r.release().unwrap_err().kind(), ErrorKind::State);
    // And a thread gets it once it is free.
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(r.acquire(WAIT).unwrap(), Acquired::Clean);
            r.release().unwrap();
        });
    });
}

#[test]
fn rlock_owner_death() {
    let r = RLock::create_anonymous(()).unwrap();
    let fd = r.fd();
    let mut c = fork(move || {
        let r = RLock::from_fd(fd, Flags::default()).unwrap();
        assert_eq!(r.acquire(TRY).unwrap(), Acquired::Clean);
        assert_eq!(r.acquire(TRY).unwrap(), Acquired::Clean);
        0
    });
    assert_eq!(c.wait(), Exit::Code(0));
    assert!(r.acquire(WAIT).unwrap().owner_died());
    // A takeover starts at depth 1.
    assert_eq!(r.depth(), 1);
    r.release().unwrap();
    assert!(!r.is_locked());
}

#[test]
fn corrupt_lock_word_is_a_dead_holder() {
    let mut names = Names::new();
    let n = names.add("corrupt");
    let l = Lock::create(&n, (), Flags::default()).unwrap();
    // A pid that cannot exist, with the waiters bit and garbage in the spare bit.
    poke_u32(&n, 0, 0xFFFF_FFFF);
    assert!(l.is_locked());
    match l.try_acquire().unwrap() {
        Acquired::OwnerDied { pid } => assert_eq!(pid, 0x3FFF_FFFF),
        a => panic!("{a:?}"),
    }
    l.release().unwrap();
    // A holder token whose start time does not match the live process with that pid (pid
    // reuse): the holder is dead even though the pid is alive.
    let me = std::process::id();
    poke_u32(&n, 0, me);
    poke_u64(&n, 8, (me as u64) << 32 | 12345);
    assert!(l.acquire(WAIT).unwrap().owner_died());
    l.release().unwrap();
}
