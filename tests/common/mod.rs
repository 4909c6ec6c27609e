//! Helpers shared by the integration tests: unique names, cleanup guards, forked children with
//! bounded waits, a socket to talk to them, hand-made segment files, running the `mpx` CLI with
//! a timeout, and a small JSON reader for its output.
#![allow(dead_code)]

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mpx::object::Header;

/// How long any single wait in a test may take before it counts as a hang.
pub const WAIT: Duration = Duration::from_secs(20);

/// A name no other test (in this process, or a stale one from an earlier run) uses:
/// "t-<tag>-<pid>-<time token>-<counter>".
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    static TOKEN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let token = TOKEN.get_or_init(|| mpx::util::realtime_ns() / 1000 % 1_000_000_000);
    format!("t-{tag}-{}-{token}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn shm_path(name: &str) -> String {
    format!("/dev/shm/mpx.{name}")
}

/// Whether a directory entry exists for the name (of any type).
pub fn exists(name: &str) -> bool {
    std::fs::symlink_metadata(shm_path(name)).is_ok()
}

/// Removes the names it guards when dropped (also when a test fails), so nothing is left in
/// /dev/shm.
#[derive(Default)]
pub struct Names(pub Vec<String>);

impl Names {
    pub fn new() -> Names {
        Names(Vec::new())
    }
    /// A fresh unique name, guarded.
    pub fn add(&mut self, tag: &str) -> String {
        let n = unique(tag);
        self.0.push(n.clone());
        n
    }
    /// Guards an existing name.
    pub fn guard(&mut self, name: &str) -> String {
        self.0.push(name.to_string());
        name.to_string()
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(shm_path(n));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// A forked child. Dropping it kills and reaps it if it was not waited for, so a failing test
/// leaves no process behind.
pub struct Child {
    pub pid: i32,
    done: bool,
}

/// waitpid with a timeout: polls with WNOHANG; on timeout kills the child (SIGKILL), reaps it
/// and returns None.
pub fn waitpid_timeout(pid: i32, timeout: Duration) -> Option<Exit> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(decode(status));
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                panic!("waitpid({pid}): {e}");
            }
        }
        if Instant::now() >= deadline {
            // SAFETY: pid is our child and waitpid above has not reaped it, so the number is still its own; status
            // is a local.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn decode(status: i32) -> Exit {
    if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    }
}

impl Child {
    /// Waits (bounded by `timeout`) for the child to end; a hang is a test failure.
    pub fn wait(&mut self, timeout: Duration) -> Exit {
        assert!(!self.done, "child {} already reaped", self.pid);
        let r = waitpid_timeout(self.pid, timeout);
        self.done = true;
        r.unwrap_or_else(|| panic!("child {} did not exit within {timeout:?} (killed)", self.pid))
    }

