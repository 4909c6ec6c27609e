//! Unit tests of the kill-safety argument, step by step: the first worker to reach one step of
//! taking a task stops there for good (worker::pause), is SIGKILLed there, and the task must end
//! as the argument in the module doc says: still queued (and then run by another worker) when
//! the kill came before the commit, failed with WorkerDied once it came after.

use std::sync::atomic::Ordering::*;
use std::time::{Duration, Instant};

use super::worker::pause;
use super::*;
use crate::ErrorKind;

const T: Duration = Duration::from_secs(30);

fn registry() -> Registry {
    Registry::new().with("double", |a| Ok(a.iter().map(|b| b.wrapping_mul(2)).collect())).with("slow", |a| {
        // Long enough that another worker is still running it when the owner looks.
        std::thread::sleep(Duration::from_millis(300));
        Ok(a.to_vec())
    })
}

/// With `workers` workers, submits `fname`, kills the worker that stopped at `step` of taking
/// it, and returns the task's outcome (checking that the pool goes on).
fn kill_at(step: u32, workers: usize, fname: &str) -> std::result::Result<Vec<u8>, crate::Error> {
    pause::AT.store(step, Relaxed);
    let p = Pool::new(PoolOptions::new().workers(workers), registry()).unwrap();
    let id = p.submit(fname, &[1, 2, 3]).unwrap();
    // Where the stopped worker is: holding the read (the consumer lock is taken and the task
    // still queued), busy before the commit (queued still), or busy after it (gone).
    let start = Instant::now();
    let pid = loop {
        assert!(start.elapsed() < T, "no worker reached step {step}");
        let paused = p.table().test_paused_pid();
        let held = p.tasks.with_consumers_held(Duration::ZERO, |_| ()).is_err();
        let busy = p.workers().into_iter().any(|w| w.task == Some(id) && w.pid == paused);
        let found = paused != 0
            && match step {
                pause::READ => held && p.tasks.qsize() == 1,
                pause::BUSY => held && busy && p.tasks.qsize() == 1,
                _ => busy && p.tasks.qsize() == 0,
            };
        if found {
            assert!(p.pids().contains(&paused), "{paused} is not a worker");
            break paused;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    pause::AT.store(0, Relaxed);
    let r = p.wait(id, T);
    // Whatever happened, the pool goes on with a replacement.
    let again = p.submit("double", &[5]).unwrap();
    assert_eq!(p.wait(again, T).unwrap(), vec![10]);
    // The owner notices the death within its next look at the workers.
    let start = Instant::now();
    while p.pids().contains(&pid) {
        assert!(start.elapsed() < T, "worker {pid} was not replaced");
        let _ = p.ready(again);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(p.pids().len(), workers);
    assert_eq!(p.workers().iter().map(|w| w.started).sum::<u64>(), workers as u64 + 1);
    r
}

#[test]
fn a_kill_at_each_step_of_take_ends_the_task_as_argued() {
    for workers in [1, 2] {
        // Holding the read, nothing written: the task stays queued; another worker runs it.
        assert_eq!(kill_at(pause::READ, workers, "double").unwrap(), vec![2, 4, 6], "{workers}");
        // Busy written, not committed: still queued (the get count is not past its seq), so it
        // is run, not failed, although the dead slot named it. With two workers the other one
        // usually takes it before the owner looks: it is then in that worker's slot ("slow")
        // or its result is in the result queue ("double").
        assert_eq!(kill_at(pause::BUSY, workers, "double").unwrap(), vec![2, 4, 6], "{workers}");
        assert_eq!(kill_at(pause::BUSY, workers, "slow").unwrap(), vec![1, 2, 3], "{workers}");
        // Committed: the task is the dead worker's and fails with WorkerDied.
        let e = kill_at(pause::COMMITTED, workers, "double").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerDied, "{workers}: {e}");
    }
}
