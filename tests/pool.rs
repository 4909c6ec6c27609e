//! Process pools from Rust: results value by value, map order, task errors, unknown functions,
//! workers SIGKILLed while they run a task, workers that abort or segfault, an owner that is
//! SIGKILLed (no worker survives it), close/join/terminate, maxtasksperchild, too-large tasks
//! and results, and the `mpx ls` summary. Every wait is bounded; no test asserts on time.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mpx::pool::{Pool, PoolOptions, PoolTable, Registry, TaskError, WorkerState};
use mpx::{ErrorKind, Kind, Object, Queue, QueueSpec};

const T: Duration = Duration::from_secs(30);

fn u64_of(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

fn registry() -> Registry {
    Registry::new()
        .with("square", |a| {
            let x = u64::from_le_bytes(a.try_into().map_err(|_| TaskError::new(ErrorKind::Invalid, "need 8 bytes"))?);
            Ok((x * x).to_le_bytes().to_vec())
        })
        // Some work (a few tens of microseconds), so that kills land while tasks run.
        .with("work", |a| {
            let x = u64::from_le_bytes(a.try_into().unwrap());
            let mut h = x;
            for _ in 0..20_000 {
                h = std::hint::black_box(h.rotate_left(5) ^ 0x9E37);
            }
            std::hint::black_box(h);
            Ok((x * x).to_le_bytes().to_vec())
        })
        .with("echo", |a| Ok(a.to_vec()))
        .with("pid", |_| Ok((std::process::id() as u64).to_le_bytes().to_vec()))
        .with("fail", |a| {
            Err(TaskError::new(ErrorKind::Invalid, format!("bad input {}", String::from_utf8_lossy(a)))
                .type_name("ValueError")
                .traceback("Traceback: in fail"))
        })
        .with("panic", |_| panic!("deliberately"))
        // Runs until the worker is killed (bounded: a minute, so a broken test cannot leave it).
        .with("block", |_| {
            std::thread::sleep(Duration::from_secs(60));
            Ok(Vec::new())
        })
        // SAFETY: abort ends the process at once; that is the test.
        .with("abort", |_| unsafe { libc::abort() })
        .with("segv", |_| {
            // SAFETY: raises SIGSEGV in this worker on purpose (the default action kills it).
            unsafe {
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                libc::raise(libc::SIGSEGV);
            }
            Ok(Vec::new())
        })
        .with("big", |a| Ok(vec![7u8; u64::from_le_bytes(a.try_into().unwrap()) as usize]))
}

fn pool(workers: usize) -> Pool {
    Pool::new(PoolOptions::new().workers(workers), registry()).expect("pool")
}

/// Waits (bounded) until `cond` holds.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < T, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether a pid is gone or a zombie (dead; only reaping remains).
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("Z"),
    }
}

/// The pid of the worker running `task`, once one does.
fn runner_of(p: &Pool, task: u64) -> i32 {
    let mut pid = 0;
    until("a worker to run the task", || {
        // Collect results meanwhile, so the table moves on.
        let _ = p.ready(task);
        pid = p.workers().iter().find(|w| w.task == Some(task)).map_or(0, |w| w.pid);
        pid > 0
    });
    pid
}

#[test]
fn results_value_by_value() {
    let p = pool(2);
    assert_eq!(p.size(), 2);
    let ids: Vec<u64> = (0..300u64).map(|i| p.submit("square", &i.to_le_bytes()).unwrap()).collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(u64_of(&p.wait(*id, T).unwrap()), (i * i) as u64, "task {id}");
    }
    // A second wait of a consumed result, and of an id never given, are errors.
    assert_eq!(p.wait(ids[0], T).unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(p.wait(999_999, T).unwrap_err().kind(), ErrorKind::Invalid);
    let t = p.table();
    assert_eq!((t.submitted(), t.done(), t.failed()), (300, 300, 0));
    let per_worker: u64 = p.workers().iter().map(|w| w.done).sum();
    assert_eq!(per_worker, 300);
    p.close().unwrap();
    p.join(T).unwrap();
    assert!(p.workers().iter().all(|w| w.state == WorkerState::Exited), "{:?}", p.workers());
}