    /// Waits and asserts a clean exit (status 0).
    pub fn join_ok(&mut self) {
        let pid = self.pid;
        assert_eq!(self.wait(WAIT), Exit::Code(0), "child {pid} failed (its reason is on stderr)");
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill9(&mut self) {
        // SAFETY: signalling our own unreaped child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        assert_eq!(self.wait(WAIT), Exit::Signal(libc::SIGKILL));
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.done {
            // SAFETY: done is false, so pid is our child, not yet reaped: the number still names it. kill takes no
            // pointers.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = waitpid_timeout(self.pid, WAIT);
        }
    }
}

/// Closes every descriptor >= 3 except those in `keep`: a forked child must not keep other
/// tests' segments open (their liveness locks would make them look in use).
fn close_all_except(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.to_vec();
    keep.sort_unstable();
    let mut lo: u32 = 3;
    for &k in &keep {
        let k = k as u32;
        if k >= lo {
            if k > lo {
                // SAFETY: close_range takes integers only. This is the freshly forked child: what it closes is owned by
                // objects copied from the parent, which the child never uses (fork's contract: `f` uses only what it
                // opens and `keep`).
                unsafe { libc::syscall(libc::SYS_close_range, lo, k - 1, 0u32) };
            }
            lo = k + 1;
        }
    }
    // SAFETY: as above: integers only, and it closes only inherited descriptors the child will not use.
    let r = unsafe { libc::syscall(libc::SYS_close_range, lo, u32::MAX, 0u32) };
    if r != 0 {
        // Kernel without close_range (< 5.9): close what /proc/self/fd lists.
        let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
            .unwrap_or_default();
        for fd in fds {
            if fd >= 3 && !keep.contains(&fd) {
                // SAFETY: as for close_range: fd is an inherited descriptor the forked child will not use.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// Unmaps every mpx segment inherited from the parent. A mapping holds a reference to its open
/// file description, and with it the parent's liveness lock: without this, a child would keep
/// every object mapped anywhere in the test process "in use" until it exits.
fn unmap_inherited_segments(except: &[&str]) {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    for line in maps.lines() {
        let path = line.split_whitespace().nth(5).unwrap_or("");
        if !(path.starts_with("/dev/shm/mpx.") || path.starts_with("/memfd:mpx:")) {
            continue;
        }
        if except.iter().any(|n| path == shm_path(n)) {
            continue;
        }
        let range = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = range.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                // SAFETY: [a, b) is a whole mpx segment mapping listed in /proc/self/maps; in this forked child only
                // the parent's copied handles refer to it, and the child never uses them (fork's contract).
                unsafe { libc::munmap(a as *mut libc::c_void, b - a) };
            }
        }
    }
}

/// Forks a child that keeps only the descriptors in `keep` (and stdio) and no inherited segment
/// mappings, runs `f` and exits: 0 if `f` returned Ok, 1 (reason on stderr) if Err, 101 if it
/// panicked. The child never returns into the test harness. `f` must not use segment handles
/// captured from the parent (their mappings are gone); it opens what it needs itself.
pub fn fork(keep: &[RawFd], f: impl FnOnce() -> Result<(), String>) -> Child {
    fork_impl(keep, &[], f)
}

/// Like [`fork`], but the child also keeps its inherited mappings of the named objects, as a
/// plain fork() in a user's program would (the other tests' objects are still dropped).
pub fn fork_keeping_mappings(keep: &[RawFd], names: &[&str], f: impl FnOnce() -> Result<(), String>) -> Child {
    fork_impl(keep, names, f)
}

/// Held while a forked child still has the parent's descriptors and mappings (from fork() until
/// it has dropped them), and by [`no_fork`]. In that window the child shares every open object
/// of every test thread, so a last close elsewhere would find the object still in use.
static FORK_WINDOW: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// For tests whose outcome depends on who holds an object (unlink on last close): while the
/// guard lives, no other test thread of this binary is inside a fork's inheritance window.
/// Take it after this test's own forks (fork() takes it too).
pub fn no_fork() -> std::sync::MutexGuard<'static, ()> {
    FORK_WINDOW.lock().unwrap_or_else(|e| e.into_inner())
}

fn fork_impl(keep: &[RawFd], keep_mapped: &[&str], f: impl FnOnce() -> Result<(), String>) -> Child {
    let _window = no_fork();
    let (clean_r, clean_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2");
    // SAFETY: the child only runs `f` and _exits; glibc keeps malloc usable after fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // Behave like an independent process: no inherited handles or mappings, but for those
        // the test asks to keep. Then tell the parent the inheritance window is over.
        let mut keep_all = keep.to_vec();
        keep_all.push(clean_w.as_raw_fd());
        close_all_except(&keep_all);
        unmap_inherited_segments(keep_mapped);
        // SAFETY: writes 1 byte from a static literal to clean_w, which close_all_except kept open.
        unsafe { libc::write(clean_w.as_raw_fd(), b"c".as_ptr().cast(), 1) };
        drop(clean_w);
        std::mem::forget(clean_r); // already closed by close_all_except
        let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(Ok(())) => 0,
            Ok(Err(msg)) => {
                let m = format!("child {}: {msg}\n", std::process::id());
                // SAFETY: writes m.len() bytes from the live String m to stderr.
                unsafe { libc::write(2, m.as_ptr().cast(), m.len()) };
                1
            }
            Err(_) => 101,
        };
        // SAFETY: _exit has no preconditions; it keeps the child from returning into the test harness.
        unsafe { libc::_exit(code) };
    }
    drop(clean_w);
    // Bounded: a child that dies before writing closes the pipe (read returns 0).
    let mut pfd = libc::pollfd { fd: clean_r.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: pfd is one initialised pollfd on our stack, and nfds is 1.
    unsafe { libc::poll(&mut pfd, 1, WAIT.as_millis() as libc::c_int) };
    Child { pid, done: false }
}

/// A pid that belonged to a process that has exited and been reaped (for "dead creator" cases).
pub fn dead_pid() -> i32 {
    let mut c = fork(&[], || Ok(()));
    c.join_ok();
    c.pid
}

/// Kills a process that is not our child (e.g. a grandchild) when dropped.
pub struct KillOnDrop(pub i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0 > 0 {
            // SAFETY: kill takes no pointers. The pid is a grandchild the test started (not our child, so we cannot
            // pin its number; it is only used while the test believes it alive).
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

/// One end of a stream socketpair: how a test and its child say "ready", "go", and pass small
/// numbers. Every receive is bounded.
pub struct Chan {
    fd: OwnedFd,
}

/// (parent end, child end).
pub fn chan() -> (Chan, Chan) {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
        .unwrap_or_else(|e| panic!("socketpair: {e}"));
    (Chan { fd: a }, Chan { fd: b })
}

impl Chan {
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, v: u64) {
        let b = v.to_le_bytes();
        // SAFETY: writing our own buffer to our own socket.
        let n = unsafe { libc::send(self.fd(), b.as_ptr().cast(), 8, libc::MSG_NOSIGNAL) };
        assert_eq!(n, 8, "send: {}", std::io::Error::last_os_error());
    }

    /// Sends, reporting failure instead of panicking (for children).
    pub fn try_send(&self, v: u64) -> Result<(), String> {
        let b = v.to_le_bytes();
        // SAFETY: sends the 8 bytes of the local array b on our own socket.
        let n = unsafe { libc::send(self.fd(), b.as_ptr().cast(), 8, libc::MSG_NOSIGNAL) };
        if n == 8 {
            Ok(())
        } else {
            Err(format!("send: {}", std::io::Error::last_os_error()))
        }
    }

    /// Receives one value within `timeout`; Err on timeout or when the peer is gone.
    pub fn recv(&self, timeout: Duration) -> Result<u64, String> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd { fd: self.fd(), events: libc::POLLIN, revents: 0 };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r == 0 {
                return Err(format!("no message within {timeout:?}"));
            }
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(format!("poll: {}", std::io::Error::last_os_error()));
            }
            // SAFETY: buf[got..] is 8 - got writable bytes of a local array.
            let n = unsafe { libc::recv(self.fd(), buf[got..].as_mut_ptr().cast(), 8 - got, 0) };
            if n == 0 {
                return Err("peer closed the channel".into());
            }
            if n < 0 {
                return Err(format!("recv: {}", std::io::Error::last_os_error()));
            }
            got += n as usize;
        }
        Ok(u64::from_le_bytes(buf))
    }

