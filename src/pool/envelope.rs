//! What travels on the pool's queues: the task and result envelopes, in a fixed little-endian
//! layout that any language can write and read (workers in other languages will).
//!
//! Task (one queue message):
//! ```text
//! 0   u32  kind         1 = one call, 2 = a chunk of calls (map)
//! 4   u32  fname_len    1..=255
//! 8   u64  task id
//! 16  fname             UTF-8
//! ..  args              kind 1: the argument bytes as they are
//!                       kind 2: u32 count, then count x (u32 len, bytes)
//! ```
//! Result:
//! ```text
//! 0   u64  task id
//! 8   u32  status       0 = ok, 1 = error
//! 12  u32  0
//! 16  ok:    the result bytes (a chunk: u32 count, then count x (u32 len, bytes))
//!     error: i32 code (an MPX_E_* status), u32 type_len, u32 message_len, u32 traceback_len,
//!            then the three UTF-8 strings
//! ```
//! Decoding checks every length against the message: a malformed envelope is an error, never
//! a read past the end.

use super::TaskError;
use crate::{err, ErrorKind, Result};

pub(crate) const TASK_ONE: u32 = 1;
pub(crate) const TASK_CHUNK: u32 = 2;
/// The longest function name.
pub const MAX_FNAME: usize = 255;

const TASK_HEAD: usize = 16;
const RESULT_HEAD: usize = 16;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

pub(crate) fn check_fname(fname: &str) -> Result<()> {
    if fname.is_empty() || fname.len() > MAX_FNAME {
        return Err(err!(Invalid, "function name of {} bytes: it must have 1..={MAX_FNAME}", fname.len()));
    }
    Ok(())
}

/// A task of one call.
pub(crate) fn task(id: u64, fname: &str, args: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(TASK_HEAD + fname.len() + args.len());
    m.extend_from_slice(&TASK_ONE.to_le_bytes());
    m.extend_from_slice(&(fname.len() as u32).to_le_bytes());
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(fname.as_bytes());
    m.extend_from_slice(args);
    m
}

/// A list of byte strings: u32 count, then (u32 len, bytes) each.
pub(crate) fn put_list<B: AsRef<[u8]>>(m: &mut Vec<u8>, items: &[B]) {
    m.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for it in items {
        let it = it.as_ref();
        m.extend_from_slice(&(it.len() as u32).to_le_bytes());
        m.extend_from_slice(it);
    }
}

/// Reads a list written by put_list.
pub(crate) fn get_list(b: &[u8]) -> Option<Vec<&[u8]>> {
    let n = u32_at(b, 0)? as usize;
    let mut at = 4;
    // Each item takes at least 4 bytes: refuse a count the message cannot hold before allocating.
    if n > (b.len() - 4) / 4 {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u32_at(b, at)? as usize;
        at += 4;
        out.push(b.get(at..at.checked_add(len)?)?);
        at += len;
    }
    (at == b.len()).then_some(out)
}

/// A task of several calls of one function (one chunk of a map).
pub(crate) fn chunk<B: AsRef<[u8]>>(id: u64, fname: &str, items: &[B]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&TASK_CHUNK.to_le_bytes());
    m.extend_from_slice(&(fname.len() as u32).to_le_bytes());
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(fname.as_bytes());
    put_list(&mut m, items);
    m
}

/// The id of a task message, if it has one.
pub(crate) fn task_id(m: &[u8]) -> Option<u64> {
    u64_at(m, 8)
}

/// A decoded task.
pub(crate) struct Task<'a> {
    pub kind: u32,
    pub fname: &'a str,
    pub args: &'a [u8],
}

pub(crate) fn parse_task(m: &[u8]) -> Result<Task<'_>> {
    let bad = |why: &str| err!(Corrupt, "malformed task of {} bytes: {why}", m.len());
    let kind = u32_at(m, 0).ok_or_else(|| bad("no header"))?;
    let flen = u32_at(m, 4).ok_or_else(|| bad("no header"))? as usize;
    if kind != TASK_ONE && kind != TASK_CHUNK {
        return Err(bad(&format!("unknown kind {kind}")));
    }
    if flen == 0 || flen > MAX_FNAME {
        return Err(bad(&format!("function name of {flen} bytes")));
    }
    let fname = m.get(TASK_HEAD..TASK_HEAD + flen).ok_or_else(|| bad("truncated function name"))?;
    let fname = std::str::from_utf8(fname).map_err(|_| bad("function name is not UTF-8"))?;
    Ok(Task { kind, fname, args: &m[TASK_HEAD + flen..] })
}

