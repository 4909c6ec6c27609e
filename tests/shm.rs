//! Shared-memory buffers and the segment rules under them, with real processes: create, open,
//! read and write across fork; anonymous buffers passed by fd; unlink-on-last-close between
//! processes; waiting for a creator; corrupt headers, bad names, wrong kinds.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mpx::object::header::READY;
use mpx::object::{Segment, SegmentSpec};
use mpx::Object;
use mpx::{ErrorKind, Flags, Kind, SharedMemory};

fn err_of<T>(r: mpx::Result<T>) -> mpx::Error {
    match r {
        Ok(_) => panic!("expected an error, got Ok"),
        Err(e) => e,
    }
}

/// Asserts the error's kind and that its message names the object.
fn assert_err(e: &mpx::Error, kind: ErrorKind, name: &str, words: &[&str]) {
    assert_eq!(e.kind(), kind, "wrong kind for: {e}");
    assert!(e.message().contains(&format!("'{name}'")), "message does not name '{name}': {e}");
    for w in words {
        assert!(e.message().contains(w), "message lacks {w:?}: {e}");
    }
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

#[test]
fn named_buffer_is_shared_with_a_forked_child() {
    let mut names = Names::new();
    let name = names.add("shm-rw");
    let size = 3 * 4096 + 5;
    let shm = SharedMemory::create(&name, size, Flags::default()).unwrap();
    assert_eq!(shm.len(), size);
    assert_eq!(shm.name(), Some(name.as_str()));
    assert_eq!(shm.as_ptr() as usize % 4096, 0, "data must be page-aligned");
    assert!(exists(&name));
    // SAFETY: no other process has the new buffer yet; the read slice is gone before the write slice is made.
    unsafe {
        assert!(shm.as_slice().iter().all(|&b| b == 0), "a new buffer is zeroed");
        for (i, b) in shm.as_mut_slice().iter_mut().enumerate() {
            *b = pattern(i);
        }
    }
    let (parent, child_end) = chan();
    let n = name.clone();
    let mut child = fork(&[child_end.fd()], move || {
        let s = SharedMemory::open(&n, Flags::default()).map_err(|e| e.to_string())?;
        if s.len() != size {
            return Err(format!("size {} != {size}", s.len()));
        }
        // SAFETY: the parent finished writing before the fork and writes again only after our message.
        let data = unsafe { s.as_slice() };
        if let Some(i) = (0..size).find(|&i| data[i] != pattern(i)) {
            return Err(format!("byte {i} is {} in the child", data[i]));
        }
        // SAFETY: the parent does not touch the buffer until our message, and `data` is no longer used.
        unsafe {
            s.as_mut_slice()[0] = 0xCD;
            s.as_mut_slice()[size - 1] = 0xAB;
        }
        child_end.try_send(1)?;
        child_end.recv(WAIT)?;
        // SAFETY: the parent wrote byte 1 before this message and writes no more.
        if unsafe { s.as_slice()[1] } != 0xEF {
            return Err("the parent's write is not visible".into());
        }
        let ro = SharedMemory::open(&n, Flags::READ_ONLY).map_err(|e| e.to_string())?;
        // SAFETY: nobody writes the buffer any more (the parent waits for us to exit).
        if !ro.is_read_only() || unsafe { ro.as_slice()[size - 1] } != 0xAB {
            return Err("read-only view differs".into());
        }
        Ok(())
    });
    parent.expect(1);
    // SAFETY: the child wrote before its message and now waits for ours; each slice is a temporary.
    unsafe {
        assert_eq!(shm.as_slice()[0], 0xCD, "the child's write is not visible");
        assert_eq!(shm.as_slice()[size - 1], 0xAB);
        shm.as_mut_slice()[1] = 0xEF;
    }
    parent.send(2);
    child.join_ok();
    // Closing never unlinks: the object outlives every handle until removed.
    drop(shm);
    assert!(exists(&name));
    let again = SharedMemory::open(&name, Flags::default()).unwrap();
    // SAFETY: every other handle is gone (the child has exited, shm was dropped).
    assert_eq!(unsafe { again.as_slice()[size - 1] }, 0xAB);
    again.unlink().unwrap();
    assert!(!exists(&name));
}

#[test]
fn anonymous_buffer_is_shared_with_a_child_by_fd() {
    let shm = SharedMemory::create_anonymous(10_000).unwrap();
    assert_eq!(shm.name(), None);
    assert_eq!(shm.len(), 10_000);
    // SAFETY: the buffer is new and not shared yet.
    unsafe { shm.as_mut_slice()[..4].copy_from_slice(b"ping") };
    let fd = shm.fd();
    let (parent, child_end) = chan();
    let mut child = fork(&[child_end.fd(), fd], move || {
        let s = SharedMemory::from_fd(fd, Flags::default()).map_err(|e| e.to_string())?;
        // SAFETY: the parent wrote before the fork and does not touch the buffer until our message.
        if s.len() != 10_000 || unsafe { &s.as_slice()[..4] } != b"ping" {
            return Err("the child does not see the parent's bytes".into());
        }
        // SAFETY: the parent reads the buffer only after our message, and no other slice of s is alive.
        unsafe { s.as_mut_slice()[9_996..].copy_from_slice(b"pong") };
        child_end.try_send(1)
    });
    parent.expect(1);
    child.join_ok();
    // SAFETY: the child has exited: nobody else writes the buffer.
    assert_eq!(unsafe { &shm.as_slice()[9_996..] }, b"pong");

    // Sealed: nobody can shrink it under another process's mapping.
    // SAFETY: ftruncate takes integers; fd is shm's open descriptor, whose pages this test does not touch again.
    assert_ne!(unsafe { libc::ftruncate(fd, 100) }, 0, "an anonymous buffer must be sealed against shrinking");
    // No name: nothing to unlink, nothing in /dev/shm.
    assert_eq!(shm.unlink().unwrap_err().kind(), ErrorKind::Invalid);
    // Bad descriptors are refused with Invalid, never a crash.
    assert_eq!(err_of(SharedMemory::from_fd(-1, Flags::default())).kind(), ErrorKind::Invalid);
    assert_eq!(err_of(SharedMemory::from_fd(1_000_000, Flags::default())).kind(), ErrorKind::Invalid);
    let (a, _b) = chan();
    assert_eq!(
        err_of(SharedMemory::from_fd(a.fd(), Flags::default())).kind(),
        ErrorKind::Invalid,
        "a socket is not a segment"
    );
    assert_eq!(err_of(SharedMemory::from_fd(fd, Flags::UNLINK_ON_LAST_CLOSE)).kind(), ErrorKind::Invalid);
    assert_eq!(err_of(SharedMemory::create_anonymous(0)).kind(), ErrorKind::Invalid);
}

#[test]
fn unlink_on_last_close_creator_closes_first() {
    let mut names = Names::new();
    let name = names.add("shm-lastclose");
    let shm = SharedMemory::create(&name, 4096, Flags::UNLINK_ON_LAST_CLOSE).unwrap();
    let (parent, child_end) = chan();
    let n = name.clone();
    let mut child = fork(&[child_end.fd()], move || {
        // Opened without the flag: it is the object's (stored in its header).
        let s = SharedMemory::open(&n, Flags::default()).map_err(|e| e.to_string())?;
        child_end.try_send(1)?;
        child_end.recv(WAIT)?;
        drop(s);
        child_end.try_send(2)
    });
    let _quiet = no_fork(); // no other test's fork may share our objects from here on
    parent.expect(1);
    drop(shm);
    assert!(exists(&name), "the name must stay while the child still has the object open");
    assert!(SharedMemory::open(&name, Flags::default()).is_ok(), "still openable by name");
    assert!(exists(&name), "a closing non-last user must not remove it");
    parent.send(0);
    parent.expect(2);
    assert!(!exists(&name), "the last close must remove the name");
    child.join_ok();
}

#[test]
fn unlink_on_last_close_child_closes_first() {
    let mut names = Names::new();
    let name = names.add("shm-lastclose2");
    let shm = SharedMemory::create(&name, 100, Flags::UNLINK_ON_LAST_CLOSE).unwrap();
    let n = name.clone();
    let mut child = fork(&[], move || {
        let s = SharedMemory::open(&n, Flags::default()).map_err(|e| e.to_string())?;
        drop(s);
        Ok(())
    });
    let _quiet = no_fork(); // no other test's fork may share our objects from here on
    child.join_ok();
    assert!(exists(&name), "the creator still has it open");
    drop(shm);
    assert!(!exists(&name));
}

#[test]
fn unlink_on_last_close_given_at_open_applies_from_that_handle() {
    let mut names = Names::new();
    let name = names.add("shm-lastclose-open");
    let shm = SharedMemory::create(&name, 100, Flags::default()).unwrap();
    let (parent, child_end) = chan();
    let n = name.clone();
    let mut child = fork(&[child_end.fd()], move || {
        let s = SharedMemory::open(&n, Flags::UNLINK_ON_LAST_CLOSE).map_err(|e| e.to_string())?;
        child_end.try_send(1)?;
        child_end.recv(WAIT)?;
        drop(s);
        child_end.try_send(2)
    });
    let _quiet = no_fork(); // no other test's fork may share our objects from here on
    parent.expect(1);
    drop(shm); // the creator's handle has no flag: nothing happens
    assert!(exists(&name));
    parent.send(0);
    parent.expect(2);
    assert!(!exists(&name), "the flagged handle was the last one");
    child.join_ok();
}

#[test]
fn unlink_on_last_close_killed_last_user_leaves_it_for_gc() {
    let mut names = Names::new();
    let name = names.add("shm-lastclose-kill");
    let shm = SharedMemory::create(&name, 100, Flags::UNLINK_ON_LAST_CLOSE).unwrap();
    let (parent, child_end) = chan();
    let n = name.clone();
    let mut child = fork(&[child_end.fd()], move || {
        let _s = SharedMemory::open(&n, Flags::default()).map_err(|e| e.to_string())?;
        child_end.try_send(1)?;
        child_end.recv(WAIT)?; // killed while waiting here
        Ok(())
    });
    parent.expect(1);
    drop(shm);
    assert!(exists(&name));
    child.kill9();
    // Nobody closed it last (the kernel only dropped the dead child's lock), so the name
    // stays; but nobody uses it, which is exactly what gc collects.
    assert!(exists(&name));
    assert_eq!(mpx::object::registry::collect(&name).unwrap(), mpx::object::registry::Collected::Removed);
    assert!(!exists(&name));
}

/// Two processes repeatedly open-or-create and close a name flagged UNLINK_ON_LAST_CLOSE. While a
/// process holds the object, the name must refer to exactly that object (never removed under a
/// user, never replaced), and when both are done the name is gone.
#[test]
fn unlink_on_last_close_is_race_free() {
    let mut names = Names::new();
    let name = names.add("shm-lastclose-race");
    fn round(name: &str, iters: usize) -> Result<(), String> {
        for i in 0..iters {
            let shm = match SharedMemory::open(name, Flags::default()) {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    match SharedMemory::create(name, 64, Flags::UNLINK_ON_LAST_CLOSE) {
                        Ok(s) => s,
                        Err(e) if e.kind() == ErrorKind::Exists => continue,
                        Err(e) => return Err(format!("iteration {i}: create: {e}")),
                    }
                }
                Err(e) => return Err(format!("iteration {i}: open: {e}")),
            };
            let path = shm_path(name);
            let st = std::fs::metadata(&path).map_err(|e| format!("iteration {i}: name gone while held: {e}"))?;
            // SAFETY: libc::stat is plain integers; all-zero is a valid value.
            let mut me: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: me is a valid stat buffer, and shm.fd() is open while shm lives.
            unsafe { libc::fstat(shm.fd(), &mut me) };
            use std::os::unix::fs::MetadataExt;
            if st.ino() != me.st_ino {
                return Err(format!("iteration {i}: the name refers to another object while this one is held"));
            }
            drop(shm);
        }
        Ok(())
    }
    let n = name.clone();
    let mut child = fork(&[], move || round(&n, 300));
    let _quiet = no_fork(); // no other test's fork may share our objects from here on
    round(&name, 300).unwrap();
    child.join_ok();
    assert!(!exists(&name), "after the last close the name must be gone");
}

