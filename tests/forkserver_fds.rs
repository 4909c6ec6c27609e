//! Descriptors passed to fork-server children (`keep_fd`, redirected standard streams): they
//! reach the child at the same numbers, also numbers the server itself has open, and neither
//! the server nor the client leaks any. Runs without the test harness: `init` must be the first
//! thing in main.

use std::collections::BTreeSet;
use std::os::fd::{IntoRawFd, RawFd};
use std::time::{Duration, Instant};

use mpx::process::{self, Options, StartMethod, Stdio};
use mpx::ErrorKind;

const T: Duration = Duration::from_secs(30);

fn identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: libc::stat is plain integers; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid stat buffer; fstat of a number that is not open just fails.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// Open descriptors of `pid` ("self" works too), without the one that lists them.
fn open_fds(pid: &str) -> BTreeSet<RawFd> {
    let dir = format!("/proc/{pid}/fd");
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let n: RawFd = e.file_name().to_str().unwrap().parse().unwrap();
        match std::fs::read_link(e.path()) {
            Ok(target) if !target.to_string_lossy().starts_with("/proc/") => {
                out.insert(n);
            }
            _ => {}
        }
    }
    out
}

fn write_fd(fd: RawFd, b: &[u8]) -> bool {
    let mut off = 0;
    while off < b.len() {
        // SAFETY: writes from a valid slice.
        let n = unsafe { libc::write(fd, b[off..].as_ptr().cast(), b.len() - off) };
        if n <= 0 {
            return false;
        }
        off += n as usize;
    }
    true
}

/// Child entry. arg = "out n1 n2 ...": writes, to descriptor `out`, one line per number
/// ("fd n dev ino cloexec"), then its open descriptors, its parent (the server), "end".
fn report(arg: &[u8]) -> i32 {
    let text = std::str::from_utf8(arg).unwrap();
    let mut nums = text.split_whitespace().map(|s| s.parse::<RawFd>().unwrap());
    let out = nums.next().unwrap();
    let mut s = String::new();
    for n in nums {
        let (dev, ino) = identity(n).unwrap_or((0, 0));
        // SAFETY: F_GETFD only inspects.
        let flags = unsafe { libc::fcntl(n, libc::F_GETFD) };
        s += &format!("fd {n} {dev} {ino} {flags}\n");
    }
    let open: Vec<String> = open_fds("self").iter().map(|n| n.to_string()).collect();
    s += &format!("open {}\n", open.join(","));
    s += &format!("ppid {}\nend\n", std::os::unix::process::parent_id());
    if write_fd(out, s.as_bytes()) {
        0
    } else {
        3
    }
}

struct Report {
    fds: Vec<(RawFd, (u64, u64), i32)>,
    open: BTreeSet<RawFd>,
    ppid: i32,
}

/// Reads a report from `r` until "end", every wait bounded.
fn read_report(r: RawFd) -> Report {
    let deadline = Instant::now() + T;
    let mut buf = Vec::new();
    while !buf.ends_with(b"end\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no report within {T:?}; got {:?}", String::from_utf8_lossy(&buf));
        let mut p = libc::pollfd { fd: r, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, left.as_millis() as i32) } <= 0 {
            continue;
        }
        let mut chunk = [0u8; 65536];
        // SAFETY: reads into a local buffer.
        let n = unsafe { libc::read(r, chunk.as_mut_ptr().cast(), chunk.len()) };
        assert!(n > 0, "report pipe closed early: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n as usize]);
    }
    let mut rep = Report { fds: Vec::new(), open: BTreeSet::new(), ppid: 0 };
    for line in String::from_utf8(buf).unwrap().lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "fd" => rep.fds.push((
                w[1].parse().unwrap(),
                (w[2].parse().unwrap(), w[3].parse().unwrap()),
                w[4].parse().unwrap(),
            )),
            "open" => {
                rep.open = w.get(1).map(|l| l.split(',').map(|n| n.parse().unwrap()).collect()).unwrap_or_default()
            }
            "ppid" => rep.ppid = w[1].parse().unwrap(),
            _ => {}
        }
    }
    rep
}

