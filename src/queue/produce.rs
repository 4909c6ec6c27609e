//! The producer side: put, put_many, and the zero-copy reservation.

use std::sync::atomic::Ordering::*;
use std::time::Duration;

use super::shared::{record_check, record_size, REC_HEADER};
use super::sides::{publish, Held, Side, SpinHow, Wait};
use super::Queue;
use crate::sync::owner;
use crate::wait::Timeout;
use crate::{err, Result};

/// The bytes of messages of these lengths back to back (Invalid if more than memory holds).
pub fn flat_len(lens: &[usize]) -> Result<usize> {
    lens.iter()
        .try_fold(0usize, |t, &l| t.checked_add(l))
        .filter(|t| *t <= isize::MAX as usize)
        .ok_or_else(|| err!(Invalid, "the message lengths add up to more than memory holds"))
}

/// Room a producer waits for while it spins (if the ring is large enough): see produce().
const EAGER_ROOM: u64 = 4096;

impl Queue {
    pub(super) fn check_len(&self, len: usize) -> Result<()> {
        if len as u64 > self.cap - REC_HEADER {
            return Err(err!(
                TooBig,
                "message of {len} bytes can never fit: the largest is {} bytes (capacity {})",
                self.cap - REC_HEADER,
                self.cap
            ));
        }
        Ok(())
    }

