//! C ABI for queues: `mpx_queue_*`. Thin shims over crate::queue (docs/QUEUES.md).
//!
//! Messages are byte strings. Copying calls: `mpx_queue_put` / `mpx_queue_get` (into a caller
//! buffer; MPX_E_BUFFER_TOO_SMALL reports the size needed and leaves the message queued) /
//! `mpx_queue_get_alloc`; batches: `mpx_queue_put_many` / `mpx_queue_get_many` with one flat
//! buffer and an array of lengths. Zero-copy: `mpx_queue_reserve` + `mpx_queue_commit` (or
//! `_abort`) for writers, `mpx_queue_read` + `mpx_queue_read_commit` (or `_read_abort`) for
//! readers. Timeouts are int64_t ns: MPX_FOREVER waits, 0 never waits for room or messages
//! (MPX_E_FULL / MPX_E_EMPTY at once), other negatives are MPX_E_INVALID.
//!
//! Note on names: `mpx_queue_close` frees the handle, as for every kind; closing the queue
//! itself for every process (Python's "close": blocked callers wake with MPX_E_CLOSED) is
//! `mpx_queue_shutdown`.

use std::ffi::{c_char, c_int, c_void, CString};

use super::alloc::malloc_copy;
use super::handle::{self, object_handle};
use super::{args, guard, mpx_status, MPX_OK};
use crate::queue::{flat_len, Queue, QueueSpec, Variant};
use crate::{err, Result};

/// Queue flag (create): a JoinableQueue (task_done / join).
pub const MPX_QUEUE_JOINABLE: u32 = 0x1_0000;
/// Queue flag (create): a SimpleQueue (no message limit; informational for bindings).
pub const MPX_QUEUE_SIMPLE: u32 = 0x2_0000;
/// The largest capacity a queue can be created with (2 GiB).
pub const MPX_QUEUE_MAX_CAPACITY: usize = 2147483648;

const _: () = assert!(MPX_QUEUE_MAX_CAPACITY == crate::queue::MAX_CAPACITY);

/// A queue handle (opaque). Free with `mpx_queue_close`. May be used from several threads.
pub struct mpx_queue {
    inner: Queue,
    name: CString,
}

object_handle!(mpx_queue, Queue, "queue");

fn spec(capacity: usize, max_messages: u64, own: u32, what: &str) -> Result<QueueSpec> {
    let variant = match own {
        0 => Variant::Queue,
        MPX_QUEUE_JOINABLE => Variant::Joinable,
        MPX_QUEUE_SIMPLE => Variant::Simple,
        _ => return Err(err!(Invalid, "{what}: MPX_QUEUE_JOINABLE and MPX_QUEUE_SIMPLE exclude each other")),
    };
    Ok(QueueSpec { capacity, max_messages, variant })
}

/// Creates a named queue holding at least `capacity` bytes of messages (each message also
/// takes 8 bytes of header and is padded to 8; a message of `capacity` bytes always fits; the
/// exact limit is `mpx_queue_max_message`) and at most `max_messages` messages (0: no limit).
/// `flags`: MPX_F_UNLINK_ON_LAST_CLOSE | MPX_F_MODE_GROUP | MPX_F_MODE_ALL, plus
/// MPX_QUEUE_JOINABLE or MPX_QUEUE_SIMPLE. MPX_E_INVALID for capacity 0 or above
/// MPX_QUEUE_MAX_CAPACITY; MPX_E_EXISTS if the name is taken.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_create(
    name: *const c_char,
    capacity: usize,
    max_messages: u64,
    flags: u32,
    out: *mut *mut mpx_queue,
) -> mpx_status {
    guard("mpx_queue_create", || {
        handle::create_with(out, name, |name| {
            let what = format!("queue '{name}'");
            let (f, own) = args::flags(flags, MPX_QUEUE_JOINABLE | MPX_QUEUE_SIMPLE, &what)?;
            Ok((spec(capacity, max_messages, own, &what)?, f))
        })
    })
}

