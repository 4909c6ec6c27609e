//! C ABI for process pools: `mpx_pool_registry_*` (the functions workers run, by name),
//! `mpx_task_out_*` (what a function hands back), `mpx_pool_opts_*` and `mpx_pool_*`. Thin
//! shims over crate::pool.
//!
//! The workers are forked children of the process that calls `mpx_pool_create`: they inherit
//! the registry as it was then (a function added later is unknown to them) and run the
//! callbacks in a single-threaded child, so a callback must not rely on threads of the parent.
//! A callback that crashes (abort, SIGSEGV) kills only its worker: that task fails with
//! MPX_E_WORKER_DIED, the worker is replaced, and every other task goes on.

use std::ffi::{c_char, c_void, CString};

use super::alloc::malloc_copy;
use super::handle::{self, plain_handle};
use super::{args, guard, mpx_status, MPX_OK};
use crate::pool::{Pool, PoolOptions, Registry, TaskError, TaskId, WorkerState};
use crate::{err, ErrorKind, Result};

/// Worker state (`mpx_pool_worker`): being started, it has not run yet.
pub const MPX_POOL_WORKER_STARTING: u32 = 0;
/// Worker state: waiting for a task.
pub const MPX_POOL_WORKER_IDLE: u32 = 1;
/// Worker state: running a task.
pub const MPX_POOL_WORKER_BUSY: u32 = 2;
/// Worker state: died without being asked to (signal, crash); the pool replaces it.
pub const MPX_POOL_WORKER_DEAD: u32 = 3;
/// Worker state: exited as asked (closed pool, max tasks per child).
pub const MPX_POOL_WORKER_EXITED: u32 = 4;
/// The longest function name, in bytes.
pub const MPX_POOL_MAX_FNAME: usize = 255;

const _: () = {
    assert!(MPX_POOL_WORKER_STARTING == WorkerState::Starting as u32);
    assert!(MPX_POOL_WORKER_IDLE == WorkerState::Idle as u32);
    assert!(MPX_POOL_WORKER_BUSY == WorkerState::Busy as u32);
    assert!(MPX_POOL_WORKER_DEAD == WorkerState::Dead as u32);
    assert!(MPX_POOL_WORKER_EXITED == WorkerState::Exited as u32);
    assert!(MPX_POOL_MAX_FNAME == crate::pool::MAX_FNAME);
};

/// The functions a pool's workers run, by name (opaque). Complete it before `mpx_pool_create`:
/// the pool takes a copy, so the registry may be freed (or changed for another pool) after.
/// Not for concurrent use from several threads.
pub struct mpx_pool_registry {
    inner: Registry,
}

/// Where a task function puts its outcome (opaque): `mpx_task_out_set` for the result bytes,
/// or `mpx_task_out_error` for an error. The one a worker passes is valid during the call only.
pub struct mpx_task_out {
    outcome: Option<std::result::Result<Vec<u8>, TaskError>>,
}

/// Options for a new pool (opaque). NULL options mean every default.
pub struct mpx_pool_opts {
    inner: PoolOptions,
}

/// A process pool (the owner's handle, opaque). May be used from several threads (calls
/// serialise). `mpx_pool_free` terminates a pool still running.
pub struct mpx_pool {
    inner: Pool,
    name: CString,
}

plain_handle!(mpx_pool_registry, "reg");
plain_handle!(mpx_task_out, "out");
plain_handle!(mpx_pool_opts, "opts");
plain_handle!(mpx_pool, "pool");

/// A task function, run in a worker: `len` argument bytes at `args` in; the outcome through
/// `out` (`mpx_task_out_set` / `mpx_task_out_error`). Return 0 for success (no outcome set: an
/// empty result). A non-zero return without an error set fails the task with that status (a
/// value that is no MPX_E_* code fails it with MPX_E_INVALID); an error set always wins.
pub type mpx_task_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, args: *const u8, len: usize, out: *mut mpx_task_out) -> i32>;

