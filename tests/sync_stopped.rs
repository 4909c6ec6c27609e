//! A stopped process (SIGSTOP, Ctrl-Z, a debugger) must not block the others for ever, and a
//! lock word naming a process that can never release (a kernel thread) must not either
//! (issue 11). Each call under test runs in a thread the test waits for with a bounded wait, so
//! a call that blocks for ever fails the test instead of hanging it.
//!
//! The stopped holder is made by writing a stopped child's pid into the internal lock word, as
//! the child would have left it had it been stopped inside the (nanoseconds long) critical
//! section: that moment cannot be hit reliably from outside.

#[path = "sync_util.rs"]
mod util;

use std::sync::mpsc;
use std::time::Duration;

use mpx::queue::{Queue, QueueSpec};
use mpx::{ErrorKind, Flags, Object, Semaphore, SemaphoreSpec};
use util::*;

/// Offsets in the data area (docs in src/sync/semaphore.rs and src/queue/shared.rs).
const SEM_GUARD_WORD: u64 = 64;
const QUEUE_PLOCK_WORD: u64 = 0;

/// Runs `f` in a thread and waits for it at most `limit`; None if it did not return in time.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// A child that does nothing until killed, stopped with SIGSTOP.
fn stopped_child() -> Child {
    let c = fork(|| loop {
        std::thread::sleep(Duration::from_secs(1));
    });
    c.signal(libc::SIGSTOP);
    assert!(
        eventually(|| std::fs::read_to_string(format!("/proc/{}/stat", c.pid))
            .map(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('T')))
            .unwrap_or(false)),
        "the child did not stop"
    );
    c
}

#[test]
fn undo_release_is_not_held_for_ever_by_a_stopped_guard_holder() {
    let mut names = Names::new();
    let n = names.add("stopped-guard");
    let sem = Semaphore::create(&n, SemaphoreSpec::new(1).with_undo(true), Flags::default()).unwrap();
    sem.acquire(Duration::from_secs(5)).unwrap();
    let mut child = stopped_child();
    poke_u32(&n, SEM_GUARD_WORD, child.pid as u32);
    let name = n.clone();
    let r = within(WAIT, move || {
        let s = Semaphore::open(&name, Flags::default()).unwrap();
        s.release()
    });
    let r = r.expect("release blocked behind a stopped process (no bound)");
    let e = r.expect_err("release with the guard held cannot have gone through");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("stopped"), "the message says why: {e}");
    assert!(e.message().contains(&child.pid.to_string()), "and names the holder: {e}");
    // Nothing changed: the permit is still ours, and reclaim is bounded the same way.
    assert_eq!(sem.get_value(), 0);
    let name = n.clone();
    let r = within(WAIT, move || Semaphore::open(&name, Flags::default()).unwrap().reclaim());
    assert_eq!(r.expect("reclaim blocked").unwrap_err().kind(), ErrorKind::Timeout);
    // Once the holder is gone for real, its guard is taken over and release works.
    child.kill();
    sem.release().unwrap();
    assert_eq!(sem.get_value(), 1);
}

#[test]
fn a_lock_word_naming_a_kernel_thread_is_taken_over() {
    // pid 2 is kthreadd on Linux: alive for ever, and never a holder of anything of ours.
    let kthread = std::fs::read_to_string("/proc/2/stat").unwrap_or_default();
    assert!(kthread.contains("(kthreadd)"), "this test expects kthreadd at pid 2: {kthread}");
    let mut names = Names::new();
    let n = names.add("kthread-guard");
    let sem = Semaphore::create(&n, SemaphoreSpec::new(0).with_undo(true), Flags::default()).unwrap();
    poke_u32(&n, SEM_GUARD_WORD, 2);
    let name = n.clone();
    let r = within(WAIT, move || Semaphore::open(&name, Flags::default()).unwrap().release());
    r.expect("release blocked behind a guard word naming a kernel thread").unwrap();
    assert_eq!(sem.get_value(), 1);
}

#[test]
fn queue_shutdown_timeout_bounds_a_stopped_producer() {
    let mut names = Names::new();
    let n = names.add("stopped-producer");
    let q = Queue::create(&n, QueueSpec::new(4096), Flags::default()).unwrap();
    q.put(b"before", Duration::ZERO).unwrap();
    let mut child = stopped_child();
    poke_u32(&n, QUEUE_PLOCK_WORD, child.pid as u32);
    let name = n.clone();
    let r = within(WAIT, move || {
        let q = Queue::open(&name, Flags::default()).unwrap();
        q.shutdown_timeout(Duration::from_millis(200))
    });
    let e = r.expect("shutdown_timeout did not return").expect_err("the producer side is held");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(!q.is_shutdown(), "a shutdown that timed out changes nothing");
    // Once the holder is really gone, its side is taken over and shutdown completes.
    child.kill();
    q.shutdown_timeout(Duration::from_secs(10)).unwrap();
    assert!(q.is_shutdown());
    assert_eq!(q.get(Duration::ZERO).unwrap(), b"before");
}
