//! Fuzz-style tests for the frame parser and the handshake: random and garbage input must give
//! clear errors, never a panic, never a hang, and never an allocation beyond the configured
//! maximum message size (a counting allocator watches the receiving thread).
//!
//! Deterministic by default; set MPX_FUZZ_SEED=<n> for another run and MPX_FUZZ_ROUNDS=<n> for
//! more rounds. A failure prints the seed and round.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::time::Duration;

use mpx::conn::{self, auth, frame, Connection, Listener};
use mpx::ErrorKind;

// ---- allocation watch --------------------------------------------------------------------------

struct Counting;

// Per thread: tests run in parallel, and each watches only its own receiving thread.
thread_local! {
    static WATCHED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method passes its arguments unchanged to System, which meets GlobalAlloc's contract; note() only
// updates const-initialised thread-locals (it neither allocates nor panics).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        System.alloc_zeroed(l)
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
    if WATCHED.try_with(|w| w.get()).unwrap_or(false) {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` with this thread's allocations watched; returns its result and the largest one.
fn watched<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    WATCHED.with(|w| w.set(true));
    let r = f();
    WATCHED.with(|w| w.set(false));
    (r, LARGEST.with(|l| l.get()))
}

// ---- randomness --------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Fewer than `n` random bytes (a random count).
    fn some_bytes(&mut self, n: u64) -> Vec<u8> {
        let k = self.below(n) as usize;
        self.bytes(k)
    }
}

fn seed() -> u64 {
    std::env::var("MPX_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x6d70_7821)
}

fn rounds(default: u64) -> u64 {
    std::env::var("MPX_FUZZ_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn socketpair() -> (OwnedFd, OwnedFd) {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType};
    nix::sys::socket::socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
        .expect("socketpair")
}

/// A random stream: valid frames first (recorded), then possibly garbage of several kinds.
fn random_stream(rng: &mut Rng, max: u64) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut wire = Vec::new();
    let mut valid = Vec::new();
    for _ in 0..rng.below(6) {
        let n = match rng.below(4) {
            0 => 0,
            1 => rng.below(16),
            2 => rng.below(4096),
            _ => rng.below(max + 1).min(200_000),
        }
        .min(max) as usize;
        let payload = rng.bytes(n);
        let (h, hl) = if rng.below(5) == 0 {
            // CPython accepts the long form for any length.
            let mut h = [0u8; 12];
            h[..4].copy_from_slice(&(-1i32).to_be_bytes());
            h[4..].copy_from_slice(&(n as u64).to_be_bytes());
            (h, 12)
        } else {
            frame::encode_header(n as u64)
        };
        wire.extend_from_slice(&h[..hl]);
        wire.extend_from_slice(&payload);
        valid.push(payload);
    }
    match rng.below(7) {
        0 => {}                                                                        // clean end
        1 => wire.extend(rng.some_bytes(64)),                                          // noise
        2 => wire.extend_from_slice(&(rng.next() as u32 | 0x8000_0000).to_be_bytes()), // negative length
        3 => {
            // A length beyond the maximum, short or long form, perhaps with some body.
            let len = max + 1 + rng.below(u64::MAX / 2);
            let (h, hl) = frame::encode_header(len);
            wire.extend_from_slice(&h[..hl]);
            wire.extend(rng.some_bytes(100));
        }
        4 => {
            // A truncated frame: header promises more than follows.
            let n = 1 + rng.below(max.min(100_000));
            let (h, hl) = frame::encode_header(n);
            wire.extend_from_slice(&h[..hl]);
            wire.extend(rng.some_bytes(n));
        }
        5 => {
            // A truncated header.
            let (h, hl) = frame::encode_header(rng.next());
            wire.extend_from_slice(&h[..rng.below(hl as u64) as usize]);
        }
        _ => {
            let (h, _) = frame::encode_header(u64::MAX - rng.below(1000));
            wire.extend_from_slice(&h);
        }
    }
    (wire, valid)
}

#[test]
fn random_streams_give_clear_errors_and_bounded_allocations() {
    let seed = seed();
    let mut rng = Rng(seed | 1);
    let mut seen = 0;
    for round in 0..rounds(300) {
        let max = [1u64, 100, 4096, 65536, 1 << 20][rng.below(5) as usize];
        let (wire, valid) = random_stream(&mut rng, max);
        let (raw, mine) = socketpair();
        let c = Connection::from_fd(mine).unwrap();
        c.set_max_message_size(Some(max));
        let use_small_buffers = rng.below(2) == 0;
        let ctx = format!("seed {seed} round {round} (max {max}, {} bytes, {} valid frames)", wire.len(), valid.len());
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut f = std::fs::File::from(raw);
                // The reader may give up early (too big, corrupt): a broken pipe then is fine.
                let _ = f.write_all(&wire);
            });
            let ((got, end), largest) = watched(|| {
                let mut got = Vec::new();
                let mut small = [0u8; 64];
                let end = loop {
                    let r = if use_small_buffers {
                        match c.recv_into(&mut small, Duration::from_secs(10)) {
                            Ok(n) => Ok(small[..n].to_vec()),
                            Err(e) if e.kind() == ErrorKind::BufferTooSmall => c.recv(Duration::from_secs(10)),
                            Err(e) => Err(e),
                        }
                    } else {
                        c.recv(Duration::from_secs(10))
                    };
                    match r {
                        Ok(m) => got.push(m),
                        Err(e) => break e,
                    }
                };
                (got, end)
            });
            assert!(
                matches!(end.kind(), ErrorKind::Closed | ErrorKind::TooBig | ErrorKind::Corrupt),
                "{ctx}: unexpected {:?}: {end}",
                end.kind()
            );
            assert!(!end.message().is_empty());
            assert!(got.len() >= valid.len(), "{ctx}: {} of the valid frames arrived ({end})", got.len());
            assert!(got[..valid.len()] == valid[..], "{ctx}: valid frames arrived changed");
            let bound = (max as usize).max(64 * 1024) + 4096;
            assert!(largest <= bound, "{ctx}: allocated {largest} bytes at once (bound {bound})");
            seen = seen.max(largest);
            // Once broken or closed, it stays so and never hangs.
            let again = c.recv(Duration::from_secs(10)).unwrap_err();
            assert!(matches!(again.kind(), ErrorKind::Closed | ErrorKind::Broken), "{ctx}: then {again}");
        });
    }
    // The watch itself works: the 64 KiB read-ahead buffer was seen.
    assert!(seen >= 64 * 1024, "the allocation watch saw nothing ({seen})");
}

#[test]
fn handshake_parsers_take_any_bytes() {
    let seed = seed();
    let mut rng = Rng(seed ^ 0x5555);
    let prefixes: [&[u8]; 7] = [b"", b"{", b"{sha256}", b"{md5}", b"{sha384}", b"{sha3_256}", b"{sha256"];
    for round in 0..rounds(20_000) {
        let p = prefixes[rng.below(prefixes.len() as u64) as usize];
        let mut m = p.to_vec();
        m.extend(rng.some_bytes(80));
        let key = rng.some_bytes(100);
        let ((), largest) = watched(|| {
            let _ = auth::split_digest(&m);
            match auth::response(&key, &m) {
                Ok(r) => {
                    auth::verify(&key, &m, &r).unwrap_or_else(|e| panic!("round {round}: own response refused: {e}"))
                }
                Err(e) => assert_eq!(e.kind(), ErrorKind::Auth, "round {round}"),
            }
            let other = rng.some_bytes(300);
            if let Err(e) = auth::verify(&key, &m, &other) {
                assert_eq!(e.kind(), ErrorKind::Auth, "round {round}");
            }
        });
        assert!(largest < 4096, "seed {seed} round {round}: {largest} bytes at once");
    }
}

#[test]
fn garbage_handshake_peers_never_hang_either_side() {
    let seed = seed();
    let mut rng = Rng(seed ^ 0xabcd);
    let l = Listener::bind("unix:@", 16, Some(b"fuzz-key")).unwrap();
    let addr = l.address().to_string();
    for round in 0..rounds(150) {
        let garbage = match rng.below(4) {
            0 => rng.some_bytes(40),
            1 => {
                let n = rng.below(300) as usize;
                let mut v = (n as u32).to_be_bytes().to_vec();
                v.extend(rng.bytes(n));
                v
            }
            2 => {
                let (h, hl) = frame::encode_header(rng.next());
                h[..hl].to_vec()
            }
            _ => {
                let mut v = 16u32.to_be_bytes().to_vec();
                v.extend(rng.bytes(16)); // a legacy-looking digest, wrong
                v
            }
        };
        let ctx = format!("seed {seed} round {round}");
        // A garbage client against the listener.
        std::thread::scope(|s| {
            let g = garbage.clone();
            let a = addr.clone();
            s.spawn(move || {
                let c = std::os::unix::net::UnixStream::connect_addr(
                    &std::os::unix::net::SocketAddr::from_abstract_name(&a.as_bytes()[6..]).unwrap(),
                )
                .unwrap();
                let mut c = c;
                let _ = c.write_all(&g);
            });
            let e = l.accept(Duration::from_secs(10)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Auth, "{ctx}: accept gave {e}");
        });
        // A garbage server against a client.
        let server = std::os::unix::net::UnixListener::bind_addr(
            &std::os::unix::net::SocketAddr::from_abstract_name(format!("mpx-fuzz-{}-{round}", std::process::id()))
                .unwrap(),
        )
        .unwrap();
        let saddr = format!("unix:@mpx-fuzz-{}-{round}", std::process::id());
        std::thread::scope(|s| {
            let g = garbage.clone();
            s.spawn(move || {
                let (mut c, _) = server.accept().unwrap();
                let _ = c.write_all(&g);
            });
            let e = conn::connect(&saddr, Some(b"fuzz-key"), Duration::from_secs(10)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Auth, "{ctx}: connect gave {e}");
        });
    }
}
