//! Starting an executable: everything is prepared in the parent (paths, argv, envp, descriptor
//! plan), then a `clone(CLONE_VM | CLONE_VFORK)` child applies it with raw system calls only and
//! execs. Sharing the parent's memory makes the start cheap even from a large parent (no page
//! tables copied), and lets the child report an exec failure by writing its errno into the
//! prepared plan, so a missing program is an error at spawn, not a child that exits 127.

use std::ffi::{c_char, c_void, CString, OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CpuSet;
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
use nix::unistd::{access, AccessFlags};

use super::handle::{Link, Process};
use super::options::{Options, Stdio};
use crate::{err, Error, Result};

/// One standard stream's plan: dup2 `src` onto `target`, or open `path` there.
#[derive(Clone, Copy)]
enum StreamPlan {
    Keep,
    Dup(RawFd),
    Open(*const c_char, OFlag),
}

/// Everything the child needs, prepared before clone so the child never allocates.
struct Plan {
    program: CString,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    cwd: Option<CString>,
    streams: [StreamPlan; 3],
    keep: Vec<RawFd>,
    cpu_set: Option<CpuSet>,
    nice: Option<i32>,
    pgroup: Option<i32>,
    new_session: bool,
    /// With `daemon`, the pid the child checks its parent against (the start race).
    death_parent: Option<i32>,
    parent_mask: SigSet,
    /// Written by the child when a step fails: (step, errno). Read by the parent after the
    /// child execs or exits (CLONE_VFORK suspends the parent until then).
    failed_step: i32,
    failed_errno: i32,
}

const STEP_NAMES: [&str; 9] =
    ["", "setsid/setpgid", "prctl", "sched_setaffinity", "setpriority", "stdio", "close fds", "chdir", "exec"];

/// Finds `program` like execvp: as given when it has a '/', else in PATH (from the child's
/// environment when it sets one).
fn resolve(program: &OsStr, path_var: Option<&OsStr>) -> Result<CString> {
    let bytes = program.as_bytes();
    if bytes.is_empty() {
        return Err(err!(Invalid, "spawn: program name is empty"));
    }
    let check = |p: &Path| -> Option<CString> {
        let c = CString::new(p.as_os_str().as_bytes()).ok()?;
        let ok = access(c.as_c_str(), AccessFlags::X_OK).is_ok() && p.is_file();
        ok.then_some(c)
    };
    if bytes.contains(&b'/') {
        let p = Path::new(program);
        if !p.exists() {
            return Err(err!(NotFound, "spawn: program '{}' does not exist", p.display()));
        }
        return check(p).ok_or_else(|| err!(Permission, "spawn: '{}' is not an executable file", p.display()));
    }
    let default_path = OsString::from("/usr/local/bin:/usr/bin:/bin");
    let path = path_var.map(OsStr::to_os_string).unwrap_or(default_path);
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() { ".".into() } else { dir };
        if let Some(c) = check(&dir.join(program)) {
            return Ok(c);
        }
    }
    Err(err!(NotFound, "spawn: program '{}' not found in PATH", program.to_string_lossy()))
}

fn cstring(b: &[u8], what: &str) -> Result<CString> {
    CString::new(b).map_err(|_| err!(Invalid, "spawn: {what} contains a NUL byte"))
}

/// The child's environment as KEY=VALUE strings.
fn build_env(opts: &Options, extra: &[(OsString, OsString)]) -> Result<Vec<CString>> {
    let mut vars: Vec<(OsString, OsString)> = if opts.env_clear { Vec::new() } else { std::env::vars_os().collect() };
    vars.retain(|(k, _)| !opts.env_remove.iter().any(|r| r == k));
    for (k, v) in opts.env_set.iter().chain(extra) {
        if k.is_empty() || k.as_bytes().contains(&b'=') {
            return Err(err!(Invalid, "spawn: environment name '{}' is empty or contains '='", k.to_string_lossy()));
        }
        vars.retain(|(k2, _)| k2 != k);
        vars.push((k.clone(), v.clone()));
    }
    vars.into_iter()
        .map(|(k, v)| {
            let mut b = k.into_vec();
            b.push(b'=');
            b.extend(v.into_vec());
            cstring(&b, "an environment variable")
        })
        .collect()
}