/// A mutable handle argument (NULL is MPX_E_INVALID naming it).
///
/// # Safety
/// `p` is NULL or a live handle, not otherwise borrowed.
unsafe fn handle_mut<'a, H: handle::CHandle>(p: *mut H) -> Result<&'a mut H> {
    // SAFETY: a live, unshared handle by the caller's contract.
    unsafe { p.as_mut() }.ok_or_else(|| err!(Invalid, "{} is NULL", H::ARG))
}

/// Runs a C task function: its outcome, or the failure its return value says.
///
/// # Safety
/// `f` is a valid task function; `user` is what it expects.
unsafe fn call_task(
    f: unsafe extern "C" fn(*mut c_void, *const u8, usize, *mut mpx_task_out) -> i32,
    user: *mut c_void,
    a: &[u8],
) -> std::result::Result<Vec<u8>, TaskError> {
    let mut out = mpx_task_out { outcome: None };
    // SAFETY: `a` is readable for its length (never NULL: a dangling non-NULL pointer for an
    // empty slice); `out` lives across the call; the function is the caller's.
    let rc = unsafe { f(user, a.as_ptr(), a.len(), &mut out) };
    match (out.outcome, rc) {
        (Some(Err(e)), _) => Err(e),
        (o, 0) => o.unwrap_or_else(|| Ok(Vec::new())),
        (_, rc) => Err(match ErrorKind::from_code(rc) {
            Some(k) => TaskError::new(k, format!("the task function returned {}", k.name())),
            None => {
                TaskError::new(ErrorKind::Invalid, format!("the task function returned {rc}, not an MPX_E_* status"))
            }
        }),
    }
}

/// Creates an empty registry. Free it with `mpx_pool_registry_free`.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_registry_new(out: *mut *mut mpx_pool_registry) -> mpx_status {
    guard("mpx_pool_registry_new", || {
        args::out(out, "out")?;
        Ok(handle::put(out, mpx_pool_registry { inner: Registry::new() }))
    })
}

/// Registers `func` as `name` (1..=MPX_POOL_MAX_FNAME bytes; replaces a function of that
/// name); the workers call `func(user, args, len, out)`. `user` is handed to it as it is (it
/// may be NULL; the workers see the parent's memory as of the fork).
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_registry_add(
    reg: *mut mpx_pool_registry,
    name: *const c_char,
    func: mpx_task_fn,
    user: *mut c_void,
) -> mpx_status {
    guard("mpx_pool_registry_add", || {
        let reg = handle_mut(reg)?;
        let name = args::string(name, "name")?;
        let f = func.ok_or_else(|| err!(Invalid, "func is NULL"))?;
        let user = user as usize;
        // SAFETY: the caller registered a valid task function for this `user`.
        reg.inner.register(name, move |a| unsafe { call_task(f, user as *mut c_void, a) })?;
        Ok(MPX_OK)
    })
}

/// Frees a registry (pools made from it keep their copy). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_registry_free(reg: *mut mpx_pool_registry) {
    handle::close("mpx_pool_registry_free", reg)
}

/// Creates a task outcome of one's own, to call a task function outside a pool (a unit test of
/// it); read it with `mpx_task_out_result`, free it with `mpx_task_out_free`.
#[no_mangle]
pub unsafe extern "C" fn mpx_task_out_new(out: *mut *mut mpx_task_out) -> mpx_status {
    guard("mpx_task_out_new", || {
        args::out(out, "out")?;
        Ok(handle::put(out, mpx_task_out { outcome: None }))
    })
}

/// Frees an outcome made by `mpx_task_out_new` (never the one a worker passes). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_task_out_free(out: *mut mpx_task_out) {
    handle::close("mpx_task_out_free", out)
}

/// Sets the task's result: `len` bytes at `data` (copied; NULL `data` only with `len` 0).
/// Replaces an outcome set before.
#[no_mangle]
pub unsafe extern "C" fn mpx_task_out_set(out: *mut mpx_task_out, data: *const u8, len: usize) -> mpx_status {
    guard("mpx_task_out_set", || {
        let o = handle_mut(out)?;
        o.outcome = Some(Ok(args::bytes(data.cast(), len, "data")?.to_vec()));
        Ok(MPX_OK)
    })
}

