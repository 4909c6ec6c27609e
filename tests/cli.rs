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

/// Every test here takes this first. Each `mpx ls` or `gc` inspects every entry of /dev/shm
/// (patterns only filter the output), probing unheld ones with a brief exclusive flock, and a
/// gc that meets such a probe keeps the object as in use: in parallel, these tests would make
/// each other's gc keep what it must remove.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn ls_shows_a_created_object() {
    let _serial = serial();
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
    let _serial = serial();
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
    let _serial = serial();
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
    let _serial = serial();
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
    let _serial = serial();
    let mut names = Names::new();
    let a = names.add("cli-rm-a");
    let b = names.add("cli-rm-b");
    let dash = names.guard(&format!("-{}", unique("cli-rm-dash")));
    let held = SharedMemory::create(&a, 4096, Flags::default()).unwrap();
    // SAFETY: the buffer is new and only this thread touches it; the slice is a temporary.
    unsafe { held.as_mut_slice()[0] = 42 };
    drop(SharedMemory::create(&b, 4096, Flags::default()).unwrap());
    drop(SharedMemory::create(&dash, 1, Flags::default()).unwrap());

    // In use or not, rm removes the name.
    let r = mpx(&["rm", &a, &shm_path(&b)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&format!("removed '{a}'")) && r.stdout.contains(&format!("removed '{b}'")), "{r:?}");
    assert!(!exists(&a) && !exists(&b));
    // The process that had it open keeps working with it.
    // SAFETY: `mpx rm` removes only the name, never the bytes; only this thread touches them, one slice at a time.
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
    let _serial = serial();
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

/// Files under the mpx. prefix that nobody holds but whose header does not validate, of every
/// sort met in the wild: another program's plain file, a truncated one, a huge sparse one, a
/// corrupt header, a creation that never finished. One of each is made by `make`.
struct InvalidFiles {
    garbage: String,
    truncated: String,
    sparse: String,
    corrupt: String,
    uninit: String,
}

impl InvalidFiles {
    fn make(names: &mut Names, prefix: &str) -> InvalidFiles {
        let f = InvalidFiles {
            garbage: names.guard(&format!("{prefix}-garbage")),
            truncated: names.guard(&format!("{prefix}-truncated")),
            sparse: names.guard(&format!("{prefix}-sparse")),
            corrupt: names.guard(&format!("{prefix}-corrupt")),
            uninit: names.guard(&format!("{prefix}-uninit")),
        };
        write_segment_file(&f.garbage, b"not mpx's: some other program's \"data\"\n\x01\x7f", 600);
        let h = buffer_header(&f.truncated, 4096, dead_pid());
        write_segment_file(&f.truncated, &header_bytes(&h)[..100], 100);
        write_segment_file(&f.sparse, &[], 1 << 40); // 1 TiB of holes
        let mut h = buffer_header(&f.corrupt, 4096, dead_pid());
        h.ready.store(0x5245_4459, std::sync::atomic::Ordering::Relaxed);
        h.data_size = 8; // checksum no longer matches
        write_segment_file(&f.corrupt, header_bytes(&h), 8192);
        let h = buffer_header(&f.uninit, 4096, dead_pid());
        write_segment_file(&f.uninit, header_bytes(&h), 8192);
        f
    }

    fn all(&self) -> [&str; 5] {
        [&self.garbage, &self.truncated, &self.sparse, &self.corrupt, &self.uninit]
    }
}

/// The defect of issue 11: gc (run as root by the tests) removed files that are not mpx
/// objects. Without --invalid it keeps every one of them and says why, in text and JSON, in a
/// dry run too; the valid unused object beside them is still removed.
#[test]
fn gc_keeps_files_that_are_not_valid_objects() {
    let _serial = serial();
    let mut names = Names::new();
    let prefix = unique("cli-gc-inv");
    let bad = InvalidFiles::make(&mut names, &prefix);
    let valid = names.guard(&format!("{prefix}-valid"));
    drop(SharedMemory::create(&valid, 100, Flags::default()).unwrap());
    let pattern = format!("{prefix}-*");

    let ls = mpx_json(&["ls", "--json", &pattern]);
    let problem = |n: &str| ls.find_named(n).unwrap_or_else(|| panic!("{n} not listed: {ls:?}")).get("problem").str();
    assert!(problem(&bad.garbage).contains("bad magic"));
    assert!(problem(&bad.truncated).contains("truncated"));
    assert!(problem(&bad.sparse).contains("bad magic"));
    assert!(problem(&bad.corrupt).contains("checksum mismatch"));
    assert!(problem(&bad.uninit).contains("not initialised"));

    for dry in [true, false] {
        let mut args = vec!["gc", "--json", &pattern];
        if dry {
            args.insert(1, "--dry-run");
        }
        let j = mpx_json(&args);
        let removed: Vec<&str> = j.get("removed").arr().iter().map(|o| o.get("name").str()).collect();
        assert_eq!(removed, vec![valid.as_str()], "dry run {dry}: only the valid object goes: {j:?}");
        let kept = j.get("kept");
        assert_eq!(kept.arr().len(), 5, "{j:?}");
        for n in bad.all() {
            let k = kept.find_named(n).unwrap_or_else(|| panic!("{n} not reported as kept: {j:?}"));
            let reason = k.get("reason").str();
            assert!(reason.contains("not a valid mpx object") && reason.contains(problem(n)), "{n}: {reason}");
            assert!(reason.contains("mpx gc --invalid"), "says what would remove it: {reason}");
            assert!(k.get("kind").is_null() && k.get("users").arr().is_empty());
            assert!(exists(n), "{n} must not be removed");
        }
        assert!(j.get("errors").arr().is_empty(), "{j:?}");
        assert_eq!(exists(&valid), dry);
    }

    // Text mode: a line per skipped entry, with the reason.
    let r = mpx(&["gc", &pattern]);
    assert_eq!(r.code, 0, "{r:?}");
    for n in bad.all() {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(&format!("kept {n}: not a valid mpx object: {}", problem(n)))),
            "{n} not reported:\n{r:?}"
        );
        assert!(exists(n));
    }
    assert!(r.stdout.contains("gc: removed 0 objects, kept 5"), "{r:?}");
}

