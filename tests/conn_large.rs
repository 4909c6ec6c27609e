//! Large and huge messages: memory for a body grows as its bytes arrive, never from the length a
//! peer announces; a peer that announces more than it sends and hangs up is the end of the
//! stream at once; a message received in parts (recv_into_part) is held once, by the caller.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::time::Duration;

use mpx::conn::Connection;
use mpx::ErrorKind;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

const T: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(5);

struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method passes its arguments unchanged to System; note() only updates a
// const-initialised thread-local (it neither allocates nor panics).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        System.alloc(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new);
        System.realloc(p, l, new)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The largest allocation this thread made while running `f`.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    let r = f();
    (r, LARGEST.with(|l| l.get()))
}

fn raw_pair() -> (OwnedFd, Connection) {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).unwrap();
    (a, Connection::from_fd(b).unwrap())
}

fn write_raw(fd: &OwnedFd, bytes: &[u8]) {
    let mut f = std::fs::File::from(fd.try_clone().unwrap());
    f.write_all(bytes).unwrap();
}

fn long_header(len: u64) -> Vec<u8> {
    let mut h = (-1i32).to_be_bytes().to_vec();
    h.extend_from_slice(&len.to_be_bytes());
    h
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ (i >> 16) as u8).collect()
}

#[test]
fn huge_announcement_then_hangup_is_the_end_of_the_stream() {
    const HUGE: u64 = 1 << 40;
    // Every receive form, each on a fresh stream: a header, a few body bytes, then the peer goes.
    for form in 0..4 {
        let (raw, c) = raw_pair();
        let mut wire = long_header(HUGE);
        wire.extend_from_slice(b"12345");
        write_raw(&raw, &wire);
        drop(raw);
        for round in 0..3 {
            let mut small = [0u8; 64];
            let mut got = 0usize;
            let e = match form {
                0 => c.recv(T).unwrap_err(),
                1 => c.recv_malloc(T).map(|_| ()).unwrap_err(),
                2 => c.recv_into(&mut small, T).unwrap_err(),
                _ => c.recv_into_part(&mut small, &mut got, T).unwrap_err(),
            };
            assert_eq!(e.kind(), ErrorKind::Closed, "form {form} round {round}: {e}");
            if round == 0 {
                assert!(e.message().contains(&format!("5 of {HUGE}")), "form {form}: {e}");
            }
            assert!(c.poll(Duration::ZERO).unwrap(), "the end of the stream is ready to read");
        }
        assert_eq!(c.pending_len(), None);
    }
}

#[test]
fn announced_lengths_reserve_nothing_until_their_bytes_arrive() {
    // 20 peers each announce 64 GiB and send nothing: each receive times out (no allocation
    // error, no address space the size of the announcement).
    let pairs: Vec<_> = (0..20).map(|_| raw_pair()).collect();
    let ((), largest) = largest_allocation(|| {
        for (raw, c) in &pairs {
            write_raw(raw, &long_header(64 << 30));
            for _ in 0..2 {
                assert_eq!(c.recv(SHORT).unwrap_err().kind(), ErrorKind::Timeout);
            }
            assert_eq!(c.pending_len(), Some(64 << 30));
        }
    });
    assert!(largest <= 1 << 20, "largest allocation {largest} bytes for announcements alone");

    // Bytes that do arrive are kept, and memory follows them (a socket holds about 200 KiB,
    // so a thread writes 3 MiB while the receiver takes it in short waits).
    let (raw, c) = &pairs[0];
    let raw = raw.try_clone().unwrap();
    let writer = std::thread::spawn(move || write_raw(&raw, &pattern(3 << 20)));
    let ((), largest) = largest_allocation(|| {
        for _ in 0..200_000 {
            if writer.is_finished() {
                break;
            }
            assert_eq!(c.recv(SHORT).unwrap_err().kind(), ErrorKind::Timeout);
        }
        assert_eq!(c.recv(SHORT).unwrap_err().kind(), ErrorKind::Timeout);
    });
    writer.join().unwrap();
    assert!(largest <= 8 << 20, "largest allocation {largest} bytes for 3 MiB that arrived");
}

