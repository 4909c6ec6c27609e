//! Value and Array: typed shared values with Python's typecodes, optionally with a lock (a
//! recursive lock embedded in the same segment, as Python's Value(lock=True) gets a new RLock).
//! A Value is an array of one element; `count` gives an Array.
//!
//! Parameters (header params): [typecode (ASCII), count, itemsize, flags (bit 0 = has lock)].
//! Data area: a 64-byte lock state (a RawLock, unused without a lock), then `count` elements of
//! `itemsize` bytes, native byte order, naturally aligned (the elements start 64 bytes into a
//! 64-byte aligned area). Single elements are read and written with atomic loads and stores
//! of their width, so a get never sees half of a set; bulk reads and writes are plain copies.
//! This layout is promised to C and C++ code: `int_ptr` (the C ABI's mpx_value_int_ptr) hands
//! out element addresses for atomics done inline by the caller (docs/C-API.md).

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::*};
use std::time::Duration;

use crate::object::{Kind, Layout, Mapped, Object, Segment};
use crate::sync::{Acquired, RawLock};
use crate::wait::{Spin, Timeout};
use crate::{err, Result};

const ELEMS_OFFSET: usize = 64;
const F_LOCK: u64 = 1;

/// What a typecode's elements are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Signed,
    Unsigned,
    Float,
}

/// One of Python's array/ctypes typecodes.
#[derive(Clone, Copy, Debug)]
pub struct TypeInfo {
    pub code: u8,
    pub size: usize,
    pub class: Class,
    /// The matching C type.
    pub c_type: &'static str,
}

const fn t(code: u8, size: usize, class: Class, c_type: &'static str) -> TypeInfo {
    TypeInfo { code, size, class, c_type }
}

/// Every typecode multiprocessing.Value/Array accept ('l'/'L' are C long: 8 bytes on 64-bit
/// Linux; 'c' is a char, 'u' a wchar_t).
pub const TYPES: [TypeInfo; 14] = [
    t(b'c', 1, Class::Unsigned, "char"),
    t(b'u', 4, Class::Unsigned, "wchar_t"),
    t(b'b', 1, Class::Signed, "signed char"),
    t(b'B', 1, Class::Unsigned, "unsigned char"),
    t(b'h', 2, Class::Signed, "short"),
    t(b'H', 2, Class::Unsigned, "unsigned short"),
    t(b'i', 4, Class::Signed, "int"),
    t(b'I', 4, Class::Unsigned, "unsigned int"),
    t(b'l', std::mem::size_of::<libc::c_long>(), Class::Signed, "long"),
    t(b'L', std::mem::size_of::<libc::c_ulong>(), Class::Unsigned, "unsigned long"),
    t(b'q', 8, Class::Signed, "long long"),
    t(b'Q', 8, Class::Unsigned, "unsigned long long"),
    t(b'f', 4, Class::Float, "float"),
    t(b'd', 8, Class::Float, "double"),
];

/// The description of a typecode, if it is one.
pub fn type_info(code: u8) -> Option<TypeInfo> {
    TYPES.iter().copied().find(|t| t.code == code)
}

fn show(code: u8) -> String {
    if code.is_ascii_graphic() {
        format!("'{}'", code as char)
    } else {
        format!("{code:#04x}")
    }
}

/// A Rust type that can be an element: its typecodes must include the Value's.
pub trait Element: Copy + sealed::Sealed {
    const CODES: &'static [u8];
    #[doc(hidden)]
    fn from_bits(bits: u64) -> Self;
    #[doc(hidden)]
    fn to_bits(self) -> u64;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! element {
    ($t:ty, $codes:expr, $from:expr, $to:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const CODES: &'static [u8] = $codes;
            fn from_bits(bits: u64) -> Self {
                ($from)(bits)
            }
            fn to_bits(self) -> u64 {
                ($to)(self)
            }
        }
    };
}

