// test_pool.cpp: mpx::pool and mpx::pool_registry (bindings/cpp/mpx/pool.hpp) with real forked
// workers running C++ lambdas and a C callback.
// Built twice by the Makefile, as C++17 and C++20; both run.
// Results value by value, captured state, ready / wait_any / a timed-out wait, a lambda that
// throws (type, message, traceback arrive), an unknown function, a callback that aborts (only its
// task fails), close / submit / join / terminate, a named pool gone from /dev/shm, map order, move
// semantics and callables kept alive for replacement workers. Every wait is bounded.

#include <mpx.hpp>

#include "testutil.hpp"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
constexpr auto W = 30s;  // every blocking call in the test is bounded by this

static_assert(!std::is_copy_constructible_v<mpx::pool> && std::is_nothrow_move_constructible_v<mpx::pool> &&
                  std::is_nothrow_move_assignable_v<mpx::pool>,
              "pool is move-only");
static_assert(!std::is_copy_constructible_v<mpx::pool_registry> && std::is_nothrow_move_constructible_v<mpx::pool_registry>,
              "pool_registry is move-only");
static_assert(std::is_base_of_v<mpx::error, mpx::task_failed>, "a failed task is an mpx::error");

std::uint64_t u64(mpx::span<const std::byte> b) {
    std::uint64_t x = UINT64_MAX;
    if (b.size() == 8) std::memcpy(&x, b.data(), 8);
    return x;
}
std::uint64_t u64(const std::vector<std::byte>& b) { return u64(mpx::span<const std::byte>(b.data(), b.size())); }
std::vector<std::byte> bytes_of(std::uint64_t x) {
    std::vector<std::byte> b(8);
    std::memcpy(b.data(), &x, 8);
    return b;
}
std::string str(const std::vector<std::byte>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size()); }

// A C callback: adds *(uint64_t *)user.
std::int32_t c_add(void* user, const std::uint8_t* args, std::size_t len, mpx_task_out* out) {
    if (len != 8) return MPX_E_INVALID;
    std::uint64_t x;
    std::memcpy(&x, args, 8);
    x += *static_cast<const std::uint64_t*>(user);
    return mpx_task_out_set(out, reinterpret_cast<const std::uint8_t*>(&x), 8);
}
std::uint64_t add_base = 1000;

mpx::pool_registry registry() {
    mpx::pool_registry reg;
    std::uint64_t offset = 3;  // captured by copy: the workers have it from the fork
    reg.add("square", [](mpx::span<const std::byte> in) {
           if (in.size() != 8) throw mpx::task_error("ValueError", "need 8 bytes");
           std::uint64_t x = u64(in);
           return bytes_of(x * x);
       })
        .add("offset", [offset](mpx::span<const std::byte> in) { return bytes_of(u64(in) + offset); })
        .add("decimal", [](mpx::span<const std::byte> in) { return std::to_string(u64(in) * 2); })
        .add("throw", [](mpx::span<const std::byte> in) -> std::vector<std::byte> {
            throw std::out_of_range("bad index " + std::string(reinterpret_cast<const char*>(in.data()), in.size()));
        })
        .add("custom", [](mpx::span<const std::byte>) -> std::string {
            throw mpx::task_error("KeyError", "no key 'k'", "at custom()", MPX_E_NOT_FOUND);
        })
        .add("nothing", [](mpx::span<const std::byte>) {})
        .add("abort", [](mpx::span<const std::byte>) { std::abort(); })
        .add("block", [](mpx::span<const std::byte>) { sleep(60); })
        .add("pid", [](mpx::span<const std::byte>) { return bytes_of(static_cast<std::uint64_t>(getpid())); })
        .add("add", &c_add, &add_base);
    return reg;
}

mpx::pool make_pool(std::size_t workers, std::uint64_t max_tasks = 0) {
    auto reg = registry();
    return mpx::pool::anonymous(reg, mpx::pool_options().workers(workers).max_tasks_per_child(max_tasks));
}

// Whether every slot has a live worker (idle or busy) with a pid.
bool all_alive(const mpx::pool& p) {
    for (const auto& w : p.workers())
        if (w.pid <= 0 || (w.state != mpx::worker_state::idle && w.state != mpx::worker_state::busy)) return false;
    return true;
}

