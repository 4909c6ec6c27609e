//! The owner's side: [`Pool`] creates the pool's objects and workers, submits tasks, collects
//! results by task id, and watches its workers: a dead one fails the task it was running (see
//! the module doc of `pool` for why exactly that one) and is replaced.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::envelope;
use super::table::{PoolTable, WorkerState};
use super::worker::{self, Registry, TaskError, WorkerCtx};
use super::WorkerInfo;
use crate::object::{Flags, Object};
use crate::process::{self, Options, Process};
use crate::queue::{Queue, QueueSpec};
use crate::wait::Timeout;
use crate::{err, Error, ErrorKind, Result};

/// A task's handle: its id in the pool.
pub type TaskId = u64;

/// How long the owner waits for results before it looks at its workers again.
const CHECK_EVERY: Duration = Duration::from_millis(20);
/// How long the owner waits for the task queue's consumer lock when it checks a dead worker's
/// task (a live holder keeps it for microseconds; a dead one is taken over within a few ms).
const SETTLE_WAIT: Duration = Duration::from_secs(5);
/// How long terminate waits for a SIGKILLed worker to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(10);

/// What a new pool looks like.
#[derive(Clone, Debug, Default)]
pub struct PoolOptions {
    /// Workers (default: the CPUs this process may run on).
    pub workers: Option<usize>,
    /// A name makes the pool's objects named (`<name>`, `<name>.tasks`, `<name>.results`, so
    /// `mpx ls` shows them); None makes them anonymous.
    pub name: Option<String>,
    /// A worker is replaced after this many tasks (0: never).
    pub max_tasks_per_child: u64,
    /// Bytes of the task queue (default 1 MiB): the largest task is about this.
    pub task_capacity: Option<usize>,
    /// Bytes of the result queue (default 1 MiB): the largest result is about this; a larger
    /// one fails its task with TooBig.
    pub result_capacity: Option<usize>,
}

impl PoolOptions {
    pub fn new() -> PoolOptions {
        PoolOptions::default()
    }

    pub fn workers(mut self, n: usize) -> PoolOptions {
        self.workers = Some(n);
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> PoolOptions {
        self.name = Some(name.into());
        self
    }

    pub fn max_tasks_per_child(mut self, n: u64) -> PoolOptions {
        self.max_tasks_per_child = n;
        self
    }

    pub fn task_capacity(mut self, bytes: usize) -> PoolOptions {
        self.task_capacity = Some(bytes);
        self
    }

    pub fn result_capacity(mut self, bytes: usize) -> PoolOptions {
        self.result_capacity = Some(bytes);
        self
    }
}

const DEFAULT_CAPACITY: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Run {
    Open,
    Closed,
    Terminated,
}

/// How a task ended: its result bytes, or how it failed.
pub type TaskOutcome = std::result::Result<Vec<u8>, TaskError>;
type Outcome = TaskOutcome;

struct Inner {
    /// The live worker of each slot (None once it ended and was not replaced).
    workers: Vec<Option<Process>>,
    /// Submitted and not yet resolved.
    pending: HashSet<TaskId>,
    /// Resolved and not yet waited for.
    finished: HashMap<TaskId, Outcome>,
    /// Pending tasks nobody will wait for (the rest of a failed map): dropped when resolved.
    abandoned: HashSet<TaskId>,
    next_id: TaskId,
    run: Run,
    last_check: Instant,
    /// Names to unlink when the pool ends (a named pool).
    names: Vec<String>,
}

/// A process pool (the owner's handle). `&Pool` may be used from several threads: calls
/// serialise on an internal lock, and whichever call holds it collects every result that
/// arrives. Dropping the pool terminates it (kills and reaps its workers; a named pool's
/// names are removed).
pub struct Pool {
    table: PoolTable,
    pub(super) tasks: Queue,
    results: Queue,
    registry: Arc<Registry>,
    max_tasks: u64,
    inner: Mutex<Inner>,
}

/// The CPUs this process may run on (its affinity mask), else the CPUs online.
pub fn usable_cpus() -> usize {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => {
            let n = (0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).count();
            if n > 0 {
                n
            } else {
                process::cpu_count()
            }
        }
        Err(_) => process::cpu_count(),
    }
}

