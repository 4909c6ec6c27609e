// test_queue.cpp: mpx::queue (bindings/cpp/mpx.hpp) with real processes.
// Built twice by the Makefile, as C++17 and C++20; both run.
// Prints one line per check and "test_queue_cpp: N passed, M failed"; exits non-zero on failure.

#include <mpx.hpp>

#include "testutil.hpp"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;

static_assert(!std::is_copy_constructible_v<mpx::queue> && std::is_nothrow_move_constructible_v<mpx::queue>, "queue is move-only");
static_assert(!std::is_copy_constructible_v<mpx::queue::reservation> && std::is_nothrow_move_constructible_v<mpx::queue::reservation>,
              "reservation is move-only");
static_assert(!std::is_copy_constructible_v<mpx::queue::read_view> && std::is_nothrow_move_assignable_v<mpx::queue::read_view>,
              "read_view is move-only");

std::string str(const std::vector<std::byte>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size()); }
std::string str(mpx::span<const std::byte> v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size()); }

void test_basics() {
    const std::string name = t_name("basic");
    auto q = mpx::queue::create(name, 1000);
    CHECK(q.valid() && q.name() == name && q.capacity() == 4096 && q.max_message() == 4088, "create: capacity %zu", q.capacity());
    CHECK(q.get_variant() == mpx::queue::variant::plain && q.empty() && !q.full(), "a plain, empty queue");
    q.put(std::string_view("hello"));
    std::vector<std::byte> bytes{std::byte{1}, std::byte{2}, std::byte{3}};
    q.put(mpx::span<const std::byte>(bytes.data(), bytes.size()));
    CHECK(q.qsize() == 2, "qsize 2");
    auto other = mpx::queue::open(name);
    CHECK(str(other.get()) == "hello", "get() through a second handle");
    CHECK(other.get() == bytes, "bytes come back as they went");
    CHECK(!q.get(0ms).has_value() && !q.try_get().has_value(), "get(0ms) / try_get() on empty: nullopt");
    auto t0 = std::chrono::steady_clock::now();
    CHECK(!q.get(20ms).has_value() && std::chrono::steady_clock::now() - t0 >= 20ms, "get(20ms) waits, then nullopt");

    // A 3000-byte message round trip; get() grows its buffer as needed.
    std::string big(3000, 'z');
    CHECK(q.put(big, 1s), "put(msg, 1s)");
    CHECK(str(q.get()) == big, "a 3000-byte message");
    std::byte small[4];
    q.put(std::string_view("too long"));
    expect_error([&] { q.get_into(mpx::span<std::byte>(small, 4)); }, MPX_E_BUFFER_TOO_SMALL, "8 bytes", "get_into a 4-byte buffer");
    std::byte fits[16];
    auto n = q.get_into(mpx::span<std::byte>(fits, 16), 0ms);
    CHECK(n && *n == 8, "get_into a 16-byte buffer: 8 bytes");

    // Batches.
    std::vector<std::string> batch{"one", "two", "three", ""};
    CHECK(q.put_many(batch), "put_many of 4 strings");
    auto got = q.get_many(3);
    CHECK(got.size() == 3 && str(got[0]) == "one" && str(got[2]) == "three", "get_many(3)");
    got = q.get_many(10, 0ms);
    CHECK(got.size() == 1 && got[0].empty(), "the empty message");
    CHECK(q.get_many(10, 0ms).empty(), "get_many on empty: no messages");

    // Zero-copy.
    {
        auto r = q.reserve(100);
        CHECK(r && r.data().size() == 100 && reinterpret_cast<std::uintptr_t>(r.data().data()) % 8 == 0, "reserve(100)");
        std::memcpy(r.data().data(), "in place", 8);
        expect_error([&] { q.put(std::string_view("x")); }, MPX_E_STATE, "reservation", "put while holding a reservation");
        r.commit(8);
        CHECK(!r, "committed");
        auto r2 = q.reserve(10, 0ms);
        CHECK(r2.has_value(), "reserve(10, 0ms)");
    }  // r2 aborted here
    CHECK(q.qsize() == 1, "only the committed message is queued");
    {
        auto v = q.read();
        CHECK(str(v.data()) == "in place" && v.size() == 8, "read() sees it in place");
    }  // left in the queue
    CHECK(q.qsize() == 1, "a read_view dropped without commit leaves the message");
    auto v = q.read(1s);
    CHECK(v.has_value(), "read(1s)");
    v->commit();
    CHECK(q.empty(), "commit() removed it");
    expect_error([&] { v->commit(); }, MPX_E_STATE, "ended", "commit twice");

    // Moves.
    mpx::queue moved(std::move(q));
    CHECK(!q && moved && moved.name() == name, "a moved-from queue is empty");
    expect_error([&] { q.put(std::string_view("x")); }, MPX_E_INVALID, "NULL", "put on a moved-from queue");
    CHECK(q.qsize() == 0 && q.capacity() == 0 && q.name().empty(), "its accessors are neutral");
    moved.unlink();
    CHECK(!t_exists(name.c_str()), "unlink()");
}