element!(i8, b"b", |b: u64| b as u8 as i8, |v: i8| v as u8 as u64);
element!(u8, b"Bc", |b: u64| b as u8, |v: u8| v as u64);
element!(i16, b"h", |b: u64| b as u16 as i16, |v: i16| v as u16 as u64);
element!(u16, b"H", |b: u64| b as u16, |v: u16| v as u64);
element!(i32, b"i", |b: u64| b as u32 as i32, |v: i32| v as u32 as u64);
element!(u32, b"Iu", |b: u64| b as u32, |v: u32| v as u64);
element!(i64, b"ql", |b: u64| b as i64, |v: i64| v as u64);
element!(u64, b"QL", |b: u64| b, |v: u64| v);
element!(f32, b"f", |b: u64| f32::from_bits(b as u32), |v: f32| v.to_bits() as u64);
element!(f64, b"d", |b: u64| f64::from_bits(b), |v: f64| v.to_bits());

/// What a new Value or Array looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueSpec<'a> {
    /// A typecode from [`TYPES`] (b'i', b'd', ...).
    pub typecode: u8,
    /// Elements: 1 for a Value, n for an Array (0 is allowed).
    pub count: usize,
    /// Embed a recursive lock (Python's lock=True).
    pub lock: bool,
    /// The initial elements as native-endian bytes (exactly count * itemsize); None: zeros.
    pub init: Option<&'a [u8]>,
}

impl<'a> ValueSpec<'a> {
    pub fn new(typecode: u8, count: usize, lock: bool) -> ValueSpec<'a> {
        ValueSpec { typecode, count, lock, init: None }
    }

    /// The same spec with initial contents.
    pub fn with_init(self, init: Option<&'a [u8]>) -> ValueSpec<'a> {
        ValueSpec { init, ..self }
    }
}

/// A typed shared value or array.
pub struct Value {
    /// The lock state (unused without a lock); the elements follow it at ELEMS_OFFSET.
    m: Mapped<RawLock>,
    info: TypeInfo,
    count: usize,
    has_lock: bool,
    read_only: bool,
    spin: Spin,
}

impl Object for Value {
    const KIND: Kind = Kind::Value;
    const READ_ONLY_OK: bool = true;
    type Spec<'a> = ValueSpec<'a>;

    fn layout(spec: &ValueSpec) -> Result<Layout> {
        let info = type_info(spec.typecode).ok_or_else(|| {
            err!(Invalid, "unknown typecode {} (use one of c u b B h H i I l L q Q f d)", show(spec.typecode))
        })?;
        let bytes = spec
            .count
            .checked_mul(info.size)
            .and_then(|b| b.checked_add(ELEMS_OFFSET))
            .ok_or_else(|| err!(Invalid, "{} elements of {} bytes is too large", spec.count, info.size))?;
        if let Some(init) = spec.init {
            if init.len() != spec.count * info.size {
                return Err(err!(
                    Invalid,
                    "initial data is {} bytes, {} elements of {} ({}) need {}",
                    init.len(),
                    spec.count,
                    show(info.code),
                    info.c_type,
                    spec.count * info.size
                ));
            }
        }
        let params = [info.code as u64, spec.count as u64, info.size as u64, if spec.lock { F_LOCK } else { 0 }];
        Ok(Layout::new(bytes, params))
    }

    fn init(seg: &Segment, spec: &ValueSpec) -> Result<()> {
        if let Some(init) = spec.init {
            // SAFETY: layout() made the area ELEMS_OFFSET + init.len() bytes; it is not yet shared.
            unsafe { std::ptr::copy_nonoverlapping(init.as_ptr(), seg.data_ptr().add(ELEMS_OFFSET), init.len()) };
        }
        Ok(())
    }

