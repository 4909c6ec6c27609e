//! The worker side: the registry of functions a worker runs by name, the error a function
//! returns, and the worker's loop (take a task, run it, report the result).

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use super::envelope::{self, TASK_CHUNK};
use super::table::{PoolTable, Slot, WorkerState};
use crate::queue::Queue;
use crate::wait::Timeout;
use crate::{ErrorKind, Result};

/// How a task failed: the status it comes back with, the error's type name where the language
/// has one ("ValueError"), a message, and the worker's traceback text (may be empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    pub kind: ErrorKind,
    pub type_name: String,
    pub message: String,
    pub traceback: String,
}

impl TaskError {
    /// An error of `kind` with a message (no type name, no traceback).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> TaskError {
        TaskError { kind, type_name: String::new(), message: message.into(), traceback: String::new() }
    }

    pub fn type_name(mut self, t: impl Into<String>) -> TaskError {
        self.type_name = t.into();
        self
    }

    pub fn traceback(mut self, tb: impl Into<String>) -> TaskError {
        self.traceback = tb.into();
        self
    }

    /// The error the owner's `wait` returns for it: its kind, and a message naming the task,
    /// the type and the remote message, with the traceback after a newline.
    pub fn to_error(&self, id: u64) -> crate::Error {
        let mut m = format!("pool: task {id} failed: ");
        if !self.type_name.is_empty() {
            m.push_str(&self.type_name);
            m.push_str(": ");
        }
        m.push_str(&self.message);
        if !self.traceback.is_empty() {
            m.push('\n');
            m.push_str(&self.traceback);
        }
        crate::Error::new(self.kind, m)
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.type_name.is_empty() {
            write!(f, "{}: ", self.type_name)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskError {}

/// A function a worker runs: argument bytes in, result bytes or an error out.
pub type TaskFn = dyn Fn(&[u8]) -> std::result::Result<Vec<u8>, TaskError> + Send + Sync;

/// The functions a pool's workers run, by name. Forked workers inherit it.
#[derive(Clone, Default)]
pub struct Registry {
    fns: HashMap<String, Arc<TaskFn>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `f` as `name` (replacing any function of that name). Invalid for a name of
    /// 0 or more than 255 bytes.
    pub fn register<F>(&mut self, name: &str, f: F) -> Result<&mut Registry>
    where
        F: Fn(&[u8]) -> std::result::Result<Vec<u8>, TaskError> + Send + Sync + 'static,
    {
        envelope::check_fname(name)?;
        self.fns.insert(name.to_string(), Arc::new(f));
        Ok(self)
    }

    /// Builder form of [`Registry::register`]; panics on an invalid name.
    pub fn with<F>(mut self, name: &str, f: F) -> Registry
    where
        F: Fn(&[u8]) -> std::result::Result<Vec<u8>, TaskError> + Send + Sync + 'static,
    {
        self.register(name, f).expect("a function name of 1..=255 bytes");
        self
    }

    pub fn get(&self, name: &str) -> Option<&TaskFn> {
        self.fns.get(name).map(|f| &**f)
    }

    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.fns.keys().map(|s| s.as_str()).collect();
        v.sort_unstable();
        v
    }

    /// Runs `fname` on `args`: an unknown name is NotFound, a panic is Panic with its text.
    pub(crate) fn call(&self, fname: &str, args: &[u8]) -> std::result::Result<Vec<u8>, TaskError> {
        let Some(f) = self.get(fname) else {
            return Err(TaskError::new(
                ErrorKind::NotFound,
                format!("no function '{fname}' is registered in the worker"),
            )
            .type_name("UnknownFunction"));
        };
        match catch_unwind(AssertUnwindSafe(|| f(args))) {
            Ok(r) => r,
            Err(p) => {
                let msg = crate::util::panic_message(&*p);
                Err(TaskError::new(ErrorKind::Panic, format!("'{fname}' panicked: {msg}")).type_name("panic"))
            }
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("functions", &self.names()).finish()
    }
}

/// Runs a chunk: each item in turn, stopping at the first error (multiprocessing's map reports
/// a chunk's first error); the results as a list.
fn call_chunk(reg: &Registry, fname: &str, args: &[u8]) -> std::result::Result<Vec<u8>, TaskError> {
    let items = envelope::get_list(args)
        .ok_or_else(|| TaskError::new(ErrorKind::Corrupt, format!("malformed chunk of {} bytes", args.len())))?;
    let mut outs = Vec::with_capacity(items.len());
    for it in items {
        outs.push(reg.call(fname, it)?);
    }
    let mut m = Vec::new();
    envelope::put_list(&mut m, &outs);
    Ok(m)
}

/// What a worker needs: the queues and table it inherited, its slot and its limits.
pub(crate) struct WorkerCtx<'a> {
    pub table: &'a PoolTable,
    pub tasks: &'a Queue,
    pub results: &'a Queue,
    pub registry: &'a Registry,
    pub slot: u32,
    /// Exit after this many tasks (0: never).
    pub max_tasks: u64,
}

/// The worker's loop; returns its exit code (0 when the pool closed or the task limit was
/// reached, 2 when a queue failed).
///
/// Taking a task (the order matters; see the module doc of `pool`): read the task in place
/// (the consumer lock is held, the message still in the queue); write its id and queue seq
/// into the slot, then the state Busy (release); then commit the read. After running it, put
/// the result (a put that returned is durable), and only then go back to Idle.
pub(crate) fn run(cx: &WorkerCtx<'_>) -> i32 {
    let slot = cx.table.slot(cx.slot);
    slot.pid.store(std::process::id(), Relaxed);
    slot.state.store(WorkerState::Idle as u32, Release);
    let mut ran = 0u64;
    loop {
        if cx.max_tasks != 0 && ran >= cx.max_tasks {
            slot.state.store(WorkerState::Exited as u32, Release);
            return 0;
        }
        let (id, kind, fname, args) = match take(cx.tasks, cx.table, slot) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) if e.kind() == ErrorKind::Closed => {
                slot.state.store(WorkerState::Exited as u32, Release);
                return 0;
            }
            Err(e) => {
                eprintln!("mpx: pool worker {} (pid {}): {e}", cx.slot, std::process::id());
                return 2;
            }
        };
        let out = match fname {
            Err(e) => Err(e),
            Ok(f) if kind == TASK_CHUNK => call_chunk(cx.registry, &f, &args),
            Ok(f) => cx.registry.call(&f, &args),
        };
        let ok = out.is_ok();
        let msg = match &out {
            Ok(r) => envelope::result_ok(id, r),
            Err(e) => envelope::result_err(id, e),
        };
        let put = match cx.results.put(&msg, Timeout::Forever) {
            Err(e) if e.kind() == ErrorKind::TooBig => {
                let e = TaskError::new(
                    ErrorKind::TooBig,
                    format!(
                        "the result of {} bytes does not fit the result queue (largest message {} bytes)",
                        msg.len(),
                        cx.results.max_message()
                    ),
                );
                cx.results.put(&envelope::result_err(id, &e), Timeout::Forever).map(|_| false)
            }
            r => r.map(|_| ok),
        };
        match put {
            Ok(ok) => {
                let counter = if ok { &slot.done } else { &slot.failed };
                counter.fetch_add(1, Relaxed);
            }
            Err(e) => {
                eprintln!("mpx: pool worker {} (pid {}): result of task {id}: {e}", cx.slot, std::process::id());
                return 2;
            }
        }
        slot.state.store(WorkerState::Idle as u32, Release);
        ran += 1;
    }
}