/// A pipe as raw numbers: this test manages them by hand (dup2 onto chosen numbers, close).
fn pipe() -> (RawFd, RawFd) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2");
    (r.into_raw_fd(), w.into_raw_fd())
}

fn close(fd: RawFd) {
    // SAFETY: closes a descriptor this test opened.
    unsafe { libc::close(fd) };
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only inspects.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Starts `report` by the fork server with `out` and `numbers` kept; checks that each number
/// is in the child, is the same open file as here, is not close-on-exec, and that the child
/// has nothing else open but 0, 1, 2. Returns the server's pid.
fn check_passed(r: RawFd, out: RawFd, numbers: &[RawFd]) -> i32 {
    let mut opts = Options::new().keep_fd(out);
    for n in numbers {
        opts = opts.keep_fd(*n);
    }
    let arg: Vec<String> = std::iter::once(out).chain(numbers.iter().copied()).map(|n| n.to_string()).collect();
    let p = process::start(StartMethod::ForkServer, "report", arg.join(" ").as_bytes(), &opts).unwrap();
    let rep = read_report(r);
    assert_eq!(p.join(T).unwrap(), 0);
    assert_eq!(rep.fds.len(), numbers.len());
    for (n, id, flags) in &rep.fds {
        assert_eq!(Some(*id), identity(*n), "descriptor {n} in the child is not ours");
        assert_eq!(*flags, 0, "descriptor {n} is close-on-exec in the child");
    }
    let want: BTreeSet<RawFd> = [0, 1, 2, out].into_iter().chain(numbers.iter().copied()).collect();
    assert_eq!(rep.open, want, "the child's open descriptors");
    rep.ppid
}

fn main() {
    process::register("report", report).unwrap();
    process::register("print", |arg| {
        print!("{}", String::from_utf8_lossy(arg));
        eprint!("err:{}", String::from_utf8_lossy(arg));
        0
    })
    .unwrap();
    process::init(std::env::args_os().collect()).unwrap();
    let mut passed = 0;

    // One kept pipe end, at its own number.
    let (r, w) = pipe();
    let server = check_passed(r, w, &[]);
    assert!(server > 0 && server != std::process::id() as i32);
    passed += 1;

    // Several, at numbers the server itself has open (its socket to us, status sockets, the
    // standard streams' neighbours), which the child must see replaced by ours.
    std::thread::sleep(Duration::from_millis(200)); // the last child's status socket closes
    let server_fds = open_fds(&server.to_string());
    let mut numbers = Vec::new();
    let mut extra = Vec::new();
    let mut ours_at = Vec::new();
    for &n in server_fds.iter().filter(|n| **n > 2) {
        if !is_open(n) {
            let (a, b) = pipe();
            // SAFETY: n is free here; the copy of b takes it.
            assert_eq!(unsafe { libc::dup2(b, n) }, n);
            extra.extend([a, b, n]);
            ours_at.push(n);
            numbers.push(n);
        }
        // (a number open here is the library's, e.g. its socket to the server: not ours to pass)
    }
    // The server's socket has the number its end had here, closed here since: free.
    assert!(!ours_at.is_empty(), "no number the server has open is free here: {server_fds:?}");
    assert!(!numbers.is_empty(), "the server has its socket open: {server_fds:?}");
    let (r2, w2) = pipe();
    for _ in 0..3 {
        let (a, b) = pipe();
        extra.extend([a, b]);
        numbers.push(a);
    }
    numbers.push(0); // our stdin replaces the child's (the server's /dev/null or ours)
    assert_eq!(check_passed(r2, w2, &numbers), server);
    passed += 1;

    // A colliding number carries data: the report goes out through a pipe end that sits on a
    // number the server has open (replacing our copy there, closed with `extra` at the end).
    let n = ours_at[0];
    let (r3, w3) = pipe();
    // SAFETY: n holds a copy of one of our pipes; replacing it is ours to do.
    assert_eq!(unsafe { libc::dup2(w3, n) }, n);
    assert_eq!(check_passed(r3, n, &[]), server);
    close(r3);
    close(w3);
    passed += 1;

    // Standard streams redirected for a fork-server child: to a pipe, to a file.
    let (ro, wo) = pipe();
    let dir = std::env::temp_dir().join(format!("mpx-fsfds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err_path = dir.join("err.txt");
    let opts = Options::new().stdout(Stdio::Fd(wo)).stderr(Stdio::File { path: err_path.clone(), append: false });
    let p = process::start(StartMethod::ForkServer, "print", b"to the pipe", &opts).unwrap();
    assert_eq!(p.join(T).unwrap(), 0);
    close(wo);
    let mut got = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        let mut pf = libc::pollfd { fd: ro, events: libc::POLLIN, revents: 0 };
        // SAFETY: pf is one initialised pollfd on our stack, and nfds is 1.
        assert!(unsafe { libc::poll(&mut pf, 1, T.as_millis() as i32) } > 0, "no output");
        // SAFETY: reads at most chunk.len() bytes into the local array chunk.
        let n = unsafe { libc::read(ro, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n <= 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n as usize]);
    }
    close(ro);
    assert_eq!(got, b"to the pipe");
    assert_eq!(std::fs::read_to_string(&err_path).unwrap(), "err:to the pipe");
    // "2>&1" after a redirection: stderr follows the redirected stdout, as spawn and fork do.
    let both = dir.join("both.txt");
    let opts = Options::new().stdout(Stdio::File { path: both.clone(), append: false }).stderr(Stdio::Fd(1));
    let p = process::start(StartMethod::ForkServer, "print", b"x", &opts).unwrap();
    assert_eq!(p.join(T).unwrap(), 0);
    // (stdout is flushed at exit, stderr at once: the order is not fixed)
    let text = std::fs::read_to_string(&both).unwrap();
    assert!(
        text.contains("err:x") && text.replacen("err:x", "", 1) == "x",
        "stderr must follow stdout into the file: {text:?}"
    );
    let e = process::start(
        StartMethod::ForkServer,
        "print",
        b"",
        &Options::new().stdout(Stdio::File { path: dir.join("no/such/dir"), append: false }),
    )
    .unwrap_err();
    assert!(e.message().contains("no/such/dir"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    passed += 1;

    // The most one request carries, and one more.
    // SAFETY: F_DUPFD_CLOEXEC takes integers; w is our open pipe end, and the copies are closed below.
    let many: Vec<RawFd> = (0..253).map(|_| unsafe { libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 3) }).collect();
    assert!(many.iter().all(|n| *n > 2));
    let e = process::start(
        StartMethod::ForkServer,
        "report",
        b"",
        &many.iter().fold(Options::new().keep_fd(w), |o, n| o.keep_fd(*n)),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.message().contains("at most 253"), "{e}");
    assert_eq!(check_passed(r, w, &many[..252]), server);
    for n in many {
        close(n);
    }
    passed += 1;

    // Bad descriptors and options that still apply to spawn only: errors, and the server serves on.
    let e = process::start(StartMethod::ForkServer, "report", b"", &Options::new().keep_fd(w + 5000)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let e = process::start(StartMethod::ForkServer, "report", b"", &Options::new().env("A", "b")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(check_passed(r, w, &[w, w]), server, "a number kept twice");
    passed += 1;

    // Nothing leaks: the server's and our descriptors are back to what they were after many
    // requests (the server closes a child's status socket and pidfd once it reaps it).
    // (the last child's status socket is closed just after its exit code was written)
    std::thread::sleep(Duration::from_millis(200));
    let before_server = open_fds(&server.to_string());
    let before_me = open_fds("self");
    // SAFETY: as above: copies of our open w, closed below.
    let kept: Vec<RawFd> = (0..5).map(|_| unsafe { libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 3) }).collect();
    for _ in 0..40 {
        check_passed(r, w, &kept);
    }
    for n in kept {
        close(n);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(&server.to_string()) != before_server && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(open_fds(&server.to_string()), before_server, "the server's descriptors");
    assert_eq!(open_fds("self"), before_me, "ours");
    passed += 1;

    close(r);
    close(w);
    close(r2);
    close(w2);
    for n in extra {
        close(n);
    }
    println!("forkserver_fds: {passed} passed, 0 failed");
}
