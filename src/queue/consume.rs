//! The consumer side: get, get_many, and the zero-copy in-place read.

use std::sync::atomic::Ordering::*;
use std::time::Duration;

use super::shared::{record_check, record_size, REC_HEADER};
use super::sides::{publish, Held, Side, SpinHow, Wait};
use super::Queue;
use crate::wait::Timeout;
use crate::{err, Result};

impl Queue {
    /// A tail at or beyond `head` (consumer lock held): the hint if it is ahead, else the
    /// published one, checked.
    #[inline]
    pub(super) fn tail_for(&self, head: u64) -> Result<u64> {
        let hint = self.tail_hint.load(Relaxed);
        if hint > head && hint - head <= self.cap {
            return Ok(hint);
        }
        let tail = self.m.state().ppub.index.load(Acquire);
        if tail.wrapping_sub(head) > self.cap {
            return Err(self.corrupt(format!("tail {tail} and head {head} are not within {} bytes", self.cap)));
        }
        self.tail_hint.store(tail, Relaxed);
        Ok(tail)
    }

    /// The record at `at` (< tail): its payload pointer and length, checked.
    #[inline]
    pub(super) fn record(&self, at: u64, tail: u64) -> Result<(*mut u8, usize)> {
        let avail = tail - at;
        let p = self.ring.at((at % self.cap) as usize);
        // SAFETY: a header's 8 bytes are inside the double mapping from any position; volatile
        // so that the values checked are the values used.
        let (len, check) = unsafe { (p.cast::<u32>().read_volatile(), p.add(4).cast::<u32>().read_volatile()) };
        if check != record_check(len) || record_size(len as u64) > avail {
            return Err(self.corrupt(format!(
                "record at {at} claims {len} bytes (check {check:#010x}); {avail} bytes are published"
            )));
        }
        // SAFETY: the payload lies within the published bytes, inside the mapping.
        Ok((unsafe { p.add(REC_HEADER as usize) }, len as usize))
    }

    /// The consumer path: waits for a message, then, with the consumer lock held, offers the
    /// ready messages (up to `max`) to `take` in order until it declines one, and removes
    /// those it accepted. Returns how many (0 if it declined the first). With `view`, it keeps
    /// the lock and returns the first record instead (an in-place read).
    fn consume(
        &self,
        max: usize,
        timeout: Timeout,
        mut take: impl FnMut(&[u8]) -> bool,
        mut view: Option<&mut (*const u8, usize)>,
    ) -> Result<usize> {
        let st = self.m.state();
        let mut w = Wait::new(timeout);
        loop {
            if w.expired() {
                return Err(err!(Timeout, "timed out waiting for a message"));
            }
            // Look without the lock first, so idle consumers do not fight over it (and without
            // reading the tail the producer keeps writing, when a tail seen before says enough).
            let head = st.cpub.index.load(Acquire);
            if self.tail_hint.load(Relaxed) <= head && st.ppub.index.load(Acquire) == head {
                if st.meta.closed.load(Acquire) != 0 {
                    // Shutdown holds the producer lock, so after it nothing more is published.
                    if st.ppub.index.load(Acquire) == head {
                        return Err(err!(Closed, "the queue was shut down and is empty"));
                    }
                    continue;
                }
                if w.is_try() {
                    return Err(err!(Empty, "the queue is empty"));
                }
                let ready =
                    || st.ppub.index.load(SeqCst) != st.cpub.index.load(SeqCst) || st.meta.closed.load(SeqCst) != 0;
                self.wait_until(&st.data, &mut w, || "a message".into(), SpinHow { gap: 1, eager: ready }, ready)?;
                continue;
            }
            let held = self.lock(Side::Consumer, &mut w)?;
            let head = st.cpub.index.load(Relaxed);
            let tail = self.tail_for(head)?;
            if tail == head {
                // Another consumer took it.
                drop(held);
                continue;
            }
            if let Some(v) = view.as_deref_mut() {
                let (p, len) = self.record(head, tail)?;
                st.cj.view_len.store(len as u64, Relaxed);
                st.cj.view.store(1, Relaxed);
                *v = (p, len);
                held.keep();
                return Ok(1);
            }
            let mut at = head;
            let mut k = 0usize;
            let mut tail = tail;
            while k < max {
                if at == tail {
                    // The hint is used up: take what was published since, too.
                    let fresh = self.tail_for(at)?;
                    if fresh == at {
                        break;
                    }
                    tail = fresh;
                }
                let (p, len) = self.record(at, tail)?;
                // SAFETY: the payload is published and no producer writes it until head passes.
                if !take(unsafe { std::slice::from_raw_parts(p, len) }) {
                    break;
                }
                at += record_size(len as u64);
                k += 1;
            }
            if k > 0 {
                let count = st.cpub.count.load(Relaxed) + k as u64;
                publish(&st.cj, &st.cpub, at, count);
                drop(held);
                st.space.notify();
            }
            return Ok(k);
        }
    }

