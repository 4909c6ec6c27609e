//! Message framing, byte for byte CPython's `multiprocessing.connection.Connection`:
//!
//! ```text
//! length <= 0x7fffffff:  [i32 big-endian length][payload]
//! length >  0x7fffffff:  [i32 big-endian -1][u64 big-endian length][payload]
//! ```
//!
//! CPython also accepts the long form for small lengths (it only looks at the value), so the
//! parser does too. Any other negative 4-byte length is not a frame CPython could have sent:
//! the stream is garbage from there on.

use crate::{err, Result};

/// The largest length sent in the short (4-byte) form.
pub const SHORT_MAX: u64 = 0x7fff_ffff;

/// Bytes of the longest header (the -1 marker plus the 8-byte length).
pub const MAX_HEADER: usize = 12;

/// The header for a payload of `len` bytes: the bytes and how many of them are used.
pub fn encode_header(len: u64) -> ([u8; MAX_HEADER], usize) {
    let mut h = [0u8; MAX_HEADER];
    if len <= SHORT_MAX {
        h[..4].copy_from_slice(&(len as u32).to_be_bytes());
        (h, 4)
    } else {
        h[..4].copy_from_slice(&(-1i32).to_be_bytes());
        h[4..12].copy_from_slice(&len.to_be_bytes());
        (h, 12)
    }
}

/// Parses a header at the start of `buf`. `Ok(None)`: more bytes are needed; `Ok(Some((len,
/// used)))`: a payload of `len` bytes follows the first `used` bytes. A negative length other
/// than the -1 marker is an error (Corrupt): no peer speaking this protocol sends it.
///
/// Never allocates and never reads past `buf`: it is the first thing garbage input meets.
pub fn parse_header(buf: &[u8]) -> Result<Option<(u64, usize)>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let short = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if short >= 0 {
        return Ok(Some((short as u64, 4)));
    }
    if short != -1 {
        return Err(err!(
            Corrupt,
            "bad message header: length {short} is negative (the stream is not mpx/multiprocessing framing)"
        ));
    }
    if buf.len() < MAX_HEADER {
        return Ok(None);
    }
    let mut l = [0u8; 8];
    l.copy_from_slice(&buf[4..12]);
    Ok(Some((u64::from_be_bytes(l), MAX_HEADER)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn short_and_long_forms() {
        let (h, n) = encode_header(0);
        assert_eq!(&h[..n], &[0, 0, 0, 0]);
        let (h, n) = encode_header(0x0102_0304);
        assert_eq!(&h[..n], &[1, 2, 3, 4]);
        let (h, n) = encode_header(SHORT_MAX);
        assert_eq!(&h[..n], &[0x7f, 0xff, 0xff, 0xff]);
        let (h, n) = encode_header(SHORT_MAX + 1);
        assert_eq!(&h[..n], &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]);
        for len in [0, 1, 255, 65536, SHORT_MAX, SHORT_MAX + 1, 1 << 40, u64::MAX] {
            let (h, n) = encode_header(len);
            assert_eq!(parse_header(&h[..n]).unwrap(), Some((len, n)));
            for cut in 0..n {
                assert_eq!(parse_header(&h[..cut]).unwrap(), None, "len {len} cut {cut}");
            }
        }
    }

    #[test]
    fn long_form_for_a_small_length_is_accepted_like_cpython() {
        let wire = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 5];
        assert_eq!(parse_header(&wire).unwrap(), Some((5, 12)));
    }

    #[test]
    fn other_negative_lengths_are_corrupt() {
        for v in [-2i32, i32::MIN, -100] {
            let e = parse_header(&v.to_be_bytes()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt);
            assert!(e.message().contains("negative"), "{e}");
        }
    }
}
