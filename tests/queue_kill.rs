//! The queue's kill test: producers and consumers SIGKILLed at random moments (at least 200
//! kills, bounded in time) while the others keep going, with every kind of call in use (put,
//! put_many, reserve/commit, get, get_many, in-place read/commit).
//!
//! Afterwards every message whose put returned was received exactly once or is still in the
//! queue (drained at the end), except messages a consumer had in hand when it was killed between
//! its get's commit and recording them. Those are known exactly: inside the get, before the
//! commit, a consumer notes each message it is about to take; a lost message must be one of
//! those noted by a killed consumer (at most one per killed get, at most the batch for a
//! get_many). No duplicates, no torn messages (each carries its producer, sequence, length and
//! a checksum), per-producer order holds, and the same queue still works afterwards.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use common::*;
use mpx::Object;
use mpx::{ErrorKind, Flags, Queue, QueueSpec, SharedMemory};

const KILLS: usize = 240;
/// The whole kill phase must end within this (a few seconds are expected).
const BUDGET: Duration = Duration::from_secs(120);
const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;
const MAX_BATCH: u64 = 8;

// The bookkeeping segment: u64 words.
const W_NEXT: usize = 0; // next free log slot
const W_TORN: usize = 1; // torn or malformed messages seen by consumers
const W_STOP: usize = 2; // producers stop when set
const W_ERRORS: usize = 3; // unexpected errors in children
const W_CSTOP: usize = 4; // consumers stop when set
const W_PRODUCED: usize = 16; // [MAX_IDS]: per producer id, sequences returned (seq of last + 1)
const MAX_IDS: usize = 2048;
// [MAX_IDS][HAND]: per consumer id, the messages it is taking now: count, then keys.
const W_HAND: usize = W_PRODUCED + MAX_IDS;
const HAND: usize = MAX_BATCH as usize + 1;
const W_LOG: usize = W_HAND + MAX_IDS * HAND;
const LOG_SLOTS: usize = 6 << 20;

struct Book {
    shm: SharedMemory,
}