/// Creates an anonymous queue (as `mpx_queue_create`; `flags`: 0, MPX_QUEUE_JOINABLE or
/// MPX_QUEUE_SIMPLE). Share it with a child through `mpx_queue_fd` + `mpx_queue_open_fd`.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_create_anonymous(
    capacity: usize,
    max_messages: u64,
    flags: u32,
    out: *mut *mut mpx_queue,
) -> mpx_status {
    guard("mpx_queue_create_anonymous", || {
        let what = "anonymous queue";
        let own = args::anonymous_flags(
            flags,
            MPX_QUEUE_JOINABLE | MPX_QUEUE_SIMPLE,
            "MPX_QUEUE_JOINABLE or MPX_QUEUE_SIMPLE",
            what,
        )?;
        handle::create_anonymous(out, spec(capacity, max_messages, own, what)?)
    })
}

/// Opens a named queue (of any variant). `flags`: 0 or MPX_F_UNLINK_ON_LAST_CLOSE
/// (MPX_F_READ_ONLY is refused). MPX_E_NOT_FOUND, MPX_E_KIND if the object is not a queue,
/// MPX_E_VERSION / MPX_E_CORRUPT if the segment does not validate.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_open(name: *const c_char, flags: u32, out: *mut *mut mpx_queue) -> mpx_status {
    guard("mpx_queue_open", || handle::open(out, name, flags))
}

/// Opens the queue behind an inherited or received fd (duplicated: the caller keeps `fd`).
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_queue) -> mpx_status {
    guard("mpx_queue_open_fd", || handle::open_fd(out, fd, flags))
}

/// Frees the handle. Does not shut the queue down nor remove its name; an open reservation or
/// in-place read of this process stays open (other processes take it over once this process
/// exits). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_close(q: *mut mpx_queue) {
    handle::close("mpx_queue_close", q)
}

/// Removes a queue's name (processes that have it open keep using it).
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_queue_unlink", || handle::unlink::<mpx_queue>(name))
}

/// Removes this queue's name if it still refers to this queue. MPX_E_INVALID for an anonymous
/// queue, MPX_E_NOT_FOUND if the name was already removed.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_unlink_self(q: *const mpx_queue) -> mpx_status {
    guard("mpx_queue_unlink_self", || handle::unlink_self(q))
}

/// Writes the queue's fd to `*fd` (owned by the handle; dup it to keep it).
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_fd(q: *const mpx_queue, fd: *mut c_int) -> mpx_status {
    guard("mpx_queue_fd", || handle::fd(q, fd))
}

/// The queue's name ("" if anonymous; NULL for a NULL handle). Valid until `mpx_queue_close`.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_name(q: *const mpx_queue) -> *const c_char {
    handle::name(q)
}

/// Puts one message of `len` bytes (NULL `data` only with `len` 0), waiting at most
/// `timeout_ns` for room. MPX_E_FULL (timeout 0) / MPX_E_TIMEOUT when there is none;
/// MPX_E_TOO_BIG at once if it can never fit; MPX_E_CLOSED after shutdown; MPX_E_STATE if this
/// thread has a reservation open on the queue.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_put(
    q: *const mpx_queue,
    data: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> mpx_status {
    guard("mpx_queue_put", || {
        let q = args::handle(q)?;
        let t = args::timeout(timeout_ns)?;
        q.inner.put(args::bytes(data, len, "data")?, t)?;
        Ok(MPX_OK)
    })
}

