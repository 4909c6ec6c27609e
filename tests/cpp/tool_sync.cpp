// tool_sync.cpp: the C++ twin of tests/c/tool_sync.c, written over mpx.hpp's sync classes, for
// cross-language tests (tests/python/test_cross_sync.py). Same output and exit codes:
//
//   tool_sync incr LOCK VALUE N        N times under std::lock_guard<mpx::lock>: element 0 of
//                                      the 8-byte integer value VALUE += 1 (plain read + write)
//   tool_sync incr-vlock VALUE N       the same under the value's embedded lock
//   tool_sync fetch-add VALUE N        N x value<long long>::fetch_add(1) (the inline path)
//   tool_sync barrier NAME ROUNDS MS   wait ROUNDS times at barrier NAME; print "<round> <index>"
//   tool_sync event-set NAME MS        sleep MS ms, set event NAME, print "set"
//   tool_sync event-wait NAME MS       wait at most MS ms for event NAME, print "set"
//   tool_sync value-get NAME           print "<typecode> <count> <v0> ..." (8-byte integers,
//                                      int, double)
//   tool_sync hold LOCK SECONDS        lock LOCK, print "held", sleep, unlock
//
// Exit codes: 0 success; 2 usage; 100 + (-status) for an mpx::error (104 = MPX_E_TIMEOUT, ...).

#include <mpx.hpp>

#include "tool_util.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

const char* const tool::name = "tool_sync (C++)";

namespace {

using tool::number;

int usage() {
    std::cerr << "usage: tool_sync incr LOCK VALUE N | incr-vlock VALUE N | fetch-add VALUE N |\n"
                 "                 barrier NAME ROUNDS MS |\n"
                 "                 event-set NAME MS | event-wait NAME MS | value-get NAME | hold LOCK SECONDS\n";
    return 2;
}

// Increments element 0 of `v` n times under `l` (any BasicLockable); reports owner deaths.
template <class L>
int increment(L& l, mpx::value<long long>& v, unsigned long long n) {
    unsigned long long died = 0;
    for (unsigned long long i = 0; i < n; i++) {
        std::lock_guard<L> g(l);
        died += l.owner_died();
        v.ref() = v.ref() + 1;  // plain read-modify-write: only the lock makes it exact
    }
    if (died) std::cerr << "tool_sync (C++): took the lock from a dead holder " << died << " times\n";
    std::printf("done %llu\n", n);
    return 0;
}

int run(int argc, char** argv) {
    if (argc < 3) return usage();
    const std::string cmd = argv[1], name = argv[2];
    if (cmd == "incr" || cmd == "incr-vlock") {
        bool vlock = cmd == "incr-vlock";
        if (argc != (vlock ? 4 : 5)) return usage();
        auto n = number(argv[vlock ? 3 : 4], 1ULL << 40);
        if (!n) return usage();
        auto v = mpx::value<long long>::open(vlock ? name : std::string(argv[3]));
        if (vlock) return increment(v, v, *n);
        auto l = mpx::lock::open(name);
        return increment(l, v, *n);
    }
    if (cmd == "fetch-add") {
        if (argc != 4) return usage();
        auto n = number(argv[3], 1ULL << 40);
        if (!n) return usage();
        auto v = mpx::value<long long>::open(name);
        for (unsigned long long i = 0; i < *n; i++) v.fetch_add(1);
        std::printf("done %llu\n", *n);
        return 0;
    }
    if (cmd == "barrier") {
        if (argc != 5) return usage();
        auto rounds = number(argv[3], 1000000);
        auto ms = number(argv[4], 3600000);
        if (!rounds || !ms) return usage();
        auto b = mpx::barrier::open(name);
        for (unsigned long long r = 0; r < *rounds; r++) {
            std::uint32_t idx = b.wait(std::chrono::milliseconds(*ms));
            std::printf("%llu %u\n", r, idx);
        }
        return 0;
    }
    if (cmd == "event-set" || cmd == "event-wait") {
        if (argc != 4) return usage();
        auto ms = number(argv[3], 3600000);
        if (!ms) return usage();
        auto e = mpx::event::open(name);
        if (cmd == "event-set") {
            std::this_thread::sleep_for(std::chrono::milliseconds(*ms));
            e.set();
        } else if (!e.wait(std::chrono::milliseconds(*ms))) {
            std::cerr << "tool_sync (C++): event '" << name << "' not set in " << *ms << " ms\n";
            return 100 - MPX_E_TIMEOUT;
        }
        std::printf("set\n");
        return 0;
    }
    if (cmd == "value-get") {
        if (argc != 3) return usage();
        // Open as the type the typecode names (mpx::value<T>::open checks it).
        mpx_value* probe = nullptr;
        mpx::detail::check(mpx_value_open(name.c_str(), MPX_F_READ_ONLY, &probe));
        char tc = mpx_value_typecode(probe);
        mpx_value_close(probe);
        std::printf("%c", tc);
        if (tc == 'd') {
            auto a = mpx::array<double>::open(name, mpx::flag::read_only);
            std::printf(" %zu", a.size());
            for (std::size_t i = 0; i < a.size(); i++) std::printf(" %.17g", a.get(i));
        } else if (tc == 'i') {
            auto a = mpx::array<int>::open(name, mpx::flag::read_only);
            std::printf(" %zu", a.size());
            for (std::size_t i = 0; i < a.size(); i++) std::printf(" %d", a.get(i));
        } else {
            auto a = mpx::array<long long>::open(name, mpx::flag::read_only);
            std::printf(" %zu", a.size());
            for (std::size_t i = 0; i < a.size(); i++) std::printf(" %lld", a.get(i));
        }
        std::printf("\n");
        return 0;
    }
    if (cmd == "hold") {
        if (argc != 4) return usage();
        auto secs = number(argv[3], 86400);
        if (!secs) return usage();
        auto l = mpx::lock::open(name);
        std::lock_guard<mpx::lock> g(l);
        std::printf("held\n");
        std::fflush(stdout);
        std::this_thread::sleep_for(std::chrono::seconds(*secs));
        return 0;
    }
    return usage();
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const mpx::error& e) {
        std::cerr << "tool_sync (C++): " << e.status_name() << ": " << e.what() << "\n";
        return 100 - e.status();
    }
}
