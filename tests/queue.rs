//! Queues with real processes: named and anonymous queues across fork, exactly-once delivery
//! with several producers and consumers, blocking and wake-ups, shutdown, JoinableQueue,
//! 1 MiB frames through reserve/commit and in-place reads, processes killed holding a
//! reservation or a read, bad input, and corrupt segments (header, state, indices, records,
//! journal) that must be reported, never read out of bounds. The random kill test is in
//! queue_kill.rs.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use common::*;
use mpx::queue::{Variant, MAX_CAPACITY};
use mpx::Object;
use mpx::{ErrorKind, Flags, Lock, Queue, QueueSpec, SharedMemory, Timeout};

fn kind_of<T>(r: mpx::Result<T>) -> ErrorKind {
    match r {
        Ok(_) => panic!("expected an error, got Ok"),
        Err(e) => {
            assert!(!e.message().is_empty());
            e.kind()
        }
    }
}

fn s(e: mpx::Error) -> String {
    e.to_string()
}

/// Message i of producer p: "p:i:" then a pattern, `len` bytes in all (len >= 16).
fn msg(p: u32, i: u32, len: usize) -> Vec<u8> {
    let mut m = format!("{p:04}:{i:08}:").into_bytes();
    while m.len() < len {
        m.push((m.len() as u32 * 31 + p * 7 + i) as u8);
    }
    m.truncate(len.max(14));
    m
}

fn parse(m: &[u8]) -> (u32, u32) {
    let p: u32 = std::str::from_utf8(&m[0..4]).unwrap().parse().unwrap();
    let i: u32 = std::str::from_utf8(&m[5..13]).unwrap().parse().unwrap();
    assert_eq!(m, &msg(p, i, m.len())[..], "message {p}:{i} is not whole");
    (p, i)
}

/// Offsets in the segment file (see src/queue/shared.rs; the data area starts at one page).
const DATA: u64 = 4096;
const PLOCK: u64 = DATA;
const PJ_ACTIVE: u64 = DATA + 64;
const PJ_INDEX: u64 = DATA + 72;
const PJ_COUNT: u64 = DATA + 80;
const TAIL: u64 = DATA + 128;
const PUT_COUNT: u64 = DATA + 136;
const HEAD: u64 = DATA + 320;
const MAGIC: u64 = DATA + 512;
const RING: u64 = DATA + 4096;

