//! Connections: whole byte messages between two processes, wire-compatible with CPython's
//! `multiprocessing.connection`, so a C, C++ or Rust program and a Python program using only the
//! standard library talk to each other.
//!
//! - [`pipe`]: a connected pair (duplex over a Unix socketpair, or one way over a pipe).
//! - [`Listener`] / [`connect`]: meet at an address ("unix:/path", "unix:@name", "tcp:host:port",
//!   "tcp:[::1]:port"), optionally with an authkey and CPython's mutual HMAC handshake.
//! - [`Connection::from_fd`]: re-open an inherited descriptor in a child.
//! - [`Connection::send_fds`] / [`Connection::recv_fds`]: pass descriptors (and with them
//!   anonymous shared-memory buffers) over Unix connections, in CPython's `reduction` form.
//!
//! The wire format and the handshake are described in [`frame`] and [`auth`]; docs/CONNECTIONS.md
//! has the whole picture.

mod address;
pub mod auth;
mod body;
mod connection;
pub mod frame;
mod io;
mod listener;
/// Also used by the fork server for its descriptor-passing reads.
pub(crate) mod sys;

pub use address::Address;
pub use body::MallocBuf;
pub use connection::{pipe, Connection, Transport, MAX_SEND_FDS};
pub use listener::{connect, Listener, DEFAULT_HANDSHAKE_TIMEOUT};
