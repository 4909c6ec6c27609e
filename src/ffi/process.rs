//! C ABI for processes (`mpx_proc_opts_*`, `mpx_spawn`, `mpx_fork`, `mpx_start`, `mpx_init`,
//! `mpx_process_*`, `mpx_current_*`).

use std::ffi::{c_char, c_int, c_void, CStr, CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use super::handle::{self, plain_handle};
use super::{args, guard, guard_void, mpx_status, MPX_OK};
use crate::process::{self, Options, Process, StartMethod, Stdio};
use crate::{err, Result};

/// Start method: fork the calling process (fast; the child inherits everything).
pub const MPX_START_FORK: u32 = 0;
/// Start method: re-execute this program, which dispatches to the entry from `mpx_init`.
pub const MPX_START_SPAWN: u32 = 1;
/// Start method: ask the fork server (started on first use) to fork the child.
pub const MPX_START_FORKSERVER: u32 = 2;

/// Standard stream mode: the parent's stream (default).
pub const MPX_STDIO_INHERIT: u32 = 0;
/// Standard stream mode: /dev/null.
pub const MPX_STDIO_NULL: u32 = 1;
/// Standard stream mode: a descriptor of the parent.
pub const MPX_STDIO_FD: u32 = 2;

/// Options for starting a process (opaque). NULL wherever options are taken means defaults.
pub struct mpx_proc_opts {
    inner: Options,
}

/// A started process (opaque). `mpx_process_close` frees it; a child still running is then
/// reaped in the background, never left a zombie.
pub struct mpx_process {
    inner: Process,
    name: CString,
}

plain_handle!(mpx_proc_opts, "opts");
plain_handle!(mpx_process, "proc");

impl mpx_process {
    fn new(inner: Process) -> mpx_process {
        let name = CString::new(inner.name()).unwrap_or_default();
        mpx_process { inner, name }
    }
}

/// A function run in a forked child: its return value is the child's exit code.
pub type mpx_child_fn = Option<unsafe extern "C" fn(user: *mut c_void) -> c_int>;

/// An entry point: receives the argument bytes given at start; returns the exit code.
pub type mpx_entry_fn = Option<unsafe extern "C" fn(arg: *const u8, len: usize, user: *mut c_void) -> c_int>;

unsafe fn opts_of(p: *const mpx_proc_opts) -> Options {
    args::opt_handle(p).map(|o| o.inner.clone()).unwrap_or_default()
}

unsafe fn opts_mut<'a>(p: *mut mpx_proc_opts) -> Result<&'a mut Options> {
    p.as_mut().map(|o| &mut o.inner).ok_or_else(|| err!(Invalid, "opts is NULL"))
}

/// Reads a NULL-terminated array of C strings (at most 1<<20 entries).
unsafe fn str_array(p: *const *const c_char, what: &str) -> Result<Vec<OsString>> {
    if p.is_null() {
        return Err(err!(Invalid, "{what} is NULL"));
    }
    let mut v = Vec::new();
    for i in 0..(1usize << 20) {
        let s = *p.add(i);
        if s.is_null() {
            return Ok(v);
        }
        v.push(OsString::from_vec(CStr::from_ptr(s).to_bytes().to_vec()));
    }
    Err(err!(Invalid, "{what} is not NULL-terminated"))
}

fn os(s: &str) -> OsString {
    OsString::from(s)
}

/// Creates an options object with defaults (inherit everything, not daemonic).
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_new(out: *mut *mut mpx_proc_opts) -> mpx_status {
    guard("mpx_proc_opts_new", || {
        args::out(out, "out")?;
        Ok(handle::put(out, mpx_proc_opts { inner: Options::new() }))
    })
}

/// Frees an options object. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_free(opts: *mut mpx_proc_opts) {
    handle::close("mpx_proc_opts_free", opts)
}

/// Sets the child's name (what `mpx_current_name()` returns in it).
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_set_name(opts: *mut mpx_proc_opts, name: *const c_char) -> mpx_status {
    guard("mpx_proc_opts_set_name", || {
        let o = opts_mut(opts)?;
        o.name = Some(args::string(name, "name")?.to_string());
        Ok(MPX_OK)
    })
}