#[test]
fn map_keeps_order_for_every_chunksize() {
    let p = pool(2);
    let items: Vec<[u8; 8]> = (0..1000u64).map(|i| i.to_le_bytes()).collect();
    for cs in [None, Some(1), Some(7), Some(1000), Some(5000)] {
        let out = p.map("square", &items, cs, T).unwrap();
        assert_eq!(out.len(), 1000, "chunksize {cs:?}");
        for (i, r) in out.iter().enumerate() {
            assert_eq!(u64_of(r), (i * i) as u64, "item {i}, chunksize {cs:?}");
        }
    }
    assert!(p.map::<&[u8]>("square", &[], None, T).unwrap().is_empty());
    assert_eq!(p.map("square", &items, Some(0), T).unwrap_err().kind(), ErrorKind::Invalid);
    // An error in one chunk fails the map; the pool goes on.
    let mixed: Vec<Vec<u8>> = (0..20u64).map(|i| if i == 13 { vec![1] } else { i.to_le_bytes().to_vec() }).collect();
    let e = p.map("square", &mixed, Some(3), T).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.message().contains("need 8 bytes"), "{e}");
    assert_eq!(p.map("echo", &[b"a", b"b"], None, T).unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn task_errors_come_back_with_the_remote_message() {
    let p = pool(2);
    let f = p.submit("fail", b"xyz").unwrap();
    let e = p.wait(f, T).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.message().contains("ValueError: bad input xyz"), "{e}");
    assert!(e.message().contains("Traceback: in fail"), "{e}");
    let f = p.submit("fail", b"q").unwrap();
    let o = p.wait_outcome(f, T).unwrap().unwrap_err();
    assert_eq!(
        o,
        TaskError::new(ErrorKind::Invalid, "bad input q").type_name("ValueError").traceback("Traceback: in fail")
    );
    let k = p.submit("panic", b"").unwrap();
    let e = p.wait(k, T).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panic);
    assert!(e.message().contains("deliberately"), "{e}");
    // The pool is intact after them.
    let ok = p.submit("square", &3u64.to_le_bytes()).unwrap();
    assert_eq!(u64_of(&p.wait(ok, T).unwrap()), 9);
    assert_eq!(p.table().failed(), 3);
}

#[test]
fn unknown_function_fails_that_task() {
    let p = pool(1);
    let a = p.submit("no-such-function", b"").unwrap();
    let b = p.submit("square", &5u64.to_le_bytes()).unwrap();
    let e = p.wait(a, T).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains("no function 'no-such-function'"), "{e}");
    assert_eq!(u64_of(&p.wait(b, T).unwrap()), 25);
    assert_eq!(p.submit("", b"").unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(p.submit(&"f".repeat(256), b"").unwrap_err().kind(), ErrorKind::Invalid);
}

#[test]
fn sigkilled_worker_fails_exactly_its_task() {
    let p = pool(2);
    for round in 0..3 {
        let b = p.submit("block", b"").unwrap();
        let others: Vec<u64> = (0..50u64).map(|i| p.submit("square", &i.to_le_bytes()).unwrap()).collect();
        let victim = runner_of(&p, b);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim), nix::sys::signal::Signal::SIGKILL).unwrap();
        let e = p.wait(b, T).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerDied, "round {round}: {e}");
        assert!(e.message().contains("signal 9"), "{e}");
        for (i, id) in others.iter().enumerate() {
            assert_eq!(u64_of(&p.wait(*id, T).unwrap()), (i * i) as u64, "round {round}, task {id}");
        }
        assert!(!p.pids().contains(&victim));
    }
    // The pool kept its size: two live workers, three replacements made.
    assert_eq!(p.pids().len(), 2);
    assert_eq!(p.workers().iter().map(|w| w.started).sum::<u64>(), 5);
    assert_eq!(p.table().failed(), 3);
    assert_eq!(p.table().done(), 150);
    let ok = p.submit("square", &4u64.to_le_bytes()).unwrap();
    assert_eq!(u64_of(&p.wait(ok, T).unwrap()), 16);
}