#[test]
fn open_waits_for_a_creator_still_initialising() {
    let mut names = Names::new();
    let name = names.add("shm-ready");
    // Our own pid as creator: alive, so open must wait rather than call it dead.
    let h = buffer_header(&name, 4096, std::process::id() as i32);
    write_segment_file(&name, header_bytes(&h), 8192);
    let published = Arc::new(AtomicBool::new(false));
    let (p, n) = (published.clone(), name.clone());
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        p.store(true, Ordering::SeqCst);
        patch(&n, READY_OFFSET, &READY.to_ne_bytes());
    });
    let shm = SharedMemory::open(&name, Flags::default()).expect("open must wait for the ready word");
    assert!(published.load(Ordering::SeqCst), "open returned before the creator published the segment");
    assert_eq!(shm.len(), 4096);
    t.join().unwrap();
}

#[test]
fn never_initialised_segment_of_a_dead_creator_is_corrupt() {
    let mut names = Names::new();
    let name = names.add("shm-deadcreator");
    let h = buffer_header(&name, 4096, dead_pid());
    write_segment_file(&name, header_bytes(&h), 8192);
    let e = err_of(SharedMemory::open(&name, Flags::default()));
    assert_err(&e, ErrorKind::Corrupt, &name, &["never initialised", "died"]);
}