/// Makes the child daemonic: it dies with its parent (even a SIGKILLed one) and is terminated
/// when the parent exits normally.
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_set_daemon(opts: *mut mpx_proc_opts, daemon: bool) -> mpx_status {
    guard("mpx_proc_opts_set_daemon", || {
        opts_mut(opts)?.daemon = daemon;
        Ok(MPX_OK)
    })
}

/// Sets the working directory (spawn only).
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_set_cwd(opts: *mut mpx_proc_opts, dir: *const c_char) -> mpx_status {
    guard("mpx_proc_opts_set_cwd", || {
        let o = opts_mut(opts)?;
        o.cwd = Some(PathBuf::from(args::string(dir, "dir")?));
        Ok(MPX_OK)
    })
}

/// Sets an environment variable for the child (spawn only). Replaces an earlier setting.
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_setenv(
    opts: *mut mpx_proc_opts,
    key: *const c_char,
    value: *const c_char,
) -> mpx_status {
    guard("mpx_proc_opts_setenv", || {
        let o = opts_mut(opts)?;
        let (k, v) = (args::string(key, "key")?, args::string(value, "value")?);
        if k.is_empty() || k.contains('=') {
            return Err(err!(Invalid, "environment name '{k}' is empty or contains '='"));
        }
        o.env_set.retain(|(k2, _)| k2 != k);
        o.env_set.push((os(k), os(v)));
        Ok(MPX_OK)
    })
}

/// Removes an inherited environment variable from the child's environment (spawn only).
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_unsetenv(opts: *mut mpx_proc_opts, key: *const c_char) -> mpx_status {
    guard("mpx_proc_opts_unsetenv", || {
        let o = opts_mut(opts)?;
        o.env_remove.push(os(args::string(key, "key")?));
        Ok(MPX_OK)
    })
}

/// Starts the child from an empty environment instead of the parent's (spawn only); variables
/// set with `mpx_proc_opts_setenv` are still added.
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_clearenv(opts: *mut mpx_proc_opts) -> mpx_status {
    guard("mpx_proc_opts_clearenv", || {
        opts_mut(opts)?.env_clear = true;
        Ok(MPX_OK)
    })
}

/// Keeps descriptor `fd` open in the child at the same number, without close-on-exec. With
/// `mpx_spawn` and MPX_START_SPAWN every other descriptor above 2 is closed at exec. With
/// MPX_START_FORKSERVER the descriptors travel with the request (at most 253 per start, more is
/// MPX_E_INVALID) and replace, in the child, whatever the server had open at those numbers.
/// Not for `mpx_fork` (a forked child inherits everything).
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_keep_fd(opts: *mut mpx_proc_opts, fd: c_int) -> mpx_status {
    guard("mpx_proc_opts_keep_fd", || {
        let o = opts_mut(opts)?;
        if fd < 0 {
            return Err(err!(Invalid, "keep_fd: {fd} is not a descriptor"));
        }
        o.keep_fds.push(fd);
        Ok(MPX_OK)
    })
}

/// Redirects standard stream `which` (0 stdin, 1 stdout, 2 stderr): `mode` is
/// MPX_STDIO_INHERIT, MPX_STDIO_NULL or MPX_STDIO_FD (then `fd` is duplicated onto it).
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_set_stdio(
    opts: *mut mpx_proc_opts,
    which: c_int,
    mode: u32,
    fd: c_int,
) -> mpx_status {
    guard("mpx_proc_opts_set_stdio", || {
        let o = opts_mut(opts)?;
        let s = match mode {
            MPX_STDIO_INHERIT => Stdio::Inherit,
            MPX_STDIO_NULL => Stdio::Null,
            MPX_STDIO_FD if fd >= 0 => Stdio::Fd(fd),
            MPX_STDIO_FD => return Err(err!(Invalid, "stdio: {fd} is not a descriptor")),
            m => return Err(err!(Invalid, "stdio: unknown mode {m}")),
        };
        set_stream(o, which, s)
    })
}

