// test_sync.cpp: the C++ sync classes of bindings/cpp/mpx.hpp (mutex/lock, recursive_mutex/rlock,
// semaphore, condition, event, barrier, value<T>, array<T>) with forked processes: standard
// lock guards over process-shared locks, exact counters, the owner-death flag, cross-process
// wakeups, typed values, and the errors of bad use. Built as C++17 and C++20; every wait is
// bounded. Prints one line per check and "test_sync_cpp: N passed, M failed".

#include <mpx.hpp>

#include "../c/testutil_sync.h"
#include "testutil.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;

namespace {

// The longest any single wait may take before it counts as a hang.
constexpr auto WAIT = 20s;

// Runs `f` in a forked child; returns its exit code (or -1000 if it had to be killed).
template <class F>
mpx::process fork_child(F&& f) {
    std::fflush(stdout);
    return mpx::process::fork(std::forward<F>(f));
}

int join(mpx::process& p, std::chrono::seconds limit = 30s) {
    auto code = p.join(limit);
    if (!code) {
        p.kill();
        p.join(10s);
        return -1000;
    }
    return *code;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Static properties: move-only handles; the lock classes meet the standard's requirements.
static_assert(!std::is_copy_constructible_v<mpx::mutex> && std::is_nothrow_move_constructible_v<mpx::mutex>, "mutex is move-only");
static_assert(!std::is_copy_constructible_v<mpx::semaphore> && std::is_nothrow_move_assignable_v<mpx::semaphore>, "semaphore is move-only");
static_assert(!std::is_copy_constructible_v<mpx::value<int>> && std::is_nothrow_move_constructible_v<mpx::value<int>>, "value is move-only");
static_assert(std::is_same_v<mpx::lock, mpx::mutex> && std::is_same_v<mpx::rlock, mpx::recursive_mutex>, "Python's names");
static_assert(std::is_same_v<decltype(std::declval<mpx::mutex&>().try_lock_for(1ms)), bool>, "TimedLockable");
static_assert(std::is_same_v<decltype(std::declval<mpx::mutex&>().acquire(1ms)), mpx::acquire_result>, "acquire result");

void test_mutex_basics() {
    const char* n = t_name("mutex");
    auto a = mpx::lock::create(n);
    auto b = mpx::lock::open(n);
    CHECK(a.valid() && a.name() == n && b.name() == n, "create + open by name");
    CHECK(!a.is_locked(), "free at first");
    {
        std::lock_guard<mpx::lock> g(a);
        CHECK(b.is_locked() && b.is_mine() && !a.owner_died(), "std::lock_guard holds it (seen through another handle)");
        CHECK(!b.try_lock(), "try_lock while held: false");
        auto t = std::chrono::steady_clock::now();
        CHECK(!b.try_lock_for(20ms) && seconds_since(t) >= 0.019, "try_lock_for(20ms) while held waits, then false");
        CHECK(!b.try_lock_for(-5ms), "a negative try_lock_for tries once (not forever)");
        CHECK(b.acquire(0ms) == mpx::acquire_result::timeout, "acquire(0) while held: timeout");
        CHECK(!b.try_lock_until(std::chrono::steady_clock::now() + 5ms), "try_lock_until while held: false");
    }
    CHECK(!a.is_locked(), "the guard released it");
    {
        std::unique_lock<mpx::lock> u(b, std::try_to_lock);
        CHECK(u.owns_lock(), "std::unique_lock(try_to_lock)");
        u.unlock();
        CHECK(!a.is_locked(), "unique_lock::unlock");
        CHECK(u.try_lock_for(10ms), "unique_lock::try_lock_for");
        std::unique_lock<mpx::lock> v(a, std::defer_lock);
        CHECK(!v.try_lock(), "a second unique_lock cannot take it");
    }
    {
        auto c = mpx::lock::anonymous();
        std::scoped_lock both(a, c);
        CHECK(a.is_mine() && c.is_mine(), "std::scoped_lock over two process-shared locks");
    }
    expect_error([&] { a.unlock(); }, MPX_E_STATE, "not held", "unlock when not held");
    CHECK(a.acquire() == mpx::acquire_result::acquired, "acquire() forever: acquired");
    b.unlock();  // any handle, any process may release a Lock (Python's semantics)
    CHECK(!a.is_locked(), "released through another handle");
    expect_error([&] { mpx::lock::create(n); }, MPX_E_EXISTS, "exists", "create an existing name");
    expect_error([&] { mpx::semaphore::open(n); }, MPX_E_KIND, "not a semaphore", "open a lock as a semaphore");
    expect_error([&] { mpx::rlock::open(n); }, MPX_E_KIND, "rlock", "open a lock as an rlock");
    expect_error([&] { mpx::value<int>::open(n); }, MPX_E_KIND, "value", "open a lock as a value");
    expect_error([&] { mpx::lock::open("bad/name"); }, MPX_E_INVALID, "not allowed", "bad name");
    expect_error([&] { mpx::lock::open(std::string("x\0y", 3)); }, MPX_E_INVALID, "NUL", "name with a NUL byte");
    auto fd_lock = mpx::lock::from_fd(a.fd());
    CHECK(fd_lock.try_lock() && a.is_locked(), "from_fd opens the same lock");
    fd_lock.unlock();
    mpx::lock moved = std::move(a);
    CHECK(!a.valid() && moved.valid() && moved.name() == n, "move leaves the source empty");
    expect_error([&] { a.lock(); }, MPX_E_INVALID, "NULL", "lock() on a moved-from object");
    CHECK(a.name().empty() && !a.is_locked(), "getters on a moved-from object are neutral");
    mpx::lock::unlink(n);
    expect_error([&] { mpx::lock::open(n); }, MPX_E_NOT_FOUND, "no such object", "open after unlink");
    expect_error([&] { mpx::lock::unlink(n); }, MPX_E_NOT_FOUND, "no such object", "unlink twice");
}

void test_mutex_counter() {
    auto l = mpx::lock::anonymous();
    auto counter = mpx::array<long>::anonymous(1);
    const int N = 100000;
    auto body = [&] {
        for (int i = 0; i < N; i++) {
            std::lock_guard<mpx::lock> g(l);
            counter[0] = counter[0] + 1;  // plain read-modify-write: only the lock makes it exact
        }
        return 0;
    };
    auto p1 = fork_child(body);
    auto p2 = fork_child(body);
    int c1 = join(p1, 120s), c2 = join(p2, 120s);
    CHECK(c1 == 0 && c2 == 0, "two processes x %d increments under std::lock_guard<mpx::lock>", N);
    CHECK(counter.get(0) == 2L * N, "counter exact: %ld", counter.get(0));
}

void test_owner_died() {
    auto l = mpx::lock::anonymous();
    auto p = fork_child([&] { return l.try_lock() ? 0 : 1; });  // exits holding it
    CHECK(join(p) == 0, "child took the lock and exited");
    auto t = std::chrono::steady_clock::now();
    {
        std::unique_lock<mpx::lock> g(l, std::defer_lock);
        CHECK(g.try_lock_for(WAIT), "unique_lock::try_lock_for takes a dead holder's lock");
        CHECK(l.owner_died() && l.is_mine(), "owner_died() is set and the lock is held (%.1f ms)", seconds_since(t) * 1e3);
    }
    {
        std::lock_guard<mpx::lock> g(l);
        CHECK(!l.owner_died(), "the next clean acquisition clears owner_died()");
    }
    auto p2 = fork_child([&] { return l.try_lock() ? 0 : 1; });
    CHECK(join(p2) == 0, "child took it again and exited");
    CHECK(l.acquire(WAIT) == mpx::acquire_result::owner_died && l.owner_died(), "acquire() returns acquire_result::owner_died");
    l.unlock();

    // A recursive lock, and a value's embedded lock, report it the same way.
    auto r = mpx::rlock::anonymous();
    auto p3 = fork_child([&] { return r.try_lock() && r.try_lock() ? 0 : 1; });
    CHECK(join(p3) == 0, "child took an rlock twice and exited");
    {
        std::lock_guard<mpx::rlock> g(r);
        CHECK(r.owner_died() && r.depth() == 1, "rlock: owner_died() with depth 1");
    }
    CHECK(!r.is_locked(), "rlock free again");
    auto v = mpx::value<int>::anonymous(0, mpx::flag::value_lock);
    auto p4 = fork_child([&] { return v.try_lock() ? 0 : 1; });
    CHECK(join(p4) == 0, "child took a value's lock and exited");
    CHECK(v.try_lock_for(WAIT) && v.owner_died(), "value<int>: owner_died() after taking a dead holder's lock");
    v.unlock();
}

void test_kill_loop() {
    auto l = mpx::lock::anonymous();
    auto counter = mpx::array<long>::anonymous(2);
    int died = 0, failed = 0, rounds = 0;
    auto start = std::chrono::steady_clock::now();
    std::uint64_t seed = static_cast<std::uint64_t>(getpid()) * 2654435761u + 1;
    for (; rounds < 100 && seconds_since(start) < 60; rounds++) {
        auto p = fork_child([&] {
            for (;;) {
                std::lock_guard<mpx::lock> g(l);
                counter[0] = counter[0] + 1;
                counter[1] = counter[0];  // a consistent pair unless killed in between
            }
            return 0;
        });
        ts_sleep_us(static_cast<long>(ts_rand(&seed) % 3000));
        p.kill();
        if (rounds % 2 == 0) join(p);  // otherwise still a zombie while we acquire
        std::unique_lock<mpx::lock> g(l, std::defer_lock);
        if (!g.try_lock_for(5s))
            failed++;
        else if (l.owner_died())
            died++;
        if (g.owns_lock()) counter[1] = counter[0];  // repair, as a real program would
        g = {};
        join(p);
    }
    CHECK(failed == 0, "%d kills of a holder in std::lock_guard: every acquisition succeeded (%d saw owner death, %.2f s)",
          rounds, died, seconds_since(start));
    CHECK(died > 0, "owner death was reported (%d times)", died);
    CHECK(!l.is_locked(), "free at the end");
}

void test_recursive_mutex() {
    const char* n = t_name("rmutex");
    auto r = mpx::rlock::create(n);
    {
        std::lock_guard<mpx::rlock> g1(r);
        std::lock_guard<mpx::rlock> g2(r);
        CHECK(r.depth() == 2, "nested lock_guards: depth 2");
        auto p = fork_child([&] {
            auto o = mpx::rlock::open(n);
            if (o.try_lock()) return 1;  // held by the parent
            try {
                o.unlock();
                return 2;
            } catch (const mpx::error& e) {
                return e.status() == MPX_E_STATE ? 0 : 3;
            }
        });
        CHECK(join(p) == 0, "another process can neither take nor unlock it (MPX_E_STATE)");
    }
    CHECK(!r.is_locked() && r.depth() == 0, "free after the guards");
    expect_error([&] { r.unlock(); }, MPX_E_STATE, "not held", "unlock when not held");
    mpx::rlock::unlink(n);
}

void test_semaphore() {
    const char* n = t_name("sem");
    auto s = mpx::semaphore::create_bounded(n, 2);
    auto o = mpx::semaphore::open(n);
    CHECK(o.value() == 2 && o.max_value() == 2 && !o.is_undo(), "bounded: value 2, max 2");
    expect_error([&] { s.release(); }, MPX_E_STATE, "released too many times", "bounded over-release");
    CHECK(s.value() == 2, "over-release changed nothing");
    s.acquire();
    CHECK(o.try_acquire() && !s.try_acquire(), "two permits, then none");
    auto t = std::chrono::steady_clock::now();
    CHECK(!s.try_acquire_for(20ms) && seconds_since(t) >= 0.019, "try_acquire_for(20ms) waits, then false");
    s.release(2);
    CHECK(s.value() == 2, "release(2)");
    expect_error([&] { mpx::semaphore::anonymous(3, 2); }, MPX_E_INVALID, "exceeds its maximum", "value above its bound");
    expect_error([&] { mpx::lock::open(n); }, MPX_E_KIND, "not a lock", "open a semaphore as a lock");
    mpx::semaphore::unlink(n);

    // Undo: the permits of a process that exits holding them come back.
    auto u = mpx::semaphore::anonymous(3, 0, mpx::flag::sem_undo);
    auto p = fork_child([&] { return u.try_acquire() && u.try_acquire() ? 0 : 1; });
    CHECK(join(p) == 0 && u.value() == 1, "child took two permits of an undo semaphore and exited");
    CHECK(u.is_undo() && u.reclaim() == 2 && u.value() == 3, "reclaim() gave both back");

    // Handoff between two processes.
    auto ping = mpx::semaphore::anonymous(0), pong = mpx::semaphore::anonymous(0);
    const int rounds = 2000;
    auto child = fork_child([&] {
        for (int i = 0; i < rounds; i++) {
            if (!ping.try_acquire_for(WAIT)) return 1;
            pong.release();
        }
        return 0;
    });
    int bad = 0;
    for (int i = 0; i < rounds; i++) {
        ping.release();
        if (!pong.try_acquire_for(WAIT)) bad++;
    }
    CHECK(bad == 0 && join(child) == 0, "%d semaphore handoffs between two processes", rounds);
}

void test_condition() {
    const char* ln = t_name("clock");
    const char* cn = t_name("cond");
    auto l = mpx::lock::create(ln);
    auto c = mpx::condition::create(cn, l);
    auto flag = mpx::array<int>::anonymous(2);
    expect_error([&] { c.notify(); }, MPX_E_STATE, "not held", "notify without the lock");
    expect_error([&] { c.wait(0ms); }, MPX_E_STATE, "not held", "wait without the lock");
    {
        std::unique_lock<mpx::condition> g(c);
        CHECK(l.is_mine(), "unique_lock<condition> takes the condition's lock");
        auto t = std::chrono::steady_clock::now();
        CHECK(c.wait(10ms) == mpx::wait_result::timeout && seconds_since(t) >= 0.009, "wait(10ms): timeout");
        CHECK(l.is_mine(), "lock held again after the timeout");
        CHECK(!c.wait_for(5ms, [&] { return flag.get(0) == 1; }), "wait_for with a false predicate: false");
    }
    std::vector<mpx::process> waiters;
    for (int i = 0; i < 2; i++)
        waiters.push_back(fork_child([&] {
            auto oc = mpx::condition::open(cn);  // finds its lock by name
            std::unique_lock<mpx::condition> g(oc);
            flag.fetch_add(1, 1);  // registered, about to wait
            return oc.wait_for(WAIT, [&] { return flag.get(0) == 1; }) ? 0 : 1;
        }));
    for (int i = 0; i < 2000 && flag.get(1) < 2; i++) ts_sleep_us(5000);
    {
        std::lock_guard<mpx::condition> g(c);
        flag.set(0, 1);
        c.notify_all();
    }
    int ok = 0;
    for (auto& w : waiters) ok += join(w) == 0;
    CHECK(ok == 2, "notify_all woke both waiting processes, which saw the predicate");
    mpx::condition::unlink(cn);
    mpx::lock::unlink(ln);

    // Its own recursive lock.
    auto own = mpx::condition::anonymous();
    std::lock_guard<mpx::condition> g1(own);
    std::lock_guard<mpx::condition> g2(own);
    CHECK(own.wait(1ms) == mpx::wait_result::timeout, "a condition with its own recursive lock, held twice, waits");
}

void test_event() {
    const char* n = t_name("event");
    auto e = mpx::event::create(n);
    CHECK(!e.is_set() && !e.wait(10ms), "not set: wait(10ms) is false");
    auto p = fork_child([&] { return mpx::event::open(n).wait(WAIT) ? 0 : 1; });
    ts_sleep_us(30000);
    e.set();
    CHECK(join(p) == 0, "set() woke a waiting process");
    CHECK(e.is_set() && e.wait(0ms) && e.wait(), "set: wait returns at once");
    e.clear();
    CHECK(!e.is_set(), "clear()");
    mpx::event::unlink(n);
}

void test_barrier() {
    auto b = mpx::barrier::anonymous(3);
    auto sums = mpx::array<long>::anonymous(50);
    CHECK(b.parties() == 3, "3 parties");
    std::vector<mpx::process> ps;
    for (int i = 0; i < 3; i++)
        ps.push_back(fork_child([&] {
            for (int r = 0; r < 50; r++) {
                std::uint32_t idx = b.wait(WAIT);
                if (idx > 2) return 1;
                sums.fetch_add(r, 1L << idx);
            }
            return 0;
        }));
    int ok = 0;
    for (auto& p : ps) ok += join(p) == 0;
    bool all7 = true;
    for (long s : sums) all7 = all7 && s == 7;
    CHECK(ok == 3 && all7, "3 processes x 50 rounds: indices 0, 1, 2 once per round");

    auto w = fork_child([&] {
        try {
            b.wait(WAIT);
            return 1;
        } catch (const mpx::error& e) {
            return e.status() == MPX_E_BROKEN ? 0 : 2;
        }
    });
    for (int i = 0; i < 4000 && b.n_waiting() < 1; i++) ts_sleep_us(5000);
    expect_error([&] { b.wait(20ms); }, MPX_E_TIMEOUT, "broken", "a wait that times out throws MPX_E_TIMEOUT");
    CHECK(join(w) == 0 && b.broken(), "and breaks the barrier for the other waiter (MPX_E_BROKEN)");
    expect_error([&] { b.wait(0ms); }, MPX_E_BROKEN, "broken", "wait on a broken barrier");
    b.reset();
    CHECK(!b.broken(), "reset()");
    b.abort();
    expect_error([&] { b.wait(WAIT); }, MPX_E_BROKEN, "broken", "wait after abort()");
    expect_error([&] { mpx::barrier::anonymous(0); }, MPX_E_INVALID, "parties", "0 parties");
}

void test_values() {
    const char* n = t_name("value");
    auto v = mpx::value<double>::create(n, 2.5);
    CHECK(v.typecode() == 'd' && v.size() == 1 && v.load() == 2.5 && !v.has_lock(), "value<double>: 'd', 2.5, no lock");
    auto o = mpx::value<double>::open(n);
    o.store(-1.25);
    CHECK(v.load() == -1.25 && v.ref() == -1.25, "a store through another handle is seen (load and ref)");
    expect_error([&] { mpx::value<int>::open(n); }, MPX_E_INVALID, "typecode 'd'", "open a 'd' value as value<int>");
    expect_error([&] { mpx::array<float>::open(n); }, MPX_E_INVALID, "typecode 'd'", "open a 'd' value as array<float>");
    expect_error([&] { v.lock(); }, MPX_E_UNSUPPORTED, "lock", "lock() on a value created without flag::value_lock");
    mpx::value<double>::unlink(n);

    const char* qn = t_name("qvalue");
    auto q = mpx::value<long long>::create(qn, 40, mpx::flag::value_lock);
    auto ql = mpx::value<std::int64_t>::open(qn);  // int64_t is long: opens a 'q' too
    CHECK(q.typecode() == 'q' && ql.load() == 40 && ql.has_lock(), "value<int64_t> opens a 'q' value");
    const int N = 20000;
    auto phase = mpx::barrier::anonymous(2);
    auto body = [&] {
        for (int i = 0; i < N; i++) q.fetch_add(1);
        // Lock-free adds and plain increments under the lock must not overlap.
        phase.wait(WAIT);
        for (int i = 0; i < N; i++) {
            std::lock_guard<mpx::value<long long>> g(q);
            q.ref() = q.ref() + 1;
        }
        return 0;
    };
    auto p1 = fork_child(body), p2 = fork_child(body);
    CHECK(join(p1, 120s) == 0 && join(p2, 120s) == 0 && q.load() == 40 + 4 * N,
          "two processes: fetch_add and increments under the value's lock are exact (%lld)", q.load());
    expect_error([&] { mpx::array<long long>::open(qn).get(1); }, MPX_E_INVALID, "out of range", "get past the end");
    mpx::value<long long>::unlink(qn);

    const char* an = t_name("array");
    std::vector<int> init{1, 2, 3, 4, 5};
    auto a = mpx::array<int>::create(an, mpx::span<const int>(init.data(), init.size()));
    CHECK(a.size() == 5 && a.to_vector() == init && a.typecode() == 'i', "array<int> from a span");
    a.set(4, 50);
    a[0] = 10;
    std::vector<int> two{20, 30};
    a.write(1, mpx::span<const int>(two.data(), two.size()));
    int sum = 0;
    for (int x : a) sum += x;
    CHECK(a.to_vector() == std::vector<int>({10, 20, 30, 4, 50}) && sum == 114, "set, operator[], write, iteration");
    CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % 64 == 0 && a.elements().size() == 5, "elements() is 64-byte aligned, 5 long");
    expect_error([&] { mpx::value<int>::open(an); }, MPX_E_INVALID, "array of 5", "open a 5-element array as a value");
    expect_error([&] { a.write(4, mpx::span<const int>(two.data(), two.size())); }, MPX_E_INVALID, "", "write past the end");
    mpx::array<int>::unlink(an);
    auto e = mpx::array<unsigned char>::anonymous(0);
    CHECK(e.size() == 0 && e.to_vector().empty(), "an empty array");
    expect_error([&] { e.fetch_add(0, 1); }, MPX_E_INVALID, "out of range", "fetch_add on an empty array");
}

// fetch_add's inline path (the atomic on the element from mpx_value_int_ptr) and where it
// falls back to the library: out of range, read-only, moved-from and closed handles.
void test_value_fetch_add_inline() {
    auto s = mpx::value<short>::anonymous(32767);
    CHECK(s.fetch_add(1) == 32767 && s.load() == -32768, "value<short>::fetch_add wraps in 16 bits");
    std::int64_t lib = 0;
    CHECK(mpx_value_get_i64(s.native_handle(), 0, &lib) == MPX_OK && lib == -32768, "the library sees the inline add");
    auto u = mpx::array<unsigned char>::anonymous(3);
    CHECK(u.fetch_add(2, 255) == 0 && u.fetch_add(2, 2) == 255 && u.get(2) == 1, "array<unsigned char>::fetch_add wraps in 8 bits");
    expect_error([&] { u.fetch_add(3, 1); }, MPX_E_INVALID, "out of range", "fetch_add past the end (the library's check)");

    const char* n = t_name("fadd");
    auto w = mpx::array<long long>::create(n, 2);
    auto ro = mpx::array<long long>::open(n, mpx::flag::read_only);
    expect_error([&] { ro.fetch_add(0, 1); }, MPX_E_PERMISSION, "read-only", "fetch_add on a read-only handle");
    CHECK(w.fetch_add(1, 7) == 0 && ro.get(1) == 7, "a read-only handle sees the inline add");
    auto moved = std::move(w);
    expect_error([&] { w.fetch_add(1, 1); }, MPX_E_INVALID, "NULL", "fetch_add on a moved-from array");
    CHECK(moved.fetch_add(1, 1) == 7, "the moved-to array adds inline");
    moved.close();
    expect_error([&] { moved.fetch_add(1, 1); }, MPX_E_INVALID, "NULL", "fetch_add on a closed array");

    // Two processes, each with its own mapping of the named array (another address), adding to
    // element 1 inline; the parent reads the total through the library.
    auto p = mpx::array<long long>::open(n);
    const int N = 100000;
    auto body = [&] {
        auto mine = mpx::array<long long>::open(n);
        for (int i = 0; i < N; i++) mine.fetch_add(1, 1);
        return 0;
    };
    auto c1 = fork_child(body), c2 = fork_child(body);
    for (int i = 0; i < N; i++) p.fetch_add(1, 1);
    bool ok = join(c1, 120s) == 0 && join(c2, 120s) == 0;
    CHECK(ok && mpx_value_get_i64(p.native_handle(), 1, &lib) == MPX_OK && lib == 8 + 3 * N,
          "three processes x %d inline fetch_add: exact (%lld)", N, static_cast<long long>(lib));
    mpx::array<long long>::unlink(n);
}

}  // namespace

int main() {
    t_init("test_sync_cpp");
    try {
        test_mutex_basics();
        test_mutex_counter();
        test_owner_died();
        test_kill_loop();
        test_recursive_mutex();
        test_semaphore();
        test_condition();
        test_event();
        test_barrier();
        test_values();
        test_value_fetch_add_inline();
    } catch (const std::exception& e) {
        CHECK(false, "uncaught exception: %s", e.what());
    }
    return t_finish();
}
