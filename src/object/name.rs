//! Object names: 1..=200 bytes of `[A-Za-z0-9._-]`. A name maps to `/dev/shm/mpx.<name>`.

use crate::{err, Result};

/// Longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Where POSIX shared memory lives on Linux (what glibc's shm_open uses).
pub const SHM_DIR: &str = "/dev/shm";

/// Prefix of every mpx segment's file name, so `ls /dev/shm` tells ours apart.
pub const FILE_PREFIX: &str = "mpx.";

/// Checks a name and says exactly why it is refused.
pub fn validate(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(err!(Invalid, "invalid name '': a name must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(err!(
            Invalid,
            "invalid name '{}...': {} bytes, the limit is {}",
            &name[..name.char_indices().nth(20).map_or(name.len(), |c| c.0)],
            name.len(),
            MAX_NAME_LEN
        ));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(err!(Invalid, "invalid name '{}': character {:?} is not allowed (use A-Z a-z 0-9 . _ -)", name, c));
    }
    Ok(())
}

/// Validates raw bytes as a name (non-UTF-8 is refused with a clear message).
pub fn validate_bytes(name: &[u8]) -> Result<&str> {
    let s = std::str::from_utf8(name).map_err(|_| err!(Invalid, "invalid name: not UTF-8 (use A-Z a-z 0-9 . _ -)"))?;
    validate(s)?;
    Ok(s)
}

/// The path of a name's segment file.
pub fn path_of(name: &str) -> String {
    format!("{SHM_DIR}/{FILE_PREFIX}{name}")
}

/// A fresh name nobody is likely to hold, for objects created without one (as Python's
/// SharedMemory does): "<prefix>-<pid>-<random hex>".
pub fn random(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    // getrandom cannot fail for 8 bytes on Linux >= 3.17 except by EINTR; fall back to time.
    // libc: nix 0.32 has no getrandom.
    // SAFETY: `bytes` is 8 writable bytes; getrandom writes at most that many.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    let r = if n == 8 {
        u64::from_ne_bytes(bytes)
    } else {
        crate::util::realtime_ns() ^ (std::process::id() as u64).rotate_left(32)
    };
    format!("{}-{}-{:016x}", prefix, std::process::id(), r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn accepts_and_refuses() {
        for ok in ["a", "frames", "A.b_c-9", &"x".repeat(200)] {
            validate(ok).unwrap();
        }
        for bad in ["", "a/b", "/a", "a b", "é", &"x".repeat(201), "a\0b"] {
            let e = validate(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Invalid, "{bad:?}");
        }
        assert_eq!(validate_bytes(b"\xff\xfe").unwrap_err().kind(), ErrorKind::Invalid);
        assert!(random("psm").starts_with("psm-"));
        validate(&random("psm")).unwrap();
    }
}