/// Starts `program` with `args` (args[0] is what the program sees as its name). `extra_env` is
/// added after the options' environment (used by entry-point starts).
pub(crate) fn spawn_exec(
    program: &OsStr,
    args: &[OsString],
    opts: &Options,
    extra_env: &[(OsString, OsString)],
    name: String,
) -> Result<Process> {
    opts.validate()?;
    let env = build_env(opts, extra_env)?;
    let path_var = env.iter().find_map(|c| c.as_bytes().strip_prefix(b"PATH=")).map(OsStr::from_bytes);
    let program_c = resolve(program, path_var)?;
    let args_c: Vec<CString> = args.iter().map(|a| cstring(a.as_bytes(), "an argument")).collect::<Result<_>>()?;
    if args_c.is_empty() {
        return Err(err!(Invalid, "spawn: argv is empty (argv[0] is required)"));
    }
    let cwd = match &opts.cwd {
        Some(d) => {
            if !d.is_dir() {
                return Err(err!(NotFound, "spawn: working directory '{}' does not exist", d.display()));
            }
            Some(cstring(d.as_os_str().as_bytes(), "the working directory")?)
        }
        None => None,
    };
    let mut files: Vec<CString> = Vec::new();
    let mut streams = [StreamPlan::Keep; 3];
    for (i, s) in [&opts.stdin, &opts.stdout, &opts.stderr].into_iter().enumerate() {
        streams[i] = match s {
            Stdio::Inherit => StreamPlan::Keep,
            Stdio::Fd(fd) => StreamPlan::Dup(*fd),
            Stdio::Null => {
                let flags = if i == 0 { OFlag::O_RDONLY } else { OFlag::O_WRONLY };
                files.push(CString::new("/dev/null").unwrap());
                StreamPlan::Open(files.last().unwrap().as_ptr(), flags)
            }
            Stdio::File { path, append } => {
                let flags = if i == 0 {
                    OFlag::O_RDONLY
                } else {
                    OFlag::O_WRONLY | OFlag::O_CREAT | if *append { OFlag::O_APPEND } else { OFlag::O_TRUNC }
                };
                files.push(cstring(path.as_os_str().as_bytes(), "a stdio path")?);
                StreamPlan::Open(files.last().unwrap().as_ptr(), flags)
            }
        };
    }
    let cpu_set = match &opts.affinity {
        None => None,
        Some(cpus) => {
            let mut set = CpuSet::new();
            for c in cpus {
                set.set(*c).map_err(|e| Error::os(e, format!("spawn: affinity: CPU {c}")))?;
            }
            Some(set)
        }
    };
    let mut argv: Vec<*const c_char> = args_c.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut plan = Plan {
        program: program_c,
        argv,
        envp,
        cwd,
        streams,
        keep: opts.keep_fds.clone(),
        cpu_set,
        nice: opts.nice,
        pgroup: opts.process_group,
        new_session: opts.new_session,
        death_parent: opts.daemon.then(|| std::process::id() as i32),
        // Filled by launch.
        parent_mask: SigSet::empty(),
        failed_step: 0,
        failed_errno: 0,
    };

    // PR_SET_PDEATHSIG fires when the *thread* that started the child exits. A daemonic child
    // started from a short-lived thread would die with that thread, so it is started from a
    // thread that lives as long as the process.
    let pid = if opts.daemon && !super::per_process::on_main_thread() {
        let plan_ptr = SendPtr(&mut plan as *mut Plan);
        // SAFETY: we block until the spawner thread is done with the plan.
        spawner::run(move || unsafe { launch(&mut *{ plan_ptr }.0) })??
    } else {
        launch(&mut plan)?
    };
    if plan.failed_step != 0 {
        // The child exited (it reported a failure): reap it.
        let _ = super::handle::wait_pid(pid, false);
        let step = STEP_NAMES.get(plan.failed_step as usize).copied().unwrap_or("?");
        let e = Error::from_errno(plan.failed_errno, format!("spawn '{}': {step}", program.to_string_lossy()));
        return Err(e);
    }
    Ok(Process::new(pid, name, opts.daemon, Link::Child))
}

/// Clones the child that applies `plan` and execs; returns its pid once it has exec'd or failed
/// (the failure is then recorded in the plan).
fn launch(plan: &mut Plan) -> Result<i32> {
    // A stack for the child; it only makes system calls, 64 KiB is ample.
    let mut stack = vec![0u8; 64 * 1024];
    // All signals are blocked around clone so that no handler of ours runs in the child.
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut plan.parent_mask))
        .map_err(|e| Error::os(e, "spawn: pthread_sigmask"))?;
    let top = stack.as_mut_ptr_range().end;
    let top = (top as usize & !15) as *mut c_void;
    // libc, not nix: nix's clone takes a boxed closure and runs it through its own trampoline;
    // the CLONE_VM | CLONE_VFORK child must run only child_main's raw system calls.
    // SAFETY: the child runs `child_main` on `stack` sharing our memory while we are suspended
    // (CLONE_VFORK), so the plan and the stack outlive it; the plan is not touched meanwhile.
    let pid = unsafe {
        libc::clone(child_main, top, libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD, (plan as *mut Plan).cast())
    };
    let clone_errno = Errno::last();
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&plan.parent_mask), None);
    if pid < 0 {
        return Err(Error::os(clone_errno, "spawn: clone"));
    }
    Ok(pid)
}