/// Fails the task with `status` (a negative MPX_E_* code, else MPX_E_INVALID here), the name of
/// the error's type (e.g. "ValueError"), a message and a traceback text, which the waiter gets
/// (`mpx_pool_wait_error`). `type_name` and `traceback` may be NULL (none). Replaces an
/// outcome set before.
#[no_mangle]
pub unsafe extern "C" fn mpx_task_out_error(
    out: *mut mpx_task_out,
    status: mpx_status,
    type_name: *const c_char,
    message: *const c_char,
    traceback: *const c_char,
) -> mpx_status {
    guard("mpx_task_out_error", || {
        let o = handle_mut(out)?;
        let kind = ErrorKind::from_code(status)
            .ok_or_else(|| err!(Invalid, "task error: status {status} is not an MPX_E_* code"))?;
        let message = args::string(message, "message")?;
        let t = if type_name.is_null() { "" } else { args::string(type_name, "type_name")? };
        let tb = if traceback.is_null() { "" } else { args::string(traceback, "traceback")? };
        o.outcome = Some(Err(TaskError::new(kind, message).type_name(t).traceback(tb)));
        Ok(MPX_OK)
    })
}

/// Reads an outcome made by `mpx_task_out_new` after a task function ran on it: MPX_OK with the
/// result in `*data` and `*len` (valid until the outcome is freed or set again; an empty result
/// gives a non-NULL pointer and 0), or the status of an error set, with its message in
/// `mpx_last_error`. MPX_E_STATE if nothing was set.
#[no_mangle]
pub unsafe extern "C" fn mpx_task_out_result(
    out: *const mpx_task_out,
    data: *mut *const u8,
    len: *mut usize,
) -> mpx_status {
    guard("mpx_task_out_result", || {
        args::out(data, "data")?;
        args::out(len, "len")?;
        match &args::handle(out)?.outcome {
            None => Err(err!(State, "task outcome: nothing was set")),
            Some(Ok(b)) => {
                *data = b.as_ptr();
                *len = b.len();
                Ok(MPX_OK)
            }
            Some(Err(e)) => Err(crate::Error::from(e.clone())),
        }
    })
}

/// Creates an options object with every default: as many workers as CPUs this process may run
/// on, workers never replaced for their task count, task and result queues of 1 MiB.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_opts_new(out: *mut *mut mpx_pool_opts) -> mpx_status {
    guard("mpx_pool_opts_new", || {
        args::out(out, "out")?;
        Ok(handle::put(out, mpx_pool_opts { inner: PoolOptions::new() }))
    })
}

/// Frees an options object. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_opts_free(opts: *mut mpx_pool_opts) {
    handle::close("mpx_pool_opts_free", opts)
}

/// Sets the number of workers (1..=1024, checked at `mpx_pool_create`; 0: the default).
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_opts_set_workers(opts: *mut mpx_pool_opts, n: usize) -> mpx_status {
    guard("mpx_pool_opts_set_workers", || {
        handle_mut(opts)?.inner.workers = (n != 0).then_some(n);
        Ok(MPX_OK)
    })
}

/// Replaces a worker after it ran `n` tasks (0: never, the default).
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_opts_set_max_tasks_per_child(opts: *mut mpx_pool_opts, n: u64) -> mpx_status {
    guard("mpx_pool_opts_set_max_tasks_per_child", || {
        handle_mut(opts)?.inner.max_tasks_per_child = n;
        Ok(MPX_OK)
    })
}

/// Sets the task queue's bytes (0: the default, 1 MiB): the largest task is about this.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_opts_set_task_capacity(opts: *mut mpx_pool_opts, bytes: usize) -> mpx_status {
    guard("mpx_pool_opts_set_task_capacity", || {
        handle_mut(opts)?.inner.task_capacity = (bytes != 0).then_some(bytes);
        Ok(MPX_OK)
    })
}