impl Pool {
    /// Creates the pool's objects and starts its workers, which run the functions of
    /// `registry` (they inherit it by fork).
    pub fn new(opts: PoolOptions, registry: Registry) -> Result<Pool> {
        let n = opts.workers.unwrap_or_else(usable_cpus);
        if n == 0 || n > super::MAX_WORKERS as usize {
            return Err(err!(Invalid, "pool: {n} workers: a pool has 1..={}", super::MAX_WORKERS));
        }
        let tspec = QueueSpec::new(opts.task_capacity.unwrap_or(DEFAULT_CAPACITY));
        let rspec = QueueSpec::new(opts.result_capacity.unwrap_or(DEFAULT_CAPACITY));
        let mut names = Vec::new();
        let made = (|| -> Result<(PoolTable, Queue, Queue)> {
            match &opts.name {
                None => Ok((
                    PoolTable::create_anonymous(n as u32)?,
                    Queue::create_anonymous(tspec)?,
                    Queue::create_anonymous(rspec)?,
                )),
                Some(name) => {
                    let table = PoolTable::create(name, n as u32, Flags::default())?;
                    names.push(name.clone());
                    let tn = format!("{name}.tasks");
                    let tasks = Queue::create(&tn, tspec, Flags::default())?;
                    names.push(tn);
                    let rn = format!("{name}.results");
                    let results = Queue::create(&rn, rspec, Flags::default())?;
                    names.push(rn);
                    Ok((table, tasks, results))
                }
            }
        })();
        let (table, tasks, results) = match made {
            Ok(t) => t,
            Err(e) => {
                unlink_all(&names);
                return Err(e);
            }
        };
        let pool = Pool {
            table,
            tasks,
            results,
            registry: Arc::new(registry),
            max_tasks: opts.max_tasks_per_child,
            inner: Mutex::new(Inner {
                workers: (0..n).map(|_| None).collect(),
                pending: HashSet::new(),
                finished: HashMap::new(),
                abandoned: HashSet::new(),
                next_id: 1,
                run: Run::Open,
                last_check: Instant::now(),
                names,
            }),
        };
        {
            let mut inner = pool.lock();
            for i in 0..n {
                // On failure the drop of `pool` kills the workers already started.
                pool.start_worker(&mut inner, i)?;
            }
        }
        Ok(pool)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_worker(&self, inner: &mut Inner, i: usize) -> Result<()> {
        let slot = self.table.slot(i as u32);
        slot.state.store(WorkerState::Starting as u32, Relaxed);
        slot.pid.store(0, Relaxed);
        slot.task.store(0, Relaxed);
        slot.started.fetch_add(1, Release);
        let cx = WorkerCtx {
            table: &self.table,
            tasks: &self.tasks,
            results: &self.results,
            registry: &self.registry,
            slot: i as u32,
            max_tasks: self.max_tasks,
        };
        let opts = Options::new().daemon(true).name(format!("pool-worker-{i}"));
        let p = process::fork(&opts, || worker::run(&cx)).map_err(|e| e.context("pool: starting a worker"))?;
        inner.workers[i] = Some(p);
        Ok(())
    }

    /// The pool's table (counters and workers), as `mpx ls` shows it.
    pub fn table(&self) -> &PoolTable {
        &self.table
    }

    /// The workers, slot by slot.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.table.workers()
    }

    /// The pool's name (None for an anonymous pool).
    pub fn name(&self) -> Option<&str> {
        self.table.name()
    }

    /// The number of worker slots (the pool's size).
    pub fn size(&self) -> usize {
        self.table.slots() as usize
    }

    /// The pids of the live workers, slot by slot.
    pub fn pids(&self) -> Vec<i32> {
        self.lock().workers.iter().flatten().map(|p| p.pid()).collect()
    }