#[test]
fn workers_that_abort_or_segfault_fail_their_task() {
    let p = pool(2);
    for (f, sig) in [("abort", libc::SIGABRT), ("segv", libc::SIGSEGV), ("abort", libc::SIGABRT)] {
        let id = p.submit(f, b"").unwrap();
        let e = p.wait(id, T).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerDied, "{f}: {e}");
        assert!(e.message().contains(&format!("signal {sig}")), "{f}: {e}");
    }
    let ids: Vec<u64> = (0..20u64).map(|i| p.submit("square", &i.to_le_bytes()).unwrap()).collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(u64_of(&p.wait(*id, T).unwrap()), (i * i) as u64);
    }
    assert_eq!(p.pids().len(), 2);
}

#[test]
fn no_worker_outlives_a_sigkilled_owner() {
    // The owner is a forked child; it sends its workers' pids back on an anonymous queue.
    let q = Queue::create_anonymous(QueueSpec::new(4096)).unwrap();
    let owner = mpx::process::fork(&mpx::process::Options::new(), || {
        let p = pool(2);
        let b = p.submit("block", b"").unwrap();
        let _ = runner_of(&p, b);
        for pid in p.pids() {
            q.put(&pid.to_le_bytes(), T).unwrap();
        }
        std::thread::sleep(Duration::from_secs(60));
        0
    })
    .unwrap();
    let pids: Vec<i32> = (0..2).map(|_| i32::from_le_bytes(q.get(T).unwrap().try_into().unwrap())).collect();
    assert!(pids.iter().all(|&pid| !is_dead(pid)));
    owner.kill().unwrap();
    assert_eq!(owner.join(T).unwrap(), -libc::SIGKILL);
    until("the workers to die with their owner", || pids.iter().all(|&pid| is_dead(pid)));
}

#[test]
fn close_join_terminate() {
    let p = pool(2);
    assert_eq!(p.join(T).unwrap_err().kind(), ErrorKind::State);
    let ids: Vec<u64> = (0..40u64).map(|i| p.submit("square", &i.to_le_bytes()).unwrap()).collect();
    p.close().unwrap();
    let e = p.submit("square", &1u64.to_le_bytes()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::State, "{e}");
    assert_eq!(p.map("square", &[1u64.to_le_bytes()], None, T).unwrap_err().kind(), ErrorKind::State);
    p.join(T).unwrap();
    assert!(p.pids().is_empty());
    // Every queued task ran before the workers exited; results wait for their wait.
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(u64_of(&p.wait(*id, T).unwrap()), (i * i) as u64);
    }
    assert!(p.table().is_closed());

    // terminate: running and queued tasks fail with Closed, the workers are gone.
    let p = pool(2);
    let blocked: Vec<u64> = (0..4).map(|_| p.submit("block", b"").unwrap()).collect();
    let _ = runner_of(&p, blocked[0]);
    let pids = p.pids();
    p.terminate().unwrap();
    for id in blocked {
        assert_eq!(p.wait(id, T).unwrap_err().kind(), ErrorKind::Closed);
    }
    assert!(pids.iter().all(|&pid| is_dead(pid)));
    assert_eq!(p.submit("square", &1u64.to_le_bytes()).unwrap_err().kind(), ErrorKind::State);
    p.terminate().unwrap();
    p.join(T).unwrap();
}

#[test]
fn wait_any_returns_a_finished_task() {
    let p = pool(2);
    let b = p.submit("block", b"").unwrap();
    let s = p.submit("square", &6u64.to_le_bytes()).unwrap();
    assert_eq!(p.wait_any(&[b, s], T).unwrap(), s);
    assert_eq!(u64_of(&p.wait(s, T).unwrap()), 36);
    assert_eq!(p.wait_any(&[b], Duration::from_millis(50)).unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(p.wait_any(&[s], T).unwrap_err().kind(), ErrorKind::Invalid);
    assert!(!p.ready(b).unwrap());
    // A zero timeout still looks once.
    let z = p.submit("square", &7u64.to_le_bytes()).unwrap();
    match p.wait(z, Duration::ZERO) {
        Ok(r) => assert_eq!(u64_of(&r), 49),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
            until("the task to be ready", || p.ready(z).unwrap());
            assert_eq!(u64_of(&p.wait(z, Duration::ZERO).unwrap()), 49);
        }
    }
}

