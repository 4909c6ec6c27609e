//! The pool's own segment ([`PoolTable`], kind `pool`): counters and the worker table.
//!
//! Data area (cache-line aligned; header params `[slots, SLOT_SIZE, 0, 0]`):
//! ```text
//! offset        size  written by     fields
//!      0          64  owner          magic "MPXP", slots, closed, 0, submitted, done, failed
//!     64   64 * slots per slot       pid, state, task, seq, done, failed, started (see Slot)
//! ```
//! `mpx ls` shows it as "2 workers [812 busy task 17 40/1, 813 idle 38/0], 5 queued,
//! 1 running, 78 done, 2 failed": per slot the pid, state, task, and tasks done/failed by the
//! slot's workers; then the pool's counts.
//!
//! A slot belongs to one worker at a time. The owner resets it (state Starting) before it forks
//! the slot's worker; from then on only that worker writes it, until the owner sees the worker
//! gone and marks it Dead (or Exited). `task` and `seq` are meaningful while the state is Busy:
//! the worker writes them, then the state with release ordering, before it commits the task's
//! read from the task queue (the kill-safety argument is in the module doc of `pool`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use crate::object::{Kind, Layout, Mapped, Object, Segment};
use crate::{err, Result};

/// "MPXP": written at creation, checked at open.
const MAGIC: u32 = 0x5058_504D;
/// Bytes of one worker slot.
pub const SLOT_SIZE: usize = 64;
/// Most workers a pool can have.
pub const MAX_WORKERS: u32 = 1024;

/// What a worker slot says about its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum WorkerState {
    /// Being started by the owner; the worker has not written the slot yet.
    Starting = 0,
    /// Waiting for a task.
    Idle = 1,
    /// Running task `task`.
    Busy = 2,
    /// Died without exiting (signal, crash, or an exit the pool did not ask for).
    Dead = 3,
    /// Exited as asked (closed pool, maxtasksperchild).
    Exited = 4,
}

impl WorkerState {
    fn from_u32(v: u32) -> Option<WorkerState> {
        Some(match v {
            0 => WorkerState::Starting,
            1 => WorkerState::Idle,
            2 => WorkerState::Busy,
            3 => WorkerState::Dead,
            4 => WorkerState::Exited,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Idle => "idle",
            WorkerState::Busy => "busy",
            WorkerState::Dead => "dead",
            WorkerState::Exited => "exited",
        }
    }
}

#[repr(C, align(64))]
pub(crate) struct Head {
    magic: AtomicU32,
    slots: AtomicU32,
    pub closed: AtomicU32,
    _pad: AtomicU32,
    pub submitted: AtomicU64,
    pub done: AtomicU64,
    pub failed: AtomicU64,
    _reserved: [u64; 3],
}

/// One worker's slot.
#[repr(C, align(64))]
pub(crate) struct Slot {
    pub pid: AtomicU32,
    pub state: AtomicU32,
    /// The task being run (valid while Busy).
    pub task: AtomicU64,
    /// The task's place in the task queue's get history ([`crate::queue::ReadView::seq`]).
    pub seq: AtomicU64,
    /// Tasks this slot's workers (over replacements) finished with a result / with an error;
    /// kept across replacements so that the slots add up to the pool's totals.
    pub done: AtomicU64,
    pub failed: AtomicU64,
    /// How many workers this slot has had (the owner counts each start).
    pub started: AtomicU64,
    _reserved: [u64; 2],
}

const _: () = assert!(std::mem::size_of::<Head>() == 64);
const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_SIZE);

/// A worker as the table shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    pub slot: u32,
    /// 0 until the worker has started.
    pub pid: i32,
    pub state: WorkerState,
    /// The task it runs (Busy only).
    pub task: Option<u64>,
    /// Tasks reported by this slot's workers, replacements included (a task failed because
    /// its worker died is counted by the pool, not here).
    pub done: u64,
    pub failed: u64,
    /// Workers this slot has had (replacements included).
    pub started: u64,
}

/// The pool's segment: counters and one slot per worker. Opened by `mpx ls` / `mpx info` (and,
/// later, by workers that serve a pool by name); the owner's [`crate::pool::Pool`] holds one.
pub struct PoolTable {
    m: Mapped<Head>,
    slots: u32,
}

impl Object for PoolTable {
    const KIND: Kind = Kind::Pool;
    /// The number of worker slots.
    type Spec<'a> = u32;

    fn layout(slots: &u32) -> Result<Layout> {
        if *slots == 0 || *slots > MAX_WORKERS {
            return Err(err!(Invalid, "a pool has 1..={MAX_WORKERS} workers, not {slots}"));
        }
        let size = std::mem::size_of::<Head>() + *slots as usize * SLOT_SIZE;
        Ok(Layout::new(size, [*slots as u64, SLOT_SIZE as u64, 0, 0]))
    }