/// With --invalid, gc removes the invalid files nobody holds that belong to its caller, and
/// still keeps another user's (even when run as root), anything in use and non-files; valid
/// objects are handled as always. A dry run reports the same decisions.
#[test]
fn gc_invalid_removes_only_the_callers_own_invalid_files() {
    let _serial = serial();
    let mut names = Names::new();
    let prefix = unique("cli-gc-own");
    let bad = InvalidFiles::make(&mut names, &prefix);
    let valid = names.guard(&format!("{prefix}-valid"));
    let used = names.guard(&format!("{prefix}-used"));
    let held_bad = names.guard(&format!("{prefix}-heldbad"));
    let fifo = names.guard(&format!("{prefix}-fifo"));
    let theirs = names.guard(&format!("{prefix}-theirs"));
    let pattern = format!("{prefix}-*");
    drop(SharedMemory::create(&valid, 100, Flags::default()).unwrap());
    let _used = SharedMemory::create(&used, 100, Flags::default()).unwrap();
    // A corrupt segment somebody still holds (a flock on it) is kept.
    let held = SharedMemory::create(&held_bad, 100, Flags::default()).unwrap();
    edit_header(&held_bad, false, |h| h.data_size = 1);
    nix::unistd::mkfifo(shm_path(&fifo).as_str(), nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    // Another user's invalid file (the tests run as root, which may give it away).
    write_segment_file(&theirs, b"someone else's", 64);
    let chowned = std::os::unix::fs::chown(shm_path(&theirs), Some(65534), Some(65534)).is_ok();
    if !chowned {
        eprintln!("not root: the other-user case is not exercised");
        std::fs::remove_file(shm_path(&theirs)).unwrap();
    }

    let expect_kept = |j: &Json| {
        let kept = j.get("kept");
        let reason = |n: &str| kept.find_named(n).unwrap_or_else(|| panic!("{n} not kept: {j:?}")).get("reason").str();
        assert!(reason(&used).contains(&format!("in use by pid {}", me())), "{}", reason(&used));
        assert!(reason(&held_bad).contains("in use"), "{}", reason(&held_bad));
        assert!(reason(&fifo).contains("FIFO"), "{}", reason(&fifo));
        if chowned {
            let r = reason(&theirs);
            assert!(r.contains("not a valid mpx object") && r.contains("owned by uid 65534"), "{r}");
        }
        assert_eq!(kept.arr().len(), 3 + chowned as usize, "{j:?}");
    };

    let j = mpx_json(&["gc", "--dry-run", "--invalid", "--json", &pattern]);
    let mut removed: Vec<&str> = j.get("removed").arr().iter().map(|o| o.get("name").str()).collect();
    removed.sort_unstable();
    let mut want: Vec<&str> = bad.all().into_iter().chain([valid.as_str()]).collect();
    want.sort_unstable();
    assert_eq!(removed, want, "{j:?}");
    expect_kept(&j);
    assert!(want.iter().all(|n| exists(n)), "--dry-run removes nothing");

    let j = mpx_json(&["gc", "--invalid", "--json", &pattern]);
    let mut removed: Vec<&str> = j.get("removed").arr().iter().map(|o| o.get("name").str()).collect();
    removed.sort_unstable();
    assert_eq!(removed, want, "{j:?}");
    let entry = |n: &str| j.get("removed").find_named(n).unwrap();
    assert!(
        entry(&bad.garbage).get("kind").is_null() && entry(&bad.garbage).get("problem").str().contains("bad magic")
    );
    assert!(entry(&bad.uninit).get("reason").str().contains("is gone"), "dead creator named: {j:?}");
    assert!(entry(&valid).get("problem").is_null());
    expect_kept(&j);
    assert!(j.get("errors").arr().is_empty(), "{j:?}");
    for n in &want {
        assert!(!exists(n), "{n} should be removed");
    }
    assert!(exists(&used) && exists(&held_bad) && exists(&fifo));
    assert_eq!(exists(&theirs), chowned, "another user's invalid file is kept");
    drop(held);
}

/// Removes a directory under the prefix when dropped (Names removes files only).
struct DirGuard(String);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(shm_path(&self.0));
    }
}

