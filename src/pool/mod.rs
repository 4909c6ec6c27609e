//! Process pools: N forked workers running functions registered by name ([`Registry`]), fed
//! from a shared-memory task queue, their results returned keyed by task id; a worker that dies
//! fails exactly the task it was running (ErrorKind::WorkerDied), is replaced, and the pool
//! goes on.
//!
//! A pool is three objects: its table ([`PoolTable`], kind `pool`: counters and one slot per
//! worker, see `table.rs`), a task queue and a result queue ([`crate::queue::Queue`], named
//! `<name>.tasks` and `<name>.results` for a named pool, anonymous otherwise). The envelopes on
//! the queues are fixed little-endian layouts (`envelope.rs`). The owner ([`Pool`]) puts tasks,
//! collects results, and watches its workers (waitpid on its children) inside its own calls:
//! there is no background thread.
//!
//! # Why no task is ever lost (the kill-safety argument)
//!
//! A worker takes a task in three steps (`worker::take`):
//! 1. `read`: the queue's in-place read. The worker holds the consumer lock and the task is
//!    still in the queue; `ReadView::seq` is its place `g` in the queue's get history.
//! 2. It writes the task id and `g` into its slot, then the state Busy (release).
//! 3. `commit`: one journalled publish moves the queue's head past the task (the get count to
//!    `g + 1`) and releases the lock.
//!
//! After running the task it puts the result (a put that returned is durable: the queue
//! guarantees it across kills) and only then goes back to Idle. So at any instant of a SIGKILL:
//! - before step 2 completes, the slot is not Busy and the read was not committed: the next
//!   process to take the consumer lock finds its holder dead and repairs the queue, discarding
//!   the open read (the queue's own recovery); the task is taken by another worker.
//! - from step 2 until the put returned, the slot names the task. Whether the task is still in
//!   the queue is decided by the owner *with the consumer lock held*
//!   ([`crate::queue::Queue::with_consumers_held`], which also repairs a lock the dead worker
//!   held, finishing or discarding its commit from the journal), so nobody takes a task while
//!   the owner looks: if the get count is not past `g`, the commit never happened and the task
//!   is queued still (someone else will run it). If it is past `g`, either the dead worker
//!   committed it, or another worker took it after the queue was repaired. The latter wrote
//!   the task into its own slot before its commit, so the owner sees it there, or (if that
//!   worker already finished) the result is in the result queue, which the owner drains after
//!   reading the slots. Only when neither holds did the dead worker take the task: the owner
//!   fails exactly that task with WorkerDied.
//! - after the put returned, the result is in the result queue; the owner drains it before it
//!   looks at the slot, and a task is resolved once (the first outcome wins).
//!
//! So every task is run to a result, failed once with WorkerDied, or still queued: the owner
//! never waits for a task nobody has. Each check costs the owner one lock of the task queue,
//! only when a worker died.
//!
//! Workers are daemonic children (`process::Options::daemon`): PR_SET_PDEATHSIG, or a watcher
//! of the owner's pidfd when the owner forked from another thread, so none outlives an owner
//! that is SIGKILLed; the owner kills and reaps them in `terminate` and on drop.

mod envelope;
mod owner;
mod table;
#[cfg(test)]
mod tests;
mod worker;

pub use envelope::MAX_FNAME;
pub use owner::{usable_cpus, Pool, PoolOptions, TaskId, TaskOutcome};
pub use table::{PoolTable, WorkerInfo, WorkerState, MAX_WORKERS};
pub use worker::{Registry, TaskError, TaskFn};
