//! The authkey handshake of CPython's `multiprocessing.connection`, both generations:
//!
//! ```text
//! challenger (server first, then client)        answerer
//!   send  "#CHALLENGE#" + MESSAGE
//!                                                 MAC = HMAC(authkey, MESSAGE)
//!                                                 send RESPONSE
//!   verify, send "#WELCOME#" or "#FAILURE#"
//! ```
//!
//! - Python <= 3.11 (legacy): MESSAGE is 20 random bytes; RESPONSE is the bare 16-byte
//!   HMAC-MD5. A 3.11 answerer HMAC-MD5s whatever MESSAGE it gets, of any length.
//! - Python >= 3.12: MESSAGE is "{sha256}" + 40 random bytes; RESPONSE is "{digest}" + HMAC
//!   with that digest over the whole MESSAGE (prefix included, so no downgrade). A 20-byte
//!   MESSAGE means a legacy challenger (answered with bare HMAC-MD5), and a 16-byte RESPONSE a
//!   legacy answerer (checked as HMAC-MD5).
//!
//! mpx challenges in the 3.12 form, which a 3.11 peer answers with HMAC-MD5 (accepted, as 3.12
//! accepts it), so one listener serves both; it answers either form. Each handshake message is
//! at most 256 bytes, as in CPython: a longer one fails the handshake before it is read.
//! Both directions run (server challenges, client answers, then the reverse): mutual.

use std::time::Instant;

use hmac::{Hmac, Mac};

use super::connection::Connection;
use super::sys::random_bytes;
use crate::{err, Error, ErrorKind, Result};

pub const CHALLENGE: &[u8] = b"#CHALLENGE#";
pub const WELCOME: &[u8] = b"#WELCOME#";
pub const FAILURE: &[u8] = b"#FAILURE#";
/// Random bytes in a challenge (CPython 3.12's MESSAGE_LENGTH).
const MESSAGE_LENGTH: usize = 40;
/// A legacy challenge's length; also the shortest challenge answered.
const LEGACY_MESSAGE_LENGTH: usize = 20;
/// A legacy (bare HMAC-MD5) response's length.
const MD5_LEN: usize = 16;
/// Longest handshake message read, as CPython's `recv_bytes(256)`.
pub const MAX_HANDSHAKE_MESSAGE: u64 = 256;
/// Digest names CPython 3.12 allows in a prefix; the longest bounds the search for '}'.
const ALLOWED: [&[u8]; 5] = [b"md5", b"sha256", b"sha384", b"sha3_256", b"sha3_384"];
const MAX_DIGEST_NAME: usize = 8;

/// The HMAC digests mpx computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digest {
    Md5,
    Sha256,
    Sha384,
}

impl Digest {
    pub fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
        }
    }

    /// HMAC of `msg` under `key`.
    pub fn mac(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        // new_from_slice accepts keys of any length (HMAC hashes long keys), so it cannot fail.
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
            let mut m = <M as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Digest::Md5 => run::<Hmac<md5::Md5>>(key, msg),
            Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, msg),
            Digest::Sha384 => run::<Hmac<sha2::Sha384>>(key, msg),
        }
    }
}

fn auth(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Auth, msg)
}

/// Splits a challenge MESSAGE or a RESPONSE into its digest and payload, as CPython 3.12's
/// `_get_digest_name_and_payload`: 16 or 20 bytes is the legacy form (None: HMAC-MD5, no
/// prefix); otherwise a "{name}" prefix with an allowed digest must lead.
pub fn split_digest(message: &[u8]) -> Result<(Option<Digest>, &[u8])> {
    if message.len() == LEGACY_MESSAGE_LENGTH || message.len() == MD5_LEN {
        return Ok((None, message));
    }
    if message.first() == Some(&b'{') {
        let window = &message[1..message.len().min(MAX_DIGEST_NAME + 2)];
        if let Some(curly) = window.iter().position(|&b| b == b'}') {
            let name = &window[..curly];
            let payload = &message[curly + 2..];
            return match name {
                b"md5" => Ok((Some(Digest::Md5), payload)),
                b"sha256" => Ok((Some(Digest::Sha256), payload)),
                b"sha384" => Ok((Some(Digest::Sha384), payload)),
                n if ALLOWED.contains(&n) => Err(auth(format!(
                    "handshake: digest {} is not supported by mpx (md5, sha256, sha384 are)",
                    String::from_utf8_lossy(n)
                ))),
                n => Err(auth(format!("handshake: unknown digest {:?}", String::from_utf8_lossy(n)))),
            };
        }
    }
    Err(auth(format!(
        "handshake: a {}-byte message with neither the legacy length nor a {{digest}} prefix",
        message.len()
    )))
}

/// The RESPONSE to a challenge MESSAGE (the bytes after "#CHALLENGE#"): bare HMAC-MD5 for a
/// legacy challenge, "{digest}" + HMAC over the whole MESSAGE otherwise.
pub fn response(key: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    if message.len() < LEGACY_MESSAGE_LENGTH {
        return Err(auth(format!("handshake: challenge too short ({} bytes)", message.len())));
    }
    match split_digest(message)?.0 {
        None => Ok(Digest::Md5.mac(key, message)),
        Some(d) => {
            let mut r = format!("{{{}}}", d.name()).into_bytes();
            r.extend_from_slice(&d.mac(key, message));
            Ok(r)
        }
    }
}