    fn init(seg: &Segment, slots: &u32) -> Result<()> {
        // SAFETY: the zeroed, aligned data area holds a Head (layout); nobody else sees it yet.
        let h = unsafe { &*seg.data_ptr().cast::<Head>() };
        h.slots.store(*slots, Relaxed);
        h.magic.store(MAGIC, Release);
        Ok(())
    }

    fn attach(seg: Segment) -> Result<PoolTable> {
        let what = seg.describe();
        let [slots, slot_size, _, _] = seg.params();
        if slots == 0 || slots > MAX_WORKERS as u64 || slot_size != SLOT_SIZE as u64 {
            return Err(err!(Corrupt, "{what}: invalid layout ({slots} slots of {slot_size} bytes)"));
        }
        let need = std::mem::size_of::<Head>() + slots as usize * SLOT_SIZE;
        let m = Mapped::<Head>::new(seg, need)?;
        let magic = m.state().magic.load(Acquire);
        if magic != MAGIC {
            return Err(err!(Corrupt, "{what}: pool state not initialised (magic {magic:#010x})"));
        }
        Ok(PoolTable { m, slots: slots as u32 })
    }

    fn segment(&self) -> &Segment {
        self.m.segment()
    }

    fn summary(&self) -> Option<String> {
        let ws = self.workers();
        let list: Vec<String> = ws
            .iter()
            .map(|w| {
                let mut t = format!("{} {}", w.pid, w.state.name());
                if let Some(id) = w.task {
                    t.push_str(&format!(" task {id}"));
                }
                t.push_str(&format!(" {}/{}", w.done, w.failed));
                t
            })
            .collect();
        let mut t = format!(
            "{} workers [{}], {} queued, {} running, {} done, {} failed",
            ws.len(),
            list.join(", "),
            self.queued(),
            self.running(),
            self.done(),
            self.failed()
        );
        if self.is_closed() {
            t.push_str(", closed");
        }
        Some(t)
    }
}

impl PoolTable {
    pub(crate) fn head(&self) -> &Head {
        self.m.state()
    }

    /// Unit tests only: true for the first caller in any process (worker::pause), whose pid
    /// [`PoolTable::test_paused_pid`] then gives.
    #[cfg(test)]
    pub(crate) fn claim_test_pause(&self) -> bool {
        self.head()._pad.compare_exchange(0, std::process::id(), AcqRel, Relaxed).is_ok()
    }

    #[cfg(test)]
    pub(crate) fn test_paused_pid(&self) -> i32 {
        self.head()._pad.load(Acquire) as i32
    }

    /// The number of worker slots.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    pub(crate) fn slot(&self, i: u32) -> &Slot {
        assert!(i < self.slots, "slot {i} of {}", self.slots);
        // SAFETY: attach checked that the data area holds the Head and `slots` slots after it;
        // Slot is atomics only (valid for any bytes) and 64-byte aligned like the area.
        unsafe { &*self.m.ptr().as_ptr().cast::<u8>().add(64 + i as usize * SLOT_SIZE).cast::<Slot>() }
    }

    /// Tasks submitted so far.
    pub fn submitted(&self) -> u64 {
        self.head().submitted.load(Relaxed)
    }

    /// Tasks that ended with a result.
    pub fn done(&self) -> u64 {
        self.head().done.load(Relaxed)
    }

    /// Tasks that ended with an error (their function's, or a dead worker's).
    pub fn failed(&self) -> u64 {
        self.head().failed.load(Relaxed)
    }

    /// Tasks being run now: the Busy slots (derived from the table, so a dead worker's task
    /// cannot leave a count behind).
    pub fn running(&self) -> u64 {
        self.workers().iter().filter(|w| w.state == WorkerState::Busy).count() as u64
    }

    /// Tasks submitted and not yet taken by a worker nor ended.
    pub fn queued(&self) -> u64 {
        self.submitted().saturating_sub(self.done() + self.failed() + self.running())
    }

    pub fn is_closed(&self) -> bool {
        self.head().closed.load(Acquire) != 0
    }

    /// The worker table, slot by slot. Fields another process writes are read as they are;
    /// an unknown state (a hostile writer) reads as Dead.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        (0..self.slots)
            .map(|i| {
                let s = self.slot(i);
                let state = WorkerState::from_u32(s.state.load(Acquire)).unwrap_or(WorkerState::Dead);
                WorkerInfo {
                    slot: i,
                    pid: s.pid.load(Relaxed) as i32,
                    state,
                    task: (state == WorkerState::Busy).then(|| s.task.load(Relaxed)),
                    done: s.done.load(Relaxed),
                    failed: s.failed.load(Relaxed),
                    started: s.started.load(Relaxed),
                }
            })
            .collect()
    }
}

impl std::fmt::Debug for PoolTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolTable").field("name", &self.name()).field("slots", &self.slots).finish()
    }
}
