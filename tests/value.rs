//! Value and Array: typecodes, typed and byte access, the embedded lock, read-only opens, bad
//! input and corrupt parameters.

#[path = "sync_util.rs"]
mod util;

use std::time::Duration;

use mpx::value::{type_info, TYPES};
use mpx::Object;
use mpx::{Acquired, ErrorKind, Flags, Lock, Value, ValueSpec};
use util::*;

#[test]
fn every_typecode() {
    for t in TYPES {
        let v = Value::create_anonymous(ValueSpec::new(t.code, 3, false)).unwrap();
        assert_eq!((v.typecode(), v.itemsize(), v.len()), (t.code, t.size, 3));
        assert_eq!(v.as_ptr() as usize % 64, 0);
        let mut buf = vec![0u8; t.size];
        v.get_bytes(2, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        let bytes: Vec<u8> = (1..=t.size as u8).collect();
        v.set_bytes(1, &bytes).unwrap();
        v.get_bytes(1, &mut buf).unwrap();
        assert_eq!(buf, bytes);
        assert_eq!(v.get_bytes(3, &mut buf).unwrap_err().kind(), ErrorKind::Invalid);
        let mut wrong = vec![0u8; t.size + 1];
        let e = v.get_bytes(0, &mut wrong).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.message().contains(t.c_type), "{}", e.message());
    }
    assert_eq!(type_info(b'l').unwrap().size, std::mem::size_of::<std::ffi::c_long>());
}

