// tool_conn.cpp: a C++ peer over mpx connections (mpx::connection, mpx::listener), for the
// cross-language tests of the Python binding (tests/python/test_cross_conn.py).
//
//   tool_conn fd N ACTION...             use the inherited descriptor N (a socket or pipe end,
//                                        e.g. from mpx.spawn_executable(pass_fds=[N]))
//   tool_conn client ADDR KEY ACTION...  connect to ADDR (KEY: the authkey, "-" for none)
//   tool_conn serve ADDR KEY ACTION...   listen at ADDR, print "listening <address>", accept one
//
// ACTION:
//   drive SIZE...       for message i: send pattern(SIZE, i), receive the reply and check it is
//                       pattern(SIZE, i + 1)
//   respond COUNT       COUNT times: receive message i, check it is pattern(len, i), reply with
//                       pattern(len, i + 1)
//   send-shm SIZE SEED  (Unix) make an anonymous shm buffer filled with pattern(SIZE, SEED),
//                       send it, wait for the message "ok", then check the peer set byte 0 to
//                       0xAB (a write through the peer's mapping is visible here)
//   recv-shm SEED       (Unix) receive a shm buffer, check it holds pattern(size, SEED), set
//                       byte 0 to 0xCD and reply "<size> <fnv1a32 as 8 hex digits>"
//   read-eof            receive messages until the end of the stream; print "eof after N"
//
// Pattern: byte j of pattern(n, seed) = (j * 31 + seed) mod 256. Every wait is bounded (30 s).
// Exit codes: 0 success; 1 a check failed; 2 usage; 100 + (-status) when an mpx call fails
// (104 = MPX_E_TIMEOUT, 107 = MPX_E_CLOSED, 115 = MPX_E_AUTH). Messages go to stderr.

#include <mpx.hpp>

#include "tool_util.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

const char* const tool::name = "tool_conn (C++)";