/// Redirects standard stream `which` to a file (created if missing; truncated unless `append`).
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_set_stdio_file(
    opts: *mut mpx_proc_opts,
    which: c_int,
    path: *const c_char,
    append: bool,
) -> mpx_status {
    guard("mpx_proc_opts_set_stdio_file", || {
        let o = opts_mut(opts)?;
        let path = PathBuf::from(args::string(path, "path")?);
        set_stream(o, which, Stdio::File { path, append })
    })
}

fn set_stream(o: &mut Options, which: c_int, s: Stdio) -> Result<mpx_status> {
    match which {
        0 => o.stdin = s,
        1 => o.stdout = s,
        2 => o.stderr = s,
        w => return Err(err!(Invalid, "stdio: stream {w} is not 0, 1 or 2")),
    }
    Ok(MPX_OK)
}

/// Restricts the child to the `n` CPUs listed in `cpus`.
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_set_affinity(
    opts: *mut mpx_proc_opts,
    cpus: *const c_int,
    n: usize,
) -> mpx_status {
    guard("mpx_proc_opts_set_affinity", || {
        let o = opts_mut(opts)?;
        if n == 0 {
            return Err(err!(Invalid, "affinity: cpus is empty"));
        }
        let list = args::array(cpus, n, "cpus")?;
        if let Some(c) = list.iter().find(|c| **c < 0) {
            return Err(err!(Invalid, "affinity: CPU {c} is negative"));
        }
        o.affinity = Some(list.iter().map(|c| *c as usize).collect());
        Ok(MPX_OK)
    })
}

/// Sets the child's nice value (-20..=19).
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_set_nice(opts: *mut mpx_proc_opts, nice: c_int) -> mpx_status {
    guard("mpx_proc_opts_set_nice", || {
        opts_mut(opts)?.nice = Some(nice);
        Ok(MPX_OK)
    })
}

/// Puts the child in process group `pgid` (0: a new group led by the child).
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_set_process_group(opts: *mut mpx_proc_opts, pgid: c_int) -> mpx_status {
    guard("mpx_proc_opts_set_process_group", || {
        opts_mut(opts)?.process_group = Some(pgid);
        Ok(MPX_OK)
    })
}

/// Starts the child in a new session (setsid).
#[no_mangle]
pub unsafe extern "C" fn mpx_proc_opts_set_new_session(opts: *mut mpx_proc_opts, yes: bool) -> mpx_status {
    guard("mpx_proc_opts_set_new_session", || {
        opts_mut(opts)?.new_session = yes;
        Ok(MPX_OK)
    })
}

/// Starts an executable. `program` is a path, or a name looked up in PATH; `argv` is a
/// NULL-terminated array whose first element is the name the program sees. `opts` may be NULL.
/// A program that does not exist is MPX_E_NOT_FOUND here (not a child exiting 127); one that
/// is not executable is MPX_E_PERMISSION.
#[no_mangle]
pub unsafe extern "C" fn mpx_spawn(
    program: *const c_char,
    argv: *const *const c_char,
    opts: *const mpx_proc_opts,
    out: *mut *mut mpx_process,
) -> mpx_status {
    guard("mpx_spawn", || {
        args::out(out, "out")?;
        let program = args::string(program, "program")?;
        let args = str_array(argv, "argv")?;
        let p = process::spawn(program, &args, &opts_of(opts))?;
        Ok(handle::put(out, mpx_process::new(p)))
    })
}

/// Forks a child that runs `fn(user)`; its return value is the exit code (0..255). The child
/// flushes stdio and leaves with _exit, so the parent's atexit handlers do not run in it. The
/// env and keep_fd options do not apply (a forked child inherits everything): MPX_E_INVALID.
#[no_mangle]
pub unsafe extern "C" fn mpx_fork(
    func: mpx_child_fn,
    user: *mut c_void,
    opts: *const mpx_proc_opts,
    out: *mut *mut mpx_process,
) -> mpx_status {
    guard("mpx_fork", || {
        args::out(out, "out")?;
        let f = func.ok_or_else(|| err!(Invalid, "fn is NULL"))?;
        let user = user as usize;
        let p = process::fork(&opts_of(opts), move || f(user as *mut c_void))?;
        Ok(handle::put(out, mpx_process::new(p)))
    })
}

