//! shm_hello.rs: a named shared-memory buffer from Rust. Any process, in any language, can open
//! "hello-rs" by name while it exists; a second handle stands in for that other process.
use mpx::Object;
use mpx::{Flags, SharedMemory};

fn main() -> Result<(), mpx::Error> {
    let shm = SharedMemory::create("hello-rs", 4096, Flags::UNLINK_ON_LAST_CLOSE)?;
    // SAFETY: no other process writes this buffer while we use it.
    unsafe { shm.as_mut_slice()[..15].copy_from_slice(b"hello from Rust") };
    let other = SharedMemory::open("hello-rs", Flags::default())?;
    // SAFETY: the write above is over, and nothing writes the buffer while this slice is read.
    println!("{} ({} bytes)", String::from_utf8_lossy(unsafe { &other.as_slice()[..15] }), other.len());
    Ok(()) // both handles close here; the last close removes the name
}
