//! Waiting: the one policy every kind uses to wait for another process.
//!
//! A waiter first checks its condition, then spins ([`Spin`]): a handoff between two running
//! processes takes 0.1-1 us, a futex sleep and wake 2-30 us depending on the machine, so a
//! short spin catches most handoffs at a fraction of a sleep's cost. How long it spins adapts at
//! run time per waiting site (doubling after a spin that succeeded, halving after one that had
//! to sleep, between 2 and 30 us), and past 5 us it yields the CPU between checks, so that on a
//! busy 2-core machine the process it waits for can run; no spin lasts longer than twice what a
//! wake was observed to cost here ([`wake`]), and a lock's waiters look at its word less and less
//! often while they spin (`Spin::until_backoff`). Then it sleeps on a futex word in the
//! shared state ([`futex`], or a [`Signal`] that wakers only wake when a sleeper marked it), in
//! bounded slices where the thing it waits for could die without waking it ([`Backoff`],
//! [`LIVENESS_SLICE`]). Deadlines come from the caller's [`Timeout`]; a zero timeout never
//! spins or sleeps. docs/ARCHITECTURE.md ("Waiting") has the measurements behind the numbers.

pub(crate) mod futex;

mod deadline;
mod signal;
mod spin;
pub(crate) mod wake;

pub use deadline::Timeout;
pub(crate) use deadline::{Backoff, Deadline, LIVENESS_SLICE};
pub(crate) use signal::Signal;
pub(crate) use spin::Spin;
