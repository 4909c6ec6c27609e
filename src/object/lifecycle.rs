//! What a kind declares ([`Object`]) and the lifecycle every kind gets from that declaration:
//! create (named or anonymous), open (by name or by descriptor), name, fd, unlink, inspect and
//! the one-line summary `mpx ls` prints.
//!
//! A kind is its state (a `repr(C)` struct of atomics at the start of the segment's data area),
//! its operations, and an `impl Object` of a few lines: which [`Kind`] it is, how large its
//! state is for a given spec, how a fresh state is initialised, and how an opened segment is
//! validated into a handle. Everything else (names, `O_EXCL` creation, the ready word, bounded
//! waits for a creator, header validation, liveness locks, unlink-on-last-close) is the
//! segment's job and is written once, in `segment.rs`.

use std::os::fd::RawFd;
use std::ptr::NonNull;

use super::{Flags, Kind, Segment, SegmentSpec};
use crate::{err, Result};

/// Alignment of every kind's state: a cache line, so two objects never share one.
pub const STATE_ALIGN: usize = 64;

/// Where a kind's state goes in a new segment.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Bytes of the data area.
    pub data_size: usize,
    /// Alignment of the data area in the segment (a power of two, at least 8).
    pub data_align: usize,
    /// Immutable parameters, stored in the (checksummed) header and read back at open.
    pub params: [u64; 4],
}

impl Layout {
    /// A state of `data_size` bytes at a cache-line-aligned offset.
    pub fn new(data_size: usize, params: [u64; 4]) -> Layout {
        Layout { data_size, data_align: STATE_ALIGN, params }
    }

    /// Exactly one `T`.
    pub fn of<T>(params: [u64; 4]) -> Layout {
        Layout::new(std::mem::size_of::<T>(), params)
    }
}

/// A kind of shareable object. Implementing it is how a kind is declared; the provided methods
/// are its lifecycle, the same for every kind.
pub trait Object: Sized {
    /// The kind stored in the header (and checked at open).
    const KIND: Kind;
    /// Whether a read-only mapping is usable (only kinds whose reads never write).
    const READ_ONLY_OK: bool = false;
    /// What `create` needs beyond a name and flags (`()` when nothing).
    type Spec<'a>;

