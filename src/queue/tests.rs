//! Unit tests of the queue (single process; tests/queue*.rs cover processes and kills).

use std::time::Duration;

use super::*;
use crate::wait::Timeout;
use crate::ErrorKind;

fn q(cap: usize) -> Queue {
    Queue::create_anonymous(QueueSpec::new(cap)).unwrap()
}

#[test]
fn put_get_roundtrip_and_wrap() {
    let q = q(100);
    assert_eq!(q.capacity(), 4096);
    assert_eq!(q.max_message(), 4088);
    // Many messages of odd sizes: the ring wraps many times, records straddle the end.
    for i in 0..10_000u32 {
        let m: Vec<u8> = (0..(i % 997)).map(|j| (i + j) as u8).collect();
        q.put(&m, Timeout::Forever).unwrap();
        assert_eq!(q.qsize(), 1);
        assert_eq!(q.get(Timeout::Forever).unwrap(), m);
    }
    assert!(q.is_empty());
    assert_eq!(q.try_get().unwrap_err().kind(), ErrorKind::Empty);
}

#[test]
fn full_and_too_big() {
    let q = q(4000);
    let m = vec![7u8; 1000];
    let mut n = 0;
    while q.try_put(&m).is_ok() {
        n += 1;
    }
    assert_eq!(n, 4096 / 1008);
    assert_eq!(q.try_put(&m).unwrap_err().kind(), ErrorKind::Full);
    assert_eq!(q.put(&m, Duration::from_millis(5)).unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(q.put(&vec![0; 5000], Timeout::Forever).unwrap_err().kind(), ErrorKind::TooBig);
    assert_eq!(q.put(&vec![0; q.max_message()], Duration::ZERO).unwrap_err().kind(), ErrorKind::Full);
    while q.try_get().is_ok() {}
    q.put(&vec![1; q.max_message()], Duration::ZERO).unwrap();
    assert!(q.is_full());
    assert_eq!(q.get(Duration::ZERO).unwrap().len(), q.max_message());
}

#[test]
fn message_limit() {
    let q = Queue::create_anonymous(QueueSpec::new(4096).max_messages(3)).unwrap();
    for i in 0..3u8 {
        q.try_put(&[i]).unwrap();
    }
    assert!(q.is_full());
    assert_eq!(q.try_put(&[9]).unwrap_err().kind(), ErrorKind::Full);
    assert_eq!(q.put_many(&[[1u8], [2u8], [3u8], [4u8]], Timeout::Forever).unwrap_err().kind(), ErrorKind::TooBig);
    assert_eq!(q.try_get().unwrap(), vec![0]);
    q.try_put(&[3]).unwrap();
    assert_eq!(q.get_many(10, Duration::ZERO).unwrap(), vec![vec![1], vec![2], vec![3]]);
}

#[test]
fn batches() {
    let q = q(10_000);
    let msgs: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; i as usize]).collect();
    q.put_many(&msgs, Duration::ZERO).unwrap();
    assert_eq!(q.qsize(), 50);
    let got = q.get_many(20, Duration::ZERO).unwrap();
    assert_eq!(got, msgs[..20]);
    let mut buf = [0u8; 100];
    assert_eq!(q.get_into(&mut buf[..10], Duration::ZERO).unwrap_err().kind(), ErrorKind::BufferTooSmall);
    assert_eq!(q.get_into(&mut buf, Duration::ZERO).unwrap(), 20);
    let rest = q.get_many(100, Duration::ZERO).unwrap();
    assert_eq!(rest, msgs[21..]);
    q.put_many::<&[u8]>(&[], Duration::ZERO).unwrap();
    assert!(q.is_empty());
}

#[test]
fn reserve_commit_and_read_views() {
    let q = q(8192);
    let mut r = q.reserve(5000, Duration::ZERO).unwrap();
    r[..3].copy_from_slice(b"abc");
    // The same thread may not put while its reservation is open.
    assert_eq!(q.try_put(b"x").unwrap_err().kind(), ErrorKind::State);
    r.commit(3).unwrap();
    let r = q.reserve(10, Duration::ZERO).unwrap();
    drop(r); // aborted
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.commit_raw(1).unwrap_err().kind(), ErrorKind::State);
    let v = q.read(Duration::ZERO).unwrap();
    assert_eq!(&*v, b"abc");
    assert_eq!(q.try_get().unwrap_err().kind(), ErrorKind::State);
    drop(v); // left in the queue
    let v = q.read(Duration::ZERO).unwrap();
    v.commit().unwrap();
    assert!(q.is_empty());
    assert_eq!(q.read_commit_raw().unwrap_err().kind(), ErrorKind::State);
}