fn peek_u64(name: &str, off: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(shm_path(name)).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

fn poke_u64(name: &str, off: u64, v: u64) {
    patch(name, off, &v.to_le_bytes());
}

fn poke_u32(name: &str, off: u64, v: u32) {
    patch(name, off, &v.to_le_bytes());
}

#[test]
fn named_queue_both_ways_across_processes() {
    let mut names = Names::new();
    let a = names.add("q-ab");
    let b = names.add("q-ba");
    let qa = Queue::create(&a, QueueSpec::new(4096), Flags::default()).unwrap();
    let qb = Queue::create(&b, QueueSpec::new(4096), Flags::default()).unwrap();
    assert_eq!(qa.name(), Some(a.as_str()));
    let (an, bn) = (a.clone(), b.clone());
    // The child echoes every message back, reversed; sizes 0..3000 wrap the 8 KiB ring often.
    let mut c = fork(&[], move || {
        let qa = Queue::open(&an, Flags::default()).map_err(s)?;
        let qb = Queue::open(&bn, Flags::default()).map_err(s)?;
        loop {
            let mut m = match qa.get(WAIT) {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::Closed => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            m.reverse();
            qb.put(&m, WAIT).map_err(s)?;
        }
    });
    for i in 0..2000usize {
        let m: Vec<u8> = (0..(i * 7) % 3000).map(|j| (i + j) as u8).collect();
        qa.put(&m, WAIT).unwrap();
        let mut back = qb.get(WAIT).unwrap();
        back.reverse();
        assert_eq!(back, m, "message {i}");
    }
    qa.shutdown().unwrap();
    c.join_ok();
    assert!(qa.is_empty() && qb.is_empty());
}

#[test]
fn anonymous_queue_by_fd() {
    let q = Queue::create_anonymous(QueueSpec::new(1 << 16)).unwrap();
    assert_eq!(q.name(), None);
    let fd = q.fd();
    let mut c = fork(&[fd], move || {
        let q = Queue::from_fd(fd, Flags::default()).map_err(s)?;
        for i in 0..500u32 {
            q.put(&msg(1, i, 16 + i as usize), WAIT).map_err(s)?;
        }
        Ok(())
    });
    for i in 0..500u32 {
        let m = q.get(WAIT).unwrap();
        assert_eq!(parse(&m), (1, i));
    }
    c.join_ok();
    assert_eq!(kind_of(Queue::from_fd(-1, Flags::default())), ErrorKind::Invalid);
    assert_eq!(kind_of(Queue::from_fd(999_999, Flags::default())), ErrorKind::Invalid);
}

/// Three producer processes (put, put_many, reserve/commit) and two consumer processes (get,
/// get_many, in-place read): every message arrives exactly once, in order per producer.
#[test]
fn many_producers_many_consumers_exactly_once() {
    const PER: u32 = 20_000;
    let mut names = Names::new();
    let qn = names.add("q-mpmc");
    let ln = names.add("q-mpmc-log");
    let q = Queue::create(&qn, QueueSpec::new(32 << 10).max_messages(200), Flags::default()).unwrap();
    // The log: a count, 3 spare words, one word per message, and some slack.
    const LOG_WORDS: usize = 4 + 3 * PER as usize + 64;
    let log = SharedMemory::create(&ln, 8 * LOG_WORDS, Flags::default()).unwrap();
    let words = |shm: &SharedMemory, i: usize| -> &AtomicU64 {
        assert!(i < LOG_WORDS, "log word {i} is past the end");
        // SAFETY: the log's data is page-aligned and LOG_WORDS words long, and i is in bounds;
        // other processes only touch it through atomics too.
        unsafe { &*(shm.as_ptr() as *const AtomicU64).add(i) }
    };
    let mut producers = Vec::new();
    for p in 0..3u32 {
        let qn = qn.clone();
        producers.push(fork(&[], move || {
            let q = Queue::open(&qn, Flags::default()).map_err(s)?;
            let mut i = 0;
            while i < PER {
                let len = 16 + ((i * 37 + p) % 500) as usize;
                match p {
                    0 => q.put(&msg(p, i, len), WAIT).map_err(s)?,
                    1 => {
                        let n = (PER - i).min(1 + i % 7);
                        let batch: Vec<Vec<u8>> = (0..n).map(|k| msg(p, i + k, len)).collect();
                        q.put_many(&batch, WAIT).map_err(s)?;
                        i += n - 1;
                    }
                    _ => {
                        let m = msg(p, i, len);
                        let mut r = q.reserve(600, WAIT).map_err(s)?;
                        r[..m.len()].copy_from_slice(&m);
                        r.commit(m.len()).map_err(s)?;
                    }
                }
                i += 1;
            }
            Ok(())
        }));
    }
    let mut consumers = Vec::new();
    for c in 0..2u32 {
        let (qn, ln) = (qn.clone(), ln.clone());
        consumers.push(fork(&[], move || {
            let q = Queue::open(&qn, Flags::default()).map_err(s)?;
            let log = SharedMemory::open(&ln, Flags::default()).map_err(s)?;
            // A queue that delivered a message twice must fail the test, not write past the log.
            let w = |i: usize| -> &AtomicU64 {
                assert!(i < LOG_WORDS, "log word {i} is past the end");
                // SAFETY: as for `words`: the same page-aligned log of LOG_WORDS words, i in bounds.
                unsafe { &*(log.as_ptr() as *const AtomicU64).add(i) }
            };
            let mut last = [None::<u32>; 3];
            let mut record = |m: &[u8]| -> Result<(), String> {
                let (p, i) = parse(m);
                if last[p as usize].is_some_and(|l| l >= i) {
                    return Err(format!("consumer {c}: producer {p}'s {i} after {:?}", last[p as usize]));
                }
                last[p as usize] = Some(i);
                let slot = w(0).fetch_add(1, SeqCst) as usize;
                w(4 + slot).store((p as u64) << 32 | i as u64, SeqCst);
                Ok(())
            };
            let mut round = 0u32;
            loop {
                round += 1;
                let r = match round % 3 {
                    0 => q.get(WAIT).map(|m| vec![m]),
                    1 => q.get_many(1 + round as usize % 16, WAIT),
                    _ => q.read(WAIT).and_then(|v| {
                        let m = v.to_vec();
                        v.commit().map(|_| vec![m])
                    }),
                };
                match r {
                    Ok(ms) => {
                        for m in ms {
                            record(&m)?;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Closed => return Ok(()),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }));
    }
    for p in &mut producers {
        p.join_ok();
    }
    // Everything is put; once drained, shut down so the consumers return.
    assert!(eventually(WAIT, || q.is_empty()), "consumers did not drain the queue");
    q.shutdown().unwrap();
    for c in &mut consumers {
        c.join_ok();
    }
    let n = words(&log, 0).load(SeqCst) as usize;
    assert_eq!(n, 3 * PER as usize);
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for i in 0..n {
        *seen.entry(words(&log, 4 + i).load(SeqCst)).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3 * PER as usize, "every message exactly once");
    assert!(seen.values().all(|&c| c == 1));
}

#[test]
fn blocking_calls_wake_across_processes() {
    let q = Queue::create_anonymous(QueueSpec::new(100).max_messages(2)).unwrap();
    let fd = q.fd();
    let (parent, child) = chan();
    let cfd = child.fd();
    // A get that waits is woken by a put from another process.
    let mut c = fork(&[fd, cfd], move || {
        let q = Queue::from_fd(fd, Flags::default()).map_err(s)?;
        child.recv(WAIT)?;
        std::thread::sleep(Duration::from_millis(30));
        q.put(b"late", WAIT).map_err(s)?;
        // Then fill it (2 messages max) and wait for the parent to make room.
        q.put(b"1", WAIT).map_err(s)?;
        q.put(b"2", WAIT).map_err(s)?;
        child.try_send(1)?;
        let t = Instant::now();
        q.put(b"3", WAIT).map_err(s)?;
        child.try_send(t.elapsed().as_millis() as u64)
    });
    parent.send(0);
    let t = Instant::now();
    assert_eq!(q.get(WAIT).unwrap(), b"late");
    assert!(t.elapsed() >= Duration::from_millis(25));
    parent.recv(WAIT).unwrap();
    assert!(q.is_full());
    assert_eq!(q.qsize(), 2);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(q.get(WAIT).unwrap(), b"1");
    let waited = parent.recv(WAIT).unwrap();
    assert!(waited >= 20, "the blocked put returned after {waited} ms, before there was room");
    c.join_ok();
    assert_eq!(q.get_many(10, Duration::ZERO).unwrap(), vec![b"2".to_vec(), b"3".to_vec()]);
    // Timeouts: bounded, and Empty / Full for the non-blocking forms.
    let t = Instant::now();
    assert_eq!(kind_of(q.get(Duration::from_millis(20))), ErrorKind::Timeout);
    assert!(t.elapsed() >= Duration::from_millis(20) && t.elapsed() < Duration::from_secs(2));
    assert_eq!(kind_of(q.try_get()), ErrorKind::Empty);
    q.put(b"a", Duration::ZERO).unwrap();
    q.put(b"b", Duration::ZERO).unwrap();
    assert_eq!(kind_of(q.try_put(b"c")), ErrorKind::Full);
    assert_eq!(kind_of(q.put(b"c", Duration::from_millis(10))), ErrorKind::Timeout);
}

#[test]
fn shutdown_wakes_every_blocked_caller_and_drains() {
    let mut names = Names::new();
    let full = names.add("q-full");
    let empty = names.add("q-empty");
    let qf = Queue::create(&full, QueueSpec::new(64).max_messages(1), Flags::default()).unwrap();
    let qe = Queue::create(&empty, QueueSpec::new(64), Flags::default()).unwrap();
    qf.put(b"only", Duration::ZERO).unwrap();
    let mut kids = Vec::new();
    for k in 0..4 {
        let (f, e) = (full.clone(), empty.clone());
        kids.push(fork(&[], move || {
            let r = if k % 2 == 0 {
                Queue::open(&f, Flags::default()).and_then(|q| q.put(b"blocked", Timeout::Forever))
            } else {
                Queue::open(&e, Flags::default()).and_then(|q| q.get(Timeout::Forever).map(|_| ()))
            };
            match r {
                Err(e) if e.kind() == ErrorKind::Closed => Ok(()),
                other => Err(format!("blocked call ended with {other:?}")),
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(100));
    qf.shutdown().unwrap();
    qe.shutdown().unwrap();
    qe.shutdown().unwrap(); // idempotent
    for k in &mut kids {
        k.join_ok();
    }
    // What was put before the shutdown is still delivered, then Closed.
    assert_eq!(qf.get(Duration::ZERO).unwrap(), b"only");
    assert_eq!(kind_of(qf.get(Duration::ZERO)), ErrorKind::Closed);
    assert_eq!(kind_of(qf.put(b"x", Timeout::Forever)), ErrorKind::Closed);
    assert_eq!(kind_of(qf.reserve(1, Timeout::Forever)), ErrorKind::Closed);
    assert_eq!(kind_of(qf.read(Timeout::Forever)), ErrorKind::Closed);
    assert!(qf.is_shutdown());
}

#[test]
fn joinable_queue_across_processes() {
    let mut names = Names::new();
    let n = names.add("q-join");
    let q = Queue::create(&n, QueueSpec::new(4096).variant(Variant::Joinable), Flags::default()).unwrap();
    for i in 0..50u32 {
        q.put(&i.to_le_bytes(), WAIT).unwrap();
    }
    assert_eq!(q.unfinished(), 50);
    let nn = n.clone();
    let mut worker = fork(&[], move || {
        let q = Queue::open(&nn, Flags::default()).map_err(s)?;
        if q.variant() != Variant::Joinable {
            return Err("variant lost".into());
        }
        for _ in 0..50 {
            q.get(WAIT).map_err(s)?;
            std::thread::sleep(Duration::from_micros(200));
            q.task_done().map_err(s)?;
        }
        match q.task_done() {
            Err(e) if e.kind() == ErrorKind::State => Ok(()),
            other => Err(format!("task_done past the count: {other:?}")),
        }
    });
    let t = Instant::now();
    q.join(WAIT).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(5));
    assert_eq!(q.unfinished(), 0);
    worker.join_ok();
    q.join(Duration::ZERO).unwrap();
}

#[test]
fn one_mib_frames_through_reserve_and_in_place_reads() {
    const FRAME: usize = 1 << 20;
    // 3 MiB of ring: frames of 1 MiB + 8 straddle the end of the ring most of the time.
    let q = Queue::create_anonymous(QueueSpec::new(3 * FRAME)).unwrap();
    assert!(q.max_message() >= 3 * FRAME);
    let fd = q.fd();
    let mut c = fork(&[fd], move || {
        let q = Queue::from_fd(fd, Flags::default()).map_err(s)?;
        for i in 0..40u32 {
            let mut r = q.reserve(FRAME, WAIT).map_err(s)?;
            for (k, w) in r.chunks_exact_mut(4).enumerate() {
                w.copy_from_slice(&(i.wrapping_mul(0x9E37_79B9) ^ k as u32).to_le_bytes());
            }
            let len = FRAME - (i as usize % 3) * 4;
            r.commit(len).map_err(s)?;
        }
        Ok(())
    });
    for i in 0..40u32 {
        let v = q.read(WAIT).unwrap();
        assert_eq!(v.len(), FRAME - (i as usize % 3) * 4);
        assert_eq!(v.as_ptr() as usize % 8, 0, "payloads are 8-byte aligned");
        let bad =
            v.chunks_exact(4).enumerate().find(|(k, w)| **w != (i.wrapping_mul(0x9E37_79B9) ^ *k as u32).to_le_bytes());
        assert!(bad.is_none(), "frame {i}: word {:?} differs", bad.map(|b| b.0));
        v.commit().unwrap();
    }
    c.join_ok();
    assert!(q.is_empty());
}

#[test]
fn a_killed_reader_leaves_its_message_and_a_killed_writer_leaves_nothing() {
    let mut names = Names::new();
    let n = names.add("q-die");
    let q = Queue::create(&n, QueueSpec::new(4096), Flags::default()).unwrap();
    q.put(b"first", WAIT).unwrap();
    q.put(b"second", WAIT).unwrap();
    let (parent, child) = chan();
    let cfd = child.fd();
    // A consumer opens an in-place read of "first" and dies holding it.
    let nn = n.clone();
    let mut reader = fork(&[cfd], move || {
        let q = Queue::open(&nn, Flags::default()).map_err(s)?;
        let v = q.read(WAIT).map_err(s)?;
        if &*v != b"first" {
            return Err("wrong message".into());
        }
        child.try_send(1)?;
        std::thread::sleep(Duration::from_secs(60));
        Ok(())
    });
    parent.expect(1);
    reader.kill9();
    let before = q.recoveries();
    assert_eq!(q.get(WAIT).unwrap(), b"first", "the dead reader's message goes to the next consumer");
    assert!(q.recoveries() > before);
    // A producer reserves, writes half a message and dies: nothing of it is ever seen.
    let (parent, child) = chan();
    let cfd = child.fd();
    let nn = n.clone();
    let mut writer = fork(&[cfd], move || {
        let q = Queue::open(&nn, Flags::default()).map_err(s)?;
        let mut r = q.reserve(100, WAIT).map_err(s)?;
        r[..4].copy_from_slice(b"torn");
        child.try_send(2)?;
        std::thread::sleep(Duration::from_secs(60));
        Ok(())
    });
    parent.expect(2);
    writer.kill9();
    q.put(b"third", WAIT).unwrap();
    assert_eq!(q.get_many(10, WAIT).unwrap(), vec![b"second".to_vec(), b"third".to_vec()]);
    assert!(q.is_empty());
}

#[test]
fn consumers_held_tells_whether_a_dead_reader_committed() {
    // What the pool relies on: a reader dies during an in-place read, before or after its
    // commit; with the consumer side held (and repaired), the get count against the read's seq
    // says which.
    let mut names = Names::new();
    let n = names.add("q-seq");
    let q = Queue::create(&n, QueueSpec::new(4096), Flags::default()).unwrap();
    for m in [&b"a"[..], b"b", b"c"] {
        q.put(m, WAIT).unwrap();
    }
    for commit in [false, true] {
        let (parent, child) = chan();
        let cfd = child.fd();
        let nn = n.clone();
        let mut reader = fork(&[cfd], move || {
            let q = Queue::open(&nn, Flags::default()).map_err(s)?;
            let v = q.read(WAIT).map_err(s)?;
            let seq = v.seq();
            if commit {
                v.commit().map_err(s)?;
            } else {
                std::mem::forget(v);
            }
            child.try_send(seq + 1)?;
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        });
        let seq = parent.recv(WAIT).unwrap() - 1;
        reader.kill9();
        let got = q.with_consumers_held(WAIT, |got| got).unwrap();
        assert_eq!(got > seq, commit, "seq {seq}, got {got}");
    }
    // "a" was left by the first reader and taken by the second: "b" and "c" remain.
    assert_eq!(q.get_many(10, WAIT).unwrap(), vec![b"b".to_vec(), b"c".to_vec()]);
}

#[test]
fn bad_input_is_refused() {
    let mut names = Names::new();
    // Capacity and variants.
    assert_eq!(kind_of(Queue::create_anonymous(QueueSpec::new(0))), ErrorKind::Invalid);
    assert_eq!(kind_of(Queue::create_anonymous(QueueSpec::new(MAX_CAPACITY + 1))), ErrorKind::Invalid);
    assert_eq!(
        kind_of(Queue::create_anonymous(QueueSpec::new(64).max_messages(3).variant(Variant::Simple))),
        ErrorKind::Invalid
    );
    let n = names.add("q-bad");
    assert_eq!(kind_of(Queue::create(&n, QueueSpec::new(0), Flags::default())), ErrorKind::Invalid);
    assert!(!exists(&n), "a refused create leaves nothing behind");
    assert_eq!(kind_of(Queue::create("bad/name", QueueSpec::new(64), Flags::default())), ErrorKind::Invalid);
    assert_eq!(kind_of(Queue::open(&n, Flags::default())), ErrorKind::NotFound);
    let q = Queue::create(&n, QueueSpec::new(100), Flags::default()).unwrap();
    assert_eq!(kind_of(Queue::create(&n, QueueSpec::new(100), Flags::default())), ErrorKind::Exists);
    assert_eq!(kind_of(Queue::open(&n, Flags::READ_ONLY)), ErrorKind::Invalid);
    // Too big: at once, never a hang, whatever the timeout.
    let t = Instant::now();
    let e = q.put(&vec![0; q.max_message() + 1], Timeout::Forever).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooBig);
    assert!(e.message().contains(&n) && e.message().contains("can never fit"), "{e}");
    assert_eq!(kind_of(q.reserve(q.max_message() + 1, Timeout::Forever)), ErrorKind::TooBig);
    assert_eq!(kind_of(q.put_many(&[vec![0u8; 2000], vec![0u8; 2100]], Timeout::Forever)), ErrorKind::TooBig);
    assert!(t.elapsed() < Duration::from_secs(1));
    // Calls out of order.
    assert_eq!(kind_of(q.commit_raw(1)), ErrorKind::State);
    assert_eq!(kind_of(q.abort_raw()), ErrorKind::State);
    assert_eq!(kind_of(q.read_commit_raw()), ErrorKind::State);
    assert_eq!(kind_of(q.read_abort_raw()), ErrorKind::State);
    assert_eq!(kind_of(q.get_many(0, Duration::ZERO)), ErrorKind::Invalid);
    assert_eq!(kind_of(q.task_done()), ErrorKind::Unsupported);
    assert_eq!(kind_of(q.join(Duration::ZERO)), ErrorKind::Unsupported);
    let r = q.reserve(10, Duration::ZERO).unwrap();
    assert_eq!(kind_of(q.put(b"x", Duration::ZERO)), ErrorKind::State);
    assert_eq!(kind_of(q.shutdown()), ErrorKind::State);
    assert_eq!(kind_of(q.commit_raw(11)), ErrorKind::Invalid, "more than reserved");
    r.commit(2).unwrap();
    let mut small = [0u8; 1];
    let e = q.get_into(&mut small, Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BufferTooSmall);
    assert!(e.message().contains("2 bytes"), "{e}");
    assert_eq!(q.qsize(), 1, "a message that did not fit stays queued");
    // Wrong kinds, both ways.
    let ln = names.add("q-lock");
    let _lock = Lock::create(&ln, (), Flags::default()).unwrap();
    let e = Queue::open(&ln, Flags::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Kind);
    assert!(e.message().contains("a lock, not a queue"), "{e}");
    assert_eq!(kind_of(Lock::open(&n, Flags::default())), ErrorKind::Kind);
    assert_eq!(kind_of(SharedMemory::open(&n, Flags::default())), ErrorKind::Kind);
}

/// Creates a queue with a few messages, closes it, lets `spoil` damage the file, and returns
/// what opening and using it gives. Never a crash: errors only.
fn spoiled(tag: &str, spoil: impl FnOnce(&str)) -> (Option<ErrorKind>, Vec<ErrorKind>) {
    let mut names = Names::new();
    let n = names.add(tag);
    {
        let q = Queue::create(&n, QueueSpec::new(4096), Flags::default()).unwrap();
        for i in 0..5u32 {
            q.put(&msg(0, i, 40), WAIT).unwrap();
        }
    }
    spoil(&n);
    let q = match Queue::open(&n, Flags::default()) {
        Ok(q) => q,
        Err(e) => return (Some(e.kind()), vec![]),
    };
    let mut errs = Vec::new();
    let short = Duration::from_millis(50);
    for r in [
        q.get(short).map(|_| ()),
        q.put(&[1; 40], short),
        q.get_many(10, short).map(|_| ()),
        q.read(short).map(|_| ()),
        q.put_many(&[[2u8; 40]; 3], short),
    ] {
        if let Err(e) = r {
            errs.push(e.kind());
        }
    }
    (None, errs)
}

#[test]
fn corrupt_segments_are_detected() {
    // Header: a flipped byte breaks the checksum; patched params with a good checksum are
    // checked against the layout.
    assert_eq!(spoiled("q-c1", |n| patch(n, 64, &[0xAB])).0, Some(ErrorKind::Corrupt));
    assert_eq!(spoiled("q-c2", |n| edit_header(n, true, |h| h.params[0] = 5000)).0, Some(ErrorKind::Corrupt));
    assert_eq!(spoiled("q-c3", |n| edit_header(n, true, |h| h.params[0] = 1 << 40)).0, Some(ErrorKind::Corrupt));
    assert_eq!(spoiled("q-c4", |n| edit_header(n, true, |h| h.params[2] = 7)).0, Some(ErrorKind::Corrupt));
    assert_eq!(spoiled("q-c5", |n| edit_header(n, true, |h| h.params[3] = 64)).0, Some(ErrorKind::Corrupt));
    assert_eq!(spoiled("q-c6", |n| poke_u32(n, MAGIC, 0)).0, Some(ErrorKind::Corrupt));
    assert_eq!(spoiled("q-c7", |n| edit_header(n, true, |h| h.kind = mpx::Kind::Lock as u32)).0, Some(ErrorKind::Kind));
    // Indices: a tail far beyond the head, a head beyond the tail.
    let (_, e) = spoiled("q-i1", |n| poke_u64(n, TAIL, 1 << 50));
    assert!(e.contains(&ErrorKind::Corrupt), "{e:?}");
    let (_, e) = spoiled("q-i2", |n| poke_u64(n, HEAD, peek_u64(n, TAIL) + 8));
    assert!(e.contains(&ErrorKind::Corrupt), "{e:?}");
    // Records: garbage header, a length beyond what is published (with a matching check).
    let (_, e) = spoiled("q-r1", |n| poke_u64(n, RING, 0xDEAD_BEEF_DEAD_BEEF));
    assert_eq!(e[0], ErrorKind::Corrupt, "{e:?}");
    let (_, e) = spoiled("q-r2", |n| {
        let len = 100_000u32;
        patch(n, RING, &len.to_le_bytes());
        patch(n, RING + 4, &(len.rotate_left(13) ^ 0x9E37_79B9).to_le_bytes());
    });
    assert_eq!(e[0], ErrorKind::Corrupt, "{e:?}");
}

#[test]
fn a_dead_producers_journal_is_redone_or_refused() {
    let mut names = Names::new();
    let dead = dead_pid() as u32;
    // Redo: a producer wrote a record and its journal, then died before publishing.
    let n = names.add("q-redo");
    let q = Queue::create(&n, QueueSpec::new(4096), Flags::default()).unwrap();
    q.put(b"before", WAIT).unwrap();
    let tail = peek_u64(&n, TAIL);
    let m = b"journalled";
    patch(&n, RING + tail, &(m.len() as u32).to_le_bytes());
    patch(&n, RING + tail + 4, &((m.len() as u32).rotate_left(13) ^ 0x9E37_79B9).to_le_bytes());
    patch(&n, RING + tail + 8, m);
    poke_u64(&n, PJ_INDEX, tail + 8 + 16);
    poke_u64(&n, PJ_COUNT, peek_u64(&n, PUT_COUNT) + 1);
    poke_u32(&n, PJ_ACTIVE, 1);
    poke_u32(&n, PLOCK, dead);
    q.put(b"after", WAIT).unwrap();
    assert_eq!(q.recoveries(), 1);
    assert_eq!(q.qsize(), 3);
    assert_eq!(q.get_many(3, WAIT).unwrap(), vec![b"before".to_vec(), m.to_vec(), b"after".to_vec()]);
    // Refused: a journal that points outside the ring is corruption, not something to redo.
    let n = names.add("q-badj");
    let q = Queue::create(&n, QueueSpec::new(4096), Flags::default()).unwrap();
    poke_u64(&n, PJ_INDEX, 1 << 40);
    poke_u32(&n, PJ_ACTIVE, 1);
    poke_u32(&n, PLOCK, dead);
    let e = q.put(b"x", WAIT).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.message().contains("journal"), "{e}");
}

#[test]
fn sizes_and_limits() {
    let q = Queue::create_anonymous(QueueSpec::new(1000).max_messages(5)).unwrap();
    assert_eq!(q.capacity(), 4096);
    assert_eq!(q.max_message(), 4088);
    assert_eq!(q.max_messages(), 5);
    assert!(q.is_empty() && !q.is_full());
    q.put_many(&[b"a", b"b", b"c"], Duration::ZERO).unwrap();
    assert_eq!(q.qsize(), 3);
    assert_eq!(q.bytes_used(), 3 * 16);
    assert_eq!(kind_of(q.put_many(&[b"d", b"e", b"f"], Duration::ZERO)), ErrorKind::Full, "all or nothing");
    assert_eq!(q.qsize(), 3);
    q.put_many(&[b"d", b"e"], Duration::ZERO).unwrap();
    assert!(q.is_full());
    assert_eq!(q.get_many(100, Duration::ZERO).unwrap().len(), 5);
    assert!(q.is_empty());
    // Empty messages are messages.
    q.put(b"", Duration::ZERO).unwrap();
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get(Duration::ZERO).unwrap(), b"");
    // A simple queue is a queue without a message limit.
    let s = Queue::create_anonymous(QueueSpec::new(64).variant(Variant::Simple)).unwrap();
    assert_eq!(s.variant(), Variant::Simple);
    assert_eq!(s.max_messages(), 0);
}

/// Random damage to the state and the ring of a live queue, then every kind of call: errors
/// (Corrupt, Timeout, ...) are fine, a crash or a hang is not. Shows that no value in the
/// segment can make the queue read or write outside its mapping.
#[test]
fn random_damage_never_crashes() {
    let mut seed = mpx::util::realtime_ns() | 1;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let short = Duration::from_millis(2);
    let mut kinds: HashMap<String, u32> = HashMap::new();
    for _ in 0..300 {
        let q =
            Queue::create_anonymous(QueueSpec::new(4096).max_messages(if rnd() % 2 == 0 { 0 } else { 20 })).unwrap();
        for i in 0..(rnd() % 30) as u32 {
            let _ = q.put(&msg(0, i, 16 + (rnd() % 300) as usize), Duration::ZERO);
        }
        let _ = q.get(Duration::ZERO);
        let data = q.segment().data_ptr();
        for _ in 0..1 + rnd() % 3 {
            // The state lines past the two locks (a lock word naming a live process would only
            // make calls wait), or anywhere in the ring.
            let off = if rnd() % 2 == 0 {
                (64 + (rnd() % (704 - 64)) as usize) & !7
            } else {
                (4096 + (rnd() % 4096) as usize) & !7
            };
            if (192..256).contains(&off) {
                continue;
            }
            let v = match rnd() % 4 {
                0 => rnd(),
                1 => rnd() % 8192,
                2 => 0,
                _ => u64::MAX,
            };
            // SAFETY: inside the data area (state page + ring) of our own mapping.
            unsafe { data.add(off).cast::<u64>().write_volatile(v) };
        }
        let results = [
            q.get(short).map(|_| ()),
            q.put(&[1; 100], short),
            q.get_many(8, short).map(|_| ()),
            q.read(short).and_then(|v| v.commit()),
            q.put_many(&[[2u8; 50]; 3], short),
            q.reserve(200, short).and_then(|r| r.commit(100)),
            q.get_into(&mut [0u8; 64], short).map(|_| ()),
        ];
        let _ = (q.qsize(), q.is_full(), q.is_empty(), q.bytes_used(), q.unfinished());
        for r in results {
            if let Err(e) = r {
                *kinds.entry(e.kind().name().to_string()).or_insert(0) += 1;
            }
        }
    }
    eprintln!("random damage: errors seen {kinds:?}");
    assert!(kinds.contains_key("MPX_E_CORRUPT"), "damage was never detected");
}