    /// Gets one message, offering it to `f` in place; `f` returns None to leave it in the queue
    /// (e.g. a caller's buffer is too small). Waits at most `timeout` (Timeout::After(ZERO):
    /// Empty at once); Closed once the queue is shut down and empty.
    pub fn get_with<R>(&self, timeout: impl Into<Timeout>, f: impl FnOnce(&[u8]) -> Option<R>) -> Result<Option<R>> {
        let mut f = Some(f);
        let mut out = None;
        self.consume(
            1,
            timeout.into(),
            |m| {
                out = (f.take().expect("called once"))(m);
                out.is_some()
            },
            None,
        )
        .map_err(|e| self.ctx(e))?;
        Ok(out)
    }

    /// Gets one message as a new Vec.
    pub fn get(&self, timeout: impl Into<Timeout>) -> Result<Vec<u8>> {
        Ok(self.get_with(timeout, |m| Some(m.to_vec()))?.expect("always taken"))
    }

    /// Gets without waiting (Empty if there is none).
    pub fn try_get(&self) -> Result<Vec<u8>> {
        self.get(Duration::ZERO)
    }

    /// Gets one message into `buf`; returns its length. BufferTooSmall (the message stays in
    /// the queue) if it does not fit.
    pub fn get_into(&self, buf: &mut [u8], timeout: impl Into<Timeout>) -> Result<usize> {
        let cap = buf.len();
        self.get_into_or_size(buf, timeout)?.map_err(|need| self.too_small(need, cap))
    }

    /// Gets one message into `buf`: Ok(Ok(length)), or Ok(Err(size)) when the next message, of
    /// `size` bytes, does not fit (it then stays in the queue, so the caller can grow its buffer
    /// and call again).
    pub fn get_into_or_size(
        &self,
        buf: &mut [u8],
        timeout: impl Into<Timeout>,
    ) -> Result<std::result::Result<usize, usize>> {
        let cap = buf.len();
        let mut need = 0;
        let got = self.get_with(timeout, |m| {
            if m.len() > cap {
                need = m.len();
                return None;
            }
            buf[..m.len()].copy_from_slice(m);
            Some(m.len())
        })?;
        Ok(got.ok_or(need))
    }

    /// The error for a message of `need` bytes and a buffer of `cap`.
    pub fn too_small(&self, need: usize, cap: usize) -> crate::Error {
        self.ctx(err!(BufferTooSmall, "the next message has {need} bytes; the buffer holds {cap}"))
    }

    /// Gets the messages that are ready, up to `lens.len()`, into `buf` back to back (message
    /// i is `lens[i]` bytes), as many as fit; waits at most `timeout` for the first.
    /// Ok(Ok(count)), or Ok(Err(size)) when not even the first, of `size` bytes, fits (it stays
    /// in the queue).
    pub fn get_many_into(
        &self,
        buf: &mut [u8],
        lens: &mut [usize],
        timeout: impl Into<Timeout>,
    ) -> Result<std::result::Result<usize, usize>> {
        let (mut used, mut k, mut need) = (0usize, 0usize, 0usize);
        let max = lens.len();
        let got = self.get_many_with(max, timeout, |m| {
            if m.len() > buf.len() - used {
                need = m.len();
                return false;
            }
            buf[used..used + m.len()].copy_from_slice(m);
            used += m.len();
            lens[k] = m.len();
            k += 1;
            true
        })?;
        Ok(if got == 0 { Err(need) } else { Ok(got) })
    }