/// Registers (or replaces) a named entry point. Register every entry, then call `mpx_init`.
#[no_mangle]
pub unsafe extern "C" fn mpx_entry_register(name: *const c_char, func: mpx_entry_fn, user: *mut c_void) -> mpx_status {
    guard("mpx_entry_register", || {
        let name = args::string(name, "name")?;
        let f = func.ok_or_else(|| err!(Invalid, "fn is NULL"))?;
        let user = user as usize;
        process::register(name, move |arg| f(arg.as_ptr(), arg.len(), user as *mut c_void))?;
        Ok(MPX_OK)
    })
}

/// Call first thing in main, after registering entry points. In a normal run it records how to
/// re-execute the program and returns MPX_OK. In a child started by MPX_START_SPAWN it runs the
/// requested entry and exits with its code; in the fork server it serves and exits: in those
/// cases it does not return.
#[no_mangle]
pub unsafe extern "C" fn mpx_init(argc: c_int, argv: *const *const c_char) -> mpx_status {
    guard("mpx_init", || {
        if argc < 0 || (argc > 0 && argv.is_null()) {
            return Err(err!(Invalid, "argc/argv are invalid"));
        }
        let mut args = Vec::with_capacity(argc as usize);
        for i in 0..argc as usize {
            let s = *argv.add(i);
            if s.is_null() {
                break;
            }
            args.push(OsString::from_vec(CStr::from_ptr(s).to_bytes().to_vec()));
        }
        process::init(args)?;
        Ok(MPX_OK)
    })
}

/// Starts registered entry `entry` with `len` argument bytes at `arg` by `method`
/// (MPX_START_FORK, MPX_START_SPAWN or MPX_START_FORKSERVER). An entry not registered in this
/// program is MPX_E_NOT_FOUND; spawn and forkserver need `mpx_init` first (MPX_E_STATE).
/// Options: fork refuses env and keep_fd; forkserver takes keep_fd and stdio (passed with the
/// request) but refuses env and cwd (MPX_E_INVALID): its child is a copy of the server.
#[no_mangle]
pub unsafe extern "C" fn mpx_start(
    method: u32,
    entry: *const c_char,
    arg: *const u8,
    len: usize,
    opts: *const mpx_proc_opts,
    out: *mut *mut mpx_process,
) -> mpx_status {
    guard("mpx_start", || {
        args::out(out, "out")?;
        let method = match method {
            MPX_START_FORK => StartMethod::Fork,
            MPX_START_SPAWN => StartMethod::Spawn,
            MPX_START_FORKSERVER => StartMethod::ForkServer,
            m => return Err(err!(Invalid, "unknown start method {m}")),
        };
        let entry = args::string(entry, "entry")?;
        let bytes = args::bytes(arg.cast(), len, "arg")?;
        let p = process::start(method, entry, bytes, &opts_of(opts))?;
        Ok(handle::put(out, mpx_process::new(p)))
    })
}

/// Sets the program the fork server runs instead of re-executing this one (NULL-terminated
/// argv; argv[0] is the program). Bindings use it: Python's server is an interpreter that calls
/// `mpx_forkserver_serve`. With a custom program, entries are resolved by the server.
#[no_mangle]
pub unsafe extern "C" fn mpx_forkserver_set_program(argv: *const *const c_char) -> mpx_status {
    guard("mpx_forkserver_set_program", || {
        process::forkserver::set_program(str_array(argv, "argv")?)?;
        Ok(MPX_OK)
    })
}