void test_limits_and_errors() {
    auto q = mpx::queue::anonymous(100, 2);
    CHECK(q.try_put(std::string_view("a")) && q.try_put(std::string_view("b")) && !q.try_put(std::string_view("c")),
          "a limit of 2 messages: the third try_put is false");
    CHECK(q.full() && !q.put(std::string_view("c"), 10ms), "full; put(msg, 10ms) is false");
    std::vector<std::string> three{"1", "2", "3"};
    expect_error([&] { q.put_many(three); }, MPX_E_TOO_BIG, "limit", "a batch over the limit");
    std::string huge(5000, 'x');
    expect_error([&] { q.put(huge); }, MPX_E_TOO_BIG, "can never fit", "a message over the capacity");
    expect_error([&] { mpx::queue::anonymous(0); }, MPX_E_INVALID, "capacity 0", "capacity 0");
    expect_error([&] { mpx::queue::anonymous(64, 3, mpx::queue::variant::simple); }, MPX_E_INVALID, "simple", "simple with a limit");
    expect_error([&] { mpx::queue::open(t_name("missing")); }, MPX_E_NOT_FOUND, "no such object", "open a missing name");
    const std::string shm_name = t_name("shm");
    auto shm = mpx::shared_memory::create(shm_name, 64);
    expect_error([&] { mpx::queue::open(shm_name); }, MPX_E_KIND, "not a queue", "open a buffer as a queue");
    expect_error([&] { q.task_done(); }, MPX_E_UNSUPPORTED, "joinable", "task_done on a plain queue");
    q.shutdown();
    CHECK(q.is_shutdown(), "shutdown()");
    expect_error([&] { q.put(std::string_view("x")); }, MPX_E_CLOSED, "shut down", "put after shutdown");
    CHECK(str(q.get()) == "a" && str(q.get()) == "b", "what was queued is still delivered");
    expect_error([&] { q.get(); }, MPX_E_CLOSED, "shut down", "then get throws MPX_E_CLOSED");
}

