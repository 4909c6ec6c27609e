//! Connection addresses as strings, and their socket addresses.
//!
//! ```text
//! unix:/run/app.sock     a Unix socket at a filesystem path (a bare "/path" also works)
//! unix:@name             a Linux abstract socket (CPython's "\0name"); nothing on disk
//! unix:@                 listener only: the kernel picks a unique abstract name
//! tcp:127.0.0.1:5000     TCP over IPv4; a host name is resolved (IPv4 results first, as
//!                        CPython's AF_INET Listener/Client use IPv4 only)
//! tcp:[::1]:5000         TCP over IPv6 (brackets required)
//! tcp:127.0.0.1:0        listener: the kernel picks a free port (see Listener::address)
//! ```

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::{err, Result};

/// Longest Unix socket path or abstract name (sun_path holds 108 bytes with the NUL or the
/// leading zero byte).
const MAX_UNIX: usize = 107;

/// A parsed address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// A Unix socket on the filesystem.
    Unix(PathBuf),
    /// A Linux abstract Unix socket name (without the leading zero byte); empty asks the
    /// kernel for a unique one (listeners only).
    Abstract(Vec<u8>),
    /// A TCP host (name or literal) and port.
    Tcp { host: String, port: u16 },
}

const FORMS: &str = "expected unix:/path, unix:@name, tcp:host:port or tcp:[ipv6]:port";

impl Address {
    pub fn parse(s: &str) -> Result<Address> {
        if let Some(rest) = s.strip_prefix("unix:") {
            if let Some(name) = rest.strip_prefix('@') {
                if name.len() > MAX_UNIX {
                    return Err(err!(Invalid, "address '{s}': abstract name longer than {MAX_UNIX} bytes"));
                }
                return Ok(Address::Abstract(name.as_bytes().to_vec()));
            }
            return Self::path(s, rest);
        }
        if s.starts_with('/') {
            return Self::path(s, s);
        }
        if let Some(rest) = s.strip_prefix("tcp:") {
            let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
                let (host, after) = v6
                    .split_once(']')
                    .ok_or_else(|| err!(Invalid, "address '{s}': missing ']' after an IPv6 address"))?;
                let port =
                    after.strip_prefix(':').ok_or_else(|| err!(Invalid, "address '{s}': missing ':port' after ']'"))?;
                if host.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(err!(Invalid, "address '{s}': '{host}' is not an IPv6 address"));
                }
                (host, port)
            } else {
                let (host, port) =
                    rest.rsplit_once(':').ok_or_else(|| err!(Invalid, "address '{s}': missing ':port'"))?;
                if host.contains(':') {
                    return Err(err!(Invalid, "address '{s}': put an IPv6 address in brackets, e.g. tcp:[::1]:5000"));
                }
                (host, port)
            };
            if host.is_empty() {
                return Err(err!(Invalid, "address '{s}': empty host (use 0.0.0.0 or [::] for every interface)"));
            }
            let port: u16 =
                port.parse().map_err(|_| err!(Invalid, "address '{s}': port '{port}' is not a number in 0..=65535"))?;
            return Ok(Address::Tcp { host: host.to_string(), port });
        }
        Err(err!(Invalid, "address '{s}': {FORMS}"))
    }

    fn path(s: &str, p: &str) -> Result<Address> {
        if p.is_empty() {
            return Err(err!(Invalid, "address '{s}': empty path"));
        }
        if p.len() > MAX_UNIX {
            return Err(err!(Invalid, "address '{s}': Unix socket path longer than {MAX_UNIX} bytes"));
        }
        Ok(Address::Unix(PathBuf::from(p)))
    }

    pub fn is_unix(&self) -> bool {
        !matches!(self, Address::Tcp { .. })
    }

    /// The socket addresses to bind or connect to (TCP names may resolve to several: IPv4
    /// first).
    pub(crate) fn sockaddrs(&self) -> Result<Vec<RawAddr>> {
        match self {
            Address::Unix(p) => Ok(vec![RawAddr::unix(p.as_os_str().as_bytes(), false)]),
            Address::Abstract(n) => Ok(vec![RawAddr::unix(n, true)]),
            Address::Tcp { host, port } => {
                if let Ok(ip) = host.parse::<IpAddr>() {
                    return Ok(vec![RawAddr::inet(SocketAddr::new(ip, *port))]);
                }
                let mut addrs: Vec<SocketAddr> = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| err!(NotFound, "tcp:{host}:{port}: cannot resolve host: {e}"))?
                    .collect();
                addrs.sort_by_key(|a| a.is_ipv6());
                addrs.dedup();
                if addrs.is_empty() {
                    return Err(err!(NotFound, "tcp:{host}:{port}: the host has no addresses"));
                }
                Ok(addrs.into_iter().map(RawAddr::inet).collect())
            }
        }
    }
}