/// Gets one message into `buf` (`cap` bytes; NULL only with `cap` 0) and writes its length to
/// `*len`. Waits at most `timeout_ns`: MPX_E_EMPTY (timeout 0) / MPX_E_TIMEOUT when there is
/// none; MPX_E_CLOSED once the queue is shut down and empty. MPX_E_BUFFER_TOO_SMALL if the next
/// message is larger than `cap`: the message stays in the queue and `*len` is set to its size
/// (the one out-parameter written on failure), so a caller can grow its buffer and call again.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_get(
    q: *const mpx_queue,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    timeout_ns: i64,
) -> mpx_status {
    guard("mpx_queue_get", || {
        args::out(len, "len")?;
        let q = args::handle(q)?;
        let t = args::timeout(timeout_ns)?;
        match q.inner.get_into_or_size(args::bytes_mut(buf, cap, "buf")?, t)? {
            Ok(n) => {
                *len = n;
                Ok(MPX_OK)
            }
            Err(need) => {
                // The one out-parameter written on failure: the size to grow the buffer to.
                *len = need;
                Err(q.inner.too_small(need, cap))
            }
        }
    })
}

/// Gets one message into memory the library allocates: `*data` (free it with `mpx_free`; never
/// NULL on success, even for an empty message) and `*len`. Waits as `mpx_queue_get`.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_get_alloc(
    q: *const mpx_queue,
    data: *mut *mut u8,
    len: *mut usize,
    timeout_ns: i64,
) -> mpx_status {
    guard("mpx_queue_get_alloc", || {
        args::out(data, "data")?;
        args::out(len, "len")?;
        let q = args::handle(q)?;
        let t = args::timeout(timeout_ns)?;
        let (p, n) = q.inner.get_with(t, |m| Some((malloc_copy(m), m.len())))?.expect("always taken");
        *data = p;
        *len = n;
        Ok(MPX_OK)
    })
}

/// Puts `n` messages at once, all or none: message i is `lens[i]` bytes of `data`, the
/// messages back to back. Waits at most `timeout_ns` until all fit; they are stored next to
/// each other (no other producer's message between them). One lock round trip. MPX_E_TOO_BIG
/// at once if the batch can never fit (bytes or message limit). `n` 0 does nothing.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_put_many(
    q: *const mpx_queue,
    data: *const c_void,
    lens: *const usize,
    n: usize,
    timeout_ns: i64,
) -> mpx_status {
    guard("mpx_queue_put_many", || {
        let q = args::handle(q)?;
        let t = args::timeout(timeout_ns)?;
        let lens = args::array(lens, n, "lens")?;
        let data = args::bytes(data, flat_len(lens)?, "data")?;
        q.inner.put_many_flat(data, lens, t)?;
        Ok(MPX_OK)
    })
}

/// Gets the messages that are ready, up to `max_n`, into `buf` (`cap` bytes), back to back:
/// message i is `lens[i]` bytes (the array has room for `max_n`). Waits at most `timeout_ns`
/// for the first one, then takes as many as are ready and fit in `buf`; one lock round trip.
/// Writes how many to `*count`. If the first does not fit: MPX_E_BUFFER_TOO_SMALL with
/// `lens[0]` set to its size (it stays queued). Otherwise as `mpx_queue_get`.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_get_many(
    q: *const mpx_queue,
    buf: *mut c_void,
    cap: usize,
    lens: *mut usize,
    max_n: usize,
    count: *mut usize,
    timeout_ns: i64,
) -> mpx_status {
    guard("mpx_queue_get_many", || {
        args::out(count, "count")?;
        args::out(lens, "lens")?;
        let q = args::handle(q)?;
        let t = args::timeout(timeout_ns)?;
        if max_n == 0 {
            return Err(err!(Invalid, "max_n 0: nothing to get"));
        }
        let lens = args::array_mut(lens, max_n, "lens")?;
        match q.inner.get_many_into(args::bytes_mut(buf, cap, "buf")?, lens, t)? {
            Ok(got) => {
                *count = got;
                Ok(MPX_OK)
            }
            Err(need) => {
                lens[0] = need;
                Err(q.inner.too_small(need, cap))
            }
        }
    })
}