/// A successful result.
pub(crate) fn result_ok(id: u64, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(RESULT_HEAD + payload.len());
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(payload);
    m
}

/// A failed result.
pub(crate) fn result_err(id: u64, e: &TaskError) -> Vec<u8> {
    let (t, msg, tb) = (e.type_name.as_bytes(), e.message.as_bytes(), e.traceback.as_bytes());
    let mut m = Vec::with_capacity(RESULT_HEAD + 16 + t.len() + msg.len() + tb.len());
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&e.kind.code().to_le_bytes());
    for s in [t, msg, tb] {
        m.extend_from_slice(&(s.len() as u32).to_le_bytes());
    }
    for s in [t, msg, tb] {
        m.extend_from_slice(s);
    }
    m
}

/// The task id of a result message, if it has one.
pub(crate) fn result_id(m: &[u8]) -> Option<u64> {
    u64_at(m, 0)
}

/// A decoded result: the task id and its outcome.
pub(crate) fn parse_result(m: &[u8]) -> Result<(u64, std::result::Result<Vec<u8>, TaskError>)> {
    let bad = |why: &str| err!(Corrupt, "malformed result of {} bytes: {why}", m.len());
    let id = u64_at(m, 0).ok_or_else(|| bad("no header"))?;
    let status = u32_at(m, 8).ok_or_else(|| bad("no header"))?;
    if m.len() < RESULT_HEAD {
        return Err(bad("no header"));
    }
    match status {
        0 => Ok((id, Ok(m[RESULT_HEAD..].to_vec()))),
        1 => {
            let b = &m[RESULT_HEAD..];
            let code = u32_at(b, 0).ok_or_else(|| bad("no error header"))? as i32;
            let lens: Vec<usize> = (0..3)
                .map(|i| u32_at(b, 4 + 4 * i).map(|l| l as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("no error header"))?;
            let mut at = 16usize;
            let mut strs = Vec::with_capacity(3);
            for l in lens {
                let s = at.checked_add(l).and_then(|end| b.get(at..end)).ok_or_else(|| bad("truncated error text"))?;
                strs.push(String::from_utf8_lossy(s).into_owned());
                at += l;
            }
            let kind = ErrorKind::from_code(code).unwrap_or(ErrorKind::Os);
            let tb = strs.pop().unwrap_or_default();
            let msg = strs.pop().unwrap_or_default();
            let t = strs.pop().unwrap_or_default();
            Ok((id, Err(TaskError { kind, type_name: t, message: msg, traceback: tb })))
        }
        s => Err(bad(&format!("unknown status {s}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips() {
        let t = task(7, "square", b"abc");
        let p = parse_task(&t).unwrap();
        assert_eq!((p.kind, p.fname, p.args), (TASK_ONE, "square", &b"abc"[..]));
        assert_eq!(task_id(&t), Some(7));
        let c = chunk(8, "f", &[&b"x"[..], b"", b"yz"]);
        let p = parse_task(&c).unwrap();
        assert_eq!(p.kind, TASK_CHUNK);
        assert_eq!(get_list(p.args).unwrap(), vec![&b"x"[..], b"", b"yz"]);
        assert_eq!(parse_result(&result_ok(9, b"r")).unwrap(), (9, Ok(b"r".to_vec())));
        let e = TaskError::new(ErrorKind::Invalid, "bad").type_name("ValueError").traceback("tb");
        assert_eq!(parse_result(&result_err(10, &e)).unwrap(), (10, Err(e)));
    }

    #[test]
    fn malformed_is_an_error() {
        for m in [
            &b""[..],
            b"\x01\0\0\0",
            b"\x03\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0f",
            b"\x01\0\0\0\x09\0\0\0\0\0\0\0\0\0\0\0f",
        ] {
            assert!(parse_task(m).is_err());
        }
        assert!(get_list(b"\xff\xff\xff\xff").is_none());
        assert!(get_list(b"\x01\0\0\0\x05\0\0\0ab").is_none());
        let mut r = result_err(1, &TaskError::new(ErrorKind::Invalid, "message"));
        r.truncate(r.len() - 2);
        assert!(parse_result(&r).is_err());
        assert!(parse_result(b"short").is_err());
        assert_eq!(result_id(&r), Some(1));
        assert!(parse_result(b"\x01\0\0\0\0\0\0\0\0\0\0\0\0").is_err());
    }
}