    /// Gets the messages that are ready, up to `max` (at least one: waits at most `timeout`
    /// for it), offering each to `take` in place until it declines one; one lock round trip.
    /// Returns how many were taken (0 if `take` declined the first).
    pub fn get_many_with(
        &self,
        max: usize,
        timeout: impl Into<Timeout>,
        take: impl FnMut(&[u8]) -> bool,
    ) -> Result<usize> {
        if max == 0 {
            return Err(self.ctx(err!(Invalid, "get_many of 0 messages")));
        }
        self.consume(max, timeout.into(), take, None).map_err(|e| self.ctx(e))
    }

    /// Gets up to `max` ready messages (at least one, waiting at most `timeout` for it).
    pub fn get_many(&self, max: usize, timeout: impl Into<Timeout>) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        self.get_many_with(max, timeout, |m| {
            out.push(m.to_vec());
            true
        })?;
        Ok(out)
    }

    /// Waits for the next message and returns it in place; the consumer side stays locked until
    /// read_commit_raw (the message leaves the queue) or read_abort_raw (it stays). For the C
    /// ABI; Rust code uses [`Queue::read`].
    pub fn read_raw(&self, timeout: impl Into<Timeout>) -> Result<(*const u8, usize)> {
        let mut v = (std::ptr::null(), 0);
        self.consume(1, timeout.into(), |_| false, Some(&mut v)).map_err(|e| self.ctx(e))?;
        Ok(v)
    }

    /// Removes the message of the open in-place read.
    pub fn read_commit_raw(&self) -> Result<()> {
        self.read_commit_inner().map_err(|e| self.ctx(e))
    }

    fn read_commit_inner(&self) -> Result<()> {
        self.own_view(Side::Consumer, true)?;
        let st = self.m.state();
        let held = Held(&st.clock);
        let head = st.cpub.index.load(Relaxed);
        let tail = self.tail_for(head)?;
        if tail == head {
            return Err(self.corrupt("the message being read is gone".into()));
        }
        let (_, len) = self.record(head, tail)?;
        let count = st.cpub.count.load(Relaxed) + 1;
        publish(&st.cj, &st.cpub, head + record_size(len as u64), count);
        drop(held);
        st.space.notify();
        Ok(())
    }

    /// Ends the open in-place read, leaving the message in the queue.
    pub fn read_abort_raw(&self) -> Result<()> {
        self.own_view(Side::Consumer, true).map_err(|e| self.ctx(e))?;
        drop(Held(&self.m.state().clock));
        Ok(())
    }

    /// Zero-copy get: the next message in place, removed by [`ReadView::commit`] (dropping the
    /// view leaves it in the queue). While it is open, other consumers wait and this thread
    /// must not get from the same queue.
    pub fn read(&self, timeout: impl Into<Timeout>) -> Result<ReadView<'_>> {
        let (ptr, len) = self.read_raw(timeout)?;
        // The get count is stable while this thread holds the consumer lock.
        let seq = self.m.state().cpub.count.load(Relaxed);
        Ok(ReadView { q: self, ptr, len, seq, done: false })
    }

    /// Runs `f` with the consumer side locked (taken over, and repaired, from a process that
    /// died holding it), giving it the number of messages got from the queue so far. While `f`
    /// runs no message is taken, so the count is exact: with [`ReadView::seq`], this is how a
    /// process tells whether a reader that died during an in-place read had committed it (the
    /// count passed its seq) or left it in the queue. `f` must not get from this queue.
    pub fn with_consumers_held<R>(&self, timeout: impl Into<Timeout>, f: impl FnOnce(u64) -> R) -> Result<R> {
        let mut w = Wait::new(timeout.into());
        let held = self.lock(Side::Consumer, &mut w).map_err(|e| self.ctx(e))?;
        let got = self.m.state().cpub.count.load(Relaxed);
        let r = f(got);
        drop(held);
        Ok(r)
    }
}

/// An open zero-copy get (see [`Queue::read`]): the message in place. `commit` removes it;
/// dropping the view leaves it in the queue for the next get.
pub struct ReadView<'a> {
    q: &'a Queue,
    ptr: *const u8,
    len: usize,
    seq: u64,
    done: bool,
}

impl ReadView<'_> {
    /// The message's place in the queue's history: how many messages were got before it. Once
    /// it is committed the get count is past it (see [`Queue::with_consumers_held`]).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Removes the message from the queue.
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.q.read_commit_raw()
    }
}

impl std::ops::Deref for ReadView<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: a published record; no producer writes it before the head passes it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for ReadView<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.q.read_abort_raw();
        }
    }
}