    /// Submits a call of `fname` on `args`; returns its id for [`Pool::wait`]. Waits for room in
    /// the task queue (collecting results meanwhile). State after close or terminate; TooBig
    /// for a task larger than the task queue; Invalid for a bad function name. An unknown
    /// function is not an error here: the task fails with NotFound.
    pub fn submit(&self, fname: &str, args: &[u8]) -> Result<TaskId> {
        envelope::check_fname(fname).map_err(|e| e.context("pool: submit"))?;
        let mut inner = self.lock();
        let id = inner.next_id;
        self.put_task(&mut inner, id, &envelope::task(id, fname, args))
    }

    fn put_task(&self, inner: &mut Inner, id: TaskId, msg: &[u8]) -> Result<TaskId> {
        if inner.run != Run::Open {
            return Err(err!(State, "pool: cannot submit to a pool that was {}", self.run_word(inner.run)));
        }
        let mut wait = Duration::ZERO;
        loop {
            match self.tasks.put(msg, wait) {
                Ok(()) => break,
                Err(e) if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Full) => {
                    // The queue is full: every result must keep flowing, or the workers stall
                    // on a full result queue and never make room.
                    self.drain(inner)?;
                    if inner.last_check.elapsed() >= CHECK_EVERY {
                        inner.last_check = Instant::now();
                        self.check_workers(inner)?;
                    }
                    wait = Duration::from_millis(1);
                }
                Err(e) => return Err(e.context("pool: submit")),
            }
        }
        inner.next_id = id + 1;
        inner.pending.insert(id);
        self.table.head().submitted.fetch_add(1, Relaxed);
        Ok(id)
    }

    fn run_word(&self, r: Run) -> &'static str {
        match r {
            Run::Open => "open",
            Run::Closed => "closed",
            Run::Terminated => "terminated",
        }
    }

    /// Waits for task `id` and returns its result (consuming it: a second wait is Invalid).
    /// A task that failed is an Error of its [`TaskError`]'s kind with the remote message
    /// (WorkerDied when its worker died, NotFound for an unknown function, Panic for a panic,
    /// TooBig for a result too large for the result queue); Timeout leaves it pending.
    pub fn wait(&self, id: TaskId, timeout: impl Into<Timeout>) -> Result<Vec<u8>> {
        self.wait_outcome(id, timeout)?.map_err(|e| e.to_error(id))
    }

    /// [`Pool::wait`] with the task's failure as it came: kind, type name, message, traceback.
    pub fn wait_outcome(&self, id: TaskId, timeout: impl Into<Timeout>) -> Result<TaskOutcome> {
        let mut slices = Slices::new(timeout.into());
        let mut inner = self.lock();
        loop {
            if let Some(o) = inner.finished.remove(&id) {
                return Ok(o);
            }
            if !inner.pending.contains(&id) {
                return Err(err!(Invalid, "pool: task {id} is not pending (never submitted, or already waited for)"));
            }
            let slice = slices.next().ok_or_else(|| err!(Timeout, "pool: task {id} has not finished"))?;
            self.pump(&mut inner, slice)?;
        }
    }

    /// Whether task `id` has finished (its result waits for [`Pool::wait`]).
    pub fn ready(&self, id: TaskId) -> Result<bool> {
        let mut inner = self.lock();
        self.pump(&mut inner, Duration::ZERO)?;
        Ok(inner.finished.contains_key(&id))
    }

    /// Waits until one of `ids` has finished and returns it (its result stays for
    /// [`Pool::wait`]). Invalid if none of them is pending or finished.
    pub fn wait_any(&self, ids: &[TaskId], timeout: impl Into<Timeout>) -> Result<TaskId> {
        let mut slices = Slices::new(timeout.into());
        let mut inner = self.lock();
        loop {
            if let Some(id) = ids.iter().find(|id| inner.finished.contains_key(id)) {
                return Ok(*id);
            }
            if !ids.iter().any(|id| inner.pending.contains(id)) {
                return Err(err!(Invalid, "pool: wait_any: none of the {} tasks is pending", ids.len()));
            }
            let slice = slices.next().ok_or_else(|| err!(Timeout, "pool: none of the tasks has finished"))?;
            self.pump(&mut inner, slice)?;
        }
    }

    /// Calls `fname` on every item, in chunks of `chunksize` items per task (None:
    /// multiprocessing's rule, len / (4 * workers) rounded up), and returns the results in
    /// order. The first failed chunk's error is returned (the other chunks' results are
    /// dropped when they arrive); Timeout if it all takes longer than `timeout`.
    pub fn map<A: AsRef<[u8]>>(
        &self,
        fname: &str,
        items: &[A],
        chunksize: Option<usize>,
        timeout: impl Into<Timeout>,
    ) -> Result<Vec<Vec<u8>>> {
        envelope::check_fname(fname).map_err(|e| e.context("pool: map"))?;
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let deadline = timeout.into().deadline();
        let cs = match chunksize {
            Some(0) => return Err(err!(Invalid, "pool: map: chunksize 0")),
            Some(c) => c,
            None => default_chunksize(items.len(), self.size()),
        };
        let mut ids = Vec::with_capacity(items.len().div_ceil(cs));
        for chunk in items.chunks(cs) {
            let mut inner = self.lock();
            let id = inner.next_id;
            match self.put_task(&mut inner, id, &envelope::chunk(id, fname, chunk)) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    self.abandon(&mut inner, &ids);
                    return Err(e);
                }
            }
        }
        let mut out = Vec::with_capacity(items.len());
        for (k, id) in ids.iter().enumerate() {
            let got = slice_or_forever(deadline).and_then(|t| self.wait(*id, t));
            let got = got.and_then(|r| {
                let list = envelope::get_list(&r)
                    .ok_or_else(|| err!(Corrupt, "pool: map: malformed chunk result of {} bytes", r.len()))?;
                out.extend(list.into_iter().map(|b| b.to_vec()));
                Ok(())
            });
            if let Err(e) = got {
                let mut inner = self.lock();
                self.abandon(&mut inner, &ids[k..]);
                return Err(e);
            }
        }
        Ok(out)
    }

    fn abandon(&self, inner: &mut Inner, ids: &[TaskId]) {
        for id in ids {
            if inner.finished.remove(id).is_none() && inner.pending.contains(id) {
                inner.abandoned.insert(*id);
            }
        }
    }

    /// Collects results (waiting at most `slice` for the first), and every CHECK_EVERY (or
    /// when none came) looks at the workers: handles the dead, replaces them.
    fn pump(&self, inner: &mut Inner, slice: Duration) -> Result<()> {
        let wait = slice.min(CHECK_EVERY);
        let got = match self.results.get_many(64, wait) {
            Ok(ms) => {
                for m in &ms {
                    self.resolve_msg(inner, m);
                }
                ms.len()
            }
            Err(e) if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Empty) => 0,
            Err(e) => return Err(e.context("pool: collecting results")),
        };
        if got == 0 || inner.last_check.elapsed() >= CHECK_EVERY {
            inner.last_check = Instant::now();
            self.check_workers(inner)?;
        }
        Ok(())
    }

    /// Every result ready now.
    fn drain(&self, inner: &mut Inner) -> Result<()> {
        loop {
            match self.results.get_many(64, Duration::ZERO) {
                Ok(ms) => {
                    for m in &ms {
                        self.resolve_msg(inner, m);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Empty) => return Ok(()),
                Err(e) => return Err(e.context("pool: collecting results")),
            }
        }
    }

    fn resolve_msg(&self, inner: &mut Inner, m: &[u8]) {
        match envelope::parse_result(m) {
            Ok((id, o)) => self.resolve(inner, id, o),
            // A malformed result still fails its task when it names one, so nobody waits for
            // it; one that names none is dropped, with a word on stderr.
            Err(e) => match envelope::result_id(m) {
                Some(id) if inner.pending.contains(&id) => {
                    self.resolve(inner, id, Err(TaskError::new(ErrorKind::Corrupt, e.message().to_string())))
                }
                _ => eprintln!("mpx: pool: {e}"),
            },
        }
    }

    /// Records a task's outcome: the first one wins (a later duplicate is dropped).
    fn resolve(&self, inner: &mut Inner, id: TaskId, o: Outcome) {
        if !inner.pending.remove(&id) {
            return;
        }
        let h = self.table.head();
        if o.is_ok() { &h.done } else { &h.failed }.fetch_add(1, Relaxed);
        if !inner.abandoned.remove(&id) {
            inner.finished.insert(id, o);
        }
    }

    /// Reaps workers that ended, fails the task a dead one took, and starts replacements
    /// while the pool is open (or closed with tasks left in the queue).
    fn check_workers(&self, inner: &mut Inner) -> Result<()> {
        for i in 0..inner.workers.len() {
            let ended = match &inner.workers[i] {
                None => None,
                Some(p) => match p.exitcode()? {
                    None => continue,
                    Some(c) => Some(c),
                },
            };
            if let Some(code) = ended {
                inner.workers[i] = None;
                self.worker_ended(inner, i, code)?;
            }
            // Also a slot whose replacement failed to start before (fork failed): try again.
            let replace = match inner.run {
                Run::Open => true,
                Run::Closed => !self.tasks.is_empty(),
                Run::Terminated => false,
            };
            if replace {
                self.start_worker(inner, i)?;
            }
        }
        Ok(())
    }

    /// The worker of slot `i` ended with exit code `code`: if its slot says it was running a
    /// task, decide (under the task queue's consumer lock) whether it had taken it; if so and
    /// nobody else has it or reported it, fail it with WorkerDied.
    fn worker_ended(&self, inner: &mut Inner, i: usize, code: i32) -> Result<()> {
        let slot = self.table.slot(i as u32);
        let state = slot.state.load(Acquire);
        if state == WorkerState::Busy as u32 {
            let (task, seq) = (slot.task.load(Relaxed), slot.seq.load(Relaxed));
            self.drain(inner)?;
            if inner.pending.contains(&task) {
                let mut checked = Ok(());
                self.tasks
                    .with_consumers_held(SETTLE_WAIT, |got| {
                        if got <= seq {
                            return; // never committed: still queued for another worker
                        }
                        let other = (0..self.table.slots()).filter(|&j| j != i as u32).any(|j| {
                            let s = self.table.slot(j);
                            s.state.load(Acquire) == WorkerState::Busy as u32 && s.task.load(Relaxed) == task
                        });
                        if other {
                            return; // taken by another worker after the queue was repaired
                        }
                        checked = self.drain(inner);
                        if checked.is_ok() && inner.pending.contains(&task) {
                            let e = TaskError::new(
                                ErrorKind::WorkerDied,
                                format!("the worker (pid {}) running it ended ({})", slot.pid.load(Relaxed), how(code)),
                            )
                            .type_name("WorkerDied");
                            self.resolve(inner, task, Err(e));
                        }
                    })
                    .map_err(|e| e.context("pool: checking a dead worker's task"))?;
                checked?;
            }
        }
        let end =
            if code == 0 && state == WorkerState::Exited as u32 { WorkerState::Exited } else { WorkerState::Dead };
        slot.state.store(end as u32, Release);
        Ok(())
    }

    /// Stops taking tasks: workers finish what is queued and exit. Submit is then State.
    pub fn close(&self) -> Result<()> {
        let mut inner = self.lock();
        if inner.run == Run::Open {
            inner.run = Run::Closed;
            self.table.head().closed.store(1, Release);
            self.tasks.shutdown_timeout(SETTLE_WAIT).map_err(|e| e.context("pool: close"))?;
        }
        Ok(())
    }

    /// After close (or terminate): waits until every worker has exited (replacing any that
    /// dies while tasks are queued) and every result is collected. State on an open pool.
    /// A named pool's names are removed at the end.
    pub fn join(&self, timeout: impl Into<Timeout>) -> Result<()> {
        let mut slices = Slices::new(timeout.into());
        let mut inner = self.lock();
        if inner.run == Run::Open {
            return Err(err!(State, "pool: join before close or terminate"));
        }
        loop {
            self.check_workers(&mut inner)?;
            if inner.workers.iter().all(|w| w.is_none()) {
                self.drain(&mut inner)?;
                // Every task was taken and reported, or failed by its dead worker: anything
                // left would be a bug, and must not leave a waiter waiting.
                let left: Vec<TaskId> = inner.pending.iter().copied().collect();
                for id in left {
                    let e = TaskError::new(ErrorKind::WorkerDied, "the pool ended before the task was run");
                    self.resolve(&mut inner, id, Err(e));
                }
                unlink_all(&std::mem::take(&mut inner.names));
                return Ok(());
            }
            let slice = slices.next().ok_or_else(|| err!(Timeout, "pool: join: workers still running"))?;
            self.pump(&mut inner, slice)?;
        }
    }

    /// Stops at once: kills the workers (SIGKILL) and reaps them; tasks not finished fail with
    /// Closed. Idempotent. A named pool's names are removed.
    pub fn terminate(&self) -> Result<()> {
        let mut inner = self.lock();
        self.terminate_locked(&mut inner)
    }

    fn terminate_locked(&self, inner: &mut Inner) -> Result<()> {
        let first = inner.run != Run::Terminated;
        inner.run = Run::Terminated;
        self.table.head().closed.store(1, Release);
        if first {
            let _ = self.tasks.shutdown_timeout(SETTLE_WAIT);
        }
        let mut res = Ok(());
        for w in inner.workers.iter().flatten() {
            let _ = w.kill();
        }
        for i in 0..inner.workers.len() {
            if let Some(w) = inner.workers[i].take() {
                if let Err(e) = w.join(REAP_WAIT) {
                    res = Err(e);
                }
                self.table.slot(i as u32).state.store(WorkerState::Dead as u32, Release);
            }
        }
        let _ = self.drain(inner);
        let left: Vec<TaskId> = inner.pending.iter().copied().collect();
        for id in left {
            self.resolve(inner, id, Err(TaskError::new(ErrorKind::Closed, "the pool was terminated")));
        }
        unlink_all(&std::mem::take(&mut inner.names));
        res
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut inner = std::mem::replace(
            inner,
            Inner {
                workers: Vec::new(),
                pending: HashSet::new(),
                finished: HashMap::new(),
                abandoned: HashSet::new(),
                next_id: 0,
                run: Run::Terminated,
                last_check: Instant::now(),
                names: Vec::new(),
            },
        );
        let _ = self.terminate_locked(&mut inner);
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("name", &self.name()).field("size", &self.size()).finish()
    }
}