#[test]
fn never_initialised_segment_of_a_live_creator_is_corrupt_once_settled() {
    let mut names = Names::new();
    let name = names.add("shm-stuckcreator");
    let h = buffer_header(&name, 4096, std::process::id() as i32);
    write_segment_file(&name, header_bytes(&h), 8192);
    let e = err_of(SharedMemory::open(&name, Flags::default()));
    assert_err(&e, ErrorKind::Corrupt, &name, &["never initialised"]);
}

#[test]
fn bad_names_are_invalid() {
    let long = "x".repeat(201);
    for bad in ["", "a/b", "/abs", "a b", "tab\there", "é", "nul\0", "..\u{0}", long.as_str()] {
        for e in [
            err_of(SharedMemory::create(bad, 4096, Flags::default())),
            err_of(SharedMemory::open(bad, Flags::default())),
            err_of(SharedMemory::unlink_name(bad)),
        ] {
            assert_eq!(e.kind(), ErrorKind::Invalid, "{bad:?}: {e}");
            assert!(e.message().contains("invalid name"), "{bad:?}: {e}");
        }
    }
    // The longest valid name works.
    let mut names = Names::new();
    let base = unique("n");
    let name = names.guard(&format!("{base}{}", "y".repeat(200 - base.len())));
    assert_eq!(name.len(), 200);
    let shm = SharedMemory::create(&name, 1, Flags::default()).unwrap();
    assert_eq!(shm.name(), Some(name.as_str()));
}