/// Zero-copy put, step 1: waits at most `timeout_ns` for room for a message of up to `max_len`
/// bytes and writes where to put its bytes to `*ptr` (8-byte aligned, `max_len` bytes). The
/// producer side stays locked for this process until `mpx_queue_commit` or `mpx_queue_abort`:
/// other producers wait meanwhile, and this thread must not put to the queue before (that is
/// MPX_E_STATE). A process that dies with a reservation open loses it; nothing else.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_reserve(
    q: *const mpx_queue,
    max_len: usize,
    timeout_ns: i64,
    ptr: *mut *mut c_void,
) -> mpx_status {
    guard("mpx_queue_reserve", || {
        args::out(ptr, "ptr")?;
        let q = args::handle(q)?;
        let t = args::timeout(timeout_ns)?;
        *ptr = q.inner.reserve_raw(max_len, t)?.cast();
        Ok(MPX_OK)
    })
}

/// Zero-copy put, step 2: publishes the reserved message with its final length `len` (<= the
/// reserved size; MPX_E_INVALID otherwise, and the reservation stays open). MPX_E_STATE if this
/// process has no reservation open on the queue.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_commit(q: *const mpx_queue, len: usize) -> mpx_status {
    guard("mpx_queue_commit", || {
        args::handle(q)?.inner.commit_raw(len)?;
        Ok(MPX_OK)
    })
}

/// Drops the open reservation: nothing is published. MPX_E_STATE if none is open.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_abort(q: *const mpx_queue) -> mpx_status {
    guard("mpx_queue_abort", || {
        args::handle(q)?.inner.abort_raw()?;
        Ok(MPX_OK)
    })
}

/// Zero-copy get, step 1: waits at most `timeout_ns` for the next message and points `*ptr`
/// at it in place (`*len` bytes, 8-byte aligned; read-only). The consumer side stays locked
/// for this process until `mpx_queue_read_commit` (the message leaves the queue) or
/// `mpx_queue_read_abort` (it stays); other consumers wait meanwhile. A process that dies with
/// a read open leaves the message to the others.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_read(
    q: *const mpx_queue,
    timeout_ns: i64,
    ptr: *mut *const c_void,
    len: *mut usize,
) -> mpx_status {
    guard("mpx_queue_read", || {
        args::out(ptr, "ptr")?;
        args::out(len, "len")?;
        let q = args::handle(q)?;
        let t = args::timeout(timeout_ns)?;
        let (p, n) = q.inner.read_raw(t)?;
        *ptr = p.cast();
        *len = n;
        Ok(MPX_OK)
    })
}

/// Zero-copy get, step 2: removes the message being read. MPX_E_STATE if no read is open in
/// this process.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_read_commit(q: *const mpx_queue) -> mpx_status {
    guard("mpx_queue_read_commit", || {
        args::handle(q)?.inner.read_commit_raw()?;
        Ok(MPX_OK)
    })
}

/// Ends the open in-place read and leaves the message in the queue. MPX_E_STATE if none.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_read_abort(q: *const mpx_queue) -> mpx_status {
    guard("mpx_queue_read_abort", || {
        args::handle(q)?.inner.read_abort_raw()?;
        Ok(MPX_OK)
    })
}

/// Shuts the queue down for every process (Python's Queue.close, for all users): puts fail
/// with MPX_E_CLOSED, gets return what is left and then MPX_E_CLOSED, and every blocked put or
/// get wakes. Waits for an open reservation (or a put in progress) to end first, without limit:
/// a producer that is stopped (SIGSTOP, a debugger) while holding the producer side delays it
/// until it runs again; `mpx_queue_shutdown_timeout` bounds the wait. Idempotent.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_shutdown(q: *const mpx_queue) -> mpx_status {
    guard("mpx_queue_shutdown", || {
        args::handle(q)?.inner.shutdown()?;
        Ok(MPX_OK)
    })
}

