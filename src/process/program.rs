//! How this program re-executes itself, and the environment variables that tell a re-executed
//! copy what to be: a child that runs one entry point, or the fork server. `init` records the
//! program; the spawn start method and the fork server's start read it. Below both entry.rs and
//! forkserver.rs, so that neither needs the other for it.

use std::ffi::OsString;
use std::sync::OnceLock;

use crate::{err, Result};

/// The entry point a child started by spawn runs.
pub(crate) const ENV_ENTRY: &str = "MPX_ENTRY";
/// The memfd that holds that entry's argument bytes.
pub(crate) const ENV_ENTRY_FD: &str = "MPX_ENTRY_ARG_FD";
/// The socket a fork server serves on.
pub(crate) const ENV_SERVER_FD: &str = "MPX_FORKSERVER_FD";

/// This program's executable and argv, saved by `init` for re-execution.
static SELF_EXEC: OnceLock<(OsString, Vec<OsString>)> = OnceLock::new();

/// Records how to re-execute this program (the first call wins).
pub(crate) fn record(args: Vec<OsString>) {
    let exe = std::env::current_exe().map(OsString::from).unwrap_or_else(|_| OsString::from("/proc/self/exe"));
    let _ = SELF_EXEC.set((exe, args));
}

/// The executable and argv recorded by `init`.
pub(crate) fn self_exec() -> Result<&'static (OsString, Vec<OsString>)> {
    SELF_EXEC.get().ok_or_else(|| err!(State, "call mpx_init(argc, argv) (mpx::process::init in Rust) first thing in main before starting entry points by spawn or forkserver"))
}
