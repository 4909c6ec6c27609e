//! Kill tests: SIGKILL the holder of a Lock, an RLock and of undo-Semaphore permits at random
//! moments, 200 times each (bounded in time). Every waiter must go on (no hang), OwnerDied must
//! be reported, and the semaphore's count must be whole afterwards.

#[path = "sync_util.rs"]
mod util;

use std::time::{Duration, Instant};

use mpx::Object;
use mpx::{Acquired, Lock, RLock, Semaphore, SemaphoreSpec, Timeout, Value, ValueSpec};
use util::*;

const ROUNDS: usize = 200;
/// The whole loop must finish in this time (a few seconds are expected).
const BUDGET: Duration = Duration::from_secs(150);
const STEP: Duration = Duration::from_secs(5);

/// Busy for a few microseconds inside the critical section, so kills land there often.
fn busy(rng: &mut Rng) {
    let n = rng.below(2000);
    for i in 0..n {
        std::hint::black_box(i);
    }
}

// Counters shared with the persistent waiter: [stop, rounds done, owner-died seen].
const STOP: usize = 0;
const DONE: usize = 1;
const DIED: usize = 2;

fn counters() -> Value {
    Value::create_anonymous(ValueSpec::new(b'q', 3, false)).unwrap()
}

/// Runs the kill loop: `hold` is what the victim does forever (acquire, work, release);
/// `take` is what the parent does after each kill (must succeed within STEP) and returns
/// whether it saw an owner death; `waiter` is one round of the persistent waiter, returning
/// Some(owner_died) or None on failure.
fn kill_loop(
    what: &str,
    hold: impl Fn(&mut Rng) -> bool,
    take: impl Fn() -> bool,
    waiter: impl Fn() -> Option<bool>,
) -> (u64, i64, i64) {
    let stats = counters();
    let mut w = fork(|| {
        while stats.get::<i64>(STOP).unwrap() == 0 {
            match waiter() {
                Some(died) => {
                    stats.fetch_add_i64(DONE, 1).unwrap();
                    if died {
                        stats.fetch_add_i64(DIED, 1).unwrap();
                    }
                }
                None => return 3,
            }
        }
        0
    });
    let start = Instant::now();
    let mut rng = Rng::new();
    let mut died = 0u64;
    for round in 0..ROUNDS {
        assert!(start.elapsed() < BUDGET, "{what}: {round} rounds took {:?}", start.elapsed());
        let seed = rng.next_u64();
        let mut victim = fork(|| {
            let mut rng = Rng(seed | 1);
            loop {
                if !hold(&mut rng) {
                    return 3;
                }
            }
        });
        std::thread::sleep(Duration::from_micros(rng.below(2000)));
        victim.signal(libc::SIGKILL);
        // Half the time the victim is still an unreaped zombie while we wait.
        if round % 2 == 0 {
            victim.reap();
        } else {
            victim.wait_dead_unreaped();
        }
        let t = Instant::now();
        if take() {
            died += 1;
        }
        assert!(t.elapsed() < STEP, "{what}: round {round}: took {:?}", t.elapsed());
        victim.reap();
    }
    stats.set::<i64>(STOP, 1).unwrap();
    // Longer than the waiter's own WAIT, so that a stuck wait reports (and fails) in the child.
    assert_eq!(w.wait_for(WAIT + STEP), Exit::Code(0), "{what}: the persistent waiter failed");
    let (done, wdied) = (stats.get::<i64>(DONE).unwrap(), stats.get::<i64>(DIED).unwrap());
    eprintln!(
        "{what}: {ROUNDS} kills in {:?}; parent saw {died} owner deaths; waiter did {done} rounds, saw {wdied} owner deaths",
        start.elapsed()
    );
    assert!(done > 0, "{what}: the waiter made no progress");
    (died, done, wdied)
}

