//! Entry points: a program registers named functions and calls `init` first thing in main;
//! starting "entry + argument bytes" runs that function in a new process, by any start method:
//! fork (run it in a forked child), spawn (re-execute this program, which dispatches to the
//! entry from `init` and exits), or forkserver (fork it from a clean server process).

use std::ffi::OsString;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::memfd::{memfd_create, MFdFlags};
use std::sync::{Arc, Mutex};

use super::handle::Process;
use super::options::Options;
use super::program::{self, ENV_ENTRY, ENV_ENTRY_FD, ENV_SERVER_FD};
use crate::{err, Error, Result};

/// How a child is started, as in Python's multiprocessing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum StartMethod {
    Fork = 0,
    Spawn = 1,
    ForkServer = 2,
}

impl StartMethod {
    pub fn from_u32(v: u32) -> Option<StartMethod> {
        [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer].into_iter().find(|m| *m as u32 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::ForkServer => "forkserver",
        }
    }
}

/// An entry function: argument bytes in, exit code out.
pub type EntryFn = Arc<dyn Fn(&[u8]) -> i32 + Send + Sync>;

static ENTRIES: Mutex<Vec<(String, EntryFn)>> = Mutex::new(Vec::new());

/// Registers (or replaces) a named entry point. Register every entry before calling `init`.
pub fn register(name: &str, f: impl Fn(&[u8]) -> i32 + Send + Sync + 'static) -> Result<()> {
    if name.is_empty() || name.len() > 200 || name.contains('\0') {
        return Err(err!(Invalid, "entry name '{name}' must be 1..=200 bytes without NUL"));
    }
    let mut g = ENTRIES.lock().unwrap_or_else(|e| e.into_inner());
    g.retain(|(n, _)| n != name);
    g.push((name.to_string(), Arc::new(f)));
    Ok(())
}

pub(crate) fn lookup(name: &str) -> Option<EntryFn> {
    ENTRIES.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(n, _)| n == name).map(|(_, f)| f.clone())
}

/// Call first thing in main, after registering entries. In a normal run it records how to
/// re-execute this program and returns. In a child started by spawn it runs the requested entry
/// and exits; in the fork server it serves and exits. `args` is the program's argv.
pub fn init(args: Vec<OsString>) -> Result<()> {
    program::record(args);
    super::current::adopt_from_env();
    if let Some(fd) = std::env::var_os(ENV_SERVER_FD) {
        std::env::remove_var(ENV_SERVER_FD);
        let fd: i32 = fd.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| err!(Invalid, "bad {ENV_SERVER_FD}"))?;
        match super::forkserver::serve(fd) {
            Ok(req) => run_entry_and_exit(&req.entry, &req.arg),
            // The client went away: the server's work is done.
            Err(e) if e.kind() == crate::ErrorKind::Closed => std::process::exit(0),
            Err(e) => {
                eprintln!("mpx fork server: {e}");
                std::process::exit(1)
            }
        }
    }
    if let Some(entry) = std::env::var_os(ENV_ENTRY) {
        std::env::remove_var(ENV_ENTRY);
        let entry = entry.to_string_lossy().into_owned();
        let arg = match std::env::var(ENV_ENTRY_FD) {
            Ok(fd) => {
                std::env::remove_var(ENV_ENTRY_FD);
                let fd: i32 = fd.parse().map_err(|_| err!(Invalid, "bad {ENV_ENTRY_FD}"))?;
                // SAFETY: the parent kept this memfd open for us; we own it now.
                let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                let mut v = Vec::new();
                f.rewind()?;
                f.read_to_end(&mut v)?;
                v
            }
            Err(_) => Vec::new(),
        };
        run_entry_and_exit(&entry, &arg);
    }
    Ok(())
}

/// Runs a registered entry in this (child) process and exits with its code; never returns.
fn run_entry_and_exit(entry: &str, arg: &[u8]) -> ! {
    let Some(f) = lookup(entry) else {
        eprintln!("mpx: entry point '{entry}' is not registered in this program");
        std::process::exit(1)
    };
    let name = super::current::name();
    super::fork::run_child(&name, || f(arg))
}

/// Starts `entry` with `arg` in a new process by `method`.
pub fn start(method: StartMethod, entry: &str, arg: &[u8], opts: &Options) -> Result<Process> {
    let custom_server = method == StartMethod::ForkServer && super::forkserver::has_custom_program();
    if !custom_server && lookup(entry).is_none() {
        return Err(err!(NotFound, "entry point '{entry}' is not registered"));
    }
    match method {
        StartMethod::Fork => {
            let f = lookup(entry).unwrap();
            let arg = arg.to_vec();
            super::fork::fork(opts, move || f(&arg))
        }
        StartMethod::Spawn => spawn_entry(entry, arg, opts),
        StartMethod::ForkServer => super::forkserver::request(entry, arg, opts),
    }
}

/// Re-executes this program with the entry to run in its environment and the argument bytes
/// in a memfd it inherits.
fn spawn_entry(entry: &str, arg: &[u8], opts: &Options) -> Result<Process> {
    let (exe, argv) = program::self_exec()?;
    let name = super::next_name(opts);
    let memfd = {
        let fd =
            memfd_create("mpx-entry-arg", MFdFlags::MFD_CLOEXEC).map_err(|e| Error::os(e, "spawn: memfd_create"))?;
        let mut f = std::fs::File::from(fd);
        f.write_all(arg)?;
        f
    };
    let fd = memfd.as_raw_fd();
    let mut opts = opts.clone();
    opts.keep_fds.push(fd);
    let extra = vec![
        (OsString::from(ENV_ENTRY), OsString::from(entry)),
        (OsString::from(ENV_ENTRY_FD), OsString::from(fd.to_string())),
        (OsString::from(super::current::ENV_NAME), OsString::from(&name)),
        (OsString::from(super::current::ENV_PARENT), OsString::from(std::process::id().to_string())),
    ];
    let args = if argv.is_empty() { vec![exe.clone()] } else { argv.clone() };
    super::spawn::spawn_exec(exe, &args, &opts, &extra, name)
}