/// Sets the result queue's bytes (0: the default, 1 MiB): the largest result is about this; a
/// larger one fails its task with MPX_E_TOO_BIG.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_opts_set_result_capacity(opts: *mut mpx_pool_opts, bytes: usize) -> mpx_status {
    guard("mpx_pool_opts_set_result_capacity", || {
        handle_mut(opts)?.inner.result_capacity = (bytes != 0).then_some(bytes);
        Ok(MPX_OK)
    })
}

/// Creates a pool and starts its workers, forked from the calling process, which run the
/// functions of `reg` (a copy is taken: complete the registry first). `name` may be NULL (an
/// anonymous pool); a name makes the pool's objects named `name`, `name.tasks` and
/// `name.results` (visible in `mpx ls`, removed when the pool ends). `opts` may be NULL
/// (defaults). MPX_E_INVALID for a worker count above 1024; MPX_E_EXISTS if a name is taken.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_create(
    name: *const c_char,
    opts: *const mpx_pool_opts,
    reg: *const mpx_pool_registry,
    out: *mut *mut mpx_pool,
) -> mpx_status {
    guard("mpx_pool_create", || {
        args::out(out, "out")?;
        let reg = args::handle(reg)?;
        let mut o = args::opt_handle(opts).map(|o| o.inner.clone()).unwrap_or_default();
        if !name.is_null() {
            o.name = Some(args::name(name)?.to_string());
        }
        let pool = Pool::new(o, reg.inner.clone())?;
        let name = handle::c_name(pool.name());
        Ok(handle::put(out, mpx_pool { inner: pool, name }))
    })
}

/// Frees the pool: terminates it first if it still runs (its workers are killed and reaped, a
/// named pool's names removed). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_free(pool: *mut mpx_pool) {
    handle::close("mpx_pool_free", pool)
}

/// The pool's name ("" if anonymous; NULL for a NULL handle). Valid until `mpx_pool_free`.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_name(pool: *const mpx_pool) -> *const c_char {
    args::opt_handle(pool).map_or(std::ptr::null(), |p| p.name.as_ptr())
}

/// The number of worker slots (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_size(pool: *const mpx_pool) -> usize {
    args::opt_handle(pool).map_or(0, |p| p.inner.size())
}

/// Submits a call of function `fname` on `len` bytes at `args` (NULL only with `len` 0) and
/// writes the task's id to `*task`. Waits for room in the task queue (collecting results
/// meanwhile). A name no worker has registered is no error here: the task fails with
/// MPX_E_NOT_FOUND. MPX_E_STATE after close or terminate; MPX_E_TOO_BIG for a task larger than
/// the task queue; MPX_E_INVALID for a name of 0 or more than MPX_POOL_MAX_FNAME bytes.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_submit(
    pool: *const mpx_pool,
    fname: *const c_char,
    args: *const u8,
    len: usize,
    task: *mut u64,
) -> mpx_status {
    guard("mpx_pool_submit", || {
        args::out(task, "task")?;
        let p = args::handle(pool)?;
        let fname = args::string(fname, "fname")?;
        *task = p.inner.submit(fname, args::bytes(args.cast(), len, "args")?)?;
        Ok(MPX_OK)
    })
}

/// Waits at most `timeout_ns` for task `task` and takes its result: `*out` (malloc'd, free it
/// with `mpx_free`; never NULL, even for an empty result) and `*len`. A task that failed
/// returns its status (MPX_E_WORKER_DIED when its worker died, MPX_E_NOT_FOUND for an unknown
/// function, or the function's own) with "task N failed: Type: message" and the traceback in
/// `mpx_last_error`; `mpx_pool_wait_error` gives them apart. Either way the task is consumed:
/// waiting for it again is MPX_E_INVALID, as for an id the pool never gave. MPX_E_TIMEOUT
/// leaves it pending.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_wait(
    pool: *const mpx_pool,
    task: u64,
    timeout_ns: i64,
    out: *mut *mut u8,
    len: *mut usize,
) -> mpx_status {
    guard("mpx_pool_wait", || {
        args::out(out, "out")?;
        args::out(len, "len")?;
        let p = args::handle(pool)?;
        let r = p.inner.wait(task, args::timeout(timeout_ns)?)?;
        *out = malloc_copy(&r);
        *len = r.len();
        Ok(MPX_OK)
    })
}