/// What gc keeps because it is not a regular file, it says how to remove, and that advice works:
/// `mpx rm` for a FIFO or a link (never touching the link's target), rmdir for a directory,
/// which `mpx rm` refuses with a message saying so.
#[test]
fn gc_hints_what_removes_entries_that_are_not_files() {
    let _serial = serial();
    let mut names = Names::new();
    let prefix = unique("cli-gc-nf");
    let dir = names.guard(&format!("{prefix}-dir"));
    let _dir_guard = DirGuard(dir.clone());
    let fifo = names.guard(&format!("{prefix}-fifo"));
    let link = names.guard(&format!("{prefix}-link"));
    let target = names.guard(&format!("{prefix}-target"));
    std::fs::create_dir(shm_path(&dir)).unwrap();
    nix::unistd::mkfifo(shm_path(&fifo).as_str(), nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let _t = SharedMemory::create(&target, 64, Flags::default()).unwrap();
    std::os::unix::fs::symlink(shm_path(&target), shm_path(&link)).unwrap();
    let pattern = format!("{prefix}-*");

    // Kept whether or not invalid files are asked for: they are not files at all.
    for args in [&["gc", "--json", &pattern][..], &["gc", "--invalid", "--json", &pattern]] {
        let j = mpx_json(args);
        assert!(j.get("removed").arr().is_empty(), "{j:?}");
        let reason =
            |n: &str| j.get("kept").find_named(n).unwrap_or_else(|| panic!("{n} not kept: {j:?}")).get("reason").str();
        let dir_reason = reason(&dir);
        assert!(dir_reason.contains("is a directory") && dir_reason.contains("rmdir"), "{dir_reason}");
        assert!(!dir_reason.contains("mpx rm"), "mpx rm cannot remove a directory: {dir_reason}");
        for n in [&fifo, &link] {
            assert!(reason(n).contains(&format!("`mpx rm {n}` removes it")), "{}", reason(n));
        }
    }

    // The advice holds.
    let r = mpx(&["rm", &dir]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("is a directory, not an mpx object") && r.stderr.contains("rmdir"), "{r:?}");
    assert!(exists(&dir));
    std::fs::remove_dir(shm_path(&dir)).unwrap();
    let r = mpx(&["rm", &fifo, &link]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!exists(&fifo) && !exists(&link));
    assert!(exists(&target), "the link's target is untouched");
}

#[test]
fn usage_help_and_version() {
    let _serial = serial();
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
    let _serial = serial();
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

/// Looking never changes anything (issue 11): an unlink-on-last-close object whose last user
/// was killed stays until `gc` removes it. Before, `mpx ls` and `mpx info` opened each object to
/// read its state, and closing that handle, as the last user, removed it.
#[test]
fn ls_and_info_never_remove_what_they_look_at() {
    let _serial = serial();
    use mpx::sync::{Lock, Semaphore, SemaphoreSpec};
    let mut names = Names::new();
    let (ln, sn, qn) = (names.add("cli-look-lock"), names.add("cli-look-sem"), names.add("cli-look-q"));
    let (l2, s2, q2) = (ln.clone(), sn.clone(), qn.clone());
    let (tx, rx) = chan();
    let mut child = fork(&[tx.fd()], move || {
        let f = Flags::UNLINK_ON_LAST_CLOSE;
        let _l = Lock::create(&l2, (), f).map_err(|e| e.to_string())?;
        let _s = Semaphore::create(&s2, SemaphoreSpec::new(1), f).map_err(|e| e.to_string())?;
        let _q = mpx::Queue::create(&q2, mpx::QueueSpec::new(4096), f).map_err(|e| e.to_string())?;
        tx.send(1);
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    });
    rx.expect(1);
    child.kill9();
    for n in [&ln, &sn, &qn] {
        assert!(exists(n), "{n} is there after its last user died (left for gc)");
        let r = mpx(&["ls", n]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(exists(n), "mpx ls removed {n}");
        let r = mpx(&["ls", "--json", n]);
        assert_eq!(r.code, 0, "{r:?}");
        let r = mpx(&["info", n]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("state"), "info shows the state it read: {r:?}");
        assert!(exists(n), "mpx info removed {n}");
        let r = mpx(&["info", "--json", n]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(exists(n), "mpx info --json removed {n}");
    }
    // Only gc removes them.
    let r = mpx(&["gc", &ln, &sn, &qn]);
    assert_eq!(r.code, 0, "{r:?}");
    for n in [&ln, &sn, &qn] {
        assert!(!exists(n), "gc removes {n}: {r:?}");
    }
}