/// Checks a RESPONSE to our challenge MESSAGE (CPython 3.12's `_verify_challenge`): a bare
/// 16-byte response is HMAC-MD5 (a Python 3.11 peer), otherwise its prefix names the digest.
/// The comparison is constant-time.
pub fn verify(key: &[u8], message: &[u8], response: &[u8]) -> Result<()> {
    let (digest, mac) = split_digest(response)?;
    let digest = digest.unwrap_or(Digest::Md5);
    let expected = digest.mac(key, message);
    if expected.len() != mac.len() {
        return Err(auth(format!(
            "handshake: expected a {}-byte {} digest, got {} bytes",
            expected.len(),
            digest.name(),
            mac.len()
        )));
    }
    // Mac::verify_slice compares in constant time.
    let ok = match digest {
        Digest::Md5 => <Hmac<md5::Md5> as Mac>::new_from_slice(key).map(|mut m| {
            m.update(message);
            m.verify_slice(mac).is_ok()
        }),
        Digest::Sha256 => <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).map(|mut m| {
            m.update(message);
            m.verify_slice(mac).is_ok()
        }),
        Digest::Sha384 => <Hmac<sha2::Sha384> as Mac>::new_from_slice(key).map(|mut m| {
            m.update(message);
            m.verify_slice(mac).is_ok()
        }),
    }
    .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(auth("handshake: digest received was wrong (the peer has another authkey)"))
    }
}

/// A fresh challenge MESSAGE: "{sha256}" + 40 random bytes.
pub fn challenge_message() -> Result<Vec<u8>> {
    let mut m = b"{sha256}".to_vec();
    let mut r = [0u8; MESSAGE_LENGTH];
    random_bytes(&mut r)?;
    m.extend_from_slice(&r);
    Ok(m)
}

/// Failures while handshaking are authentication failures (except running out of time, and
/// operating-system errors): a peer that sends garbage, too much, or hangs up has not
/// authenticated.
fn handshake_error(e: Error) -> Error {
    match e.kind() {
        ErrorKind::Auth | ErrorKind::Timeout | ErrorKind::Os => e,
        _ => auth(format!("handshake: {}", e.message())),
    }
}

fn recv(conn: &Connection, deadline: Option<Instant>) -> Result<Vec<u8>> {
    conn.recv_limited(MAX_HANDSHAKE_MESSAGE, deadline).map_err(|e| {
        if e.kind() == ErrorKind::TooBig {
            auth(format!("handshake: the peer sent a message longer than {MAX_HANDSHAKE_MESSAGE} bytes"))
        } else {
            handshake_error(e)
        }
    })
}

/// Challenges the peer: our half of the handshake as challenger.
pub(crate) fn deliver_challenge(conn: &Connection, key: &[u8], deadline: Option<Instant>) -> Result<()> {
    let message = challenge_message()?;
    let mut wire = CHALLENGE.to_vec();
    wire.extend_from_slice(&message);
    conn.send(&wire).map_err(handshake_error)?;
    let resp = recv(conn, deadline)?;
    match verify(key, &message, &resp) {
        Ok(()) => conn.send(WELCOME).map_err(handshake_error),
        Err(e) => {
            let _ = conn.send(FAILURE);
            Err(e)
        }
    }
}

/// Answers the peer's challenge: our half of the handshake as answerer.
pub(crate) fn answer_challenge(conn: &Connection, key: &[u8], deadline: Option<Instant>) -> Result<()> {
    let msg = recv(conn, deadline)?;
    let Some(message) = msg.strip_prefix(CHALLENGE) else {
        return Err(auth(format!(
            "handshake: expected a challenge, got a {}-byte message without #CHALLENGE#",
            msg.len()
        )));
    };
    let r = response(key, message)?;
    conn.send(&r).map_err(handshake_error)?;
    let reply = recv(conn, deadline)?;
    if reply == WELCOME {
        Ok(())
    } else if reply == FAILURE {
        Err(auth("handshake: digest sent was rejected (the peer has another authkey)"))
    } else {
        Err(err!(Auth, "handshake: expected #WELCOME# or #FAILURE#, got a {}-byte message", reply.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn hmac_known_answers() {
        // RFC 2104 / RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let (k, m) = (b"Jefe".as_slice(), b"what do ya want for nothing?".as_slice());
        assert_eq!(Digest::Md5.mac(k, m), hex("750c783e6ab0b503eaa86e310a5db738"));
        assert_eq!(Digest::Sha256.mac(k, m), hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
        assert_eq!(Digest::Sha384.mac(k, m).len(), 48);
    }

    #[test]
    fn legacy_and_modern_responses_verify() {
        let key = b"secret";
        let legacy = [7u8; 20];
        let r = response(key, &legacy).unwrap();
        assert_eq!(r.len(), 16, "bare HMAC-MD5 for a 20-byte challenge");
        verify(key, &legacy, &r).unwrap();
        let modern = challenge_message().unwrap();
        let r = response(key, &modern).unwrap();
        assert!(r.starts_with(b"{sha256}"));
        verify(key, &modern, &r).unwrap();
        // A 3.11 peer answers our modern challenge with bare HMAC-MD5 over all of it.
        verify(key, &modern, &Digest::Md5.mac(key, &modern)).unwrap();
        assert_eq!(verify(b"other", &modern, &r).unwrap_err().kind(), ErrorKind::Auth);
        assert_eq!(verify(key, &modern, b"{sha256}short").unwrap_err().kind(), ErrorKind::Auth);
    }

    #[test]
    fn bad_challenges() {
        for m in [
            &b""[..],
            b"short",
            b"{sha3_256}0123456789012345678901234567890",
            b"{nope}01234567890123456789",
            &[b'x'; 30],
        ] {
            assert_eq!(response(b"k", m).unwrap_err().kind(), ErrorKind::Auth, "{m:?}");
        }
    }
}
