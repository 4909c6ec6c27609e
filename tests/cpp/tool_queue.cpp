// tool_queue.cpp: the C++ twin of tests/c/tool_queue.c, written over mpx.hpp, for
// cross-language tests. Same commands, message format, checks, output and exit codes:
//
//   tool_queue create NAME CAPACITY [MAXMSGS [joinable|simple]]
//   tool_queue produce NAME ID COUNT [SIZE]     put "ID:SEQ" (padded to SIZE with "|" + 'x's)
//   tool_queue consume NAME COUNT [--print] [--exact]
//   tool_queue drain NAME | shutdown NAME | unlink NAME
//
// consume checks each message's format and padding and that each producer's SEQs increase
// (with --exact: 0, 1, 2, ...); prints "producer ID: N messages, seq FIRST..LAST" per producer
// and "consumed N messages, checksum XXXXXXXX" (sum of the FNV-1a 32 of every message). Waits
// are bounded by MPX_TOOL_TIMEOUT seconds (default 30). Exit codes: 0 success; 1 a check
// failed; 2 usage; 100 + (-status) when an mpx call fails (107 = MPX_E_CLOSED, ...).

#include <mpx.hpp>

#include "tool_util.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

const char* const tool::name = "tool_queue (C++)";

namespace {

using tool::number;

constexpr unsigned long long max_ids = 65536;

int usage() {
    std::cerr << "usage: tool_queue create NAME CAPACITY [MAXMSGS [joinable|simple]] | produce NAME ID COUNT [SIZE] |\n"
                 "                  consume NAME COUNT [--print] [--exact] | drain NAME | shutdown NAME | unlink NAME\n";
    return 2;
}

std::chrono::seconds wait_limit() {
    const char* t = std::getenv("MPX_TOOL_TIMEOUT");
    long s = t ? std::atol(t) : 30;
    return std::chrono::seconds(s > 0 ? s : 30);
}

// "ID:SEQ" optionally followed by "|" and 'x's.
bool parse(const std::vector<std::byte>& m, unsigned long long& id, unsigned long long& seq) {
    std::string s(reinterpret_cast<const char*>(m.data()), m.size());
    std::size_t bar = s.find('|');
    std::string head = s.substr(0, bar);
    if (bar != std::string::npos && s.find_first_not_of('x', bar + 1) != std::string::npos) return false;
    std::size_t colon = head.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == head.size()) return false;
    for (std::size_t i = 0; i < head.size(); i++)
        if (i != colon && (head[i] < '0' || head[i] > '9')) return false;
    try {
        id = std::stoull(head.substr(0, colon));
        seq = std::stoull(head.substr(colon + 1));
    } catch (const std::exception&) {
        return false;
    }
    return id < max_ids;
}

int produce(mpx::queue& q, unsigned long long id, unsigned long long count, std::size_t size) {
    for (unsigned long long seq = 0; seq < count; seq++) {
        std::string m = std::to_string(id) + ":" + std::to_string(seq);
        if (size > m.size()) m += "|" + std::string(size - m.size() - 1, 'x');
        if (!q.put(m, wait_limit())) throw mpx::error(MPX_E_TIMEOUT, "put: timed out");
    }
    std::cerr << "tool_queue (C++): producer " << id << " put " << count << " messages\n";
    return 0;
}

