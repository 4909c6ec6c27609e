//! pool_hello.rs: a pool of forked workers: map in order, a task error, and a worker killed
//! while it runs a task (only that task fails; the pool replaces the worker and goes on).
use std::time::Duration;

use mpx::pool::{Pool, PoolOptions, Registry, TaskError};
use mpx::ErrorKind;

fn main() -> Result<(), mpx::Error> {
    let reg = Registry::new()
        .with("square", |a| {
            let x = u64::from_le_bytes(a.try_into().map_err(|_| TaskError::new(ErrorKind::Invalid, "need a u64"))?);
            Ok((x * x).to_le_bytes().to_vec())
        })
        .with("nap", |_| {
            std::thread::sleep(Duration::from_secs(30));
            Ok(Vec::new())
        });
    let pool = Pool::new(PoolOptions::new().workers(2), reg)?;
    let t = Duration::from_secs(10);

    let items: Vec<[u8; 8]> = (1..=10u64).map(|i| i.to_le_bytes()).collect();
    let squares: Vec<u64> =
        pool.map("square", &items, None, t)?.iter().map(|r| u64::from_le_bytes(r[..].try_into().unwrap())).collect();
    println!("squares: {squares:?}");

    let bad = pool.submit("square", b"x")?;
    println!("bad input: {}", pool.wait(bad, t).unwrap_err());

    let nap = pool.submit("nap", b"")?;
    let victim = loop {
        if let Some(w) = pool.workers().into_iter().find(|w| w.task == Some(nap)) {
            break w.pid;
        }
        let _ = pool.ready(nap);
        std::thread::sleep(Duration::from_millis(1));
    };
    // SAFETY: signals a worker of this pool, which is our own unreaped child.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    println!("killed worker {victim}: {}", pool.wait(nap, t).unwrap_err());
    let after = pool.submit("square", &12u64.to_le_bytes())?;
    println!("after: {}", u64::from_le_bytes(pool.wait(after, t)?[..].try_into().unwrap()));
    println!("{}", mpx::Object::summary(pool.table()).unwrap_or_default());
    pool.close()?;
    pool.join(t)
}