    /// Whether `bytes` of records and `n` more messages fit after `tail` (producer lock held).
    #[inline]
    pub(super) fn room(&self, tail: u64, bytes: u64, n: u64) -> Result<bool> {
        let st = self.m.state();
        let hint = self.head_hint.load(Relaxed);
        let used = tail.wrapping_sub(hint);
        if used > self.cap || self.cap - used < bytes {
            let head = st.cpub.index.load(Acquire);
            let used = tail.wrapping_sub(head);
            if used > self.cap {
                return Err(self.corrupt(format!("tail {tail} and head {head} are not within {} bytes", self.cap)));
            }
            self.head_hint.store(head, Relaxed);
            if self.cap - used < bytes {
                return Ok(false);
            }
        }
        if self.max_msgs != 0 {
            let put = st.ppub.count.load(Relaxed);
            let hint = self.got_hint.load(Relaxed);
            let queued = put.wrapping_sub(hint);
            if queued > self.max_msgs || self.max_msgs - queued < n {
                let got = st.cpub.count.load(Acquire);
                // Puts never outrun the limit, so a larger difference is damage (and room_unlocked
                // sends waiters here to find that out).
                if got > put || put - got > self.max_msgs {
                    return Err(
                        self.corrupt(format!("put count {put} and get count {got} differ by more than the limit"))
                    );
                }
                self.got_hint.store(got, Relaxed);
                if self.max_msgs - (put - got) < n {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The same question without the lock, for sleepers: true when worth retrying.
    fn room_unlocked(&self, bytes: u64, n: u64) -> bool {
        let st = self.m.state();
        if st.meta.closed.load(SeqCst) != 0 {
            return true;
        }
        let tail = st.ppub.index.load(SeqCst);
        let head = st.cpub.index.load(SeqCst);
        let used = tail.wrapping_sub(head);
        // A racing (or corrupt) pair of indices: let the locked path judge.
        if used > self.cap {
            return true;
        }
        if self.cap - used < bytes {
            return false;
        }
        if self.max_msgs != 0 {
            let put = st.ppub.count.load(SeqCst);
            let got = st.cpub.count.load(SeqCst);
            let queued = put.wrapping_sub(got);
            return queued > self.max_msgs || self.max_msgs - queued >= n;
        }
        true
    }

    /// Writes one record at index `at`; returns the index after it.
    #[inline]
    fn write_record(&self, at: u64, msg: &[u8]) -> u64 {
        let p = self.ring.at((at % self.cap) as usize);
        // SAFETY: room() checked that [at, at + record_size) is free ring space, which only
        // this lock holder writes; the double mapping makes it contiguous; positions are
        // multiples of 8, so the header words are aligned.
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), p.add(REC_HEADER as usize), msg.len());
            Self::write_header(p, msg.len() as u32);
        }
        at + record_size(msg.len() as u64)
    }

    #[inline]
    pub(super) unsafe fn write_header(p: *mut u8, len: u32) {
        p.cast::<u32>().write_volatile(len);
        p.add(4).cast::<u32>().write_volatile(record_check(len));
    }

    /// The producer path shared by put, put_many and reserve: waits for the lock and for room
    /// for `bytes` of records and `n` messages, then runs `fill(tail)` with the lock held.
    /// `fill` returns Some(new tail) to publish, or None to keep the lock (a reservation).
    fn produce(&self, n: u64, bytes: u64, timeout: Timeout, mut fill: impl FnMut(u64) -> Option<u64>) -> Result<()> {
        let st = self.m.state();
        let mut w = Wait::new(timeout);
        loop {
            // Retries (after waiting) end at the deadline, whatever the predicates said.
            if w.expired() {
                return Err(err!(Timeout, "timed out waiting for room for {bytes} bytes of records"));
            }
            let held = self.lock(Side::Producer, &mut w)?;
            if st.meta.closed.load(Acquire) != 0 {
                return Err(err!(Closed, "the queue was shut down"));
            }
            let tail = st.ppub.index.load(Relaxed);
            if self.room(tail, bytes, n)? {
                match fill(tail) {
                    Some(new_tail) => {
                        let count = st.ppub.count.load(Relaxed) + n;
                        publish(&st.pj, &st.ppub, new_tail, count);
                        drop(held);
                        st.data.notify();
                    }
                    None => held.keep(),
                }
                return Ok(());
            }
            drop(held);
            if w.is_try() {
                return Err(if n > 1 {
                    err!(Full, "no room for {n} messages ({bytes} bytes of records)")
                } else {
                    err!(Full, "no room for a {}-byte message", bytes - REC_HEADER)
                });
            }
            // While spinning, wait for a few pages of room (not just this message's), so the
            // producer does not chase the consumer one message at a time, and look only now
            // and then: the consumer writes the head on every get.
            let eager = bytes.max((self.cap / 8).min(EAGER_ROOM));
            let how = SpinHow { gap: 32, eager: || self.room_unlocked(eager, n) };
            self.wait_until(
                &st.space,
                &mut w,
                || format!("room for {bytes} bytes of records"),
                how,
                || self.room_unlocked(bytes, n),
            )?;
        }
    }

    /// Puts one message, waiting at most `timeout` for room (Timeout::After(ZERO): Full at
    /// once). TooBig if it can never fit; Closed after shutdown.
    #[inline]
    pub fn put(&self, msg: &[u8], timeout: impl Into<Timeout>) -> Result<()> {
        self.check_len(msg.len()).map_err(|e| self.ctx(e))?;
        self.produce(1, record_size(msg.len() as u64), timeout.into(), |tail| Some(self.write_record(tail, msg)))
            .map_err(|e| self.ctx(e))
    }

    /// Puts without waiting for room (Full if there is none).
    pub fn try_put(&self, msg: &[u8]) -> Result<()> {
        self.put(msg, Duration::ZERO)
    }

    /// Puts all the messages, in order and next to each other, or none: waits (at most
    /// `timeout`) until all fit at once. One lock round trip. TooBig if the batch can never fit.
    pub fn put_many<M: AsRef<[u8]>>(&self, msgs: &[M], timeout: impl Into<Timeout>) -> Result<()> {
        self.put_many_with(
            msgs.len(),
            |i| msgs[i].as_ref().len(),
            timeout,
            |i, dst| dst.copy_from_slice(msgs[i].as_ref()),
        )
    }

    /// put_many for messages given by length and filled in place: `len(i)` is message i's
    /// size, `fill(i, dst)` writes it; fill is called for i = 0, 1, ..., n-1 in order, once
    /// the batch has room. (The C ABI's flat buffer + lengths form.)
    pub fn put_many_with(
        &self,
        n: usize,
        len: impl Fn(usize) -> usize,
        timeout: impl Into<Timeout>,
        mut fill: impl FnMut(usize, &mut [u8]),
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut bytes: u64 = 0;
        for i in 0..n {
            let l = len(i);
            if l as u64 > self.cap - REC_HEADER {
                self.check_len(l).map_err(|e| self.ctx(e.context(format!("message {i} of the batch"))))?;
            }
            bytes += record_size(l as u64);
        }
        if bytes > self.cap {
            return Err(self.ctx(err!(
                TooBig,
                "a batch of {n} messages needs {bytes} bytes; the ring holds {}",
                self.cap
            )));
        }
        if self.max_msgs != 0 && n as u64 > self.max_msgs {
            return Err(self.ctx(err!(TooBig, "a batch of {n} messages exceeds the limit of {}", self.max_msgs)));
        }
        self.produce(n as u64, bytes, timeout.into(), |tail| {
            let mut at = tail;
            for i in 0..n {
                let l = len(i);
                let p = self.ring.at((at % self.cap) as usize);
                // SAFETY: as in write_record; the whole batch was checked to fit.
                unsafe {
                    fill(i, std::slice::from_raw_parts_mut(p.add(REC_HEADER as usize), l));
                    Self::write_header(p, l as u32);
                }
                at += record_size(l as u64);
            }
            Some(at)
        })
        .map_err(|e| self.ctx(e))
    }

    /// put_many for messages back to back in one buffer: message i is the next `lens[i]` bytes
    /// of `data`, which holds exactly their sum ([`flat_len`]).
    pub fn put_many_flat(&self, data: &[u8], lens: &[usize], timeout: impl Into<Timeout>) -> Result<()> {
        let total = flat_len(lens).map_err(|e| self.ctx(e))?;
        if total != data.len() {
            return Err(self.ctx(err!(Invalid, "the lengths add up to {total} bytes, the data has {}", data.len())));
        }
        // The messages are filled in order, so a running offset finds each one.
        let mut off = 0;
        self.put_many_with(
            lens.len(),
            |i| lens[i],
            timeout,
            |i, dst| {
                if i == 0 {
                    off = 0;
                }
                dst.copy_from_slice(&data[off..off + lens[i]]);
                off += lens[i];
            },
        )
    }

    /// Reserves room for a message of up to `max_len` bytes and returns where to write it; the
    /// producer side stays locked until commit_raw or abort_raw (from this process). Other
    /// producers wait meanwhile; a process that dies with a reservation open loses it, nothing
    /// else. For the C ABI; Rust code uses [`Queue::reserve`].
    pub fn reserve_raw(&self, max_len: usize, timeout: impl Into<Timeout>) -> Result<*mut u8> {
        self.check_len(max_len).map_err(|e| self.ctx(e))?;
        let st = self.m.state();
        let mut ptr = std::ptr::null_mut();
        self.produce(1, record_size(max_len as u64), timeout.into(), |tail| {
            st.pj.view_len.store(max_len as u64, Relaxed);
            st.pj.view.store(1, Relaxed);
            // SAFETY: the record's payload starts 8 bytes into free ring space.
            ptr = unsafe { self.ring.at((tail % self.cap) as usize).add(REC_HEADER as usize) };
            None
        })
        .map_err(|e| self.ctx(e))?;
        Ok(ptr)
    }

    /// Checks that this process holds `side` with a view open, and with `claim` ends the view:
    /// of two threads that end one view at once, exactly one proceeds (and releases the lock).
    pub(super) fn own_view(&self, side: Side, claim: bool) -> Result<()> {
        let st = self.m.state();
        let (lock, j, what) = if side == Side::Producer {
            (&st.plock, &st.pj, "reservation")
        } else {
            (&st.clock, &st.cj, "in-place read")
        };
        let open = lock.holder() == owner::me().pid
            && if claim { j.view.compare_exchange(1, 0, Relaxed, Relaxed).is_ok() } else { j.view.load(Relaxed) == 1 };
        if !open {
            return Err(err!(State, "no {what} is open in this process"));
        }
        Ok(())
    }

    /// Publishes the reserved message with its final length (<= the reserved size).
    pub fn commit_raw(&self, len: usize) -> Result<()> {
        self.commit_inner(len).map_err(|e| self.ctx(e))
    }

    fn commit_inner(&self, len: usize) -> Result<()> {
        self.own_view(Side::Producer, false)?;
        let st = self.m.state();
        let reserved = st.pj.view_len.load(Relaxed);
        if len as u64 > reserved {
            return Err(err!(
                Invalid,
                "commit of {len} bytes exceeds the {reserved} bytes reserved (the reservation stays open)"
            ));
        }
        self.own_view(Side::Producer, true)?;
        let held = Held(&st.plock);
        let tail = st.ppub.index.load(Relaxed);
        // Room can only have grown since the reservation; checking again guards against a
        // reserved size changed in shared memory.
        if !self.room(tail, record_size(len as u64), 1)? {
            return Err(self.corrupt(format!("the reservation of {reserved} bytes no longer fits")));
        }
        let p = self.ring.at((tail % self.cap) as usize);
        // SAFETY: the reserved record's header, in free ring space this holder owns.
        unsafe { Self::write_header(p, len as u32) };
        let count = st.ppub.count.load(Relaxed) + 1;
        publish(&st.pj, &st.ppub, tail + record_size(len as u64), count);
        drop(held);
        st.data.notify();
        Ok(())
    }

    /// Drops the reservation: nothing is published.
    pub fn abort_raw(&self) -> Result<()> {
        self.own_view(Side::Producer, true).map_err(|e| self.ctx(e))?;
        drop(Held(&self.m.state().plock));
        Ok(())
    }

    /// Zero-copy put: room for up to `max_len` bytes, written in place, published by
    /// [`Reservation::commit`] (dropping it aborts). While it is open, other producers wait and
    /// this thread must not put to the same queue.
    pub fn reserve(&self, max_len: usize, timeout: impl Into<Timeout>) -> Result<Reservation<'_>> {
        let ptr = self.reserve_raw(max_len, timeout)?;
        Ok(Reservation { q: self, ptr, len: max_len, done: false })
    }
}

/// An open zero-copy put (see [`Queue::reserve`]). Write into it, then commit; dropping it
/// without committing aborts (nothing is published).
pub struct Reservation<'a> {
    q: &'a Queue,
    ptr: *mut u8,
    len: usize,
    done: bool,
}

impl Reservation<'_> {
    /// Publishes the first `len` bytes (<= the reserved size) as one message.
    pub fn commit(mut self, len: usize) -> Result<()> {
        self.done = true;
        let r = self.q.commit_raw(len);
        if r.is_err() && len > self.len {
            // The reservation stays open after a refused length: drop it here.
            let _ = self.q.abort_raw();
        }
        r
    }

    /// Drops the reservation.
    pub fn abort(mut self) {
        self.done = true;
        let _ = self.q.abort_raw();
    }
}

impl std::ops::Deref for Reservation<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the reserved payload area, owned by this reservation until it ends.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl std::ops::DerefMut for Reservation<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; nobody else reads or writes unpublished ring space.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.q.abort_raw();
        }
    }
}
