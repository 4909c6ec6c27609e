//! Entry points by every start method. Runs without the test harness: `init` must be the
//! first thing in main, and the harness owns main otherwise.

use std::time::Duration;

use mpx::process::{self, Options, StartMethod};
use mpx::ErrorKind;

fn main() {
    process::register("len", |arg| arg.len() as i32).unwrap();
    process::register("name-check", |arg| (process::current::name().as_bytes() == arg) as i32).unwrap();
    process::register("parent-check", |arg| {
        let want: i32 = std::str::from_utf8(arg).unwrap().parse().unwrap();
        (process::current::parent_pid() == want) as i32
    })
    .unwrap();
    process::register("fail", |_| panic!("entry failed on purpose")).unwrap();
    process::register("sleep", |_| {
        std::thread::sleep(Duration::from_secs(30));
        0
    })
    .unwrap();
    process::init(std::env::args_os().collect()).unwrap();

    let t = Duration::from_secs(20);
    let mut passed = 0;
    for m in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
        let p = process::start(m, "len", &[7u8; 33], &Options::new()).unwrap();
        assert_eq!(p.join(t).unwrap(), 33, "{m:?}");
        let big = vec![1u8; 300_000];
        let p = process::start(m, "len", &big, &Options::new()).unwrap();
        assert_eq!(p.join(t).unwrap(), 300_000 & 0xff, "{m:?} large argument");
        let p = process::start(m, "name-check", b"carol", &Options::new().name("carol")).unwrap();
        assert_eq!(p.join(t).unwrap(), 1, "{m:?} name");
        let me = std::process::id().to_string();
        let p = process::start(m, "parent-check", me.as_bytes(), &Options::new()).unwrap();
        assert_eq!(p.join(t).unwrap(), 1, "{m:?} parent pid");
        let p = process::start(m, "fail", b"", &Options::new()).unwrap();
        assert_eq!(p.join(t).unwrap(), 1, "{m:?} panic exits 1");
        let p = process::start(m, "sleep", b"", &Options::new()).unwrap();
        assert_eq!(p.join(Duration::from_millis(30)).unwrap_err().kind(), ErrorKind::Timeout);
        p.terminate().unwrap();
        assert_eq!(p.join(t).unwrap(), -libc::SIGTERM, "{m:?} terminate");
        let e = process::start(m, "not-registered", b"", &Options::new()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{m:?}");
        passed += 8;
        println!("entry points by {}: ok", m.name());
    }
    println!("process_entry: {passed} passed, 0 failed");
}