// Polls (bounded) until all_alive, running a task each round so the owner sees its workers.
bool until_all_alive(mpx::pool& p) {
    for (int i = 0; i < 15000; i++) {
        if (all_alive(p)) return true;
        auto r = p.wait(p.submit("square", bytes_of(1)), W);
        (void)r;
        usleep(2000);
    }
    return false;
}

void test_results() {
    auto p = make_pool(2);
    CHECK(p.valid() && p.size() == 2 && p.name().empty(), "an anonymous pool of 2 workers");
    constexpr std::uint64_t N = 300;
    std::vector<mpx::task> ids;
    for (std::uint64_t i = 0; i < N; i++) ids.push_back(p.submit("square", bytes_of(i)));
    int bad = 0;
    for (std::uint64_t i = 0; i < N; i++) {
        auto r = p.wait(ids[i], W);
        if (!r || u64(*r) != i * i) bad++;
    }
    CHECK(bad == 0, "%llu results of a lambda, value by value: %d wrong", static_cast<unsigned long long>(N), bad);
    expect_error([&] { p.wait(ids[0], W); }, MPX_E_INVALID, "", "a second wait of a consumed task");

    auto r = p.wait(p.submit("offset", bytes_of(10)), W);
    CHECK(r && u64(*r) == 13, "a lambda's captured state reaches the workers (10 + 3)");
    r = p.wait(p.submit("add", bytes_of(5)), W);
    CHECK(r && u64(*r) == 1005, "a C callback with its user pointer (5 + 1000)");
    r = p.wait(p.submit("decimal", bytes_of(21)), W);
    CHECK(r && str(*r) == "42", "a lambda returning std::string");
    r = p.wait(p.submit("nothing"), W);
    CHECK(r && r->empty(), "a void lambda: an empty result");

    // ready, wait_any, a wait that times out.
    mpx::task b = p.submit("block");
    mpx::task c = p.submit("square", bytes_of(9));
    auto got = p.wait_any({b, c}, W);
    CHECK(got && *got == c, "wait_any of a blocked and a quick task: the quick one");
    CHECK(p.ready(c) && !p.ready(b), "ready: the quick one yes, the blocked one no");
    r = p.wait(c, W);
    CHECK(r && u64(*r) == 81, "its result was kept: 81");
    CHECK(!p.wait(b, 0ms).has_value(), "wait(blocked, 0ms): nullopt");
    CHECK(!p.wait_any({b}, 20ms).has_value(), "wait_any({blocked}, 20ms): nullopt");
    expect_error([&] { p.wait_any({}, 0ms); }, MPX_E_INVALID, "", "wait_any of no task");

    std::uint64_t done = 0, failed = 0;
    for (int k = 0; k < 15000; k++) {
        done = failed = 0;
        for (const auto& w : p.workers()) done += w.done, failed += w.failed;
        if (done >= N + 5) break;
        usleep(2000);
    }
    CHECK(done >= N + 5 && failed == 0, "the worker table counts %llu done, %llu failed", static_cast<unsigned long long>(done),
          static_cast<unsigned long long>(failed));
    bool busy = false;
    for (const auto& w : p.workers()) busy = busy || (w.state == mpx::worker_state::busy && w.task == b && w.pid > 0);
    CHECK(busy, "a worker slot shows the blocked task running");
    expect_error([&] { p.worker(2); }, MPX_E_INVALID, "slot 2", "worker slot out of range");
}  // the destructor terminates the pool with its blocked task

