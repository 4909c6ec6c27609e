// test_conn.cpp: mpx::connection, mpx::listener and mpx::pipe (bindings/cpp/mpx.hpp) with real
// processes: messages of every size both ways, timeouts as nullopt, errors as mpx::error,
// listeners with authkeys over TCP/IPv6/Unix, descriptors and anonymous buffers to a child.
// Prints one line per check and "test_conn_cpp: N passed, M failed".

#include <mpx.hpp>

#include "../c/testutil.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

static_assert(!std::is_copy_constructible_v<mpx::connection>, "connection is move-only");
static_assert(std::is_nothrow_move_constructible_v<mpx::connection>, "moves do not throw");
static_assert(!std::is_copy_constructible_v<mpx::listener>, "listener is move-only");

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    t_fill(reinterpret_cast<uint8_t*>(v.data()), n, seed);
    return v;
}

template <class F>
mpx_status status_of(F&& f) {
    try {
        f();
        return MPX_OK;
    } catch (const mpx::error& e) {
        return e.status();
    }
}

void test_pipe_and_sizes() {
    auto [a, b] = mpx::pipe();
    CHECK(a.readable() && a.writable() && (a.flags() & MPX_CONN_UNIX), "duplex ends read, write and pass fds");
    auto child = mpx::process::fork([&] {
        a.close();
        for (;;) {
            std::vector<std::byte> m;
            try {
                m = b.recv();
            } catch (const mpx::error& e) {
                return e.status() == MPX_E_CLOSED ? 0 : 2;
            }
            std::reverse(m.begin(), m.end());
            b.send(mpx::span<const std::byte>(m.data(), m.size()));
        }
    });
    b.close();
    for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(65536), std::size_t(17) << 20}) {
        auto m = pattern(n, 3);
        a.send(mpx::span<const std::byte>(m.data(), m.size()));
        auto r = a.recv(20s);
        std::reverse(m.begin(), m.end());
        CHECK(r && *r == m, "%zu bytes there and back reversed", n);
    }
    a.send("text");
    CHECK(a.recv_string() == "txet", "strings");
    a.close();
    CHECK(child.join(20s) == 0, "child saw the end");

    auto [r, w] = mpx::pipe(false);
    CHECK(r.readable() && !r.writable() && w.writable() && !w.readable(), "one-way ends");
    CHECK(status_of([&] { r.send("x"); }) == MPX_E_INVALID, "send on the read end throws MPX_E_INVALID");
    w.send("one way");
    CHECK(r.recv_string() == "one way", "one way message");
}

void test_timeouts_buffers_and_errors() {
    auto [a, b] = mpx::pipe();
    CHECK(!b.recv(10ms).has_value(), "recv with a timeout gives nullopt");
    CHECK(!b.poll(), "nothing to poll");
    std::byte small[4];
    CHECK(!b.recv_into(mpx::span<std::byte>(small, 4), 0ns).has_value(), "recv_into with 0 timeout gives nullopt");
    a.send("hello world");
    CHECK(b.poll(5s), "poll sees the message");
    CHECK(status_of([&] { b.recv_into(mpx::span<std::byte>(small, 4)); }) == MPX_E_BUFFER_TOO_SMALL, "too small buffer throws");
    CHECK(b.pending_size() == 11, "pending size 11 (%zu)", b.pending_size());
    std::byte big[32];
    auto n = b.recv_into(mpx::span<std::byte>(big, 32));
    CHECK(n == 11u && std::memcmp(big, "hello world", 11) == 0, "the kept message arrives whole");
    CHECK(b.pending_size() == 0, "nothing pending");

    auto [c, d] = mpx::pipe();
    auto ready = mpx::connection::wait({&b, &d}, 10ms);
    CHECK(ready.empty(), "wait times out empty");
    c.send("d");
    ready = mpx::connection::wait({&b, &d}, 5s);
    CHECK(ready.size() == 1 && ready[0] == 1, "wait reports the second");
    CHECK(d.recv_string() == "d", "and its message");

    d.set_max_message_size(10);
    c.send(std::string(11, 'x'));
    try {
        d.recv();
        CHECK(false, "an oversized message throws");
    } catch (const mpx::error& e) {
        CHECK(e.status() == MPX_E_TOO_BIG && std::strstr(e.what(), "11"), "too big: %s", e.what());
    }
    CHECK(status_of([&] { d.recv(); }) == MPX_E_BROKEN, "then broken");
    a.close();
    CHECK(status_of([&] { b.recv(); }) == MPX_E_CLOSED, "end of stream throws MPX_E_CLOSED");

    mpx::connection empty;
    CHECK(!empty.valid() && empty.flags() == 0, "empty connection");
    CHECK(status_of([&] { empty.send("x"); }) == MPX_E_INVALID, "using an empty connection throws MPX_E_INVALID");
    CHECK(status_of([] { mpx::connection::from_fd(-1); }) == MPX_E_INVALID, "from_fd(-1)");
    CHECK(status_of([] { mpx::listener::create("nowhere"); }) == MPX_E_INVALID, "bad address");
    CHECK(status_of([] { mpx::listener::create(std::string_view("tcp:127.0.0.1:0\0x", 17)); }) == MPX_E_INVALID, "embedded NUL");
}