    /// Receives and expects `want` (panics otherwise: for the test side).
    pub fn expect(&self, want: u64) {
        match self.recv(WAIT) {
            Ok(v) => assert_eq!(v, want, "unexpected message from the peer"),
            Err(e) => panic!("waiting for message {want}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-made segments

/// Offset of the ready word in the header (see src/object/header.rs).
pub const READY_OFFSET: u64 = 100;

/// A valid header for a buffer of `data_size` bytes at offset 4096, as `Segment::create` would
/// write it, but with the ready word left 0.
pub fn buffer_header(name: &str, data_size: u64, creator_pid: i32) -> Header {
    // SAFETY: Header is plain data (integers, byte arrays, an AtomicU32); all-zero is valid.
    let mut h: Header = unsafe { std::mem::zeroed() };
    h.magic = *b"MPXSEG\0\x01";
    h.layout_version = mpx::object::LAYOUT_VERSION;
    h.kind = mpx::Kind::Buffer as u32;
    h.flags = 0;
    h.header_size = mpx::object::HEADER_SIZE as u32;
    h.data_offset = 4096;
    h.data_size = data_size;
    h.total_size = 4096 + data_size;
    h.creator_pid = creator_pid;
    h.name_len = name.len() as u32;
    h.name[..name.len()].copy_from_slice(name.as_bytes());
    h.created_ns = mpx::util::realtime_ns();
    h.checksum = h.compute_checksum();
    h
}

pub fn header_bytes(h: &Header) -> &[u8] {
    // SAFETY: Header is repr(C), HEADER_SIZE bytes, no padding holes that matter for a file.
    unsafe { std::slice::from_raw_parts((h as *const Header).cast::<u8>(), mpx::object::HEADER_SIZE) }
}

/// Creates /dev/shm/mpx.<name> (O_EXCL, mode 0600) holding `header` then zeros up to `len`.
pub fn write_segment_file(name: &str, header: &[u8], len: u64) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(shm_path(name))
        .unwrap_or_else(|e| panic!("creating {}: {e}", shm_path(name)));
    f.write_all(header).unwrap();
    f.set_len(len).unwrap();
}

/// Overwrites bytes of a segment file in place.
pub fn patch(name: &str, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(shm_path(name)).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// Reads a segment file's header into a Header value.
pub fn read_header(name: &str) -> Header {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(shm_path(name)).unwrap();
    // SAFETY: all-zero is a valid Header; we then fill its bytes from the file.
    let mut h: Header = unsafe { std::mem::zeroed() };
    // SAFETY: h is a live local of HEADER_SIZE bytes with no padding (the layout asserts in src/object/header.rs); any
    // bytes make a valid Header (integers, byte arrays, an AtomicU32), and h is not used while the slice lives.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut((&mut h as *mut Header).cast::<u8>(), mpx::object::HEADER_SIZE) };
    f.read_exact_at(bytes, 0).unwrap();
    h
}

/// Rewrites a segment's header after `edit`, recomputing the checksum if `fix_checksum`.
pub fn edit_header(name: &str, fix_checksum: bool, edit: impl FnOnce(&mut Header)) {
    let mut h = read_header(name);
    edit(&mut h);
    if fix_checksum {
        h.checksum = h.compute_checksum();
    }
    patch(name, 0, header_bytes(&h));
}

// ---------------------------------------------------------------------------------------------
// The CLI

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs the built `mpx` with `args`, bounded by WAIT (killed and failed on timeout).
pub fn mpx(args: &[&str]) -> Run {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mpx"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning mpx");
    // Read both pipes on threads so a large output cannot block the child.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for mpx") {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mpx {args:?} did not finish within {WAIT:?} (killed)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = t_out.join().unwrap();
    let stderr = t_err.join().unwrap();
    use std::os::unix::process::ExitStatusExt;
    let code = status.code().unwrap_or_else(|| -status.signal().unwrap_or(0));
    Run { code, stdout, stderr }
}

/// Runs `mpx` and parses its stdout as JSON; the command must succeed.
pub fn mpx_json(args: &[&str]) -> Json {
    let r = mpx(args);
    assert_eq!(r.code, 0, "{r:?}");
    Json::parse(&r.stdout).unwrap_or_else(|e| panic!("invalid JSON from mpx {args:?}: {e}\n{}", r.stdout))
}

// ---------------------------------------------------------------------------------------------
// A small JSON reader (no dependencies), strict enough to catch malformed output.

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number's text, so 64-bit integers stay exact.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        p.ws();
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(v)
    }

    /// The member `key` of an object (panics if absent: tests want to know).
    pub fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(m) => {
                m.iter().find(|(k, _)| k == key).map(|(_, v)| v).unwrap_or_else(|| panic!("no key {key:?} in {self:?}"))
            }
            _ => panic!("not an object: {self:?}"),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        matches!(self, Json::Obj(m) if m.iter().any(|(k, _)| k == key))
    }