void test_errors() {
    auto p = make_pool(2);
    mpx::task t = p.submit("throw", std::string_view("7"));
    try {
        p.wait(t, W);
        CHECK(false, "a throwing lambda's task did not fail");
    } catch (const mpx::task_failed& e) {
        CHECK(e.status() == MPX_E_INVALID && e.type_name() == "std::out_of_range" && e.message() == "bad index 7",
              "a lambda that throws std::out_of_range: %s, type \"%s\", message \"%s\"", e.status_name(), e.type_name().c_str(),
              e.message().c_str());
        CHECK(std::string(e.what()).find("bad index 7") != std::string::npos, "what(): \"%s\"", e.what());
    }
    try {
        p.wait(p.submit("custom"), W);
        CHECK(false, "a task_error did not fail its task");
    } catch (const mpx::task_failed& e) {
        CHECK(e.status() == MPX_E_NOT_FOUND && e.type_name() == "KeyError" && e.message() == "no key 'k'" &&
                  e.traceback() == "at custom()",
              "mpx::task_error: %s, \"%s\", \"%s\", \"%s\"", e.status_name(), e.type_name().c_str(), e.message().c_str(),
              e.traceback().c_str());
    }
    expect_error([&] { p.wait(p.submit("square", std::string_view("abc")), W); }, MPX_E_INVALID, "ValueError: need 8 bytes",
                 "a task_error thrown for a bad argument");

    // An unknown function fails its task only.
    mpx::task u = p.submit("no-such-function", "x");
    mpx::task ok = p.submit("square", bytes_of(5));
    try {
        p.wait(u, W);
        CHECK(false, "an unknown function's task did not fail");
    } catch (const mpx::task_failed& e) {
        CHECK(e.status() == MPX_E_NOT_FOUND && e.type_name() == "UnknownFunction" &&
                  std::string(e.what()).find("no function 'no-such-function'") != std::string::npos,
              "an unknown function: %s, type \"%s\" (\"%s\")", e.status_name(), e.type_name().c_str(), e.what());
    }
    auto r = p.wait(ok, W);
    CHECK(r && u64(*r) == 25, "the next task runs");
    expect_error([&] { p.wait(mpx::task(999999), W); }, MPX_E_INVALID, "", "a wait of an id never given");
    expect_error([&] { p.submit(std::string(256, 'f')); }, MPX_E_INVALID, "256 bytes", "a 256-byte function name");
    expect_error([&] { p.submit(std::string_view("a\0b", 3)); }, MPX_E_INVALID, "NUL", "a name with a NUL byte");
}

void test_abort() {
    auto p = make_pool(2);
    constexpr std::uint64_t N = 60;
    std::vector<mpx::task> ids;
    mpx::task ab;
    for (std::uint64_t i = 0; i < N; i++) {
        ids.push_back(p.submit("square", bytes_of(i)));
        if (i == N / 2) ab = p.submit("abort");
    }
    try {
        p.wait(ab, W);
        CHECK(false, "the aborting task did not fail");
    } catch (const mpx::task_failed& e) {
        CHECK(e.status() == MPX_E_WORKER_DIED && e.type_name() == "WorkerDied" &&
                  std::string(e.what()).find("killed by signal 6") != std::string::npos,
              "a callback calling std::abort(): %s, type \"%s\" (\"%s\")", e.status_name(), e.type_name().c_str(), e.what());
    }
    int bad = 0;
    for (std::uint64_t i = 0; i < N; i++) {
        auto r = p.wait(ids[i], W);
        if (!r || u64(*r) != i * i) bad++;
    }
    CHECK(bad == 0, "the other %llu tasks succeed (%d wrong)", static_cast<unsigned long long>(N), bad);
    CHECK(p.size() == 2 && until_all_alive(p), "the pool keeps 2 live workers");
}

void test_lifecycle() {
    const std::string name = t_name("pool");
    const std::string tn = name + ".tasks", rn = name + ".results";
    {
        auto reg = registry();
        auto p = mpx::pool::create(name, reg, mpx::pool_options().workers(2));
        CHECK(p.name() == name, "named \"%s\"", std::string(p.name()).c_str());
        CHECK(t_exists(name.c_str()) && t_exists(tn.c_str()) && t_exists(rn.c_str()), "its table and queues are in /dev/shm");
        expect_error([&] { mpx::pool::create(name, reg); }, MPX_E_EXISTS, "", "a second pool of the same name");
        expect_error([&] { p.join(W); }, MPX_E_STATE, "before close", "join of an open pool");
        mpx::task t = p.submit("square", bytes_of(3));
        p.close();
        p.close();
        CHECK(true, "close twice (idempotent)");
        expect_error([&] { p.submit("square", bytes_of(1)); }, MPX_E_STATE, "closed", "submit after close");
        CHECK(p.join(W), "join");
        auto r = p.wait(t, W);
        CHECK(r && u64(*r) == 9, "the task queued before close ran; its result waits after join");
        bool exited = true;
        for (const auto& w : p.workers()) exited = exited && w.state == mpx::worker_state::exited;
        CHECK(exited, "every slot exited");
        CHECK(!t_exists(name.c_str()) && !t_exists(tn.c_str()) && !t_exists(rn.c_str()), "nothing of the pool left in /dev/shm");
    }

    // join with a timeout while a task blocks; terminate fails it with MPX_E_CLOSED.
    auto p = make_pool(1);
    mpx::task b = p.submit("block");
    bool running = false;
    for (int k = 0; k < 15000 && !running; k++) {
        p.ready(b);  // collects, so the table moves on
        running = p.worker(0).state == mpx::worker_state::busy && p.worker(0).task == b;
        if (!running) usleep(2000);
    }
    CHECK(running, "the worker runs the blocking task");
    p.close();
    CHECK(!p.join(50ms), "join(50ms) while it runs: false");
    p.terminate();
    p.terminate();
    CHECK(true, "terminate twice (idempotent)");
    try {
        p.wait(b, W);
        CHECK(false, "the blocked task did not fail");
    } catch (const mpx::task_failed& e) {
        CHECK(e.status() == MPX_E_CLOSED && std::string(e.what()).find("terminated") != std::string::npos,
              "the blocked task failed: mpx::task_failed %s (\"%s\")", e.status_name(), e.what());
    }
    CHECK(p.join(W), "join after terminate");
}

