//! Processes from Rust: spawn and fork, exit codes, join timeouts, signals, sentinels, daemons,
//! options and bad input. Every wait is bounded.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mpx::process::{self, Options, Stdio};
use mpx::ErrorKind;

const T: Duration = Duration::from_secs(10);

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2")
}

/// Whether a pid is gone or a zombie (a zombie is dead; only reaping remains).
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("Z"),
    }
}

#[test]
fn spawn_exit_codes() {
    let sh = |script: &str| process::spawn("sh", &["sh", "-c", script], &Options::new()).unwrap();
    assert_eq!(sh("exit 0").join(T).unwrap(), 0);
    assert_eq!(sh("exit 7").join(T).unwrap(), 7);
    assert_eq!(sh("kill -TERM $$").join(T).unwrap(), -libc::SIGTERM);
    assert_eq!(sh("kill -KILL $$").join(T).unwrap(), -libc::SIGKILL);
}

#[test]
fn spawn_missing_program_is_an_error_not_exit_127() {
    let e = process::spawn("mpx-no-such-program", &["x"], &Options::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = process::spawn("/nonexistent/bin/x", &["x"], &Options::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let plain = std::env::temp_dir().join(format!("mpx-noexec-{}", std::process::id()));
    std::fs::write(&plain, "not a program").unwrap();
    let e = process::spawn(&plain, &["x"], &Options::new()).unwrap_err();
    std::fs::remove_file(&plain).unwrap();
    assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
    let e = process::spawn("sh", &[] as &[&str], &Options::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    let e = process::spawn("sh", &["sh"], &Options::new().cwd("/nonexistent-dir")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[test]
fn join_timeout_terminate_kill_interrupt() {
    for (f, sig) in [
        (process::Process::terminate as fn(&process::Process) -> mpx::Result<()>, libc::SIGTERM),
        (process::Process::kill, libc::SIGKILL),
        (process::Process::interrupt, libc::SIGINT),
    ] {
        let p = process::spawn("sleep", &["sleep", "30"], &Options::new()).unwrap();
        let t = Instant::now();
        assert_eq!(p.join(Duration::from_millis(50)).unwrap_err().kind(), ErrorKind::Timeout);
        assert!(t.elapsed() >= Duration::from_millis(45));
        assert!(p.is_alive().unwrap());
        assert_eq!(p.exitcode().unwrap(), None);
        f(&p).unwrap();
        assert_eq!(p.join(T).unwrap(), -sig);
        assert!(!p.is_alive().unwrap());
        assert_eq!(p.exitcode().unwrap(), Some(-sig));
        // Signalling a reaped process is a harmless no-op.
        p.kill().unwrap();
    }
}

#[test]
fn sentinel_becomes_readable_at_exit() {
    let p = process::spawn("sh", &["sh", "-c", "sleep 0.2"], &Options::new()).unwrap();
    let fd = p.sentinel().unwrap();
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: pfd is one initialised pollfd on our stack, and nfds is 1.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0, "readable before exit");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 10_000) }, 1, "not readable after exit");
    assert_eq!(p.join(T).unwrap(), 0);
}

#[test]
fn fork_runs_closure_and_reports() {
    let (r, w) = pipe();
    let wfd = w.as_raw_fd();
    let p = process::fork(&Options::new().name("worker-7"), move || {
        let msg = format!("{}|{}", process::current::name(), process::current::parent_pid());
        // SAFETY: writes msg.len() bytes from the live String msg to wfd, the pipe's write end inherited by the fork.
        unsafe { libc::write(wfd, msg.as_ptr().cast(), msg.len()) };
        42
    })
    .unwrap();
    drop(w);
    assert_eq!(p.name(), "worker-7");
    assert_eq!(p.join(T).unwrap(), 42);
    let mut s = String::new();
    std::fs::File::from(r).read_to_string(&mut s).unwrap();
    assert_eq!(s, format!("worker-7|{}", std::process::id()));
    let p = process::fork(&Options::new(), || panic!("deliberate")).unwrap();
    assert_eq!(p.join(T).unwrap(), 1);
    let p = process::fork(&Options::new(), || {
        // SAFETY: raise takes a signal number only; SIGKILL ends this forked child here.
        unsafe { libc::raise(libc::SIGKILL) };
        0
    })
    .unwrap();
    assert_eq!(p.join(T).unwrap(), -libc::SIGKILL);
    let e = process::fork(&Options::new().keep_fd(0), || 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
}

#[test]
fn spawn_environment_cwd_fds_stdio() {
    let dir = std::env::temp_dir().join(format!("mpx-proc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.txt");
    let (r, w) = pipe();
    // The kept fd survives exec at the same number; an unkept one is closed.
    let (r2, w2) = pipe();
    let script = format!(
        "printf '%s|%s|%s|' \"$MPX_T_A\" \"${{HOME-unset}}\" \"$(pwd)\"; echo kept >&{}; (echo x >&{}) 2>/dev/null && echo leaked; true",
        w.as_raw_fd(),
        w2.as_raw_fd()
    );
    let opts = Options::new()
        .env("MPX_T_A", "alpha")
        .env_remove("HOME")
        .cwd(&dir)
        .keep_fd(w.as_raw_fd())
        .stdout(Stdio::File { path: out.clone(), append: false })
        .stderr(Stdio::File { path: dir.join("err.txt"), append: true });
    let p = process::spawn("sh", &["sh", "-c", &script], &opts).unwrap();
    let code = p.join(T).unwrap();
    assert_eq!(code, 0, "stderr: {}", std::fs::read_to_string(dir.join("err.txt")).unwrap_or_default());
    drop(w);
    drop(w2);
    let mut kept = String::new();
    std::fs::File::from(r).read_to_string(&mut kept).unwrap();
    assert_eq!(kept, "kept\n");
    let mut leaked = String::new();
    std::fs::File::from(r2).read_to_string(&mut leaked).unwrap();
    assert_eq!(leaked, "");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, format!("alpha|unset|{}|", dir.canonicalize().unwrap().display()));
    // env_clear leaves only what is set.
    let p = process::spawn(
        "/bin/sh",
        &["sh", "-c", "test -z \"$HOME\" && test \"$ONLY\" = 1"],
        &Options::new().env_clear().env("ONLY", "1"),
    )
    .unwrap();
    assert_eq!(p.join(T).unwrap(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn affinity_nice_session() {
    let opts = Options::new().affinity(vec![0]).nice(5).new_session(true);
    let p = process::fork(&opts, || {
        // SAFETY: cpu_set_t is a plain bit set; all-zero is a valid (empty) set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: set is a cpu_set_t of exactly the size passed.
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        // SAFETY: both read the set filled above, and CPU 0 is within it.
        let only0 = unsafe { libc::CPU_ISSET(0, &set) && libc::CPU_COUNT(&set) == 1 };
        // SAFETY: getpriority takes integers only.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        // SAFETY: getsid takes an integer only.
        let sid = unsafe { libc::getsid(0) };
        (only0 && nice == 5 && sid == std::process::id() as i32) as i32
    })
    .unwrap();
    assert_eq!(p.join(T).unwrap(), 1);
    let e = process::spawn("true", &["true"], &Options::new().affinity(vec![100000])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let e = process::spawn("true", &["true"], &Options::new().nice(99)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
}

#[test]
fn daemon_dies_with_a_sigkilled_parent() {
    // Orphans are re-parented to us, so we can reap them and see them die.
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes integers and only changes who reaps orphans.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    let (r, w) = pipe();
    let wfd = w.as_raw_fd();
    let middle = process::fork(&Options::new(), move || {
        let d = process::spawn("sleep", &["sleep", "60"], &Options::new().daemon(true)).unwrap();
        let n = process::spawn("sleep", &["sleep", "60"], &Options::new()).unwrap();
        // Forked from a thread other than main: the child watches us with a thread of its own.
        let t = std::thread::spawn(|| {
            process::fork(&Options::new().daemon(true), || {
                std::thread::sleep(Duration::from_secs(60));
                0
            })
            .unwrap()
        });
        let w = t.join().unwrap();
        let msg = format!("{} {} {}\n", d.pid(), n.pid(), w.pid());
        // SAFETY: writes msg.len() bytes from the live String msg to wfd, the pipe's write end inherited by the fork.
        unsafe { libc::write(wfd, msg.as_ptr().cast(), msg.len()) };
        std::thread::sleep(Duration::from_secs(60));
        0
    })
    .unwrap();
    drop(w);
    let mut s = String::new();
    let mut f = std::fs::File::from(r);
    let mut buf = [0u8; 64];
    let n = f.read(&mut buf).unwrap();
    s.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    let pids: Vec<i32> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let (daemon, plain, watched) = (pids[0], pids[1], pids[2]);
    assert!(!is_dead(daemon) && !is_dead(plain));
    middle.kill().unwrap();
    assert_eq!(middle.join(T).unwrap(), -libc::SIGKILL);
    let t = Instant::now();
    while !is_dead(daemon) && t.elapsed() < T {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(is_dead(daemon), "daemon child outlived its SIGKILLed parent");
    while !is_dead(watched) && t.elapsed() < T {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(is_dead(watched), "daemon forked from a thread outlived its SIGKILLed parent");
    assert!(!is_dead(plain), "a non-daemon child must survive its parent");
    // SAFETY: kill takes no pointers; plain is an orphan re-parented to us (the subreaper) and not yet reaped, so its
    // number is still its own.
    unsafe { libc::kill(plain, libc::SIGKILL) };
    for pid in [daemon, plain, watched] {
        let mut st = 0;
        // SAFETY: st is a local; each pid is a child of ours (adopted as subreaper) that is dead or was just SIGKILLed.
        unsafe { libc::waitpid(pid, &mut st, 0) };
    }
}

#[test]
fn dropped_handles_leave_no_zombies() {
    let mut pids = Vec::new();
    for _ in 0..5 {
        let p = process::spawn("sh", &["sh", "-c", "sleep 0.1"], &Options::new()).unwrap();
        pids.push(p.pid());
        drop(p); // detached while running
    }
    let t = Instant::now();
    while pids.iter().any(|p| std::path::Path::new(&format!("/proc/{p}")).exists()) && t.elapsed() < T {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids {
        assert!(!std::path::Path::new(&format!("/proc/{p}")).exists(), "pid {p} left as a zombie");
    }
}

#[test]
fn adopt_a_foreign_fork() {
    // SAFETY: the child only calls _exit, which is async-signal-safe, so forking this multi-threaded test process is
    // sound.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: _exit has no preconditions.
        unsafe { libc::_exit(9) };
    }
    let p = process::Process::adopt(pid, Some("raw".into())).unwrap();
    assert_eq!(p.join(T).unwrap(), 9);
    assert_eq!(process::Process::adopt(1, None).unwrap_err().kind(), ErrorKind::Os);
    assert_eq!(process::Process::adopt(-5, None).unwrap_err().kind(), ErrorKind::Invalid);
}

#[test]
fn cpu_count_is_sane() {
    assert!(process::cpu_count() >= 1);
}

#[test]
fn daemon_started_from_a_finished_thread_lives_on() {
    // PR_SET_PDEATHSIG is tied to the starting thread; mpx must tie it to the process.
    let t = std::thread::spawn(|| {
        let d = process::spawn("sleep", &["sleep", "30"], &Options::new().daemon(true)).unwrap();
        let f = process::fork(&Options::new().daemon(true), || {
            std::thread::sleep(Duration::from_secs(30));
            0
        })
        .unwrap();
        (d, f)
    });
    let (d, f) = t.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.is_alive().unwrap(), "spawned daemon died with the thread that started it");
    assert!(f.is_alive().unwrap(), "forked daemon died with the thread that started it");
    d.kill().unwrap();
    f.kill().unwrap();
    assert_eq!(d.join(T).unwrap(), -libc::SIGKILL);
    assert_eq!(f.join(T).unwrap(), -libc::SIGKILL);
}

#[test]
fn spawned_executable_learns_its_name() {
    let opts = Options::new().name("exec-named");
    let p = process::spawn(
        "sh",
        &["sh", "-c", "test \"$MPX_PROCESS_NAME\" = exec-named && test \"$MPX_PARENT_PID\" = \"$PPID\""],
        &opts,
    )
    .unwrap();
    assert_eq!(p.join(T).unwrap(), 0);
}