    /// The data area for a spec; refuses a spec that makes no sense (Invalid).
    fn layout(spec: &Self::Spec<'_>) -> Result<Layout>;

    /// Writes the initial state into the zeroed data area, before the object is published.
    fn init(seg: &Segment, spec: &Self::Spec<'_>) -> Result<()> {
        let _ = (seg, spec);
        Ok(())
    }

    /// Validates an opened (or just created) segment's parameters and state and makes the handle.
    /// Nothing in the segment is trusted: a bad parameter is Corrupt, never undefined behaviour.
    fn attach(seg: Segment) -> Result<Self>;

    /// The handle's segment.
    fn segment(&self) -> &Segment;

    /// The live state in a few words for `mpx ls` ("held by pid 812", "3 msgs, 192 of 4096
    /// bytes"), or None when there is nothing to say. Reads only.
    fn summary(&self) -> Option<String> {
        None
    }

    /// Creates a named object. Exists if the name is taken.
    fn create(name: &str, spec: Self::Spec<'_>, flags: Flags) -> Result<Self> {
        Self::attach(create_segment::<Self>(Some(name), &spec, flags)?)
    }

    /// Creates an anonymous object (a sealed memfd): share it by passing its fd.
    fn create_anonymous(spec: Self::Spec<'_>) -> Result<Self> {
        Self::attach(create_segment::<Self>(None, &spec, Flags::default())?)
    }

    /// Opens a named object of this kind.
    fn open(name: &str, flags: Flags) -> Result<Self> {
        Self::attach(open_segment::<Self>(At::Name(name), flags)?)
    }

    /// Opens the object behind an inherited or received fd (duplicated: the caller keeps its own).
    fn from_fd(fd: RawFd, flags: Flags) -> Result<Self> {
        Self::attach(open_segment::<Self>(At::Fd(fd), flags)?)
    }

    /// Opens a named object to look at it: read-only, without taking a liveness lock, so that
    /// looking changes nothing (no unlink-on-last-close at the end, and no real last user is
    /// kept from removing it meanwhile).
    fn inspect(name: &str) -> Result<Self> {
        Self::attach(Segment::inspect(name, Self::KIND)?)
    }

    /// The object's name (None for an anonymous one).
    fn name(&self) -> Option<&str> {
        self.segment().name()
    }

    /// The segment's fd, owned by this handle: pass it to a child (or over a Unix socket) and
    /// open it there with `from_fd`.
    fn fd(&self) -> RawFd {
        self.segment().fd()
    }

    /// Removes this object's name, if it still refers to this object (processes that have it
    /// open keep using it).
    fn unlink(&self) -> Result<()> {
        self.segment().unlink_self()
    }

    /// Removes an object's name.
    fn unlink_name(name: &str) -> Result<()> {
        Segment::unlink(name)
    }

    /// "lock 'jobs'" or "anonymous lock": how messages name this object.
    fn describe(&self) -> String {
        self.segment().describe()
    }
}

/// Where an object is opened from.
#[derive(Clone, Copy, Debug)]
pub enum At<'a> {
    Name(&'a str),
    Fd(RawFd),
}

/// A new segment for a `K`, named or anonymous, initialised and published.
pub fn create_segment<K: Object>(name: Option<&str>, spec: &K::Spec<'_>, flags: Flags) -> Result<Segment> {
    let what = describe_new(K::KIND, name);
    let layout = K::layout(spec).map_err(|e| e.context(&what))?;
    let seg_spec = SegmentSpec {
        kind: K::KIND,
        data_size: layout.data_size,
        data_align: layout.data_align,
        params: layout.params,
    };
    let init = |seg: &Segment| K::init(seg, spec);
    match name {
        Some(n) => Segment::create(n, seg_spec, flags, init),
        None if flags.0 != 0 => Err(err!(Invalid, "{what}: flags {:#x} apply to named objects only", flags.0)),
        None => Segment::create_anonymous(seg_spec, init),
    }
}

/// An existing `K`'s segment, validated as that kind.
pub fn open_segment<K: Object>(at: At<'_>, flags: Flags) -> Result<Segment> {
    let kind = K::KIND;
    if !K::READ_ONLY_OK && flags.contains(Flags::READ_ONLY) {
        let what = match at {
            At::Name(n) => format!("{kind} '{n}'"),
            At::Fd(fd) => format!("{kind} from fd {fd}"),
        };
        return Err(err!(
            Invalid,
            "{what}: {} cannot be opened read-only (every operation writes it)",
            kind.with_article()
        ));
    }
    match at {
        At::Name(n) => Segment::open(n, kind, flags),
        At::Fd(fd) => Segment::from_fd(fd, kind, flags),
    }
}

fn describe_new(kind: Kind, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{kind} '{n}'"),
        None => format!("anonymous {kind}"),
    }
}

/// A kind's state in its segment: the segment (which keeps the mapping alive) and a typed
/// pointer to the start of its data area, checked once for size and alignment.
pub struct Mapped<T> {
    seg: Segment,
    st: NonNull<T>,
}

// SAFETY: a Mapped<T> is a mapping plus a pointer into it. The mapping is process-wide memory
// that lives as long as `seg`; T is the kind's state, which is Sync (atomics only), so sharing
// `&T` between threads (or moving the handle) is as safe as for T itself.
unsafe impl<T: Sync> Send for Mapped<T> {}
// SAFETY: as above; no method hands out `&mut T`.
unsafe impl<T: Sync> Sync for Mapped<T> {}

impl<T> Mapped<T> {
    /// Checks that the data area starts aligned for `T` and holds at least `min_size` bytes (and
    /// a whole `T`). The offsets were validated against the file when the segment was opened and
    /// are never read from shared memory again.
    pub fn new(seg: Segment, min_size: usize) -> Result<Mapped<T>> {
        let off = seg.data_offset();
        let size = seg.data_size();
        let need = min_size.max(std::mem::size_of::<T>());
        if off % STATE_ALIGN != 0 || off % std::mem::align_of::<T>() != 0 || size < need {
            return Err(err!(
                Corrupt,
                "{}: data area {size} bytes at offset {off} cannot hold the {need}-byte state",
                seg.describe()
            ));
        }
        let st = NonNull::new(seg.data_ptr().cast::<T>()).ok_or_else(|| err!(Corrupt, "null mapping"))?;
        Ok(Mapped { seg, st })
    }

    /// The state.
    #[inline(always)]
    pub fn state(&self) -> &T {
        // SAFETY: `new` checked that the data area holds an aligned T inside the mapping, which
        // lives as long as self.seg; T is made of atomics, valid for any bytes another process
        // may have written.
        unsafe { self.st.as_ref() }
    }

    /// The start of the data area (for kinds whose area holds more than one `T`).
    pub fn ptr(&self) -> NonNull<T> {
        self.st
    }

    pub fn segment(&self) -> &Segment {
        &self.seg
    }
}