void test_map() {
    auto p = make_pool(2);
    std::vector<std::vector<std::byte>> items;
    for (std::uint64_t i = 0; i < 100; i++) items.push_back(bytes_of(i));
    for (std::size_t chunk : {0, 1, 7, 1000}) {
        auto out = p.map("square", items, chunk, W);
        int wrong = out.size() == items.size() ? 0 : 100;
        for (std::size_t i = 0; wrong == 0 && i < out.size(); i++)
            if (u64(out[i]) != i * i) wrong++;
        CHECK(wrong == 0, "map of 100 with chunksize %zu: in order, %d wrong", chunk, wrong);
    }
    auto dec = p.map("decimal", items);
    CHECK(dec.size() == 100 && str(dec[0]) == "0" && str(dec[99]) == "198", "map of a lambda returning strings");
    CHECK(p.map("square", std::vector<std::string>{}).empty(), "an empty map");
    items[13].resize(3);
    expect_error([&] { p.map("square", items, 3, W); }, MPX_E_INVALID, "need 8 bytes", "a map with a bad item throws its error");
}

void test_moves() {
    mpx::pool p;
    {
        // The registry is gone before the pool is used, and every worker is replaced after one
        // task: replacements forked later still find the callables (the pool keeps them).
        auto reg = registry();
        p = mpx::pool::anonymous(reg, mpx::pool_options().workers(2).max_tasks_per_child(1));
    }
    std::vector<std::uint64_t> pids;
    int bad = 0;
    for (std::uint64_t i = 0; i < 12; i++) {
        auto r = p.wait(p.submit("offset", bytes_of(i)), W);
        if (!r || u64(*r) != i + 3) bad++;
        auto q = p.wait(p.submit("pid"), W);
        if (q) pids.push_back(u64(*q));
    }
    std::size_t distinct = 0;
    for (std::size_t i = 0; i < pids.size(); i++) {
        bool seen = false;
        for (std::size_t k = 0; k < i; k++) seen = seen || pids[k] == pids[i];
        if (!seen) distinct++;
    }
    CHECK(bad == 0 && distinct >= 6, "replacement workers run the lambdas after the registry is gone (%zu workers, %d wrong)", distinct,
          bad);

    mpx::pool moved(std::move(p));
    CHECK(!p && moved && moved.size() == 2, "a moved-from pool is empty");
    CHECK(p.size() == 0 && p.name().empty(), "its accessors are neutral");
    expect_error([&] { p.submit("square", bytes_of(1)); }, MPX_E_INVALID, "NULL", "submit to a moved-from pool");
    auto r = moved.wait(moved.submit("square", bytes_of(6)), W);
    CHECK(r && u64(*r) == 36, "the moved-to pool works");

    auto other = make_pool(1);
    mpx::task pending = other.submit("block");
    other = std::move(moved);  // frees (terminates) the other pool with its blocked task
    CHECK(other.size() == 2 && !moved, "move assignment takes the pool");
    r = other.wait(other.submit("square", bytes_of(7)), W);
    CHECK(r && u64(*r) == 49, "and it works");
    (void)pending;
    other.close();
    CHECK(other.join(W), "close and join");
}

}  // namespace

int main() {
    t_init("test_pool_cpp");
    try {
        test_results();
        test_errors();
        test_abort();
        test_lifecycle();
        test_map();
        test_moves();
    } catch (const mpx::error& e) {
        CHECK(false, "unexpected mpx::error %s: %s", e.status_name(), e.what());
    } catch (const std::exception& e) {
        CHECK(false, "unexpected exception: %s", e.what());
    }
    return t_finish();
}