#[test]
fn typed_access() {
    let mut names = Names::new();
    let n = names.add("typed");
    let init: Vec<u8> = [1.5f64, -2.25, 1e300].iter().flat_map(|x| x.to_ne_bytes()).collect();
    let v = Value::create(&n, ValueSpec::new(b'd', 3, false).with_init(Some(&init)), Flags::default()).unwrap();
    assert_eq!(v.get::<f64>(2).unwrap(), 1e300);
    assert_eq!(v.get_f64(1).unwrap(), -2.25);
    v.set::<f64>(0, 3.0).unwrap();
    let o = Value::open(&n, Flags::default()).unwrap();
    assert_eq!(o.get::<f64>(0).unwrap(), 3.0);
    let e = o.get::<i64>(0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.message().contains("'d'") && e.message().contains("double"), "{}", e.message());
    assert_eq!(o.get_i64(0).unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(o.fetch_add_i64(0, 1).unwrap_err().kind(), ErrorKind::Invalid);
    let mut out = vec![0u8; 16];
    o.read(1, &mut out).unwrap();
    assert_eq!(f64::from_ne_bytes(out[..8].try_into().unwrap()), -2.25);
    assert_eq!(o.read(2, &mut out).unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(o.read(0, &mut [0u8; 7]).unwrap_err().kind(), ErrorKind::Invalid);
    o.write(0, &[0u8; 24]).unwrap();
    assert_eq!(v.get::<f64>(2).unwrap(), 0.0);
    // 'f' rounds.
    let f = Value::create_anonymous(ValueSpec::new(b'f', 1, false)).unwrap();
    f.set_f64(0, 0.1).unwrap();
    assert_eq!(f.get::<f32>(0).unwrap(), 0.1f32);
}

#[test]
fn integer_ranges() {
    let b = Value::create_anonymous(ValueSpec::new(b'b', 1, false)).unwrap();
    b.set_i64(0, -128).unwrap();
    assert_eq!(b.get_i64(0).unwrap(), -128);
    assert_eq!(b.get::<i8>(0).unwrap(), -128);
    assert_eq!(b.set_i64(0, 128).unwrap_err().kind(), ErrorKind::Invalid);
    // Wraps like C: -128 - 1 = 127.
    assert_eq!(b.fetch_add_i64(0, -1).unwrap(), -128);
    assert_eq!(b.get_i64(0).unwrap(), 127);
    let h = Value::create_anonymous(ValueSpec::new(b'H', 1, false)).unwrap();
    assert_eq!(h.set_i64(0, -1).unwrap_err().kind(), ErrorKind::Invalid);
    h.set_i64(0, 65535).unwrap();
    assert_eq!(h.get::<u16>(0).unwrap(), 65535);
    let q = Value::create_anonymous(ValueSpec::new(b'Q', 1, false)).unwrap();
    q.set::<u64>(0, u64::MAX).unwrap();
    assert_eq!(q.get_i64(0).unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(q.fetch_add_i64(0, 1).unwrap(), -1);
    assert_eq!(q.get::<u64>(0).unwrap(), 0);
    let c = Value::create_anonymous(ValueSpec::new(b'c', 1, false)).unwrap();
    c.set::<u8>(0, b'x').unwrap();
    assert_eq!(c.get_i64(0).unwrap(), b'x' as i64);
}

#[test]
fn bad_input() {
    let e = Value::create_anonymous(ValueSpec::new(b'z', 1, false)).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.message().contains("'z'"), "{}", e.message());
    let e = Value::create_anonymous(ValueSpec::new(b'i', 2, false).with_init(Some(&[0u8; 7]))).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(
        Value::create_anonymous(ValueSpec::new(b'q', usize::MAX / 4, false)).err().unwrap().kind(),
        ErrorKind::Invalid
    );
    let empty = Value::create_anonymous(ValueSpec::new(b'i', 0, false)).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.get::<i32>(0).unwrap_err().kind(), ErrorKind::Invalid);
    let raw = Value::create_anonymous(ValueSpec::new(b'i', 1, false)).unwrap();
    let e = raw.acquire(Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(raw.release().unwrap_err().kind(), ErrorKind::Unsupported);
    let mut names = Names::new();
    let n = names.add("notvalue");
    let _l = Lock::create(&n, (), Flags::default()).unwrap();
    assert_eq!(Value::open(&n, Flags::default()).err().unwrap().kind(), ErrorKind::Kind);
}

#[test]
fn read_only_open() {
    let mut names = Names::new();
    let n = names.add("ro");
    let v = Value::create(&n, ValueSpec::new(b'i', 2, true), Flags::default()).unwrap();
    v.set::<i32>(1, 42).unwrap();
    let r = Value::open(&n, Flags::READ_ONLY).unwrap();
    assert!(r.is_read_only());
    assert_eq!(r.get::<i32>(1).unwrap(), 42);
    assert_eq!(r.set::<i32>(1, 1).unwrap_err().kind(), ErrorKind::Permission);
    assert_eq!(r.set_i64(1, 1).unwrap_err().kind(), ErrorKind::Permission);
    assert_eq!(r.write(0, &[0u8; 4]).unwrap_err().kind(), ErrorKind::Permission);
    assert_eq!(r.fetch_add_i64(0, 1).unwrap_err().kind(), ErrorKind::Permission);
    assert_eq!(r.acquire(Duration::ZERO).unwrap_err().kind(), ErrorKind::Permission);
}

#[test]
fn int_ptr_checks_once_then_is_the_element() {
    let mut names = Names::new();
    let n = names.add("iptr");
    let v = Value::create(&n, ValueSpec::new(b'h', 3, false), Flags::default()).unwrap();
    let p = v.int_ptr(2, 2, true).unwrap();
    assert_eq!(p as usize, v.as_ptr() as usize + 4);
    assert_eq!(p as usize % 2, 0);
    // SAFETY: p is element 2 of v, a naturally aligned i16 in a writable mapping that v keeps.
    let old = unsafe { (*p.cast::<std::sync::atomic::AtomicI16>()).fetch_add(-1, std::sync::atomic::Ordering::SeqCst) };
    assert_eq!((old, v.get_i64(2).unwrap()), (0, -1));
    let kind = |r: mpx::Result<*mut u8>| r.unwrap_err().kind();
    assert_eq!(kind(v.int_ptr(3, 2, true)), ErrorKind::Invalid);
    assert_eq!(kind(v.int_ptr(0, 4, true)), ErrorKind::Invalid);
    let d = Value::create_anonymous(ValueSpec::new(b'd', 1, false)).unwrap();
    assert_eq!(kind(d.int_ptr(0, 8, false)), ErrorKind::Invalid);
    let r = Value::open(&n, Flags::READ_ONLY).unwrap();
    assert_eq!(kind(r.int_ptr(0, 2, true)), ErrorKind::Permission);
    assert!(r.int_ptr(0, 2, false).is_ok());
}

#[test]
fn embedded_lock_is_recursive_and_shared() {
    let v = Value::create_anonymous(ValueSpec::new(b'l', 1, true)).unwrap();
    assert!(v.has_lock());
    assert_eq!(v.acquire(Duration::ZERO).unwrap(), Acquired::Clean);
    assert_eq!(v.acquire(Duration::ZERO).unwrap(), Acquired::Clean);
    assert_eq!(v.lock_depth(), 2);
    let mut c = fork(|| i32::from(v.try_acquire().is_ok() || v.release().is_ok()));
    assert_eq!(c.wait(), Exit::Code(0));
    v.release().unwrap();
    v.release().unwrap();
    assert_eq!(v.release().unwrap_err().kind(), ErrorKind::State);
    // Processes incrementing under the value's own lock (Python's `with v.get_lock()`).
    const N: i64 = 10_000;
    let kids: Vec<Child> = (0..2)
        .map(|_| {
            fork(|| {
                for _ in 0..N {
                    if v.acquire(WAIT).is_err() {
                        return 1;
                    }
                    let x: i64 = v.get(0).unwrap();
                    v.set(0, x + 1).unwrap();
                    v.release().unwrap();
                }
                0
            })
        })
        .collect();
    for mut k in kids {
        assert_eq!(k.wait_for(Duration::from_secs(120)), Exit::Code(0));
    }
    assert_eq!(v.get::<i64>(0).unwrap(), 2 * N);
}

#[test]
fn fetch_add_is_atomic_across_processes() {
    let v = Value::create_anonymous(ValueSpec::new(b'I', 1, false)).unwrap();
    const N: i64 = 50_000;
    let kids: Vec<Child> = (0..3)
        .map(|_| {
            fork(|| {
                for _ in 0..N {
                    v.fetch_add_i64(0, 1).unwrap();
                }
                0
            })
        })
        .collect();
    for mut k in kids {
        assert_eq!(k.wait(), Exit::Code(0));
    }
    assert_eq!(v.get_i64(0).unwrap(), 3 * N);
}

#[test]
fn named_value_seen_by_another_process() {
    let mut names = Names::new();
    let n = names.add("named");
    let v = Value::create(&n, ValueSpec::new(b'q', 4, false), Flags::default()).unwrap();
    let n2 = n.clone();
    let mut c = fork(move || {
        let v = Value::open(&n2, Flags::default()).unwrap();
        for i in 0..4 {
            v.set::<i64>(i, (i as i64 + 1) * 1000).unwrap();
        }
        0
    });
    assert_eq!(c.wait(), Exit::Code(0));
    let got: Vec<i64> = (0..4).map(|i| v.get(i).unwrap()).collect();
    assert_eq!(got, [1000, 2000, 3000, 4000]);
}

#[test]
fn corrupt_parameters() {
    let mut names = Names::new();
    let n = names.add("cv");
    drop(Value::create(&n, ValueSpec::new(b'i', 4, false), Flags::default()).unwrap());
    patch_param(&n, 0, b'z' as u64);
    assert_eq!(Value::open(&n, Flags::default()).err().unwrap().kind(), ErrorKind::Corrupt);
    patch_param(&n, 0, b'q' as u64); // 8-byte type with the itemsize still 4
    assert_eq!(Value::open(&n, Flags::default()).err().unwrap().kind(), ErrorKind::Corrupt);
    patch_param(&n, 0, b'i' as u64);
    patch_param(&n, 1, 1 << 40); // more elements than the segment holds
    assert_eq!(Value::open(&n, Flags::default()).err().unwrap().kind(), ErrorKind::Corrupt);
    patch_param(&n, 1, u64::MAX);
    assert_eq!(Value::open(&n, Flags::default()).err().unwrap().kind(), ErrorKind::Corrupt);
    patch_param(&n, 1, 4);
    patch_param(&n, 3, 6);
    assert_eq!(Value::open(&n, Flags::default()).err().unwrap().kind(), ErrorKind::Corrupt);
    patch_param(&n, 3, 0);
    Value::open(&n, Flags::default()).unwrap();
}