    fn attach(seg: Segment) -> Result<Value> {
        let what = seg.describe();
        let p = seg.params();
        let code = u8::try_from(p[0]).ok().and_then(type_info);
        let Some(info) = code else {
            return Err(err!(Corrupt, "{what}: unknown typecode {:#x}", p[0]));
        };
        if p[2] != info.size as u64 || p[3] & !F_LOCK != 0 {
            return Err(err!(Corrupt, "{what}: invalid parameters (itemsize {}, flags {:#x})", p[2], p[3]));
        }
        let count = usize::try_from(p[1]).map_err(|_| err!(Corrupt, "{what}: invalid count {}", p[1]))?;
        let need = count
            .checked_mul(info.size)
            .and_then(|b| b.checked_add(ELEMS_OFFSET))
            .ok_or_else(|| err!(Corrupt, "{what}: invalid count {count}"))?;
        let read_only = seg.is_read_only();
        Ok(Value {
            m: Mapped::new(seg, need)?,
            info,
            count,
            has_lock: p[3] & F_LOCK != 0,
            read_only,
            spin: Spin::new(),
        })
    }

    fn segment(&self) -> &Segment {
        self.m.segment()
    }

    fn summary(&self) -> Option<String> {
        let lock = if self.has_lock() { ", with lock" } else { "" };
        Some(format!("'{}' x {}{lock}", self.typecode() as char, self.len()))
    }
}

impl Value {
    /// The first element (ELEMS_OFFSET into the area that Mapped checked holds them all).
    #[inline(always)]
    fn elems(&self) -> *mut u8 {
        // SAFETY: attach checked the area holds ELEMS_OFFSET + count * itemsize bytes.
        unsafe { self.m.ptr().as_ptr().cast::<u8>().add(ELEMS_OFFSET) }
    }

    /// The typecode (b'i', b'd', ...).
    pub fn typecode(&self) -> u8 {
        self.info.code
    }

    pub fn type_info(&self) -> TypeInfo {
        self.info
    }

    pub fn itemsize(&self) -> usize {
        self.info.size
    }

    /// Elements (1 for a Value).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn has_lock(&self) -> bool {
        self.has_lock
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The first element (64-byte aligned), for zero-copy access. Valid while `self` lives;
    /// writing through it on a read-only mapping faults.
    pub fn as_ptr(&self) -> *mut u8 {
        self.elems()
    }

    fn check_index(&self, index: usize) -> Result<*mut u8> {
        if index >= self.count {
            return Err(err!(Invalid, "{}: index {index} out of range (length {})", self.describe(), self.count));
        }
        // SAFETY: index < count, so the element lies inside the checked area.
        Ok(unsafe { self.elems().add(index * self.info.size) })
    }

    fn check_write(&self) -> Result<()> {
        if self.read_only {
            return Err(err!(Permission, "{}: opened read-only", self.describe()));
        }
        Ok(())
    }

    /// Loads an element's bits (zero-extended) atomically.
    #[inline(always)]
    fn load_bits(&self, p: *mut u8) -> u64 {
        // SAFETY: p is a naturally aligned element inside the mapping (power-of-two sizes).
        unsafe {
            match self.info.size {
                1 => (*p.cast::<AtomicU8>()).load(Relaxed) as u64,
                2 => (*p.cast::<AtomicU16>()).load(Relaxed) as u64,
                4 => (*p.cast::<AtomicU32>()).load(Relaxed) as u64,
                _ => (*p.cast::<AtomicU64>()).load(Relaxed),
            }
        }
    }

    #[inline(always)]
    fn store_bits(&self, p: *mut u8, bits: u64) {
        // SAFETY: as in load_bits; the mapping is writable (check_write).
        unsafe {
            match self.info.size {
                1 => (*p.cast::<AtomicU8>()).store(bits as u8, Relaxed),
                2 => (*p.cast::<AtomicU16>()).store(bits as u16, Relaxed),
                4 => (*p.cast::<AtomicU32>()).store(bits as u32, Relaxed),
                _ => (*p.cast::<AtomicU64>()).store(bits, Relaxed),
            }
        }
    }