#[test]
fn bad_sizes_and_flags_are_invalid_and_leave_nothing() {
    let mut names = Names::new();
    let name = names.add("shm-size");
    let e = err_of(SharedMemory::create(&name, 0, Flags::default()));
    assert_err(&e, ErrorKind::Invalid, &name, &["size"]);
    assert!(!exists(&name));
    let e = err_of(SharedMemory::create(&name, usize::MAX, Flags::default()));
    assert_err(&e, ErrorKind::Invalid, &name, &["too large"]);
    assert!(!exists(&name));
    assert_eq!(err_of(SharedMemory::create(&name, 10, Flags(1 << 20))).kind(), ErrorKind::Invalid);
    assert_eq!(err_of(SharedMemory::create(&name, 10, Flags::READ_ONLY)).kind(), ErrorKind::Invalid);
    assert!(!exists(&name));
}

#[test]
fn exists_and_not_found() {
    let mut names = Names::new();
    let name = names.add("shm-exists");
    let e = err_of(SharedMemory::open(&name, Flags::default()));
    assert_err(&e, ErrorKind::NotFound, &name, &["no such object"]);
    assert_err(&err_of(SharedMemory::unlink_name(&name)), ErrorKind::NotFound, &name, &[]);

    let a = SharedMemory::create(&name, 4096, Flags::default()).unwrap();
    let e = err_of(SharedMemory::create(&name, 4096, Flags::default()));
    assert_err(&e, ErrorKind::Exists, &name, &["already exists"]);

    // Unlinking removes the name; users keep their mapping; a new create is a new object.
    // SAFETY: only this thread touches `a`, and no other slice of it is alive.
    unsafe { a.as_mut_slice()[0] = 7 };
    SharedMemory::unlink_name(&name).unwrap();
    assert_err(&err_of(SharedMemory::open(&name, Flags::default())), ErrorKind::NotFound, &name, &[]);
    // SAFETY: only this thread touches the buffer.
    assert_eq!(unsafe { a.as_slice()[0] }, 7);
    let b = SharedMemory::create(&name, 4096, Flags::default()).unwrap();
    // SAFETY: b was just created and nobody else has it.
    assert_eq!(unsafe { b.as_slice()[0] }, 0, "a new object, not the unlinked one");
    assert_eq!(a.unlink().unwrap_err().kind(), ErrorKind::NotFound, "a's name now belongs to b: not a's to remove");
    assert!(exists(&name));
    b.unlink().unwrap();
}

