// mpx/conn.hpp: message connections between processes: mpx::connection, mpx::pipe() and
// mpx::listener (framed as Python's multiprocessing.connection).

#ifndef MPX_CONN_HPP
#define MPX_CONN_HPP

#include "core.hpp"
#include "shm.hpp"

#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpx {

namespace detail {
/// Bytes of any contiguous trivially copyable range, as the C ABI's (pointer, length).
inline const std::uint8_t* bytes_of(const void* p) noexcept { return static_cast<const std::uint8_t*>(p); }
}  // namespace detail

/// One end of a connection: whole byte messages to another process (any language), framed as
/// Python's multiprocessing.connection frames them. Made by mpx::pipe(), listener::accept(),
/// connection::connect() or connection::from_fd(). Move-only; the destructor closes it (the peer
/// then sees the end of the stream). One thread may receive while another sends.
///
///     auto [a, b] = mpx::pipe();
///     a.send("hello");
///     std::string s = b.recv_string();
class connection {
public:
    /// An empty object (valid() is false).
    connection() noexcept = default;

    /// Connects to a listener at `address` ("unix:/path", "unix:@name", "tcp:host:port",
    /// "tcp:[::1]:port"); with `authkey` the mutual handshake runs (mpx::error MPX_E_AUTH if the
    /// keys differ). Waits up to `timeout` for the connection and the handshake together.
    template <class Rep = std::int64_t, class Period = std::nano>
    static connection connect(std::string_view address, std::optional<std::string_view> authkey = std::nullopt,
                              std::chrono::duration<Rep, Period> timeout = forever) {
        std::string a = detail::c_string(address, "address");
        mpx_conn* c = nullptr;
        detail::check(mpx_client_connect(a.c_str(), authkey ? detail::bytes_of(authkey->data()) : nullptr,
                                         authkey ? authkey->size() : 0, detail::timeout_ns(timeout), &c));
        return connection(c);
    }

    /// A connection over an inherited or received descriptor (a stream socket or a pipe end).
    /// On success the connection owns `fd`; on failure (mpx::error) the caller still does.
    /// flags: 0 (whatever the descriptor allows), or MPX_CONN_READABLE / MPX_CONN_WRITABLE.
    static connection from_fd(int fd, std::uint32_t flags = 0) {
        mpx_conn* c = nullptr;
        detail::check(mpx_conn_from_fd(fd, flags, &c));
        return connection(c);
    }

    /// Sends one message (any size, 0 included). Throws MPX_E_CLOSED if the peer has gone.
    void send(const void* data, std::size_t size) const { detail::check(mpx_conn_send(h_.get(), detail::bytes_of(data), size)); }
    void send(std::string_view s) const { send(s.data(), s.size()); }
    template <class T>
    void send(span<T> v) const {
        static_assert(std::is_trivially_copyable_v<T>, "mpx::connection::send: T must be trivially copyable");
        send(v.data(), v.size() * sizeof(T));
    }

    /// Receives one message, waiting as long as it takes. Throws MPX_E_CLOSED at the end of
    /// the stream, MPX_E_TOO_BIG beyond the maximum message size.
    std::vector<std::byte> recv() const { return *recv(forever); }

    /// Receives one message within `timeout`, or nullopt when it runs out (what arrived is
    /// kept for the next call).
    template <class Rep, class Period>
    std::optional<std::vector<std::byte>> recv(std::chrono::duration<Rep, Period> timeout) const {
        std::uint8_t* p = nullptr;
        std::size_t len = 0;
        mpx_status st = mpx_conn_recv_alloc(h_.get(), &p, &len, detail::timeout_ns(timeout));
        if (st == MPX_E_TIMEOUT) return std::nullopt;
        detail::check(st);
        std::vector<std::byte> v(reinterpret_cast<std::byte*>(p), reinterpret_cast<std::byte*>(p) + len);
        mpx_free(p);
        return v;
    }

    /// Receives one message as a string (waiting as long as it takes).
    std::string recv_string() const {
        std::vector<std::byte> v = recv();
        return std::string(reinterpret_cast<const char*>(v.data()), v.size());
    }

    /// Receives one message into `buf` and returns its size, or nullopt when `timeout` runs
    /// out. A message larger than `buf` throws mpx::error MPX_E_BUFFER_TOO_SMALL and stays for
    /// the next call (pending_size() tells its size; recv() takes it whole).
    template <class Rep = std::int64_t, class Period = std::nano>
    std::optional<std::size_t> recv_into(span<std::byte> buf, std::chrono::duration<Rep, Period> timeout = forever) const {
        std::size_t len = 0;
        mpx_status st = mpx_conn_recv(h_.get(), reinterpret_cast<std::uint8_t*>(buf.data()), buf.size(), &len, detail::timeout_ns(timeout));
        if (st == MPX_E_TIMEOUT) return std::nullopt;
        detail::check(st);
        return len;
    }