    fn check_type<T: Element>(&self) -> Result<()> {
        if !T::CODES.contains(&self.info.code) || std::mem::size_of::<T>() != self.info.size {
            return Err(err!(
                Invalid,
                "{}: holds {} ({}), not {}",
                self.describe(),
                show(self.info.code),
                self.info.c_type,
                std::any::type_name::<T>()
            ));
        }
        Ok(())
    }

    /// Element `index` as T (T must match the typecode: i32 for 'i', f64 for 'd', ...).
    pub fn get<T: Element>(&self, index: usize) -> Result<T> {
        self.check_type::<T>()?;
        let p = self.check_index(index)?;
        Ok(T::from_bits(self.load_bits(p)))
    }

    /// Sets element `index` (atomically for that element).
    pub fn set<T: Element>(&self, index: usize, v: T) -> Result<()> {
        self.check_type::<T>()?;
        self.check_write()?;
        let p = self.check_index(index)?;
        self.store_bits(p, v.to_bits());
        Ok(())
    }

    /// Element `index` as native-endian bytes into `out` (exactly itemsize bytes).
    pub fn get_bytes(&self, index: usize, out: &mut [u8]) -> Result<()> {
        self.check_len(out.len())?;
        let p = self.check_index(index)?;
        let bits = self.load_bits(p).to_ne_bytes();
        // Little- or big-endian: the element's bytes are the low-order ones of the u64.
        let n = self.info.size;
        if cfg!(target_endian = "little") {
            out.copy_from_slice(&bits[..n]);
        } else {
            out.copy_from_slice(&bits[8 - n..]);
        }
        Ok(())
    }

    /// Sets element `index` from native-endian bytes (exactly itemsize bytes).
    pub fn set_bytes(&self, index: usize, bytes: &[u8]) -> Result<()> {
        self.check_len(bytes.len())?;
        self.check_write()?;
        let p = self.check_index(index)?;
        let mut b = [0u8; 8];
        let n = self.info.size;
        if cfg!(target_endian = "little") {
            b[..n].copy_from_slice(bytes);
        } else {
            b[8 - n..].copy_from_slice(bytes);
        }
        self.store_bits(p, u64::from_ne_bytes(b));
        Ok(())
    }

    fn check_len(&self, len: usize) -> Result<()> {
        if len != self.info.size {
            return Err(err!(
                Invalid,
                "{}: elements are {} bytes ({} {}), not {len}",
                self.describe(),
                self.info.size,
                show(self.info.code),
                self.info.c_type
            ));
        }
        Ok(())
    }

    fn check_range(&self, start: usize, n: usize) -> Result<*mut u8> {
        match start.checked_add(n) {
            // SAFETY: end <= count, so the range lies inside the area attach() checked.
            Some(end) if end <= self.count => Ok(unsafe { self.elems().add(start * self.info.size) }),
            _ => Err(err!(
                Invalid,
                "{}: elements {start}..{start}+{n} out of range (length {})",
                self.describe(),
                self.count
            )),
        }
    }