/// A socket address as the kernel takes it.
#[derive(Clone, Copy)]
pub(crate) struct RawAddr {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

impl RawAddr {
    fn empty() -> RawAddr {
        // SAFETY: sockaddr_storage is plain data; all zeroes is valid.
        RawAddr {
            storage: unsafe { std::mem::zeroed() },
            len: std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    pub fn family(&self) -> libc::c_int {
        self.storage.ss_family as libc::c_int
    }

    /// A Unix address; `name` is a path or (abstract) a name without the leading zero byte.
    /// Lengths were checked by `Address::parse`.
    fn unix(name: &[u8], abstract_: bool) -> RawAddr {
        let mut a = RawAddr::empty();
        // SAFETY: sockaddr_un fits in sockaddr_storage.
        let un = unsafe { &mut *(&mut a.storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_un>() };
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let off = usize::from(abstract_);
        for (i, b) in name.iter().enumerate() {
            un.sun_path[off + i] = *b as libc::c_char;
        }
        let base = std::mem::size_of::<libc::sa_family_t>();
        // A path is NUL-terminated; an abstract name is exactly its bytes after the zero byte
        // (an empty one, base alone, asks the kernel to pick a name).
        a.len = if abstract_ {
            if name.is_empty() {
                base
            } else {
                base + 1 + name.len()
            }
        } else {
            base + name.len() + 1
        } as libc::socklen_t;
        a
    }

    fn inet(sa: SocketAddr) -> RawAddr {
        let mut a = RawAddr::empty();
        match sa {
            SocketAddr::V4(v4) => {
                // SAFETY: sockaddr_in fits in sockaddr_storage.
                let sin = unsafe { &mut *(&mut a.storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = v4.port().to_be();
                sin.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) };
                a.len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(v6) => {
                // SAFETY: sockaddr_in6 fits in sockaddr_storage.
                let sin6 =
                    unsafe { &mut *(&mut a.storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = v6.port().to_be();
                sin6.sin6_addr = libc::in6_addr { s6_addr: v6.ip().octets() };
                sin6.sin6_flowinfo = v6.flowinfo();
                sin6.sin6_scope_id = v6.scope_id();
                a.len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        a
    }

    /// The local address of a socket (getsockname).
    pub fn local(fd: libc::c_int) -> crate::Result<RawAddr> {
        let mut a = RawAddr::empty();
        // SAFETY: storage and len describe a valid buffer.
        if unsafe { libc::getsockname(fd, (&mut a.storage as *mut libc::sockaddr_storage).cast(), &mut a.len) } < 0 {
            return Err(crate::Error::last_os("getsockname"));
        }
        Ok(a)
    }

    /// The peer address of a connected socket (getpeername).
    pub fn peer(fd: libc::c_int) -> crate::Result<RawAddr> {
        let mut a = RawAddr::empty();
        // SAFETY: storage and len describe a valid buffer.
        if unsafe { libc::getpeername(fd, (&mut a.storage as *mut libc::sockaddr_storage).cast(), &mut a.len) } < 0 {
            return Err(crate::Error::last_os("getpeername"));
        }
        Ok(a)
    }

    pub fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    /// The address in this module's string form.
    pub fn to_address_string(self) -> String {
        match self.family() {
            libc::AF_UNIX => {
                // SAFETY: the family says sockaddr_un.
                let un = unsafe { &*(&self.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_un>() };
                let base = std::mem::size_of::<libc::sa_family_t>();
                let n = (self.len as usize).saturating_sub(base).min(un.sun_path.len());
                let bytes: Vec<u8> = un.sun_path[..n].iter().map(|&c| c as u8).collect();
                if bytes.is_empty() {
                    "unix:".to_string()
                } else if bytes[0] == 0 {
                    format!("unix:@{}", String::from_utf8_lossy(&bytes[1..]))
                } else {
                    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                    format!("unix:{}", String::from_utf8_lossy(&bytes[..end]))
                }
            }
            libc::AF_INET => {
                // SAFETY: the family says sockaddr_in.
                let sin = unsafe { &*(&self.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                format!("tcp:{}:{}", ip, u16::from_be(sin.sin_port))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says sockaddr_in6.
                let sin6 = unsafe { &*(&self.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                format!("tcp:[{}]:{}", ip, u16::from_be(sin6.sin6_port))
            }
            f => format!("family-{f}:"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn parse_forms() {
        assert_eq!(Address::parse("unix:/tmp/a.sock").unwrap(), Address::Unix("/tmp/a.sock".into()));
        assert_eq!(Address::parse("/tmp/a.sock").unwrap(), Address::Unix("/tmp/a.sock".into()));
        assert_eq!(Address::parse("unix:@abc").unwrap(), Address::Abstract(b"abc".to_vec()));
        assert_eq!(Address::parse("unix:@").unwrap(), Address::Abstract(vec![]));
        assert_eq!(Address::parse("tcp:127.0.0.1:80").unwrap(), Address::Tcp { host: "127.0.0.1".into(), port: 80 });
        assert_eq!(Address::parse("tcp:[::1]:0").unwrap(), Address::Tcp { host: "::1".into(), port: 0 });
        assert_eq!(
            Address::parse("tcp:localhost:65535").unwrap(),
            Address::Tcp { host: "localhost".into(), port: 65535 }
        );
        for bad in [
            "",
            "x",
            "unix:",
            "tcp:",
            "tcp:host",
            "tcp::80",
            "tcp:h:99999",
            "tcp:h:-1",
            "tcp:::1:80",
            "tcp:[::1]80",
            "tcp:[::1",
            "tcp:[zz]:1",
            "udp:x:1",
        ] {
            let e = Address::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Invalid, "{bad}");
            assert!(e.message().contains(bad), "{e}");
        }
        let long = format!("unix:/{}", "a".repeat(200));
        assert_eq!(Address::parse(&long).unwrap_err().kind(), ErrorKind::Invalid);
    }

    #[test]
    fn raw_round_trip() {
        for s in ["unix:/tmp/x.sock", "unix:@name", "tcp:127.0.0.1:5000", "tcp:[::1]:7"] {
            let a = Address::parse(s).unwrap().sockaddrs().unwrap();
            assert_eq!(a[0].to_address_string(), s);
        }
    }
}