#[test]
fn a_view_ends_once_even_from_two_threads() {
    let q = q(4096);
    for _ in 0..200 {
        q.reserve_raw(8, Duration::ZERO).unwrap();
        let oks: usize = std::thread::scope(|s| {
            let h: Vec<_> = (0..2).map(|_| s.spawn(|| q.commit_raw(4).is_ok() as usize)).collect();
            h.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(oks, 1);
        assert_eq!(q.qsize(), 1);
        q.read_raw(Duration::ZERO).unwrap();
        let oks: usize = std::thread::scope(|s| {
            let h: Vec<_> = (0..2).map(|_| s.spawn(|| q.read_commit_raw().is_ok() as usize)).collect();
            h.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(oks, 1);
        assert!(q.is_empty());
    }
}

#[test]
fn shutdown_drains_then_closed() {
    let q = q(4096);
    q.put(b"last", Duration::ZERO).unwrap();
    q.shutdown().unwrap();
    assert!(q.is_shutdown());
    assert_eq!(q.put(b"x", Duration::ZERO).unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(q.get(Duration::ZERO).unwrap(), b"last");
    assert_eq!(q.get(Timeout::Forever).unwrap_err().kind(), ErrorKind::Closed);
}

#[test]
fn joinable() {
    let q = Queue::create_anonymous(QueueSpec::new(4096).variant(Variant::Joinable)).unwrap();
    assert_eq!(q.task_done().unwrap_err().kind(), ErrorKind::State);
    q.put(b"a", Duration::ZERO).unwrap();
    q.put(b"b", Duration::ZERO).unwrap();
    assert_eq!(q.unfinished(), 2);
    assert_eq!(q.join(Duration::from_millis(1)).unwrap_err().kind(), ErrorKind::Timeout);
    q.get(Duration::ZERO).unwrap();
    q.task_done().unwrap();
    q.get(Duration::ZERO).unwrap();
    q.task_done().unwrap();
    q.join(Duration::ZERO).unwrap();
    assert_eq!(q.task_done().unwrap_err().kind(), ErrorKind::State);
    let plain = Queue::create_anonymous(QueueSpec::new(64)).unwrap();
    assert_eq!(plain.task_done().unwrap_err().kind(), ErrorKind::Unsupported);
}

#[test]
fn threads_mpmc() {
    let q = q(4096);
    const N: u32 = 20_000;
    let total = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        for p in 0..2u32 {
            let q = &q;
            s.spawn(move || {
                for i in 0..N {
                    let m = (p << 24 | i).to_le_bytes();
                    q.put(&m, Timeout::Forever).unwrap();
                }
            });
        }
        let mut seen = [0u32; 2];
        let mut sums = 0u64;
        let h: Vec<_> = (0..2)
            .map(|_| {
                let (q, total) = (&q, &total);
                s.spawn(move || {
                    let mut last = [None::<u32>; 2];
                    let mut n = 0u64;
                    while total.load(Relaxed) < 2 * N {
                        if let Ok(m) = q.get(Duration::from_millis(50)) {
                            total.fetch_add(1, Relaxed);
                            let v = u32::from_le_bytes(m.try_into().unwrap());
                            let (p, i) = ((v >> 24) as usize, v & 0xFF_FFFF);
                            // Per-producer order holds for each consumer.
                            assert!(last[p].map_or(true, |l| l < i));
                            last[p] = Some(i);
                            n += i as u64;
                        }
                    }
                    n
                })
            })
            .collect();
        for t in h {
            sums += t.join().unwrap();
        }
        seen[0] = total.load(Relaxed);
        assert_eq!(seen[0], 2 * N);
        assert_eq!(sums, 2 * (N as u64 * (N as u64 - 1) / 2));
    });
}

#[test]
fn read_seq_and_consumers_held() {
    let q = q(4096);
    for i in 0..3u8 {
        q.put(&[i], Timeout::Forever).unwrap();
    }
    assert_eq!(q.get(Timeout::Forever).unwrap(), vec![0]);
    let v = q.read(Timeout::Forever).unwrap();
    assert_eq!(v.seq(), 1);
    drop(v);
    // Aborted: still there, still at 1.
    assert_eq!(q.with_consumers_held(Duration::from_secs(5), |got| got).unwrap(), 1);
    let v = q.read(Timeout::Forever).unwrap();
    assert_eq!((&*v, v.seq()), (&[1u8][..], 1));
    v.commit().unwrap();
    assert_eq!(q.with_consumers_held(Duration::from_secs(5), |got| got).unwrap(), 2);
    assert_eq!(q.read(Timeout::Forever).unwrap().seq(), 2);
}