    pub fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }

    pub fn u64(&self) -> u64 {
        match self {
            Json::Num(n) => n.parse().unwrap_or_else(|_| panic!("not a u64: {n}")),
            _ => panic!("not a number: {self:?}"),
        }
    }

    pub fn i64(&self) -> i64 {
        match self {
            Json::Num(n) => n.parse().unwrap_or_else(|_| panic!("not an i64: {n}")),
            _ => panic!("not a number: {self:?}"),
        }
    }

    pub fn bool(&self) -> bool {
        match self {
            Json::Bool(b) => *b,
            _ => panic!("not a bool: {self:?}"),
        }
    }

    pub fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(v) => v,
            _ => panic!("not an array: {self:?}"),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// In an array of objects, the one whose "name" is `name`.
    pub fn find_named(&self, name: &str) -> Option<&Json> {
        self.arr().iter().find(|o| o.get("name").str() == name)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> Result<(), String> {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(format!("expected {lit:?} at byte {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        match self.s.get(self.i).copied() {
            None => Err("unexpected end".into()),
            Some(b'n') => self.eat("null").map(|_| Json::Null),
            Some(b't') => self.eat("true").map(|_| Json::Bool(true)),
            Some(b'f') => self.eat("false").map(|_| Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(v));
                }
                loop {
                    self.ws();
                    v.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(v));
                        }
                        _ => return Err(format!("expected , or ] at byte {}", self.i)),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut m = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    self.eat(":")?;
                    self.ws();
                    let v = self.value()?;
                    if m.iter().any(|(k2, _)| *k2 == k) {
                        return Err(format!("duplicate key {k:?}"));
                    }
                    m.push((k, v));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(m));
                        }
                        _ => return Err(format!("expected , or }} at byte {}", self.i)),
                    }
                }
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len() && matches!(self.s[self.i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i]).unwrap().to_string();
                t.parse::<f64>().map_err(|_| format!("bad number {t:?}"))?;
                Ok(Json::Num(t))
            }
            Some(c) => Err(format!("unexpected {:?} at byte {}", c as char, self.i)),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat("\"")?;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("unterminated escape")?;
                    self.i += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = std::str::from_utf8(self.s.get(self.i..self.i + 4).ok_or("short \\u")?)
                                .map_err(|_| "bad \\u")?;
                            let cp = u32::from_str_radix(hex, 16).map_err(|_| "bad \\u")?;
                            self.i += 4;
                            let ch = char::from_u32(cp).ok_or("surrogate \\u not supported")?;
                            let mut b = [0; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        _ => return Err(format!("bad escape at byte {}", self.i)),
                    }
                }
                c if c < 0x20 => return Err(format!("raw control character in string at byte {}", self.i)),
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| "string is not UTF-8".into())
    }
}

/// Polls `cond` until true or `timeout`; returns whether it became true.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