impl Book {
    fn create(name: &str) -> Book {
        Book { shm: SharedMemory::create(name, (W_LOG + LOG_SLOTS) * 8, Flags::default()).unwrap() }
    }
    fn open(name: &str) -> Book {
        Book { shm: SharedMemory::open(name, Flags::default()).unwrap() }
    }
    fn w(&self, i: usize) -> &AtomicU64 {
        assert!(i < W_LOG + LOG_SLOTS);
        // SAFETY: the buffer is page-aligned and holds W_LOG + LOG_SLOTS words.
        unsafe { &*(self.shm.as_ptr() as *const AtomicU64).add(i) }
    }
    /// Records a received message: consumer id, producer id, sequence.
    fn log(&self, cid: u64, id: u64, seq: u64) {
        let slot = self.w(W_NEXT).fetch_add(1, SeqCst) as usize;
        if slot >= LOG_SLOTS {
            self.w(W_ERRORS).fetch_add(1, SeqCst);
            return;
        }
        self.w(W_LOG + slot).store(cid << 48 | id << 32 | (seq + 1), Release);
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn fnv(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A message: id u32, seq u32, len u32, payload pattern, fnv32 of all before it.
fn message(id: u64, seq: u64, len: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(id as u32).to_le_bytes());
    m.extend_from_slice(&(seq as u32).to_le_bytes());
    m.extend_from_slice(&(len as u32).to_le_bytes());
    while m.len() < len - 4 {
        m.push((m.len() as u64 * 7 + id * 13 + seq) as u8);
    }
    let sum = fnv(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    m
}

/// Checks a received message; Some((id, seq)) if whole.
fn parse(m: &[u8]) -> Option<(u64, u64)> {
    if m.len() < 16 {
        return None;
    }
    let id = u32::from_le_bytes(m[0..4].try_into().unwrap()) as u64;
    let seq = u32::from_le_bytes(m[4..8].try_into().unwrap()) as u64;
    let len = u32::from_le_bytes(m[8..12].try_into().unwrap()) as usize;
    let sum = u32::from_le_bytes(m[m.len() - 4..].try_into().unwrap());
    (len == m.len() && fnv(&m[..m.len() - 4]) == sum && message(id, seq, len) == m).then_some((id, seq))
}

fn msg_len(rng: &mut Rng) -> usize {
    // Mostly small, sometimes large (the ring is 16 KiB: these wrap often).
    if rng.below(8) == 0 {
        16 + rng.below(3000) as usize
    } else {
        16 + rng.below(200) as usize
    }
}

fn producer(qname: &str, bname: &str, id: u64, seed: u64) -> Result<(), String> {
    let q = Queue::open(qname, Flags::default()).map_err(|e| e.to_string())?;
    let book = Book::open(bname);
    let mut rng = Rng(seed | 1);
    let mut seq = 0u64;
    while book.w(W_STOP).load(Acquire) == 0 {
        let op = rng.below(4);
        let r = match op {
            0 | 1 => {
                let m = message(id, seq, msg_len(&mut rng));
                q.put(&m, Duration::from_millis(20)).map(|_| 1)
            }
            2 => {
                let n = 1 + rng.below(MAX_BATCH);
                let msgs: Vec<Vec<u8>> = (0..n).map(|i| message(id, seq + i, msg_len(&mut rng))).collect();
                q.put_many(&msgs, Duration::from_millis(20)).map(|_| n)
            }
            _ => {
                let m = message(id, seq, msg_len(&mut rng));
                let extra = rng.below(100) as usize;
                match q.reserve(m.len() + extra, Duration::from_millis(20)) {
                    Ok(mut r) => {
                        r[..m.len()].copy_from_slice(&m);
                        r.commit(m.len()).map(|_| 1)
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match r {
            Ok(n) => {
                seq += n;
                book.w(W_PRODUCED + id as usize).store(seq, Release);
            }
            Err(e) if e.kind() == ErrorKind::Timeout => {}
            Err(e) => {
                book.w(W_ERRORS).fetch_add(1, SeqCst);
                return Err(format!("producer {id}: {e}"));
            }
        }
    }
    Ok(())
}

fn key(id: u64, seq: u64) -> u64 {
    id << 32 | (seq + 1)
}

fn consumer(qname: &str, bname: &str, cid: u64, seed: u64) -> Result<(), String> {
    let q = Queue::open(qname, Flags::default()).map_err(|e| e.to_string())?;
    let book = Book::open(bname);
    let mut rng = Rng(seed | 1);
    let hand = W_HAND + cid as usize * HAND;
    // Notes a message about to be taken (before the get commits it).
    let note = |m: &[u8], got: &mut Vec<Option<(u64, u64)>>| {
        let p = parse(m);
        if let Some((id, seq)) = p {
            let n = book.w(hand).load(Relaxed) as usize;
            if n < HAND - 1 {
                book.w(hand + 1 + n).store(key(id, seq), SeqCst);
                book.w(hand).store(n as u64 + 1, SeqCst);
            }
        }
        got.push(p);
    };
    let t = Duration::from_millis(20);
    while book.w(W_CSTOP).load(Acquire) == 0 {
        let op = rng.below(4);
        let mut got: Vec<Option<(u64, u64)>> = Vec::new();
        let r = match op {
            0 | 1 => q
                .get_with(t, |m| {
                    note(m, &mut got);
                    Some(())
                })
                .map(|_| ()),
            2 => {
                let max = 1 + rng.below(MAX_BATCH);
                q.get_many_with(max as usize, t, |m| {
                    note(m, &mut got);
                    true
                })
                .map(|_| ())
            }
            _ => match q.read(t) {
                // A quarter of the time leave it in the queue (abort), else take it.
                Ok(v) if rng.below(4) == 0 => {
                    drop(v);
                    Ok(())
                }
                Ok(v) => {
                    note(&v, &mut got);
                    v.commit()
                }
                Err(e) => Err(e),
            },
        };
        for g in &got {
            match g {
                Some((id, seq)) => book.log(cid, *id, *seq),
                None => {
                    book.w(W_TORN).fetch_add(1, SeqCst);
                }
            }
        }
        book.w(hand).store(0, SeqCst);
        match r {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::Timeout) => {}
            Err(e) => {
                book.w(W_ERRORS).fetch_add(1, SeqCst);
                return Err(format!("consumer {cid}: {e}"));
            }
        }
    }
    Ok(())
}

enum Role {
    Producer(u64),
    Consumer(u64),
}

struct Worker {
    child: Child,
    role: Role,
}

#[test]
fn kill_producers_and_consumers() {
    let mut names = Names::new();
    let qname = names.add("qkill");
    let bname = names.add("qkill-book");
    let q = Queue::create(&qname, QueueSpec::new(16 << 10), Flags::default()).unwrap();
    let book = Book::create(&bname);

    let mut rng = Rng(mpx::util::realtime_ns() | 1);
    let (mut next_pid, mut next_cid) = (0u64, 0u64);
    let spawn = |role: Role, seed: u64| -> Worker {
        let (qn, bn) = (qname.clone(), bname.clone());
        let child = match role {
            Role::Producer(id) => fork(&[], move || producer(&qn, &bn, id, seed)),
            Role::Consumer(cid) => fork(&[], move || consumer(&qn, &bn, cid, seed)),
        };
        Worker { child, role }
    };
    let mut workers: Vec<Worker> = Vec::new();
    for _ in 0..PRODUCERS {
        workers.push(spawn(Role::Producer(next_pid), rng.next()));
        next_pid += 1;
    }
    for _ in 0..CONSUMERS {
        workers.push(spawn(Role::Consumer(next_cid), rng.next()));
        next_cid += 1;
    }

    let start = Instant::now();
    let (mut killed_p, mut killed_c, mut killed_in_get) = (0, 0, 0u64);
    // Messages killed consumers had in hand: the only ones allowed to be missing.
    let mut in_hand: std::collections::HashSet<u64> = std::collections::HashSet::new();
    for round in 0..KILLS {
        assert!(start.elapsed() < BUDGET, "{round} kills took {:?}", start.elapsed());
        assert_eq!(book.w(W_ERRORS).load(SeqCst), 0, "a child hit an unexpected error (see stderr)");
        std::thread::sleep(Duration::from_micros(300 + rng.below(3000)));
        // Alternate producers and consumers, a random one of each.
        let i = if round % 2 == 0 {
            rng.below(PRODUCERS as u64) as usize
        } else {
            PRODUCERS + rng.below(CONSUMERS as u64) as usize
        };
        let mut w = workers.remove(i);
        w.child.kill9();
        let replacement = match w.role {
            Role::Producer(_) => {
                killed_p += 1;
                next_pid += 1;
                Role::Producer(next_pid - 1)
            }
            Role::Consumer(cid) => {
                killed_c += 1;
                let hand = W_HAND + cid as usize * HAND;
                let n = book.w(hand).load(SeqCst) as usize;
                if n > 0 {
                    killed_in_get += 1;
                    for j in 0..n.min(HAND - 1) {
                        in_hand.insert(book.w(hand + 1 + j).load(SeqCst));
                    }
                }
                next_cid += 1;
                Role::Consumer(next_cid - 1)
            }
        };
        assert!((next_pid as usize) < MAX_IDS && (next_cid as usize) < MAX_IDS);
        workers.insert(i, spawn(replacement, rng.next()));
    }
    let kill_time = start.elapsed();

    // Stop: producers and consumers finish their call and exit; what is left, the parent drains.
    book.w(W_STOP).store(1, SeqCst);
    book.w(W_CSTOP).store(1, SeqCst);
    for w in workers.iter_mut() {
        w.child.join_ok();
    }
    assert_eq!(book.w(W_ERRORS).load(SeqCst), 0, "a child hit an unexpected error (see stderr)");
    let parent = 0xFFFF;
    let mut drained = 0;
    loop {
        match q.get(Duration::ZERO) {
            Ok(m) => {
                let (id, seq) = parse(&m).expect("a torn message left in the queue");
                book.log(parent, id, seq);
                drained += 1;
            }
            Err(e) if e.kind() == ErrorKind::Empty => break,
            Err(e) => panic!("draining: {e}"),
        }
    }
    assert_eq!(q.qsize(), 0);
    assert_eq!(q.bytes_used(), 0);

    // Check.
    let torn = book.w(W_TORN).load(SeqCst);
    let n = (book.w(W_NEXT).load(SeqCst) as usize).min(LOG_SLOTS);
    let mut seen: HashMap<(u64, u64), u32> = HashMap::new();
    let mut last: HashMap<(u64, u64), u64> = HashMap::new();
    let mut holes = 0;
    for i in 0..n {
        let e = book.w(W_LOG + i).load(Acquire);
        if e == 0 {
            // A consumer killed between claiming the slot and writing it; counted below.
            holes += 1;
            continue;
        }
        let (cid, id, seq) = (e >> 48, (e >> 32) & 0xFFFF, (e & 0xFFFF_FFFF) - 1);
        *seen.entry((id, seq)).or_insert(0) += 1;
        // Per-producer order, as each consumer saw it.
        if let Some(&prev) = last.get(&(cid, id)) {
            assert!(seq > prev, "consumer {cid} got producer {id}'s {seq} after {prev}");
        }
        last.insert((cid, id), seq);
    }
    let dups: Vec<_> = seen.iter().filter(|(_, &c)| c > 1).collect();
    assert!(dups.is_empty(), "messages delivered twice: {:?}", &dups[..dups.len().min(10)]);
    let (mut lost, mut returned, mut in_flight_delivered, mut phantom) = (0u64, 0u64, 0u64, 0u64);
    for id in 0..next_pid {
        let put = book.w(W_PRODUCED + id as usize).load(SeqCst);
        returned += put;
        for seq in 0..put {
            if !seen.contains_key(&(id, seq)) {
                assert!(
                    in_hand.contains(&key(id, seq)),
                    "producer {id}'s message {seq} was put, never received, and no killed consumer had it in hand"
                );
                lost += 1;
            }
        }
        // Messages of a put that had not returned (the producer was killed in it) may be there.
        for seq in put..put + MAX_BATCH {
            if seen.contains_key(&(id, seq)) {
                in_flight_delivered += 1;
            }
        }
        phantom += seen.keys().filter(|(i, s)| *i == id && *s >= put + MAX_BATCH).count() as u64;
    }
    eprintln!(
        "queue kill test: {KILLS} kills ({killed_p} producers, {killed_c} consumers, {killed_in_get} of them with \
         messages in hand ({} messages)) in {kill_time:?}; {returned} puts returned, {} messages received, {drained} \
         drained at the end; {lost} missing, every one in the hand of a consumer killed between its get's commit and \
         its return; {in_flight_delivered} messages of interrupted puts delivered; {} recoveries; torn {torn}; \
         unwritten log slots {holes}",
        in_hand.len(),
        seen.len(),
        q.recoveries()
    );
    assert_eq!(torn, 0, "torn messages");
    assert_eq!(phantom, 0, "messages that were never put");
    assert!(lost <= in_hand.len() as u64);
    assert!(holes as u64 <= killed_in_get, "{holes} log slots never written");
    assert!(q.recoveries() > 0, "no process ever had to repair the queue: the kills missed every critical section");

    // The same queue still works: every kind of call, with a new process on the other side.
    let qn = qname.clone();
    let mut c = fork(&[], move || {
        let q = Queue::open(&qn, Flags::default()).map_err(|e| e.to_string())?;
        for i in 0..1000u32 {
            q.put(&i.to_le_bytes(), WAIT).map_err(|e| e.to_string())?;
        }
        q.put_many(&[b"a", b"b"], WAIT).map_err(|e| e.to_string())?;
        let mut r = q.reserve(3, WAIT).map_err(|e| e.to_string())?;
        r.copy_from_slice(b"res");
        r.commit(3).map_err(|e| e.to_string())
    });
    for i in 0..1000u32 {
        assert_eq!(q.get(WAIT).unwrap(), i.to_le_bytes());
    }
    assert_eq!(q.get_many(2, WAIT).unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
    let v = q.read(WAIT).unwrap();
    assert_eq!(&*v, b"res");
    v.commit().unwrap();
    c.join_ok();
    assert!(q.is_empty());
    q.shutdown().unwrap();
    assert_eq!(q.get(WAIT).unwrap_err().kind(), ErrorKind::Closed);
}