#[test]
fn a_body_arriving_over_many_short_waits_is_whole_in_every_form() {
    const N: usize = 6 << 20;
    let body = pattern(N);
    for form in 0..4 {
        let (raw, c) = raw_pair();
        let sender = {
            let body = body.clone();
            std::thread::spawn(move || {
                write_raw(&raw, &(N as u32).to_be_bytes());
                for piece in body.chunks(300_000) {
                    write_raw(&raw, piece);
                    std::thread::sleep(Duration::from_millis(2));
                }
                raw
            })
        };
        let mut buf = vec![0u8; N];
        let mut part: Vec<u8> = Vec::new();
        let mut got = 0usize;
        let mut rounds = 0;
        let received = loop {
            rounds += 1;
            assert!(rounds < 1_000_000, "form {form}: no progress");
            let r = match form {
                0 => c.recv(SHORT),
                1 => c.recv_malloc(SHORT).map(|m| m.as_slice().to_vec()),
                2 => c.recv_into(&mut buf, SHORT).map(|n| buf[..n].to_vec()),
                _ => {
                    // The caller's own buffer, grown as the library asks for room.
                    match c.recv_into_part(&mut part, &mut got, SHORT) {
                        Ok(n) => Ok(part[..n].to_vec()),
                        Err(e) if e.kind() == ErrorKind::BufferTooSmall => {
                            let len = c.pending_len().unwrap() as usize;
                            assert_eq!(got, part.len().min(len), "{e}");
                            part.resize((part.len() * 2).clamp(4096, len), 0);
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match r {
                Ok(m) => break m,
                Err(e) => assert_eq!(e.kind(), ErrorKind::Timeout, "form {form}: {e}"),
            }
        };
        assert!(received == body, "form {form}: the body differs");
        drop(sender.join().unwrap());
        assert_eq!(c.recv(T).unwrap_err().kind(), ErrorKind::Closed);
    }
}

#[test]
fn a_part_receive_owns_the_message_until_it_is_complete() {
    let (raw, c) = raw_pair();
    let body = pattern(100_000);
    write_raw(&raw, &100_000u32.to_be_bytes());
    write_raw(&raw, &body[..40_000]);
    let mut buf = vec![0u8; 100_000];
    let mut got = 0usize;
    assert_eq!(c.recv_into_part(&mut buf, &mut got, SHORT).unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(got, 40_000);
    // Other receives may not take a message whose start is in the caller's buffer.
    assert_eq!(c.recv(SHORT).unwrap_err().kind(), ErrorKind::State);
    let mut other = vec![0u8; 100_000];
    assert_eq!(c.recv_into(&mut other, SHORT).unwrap_err().kind(), ErrorKind::State);
    // A count that is not what the last call left is refused, and changes nothing.
    let mut wrong = 39_999;
    assert_eq!(c.recv_into_part(&mut buf, &mut wrong, SHORT).unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(c.recv_into_part(&mut buf[..30_000], &mut got, SHORT).unwrap_err().kind(), ErrorKind::Invalid);
    write_raw(&raw, &body[40_000..]);
    write_raw(&raw, &[0, 0, 0, 2, b'o', b'k']);
    assert_eq!(c.recv_into_part(&mut buf, &mut got, T).unwrap(), 100_000);
    assert_eq!(got, 100_000);
    assert!(buf == body);
    // The next message is an ordinary one again.
    assert_eq!(c.recv(T).unwrap(), b"ok");

    // A part receive after an ordinary one timed out takes over what the connection kept.
    write_raw(&raw, &100_000u32.to_be_bytes());
    write_raw(&raw, &body[..50_000]);
    assert_eq!(c.recv(SHORT).unwrap_err().kind(), ErrorKind::Timeout);
    let mut small = vec![0u8; 10];
    let mut got = 0usize;
    let e = c.recv_into_part(&mut small, &mut got, SHORT).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BufferTooSmall, "{e}");
    assert_eq!(got, 0);
    let mut buf = vec![0u8; 100_000];
    assert_eq!(c.recv_into_part(&mut buf, &mut got, SHORT).unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(got, 50_000);
    write_raw(&raw, &body[50_000..]);
    assert_eq!(c.recv_into_part(&mut buf, &mut got, T).unwrap(), 100_000);
    assert!(buf == body);
}