/// As `mpx_pool_wait`, and when the task failed (its status returned) it also writes the
/// remote error apart: `*type_name` (e.g. "ValueError", "WorkerDied"), `*message` and
/// `*traceback`, each a malloc'd NUL-terminated string ("" when the worker gave none; free each
/// with `mpx_free`). Those three are the documented exception to "out-parameters are written
/// only on success": they are written only when the task failed, never on MPX_OK nor on an
/// error of the call itself (MPX_E_TIMEOUT, MPX_E_INVALID).
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_wait_error(
    pool: *const mpx_pool,
    task: u64,
    timeout_ns: i64,
    out: *mut *mut u8,
    len: *mut usize,
    type_name: *mut *mut c_char,
    message: *mut *mut c_char,
    traceback: *mut *mut c_char,
) -> mpx_status {
    guard("mpx_pool_wait_error", || {
        args::out(out, "out")?;
        args::out(len, "len")?;
        args::out(type_name, "type_name")?;
        args::out(message, "message")?;
        args::out(traceback, "traceback")?;
        let p = args::handle(pool)?;
        match p.inner.wait_outcome(task, args::timeout(timeout_ns)?)? {
            Ok(r) => {
                *out = malloc_copy(&r);
                *len = r.len();
                Ok(MPX_OK)
            }
            Err(e) => {
                *type_name = malloc_str(&e.type_name);
                *message = malloc_str(&e.message);
                *traceback = malloc_str(&e.traceback);
                Err(e.to_error(task))
            }
        }
    })
}

/// A malloc'd NUL-terminated copy (an interior NUL cuts it there).
unsafe fn malloc_str(s: &str) -> *mut c_char {
    let b = s.as_bytes();
    let b = &b[..b.iter().position(|c| *c == 0).unwrap_or(b.len())];
    let mut v = Vec::with_capacity(b.len() + 1);
    v.extend_from_slice(b);
    v.push(0);
    // SAFETY: plain bytes.
    unsafe { malloc_copy(&v) }.cast()
}

/// Writes whether task `task` has finished (its result waits for `mpx_pool_wait`) to `*ready`,
/// collecting the results that came meanwhile. Never blocks. MPX_E_INVALID for an id that is
/// neither pending nor finished.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_ready(pool: *const mpx_pool, task: u64, ready: *mut bool) -> mpx_status {
    guard("mpx_pool_ready", || {
        args::out(ready, "ready")?;
        *ready = args::handle(pool)?.inner.ready(task)?;
        Ok(MPX_OK)
    })
}

/// Waits at most `timeout_ns` until one of the `n` tasks in `tasks` has finished and writes its
/// id to `*done` (its result stays for `mpx_pool_wait`). MPX_E_INVALID if none of them is
/// pending or finished (n 0 included); MPX_E_TIMEOUT if none finished in time.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_wait_any(
    pool: *const mpx_pool,
    tasks: *const u64,
    n: usize,
    timeout_ns: i64,
    done: *mut u64,
) -> mpx_status {
    guard("mpx_pool_wait_any", || {
        args::out(done, "done")?;
        let p = args::handle(pool)?;
        let ids: &[TaskId] = args::array(tasks, n, "tasks")?;
        *done = p.inner.wait_any(ids, args::timeout(timeout_ns)?)?;
        Ok(MPX_OK)
    })
}