#[test]
fn kill_lock_holder() {
    let lock = Lock::create_anonymous(()).unwrap();
    let (died, _, wdied) = kill_loop(
        "lock",
        |rng| {
            if lock.acquire(WAIT).is_err() {
                return false;
            }
            busy(rng);
            lock.release().is_ok()
        },
        || {
            let a = lock.acquire(STEP).expect("parent acquire after a kill");
            lock.release().unwrap();
            a.owner_died()
        },
        || {
            let a = lock.acquire(WAIT).ok()?;
            lock.release().ok()?;
            Some(a.owner_died())
        },
    );
    assert!(died + wdied as u64 > 0, "no owner death was ever reported");
    assert!(!lock.is_locked());
}

#[test]
fn kill_rlock_holder() {
    let r = RLock::create_anonymous(()).unwrap();
    let (died, _, wdied) = kill_loop(
        "rlock",
        |rng| {
            if r.acquire(WAIT).is_err() || r.acquire(Timeout::Forever).is_err() {
                return false;
            }
            busy(rng);
            r.release().is_ok() && r.release().is_ok()
        },
        || {
            let a = r.acquire(STEP).expect("parent acquire after a kill");
            assert_eq!(r.depth(), 1);
            r.release().unwrap();
            a.owner_died()
        },
        || {
            // A failure says what the lock looked like (a rare CI hang is being chased here).
            let state = |what: &str, e: &dyn std::fmt::Display| {
                child_note(&format!(
                    "rlock waiter (pid {}): {what} failed: {e}; holder {:?}, mine {}, depth {}",
                    std::process::id(),
                    r.holder_pid(),
                    r.is_mine(),
                    r.depth()
                ))
            };
            let a = r.acquire(WAIT).map_err(|e| state("first acquire", &e)).ok()?;
            let b = r.acquire(WAIT).map_err(|e| state("second (recursive) acquire", &e)).ok()?;
            assert_eq!(b, Acquired::Clean);
            r.release().ok()?;
            r.release().ok()?;
            Some(a.owner_died())
        },
    );
    assert!(died + wdied as u64 > 0, "no owner death was ever reported");
    assert!(!r.is_locked());
}

#[test]
fn kill_undo_semaphore_holder() {
    const PERMITS: u32 = 2;
    let s = Semaphore::create_anonymous(SemaphoreSpec::bounded(PERMITS).with_undo(true)).unwrap();
    let round = std::cell::Cell::new(0u32);
    let reclaimed = std::cell::Cell::new(0u32);
    kill_loop(
        "undo semaphore",
        |rng| {
            if s.acquire(WAIT).is_err() {
                return false;
            }
            // Sometimes take a second permit, so a death can cost two.
            let second = rng.below(2) == 0 && s.try_acquire().is_ok();
            busy(rng);
            (!second || s.release().is_ok()) && s.release().is_ok()
        },
        || {
            // Every other round, give back the dead victim's permits explicitly and count them;
            // otherwise the waiters (the parent's acquire below, the persistent waiter) must.
            round.set(round.get() + 1);
            if round.get() % 2 == 0 {
                reclaimed.set(reclaimed.get() + s.reclaim().unwrap());
            }
            // Every permit must come back: take them all, then give them back.
            for _ in 0..PERMITS {
                s.acquire(STEP).expect("parent acquire after a kill");
            }
            assert_eq!(s.held_by_me(), PERMITS);
            for _ in 0..PERMITS {
                s.release().unwrap();
            }
            false
        },
        || {
            s.acquire(WAIT).ok()?;
            s.release().ok()?;
            Some(false)
        },
    );
    eprintln!("undo semaphore: reclaim() gave back {} permits of killed holders", reclaimed.get());
    assert!(reclaimed.get() > 0, "no victim ever died holding a permit");
    s.reclaim().unwrap();
    assert_eq!(s.get_value(), PERMITS, "the count is not whole");
    assert_eq!(s.held_by_me(), 0);
}

#[test]
fn plain_semaphore_loses_permits_of_the_dead() {
    // Without undo the POSIX/Python behaviour stays: a dead holder's permit is gone.
    let s = Semaphore::create_anonymous(SemaphoreSpec::new(1)).unwrap();
    let mut c = fork(|| i32::from(s.try_acquire().is_err()));
    assert_eq!(c.wait(), Exit::Code(0));
    assert_eq!(s.reclaim().unwrap(), 0);
    assert_eq!(s.get_value(), 0);
}
