// tool_shm.cpp: the C++ twin of tests/c/tool_shm.c, written over mpx.hpp, for cross-language
// tests (tests/python/test_cross_shm.py). Same commands, pattern, checksum and exit codes:
//
//   tool_shm create NAME SIZE SEED   create NAME with SIZE bytes filled with pattern SEED (kept)
//   tool_shm fill NAME SEED          open NAME and fill all of it with pattern SEED
//   tool_shm verify NAME SEED        open NAME and check every byte against pattern SEED
//   tool_shm read NAME               print "<size> <fnv1a32 as 8 hex digits>" of the bytes
//   tool_shm hold NAME SECONDS       open NAME, print "holding NAME", sleep, close
//   tool_shm unlink NAME             remove NAME
//
// Pattern SEED (0..255): byte i = (i * 31 + SEED) mod 256. Exit codes: 0 success; 1 verify
// mismatch; 2 usage; 100 + (-status) when an mpx call fails (102 = MPX_E_NOT_FOUND, ...).

#include <mpx.hpp>

#include "tool_util.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

const char* const tool::name = "tool_shm (C++)";

namespace {

using tool::number;

int usage() {
    std::cerr << "usage: tool_shm create NAME SIZE SEED | fill NAME SEED | verify NAME SEED | read NAME |\n"
                 "                hold NAME SECONDS | unlink NAME\n";
    return 2;
}

using tool::pattern;

void fill(mpx::span<std::uint8_t> bytes, unsigned seed) {
    for (std::size_t i = 0; i < bytes.size(); i++) bytes[i] = pattern(i, seed);
}

int run(int argc, char** argv) {
    if (argc < 3) return usage();
    const std::string cmd = argv[1], name = argv[2];
    if (cmd == "create") {
        if (argc != 5) return usage();
        auto size = number(argv[3], SIZE_MAX);
        auto seed = number(argv[4], 255);
        if (!size || !seed) return usage();
        auto shm = mpx::shared_memory::create(name, *size);
        fill(shm.as<std::uint8_t>(), static_cast<unsigned>(*seed));
        std::cerr << "tool_shm (C++): created '" << name << "', " << *size << " bytes, pattern " << *seed << "\n";
        return 0;  // the destructor closes; the name stays
    }
    if (cmd == "unlink") {
        if (argc != 3) return usage();
        mpx::shared_memory::unlink(name);
        return 0;
    }
    if (cmd == "fill" || cmd == "verify") {
        if (argc != 4) return usage();
        auto seed = number(argv[3], 255);
        if (!seed) return usage();
        auto shm = mpx::shared_memory::open(name);
        auto bytes = shm.as<std::uint8_t>();
        unsigned s = static_cast<unsigned>(*seed);
        if (cmd == "fill") {
            fill(bytes, s);
            std::cerr << "tool_shm (C++): filled '" << name << "', " << bytes.size() << " bytes, pattern " << s << "\n";
            return 0;
        }
        std::size_t bad = 0, first = 0;
        for (std::size_t i = 0; i < bytes.size(); i++)
            if (bytes[i] != pattern(i, s) && bad++ == 0) first = i;
        if (bad) {
            std::cerr << "tool_shm (C++): '" << name << "': " << bad << " of " << bytes.size() << " bytes differ from pattern " << s
                      << "; first at " << first << ": " << unsigned(bytes[first]) << ", expected " << unsigned(pattern(first, s)) << "\n";
            return 1;
        }
        std::cerr << "tool_shm (C++): '" << name << "': all " << bytes.size() << " bytes match pattern " << s << "\n";
        return 0;
    }
    if (cmd == "read") {
        if (argc != 3) return usage();
        auto shm = mpx::shared_memory::open(name);
        std::uint32_t h = 0x811c9dc5u;
        for (std::byte b : shm.bytes()) {
            h ^= static_cast<std::uint8_t>(b);
            h *= 0x01000193u;
        }
        std::printf("%zu %08x\n", shm.size(), h);
        return 0;
    }
    if (cmd == "hold") {
        if (argc != 4) return usage();
        auto secs = number(argv[3], 86400);
        if (!secs) return usage();
        auto shm = mpx::shared_memory::open(name);
        std::printf("holding %s\n", name.c_str());
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
        std::cerr << "tool_shm (C++): " << e.status_name() << ": " << e.what() << "\n";
        return 100 - e.status();
    }
}
