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

use std::mem::size_of_val;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, UnixAddr};

use crate::{err, Error, Result};

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
    pub(crate) fn sockaddrs(&self) -> Result<Vec<SockAddr>> {
        match self {
            Address::Unix(p) => Ok(vec![SockAddr::unix(p.as_os_str().as_bytes(), false)?]),
            Address::Abstract(n) => Ok(vec![SockAddr::unix(n, true)?]),
            Address::Tcp { host, port } => {
                if let Ok(ip) = host.parse::<IpAddr>() {
                    return Ok(vec![SockAddr::Inet(SocketAddr::new(ip, *port))]);
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
                Ok(addrs.into_iter().map(SockAddr::Inet).collect())
            }
        }
    }
}

/// A socket address to bind or connect to.
pub(crate) enum SockAddr {
    Unix(UnixAddr),
    Inet(SocketAddr),
}

impl SockAddr {
    /// A Unix address; `name` is a path or (abstract) a name without the leading zero byte; an
    /// empty abstract name asks the kernel to pick one. Lengths were checked by `Address::parse`.
    fn unix(name: &[u8], abstract_: bool) -> Result<SockAddr> {
        let a = match (abstract_, name.is_empty()) {
            (true, true) => Ok(UnixAddr::new_unnamed()),
            (true, false) => UnixAddr::new_abstract(name),
            (false, _) => UnixAddr::new(std::ffi::OsStr::from_bytes(name)),
        };
        a.map(SockAddr::Unix).map_err(|e| Error::os(e, "unix address"))
    }

    pub fn family(&self) -> AddressFamily {
        match self {
            SockAddr::Unix(_) => AddressFamily::Unix,
            SockAddr::Inet(SocketAddr::V4(_)) => AddressFamily::Inet,
            SockAddr::Inet(SocketAddr::V6(_)) => AddressFamily::Inet6,
        }
    }

    /// Runs `op` (nix's bind or connect) on `fd` with this address.
    pub fn apply(&self, fd: RawFd, op: fn(RawFd, &dyn SockaddrLike) -> nix::Result<()>) -> nix::Result<()> {
        match self {
            SockAddr::Unix(u) => op(fd, u),
            SockAddr::Inet(a) => op(fd, &inet_storage(*a)),
        }
    }

    /// The address in this module's string form.
    #[cfg(test)]
    pub fn to_address_string(&self) -> String {
        match self {
            SockAddr::Unix(u) => unix_string(u),
            SockAddr::Inet(a) => tcp_string(a),
        }
    }
}

/// An address the kernel reported (getsockname, getpeername) in this module's string form.
pub(crate) fn address_string(sa: &SockaddrStorage) -> String {
    if let Some(u) = sa.as_unix_addr() {
        return unix_string(u);
    }
    match inet_of(sa) {
        Some(a) => tcp_string(&a),
        // SAFETY: as_ptr points at the storage, which always starts with a sockaddr.
        None => format!("family-{}:", unsafe { (*sa.as_ptr()).sa_family }),
    }
}

fn unix_string(u: &UnixAddr) -> String {
    if let Some(p) = u.path() {
        format!("unix:{}", String::from_utf8_lossy(p.as_os_str().as_bytes()))
    } else if let Some(name) = u.as_abstract() {
        format!("unix:@{}", String::from_utf8_lossy(name))
    } else {
        "unix:".to_string()
    }
}

fn tcp_string(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(a) => format!("tcp:{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("tcp:[{}]:{}", a.ip(), a.port()),
    }
}

// nix's typed inet addresses (SockaddrIn, SockaddrIn6, and SocketAddr conversions) need its
// `net` feature, which the crate does not enable: these two carry the libc structures in nix's
// generic storage.

fn inet_storage(a: SocketAddr) -> SockaddrStorage {
    let s = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: a live, initialised sockaddr_in of the length given.
            unsafe {
                SockaddrStorage::from_raw((&sin as *const libc::sockaddr_in).cast(), Some(size_of_val(&sin) as _))
            }
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: a live, initialised sockaddr_in6 of the length given.
            unsafe {
                SockaddrStorage::from_raw((&sin6 as *const libc::sockaddr_in6).cast(), Some(size_of_val(&sin6) as _))
            }
        }
    };
    s.expect("an inet address fits in sockaddr_storage")
}

fn inet_of(sa: &SockaddrStorage) -> Option<SocketAddr> {
    match sa.family()? {
        AddressFamily::Inet => {
            // SAFETY: the family says the storage holds a sockaddr_in (the storage is a whole
            // sockaddr_storage, so the read stays inside it).
            let sin = unsafe { *sa.as_ptr().cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        AddressFamily::Inet6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { *sa.as_ptr().cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip.into(), u16::from_be(sin6.sin6_port)))
        }
        _ => None,
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