    /// Size of a message kept after MPX_E_BUFFER_TOO_SMALL (0 if none is pending).
    std::size_t pending_size() const {
        std::size_t len = 0;
        return mpx_conn_recv(h_.get(), nullptr, 0, &len, 0) == MPX_E_BUFFER_TOO_SMALL ? len : 0;
    }

    /// Whether something can be received without waiting for its first byte (or the peer
    /// closed). Waits up to `timeout` (default: just look).
    template <class Rep = std::int64_t, class Period = std::nano>
    bool poll(std::chrono::duration<Rep, Period> timeout = std::chrono::nanoseconds(0)) const {
        bool ready = false;
        detail::check(mpx_conn_poll(h_.get(), detail::timeout_ns(timeout), &ready));
        return ready;
    }

    /// Waits up to `timeout` until some of `conns` can receive; their indices (empty when the
    /// time ran out). Like Python's multiprocessing.connection.wait.
    template <class Rep = std::int64_t, class Period = std::nano>
    static std::vector<std::size_t> wait(const std::vector<const connection*>& conns, std::chrono::duration<Rep, Period> timeout = forever) {
        std::vector<const mpx_conn*> hs;
        for (const connection* c : conns) hs.push_back(c ? c->h_.get() : nullptr);
        std::unique_ptr<bool[]> ready(new bool[hs.size() ? hs.size() : 1]());
        std::size_t n = 0;
        detail::check(mpx_conn_wait(hs.data(), hs.size(), detail::timeout_ns(timeout), ready.get(), &n));
        std::vector<std::size_t> out;
        for (std::size_t i = 0; i < hs.size(); i++)
            if (ready[i]) out.push_back(i);
        return out;
    }

    /// Sets the largest incoming message accepted (0: no limit). A larger one throws
    /// MPX_E_TOO_BIG and leaves the connection unusable (MPX_E_BROKEN).
    void set_max_message_size(std::uint64_t max) const { detail::check(mpx_conn_set_max_message_size(h_.get(), max)); }

    /// Sends descriptors (Unix connections; the caller keeps its own). Python receives them
    /// with multiprocessing.reduction.recv_handle / recvfds.
    void send_fds(const std::vector<int>& fds) const { detail::check(mpx_conn_send_fds(h_.get(), fds.data(), fds.size())); }

    /// Receives descriptors (at most `max`; the caller owns and must close them). Throws
    /// MPX_E_STATE if an ordinary message comes first; nullopt when `timeout` runs out.
    template <class Rep = std::int64_t, class Period = std::nano>
    std::optional<std::vector<int>> recv_fds(std::size_t max = MPX_CONN_MAX_FDS, std::chrono::duration<Rep, Period> timeout = forever) const {
        std::vector<int> fds(max ? max : 1, -1);
        std::size_t n = 0;
        mpx_status st = mpx_conn_recv_fds(h_.get(), fds.data(), max, &n, detail::timeout_ns(timeout));
        if (st == MPX_E_TIMEOUT) return std::nullopt;
        detail::check(st);
        fds.resize(n);
        return fds;
    }

    /// Sends a shared-memory buffer (typically shared_memory::anonymous) by its descriptor.
    void send_shm(const shared_memory& shm) const { detail::check(mpx_conn_send_shm(h_.get(), shm.native_handle())); }

    /// Receives a buffer sent with send_shm and opens it (flags: flag::read_only).
    template <class Rep = std::int64_t, class Period = std::nano>
    shared_memory recv_shm(std::uint32_t flags = 0, std::chrono::duration<Rep, Period> timeout = forever) const {
        std::optional<std::vector<int>> fds = recv_fds(1, timeout);
        if (!fds) throw error(MPX_E_TIMEOUT, "recv_shm: no buffer within the timeout");
        int fd = (*fds)[0];
        try {
            shared_memory shm = shared_memory::from_fd(fd, flags);
            ::close(fd);
            return shm;
        } catch (...) {
            ::close(fd);
            throw;
        }
    }

    /// The descriptor (owned by the connection), for poll/epoll; check poll() first, since a
    /// message may already be buffered inside the connection.
    int fileno() const {
        int fd = -1;
        detail::check(mpx_conn_fileno(h_.get(), &fd));
        return fd;
    }