/// `mpx_queue_shutdown`, waiting at most `timeout_ns` for the producer side. MPX_E_TIMEOUT: the
/// queue was not shut down (nothing changed), because a producer held its side that long.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_shutdown_timeout(q: *const mpx_queue, timeout_ns: i64) -> mpx_status {
    guard("mpx_queue_shutdown_timeout", || {
        let q = args::handle(q)?;
        q.inner.shutdown_timeout(args::timeout(timeout_ns)?)?;
        Ok(MPX_OK)
    })
}

/// Whether the queue was shut down (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_is_shutdown(q: *const mpx_queue) -> bool {
    args::opt_handle(q).is_some_and(|q| q.inner.is_shutdown())
}

/// Messages in the queue (exact whenever no put or get is half-way; 0 for NULL). Never more than
/// the queue can hold: a count corrupted in shared memory reads as that maximum.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_qsize(q: *const mpx_queue) -> usize {
    args::opt_handle(q).map_or(0, |q| q.inner.qsize() as usize)
}

/// Whether the queue holds no message (true for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_empty(q: *const mpx_queue) -> bool {
    args::opt_handle(q).map_or(true, |q| q.inner.is_empty())
}

/// Whether a put would wait now: the message limit is reached or not even an empty message
/// fits (false for NULL). A large message may not fit while this is false.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_full(q: *const mpx_queue) -> bool {
    args::opt_handle(q).is_some_and(|q| q.inner.is_full())
}

/// Ring bytes (records with their 8-byte headers, padded to 8), >= the capacity asked for
/// (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_capacity(q: *const mpx_queue) -> usize {
    args::opt_handle(q).map_or(0, |q| q.inner.capacity())
}

/// The largest message that can be put (capacity - 8; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_max_message(q: *const mpx_queue) -> usize {
    args::opt_handle(q).map_or(0, |q| q.inner.max_message())
}

/// The message limit (0: none, or NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_max_messages(q: *const mpx_queue) -> u64 {
    args::opt_handle(q).map_or(0, |q| q.inner.max_messages())
}

/// Ring bytes in use now (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_bytes_used(q: *const mpx_queue) -> usize {
    args::opt_handle(q).map_or(0, |q| q.inner.bytes_used() as usize)
}

/// The variant flag the queue was created with: 0, MPX_QUEUE_JOINABLE or MPX_QUEUE_SIMPLE
/// (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_variant(q: *const mpx_queue) -> u32 {
    args::opt_handle(q).map_or(0, |q| match q.inner.variant() {
        Variant::Queue => 0,
        Variant::Joinable => MPX_QUEUE_JOINABLE,
        Variant::Simple => MPX_QUEUE_SIMPLE,
    })
}

/// JoinableQueue: marks one task taken from the queue done. MPX_E_STATE if called more times
/// than messages were put (Python's ValueError); MPX_E_UNSUPPORTED on a queue not created with
/// MPX_QUEUE_JOINABLE.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_task_done(q: *const mpx_queue) -> mpx_status {
    guard("mpx_queue_task_done", || {
        args::handle(q)?.inner.task_done()?;
        Ok(MPX_OK)
    })
}

/// JoinableQueue: waits at most `timeout_ns` until every message put has been marked done.
/// MPX_E_TIMEOUT (also for timeout 0 with tasks unfinished); MPX_E_UNSUPPORTED if not joinable.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_join(q: *const mpx_queue, timeout_ns: i64) -> mpx_status {
    guard("mpx_queue_join", || {
        let q = args::handle(q)?;
        q.inner.join(args::timeout(timeout_ns)?)?;
        Ok(MPX_OK)
    })
}

/// JoinableQueue: messages put and not yet marked done (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_unfinished(q: *const mpx_queue) -> u64 {
    args::opt_handle(q).map_or(0, |q| q.inner.unfinished())
}

/// How many times a process found a side of the queue held by a dead process and repaired it
/// (0 for NULL). For monitoring and tests.
#[no_mangle]
pub unsafe extern "C" fn mpx_queue_recoveries(q: *const mpx_queue) -> u64 {
    args::opt_handle(q).map_or(0, |q| q.inner.recoveries())
}