// Producers and consumers in forked processes (mpx::process::fork): each message once, in order
// per producer.
void test_processes() {
    const std::string name = t_name("mpmc");
    auto q = mpx::queue::create(name, 8192);
    const int per = 3000;
    std::vector<mpx::process> kids;
    for (int p = 0; p < 2; p++) {
        kids.push_back(mpx::process::fork([name, p, per] {
            auto q = mpx::queue::open(name);
            for (int i = 0; i < per; i++) {
                std::string m = std::to_string(p) + ":" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 300), '.');
                if (i % 4 == 3) {
                    std::vector<std::string> b{m};
                    q.put_many(b);
                } else {
                    q.put(m);
                }
            }
            return 0;
        }));
    }
    // Two consumers write "p:i" lines to a pipe; the parent checks them.
    int fds[2];
    REQUIRE(pipe(fds) == 0, "pipe");
    for (int c = 0; c < 2; c++) {
        kids.push_back(mpx::process::fork([name, fds] {
            close(fds[0]);
            auto q = mpx::queue::open(name);
            int last[2] = {-1, -1};
            try {
                for (int round = 0;; round++) {
                    std::vector<std::vector<std::byte>> ms;
                    if (round % 3 == 0) {
                        auto v = q.read();
                        ms.emplace_back(v.data().begin(), v.data().end());
                        v.commit();
                    } else {
                        ms = q.get_many(static_cast<std::size_t>(1 + round % 5));
                    }
                    for (auto& m : ms) {
                        std::string s = str(m);
                        int p = std::stoi(s.substr(0, s.find(':')));
                        int i = std::stoi(s.substr(s.find(':') + 1));
                        if (p < 0 || p > 1 || i <= last[p]) return 3;
                        last[p] = i;
                        std::int32_t pair[2] = {p, i};
                        if (write(fds[1], pair, sizeof pair) != sizeof pair) return 4;
                    }
                }
            } catch (const mpx::error& e) {
                return e.status() == MPX_E_CLOSED ? 0 : 5;
            }
        }));
    }
    close(fds[1]);
    std::set<std::pair<int, int>> seen;
    int total = 0;
    std::int32_t pair[2];
    while (total < 2 * per && t_read1(fds[0], reinterpret_cast<char*>(pair), 20)) {
        if (read(fds[0], reinterpret_cast<char*>(pair) + 1, sizeof pair - 1) != sizeof pair - 1) break;
        seen.insert({pair[0], pair[1]});
        total++;
    }
    CHECK(total == 2 * per && seen.size() == static_cast<std::size_t>(2 * per), "%d messages received, %zu distinct", total,
          seen.size());
    for (int p = 0; p < 2; p++) {
        auto code = kids[static_cast<std::size_t>(p)].join(20s);
        CHECK(code && *code == 0, "producer %d finished", p);
    }
    CHECK(q.empty(), "drained");
    q.shutdown();
    for (int c = 0; c < 2; c++) {
        auto code = kids[static_cast<std::size_t>(2 + c)].join(20s);
        CHECK(code && *code == 0, "consumer %d saw every message in order, then MPX_E_CLOSED (exit %d)", c, code ? *code : -1);
    }
    close(fds[0]);
}

void test_joinable_and_kills() {
    auto q = mpx::queue::anonymous(4096, 0, mpx::queue::variant::joinable);
    CHECK(q.get_variant() == mpx::queue::variant::joinable, "a joinable queue");
    for (int i = 0; i < 5; i++) q.put(std::string_view("task"));
    CHECK(q.unfinished() == 5 && !q.join(0ms), "5 unfinished, join(0ms) is false");
    auto worker = mpx::process::fork([&q] {
        for (int i = 0; i < 5; i++) {
            q.get();
            q.task_done();
        }
        try {
            q.task_done();
        } catch (const mpx::error& e) {
            return e.status() == MPX_E_STATE ? 0 : 2;
        }
        return 1;
    });
    CHECK(q.join(20s), "join() returns when a worker process marked all done");
    auto code = worker.join(20s);
    CHECK(code && *code == 0, "one task_done too many throws MPX_E_STATE");

    // A reader killed inside an in-place read leaves its message for the next consumer.
    auto k = mpx::queue::anonymous(4096);
    k.put(std::string_view("survivor"));
    int fds[2];
    REQUIRE(pipe(fds) == 0, "pipe");
    auto reader = mpx::process::fork([&k, fds] {
        auto v = k.read();
        if (write(fds[1], "r", 1) != 1) return 1;
        pause();
        return 0;
    });
    char c;
    CHECK(t_read1(fds[0], &c, 20), "the child reads in place");
    reader.kill();
    auto rc = reader.join(20s);
    CHECK(rc && *rc == -SIGKILL, "and is killed");
    auto m = k.get(20s);
    CHECK(m && str(*m) == "survivor" && k.recoveries() == 1, "the message goes to the next consumer (one recovery)");
    close(fds[0]);
    close(fds[1]);
}

}  // namespace

int main() {
    t_init("test_queue_cpp");
    try {
        test_basics();
        test_limits_and_errors();
        test_processes();
        test_joinable_and_kills();
    } catch (const mpx::error& e) {
        CHECK(false, "unexpected mpx::error %s: %s", e.status_name(), e.what());
    }
    return t_finish();
}
