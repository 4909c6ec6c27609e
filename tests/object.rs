//! The object model's registry with real processes: what `inspect`/`list` report (kind, sizes,
//! creator, users, problems), liveness that survives crashes (the kernel drops a dead process's
//! flock) and is shared by inheriting children, and `collect` deciding under an exclusive lock.

mod common;

use std::time::Duration;

use common::*;
use mpx::object::registry::{self, Collected};
use mpx::Object;
use mpx::{ErrorKind, Flags, SharedMemory};

fn me() -> i32 {
    std::process::id() as i32
}

#[test]
fn inspect_reports_a_valid_buffer() {
    let mut names = Names::new();
    let name = names.add("obj-inspect");
    let before = mpx::util::realtime_ns();
    let shm = SharedMemory::create(&name, 10_000, Flags::UNLINK_ON_LAST_CLOSE).unwrap();
    let info = registry::inspect(&name).unwrap();
    assert_eq!(info.name, name);
    assert_eq!(info.path, shm_path(&name));
    assert_eq!(info.kind, Some(mpx::Kind::Buffer));
    assert_eq!(info.data_size, 10_000);
    assert_eq!(info.file_size, 4096 + 10_000);
    assert_eq!(info.creator_pid, me());
    assert!(info.creator_alive);
    assert!(info.created_ns >= before && info.created_ns <= mpx::util::realtime_ns());
    assert!(info.in_use);
    assert_eq!(info.users, vec![me()]);
    assert_eq!(info.mode, 0o600);
    assert_eq!(info.uid, nix::unistd::geteuid().as_raw());
    assert!(info.regular && info.readable);
    assert_eq!(info.problem, None);
    let h = info.header.as_ref().unwrap();
    assert!(h.magic_ok && h.checksum_ok && h.ready);
    assert_eq!(h.layout_version, mpx::object::LAYOUT_VERSION);
    assert_eq!(h.kind, mpx::Kind::Buffer as u32);
    assert_eq!(h.flags & Flags::UNLINK_ON_LAST_CLOSE.0, Flags::UNLINK_ON_LAST_CLOSE.0);
    assert_eq!(h.header_size, 512);
    assert_eq!(h.data_offset, 4096);
    assert_eq!(h.total_size, 4096 + 10_000);
    assert_eq!(h.stored_name, name);
    drop(shm); // last close: removed
    assert_eq!(registry::inspect(&name).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(registry::inspect("bad name").unwrap_err().kind(), ErrorKind::Invalid);
}

#[test]
fn modes_follow_the_flags() {
    let mut names = Names::new();
    for (flags, mode) in [(Flags::default(), 0o600), (Flags::MODE_GROUP, 0o660), (Flags::MODE_ALL, 0o666)] {
        let name = names.add("obj-mode");
        let _s = SharedMemory::create(&name, 1, flags).unwrap();
        assert_eq!(registry::inspect(&name).unwrap().mode, mode, "{flags:?}");
    }
}

#[test]
fn users_are_the_live_processes_holding_it() {
    let mut names = Names::new();
    let name = names.add("obj-users");
    drop(SharedMemory::create(&name, 64, Flags::default()).unwrap());
    let info = registry::inspect(&name).unwrap();
    assert!(!info.in_use, "closed by everyone: not in use");
    assert!(info.users.is_empty());

    let (parent, child_end) = chan();
    let n = name.clone();
    let mut child = fork(&[child_end.fd()], move || {
        let _s = SharedMemory::open(&n, Flags::default()).map_err(|e| e.to_string())?;
        child_end.try_send(1)?;
        child_end.recv(WAIT)?; // SIGKILLed while waiting
        Ok(())
    });
    parent.expect(1);
    let info = registry::inspect(&name).unwrap();
    assert!(info.in_use);
    assert_eq!(info.users, vec![child.pid]);
    assert!(!info.creator_alive || info.creator_pid == me());

    child.kill9();
    // The kernel dropped the dead child's lock: nobody uses it now.
    let info = registry::inspect(&name).unwrap();
    assert!(!info.in_use, "a SIGKILLed user must not keep the object in use");
    assert!(info.users.is_empty());
}

/// A forked grandchild inherits the descriptor and with it the liveness lock: the object stays
/// in use after the process that opened it dies, and the grandchild shows as its user.
#[test]
fn an_inheriting_child_keeps_it_in_use() {
    let mut names = Names::new();
    let name = names.add("obj-inherit");
    drop(SharedMemory::create(&name, 64, Flags::default()).unwrap());
    let (parent, child_end) = chan();
    let n = name.clone();
    let mut child = fork(&[child_end.fd()], move || {
        let s = SharedMemory::open(&n, Flags::default()).map_err(|e| e.to_string())?;
        // SAFETY: this forked test child is single-threaded (opening a buffer starts no thread), so the grandchild may
        // run any code; it only waits on the channel and _exits, never returning into the closure.
        let gpid = unsafe { libc::fork() };
        if gpid == 0 {
            // Grandchild: keep the inherited descriptors until the test's end of the channel
            // closes (or it is killed).
            let _ = child_end.recv(WAIT * 3);
            // SAFETY: _exit has no preconditions; the grandchild must not run the rest of the closure.
            unsafe { libc::_exit(0) };
        }
        if gpid < 0 {
            return Err("fork failed".into());
        }
        child_end.try_send(gpid as u64)?;
        child_end.recv(WAIT)?; // SIGKILLed while waiting
        drop(s);
        Ok(())
    });
    let gpid = parent.recv(WAIT).unwrap() as i32;
    let _grandchild = KillOnDrop(gpid);
    child.kill9();
    let info = registry::inspect(&name).unwrap();
    assert!(info.in_use, "the grandchild still holds the inherited lock");
    assert!(info.users.contains(&gpid), "users {:?} should include the grandchild {gpid}", info.users);
    assert!(!info.users.contains(&child.pid), "the dead child is no user");
    assert_eq!(registry::collect(&name).unwrap(), Collected::InUse);
    assert!(exists(&name));

    // SAFETY: kill takes no pointers; gpid is the grandchild, alive until now (it holds the lock asserted above).
    unsafe { libc::kill(gpid, libc::SIGKILL) };
    // The grandchild is not our child: wait (bounded) for the kernel to release its files.
    assert!(
        eventually(WAIT, || !registry::inspect(&name).unwrap().in_use),
        "lock not released after the grandchild died"
    );
    assert_eq!(registry::collect(&name).unwrap(), Collected::Removed);
    assert!(!exists(&name));
}

/// A plain fork() copies the parent's mappings, and a mapping keeps its open file description
/// (and that description's lock) alive: a forked child is a user of everything its parent had
/// mapped, even after closing the inherited descriptor and after the parent closed its handle,
/// until it exits (or execs). gc must therefore keep the object, and `users` names the child.
#[test]
fn a_forked_child_with_an_inherited_mapping_is_a_user() {
    let mut names = Names::new();
    let name = names.add("obj-inherit-map");
    let shm = SharedMemory::create(&name, 64, Flags::default()).unwrap();
    let (parent, child_end) = chan();
    // The child closes every inherited descriptor (the segment's too): only the mapping is left.
    let mut child = fork_keeping_mappings(&[child_end.fd()], &[&name], move || {
        child_end.try_send(1)?;
        child_end.recv(WAIT)?;
        Ok(())
    });
    parent.expect(1);
    drop(shm);
    let info = registry::inspect(&name).unwrap();
    assert!(info.in_use, "the child's inherited mapping keeps the lock");
    assert_eq!(info.users, vec![child.pid], "the child is found through its mapping");
    assert_eq!(registry::collect(&name).unwrap(), Collected::InUse);
    parent.send(0);
    child.join_ok();
    assert!(!registry::inspect(&name).unwrap().in_use);
    assert_eq!(registry::collect(&name).unwrap(), Collected::Removed);
}

#[test]
fn collect_removes_exactly_the_unused() {
    let mut names = Names::new();
    let used = names.add("obj-collect-used");
    let unused = names.add("obj-collect-unused");
    let held = SharedMemory::create(&used, 64, Flags::default()).unwrap();
    drop(SharedMemory::create(&unused, 64, Flags::default()).unwrap());
    assert_eq!(registry::collect(&used).unwrap(), Collected::InUse);
    assert!(!registry::remove_if_unused(&used).unwrap());
    assert_eq!(registry::collect(&unused).unwrap(), Collected::Removed);
    assert_eq!(registry::collect(&unused).unwrap(), Collected::Gone);
    assert!(!registry::remove_if_unused(&unused).unwrap());
    assert!(exists(&used) && !exists(&unused));
    // The holder is unaffected by the attempt.
    // SAFETY: only this thread touches `held`, and no other slice of it is alive.
    unsafe { held.as_mut_slice()[0] = 1 };
    assert!(SharedMemory::open(&used, Flags::default()).is_ok());
    drop(held);
    assert!(registry::remove_if_unused(&used).unwrap());
    assert_eq!(registry::collect("no/slash").unwrap_err().kind(), ErrorKind::Invalid);
}

/// While a collector holds the exclusive lock and removes the name, an opener that found the
/// file must not end up with the removed object: it reports NotFound.
#[test]
fn an_open_racing_with_removal_under_the_exclusive_lock_is_not_found() {
    use std::os::fd::AsRawFd;
    let mut names = Names::new();
    let name = names.add("obj-gc-race");
    drop(SharedMemory::create(&name, 64, Flags::default()).unwrap());
    let f = std::fs::File::open(shm_path(&name)).unwrap();
    // SAFETY: flock takes integers; f is the file opened just above, still open.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    let n = name.clone();
    let opener = std::thread::spawn(move || SharedMemory::open(&n, Flags::default()).map(|_| ()));
    std::thread::sleep(Duration::from_millis(50)); // let the opener reach its lock
    std::fs::remove_file(shm_path(&name)).unwrap();
    drop(f);
    let r = opener.join().unwrap();
    assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn list_reports_every_kind_of_entry_without_trusting_it() {
    let mut names = Names::new();
    let valid = names.add("obj-list-valid");
    let garbage = names.add("obj-list-garbage");
    let empty = names.add("obj-list-empty");
    let uninit = names.add("obj-list-uninit");
    let version = names.add("obj-list-version");
    let fifo = names.add("obj-list-fifo");
    let link = names.add("obj-list-link");

    let _v = SharedMemory::create(&valid, 100, Flags::default()).unwrap();
    write_segment_file(&garbage, &[0xA5; 1000], 1000);
    write_segment_file(&empty, &[], 0);
    let h = buffer_header(&uninit, 4096, dead_pid());
    write_segment_file(&uninit, header_bytes(&h), 8192);
    drop(SharedMemory::create(&version, 100, Flags::default()).unwrap());
    edit_header(&version, true, |h| h.layout_version = 2);
    nix::unistd::mkfifo(shm_path(&fifo).as_str(), nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    std::os::unix::fs::symlink(shm_path(&valid), shm_path(&link)).unwrap();

    let all = registry::list().unwrap(); // must not block on the FIFO or follow the link
    let mine: Vec<_> = all.iter().filter(|o| names.0.contains(&o.name)).collect();
    assert_eq!(mine.len(), 7, "{mine:#?}");
    let sorted: Vec<_> = all.iter().map(|o| o.name.clone()).collect();
    let mut s2 = sorted.clone();
    s2.sort();
    assert_eq!(sorted, s2, "list is sorted by name");
    let get = |n: &str| mine.iter().find(|o| o.name == n).unwrap();

    let v = get(&valid);
    assert_eq!((v.kind, v.problem.as_deref(), v.in_use), (Some(mpx::Kind::Buffer), None, true));

    let problem = |n: &str| get(n).problem.clone().unwrap_or_else(|| panic!("{n} should have a problem"));
    assert!(problem(&garbage).contains("bad magic"), "{}", problem(&garbage));
    assert!(problem(&empty).contains("truncated"), "{}", problem(&empty));
    assert!(problem(&uninit).contains("not initialised"), "{}", problem(&uninit));
    assert!(problem(&version).contains("version 2"), "{}", problem(&version));
    assert!(problem(&fifo).contains("FIFO"), "{}", problem(&fifo));
    assert!(problem(&link).contains("symbolic link"), "{}", problem(&link));
    for n in [&garbage, &empty, &uninit, &version, &fifo, &link] {
        let o = get(n);
        assert_eq!(o.kind, None, "{n}");
        assert!(!o.in_use, "{n}");
        assert!(!o.problem.as_ref().unwrap().contains(&format!("'{n}'")), "problem repeats the name: {:?}", o.problem);
    }
    assert!(!get(&uninit).creator_alive);

    // Collect: unused files are removed whatever their state; non-files are left alone.
    for n in [&garbage, &empty, &uninit, &version] {
        assert_eq!(registry::collect(n).unwrap(), Collected::Removed, "{n}");
        assert!(!exists(n));
    }
    assert_eq!(registry::collect(&fifo).unwrap(), Collected::NotAFile);
    assert_eq!(registry::collect(&link).unwrap(), Collected::NotAFile);
    assert!(exists(&fifo) && exists(&link) && exists(&valid), "the link's target is untouched");
    assert_eq!(registry::collect(&valid).unwrap(), Collected::InUse);
}

#[test]
fn would_collect_predicts_without_touching() {
    let mut names = Names::new();
    let used = names.add("obj-would-used");
    let unused = names.add("obj-would-unused");
    let _held = SharedMemory::create(&used, 64, Flags::default()).unwrap();
    drop(SharedMemory::create(&unused, 64, Flags::default()).unwrap());
    assert_eq!(registry::would_collect(&registry::inspect(&used).unwrap()).unwrap(), Collected::InUse);
    assert_eq!(registry::would_collect(&registry::inspect(&unused).unwrap()).unwrap(), Collected::Removed);
    assert!(exists(&used) && exists(&unused));
}