    /// Copies elements start.. into `out` (a whole number of elements). Not atomic as a whole:
    /// hold the lock if writers may run.
    pub fn read(&self, start: usize, out: &mut [u8]) -> Result<()> {
        let n = self.whole_elements(out.len())?;
        let p = self.check_range(start, n)?;
        // SAFETY: the range is inside the mapping; `out` is a separate buffer.
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies `data` (a whole number of elements) to elements start...
    pub fn write(&self, start: usize, data: &[u8]) -> Result<()> {
        let n = self.whole_elements(data.len())?;
        self.check_write()?;
        let p = self.check_range(start, n)?;
        // SAFETY: as in read.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }

    fn whole_elements(&self, len: usize) -> Result<usize> {
        if len % self.info.size != 0 {
            return Err(err!(
                Invalid,
                "{}: {len} bytes is not a whole number of {}-byte elements",
                self.describe(),
                self.info.size
            ));
        }
        Ok(len / self.info.size)
    }

    fn need_class(&self, ok: &[Class], api: &str) -> Result<()> {
        if !ok.contains(&self.info.class) {
            return Err(err!(
                Invalid,
                "{}: holds {} ({}); {api} needs {}",
                self.describe(),
                show(self.info.code),
                self.info.c_type,
                if ok.contains(&Class::Float) { "a float typecode (f d)" } else { "an integer typecode" }
            ));
        }
        Ok(())
    }

    /// Sign-extends (or not) an element's bits to i128 for range checks.
    #[inline(always)]
    fn int_of(&self, bits: u64) -> i128 {
        let shift = 64 - 8 * self.info.size as u32;
        match self.info.class {
            Class::Signed => (((bits << shift) as i64) >> shift) as i128,
            _ => bits as i128,
        }
    }

    #[inline(always)]
    fn int_range(&self) -> (i128, i128) {
        let bits = 8 * self.info.size as u32;
        match self.info.class {
            Class::Signed => (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1),
            _ => (0, (1i128 << bits) - 1),
        }
    }

    /// An integer element as i64 (any integer typecode; a 'Q'/'L' value above i64::MAX is an
    /// error).
    pub fn get_i64(&self, index: usize) -> Result<i64> {
        self.need_class(&[Class::Signed, Class::Unsigned], "get_i64")?;
        let p = self.check_index(index)?;
        let v = self.int_of(self.load_bits(p));
        i64::try_from(v).map_err(|_| err!(Invalid, "{}: element {index} = {v} does not fit in int64", self.describe()))
    }

    /// Sets an integer element; a value outside the typecode's range is an error.
    pub fn set_i64(&self, index: usize, v: i64) -> Result<()> {
        self.need_class(&[Class::Signed, Class::Unsigned], "set_i64")?;
        let (lo, hi) = self.int_range();
        if (v as i128) < lo || (v as i128) > hi {
            return Err(err!(
                Invalid,
                "{}: {v} is out of range for {} ({}): {lo}..={hi}",
                self.describe(),
                show(self.info.code),
                self.info.c_type
            ));
        }
        self.check_write()?;
        let p = self.check_index(index)?;
        self.store_bits(p, v as u64);
        Ok(())
    }

    /// Atomically adds `delta` to an integer element (wrapping in the element's width, as C
    /// arithmetic on the type does) and returns the old value (Q/L: as i64 bits). No lock needed.
    pub fn fetch_add_i64(&self, index: usize, delta: i64) -> Result<i64> {
        self.need_class(&[Class::Signed, Class::Unsigned], "fetch_add")?;
        self.check_write()?;
        let p = self.check_index(index)?;
        Ok(self.fetch_add_at(p, delta))
    }

    /// The address of integer element `index` for callers that do the atomics themselves (the
    /// C header's inline helpers, the C++ binding): checked once here, then valid while `self`
    /// lives. `size` must be the itemsize (the width the caller's atomics will use); with
    /// `write`, the mapping must be writable. Elements are naturally aligned (see the top).
    pub fn int_ptr(&self, index: usize, size: usize, write: bool) -> Result<*mut u8> {
        self.need_class(&[Class::Signed, Class::Unsigned], "an element pointer")?;
        if size != self.info.size {
            return Err(err!(
                Invalid,
                "{}: holds {} ({}), {}-byte elements, not {size}-byte ones",
                self.describe(),
                show(self.info.code),
                self.info.c_type,
                self.info.size
            ));
        }
        if write {
            self.check_write()?;
        }
        self.check_index(index)
    }

    /// For the C ABI's fast paths: the address of integer element `index` when it exists (and,
    /// with `write`, may be written), else None (then the checked call reports why). Cannot
    /// fail or panic: the C ABI runs it before its panic guard.
    #[inline(always)]
    pub(crate) fn int_elem(&self, index: usize, write: bool) -> Option<*mut u8> {
        if index < self.count && self.info.class != Class::Float && !(write && self.read_only) {
            // SAFETY: index < count, so the element lies inside the area attach() checked.
            Some(unsafe { self.elems().add(index * self.info.size) })
        } else {
            None
        }
    }

    /// fetch_add on integer element `p` (from check_index or int_elem).
    #[inline(always)]
    pub(crate) fn fetch_add_at(&self, p: *mut u8, delta: i64) -> i64 {
        let d = delta as u64;
        // SAFETY: as in load_bits.
        let old = unsafe {
            match self.info.size {
                1 => (*p.cast::<AtomicU8>()).fetch_add(d as u8, SeqCst) as u64,
                2 => (*p.cast::<AtomicU16>()).fetch_add(d as u16, SeqCst) as u64,
                4 => (*p.cast::<AtomicU32>()).fetch_add(d as u32, SeqCst) as u64,
                _ => (*p.cast::<AtomicU64>()).fetch_add(d, SeqCst),
            }
        };
        self.int_of(old) as i64
    }

    /// get_i64 of integer element `p`, when the value fits (a 'Q'/'L' above i64::MAX does not).
    #[inline(always)]
    pub(crate) fn get_i64_at(&self, p: *mut u8) -> Option<i64> {
        i64::try_from(self.int_of(self.load_bits(p))).ok()
    }

    /// set_i64 of integer element `p`, when `v` is in the typecode's range (else false).
    #[inline(always)]
    pub(crate) fn set_i64_at(&self, p: *mut u8, v: i64) -> bool {
        let (lo, hi) = self.int_range();
        if (v as i128) < lo || (v as i128) > hi {
            return false;
        }
        self.store_bits(p, v as u64);
        true
    }

    /// A float element ('f' or 'd') as f64.
    pub fn get_f64(&self, index: usize) -> Result<f64> {
        self.need_class(&[Class::Float], "get_f64")?;
        let p = self.check_index(index)?;
        let bits = self.load_bits(p);
        Ok(if self.info.size == 4 { f32::from_bits(bits as u32) as f64 } else { f64::from_bits(bits) })
    }

    /// Sets a float element ('f' rounds to single precision).
    pub fn set_f64(&self, index: usize, v: f64) -> Result<()> {
        self.need_class(&[Class::Float], "set_f64")?;
        self.check_write()?;
        let p = self.check_index(index)?;
        let bits = if self.info.size == 4 { (v as f32).to_bits() as u64 } else { v.to_bits() };
        self.store_bits(p, bits);
        Ok(())
    }

    /// The embedded lock if it can be used (has one, writable): for the C ABI's fast paths.
    #[inline(always)]
    pub(crate) fn usable_lock(&self) -> Option<&RawLock> {
        if self.has_lock && !self.read_only {
            Some(self.m.state())
        } else {
            None
        }
    }

    fn lock_raw(&self) -> Result<&RawLock> {
        if !self.has_lock {
            return Err(err!(Unsupported, "{}: was created without a lock", self.describe()));
        }
        self.check_write()?;
        Ok(self.m.state())
    }

    /// Acquires the embedded recursive lock (Python's get_lock().acquire()).
    pub fn acquire(&self, timeout: impl Into<Timeout>) -> Result<Acquired> {
        self.lock_raw()?.acquire(true, timeout.into(), &self.spin).map_err(|e| e.context(self.describe()))
    }

    pub fn try_acquire(&self) -> Result<Acquired> {
        self.acquire(Duration::ZERO)
    }

    /// Releases the embedded lock (the calling thread must own it).
    pub fn release(&self) -> Result<()> {
        self.lock_raw()?.release(true).map_err(|e| e.context(self.describe()))
    }

    /// Recursion depth of the embedded lock held by the calling thread.
    pub fn lock_depth(&self) -> u32 {
        self.lock_raw().map_or(0, |l| l.depth())
    }
}