#[test]
fn one_pool_from_several_threads() {
    fn shared<T: Send + Sync>(_: &T) {}
    let p = pool(2);
    shared(&p);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let p = &p;
            s.spawn(move || {
                for i in 0..100u64 {
                    let x = t * 1000 + i;
                    let id = p.submit("square", &x.to_le_bytes()).unwrap();
                    assert_eq!(u64_of(&p.wait(id, T).unwrap()), x * x);
                }
            });
        }
    });
    assert_eq!(p.table().done(), 400);
}

#[test]
fn max_tasks_per_child_replaces_workers() {
    let p = Pool::new(PoolOptions::new().workers(1).max_tasks_per_child(5), registry()).unwrap();
    let ids: Vec<u64> = (0..20).map(|_| p.submit("pid", b"").unwrap()).collect();
    let pids: Vec<u64> = ids.iter().map(|id| u64_of(&p.wait(*id, T).unwrap())).collect();
    for chunk in pids.chunks(5) {
        assert!(chunk.iter().all(|&x| x == chunk[0]), "{pids:?}");
    }
    let distinct: std::collections::HashSet<u64> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 4, "{pids:?}");
    assert_eq!(p.table().failed(), 0);
}

#[test]
fn too_large_tasks_and_results_fail_clearly() {
    let p = Pool::new(PoolOptions::new().workers(1).task_capacity(4096).result_capacity(4096), registry()).unwrap();
    assert_eq!(p.submit("echo", &vec![0u8; 10_000]).unwrap_err().kind(), ErrorKind::TooBig);
    let big = p.submit("big", &10_000u64.to_le_bytes()).unwrap();
    let e = p.wait(big, T).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooBig, "{e}");
    assert!(e.message().contains("does not fit the result queue"), "{e}");
    let small = p.submit("big", &1000u64.to_le_bytes()).unwrap();
    assert_eq!(p.wait(small, T).unwrap(), vec![7u8; 1000]);
    // Many tasks through a small task queue: submit waits for room, collecting results.
    let ids: Vec<u64> = (0..500u64).map(|i| p.submit("square", &i.to_le_bytes()).unwrap()).collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(u64_of(&p.wait(*id, T).unwrap()), (i * i) as u64);
    }
}

#[test]
fn named_pool_summary_for_mpx_ls() {
    let mut names = Names::new();
    let name = names.add("pool");
    names.guard(&format!("{name}.tasks"));
    names.guard(&format!("{name}.results"));
    {
        let p = Pool::new(PoolOptions::new().workers(2).name(&name), registry()).unwrap();
        assert_eq!(p.name(), Some(name.as_str()));
        let ids: Vec<u64> = (0..10u64).map(|i| p.submit("square", &i.to_le_bytes()).unwrap()).collect();
        for id in &ids {
            p.wait(*id, T).unwrap();
        }
        let f = p.submit("fail", b"").unwrap();
        p.wait(f, T).unwrap_err();
        let b = p.submit("block", b"").unwrap();
        let busy = runner_of(&p, b);
        until("both workers to start", || p.workers().iter().all(|w| w.pid > 0));
        for n in [name.clone(), format!("{name}.tasks"), format!("{name}.results")] {
            assert!(exists(&n), "{n}");
        }
        let s = mpx::stats::summary(&name, Kind::Pool).unwrap().unwrap();
        assert!(s.starts_with("2 workers ["), "{s}");
        assert!(s.contains(&format!("{busy} busy task {b}")), "{s}");
        for pid in p.pids() {
            assert!(s.contains(&pid.to_string()), "{s}");
        }
        assert!(s.contains("1 running, 10 done, 1 failed"), "{s}");
        let t = PoolTable::inspect(&name).unwrap();
        assert_eq!(t.slots(), 2);
        assert_eq!(t.submitted(), 12);
        // The name is taken while the pool lives.
        let e = Pool::new(PoolOptions::new().workers(1).name(&name), registry()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Exists);
        let r = mpx(&["ls"]);
        let line = r.stdout.lines().find(|l| l.contains(&name) && l.contains("pool")).unwrap_or("");
        assert!(line.contains("busy"), "{}", r.stdout);
        let r = mpx(&["info", &name]);
        assert!(r.stdout.contains(&format!("{busy} busy task {b}")), "{r:?}");
    }
    // Dropping the pool removed its names.
    for n in [name.clone(), format!("{name}.tasks"), format!("{name}.results")] {
        assert!(!exists(&n), "{n} left in /dev/shm");
    }
}