/// The fork server loop, for a custom server program: serves requests on descriptor `fd` (the
/// value of the MPX_FORKSERVER_FD environment variable). Returns MPX_OK only in a forked child,
/// with the requested entry name and argument bytes in `*entry`, `*arg`, `*len` (free both with
/// `mpx_free`); the child runs it and exits. Returns MPX_E_CLOSED in the server once the client
/// has gone away: the server should then exit. MPX_E_INVALID if `fd` is negative or not open.
#[no_mangle]
pub unsafe extern "C" fn mpx_forkserver_serve(
    fd: c_int,
    entry: *mut *mut c_char,
    arg: *mut *mut u8,
    len: *mut usize,
) -> mpx_status {
    guard("mpx_forkserver_serve", || {
        args::out(entry, "entry")?;
        args::out(arg, "arg")?;
        args::out(len, "len")?;
        let req = process::forkserver::serve(fd)?;
        let e = CString::new(req.entry).map_err(|_| err!(Corrupt, "entry name has a NUL"))?;
        *entry = super::alloc::malloc_copy(e.as_bytes_with_nul()).cast();
        *arg = super::alloc::malloc_copy(&req.arg);
        *len = req.arg.len();
        Ok(MPX_OK)
    })
}

/// Takes charge of a child forked by other means (e.g. Python's os.fork): `pid` must be a child
/// of the calling process. Gives join, exit codes, signals and the sentinel. `name` may be NULL:
/// the process is then named "Process-<pid>".
#[no_mangle]
pub unsafe extern "C" fn mpx_process_adopt(pid: c_int, name: *const c_char, out: *mut *mut mpx_process) -> mpx_status {
    guard("mpx_process_adopt", || {
        args::out(out, "out")?;
        let name = if name.is_null() { None } else { Some(args::string(name, "name")?.to_string()) };
        Ok(handle::put(out, mpx_process::new(Process::adopt(pid, name)?)))
    })
}

/// The process id, or -1 if `proc` is NULL.
#[no_mangle]
pub unsafe extern "C" fn mpx_process_pid(proc_: *const mpx_process) -> c_int {
    args::opt_handle(proc_).map_or(-1, |p| p.inner.pid())
}

/// The process's name, or NULL if `proc` is NULL. Valid until `mpx_process_close`.
#[no_mangle]
pub unsafe extern "C" fn mpx_process_name(proc_: *const mpx_process) -> *const c_char {
    args::opt_handle(proc_).map_or(std::ptr::null(), |p| p.name.as_ptr())
}

/// Waits up to `timeout_ns` (MPX_FOREVER blocks, 0 polls) for the process to end and writes its
/// exit code to `*exitcode` if not NULL: the exit status, or minus the signal number that killed
/// it. MPX_E_TIMEOUT if it is still running.
#[no_mangle]
pub unsafe extern "C" fn mpx_process_join(
    proc_: *const mpx_process,
    timeout_ns: i64,
    exitcode: *mut c_int,
) -> mpx_status {
    guard("mpx_process_join", || {
        let p = args::handle(proc_)?;
        let code = p.inner.join(args::timeout(timeout_ns)?)?;
        if !exitcode.is_null() {
            *exitcode = code;
        }
        Ok(MPX_OK)
    })
}

/// Writes whether the process is still running to `*alive`.
#[no_mangle]
pub unsafe extern "C" fn mpx_process_is_alive(proc_: *const mpx_process, alive: *mut bool) -> mpx_status {
    guard("mpx_process_is_alive", || {
        args::out(alive, "alive")?;
        *alive = args::handle(proc_)?.inner.is_alive()?;
        Ok(MPX_OK)
    })
}

/// Writes whether the process has ended to `*finished` and, if it has, its exit code to
/// `*exitcode` (status, or minus the signal number). Never blocks.
#[no_mangle]
pub unsafe extern "C" fn mpx_process_exitcode(
    proc_: *const mpx_process,
    finished: *mut bool,
    exitcode: *mut c_int,
) -> mpx_status {
    guard("mpx_process_exitcode", || {
        args::out(finished, "finished")?;
        args::out(exitcode, "exitcode")?;
        let code = args::handle(proc_)?.inner.exitcode()?;
        *finished = code.is_some();
        if let Some(c) = code {
            *exitcode = c;
        }
        Ok(MPX_OK)
    })
}