    /// The peer's address ("tcp:127.0.0.1:51234"; "unix:" for an unnamed Unix peer), like
    /// Python's Listener.last_accepted. Throws MPX_E_INVALID for a pipe.
    std::string peer_address() const {
        std::size_t len = 0;
        mpx_status st = mpx_conn_peer_address(h_.get(), nullptr, 0, &len);
        if (st != MPX_E_BUFFER_TOO_SMALL) detail::check(st);
        std::string s(len + 1, '\0');
        detail::check(mpx_conn_peer_address(h_.get(), s.data(), s.size(), &len));
        s.resize(len);
        return s;
    }

    /// MPX_CONN_READABLE | MPX_CONN_WRITABLE | MPX_CONN_UNIX (0 when empty).
    std::uint32_t flags() const noexcept {
        std::uint32_t f = 0;
        return mpx_conn_flags(h_.get(), &f) == MPX_OK ? f : 0;
    }
    bool readable() const noexcept { return (flags() & MPX_CONN_READABLE) != 0; }
    bool writable() const noexcept { return (flags() & MPX_CONN_WRITABLE) != 0; }

    /// Closes now (the destructor does the same). Calling it again does nothing.
    void close() noexcept { h_.reset(); }
    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    mpx_conn* native_handle() const noexcept { return h_.get(); }

private:
    friend class listener;
    friend std::pair<connection, connection> pipe(bool duplex);
    explicit connection(mpx_conn* c) noexcept : h_(c) {}
    detail::handle<mpx_conn, &mpx_conn_close> h_;
};

/// A connected pair, as Python's multiprocessing.Pipe(duplex): duplex over a Unix socketpair,
/// or one way over a pipe (first receives, second sends).
inline std::pair<connection, connection> pipe(bool duplex = true) {
    mpx_conn* a = nullptr;
    mpx_conn* b = nullptr;
    detail::check(mpx_pipe(duplex, &a, &b));
    return {connection(a), connection(b)};
}

/// A listening socket; clients connect with connection::connect (or Python's
/// multiprocessing.connection.Client). Move-only; the destructor closes it and removes its
/// Unix socket path.
class listener {
public:
    listener() noexcept = default;

    /// Listens at `address` (see connection::connect; port 0 or "unix:@" let the kernel choose:
    /// read address()). With `authkey`, clients must pass the handshake. Throws MPX_E_EXISTS
    /// for an address in use, MPX_E_INVALID for a malformed one.
    static listener create(std::string_view address, int backlog = 16, std::optional<std::string_view> authkey = std::nullopt) {
        std::string a = detail::c_string(address, "address");
        mpx_listener* l = nullptr;
        detail::check(mpx_listener_create(a.c_str(), backlog, authkey ? detail::bytes_of(authkey->data()) : nullptr,
                                          authkey ? authkey->size() : 0, &l));
        return listener(l);
    }

    /// Waits for a client (authenticated if the listener has a key). Throws MPX_E_AUTH for a
    /// client that fails the handshake (accept again for the next one).
    connection accept() const { return *accept(forever); }

    /// As accept(), giving up after `timeout` (nullopt).
    template <class Rep, class Period>
    std::optional<connection> accept(std::chrono::duration<Rep, Period> timeout) const {
        mpx_conn* c = nullptr;
        mpx_status st = mpx_listener_accept(h_.get(), detail::timeout_ns(timeout), &c);
        if (st == MPX_E_TIMEOUT) return std::nullopt;
        detail::check(st);
        return connection(c);
    }

    /// The address clients use, with the kernel's choices filled in ("tcp:127.0.0.1:40123").
    std::string address() const {
        std::size_t len = 0;
        mpx_listener_address(h_.get(), nullptr, 0, &len);
        std::string s(len + 1, '\0');
        detail::check(mpx_listener_address(h_.get(), s.data(), s.size(), &len));
        s.resize(len);
        return s;
    }

    /// How long an accepted client has for the handshake (default 30 s; forever for no limit).
    template <class Rep, class Period>
    void set_handshake_timeout(std::chrono::duration<Rep, Period> timeout) const {
        detail::check(mpx_listener_set_handshake_timeout(h_.get(), detail::timeout_ns(timeout)));
    }

    int fileno() const {
        int fd = -1;
        detail::check(mpx_listener_fileno(h_.get(), &fd));
        return fd;
    }

    void close() noexcept { h_.reset(); }
    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    mpx_listener* native_handle() const noexcept { return h_.get(); }

private:
    explicit listener(mpx_listener* l) noexcept : h_(l) {}
    detail::handle<mpx_listener, &mpx_listener_close> h_;
};

}  // namespace mpx

#endif  // MPX_CONN_HPP