namespace {

using tool::number;

constexpr std::chrono::seconds kTimeout(30);

int usage() {
    std::cerr << "usage: tool_conn fd N | client ADDR KEY | serve ADDR KEY, then\n"
                 "       drive SIZE... | respond COUNT | send-shm SIZE SEED | recv-shm SEED | read-eof\n";
    return 2;
}

using tool::pattern;

std::vector<std::byte> make(std::size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    for (std::size_t j = 0; j < n; j++) v[j] = static_cast<std::byte>(pattern(j, seed));
    return v;
}

bool matches(const std::byte* p, std::size_t n, unsigned seed) {
    for (std::size_t j = 0; j < n; j++) {
        if (static_cast<std::uint8_t>(p[j]) != pattern(j, seed)) {
            std::cerr << "tool_conn (C++): byte " << j << " of " << n << " is " << unsigned(static_cast<std::uint8_t>(p[j]))
                      << ", wanted " << unsigned(pattern(j, seed)) << "\n";
            return false;
        }
    }
    return true;
}

std::vector<std::byte> recv_bounded(const mpx::connection& c) {
    auto m = c.recv(kTimeout);
    if (!m) throw mpx::error(MPX_E_TIMEOUT, "no message within 30 s");
    return std::move(*m);
}

int drive(const mpx::connection& c, int argc, char** argv) {
    for (int i = 0; i < argc; i++) {
        auto size = number(argv[i], 1ULL << 34);
        if (!size) return 2;
        auto m = make(*size, static_cast<unsigned>(i));
        c.send(m.data(), m.size());
        auto r = recv_bounded(c);
        if (r.size() != *size) {
            std::cerr << "tool_conn (C++): reply " << i << " has " << r.size() << " bytes, wanted " << *size << "\n";
            return 1;
        }
        if (!matches(r.data(), r.size(), static_cast<unsigned>(i) + 1)) return 1;
    }
    std::cout << "ok " << argc << std::endl;
    return 0;
}

int respond(const mpx::connection& c, unsigned long long count) {
    for (unsigned long long i = 0; i < count; i++) {
        auto m = recv_bounded(c);
        if (!matches(m.data(), m.size(), static_cast<unsigned>(i))) return 1;
        auto r = make(m.size(), static_cast<unsigned>(i) + 1);
        c.send(r.data(), r.size());
    }
    std::cout << "ok " << count << std::endl;
    return 0;
}

int send_shm(const mpx::connection& c, std::size_t size, unsigned seed) {
    auto shm = mpx::shared_memory::anonymous(size);
    auto bytes = shm.as<std::uint8_t>();
    for (std::size_t j = 0; j < bytes.size(); j++) bytes[j] = pattern(j, seed);
    c.send_shm(shm);
    auto ack = recv_bounded(c);
    if (ack.size() != 2 || static_cast<char>(ack[0]) != 'o' || static_cast<char>(ack[1]) != 'k') {
        std::cerr << "tool_conn (C++): unexpected ack\n";
        return 1;
    }
    if (bytes[0] != 0xAB) {
        std::cerr << "tool_conn (C++): the peer's write (byte 0 = 0xAB) is not visible: " << unsigned(bytes[0]) << "\n";
        return 1;
    }
    std::cout << "ok shm " << size << std::endl;
    return 0;
}

int recv_shm(const mpx::connection& c, unsigned seed) {
    auto shm = c.recv_shm(0, kTimeout);
    auto bytes = shm.as<std::uint8_t>();
    if (!matches(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(), seed)) return 1;
    bytes[0] = 0xCD;
    char reply[64];
    int len = std::snprintf(reply, sizeof reply, "%zu %08x", bytes.size(), tool::fnv1a(bytes.data(), bytes.size()));
    c.send(std::string_view(reply, static_cast<std::size_t>(len)));
    std::cout << "ok recv-shm " << reply << std::endl;
    return 0;
}

int read_eof(const mpx::connection& c) {
    unsigned long long n = 0;
    for (;;) {
        try {
            recv_bounded(c);
            n++;
        } catch (const mpx::error& e) {
            if (e.status() != MPX_E_CLOSED) throw;
            break;
        }
    }
    std::cout << "eof after " << n << std::endl;
    return 0;
}

int act(const mpx::connection& c, int argc, char** argv) {
    if (argc < 1) return usage();
    const std::string action = argv[0];
    if (action == "drive") return drive(c, argc - 1, argv + 1);
    if (action == "respond" && argc == 2) {
        auto n = number(argv[1], 1000000);
        return n ? respond(c, *n) : 2;
    }
    if (action == "send-shm" && argc == 3) {
        auto size = number(argv[1], 1ULL << 32);
        auto seed = number(argv[2], 255);
        return size && seed ? send_shm(c, *size, static_cast<unsigned>(*seed)) : 2;
    }
    if (action == "recv-shm" && argc == 2) {
        auto seed = number(argv[1], 255);
        return seed ? recv_shm(c, static_cast<unsigned>(*seed)) : 2;
    }
    if (action == "read-eof" && argc == 1) return read_eof(c);
    return usage();
}

int run(int argc, char** argv) {
    if (argc < 4) return usage();
    const std::string mode = argv[1];
    if (mode == "fd") {
        auto fd = number(argv[2], 1 << 20);
        if (!fd) return 2;
        auto c = mpx::connection::from_fd(static_cast<int>(*fd));
        return act(c, argc - 3, argv + 3);
    }
    if (argc < 5) return usage();
    const std::string addr = argv[2], key = argv[3];
    std::optional<std::string_view> k;
    if (key != "-") k = key;
    if (mode == "client") {
        auto c = mpx::connection::connect(addr, k, kTimeout);
        return act(c, argc - 4, argv + 4);
    }
    if (mode == "serve") {
        auto l = mpx::listener::create(addr, 4, k);
        std::cout << "listening " << l.address() << std::endl;
        auto c = l.accept(kTimeout);
        l.close();
        if (!c) throw mpx::error(MPX_E_TIMEOUT, "no client within 30 s");
        return act(*c, argc - 4, argv + 4);
    }
    return usage();
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const mpx::error& e) {
        std::cerr << "tool_conn (C++): " << e.what() << "\n";
        return 100 - e.status();
    }
}