fn unlink_all(names: &[String]) {
    for n in names {
        let _ = crate::object::Segment::unlink(n);
    }
}

/// multiprocessing's chunksize: len / (4 * workers), rounded up.
fn default_chunksize(len: usize, workers: usize) -> usize {
    len.div_ceil(4 * workers.max(1)).max(1)
}

/// The slices a wait pumps for: what is left of its timeout (a CHECK_EVERY slice at a time
/// when it has none), and at least one look even with a zero timeout.
struct Slices {
    deadline: Option<Instant>,
    looked: bool,
}

impl Slices {
    fn new(t: Timeout) -> Slices {
        Slices { deadline: t.deadline(), looked: false }
    }

    /// The next slice, or None once the deadline passed after a look.
    fn next(&mut self) -> Option<Duration> {
        let left = match self.deadline {
            None => CHECK_EVERY,
            Some(d) => d.saturating_duration_since(Instant::now()),
        };
        if left.is_zero() && self.looked {
            return None;
        }
        self.looked = true;
        Some(left)
    }
}

/// The timeout left until `deadline`, as a Timeout (Timeout error once it passed).
fn slice_or_forever(deadline: Option<Instant>) -> Result<Timeout> {
    match deadline {
        None => Ok(Timeout::Forever),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Err(err!(Timeout, "pool: map did not finish in time"))
            } else {
                Ok(Timeout::After(left))
            }
        }
    }
}

/// "killed by signal 9", "exit code 3".
fn how(code: i32) -> String {
    if code < 0 {
        format!("killed by signal {}", -code)
    } else {
        format!("exit code {code}")
    }
}

impl From<TaskError> for Error {
    fn from(e: TaskError) -> Error {
        Error::new(e.kind, e.to_string())
    }
}