/// A raw pointer moved to the spawner thread while its owner waits.
struct SendPtr(*mut Plan);
// SAFETY: the owner blocks until the spawner thread is done with the pointee.
unsafe impl Send for SendPtr {}

/// A thread that lives as long as the process and starts daemonic children on behalf of other
/// threads, so that their PR_SET_PDEATHSIG is tied to the process's life, not a caller thread's.
mod spawner {
    use std::sync::mpsc::{channel, Sender};

    use super::super::per_process::PerProcess;
    use crate::{err, Result};

    type Job = Box<dyn FnOnce() + Send>;

    static SPAWNER: PerProcess<Option<Sender<Job>>> = PerProcess::new(|| None);

    pub(super) fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        let sender = {
            let mut g = SPAWNER.get().lock();
            if g.is_none() {
                let (jtx, jrx) = channel::<Job>();
                std::thread::Builder::new()
                    .name("mpx-spawner".into())
                    .spawn(move || {
                        for job in jrx {
                            job();
                        }
                    })
                    .map_err(|e| crate::Error::from(e).context("spawner thread"))?;
                *g = Some(jtx);
            }
            g.as_ref().unwrap().clone()
        };
        sender.send(job).map_err(|_| err!(Os, "spawner thread is gone"))?;
        rx.recv().map_err(|_| err!(Os, "spawner thread failed"))
    }
}

/// Runs in the child, on its own stack, sharing the parent's memory: raw system calls only, no
/// allocation, no locks. Reports the failing step and errno in the plan, then exits 127.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: arg is the parent's Plan, alive and not touched by the suspended parent.
    unsafe {
        let plan = &mut *(arg as *mut Plan);
        // Signal dispositions: handlers of the parent must not run here, and an ignored SIGPIPE
        // (as Python sets it) must not leak into the program.
        for sig in 1..=libc::SIGRTMAX() {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
                && old.sa_sigaction != libc::SIG_DFL
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        if plan.new_session {
            if libc::setsid() < 0 {
                fail(plan, 1);
            }
        } else if let Some(pg) = plan.pgroup {
            if libc::setpgid(0, pg) < 0 {
                fail(plan, 1);
            }
        }
        if let Some(parent) = plan.death_parent {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                fail(plan, 2);
            }
            // The parent may have died before the prctl took effect: then we were re-parented.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
        }
        if let Some(set) = &plan.cpu_set {
            // CpuSet is a repr(transparent) cpu_set_t.
            let set = (set as *const CpuSet).cast::<libc::cpu_set_t>();
            if libc::sched_setaffinity(0, std::mem::size_of::<CpuSet>(), set) < 0 {
                fail(plan, 3);
            }
        }
        if let Some(n) = plan.nice {
            if libc::setpriority(libc::PRIO_PROCESS, 0, n) < 0 {
                fail(plan, 4);
            }
        }
        for target in 0..3 {
            match plan.streams[target as usize] {
                StreamPlan::Keep => {}
                StreamPlan::Dup(src) => {
                    if src != target && libc::dup2(src, target) < 0 {
                        fail(plan, 5);
                    }
                    // dup2 onto itself keeps FD_CLOEXEC; clear it so the stream survives exec.
                    libc::fcntl(target, libc::F_SETFD, 0);
                }
                StreamPlan::Open(path, flags) => {
                    let fd = libc::open(path, (flags | OFlag::O_CLOEXEC).bits(), 0o644);
                    if fd < 0 || libc::dup2(fd, target) < 0 {
                        fail(plan, 5);
                    }
                    libc::close(fd);
                }
            }
        }
        // Everything above 2 closes at exec except the descriptors to keep.
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) < 0 {
            let mut lim: libc::rlimit = std::mem::zeroed();
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur.min(1 << 16) as i32
            } else {
                1024
            };
            for fd in 3..max {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        for &fd in plan.keep.iter() {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                fail(plan, 6);
            }
        }
        if let Some(dir) = &plan.cwd {
            if libc::chdir(dir.as_ptr()) < 0 {
                fail(plan, 7);
            }
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, plan.parent_mask.as_ref(), std::ptr::null_mut());
        libc::execve(plan.program.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
        fail(plan, 8)
    }
}

/// Records the failing step and errno for the parent, then exits.
///
/// # Safety
/// Only for child_main: `plan` is the parent's, which is suspended until this child exits.
unsafe fn fail(plan: &mut Plan, step: i32) -> ! {
    plan.failed_errno = *libc::__errno_location();
    plan.failed_step = step;
    libc::_exit(127)
}