/// Sends signal `sig` to the process (not to a process already reaped: that is a no-op).
#[no_mangle]
pub unsafe extern "C" fn mpx_process_signal(proc_: *const mpx_process, sig: c_int) -> mpx_status {
    guard("mpx_process_signal", || {
        args::handle(proc_)?.inner.signal(sig)?;
        Ok(MPX_OK)
    })
}

/// SIGTERM.
#[no_mangle]
pub unsafe extern "C" fn mpx_process_terminate(proc_: *const mpx_process) -> mpx_status {
    mpx_process_signal(proc_, libc::SIGTERM)
}

/// SIGKILL.
#[no_mangle]
pub unsafe extern "C" fn mpx_process_kill(proc_: *const mpx_process) -> mpx_status {
    mpx_process_signal(proc_, libc::SIGKILL)
}

/// SIGINT.
#[no_mangle]
pub unsafe extern "C" fn mpx_process_interrupt(proc_: *const mpx_process) -> mpx_status {
    mpx_process_signal(proc_, libc::SIGINT)
}

/// Writes a descriptor that becomes readable when the process ends to `*fd` (a pidfd, or for a
/// fork-server child the status socket), for poll/epoll/asyncio. The handle owns it.
#[no_mangle]
pub unsafe extern "C" fn mpx_process_sentinel(proc_: *const mpx_process, fd: *mut c_int) -> mpx_status {
    guard("mpx_process_sentinel", || {
        args::out(fd, "fd")?;
        *fd = args::handle(proc_)?.inner.sentinel()?;
        Ok(MPX_OK)
    })
}

/// Frees the handle. A child still running goes on; a background reaper collects it when it
/// ends, so it never lingers as a zombie. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_process_close(proc_: *mut mpx_process) {
    handle::close("mpx_process_close", proc_)
}

/// The calling process's id.
#[no_mangle]
pub extern "C" fn mpx_current_pid() -> c_int {
    process::current::pid()
}

/// The pid of the process that started this one (for a fork-server child, the client that asked
/// for it, not the server).
#[no_mangle]
pub extern "C" fn mpx_parent_pid() -> c_int {
    process::current::parent_pid()
}

/// Writes this process's name ("MainProcess", or the name it was started with) into `buf` of
/// `cap` bytes, NUL-terminated, and its length to `*len` if not NULL. MPX_E_BUFFER_TOO_SMALL
/// (with `*len` set to the length needed, excluding the NUL) if it does not fit. `buf` may be
/// NULL only if `cap` is 0 (to ask for the length).
#[no_mangle]
pub unsafe extern "C" fn mpx_current_name(buf: *mut c_char, cap: usize, len: *mut usize) -> mpx_status {
    guard("mpx_current_name", || args::write_str(&process::current::name(), buf, cap, len))
}

/// Renames the calling process (what `mpx_current_name` returns).
#[no_mangle]
pub unsafe extern "C" fn mpx_set_current_name(name: *const c_char) -> mpx_status {
    guard("mpx_set_current_name", || {
        process::current::set_name(args::string(name, "name")?);
        Ok(MPX_OK)
    })
}

/// The number of CPUs online.
#[no_mangle]
pub extern "C" fn mpx_cpu_count() -> c_int {
    process::cpu_count() as c_int
}

/// Terminates every daemonic child still running (SIGTERM, then SIGKILL after 1 s) and reaps
/// them. Runs automatically at normal exit; call it earlier to stop them sooner.
#[no_mangle]
pub extern "C" fn mpx_terminate_daemons() {
    guard_void("mpx_terminate_daemons", process::terminate_daemons)
}

/// Arranges for the calling process to be killed (SIGKILL) when process `parent` (its parent)
/// dies, as daemonic children are; for children forked by other means (Python's os.fork).
/// MPX_E_STATE if the parent is already gone: the caller should exit.
#[no_mangle]
pub extern "C" fn mpx_current_die_with_parent(parent: c_int) -> mpx_status {
    guard("mpx_current_die_with_parent", || {
        process::current::die_with_parent(parent)?;
        Ok(MPX_OK)
    })
}