#[test]
fn concurrent_creates_of_one_name_have_exactly_one_winner() {
    let mut names = Names::new();
    for _ in 0..10 {
        let name = names.add("shm-createrace");
        let (parent, child_end) = chan();
        let n = name.clone();
        let mut child = fork(&[child_end.fd()], move || {
            child_end.recv(WAIT)?;
            let code = match SharedMemory::create(&n, 4096, Flags::default()) {
                Ok(s) => {
                    child_end.try_send(1)?;
                    child_end.recv(WAIT)?; // keep it until the parent has looked
                    drop(s);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Exists => 2,
                Err(e) => return Err(e.to_string()),
            };
            child_end.try_send(code)
        });
        parent.send(0);
        let mine = SharedMemory::create(&name, 4096, Flags::default());
        let theirs = parent.recv(WAIT).unwrap();
        match (&mine, theirs) {
            (Ok(_), 2) => {}
            (Err(e), 1) if e.kind() == ErrorKind::Exists => parent.send(0),
            _ => panic!("both or neither created the object: parent {:?}, child {theirs}", mine.as_ref().err()),
        }
        child.join_ok();
        drop(mine);
        SharedMemory::unlink_name(&name).unwrap();
    }
}

/// Creates a valid buffer, closes it (the name stays) and returns its name.
fn closed_buffer(names: &mut Names, tag: &str) -> String {
    let name = names.add(tag);
    drop(SharedMemory::create(&name, 8192, Flags::default()).unwrap());
    SharedMemory::open(&name, Flags::default()).expect("valid before corruption");
    name
}

fn open_err(name: &str) -> mpx::Error {
    err_of(SharedMemory::open(name, Flags::default()))
}

#[test]
fn corrupt_headers_are_refused_with_the_right_kind() {
    let mut names = Names::new();

    let n = closed_buffer(&mut names, "hdr-magic");
    patch(&n, 0, b"NOTMPX!!");
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &["bad magic"]);

    let n = closed_buffer(&mut names, "hdr-version");
    edit_header(&n, true, |h| h.layout_version = 99);
    assert_err(&open_err(&n), ErrorKind::Version, &n, &["99"]);

    let n = closed_buffer(&mut names, "hdr-checksum");
    edit_header(&n, false, |h| h.data_size = 100); // a plausible value, but the sum no longer matches
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &["checksum"]);

    let n = closed_buffer(&mut names, "hdr-name-checksum");
    patch(&n, 128, b"Z"); // the stored name is covered by the checksum too
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &["checksum"]);

    let n = closed_buffer(&mut names, "hdr-resized");
    std::fs::OpenOptions::new().write(true).open(shm_path(&n)).unwrap().set_len(4096).unwrap();
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &["truncated or resized"]);

    let n = closed_buffer(&mut names, "hdr-grown");
    std::fs::OpenOptions::new().write(true).open(shm_path(&n)).unwrap().set_len(3 * 4096 + 4096).unwrap();
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &["truncated or resized"]);

    let n = closed_buffer(&mut names, "hdr-offset-past");
    edit_header(&n, true, |h| h.data_offset = h.total_size - 10);
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &["outside"]);

    let n = closed_buffer(&mut names, "hdr-offset-in-header");
    edit_header(&n, true, |h| h.data_offset = 8);
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &["outside"]);

    let n = closed_buffer(&mut names, "hdr-size-overflow");
    edit_header(&n, true, |h| h.data_size = u64::MAX);
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &["outside"]);

    let n = closed_buffer(&mut names, "hdr-kind");
    edit_header(&n, true, |h| h.kind = 77);
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &["unknown object kind 77"]);

    let n = closed_buffer(&mut names, "hdr-headersize");
    edit_header(&n, true, |h| h.header_size = 64);
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &["header size"]);

    let n = closed_buffer(&mut names, "hdr-namelen");
    edit_header(&n, true, |h| h.name_len = 5000);
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &["name length"]);

    // A file of garbage, an empty file: never trusted, never a crash.
    let n = names.add("hdr-garbage");
    let junk: Vec<u8> = (0..9000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    write_segment_file(&n, &junk, junk.len() as u64);
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &[]);
}