void test_listeners() {
    for (const char* where : {"tcp:127.0.0.1:0", "tcp:[::1]:0", "unix:@"}) {
        auto l = mpx::listener::create(where, 4, "cpp-key");
        std::string addr = l.address();
        CHECK(addr.size() > 6 && addr != where, "listening at %s", addr.c_str());
        auto client = mpx::process::fork([addr] {
            auto c = mpx::connection::connect(addr, "cpp-key", 20s);
            c.send(c.recv_string() + "!");
            return 0;
        });
        auto c = l.accept(20s);
        CHECK(c.has_value(), "accepted");
        if (c) {
            std::string peer = c->peer_address();
            CHECK(peer.rfind(addr[4] == '[' ? "tcp:[::1]:" : addr.substr(0, 4), 0) == 0, "peer address %s", peer.c_str());
            c->send("ping");
            CHECK(c->recv_string() == "ping!", "exchange over %s", addr.c_str());
        }
        CHECK(client.join(20s) == 0, "client exited 0");
        auto wrong = mpx::process::fork([addr] {
            try {
                mpx::connection::connect(addr, "other", 20s);
            } catch (const mpx::error& e) {
                return e.status() == MPX_E_AUTH ? 0 : 2;
            }
            return 1;
        });
        CHECK(status_of([&] { l.accept(20s); }) == MPX_E_AUTH, "wrong key: accept throws MPX_E_AUTH");
        CHECK(wrong.join(20s) == 0, "wrong key: connect throws MPX_E_AUTH");
        CHECK(!l.accept(10ms).has_value(), "accept timeout gives nullopt");
    }
    auto nokey = mpx::listener::create("tcp:127.0.0.1:0");
    auto c = mpx::connection::connect(nokey.address());
    auto s = nokey.accept();
    c.send("no key");
    CHECK(s.recv_string() == "no key", "no authkey on either side");
    auto [pa, pb] = mpx::pipe(false);
    CHECK(status_of([&] { pa.peer_address(); }) == MPX_E_INVALID, "a pipe has no peer address");
}

void test_fds_and_shm() {
    auto [a, b] = mpx::pipe();
    auto shm = mpx::shared_memory::anonymous(1 << 16);
    auto v = shm.as<std::uint32_t>();
    for (std::size_t i = 0; i < v.size(); i++) v[i] = static_cast<std::uint32_t>(i * 7);
    auto child = mpx::process::fork([&] {
        auto got = b.recv_shm(0, 20s);
        auto w = got.as<std::uint32_t>();
        for (std::size_t i = 0; i < w.size(); i++)
            if (w[i] != i * 7) return 3;
        w[0] = 0xABCD;
        b.send("done");
        return 0;
    });
    a.send_shm(shm);
    CHECK(a.recv_string() == "done", "child mapped the buffer");
    CHECK(v[0] == 0xABCD, "and wrote into the same memory");
    CHECK(child.join(20s) == 0, "child exited 0");

    int p[2];
    REQUIRE(pipe2(p, O_CLOEXEC) == 0, "pipe2");
    a.send_fds({p[1]});
    auto fds = b.recv_fds(4, 5s);
    CHECK(fds && fds->size() == 1, "one descriptor");
    if (fds && fds->size() == 1) {
        CHECK(write((*fds)[0], "q", 1) == 1, "write through it");
        char ch = 0;
        CHECK(t_read1(p[0], &ch, 5) && ch == 'q', "arrives at the original pipe");
        close((*fds)[0]);
    }
    a.send("msg");
    CHECK(status_of([&] { b.recv_fds(4, 5s); }) == MPX_E_STATE, "recv_fds before an ordinary message throws MPX_E_STATE");
    CHECK(b.recv_string() == "msg", "the message is still there");
    close(p[0]);
    close(p[1]);
}

}  // namespace

int main() {
    t_init("test_conn_cpp");
    mpx::check_abi_version();
    try {
        test_pipe_and_sizes();
        test_timeouts_buffers_and_errors();
        test_listeners();
        test_fds_and_shm();
    } catch (const std::exception& e) {
        CHECK(false, "unexpected exception: %s", e.what());
    }
    return t_finish();
}