/// Calls `fname` on each of `n` items and returns the results in order: item i is `lens[i]`
/// bytes of `data`, the items back to back (as `mpx_queue_put_many`). Items travel in chunks of
/// `chunksize` per task (0: multiprocessing's rule, n / (4 * workers) rounded up). On MPX_OK
/// the results are in `*out`, back to back (malloc'd, free it with `mpx_free`; never NULL),
/// result i being `out_lens[i]` bytes (the caller's array of `n`; `data`, `lens` and `out_lens`
/// may be NULL only with `n` 0, which gives an empty result). The first failed chunk's status
/// is returned with its message; MPX_E_TIMEOUT if it all takes longer than `timeout_ns`.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_map(
    pool: *const mpx_pool,
    fname: *const c_char,
    data: *const u8,
    lens: *const usize,
    n: usize,
    chunksize: usize,
    timeout_ns: i64,
    out: *mut *mut u8,
    out_lens: *mut usize,
) -> mpx_status {
    guard("mpx_pool_map", || {
        args::out(out, "out")?;
        // An array of n (NULL only with n 0), checked before any work as an out-parameter is.
        let out_lens = args::array_mut(out_lens, n, "out_lens")?;
        let p = args::handle(pool)?;
        let fname = args::string(fname, "fname")?;
        let t = args::timeout(timeout_ns)?;
        let lens = args::array(lens, n, "lens")?;
        let data = args::bytes(data.cast(), crate::queue::flat_len(lens)?, "data")?;
        let mut items = Vec::with_capacity(n);
        let mut at = 0;
        for l in lens {
            items.push(&data[at..at + l]);
            at += l;
        }
        let rs = p.inner.map(fname, &items, (chunksize != 0).then_some(chunksize), t)?;
        let flat: Vec<u8> = rs.concat();
        for (o, r) in out_lens.iter_mut().zip(&rs) {
            *o = r.len();
        }
        *out = malloc_copy(&flat);
        Ok(MPX_OK)
    })
}

/// Writes what slot `slot` (0..size) of the worker table says: the worker's `*pid` (0 before it
/// started), `*state` (MPX_POOL_WORKER_*), `*task` (the task it runs while busy, else 0: ids
/// start at 1), and the tasks the slot's workers (replacements included) finished `*done` with
/// a result and `*failed` with an error (a task failed because its worker died is not counted
/// here). MPX_E_INVALID for a slot out of range.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_worker(
    pool: *const mpx_pool,
    slot: usize,
    pid: *mut i32,
    state: *mut u32,
    task: *mut u64,
    done: *mut u64,
    failed: *mut u64,
) -> mpx_status {
    guard("mpx_pool_worker", || {
        args::out(pid, "pid")?;
        args::out(state, "state")?;
        args::out(task, "task")?;
        args::out(done, "done")?;
        args::out(failed, "failed")?;
        let p = args::handle(pool)?;
        let ws = p.inner.workers();
        let w = ws.get(slot).ok_or_else(|| err!(Invalid, "pool: slot {slot} of {}", ws.len()))?;
        *pid = w.pid;
        *state = w.state as u32;
        *task = w.task.unwrap_or(0);
        *done = w.done;
        *failed = w.failed;
        Ok(MPX_OK)
    })
}

/// Stops taking tasks: the workers finish what is queued, then exit. Submitting is then
/// MPX_E_STATE. Idempotent.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_close(pool: *const mpx_pool) -> mpx_status {
    guard("mpx_pool_close", || {
        args::handle(pool)?.inner.close()?;
        Ok(MPX_OK)
    })
}

/// After `mpx_pool_close` (or terminate): waits at most `timeout_ns` until every worker has
/// exited and every result is collected (results stay for `mpx_pool_wait`). MPX_E_STATE on an
/// open pool; MPX_E_TIMEOUT if workers still run. A named pool's names are removed at the end.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_join(pool: *const mpx_pool, timeout_ns: i64) -> mpx_status {
    guard("mpx_pool_join", || {
        let p = args::handle(pool)?;
        p.inner.join(args::timeout(timeout_ns)?)?;
        Ok(MPX_OK)
    })
}

/// Stops at once: kills the workers (SIGKILL) and reaps them; tasks not finished fail with
/// MPX_E_CLOSED. Idempotent. A named pool's names are removed.
#[no_mangle]
pub unsafe extern "C" fn mpx_pool_terminate(pool: *const mpx_pool) -> mpx_status {
    guard("mpx_pool_terminate", || {
        args::handle(pool)?.inner.terminate()?;
        Ok(MPX_OK)
    })
}