#[test]
fn a_file_shorter_than_a_header_is_corrupt() {
    // Open waits (bounded) for a creator to size the file, then gives up.
    let mut names = Names::new();
    let n = closed_buffer(&mut names, "hdr-short");
    std::fs::OpenOptions::new().write(true).open(shm_path(&n)).unwrap().set_len(100).unwrap();
    assert_err(&open_err(&n), ErrorKind::Corrupt, &n, &["truncated", "100 bytes"]);
}

#[test]
fn opening_as_another_kind_is_a_kind_error() {
    let mut names = Names::new();
    let name = names.add("shm-kind");
    let spec = SegmentSpec { kind: Kind::Queue, data_size: 256, data_align: 64, params: [1, 2, 3, 4] };
    let q = Segment::create(&name, spec, Flags::default(), |_| Ok(())).unwrap();
    assert_eq!(q.params(), [1, 2, 3, 4]);
    let e = open_err(&name);
    assert_err(&e, ErrorKind::Kind, &name, &["queue", "not a shm"]);
    drop(q);

    let b = names.add("shm-kind-buf");
    let _buf = SharedMemory::create(&b, 100, Flags::default()).unwrap();
    let e = err_of(Segment::open(&b, Kind::Semaphore, Flags::default()));
    assert_err(&e, ErrorKind::Kind, &b, &["is a shm, not a semaphore"]);
    // The right kind still opens.
    Segment::open(&b, Kind::Buffer, Flags::default()).unwrap();
}

/// A forked child shares its parent's open file description (and so its liveness lock): the
/// parent's close must not unlink an object the child still uses; the child's close, being the
/// last, does.
#[test]
fn unlink_on_last_close_respects_forked_children() {
    let mut names = Names::new();
    let name = names.add("shm-ulc-fork");
    let shm = SharedMemory::create(&name, 4096, Flags::UNLINK_ON_LAST_CLOSE).unwrap();
    let fd = shm.fd();
    let (parent_end, child_end) = chan();
    let keep = [fd, child_end.fd()];
    let mut child = fork_keeping_mappings(&keep, &[&name], move || {
        child_end.recv(Duration::from_secs(10))?; // the parent has closed
        drop(shm); // the last user: this close removes the name
        child_end.send(1);
        child_end.recv(Duration::from_secs(10))?;
        Ok(())
    });
    // In this process the closure (and with it `shm`) was dropped when fork returned: our close
    // happened, and the child, sharing the open file description, still uses the object.
    assert!(exists(&name), "the parent's close removed a name a forked child still uses");
    parent_end.send(0);
    parent_end.expect(1);
    assert!(!exists(&name), "the child's close, the last, removes the name");
    parent_end.send(2);
    child.join_ok();
}
