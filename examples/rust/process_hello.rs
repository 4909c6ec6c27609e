//! process_hello.rs: one entry point started by each start method, plus an executable.
use std::time::Duration;

use mpx::process::{self, Options, StartMethod};

fn main() -> Result<(), mpx::Error> {
    process::register("greet", |arg| {
        println!("{} (pid {}) got {:?}", process::current::name(), std::process::id(), String::from_utf8_lossy(arg));
        arg.len() as i32
    })?;
    // Runs the entry and exits when this program is re-executed as a spawned child.
    process::init(std::env::args_os().collect())?;

    for method in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
        let p = process::start(method, "greet", b"hi", &Options::new().name(method.name()))?;
        println!("{}: exit code {}", method.name(), p.join(Duration::from_secs(10))?);
    }
    let p = process::spawn("sh", &["sh", "-c", "exit 3"], &Options::new())?;
    println!("sh: exit code {}", p.join(Duration::from_secs(10))?);
    Ok(())
}