int consume(mpx::queue& q, unsigned long long count, bool print, bool exact) {
    struct seen {
        unsigned long long n = 0, first = 0;
        long long last = -1;
    };
    std::map<unsigned long long, seen> producers;
    std::uint32_t sum = 0;
    int bad = 0;
    for (unsigned long long k = 0; k < count; k++) {
        auto m = q.get(wait_limit());
        if (!m) {
            std::cerr << "tool_queue (C++): after " << k << " of " << count << " messages\n";
            throw mpx::error(MPX_E_TIMEOUT, "get: timed out");
        }
        unsigned long long id = 0, seq = 0;
        if (!parse(*m, id, seq)) {
            std::cerr << "tool_queue (C++): malformed message " << k << " (" << m->size() << " bytes)\n";
            bad = 1;
            continue;
        }
        seen& p = producers[id];
        if (static_cast<long long>(seq) <= p.last) {
            std::cerr << "tool_queue (C++): producer " << id << ": " << seq << " after " << p.last << " (out of order or twice)\n";
            bad = 1;
        } else if (exact && static_cast<long long>(seq) != p.last + 1) {
            std::cerr << "tool_queue (C++): producer " << id << ": " << seq << " after " << p.last << " (a gap)\n";
            bad = 1;
        }
        if (p.n++ == 0) p.first = seq;
        if (static_cast<long long>(seq) > p.last) p.last = static_cast<long long>(seq);
        sum += tool::fnv1a(m->data(), m->size());
        if (print) std::printf("%llu:%llu\n", id, seq);
    }
    for (const auto& [id, p] : producers) std::printf("producer %llu: %llu messages, seq %llu..%lld\n", id, p.n, p.first, p.last);
    std::printf("consumed %llu messages, checksum %08x\n", count, sum);
    return bad;
}

int run(int argc, char** argv) {
    if (argc < 3) return usage();
    const std::string cmd = argv[1], name = argv[2];
    if (cmd == "create") {
        if (argc < 4 || argc > 6) return usage();
        auto cap = number(argv[3], MPX_QUEUE_MAX_CAPACITY);
        auto max = argc >= 5 ? number(argv[4], UINT32_MAX) : std::optional<unsigned long long>(0);
        if (!cap || !max) return usage();
        auto v = mpx::queue::variant::plain;
        if (argc == 6) {
            if (std::string(argv[5]) == "joinable")
                v = mpx::queue::variant::joinable;
            else if (std::string(argv[5]) == "simple")
                v = mpx::queue::variant::simple;
            else
                return usage();
        }
        auto q = mpx::queue::create(name, *cap, *max, v);
        std::cerr << "tool_queue (C++): created '" << name << "', capacity " << q.capacity() << " bytes\n";
        return 0;
    }
    if (cmd == "unlink") {
        if (argc != 3) return usage();
        mpx::queue::unlink(name);
        return 0;
    }
    if (cmd == "produce") {
        if (argc < 5 || argc > 6) return usage();
        auto id = number(argv[3], max_ids - 1), count = number(argv[4], UINT64_MAX);
        auto size = argc == 6 ? number(argv[5], MPX_QUEUE_MAX_CAPACITY) : std::optional<unsigned long long>(0);
        if (!id || !count || !size) return usage();
        auto q = mpx::queue::open(name);
        return produce(q, *id, *count, static_cast<std::size_t>(*size));
    }
    if (cmd == "consume") {
        if (argc < 4) return usage();
        auto count = number(argv[3], UINT64_MAX);
        if (!count) return usage();
        bool print = false, exact = false;
        for (int i = 4; i < argc; i++) {
            std::string a = argv[i];
            if (a == "--print")
                print = true;
            else if (a == "--exact")
                exact = true;
            else
                return usage();
        }
        auto q = mpx::queue::open(name);
        return consume(q, *count, print, exact);
    }
    if (cmd == "drain" && argc == 3) {
        auto q = mpx::queue::open(name);
        unsigned long long n = 0;
        try {
            while (q.try_get()) n++;
        } catch (const mpx::error& e) {
            if (e.status() != MPX_E_CLOSED) throw;
        }
        std::printf("drained %llu\n", n);
        return 0;
    }
    if (cmd == "shutdown" && argc == 3) {
        mpx::queue::open(name).shutdown();
        return 0;
    }
    return usage();
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const mpx::error& e) {
        std::cerr << "tool_queue (C++): " << e.status_name() << ": " << e.what() << "\n";
        return 100 - e.status();
    }
}
