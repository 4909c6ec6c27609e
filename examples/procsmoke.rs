use mpx::process::{self, Options, StartMethod};
use std::time::{Duration, Instant};
fn main() {
    process::register("echo", |arg| { println!("entry got {:?} name={} ppid={}", String::from_utf8_lossy(arg), process::current::name(), process::current::parent_pid()); arg.len() as i32 }).unwrap();
    process::init(std::env::args_os().collect()).unwrap();
    let p = process::spawn("true", &["true"], &Options::new()).unwrap();
    println!("true -> {}", p.join(None).unwrap());
    let p = process::spawn("sh", &["sh", "-c", "exit 7"], &Options::new()).unwrap();
    println!("exit 7 -> {}", p.join(Duration::from_secs(5)).unwrap());
    println!("missing -> {:?}", process::spawn("no-such-prog", &["x"], &Options::new()).err());
    let p = process::spawn("sleep", &["sleep", "10"], &Options::new()).unwrap();
    println!("join timeout -> {:?}", p.join(Duration::from_millis(50)).err().map(|e| e.kind()));
    p.terminate().unwrap();
    println!("terminated -> {}", p.join(Duration::from_secs(5)).unwrap());
    let p = process::fork(&Options::new().name("kid"), || { println!("in child name={}", process::current::name()); 3 }).unwrap();
    println!("fork -> {}", p.join(Duration::from_secs(5)).unwrap());
    let p = process::fork(&Options::new(), || panic!("boom")).unwrap();
    println!("fork panic -> {}", p.join(Duration::from_secs(5)).unwrap());
    for m in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
        let t = Instant::now();
        let p = process::start(m, "echo", b"hello", &Options::new().name(format!("e-{}", m.name()))).unwrap();
        println!("{:?} -> {} in {:?}", m, p.join(Duration::from_secs(10)).unwrap(), t.elapsed());
    }
    let t = Instant::now();
    for _ in 0..100 { let p = process::start(StartMethod::ForkServer, "echo", b"", &Options::new()).unwrap(); p.join(Duration::from_secs(10)).unwrap(); }
    println!("forkserver avg {:?}", t.elapsed()/100);
    let t = Instant::now();
    for _ in 0..200 { let p = process::fork(&Options::new(), || 0).unwrap(); p.join(None).unwrap(); }
    println!("fork avg {:?}", t.elapsed()/200);
    let t = Instant::now();
    for _ in 0..100 { let p = process::spawn("/bin/true", &["true"], &Options::new()).unwrap(); p.join(None).unwrap(); }
    println!("spawn true avg {:?}", t.elapsed()/100);
    println!("unregistered -> {:?}", process::start(StartMethod::Spawn, "nope", b"", &Options::new()).err());
}
