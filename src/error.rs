//! Errors of the Rust API. Every error carries a kind (which is also its C status code) and a
//! message with context, e.g. "shm 'frames': no such object".

use std::fmt;

/// What went wrong. The discriminant is the C ABI status code (`MPX_E_*`), so the mapping is one
/// table and cannot drift.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorKind {
    /// An argument is NULL, out of range or malformed (bad name, size 0, ...).
    Invalid = -1,
    /// The named object does not exist.
    NotFound = -2,
    /// An object of that name already exists.
    Exists = -3,
    /// The timeout expired first.
    Timeout = -4,
    /// A non-blocking put found no room.
    Full = -5,
    /// A non-blocking get found nothing.
    Empty = -6,
    /// The object (or the peer) was closed.
    Closed = -7,
    /// A message or request can never fit.
    TooBig = -8,
    /// The object is of another kind than the call expects.
    Kind = -9,
    /// The segment was made by an incompatible layout version.
    Version = -10,
    /// The segment's contents fail validation.
    Corrupt = -11,
    /// The OS denied access.
    Permission = -12,
    /// Acquired, but the previous holder died while holding it.
    OwnerDied = -13,
    /// The worker running a task died.
    WorkerDied = -14,
    /// Authentication failed.
    Auth = -15,
    /// Any other operating-system error; the message has the errno text.
    Os = -16,
    /// A panic was caught at the C boundary (a bug in mpx).
    Panic = -17,
    /// The caller's buffer is too small; the message (and an out-parameter) tell the size needed.
    BufferTooSmall = -18,
    /// The object is in a broken state (e.g. an aborted barrier).
    Broken = -19,
    /// The operation is not valid in the object's current state (e.g. join before start).
    State = -20,
    /// The operation is not supported here.
    Unsupported = -21,
}

impl ErrorKind {
    /// Every kind, for tables and tests.
    pub const ALL: [ErrorKind; 21] = [
        ErrorKind::Invalid,
        ErrorKind::NotFound,
        ErrorKind::Exists,
        ErrorKind::Timeout,
        ErrorKind::Full,
        ErrorKind::Empty,
        ErrorKind::Closed,
        ErrorKind::TooBig,
        ErrorKind::Kind,
        ErrorKind::Version,
        ErrorKind::Corrupt,
        ErrorKind::Permission,
        ErrorKind::OwnerDied,
        ErrorKind::WorkerDied,
        ErrorKind::Auth,
        ErrorKind::Os,
        ErrorKind::Panic,
        ErrorKind::BufferTooSmall,
        ErrorKind::Broken,
        ErrorKind::State,
        ErrorKind::Unsupported,
    ];

    /// The C status code.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The kind for a C status code, if it is one.
    pub fn from_code(code: i32) -> Option<ErrorKind> {
        Self::ALL.iter().copied().find(|k| k.code() == code)
    }

    /// The constant's name in the C header, e.g. "MPX_E_NOT_FOUND".
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "MPX_E_INVALID",
            ErrorKind::NotFound => "MPX_E_NOT_FOUND",
            ErrorKind::Exists => "MPX_E_EXISTS",
            ErrorKind::Timeout => "MPX_E_TIMEOUT",
            ErrorKind::Full => "MPX_E_FULL",
            ErrorKind::Empty => "MPX_E_EMPTY",
            ErrorKind::Closed => "MPX_E_CLOSED",
            ErrorKind::TooBig => "MPX_E_TOO_BIG",
            ErrorKind::Kind => "MPX_E_KIND",
            ErrorKind::Version => "MPX_E_VERSION",
            ErrorKind::Corrupt => "MPX_E_CORRUPT",
            ErrorKind::Permission => "MPX_E_PERMISSION",
            ErrorKind::OwnerDied => "MPX_E_OWNER_DIED",
            ErrorKind::WorkerDied => "MPX_E_WORKER_DIED",
            ErrorKind::Auth => "MPX_E_AUTH",
            ErrorKind::Os => "MPX_E_OS",
            ErrorKind::Panic => "MPX_E_PANIC",
            ErrorKind::BufferTooSmall => "MPX_E_BUFFER_TOO_SMALL",
            ErrorKind::Broken => "MPX_E_BROKEN",
            ErrorKind::State => "MPX_E_STATE",
            ErrorKind::Unsupported => "MPX_E_UNSUPPORTED",
        }
    }
}

/// An error with its kind, a message with context and, for OS failures, the errno.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    errno: Option<i32>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), errno: None }
    }

    /// An error from an errno value, classified: ENOENT is NotFound, EEXIST is Exists,
    /// EACCES/EPERM are Permission, EINVAL is Invalid, the rest Os.
    pub fn from_errno(errno: i32, context: impl AsRef<str>) -> Error {
        let kind = match errno {
            libc::ENOENT => ErrorKind::NotFound,
            libc::EEXIST => ErrorKind::Exists,
            libc::EACCES | libc::EPERM => ErrorKind::Permission,
            libc::EINVAL => ErrorKind::Invalid,
            libc::ETIMEDOUT => ErrorKind::Timeout,
            _ => ErrorKind::Os,
        };
        let text = std::io::Error::from_raw_os_error(errno);
        Error { kind, message: format!("{}: {}", context.as_ref(), text), errno: Some(errno) }
    }

    /// An error of `kind` with its own message that still carries the errno behind it (so the C
    /// ABI's mpx_last_errno and Python's OSError see it).
    pub fn with_errno(kind: ErrorKind, message: impl Into<String>, errno: i32) -> Error {
        Error { kind, message: message.into(), errno: Some(errno) }
    }

    /// The calling thread's current errno, with context.
    pub fn last_os(context: impl AsRef<str>) -> Error {
        Error::from_errno(errno(), context)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// The same error with more context in front ("queue 'x': " + message).
    pub fn context(mut self, prefix: impl AsRef<str>) -> Error {
        self.message = format!("{}: {}", prefix.as_ref(), self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        match e.raw_os_error() {
            Some(n) => Error::from_errno(n, "I/O error"),
            None => Error::new(ErrorKind::Os, e.to_string()),
        }
    }
}

impl From<nix::errno::Errno> for Error {
    fn from(e: nix::errno::Errno) -> Error {
        Error::from_errno(e as i32, "system call")
    }
}

impl Error {
    /// An error from a nix errno, with context: `nix_call().map_err(|e| Error::os(e, "flock"))`.
    pub fn os(e: nix::errno::Errno, context: impl AsRef<str>) -> Error {
        Error::from_errno(e as i32, context)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for building an error: `err!(Invalid, "size {} too large", n)`.
#[macro_export]
macro_rules! err {
    ($kind:ident, $($fmt:tt)*) => {
        $crate::Error::new($crate::ErrorKind::$kind, format!($($fmt)*))
    };
}

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