type Taken = (u64, u32, std::result::Result<String, TaskError>, Vec<u8>);

/// Takes one task (see [`run`]): Ok(None) for a message that is not a task (dropped).
fn take(tasks: &Queue, table: &PoolTable, slot: &Slot) -> Result<Option<Taken>> {
    #[cfg(not(test))]
    let _ = table;
    let view = tasks.read(Timeout::Forever)?;
    let Some(id) = envelope::task_id(&view) else {
        // Not even an id: no owner can be waiting for it.
        view.commit()?;
        return Ok(None);
    };
    let (kind, fname, args) = match envelope::parse_task(&view) {
        Ok(t) => (t.kind, Ok(t.fname.to_string()), t.args.to_vec()),
        Err(e) => (0, Err(TaskError::new(e.kind(), e.message().to_string())), Vec::new()),
    };
    #[cfg(test)]
    pause::at(pause::READ, table);
    slot.task.store(id, Relaxed);
    slot.seq.store(view.seq(), Relaxed);
    // SeqCst: the owner's check of a dead worker reads these after it holds the consumer lock,
    // which this commit releases; the release store is what publishes task and seq with it.
    slot.state.store(WorkerState::Busy as u32, SeqCst);
    #[cfg(test)]
    pause::at(pause::BUSY, table);
    view.commit()?;
    #[cfg(test)]
    pause::at(pause::COMMITTED, table);
    Ok(Some((id, kind, fname, args)))
}

/// Unit tests only: makes the first worker of a pool that reaches one step of `take` stop
/// there for good, so a test can SIGKILL it exactly there.
#[cfg(test)]
pub(crate) mod pause {
    use std::sync::atomic::{AtomicU32, Ordering::*};

    use super::PoolTable;

    pub const READ: u32 = 1;
    pub const BUSY: u32 = 2;
    pub const COMMITTED: u32 = 3;
    /// The step to stop at (0: none); forked workers inherit it.
    pub static AT: AtomicU32 = AtomicU32::new(0);

    pub fn at(step: u32, table: &PoolTable) {
        if AT.load(Relaxed) == step && table.claim_test_pause() {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}