#[test]
fn bad_options() {
    let e = Pool::new(PoolOptions::new().workers(0), registry()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let e = Pool::new(PoolOptions::new().workers(1).name("bad/name"), registry()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(mpx::pool::usable_cpus() >= 1);
    let p = Pool::new(PoolOptions::new(), registry()).unwrap();
    assert_eq!(p.size(), mpx::pool::usable_cpus());
}

#[test]
fn random_kills_during_many_tasks_lose_nothing() {
    // Workers SIGKILLed at arbitrary instants (taking a task, running it, reporting it, idle):
    // every task still ends, with its value or WorkerDied, and no more fail than were killed.
    let p = pool(2);
    let n = 5000u64;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let kills = std::thread::scope(|s| {
        let killer = s.spawn(|| {
            let mut kills = 0u32;
            let mut killed = std::collections::HashSet::new();
            let mut seed = 0x9E37_79B9_7F4A_7C15u64;
            while kills < 40 && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                std::thread::sleep(Duration::from_micros(200 + seed % 3000));
                let ws = p.workers();
                let w = &ws[(seed >> 20) as usize % ws.len()];
                let live = w.pid > 0 && !killed.contains(&w.pid) && !is_dead(w.pid);
                if live && matches!(w.state, WorkerState::Idle | WorkerState::Busy) {
                    killed.insert(w.pid);
                    let pid = nix::unistd::Pid::from_raw(w.pid);
                    if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok() {
                        kills += 1;
                    }
                }
            }
            (kills, killed)
        });
        let ids: Vec<u64> = (0..n).map(|i| p.submit("work", &i.to_le_bytes()).unwrap()).collect();
        let mut died = 0u32;
        let mut failed = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match p.wait(*id, T) {
                Ok(r) => assert_eq!(u64_of(&r), (i * i) as u64, "task {id}"),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::WorkerDied, "task {id}: {e}");
                    failed.push(e.message().to_string());
                    died += 1;
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (kills, killed) = killer.join().unwrap();
        // Each failure names a worker the killer killed.
        for m in &failed {
            assert!(killed.iter().any(|pid| m.contains(&format!("(pid {pid})"))), "{m}");
        }
        assert!(died <= kills, "{died} tasks failed for {kills} kills");
        eprintln!("{kills} kills, {died} tasks failed with WorkerDied, {} succeeded", n - died as u64);
        assert_eq!(p.table().done() + p.table().failed(), n);
        kills
    });
    // The pool kept its size and still works.
    let ok = p.submit("square", &9u64.to_le_bytes()).unwrap();
    assert_eq!(u64_of(&p.wait(ok, T).unwrap()), 81);
    assert_eq!(p.pids().len(), 2);
    if kills > 0 {
        assert!(p.workers().iter().map(|w| w.started).sum::<u64>() > 2);
    }
}

#[test]
fn malformed_results_fail_their_task_or_are_dropped() {
    // The result queue is shared memory another process may write: garbage must neither
    // crash the owner nor leave a waiter waiting.
    let mut names = Names::new();
    let name = names.add("pool-bad");
    names.guard(&format!("{name}.tasks"));
    names.guard(&format!("{name}.results"));
    let p = Pool::new(PoolOptions::new().workers(2).name(&name), registry()).unwrap();
    let b = p.submit("block", b"").unwrap();
    let results = Queue::open(&format!("{name}.results"), mpx::Flags::default()).unwrap();
    let mut bad = b.to_le_bytes().to_vec();
    bad.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0]); // status 9: no such status
    results.put(&bad, T).unwrap();
    results.put(b"xyz", T).unwrap(); // no task id at all
    let mut other = 999_999u64.to_le_bytes().to_vec(); // a task nobody submitted
    other.extend_from_slice(&[0; 8]);
    results.put(&other, T).unwrap();
    let e = p.wait(b, T).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    // The pool goes on (one worker still runs "block", the other takes this).
    let ok = p.submit("square", &3u64.to_le_bytes()).unwrap();
    assert_eq!(u64_of(&p.wait(ok, T).unwrap()), 9);
    assert_eq!(p.wait(999_999, Duration::ZERO).unwrap_err().kind(), ErrorKind::Invalid);
}
