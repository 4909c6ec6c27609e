//! The `mpx` command-line tool, run as a separate process against real objects. Every `gc` here
//! is limited to the test's own names (a pattern), so it never touches objects of other tests or
//! other people on the machine.

mod common;

use common::*;
use mpx::Object;
use mpx::{Flags, SharedMemory};

fn me() -> i64 {
    std::process::id() as i64
}

#[test]
fn ls_shows_a_created_object() {
    let mut names = Names::new();
    let name = names.add("cli-ls");
    let other = names.add("cli-ls-other");
    let _shm = SharedMemory::create(&name, 4096, Flags::default()).unwrap();
    let _o = SharedMemory::create(&other, 5000, Flags::default()).unwrap();

    let r = mpx(&["ls"]);
    assert_eq!(r.code, 0, "{r:?}");
    let header = r.stdout.lines().next().unwrap();
    for col in ["NAME", "KIND", "SIZE", "CREATOR", "CREATED", "IN-USE", "USERS", "PROBLEM"] {
        assert!(header.contains(col), "missing column {col}: {header}");
    }
    let line = r
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        .unwrap_or_else(|| panic!("{name} not listed:\n{r:?}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    // NAME KIND SIZE(2 words) CREATOR CREATED(2 words) IN-USE USERS PROBLEM
    assert_eq!(cols[1], "shm", "{line}");
    assert_eq!(&cols[2..4], ["4.0", "KiB"], "{line}");
    assert_eq!(cols[4], me().to_string(), "{line}");
    assert_eq!(cols[7], "yes", "{line}");
    assert_eq!(cols[8], me().to_string(), "{line}");
    assert_eq!(cols[9], "-", "{line}");
    // Columns line up: every row's KIND starts where the header's does.
    let kind_at = header.find("KIND").unwrap();
    assert_eq!(line.find(" shm ").map(|i| i + 1), Some(kind_at), "misaligned:\n{header}\n{line}");

    // A pattern selects.
    let r = mpx(&["ls", &other]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains(&other) && !r.stdout.contains(&format!("{name} ")), "{r:?}");
    let r = mpx(&["ls", "t-cli-nothing-matches-*"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "no matching mpx objects"));
}

#[test]
fn ls_json_has_the_right_fields() {
    let mut names = Names::new();
    let name = names.add("cli-lsjson");
    let before = mpx::util::realtime_ns();
    let _shm = SharedMemory::create(&name, 123_457, Flags::MODE_GROUP).unwrap();
    let all = mpx_json(&["ls", "--json"]);
    let o = all.find_named(&name).unwrap_or_else(|| panic!("{name} missing from {all:?}"));
    assert_eq!(o.get("kind").str(), "shm");
    assert_eq!(o.get("data_size").u64(), 123_457, "exact bytes in JSON");
    assert_eq!(o.get("file_size").u64(), 4096 + 123_457);
    assert_eq!(o.get("creator_pid").i64(), me());
    assert!(o.get("creator_alive").bool());
    let created = o.get("created_ns").u64();
    assert!(created >= before && created <= mpx::util::realtime_ns());
    let iso = o.get("created").str();
    assert!(iso.len() == 25 && iso.as_bytes()[10] == b'T', "ISO 8601 local time with offset: {iso}");
    assert!(o.get("in_use").bool());
    assert_eq!(o.get("users").arr().iter().map(|p| p.i64()).collect::<Vec<_>>(), vec![me()]);
    assert_eq!(o.get("mode").str(), "0660");
    assert_eq!(o.get("path").str(), shm_path(&name));
    assert!(o.get("problem").is_null());

    // Patterns filter the JSON too; the output is always an array.
    let one = mpx_json(&["ls", "--json", &name]);
    assert_eq!(one.arr().len(), 1);
    assert_eq!(mpx_json(&["ls", "-j", "t-cli-nothing-*"]).arr().len(), 0);
}

#[test]
fn info_shows_everything_about_one_object() {
    let mut names = Names::new();
    let name = names.add("cli-info");
    let _shm = SharedMemory::create(&name, 2 << 20, Flags::UNLINK_ON_LAST_CLOSE).unwrap();

    let r = mpx(&["info", &name]);
    assert_eq!(r.code, 0, "{r:?}");
    let field = |k: &str| {
        r.stdout
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(&format!("{k}:")).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {k:?} in\n{}", r.stdout))
    };
    assert_eq!(field("name"), name);
    assert_eq!(field("kind"), "shm");
    assert_eq!(field("data size"), "2097152 (2.0 MiB)");
    assert_eq!(field("creator"), format!("pid {} (running)", me()));
    assert!(field("created").ends_with("ago)"), "{}", field("created"));
    assert_eq!(field("in use"), "yes");
    assert_eq!(field("users"), me().to_string());
    assert!(field("mode").starts_with("0600"));
    assert_eq!(field("problem"), "none");
    assert_eq!(field("magic"), "ok");
    assert!(field("layout version").starts_with("1 "));
    assert_eq!(field("flags"), "0x1 (unlink-on-last-close)");
    assert_eq!(field("header size"), "512");
    assert_eq!(field("data offset"), "4096");
    assert!(field("checksum").ends_with("(ok)"));
    assert_eq!(field("ready"), "yes");
    assert_eq!(field("stored name"), name);

    let j = mpx_json(&["info", "--json", &name]);
    assert_eq!(j.get("name").str(), name);
    assert_eq!(j.get("data_size").u64(), 2 << 20);
    assert!(j.get("age_s").u64() < 3600);
    let h = j.get("header");
    assert!(h.get("magic_ok").bool() && h.get("checksum_ok").bool() && h.get("ready").bool());
    assert_eq!(h.get("layout_version").u64(), 1);
    assert_eq!(h.get("kind").u64(), 1);
    assert_eq!(h.get("flags").u64(), 1);
    assert_eq!(h.get("flag_names").arr()[0].str(), "unlink-on-last-close");
    assert_eq!(h.get("header_size").u64(), 512);
    assert_eq!(h.get("total_size").u64(), 4096 + (2 << 20));
    assert_eq!(h.get("data_offset").u64(), 4096);
    assert_eq!(h.get("params").arr().len(), 4);
    assert_eq!(h.get("stored_name").str(), name);

    // The path form names the same object.
    assert_eq!(mpx_json(&["info", &shm_path(&name), "--json"]).get("name").str(), name);
}

#[test]
fn info_of_missing_and_corrupt_objects() {
    let mut names = Names::new();
    let missing = names.add("cli-info-missing");
    let r = mpx(&["info", &missing]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&format!("'{missing}': no such object")), "{r:?}");
    assert!(r.stdout.is_empty());

    let r = mpx(&["info", "bad/name"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("invalid name"), "{r:?}");

    let bad = names.add("cli-info-corrupt");
    drop(SharedMemory::create(&bad, 100, Flags::default()).unwrap());
    edit_header(&bad, false, |h| h.data_size = 5); // checksum no longer matches
    let r = mpx(&["info", &bad]);
    assert_eq!(r.code, 0, "inspecting a corrupt object succeeds: {r:?}");
    assert!(r.stdout.contains("checksum mismatch"), "{r:?}");
    assert!(r.stdout.contains("MISMATCH"), "{r:?}");
    let j = mpx_json(&["info", "--json", &bad]);
    assert!(j.get("kind").is_null());
    assert!(j.get("problem").str().contains("checksum mismatch"));
    assert!(!j.get("header").get("checksum_ok").bool());
}

#[test]
fn rm_removes_names_and_users_keep_their_mapping() {
    let mut names = Names::new();
    let a = names.add("cli-rm-a");
    let b = names.add("cli-rm-b");
    let dash = names.guard(&format!("-{}", unique("cli-rm-dash")));
    let held = SharedMemory::create(&a, 4096, Flags::default()).unwrap();
    unsafe { held.as_mut_slice()[0] = 42 };
    drop(SharedMemory::create(&b, 4096, Flags::default()).unwrap());
    drop(SharedMemory::create(&dash, 1, Flags::default()).unwrap());

    // In use or not, rm removes the name.
    let r = mpx(&["rm", &a, &shm_path(&b)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&format!("removed '{a}'")) && r.stdout.contains(&format!("removed '{b}'")), "{r:?}");
    assert!(!exists(&a) && !exists(&b));
    // The process that had it open keeps working with it.
    unsafe {
        assert_eq!(held.as_slice()[0], 42);
        held.as_mut_slice()[1] = 43;
        assert_eq!(held.as_slice()[1], 43);
    }

    // Missing: an error, unless --force; other names are still processed.
    let r = mpx(&["rm", &a]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&format!("'{a}': no such object")), "{r:?}");
    let r = mpx(&["rm", "--force", &a]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{r:?}");
    let r = mpx(&["rm", "-f", "bad name", &a]);
    assert_eq!(r.code, 1, "an invalid name is an error even with --force: {r:?}");

    // A name starting with '-' needs "--".
    let r = mpx(&["rm", &dash]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(exists(&dash));
    let r = mpx(&["rm", "--", &dash]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!exists(&dash));

    let r = mpx(&["rm"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("missing NAME"));
}

/// The fault test: a child opens a buffer and is SIGKILLed; another live child holds a second
/// buffer. `mpx gc` removes exactly the one no live process uses and keeps the other;
/// `--dry-run` removes nothing.
#[test]
fn gc_removes_only_what_no_live_process_uses() {
    let mut names = Names::new();
    let prefix = unique("cli-gc");
    let dead = names.guard(&format!("{prefix}-dead"));
    let live = names.guard(&format!("{prefix}-live"));
    let pattern = format!("{prefix}-*");
    drop(SharedMemory::create(&dead, 4096, Flags::default()).unwrap());
    drop(SharedMemory::create(&live, 8192, Flags::default()).unwrap());

    let hold = |name: &str| {
        let (parent, child_end) = chan();
        let n = name.to_string();
        let child = fork(&[child_end.fd()], move || {
            let _s = SharedMemory::open(&n, Flags::default()).map_err(|e| e.to_string())?;
            child_end.try_send(1)?;
            child_end.recv(WAIT)?; // hold until told (or killed)
            Ok(())
        });
        parent.expect(1);
        (child, parent)
    };
    let (mut victim, _victim_chan) = hold(&dead);
    let (mut keeper, keeper_chan) = hold(&live);

    // Both in use before the crash.
    let ls = mpx_json(&["ls", "--json", &pattern]);
    assert_eq!(ls.arr().len(), 2);
    assert!(ls.find_named(&dead).unwrap().get("in_use").bool());
    assert_eq!(ls.find_named(&live).unwrap().get("users").arr()[0].i64(), keeper.pid as i64);
    let r = mpx(&["gc", &pattern]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(exists(&dead) && exists(&live), "nothing is collected while both are in use: {r:?}");

    victim.kill9();

    // Dry run: reports, removes nothing.
    let r = mpx(&["gc", "--dry-run", &pattern]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&format!("would remove {dead}: shm, 4.0 KiB; no live process uses it")), "{r:?}");
    assert!(r.stdout.contains(&format!("would keep {live}: in use by pid {}", keeper.pid)), "{r:?}");
    assert!(r.stdout.contains("gc (dry run): would remove 1 object, keep 1"), "{r:?}");
    assert!(exists(&dead) && exists(&live));
    let j = mpx_json(&["gc", "-n", "--json", &pattern]);
    assert!(j.get("dry_run").bool());
    assert_eq!(j.get("removed").arr().len(), 1);
    assert_eq!(j.get("removed").arr()[0].get("name").str(), dead);
    assert_eq!(j.get("kept").arr()[0].get("name").str(), live);
    assert!(exists(&dead) && exists(&live), "--dry-run must remove nothing");

    // The real run.
    let j = mpx_json(&["gc", "--json", &pattern]);
    assert!(!j.get("dry_run").bool());
    let removed = j.get("removed").arr();
    assert_eq!(removed.len(), 1, "{j:?}");
    assert_eq!(removed[0].get("name").str(), dead);
    assert_eq!(removed[0].get("kind").str(), "shm");
    assert_eq!(removed[0].get("data_size").u64(), 4096);
    assert!(removed[0].get("reason").str().contains("no live process uses it"));
    let kept = j.get("kept").arr();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].get("name").str(), live);
    assert_eq!(kept[0].get("users").arr()[0].i64(), keeper.pid as i64);
    assert!(kept[0].get("reason").str().contains(&keeper.pid.to_string()));
    assert!(j.get("errors").arr().is_empty());
    assert!(!exists(&dead), "the dead child's buffer must be collected");
    assert!(exists(&live), "the live child's buffer must be kept");

    // The keeper still works with its object, and gc takes it once the keeper is done.
    let again = SharedMemory::open(&live, Flags::default()).unwrap();
    drop(again);
    keeper_chan.send(0);
    keeper.join_ok();
    let r = mpx(&["gc", &pattern]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&format!("removed {live}")), "{r:?}");
    assert!(r.stdout.contains("gc: removed 1 object, kept 0"), "{r:?}");
    assert!(!exists(&live));
}

#[test]
fn gc_collects_corrupt_and_uninitialised_segments_nobody_uses() {
    let mut names = Names::new();
    let prefix = unique("cli-gc-bad");
    let corrupt = names.guard(&format!("{prefix}-corrupt"));
    let uninit = names.guard(&format!("{prefix}-uninit"));
    let fifo = names.guard(&format!("{prefix}-fifo"));
    let held_bad = names.guard(&format!("{prefix}-heldbad"));
    let pattern = format!("{prefix}-*");

    write_segment_file(&corrupt, &[0x5A; 600], 600);
    let h = buffer_header(&uninit, 4096, dead_pid());
    write_segment_file(&uninit, header_bytes(&h), 8192);
    let c = std::ffi::CString::new(shm_path(&fifo)).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // A corrupt segment somebody still holds (a flock on it) is kept.
    let held = SharedMemory::create(&held_bad, 100, Flags::default()).unwrap();
    edit_header(&held_bad, false, |h| h.data_size = 1);

    let ls = mpx_json(&["ls", "--json", &pattern]);
    assert_eq!(ls.arr().len(), 4, "{ls:?}");
    assert!(ls.find_named(&corrupt).unwrap().get("problem").str().contains("bad magic"));
    assert!(ls.find_named(&uninit).unwrap().get("problem").str().contains("not initialised"));
    let r = mpx(&["ls", &pattern]);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with(&corrupt) && l.contains(" ? ") && l.ends_with("not an mpx segment (bad magic)")),
        "{r:?}"
    );

    let j = mpx_json(&["gc", "--json", &pattern]);
    let removed: Vec<&str> = j.get("removed").arr().iter().map(|o| o.get("name").str()).collect();
    let kept: Vec<&str> = j.get("kept").arr().iter().map(|o| o.get("name").str()).collect();
    assert_eq!(removed, vec![corrupt.as_str(), uninit.as_str()], "{j:?}");
    assert_eq!(kept, vec![fifo.as_str(), held_bad.as_str()], "{j:?}");
    let rm0 = &j.get("removed").arr()[0];
    assert!(rm0.get("kind").is_null() && rm0.get("problem").str().contains("bad magic"));
    assert!(j.get("removed").arr()[1].get("reason").str().contains("is gone"), "dead creator named: {j:?}");
    assert!(!exists(&corrupt) && !exists(&uninit));
    assert!(exists(&fifo) && exists(&held_bad));
    drop(held);
}

#[test]
fn usage_help_and_version() {
    let r = mpx(&[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("usage: mpx") && r.stdout.is_empty(), "{r:?}");

    for args in [&["--help"][..], &["-h"], &["help"]] {
        let r = mpx(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        for s in ["ls", "info", "rm", "gc", "Exit status", "0  success", "2  usage error"] {
            assert!(r.stdout.contains(s), "{args:?} help lacks {s:?}");
        }
    }
    let r = mpx(&["--version"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with(&format!("mpx {}", mpx::VERSION)), "{r:?}");
    assert_eq!(mpx(&["-V"]).stdout, r.stdout);

    for (cmd, word) in [("ls", "IN-USE"), ("info", "header"), ("rm", "keep their mapping"), ("gc", "--dry-run")] {
        let r = mpx(&["help", cmd]);
        assert_eq!(r.code, 0);
        assert!(r.stdout.starts_with(&format!("usage: mpx {cmd}")) && r.stdout.contains(word), "{r:?}");
        assert_eq!(mpx(&[cmd, "--help"]).stdout, r.stdout);
    }

    for args in [
        &["bogus"][..],
        &["--bogus"],
        &["ls", "--bogus"],
        &["gc", "-x"],
        &["help", "bogus"],
        &["info"],
        &["info", "a", "b"],
        &["help", "ls", "gc"],
    ] {
        let r = mpx(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: usage goes to stderr");
        assert!(r.stderr.contains("usage: mpx"), "{args:?}: {r:?}");
    }
    let r = mpx(&["ls", "--frob"]);
    assert!(r.stderr.starts_with("mpx ls: unknown option '--frob'"), "{r:?}");
}

#[test]
fn ls_shows_live_state_per_kind() {
    use mpx::sync::{Event, Lock, Semaphore, SemaphoreSpec};
    let mut names = Names::new();
    let (ln, sn, en, qn, bn) = (
        names.add("cli-st-lock"),
        names.add("cli-st-sem"),
        names.add("cli-st-ev"),
        names.add("cli-st-q"),
        names.add("cli-st-buf"),
    );
    let lock = Lock::create(&ln, (), Flags::default()).unwrap();
    let sem = Semaphore::create(&sn, SemaphoreSpec::bounded(3), Flags::default()).unwrap();
    let ev = Event::create(&en, (), Flags::default()).unwrap();
    let q = mpx::Queue::create(&qn, mpx::QueueSpec::new(4096), Flags::default()).unwrap();
    let _buf = SharedMemory::create(&bn, 100, Flags::default()).unwrap();
    let state = |name: &str| {
        let all = mpx_json(&["ls", "--json", name]);
        let o = all.find_named(name).unwrap_or_else(|| panic!("{name} missing"));
        if o.get("state").is_null() {
            None
        } else {
            Some(o.get("state").str().to_string())
        }
    };
    assert_eq!(state(&ln).as_deref(), Some("free"));
    let _g = lock.acquire(mpx::Timeout::Forever).unwrap();
    assert_eq!(state(&ln), Some(format!("held by pid {}", me())));
    sem.acquire(mpx::Timeout::Forever).unwrap();
    assert_eq!(state(&sn).as_deref(), Some("value 2 of 3"));
    assert_eq!(state(&en).as_deref(), Some("clear"));
    ev.set();
    assert_eq!(state(&en).as_deref(), Some("set"));
    q.put(b"hello", mpx::Timeout::Forever).unwrap();
    assert!(state(&qn).unwrap().starts_with("1 msgs, "), "{:?}", state(&qn));
    assert_eq!(state(&bn), None, "a buffer has no state to show");
}
