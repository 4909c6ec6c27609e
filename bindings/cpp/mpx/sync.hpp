// mpx/sync.hpp: synchronization: mutex (Lock), recursive_mutex (RLock), semaphore, condition,
// event, barrier (value<T> / array<T> are in value.hpp). Each is a named object (opened by name
// from C, Python, Rust) or anonymous (shared with a child by fd). Timeouts are std::chrono
// durations; mpx::forever (or any negative duration) waits without limit, zero tries once.
//
// What happens when a lock's holder dies (owner death): see lockable.hpp.

#ifndef MPX_SYNC_HPP
#define MPX_SYNC_HPP

#include "core.hpp"
#include "lockable.hpp"

#include <chrono>
#include <cstdint>
#include <string_view>

namespace mpx {

/// Flags of the semaphore (combine with the flag:: values of core.hpp).
namespace flag {
/// Semaphore: give back the permits of processes that die holding them (undo table).
inline constexpr std::uint32_t sem_undo = MPX_SEM_UNDO;
}  // namespace flag

/// How a condition wait ended. The lock is held again in every case.
enum class wait_result {
    notified,    ///< a notify arrived (or a spurious wakeup after a waiter was killed)
    timeout,     ///< the time ran out
    owner_died,  ///< re-acquiring the lock took it from a dead holder (re-check the predicate)
};

/// A lock shared between processes (Python's multiprocessing.Lock; `mpx::lock` is the same
/// class). Not recursive. Any process or thread may unlock it, as in Python. BasicLockable,
/// Lockable and TimedLockable: use it with std::lock_guard, std::unique_lock, std::scoped_lock.
/// Move-only; the destructor closes the handle (never unlocks, never unlinks).
class mutex : public detail::lockable<mutex> {
public:
    mutex() noexcept = default;

    /// Creates a named lock (free). flags: flag::unlink_on_last_close, flag::mode_group,
    /// flag::mode_all. Throws mpx::error (MPX_E_EXISTS, MPX_E_INVALID).
    static mutex create(std::string_view name, std::uint32_t flags = 0) {
        mpx_lock* p = nullptr;
        detail::check(mpx_lock_create(detail::c_string(name, "name").c_str(), flags, &p));
        return mutex(p);
    }
    /// Opens a named lock (MPX_E_NOT_FOUND, MPX_E_KIND for another kind of object).
    static mutex open(std::string_view name, std::uint32_t flags = 0) {
        mpx_lock* p = nullptr;
        detail::check(mpx_lock_open(detail::c_string(name, "name").c_str(), flags, &p));
        return mutex(p);
    }
    /// An anonymous lock; share it with a child by fork or by fd() + from_fd().
    static mutex anonymous() {
        mpx_lock* p = nullptr;
        detail::check(mpx_lock_create_anonymous(&p));
        return mutex(p);
    }
    /// Opens the lock behind an inherited or received fd (duplicated).
    static mutex from_fd(int fd, std::uint32_t flags = 0) {
        mpx_lock* p = nullptr;
        detail::check(mpx_lock_open_fd(fd, flags, &p));
        return mutex(p);
    }
    /// Removes a lock's name.
    static void unlink(std::string_view name) { detail::check(mpx_lock_unlink(detail::c_string(name, "name").c_str())); }

    /// Whether some process holds it now.
    bool is_locked() const noexcept { return mpx_lock_is_locked(h_.get()); }
    /// Whether the calling thread holds it.
    bool is_mine() const noexcept { return mpx_lock_is_mine(h_.get()); }

    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    void close() noexcept { h_.reset(); }
    /// The name ("" if anonymous or closed).
    std::string_view name() const noexcept { return detail::c_name_view(mpx_lock_name(h_.get())); }
    /// The descriptor, owned by this object.
    int fd() const {
        int fd = -1;
        detail::check(mpx_lock_fd(h_.get(), &fd));
        return fd;
    }
    mpx_lock* native_handle() const noexcept { return h_.get(); }

private:
    friend class detail::lockable<mutex>;
    explicit mutex(mpx_lock* p) noexcept : h_(p) {}
    mpx_status acquire_ns(std::int64_t ns) { return mpx_lock_acquire(h_.get(), ns); }
    mpx_status release_now() { return mpx_lock_release(h_.get()); }
    detail::handle<mpx_lock, &mpx_lock_close> h_;
};

/// A recursive lock shared between processes (Python's multiprocessing.RLock; `mpx::rlock` is
/// the same class): owned by one thread of one process, which may lock it again; only the
/// owner unlocks it (mpx::error MPX_E_STATE otherwise). Lockable and TimedLockable.
class recursive_mutex : public detail::lockable<recursive_mutex> {
public:
    recursive_mutex() noexcept = default;

    static recursive_mutex create(std::string_view name, std::uint32_t flags = 0) {
        mpx_rlock* p = nullptr;
        detail::check(mpx_rlock_create(detail::c_string(name, "name").c_str(), flags, &p));
        return recursive_mutex(p);
    }
    static recursive_mutex open(std::string_view name, std::uint32_t flags = 0) {
        mpx_rlock* p = nullptr;
        detail::check(mpx_rlock_open(detail::c_string(name, "name").c_str(), flags, &p));
        return recursive_mutex(p);
    }
    static recursive_mutex anonymous() {
        mpx_rlock* p = nullptr;
        detail::check(mpx_rlock_create_anonymous(&p));
        return recursive_mutex(p);
    }
    static recursive_mutex from_fd(int fd, std::uint32_t flags = 0) {
        mpx_rlock* p = nullptr;
        detail::check(mpx_rlock_open_fd(fd, flags, &p));
        return recursive_mutex(p);
    }
    static void unlink(std::string_view name) { detail::check(mpx_rlock_unlink(detail::c_string(name, "name").c_str())); }

    /// Levels the calling thread holds (0 if it is not the owner).
    std::uint32_t depth() const noexcept { return mpx_rlock_depth(h_.get()); }
    bool is_locked() const noexcept { return mpx_rlock_is_locked(h_.get()); }

    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    void close() noexcept { h_.reset(); }
    std::string_view name() const noexcept { return detail::c_name_view(mpx_rlock_name(h_.get())); }
    int fd() const {
        int fd = -1;
        detail::check(mpx_rlock_fd(h_.get(), &fd));
        return fd;
    }
    mpx_rlock* native_handle() const noexcept { return h_.get(); }

private:
    friend class detail::lockable<recursive_mutex>;
    explicit recursive_mutex(mpx_rlock* p) noexcept : h_(p) {}
    mpx_status acquire_ns(std::int64_t ns) { return mpx_rlock_acquire(h_.get(), ns); }
    mpx_status release_now() { return mpx_rlock_release(h_.get()); }
    detail::handle<mpx_rlock, &mpx_rlock_close> h_;
};

/// Python's names. (A class cannot be called `lock` and have a lock() member, so the classes
/// carry the standard library's names and these aliases the Python ones.)
using lock = mutex;
using rlock = recursive_mutex;

/// A counting semaphore shared between processes (Python's Semaphore / BoundedSemaphore).
/// acquire()/try_acquire()/try_acquire_for()/release() as std::counting_semaphore.
/// A semaphore has no owner; create it with flag::sem_undo to have the permits of a process
/// that dies holding them given back.
class semaphore {
public:
    semaphore() noexcept = default;

    /// A named semaphore with `value` permits (up to MPX_SEM_VALUE_MAX). flags: flag::* and
    /// flag::sem_undo.
    static semaphore create(std::string_view name, std::uint32_t value, std::uint32_t flags = 0) {
        return make_named(name, value, 0, flags);
    }
    /// A named bounded semaphore: releasing past `value` throws MPX_E_STATE and changes nothing.
    static semaphore create_bounded(std::string_view name, std::uint32_t value, std::uint32_t flags = 0) {
        return make_named(name, value, value, flags);
    }
    /// An anonymous semaphore (bounded by `max_value` unless 0). flags: 0 or flag::sem_undo.
    static semaphore anonymous(std::uint32_t value, std::uint32_t max_value = 0, std::uint32_t flags = 0) {
        mpx_semaphore* p = nullptr;
        detail::check(mpx_semaphore_create_anonymous(value, max_value, flags, &p));
        return semaphore(p);
    }
    static semaphore open(std::string_view name, std::uint32_t flags = 0) {
        mpx_semaphore* p = nullptr;
        detail::check(mpx_semaphore_open(detail::c_string(name, "name").c_str(), flags, &p));
        return semaphore(p);
    }
    static semaphore from_fd(int fd, std::uint32_t flags = 0) {
        mpx_semaphore* p = nullptr;
        detail::check(mpx_semaphore_open_fd(fd, flags, &p));
        return semaphore(p);
    }
    static void unlink(std::string_view name) { detail::check(mpx_semaphore_unlink(detail::c_string(name, "name").c_str())); }

    /// Takes a permit, waiting without limit.
    void acquire() { detail::check(mpx_semaphore_acquire(h_.get(), MPX_FOREVER)); }
    /// Takes a permit if one is free now.
    bool try_acquire() { return timed(mpx_semaphore_acquire(h_.get(), 0)); }
    /// Takes a permit, waiting at most `d` (a negative duration tries once).
    template <class Rep, class Period>
    bool try_acquire_for(std::chrono::duration<Rep, Period> d) {
        return timed(mpx_semaphore_acquire(h_.get(), detail::try_timeout_ns(d)));
    }
    template <class Clock, class Duration>
    bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& t) {
        return timed(mpx_semaphore_acquire(h_.get(), detail::until_ns(t)));
    }
    /// Gives back `n` permits (one at a time). Throws MPX_E_STATE past the bound.
    void release(std::uint32_t n = 1) {
        for (std::uint32_t i = 0; i < n; i++) detail::check(mpx_semaphore_release(h_.get()));
    }
    /// Permits available now.
    std::uint32_t value() const noexcept { return mpx_semaphore_get_value(h_.get()); }
    /// The bound, or MPX_SEM_VALUE_MAX.
    std::uint32_t max_value() const noexcept { return mpx_semaphore_max_value(h_.get()); }
    bool is_undo() const noexcept { return mpx_semaphore_is_undo(h_.get()); }
    /// Undo semaphores: gives back the permits of dead processes now; returns how many.
    std::uint32_t reclaim() {
        std::uint32_t n = 0;
        detail::check(mpx_semaphore_reclaim(h_.get(), &n));
        return n;
    }

    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    void close() noexcept { h_.reset(); }
    std::string_view name() const noexcept { return detail::c_name_view(mpx_semaphore_name(h_.get())); }
    int fd() const {
        int fd = -1;
        detail::check(mpx_semaphore_fd(h_.get(), &fd));
        return fd;
    }
    mpx_semaphore* native_handle() const noexcept { return h_.get(); }

private:
    explicit semaphore(mpx_semaphore* p) noexcept : h_(p) {}
    static semaphore make_named(std::string_view name, std::uint32_t value, std::uint32_t max, std::uint32_t flags) {
        mpx_semaphore* p = nullptr;
        detail::check(mpx_semaphore_create(detail::c_string(name, "name").c_str(), value, max, flags, &p));
        return semaphore(p);
    }
    static bool timed(mpx_status s) {
        if (s == MPX_E_TIMEOUT) return false;
        detail::check(s);
        return true;
    }
    detail::handle<mpx_semaphore, &mpx_semaphore_close> h_;
};

/// A condition variable shared between processes (Python's Condition): with its own recursive
/// lock, or using an mpx::mutex / mpx::recursive_mutex. lock()/unlock()/try_lock() take that
/// lock, so std::unique_lock<mpx::condition> works. wait() needs the calling thread to hold the
/// lock (mpx::error MPX_E_STATE otherwise) and holds it again when it returns, in every case.
class condition : public detail::lockable<condition> {
public:
    condition() noexcept = default;

    /// A named condition with its own recursive lock.
    static condition create(std::string_view name, std::uint32_t flags = 0) { return make(name, nullptr, nullptr, flags); }
    /// A named condition using `m` (a named lock is re-opened by name in open()).
    static condition create(std::string_view name, const mutex& m, std::uint32_t flags = 0) {
        return make(name, m.native_handle(), nullptr, flags);
    }
    static condition create(std::string_view name, const recursive_mutex& m, std::uint32_t flags = 0) {
        return make(name, nullptr, m.native_handle(), flags);
    }
    /// Anonymous conditions (share the fd and, for an anonymous lock, the lock too).
    static condition anonymous() { return make_anon(nullptr, nullptr); }
    static condition anonymous(const mutex& m) { return make_anon(m.native_handle(), nullptr); }
    static condition anonymous(const recursive_mutex& m) { return make_anon(nullptr, m.native_handle()); }
    /// Opens a named condition (its named lock is opened by name).
    static condition open(std::string_view name, std::uint32_t flags = 0) { return open_with(name, nullptr, nullptr, flags); }
    /// Opens a named condition created with an anonymous lock: pass that lock.
    static condition open(std::string_view name, const mutex& m, std::uint32_t flags = 0) {
        return open_with(name, m.native_handle(), nullptr, flags);
    }
    static condition open(std::string_view name, const recursive_mutex& m, std::uint32_t flags = 0) {
        return open_with(name, nullptr, m.native_handle(), flags);
    }
    static condition from_fd(int fd, std::uint32_t flags = 0) { return from_fd_with(fd, nullptr, nullptr, flags); }
    static condition from_fd(int fd, const mutex& m, std::uint32_t flags = 0) { return from_fd_with(fd, m.native_handle(), nullptr, flags); }
    static condition from_fd(int fd, const recursive_mutex& m, std::uint32_t flags = 0) {
        return from_fd_with(fd, nullptr, m.native_handle(), flags);
    }
    static void unlink(std::string_view name) { detail::check(mpx_condition_unlink(detail::c_string(name, "name").c_str())); }

    /// Waits for a notify, at most `timeout` (mpx::forever: without limit).
    template <class Rep = std::int64_t, class Period = std::nano>
    wait_result wait(std::chrono::duration<Rep, Period> timeout = forever) {
        mpx_status s = mpx_condition_wait(h_.get(), detail::timeout_ns(timeout));
        if (s == MPX_OK) return wait_result::notified;
        if (s == MPX_E_TIMEOUT) return wait_result::timeout;
        if (s == MPX_E_OWNER_DIED) return wait_result::owner_died;
        detail::check(s);
        return wait_result::timeout;  // not reached
    }

    /// Waits until `pred()` is true (checked first, and after every wakeup), at most
    /// `timeout`; returns the last value of pred(), as std::condition_variable::wait_for.
    template <class Rep, class Period, class Pred>
    bool wait_for(std::chrono::duration<Rep, Period> timeout, Pred pred) {
        if (timeout < timeout.zero()) {
            while (!pred()) wait();
            return true;
        }
        auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
        while (!pred()) {
            auto left = deadline - std::chrono::steady_clock::now();
            if (left <= left.zero()) return pred();
            wait(left);
        }
        return true;
    }

    /// Waits without limit until `pred()` is true.
    template <class Pred>
    void wait(Pred pred) {
        while (!pred()) wait();
    }

    /// Wakes up to `n` waiters (the lock must be held).
    void notify(std::uint32_t n = 1) { detail::check(mpx_condition_notify(h_.get(), n)); }
    /// Wakes every waiter (the lock must be held).
    void notify_all() { detail::check(mpx_condition_notify_all(h_.get())); }

    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    void close() noexcept { h_.reset(); }
    std::string_view name() const noexcept { return detail::c_name_view(mpx_condition_name(h_.get())); }
    int fd() const {
        int fd = -1;
        detail::check(mpx_condition_fd(h_.get(), &fd));
        return fd;
    }
    mpx_condition* native_handle() const noexcept { return h_.get(); }

private:
    friend class detail::lockable<condition>;
    explicit condition(mpx_condition* p) noexcept : h_(p) {}
    static condition make(std::string_view name, mpx_lock* l, mpx_rlock* r, std::uint32_t flags) {
        mpx_condition* p = nullptr;
        detail::check(mpx_condition_create(detail::c_string(name, "name").c_str(), l, r, flags, &p));
        return condition(p);
    }
    static condition make_anon(mpx_lock* l, mpx_rlock* r) {
        mpx_condition* p = nullptr;
        detail::check(mpx_condition_create_anonymous(l, r, &p));
        return condition(p);
    }
    static condition open_with(std::string_view name, mpx_lock* l, mpx_rlock* r, std::uint32_t flags) {
        mpx_condition* p = nullptr;
        detail::check(mpx_condition_open(detail::c_string(name, "name").c_str(), l, r, flags, &p));
        return condition(p);
    }
    static condition from_fd_with(int fd, mpx_lock* l, mpx_rlock* r, std::uint32_t flags) {
        mpx_condition* p = nullptr;
        detail::check(mpx_condition_open_fd(fd, l, r, flags, &p));
        return condition(p);
    }
    mpx_status acquire_ns(std::int64_t ns) { return mpx_condition_acquire(h_.get(), ns); }
    mpx_status release_now() { return mpx_condition_release(h_.get()); }
    detail::handle<mpx_condition, &mpx_condition_close> h_;
};

/// An event flag shared between processes (Python's Event).
class event {
public:
    event() noexcept = default;

    static event create(std::string_view name, std::uint32_t flags = 0) {
        mpx_event* p = nullptr;
        detail::check(mpx_event_create(detail::c_string(name, "name").c_str(), flags, &p));
        return event(p);
    }
    static event open(std::string_view name, std::uint32_t flags = 0) {
        mpx_event* p = nullptr;
        detail::check(mpx_event_open(detail::c_string(name, "name").c_str(), flags, &p));
        return event(p);
    }
    static event anonymous() {
        mpx_event* p = nullptr;
        detail::check(mpx_event_create_anonymous(&p));
        return event(p);
    }
    static event from_fd(int fd, std::uint32_t flags = 0) {
        mpx_event* p = nullptr;
        detail::check(mpx_event_open_fd(fd, flags, &p));
        return event(p);
    }
    static void unlink(std::string_view name) { detail::check(mpx_event_unlink(detail::c_string(name, "name").c_str())); }

    /// Sets the flag and wakes every waiter.
    void set() { detail::check(mpx_event_set(h_.get())); }
    void clear() { detail::check(mpx_event_clear(h_.get())); }
    bool is_set() const noexcept { return mpx_event_is_set(h_.get()); }
    /// Waits until the flag is set, at most `timeout`; returns false if the time ran out.
    template <class Rep = std::int64_t, class Period = std::nano>
    bool wait(std::chrono::duration<Rep, Period> timeout = forever) {
        mpx_status s = mpx_event_wait(h_.get(), detail::timeout_ns(timeout));
        if (s == MPX_E_TIMEOUT) return false;
        detail::check(s);
        return true;
    }

    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    void close() noexcept { h_.reset(); }
    std::string_view name() const noexcept { return detail::c_name_view(mpx_event_name(h_.get())); }
    int fd() const {
        int fd = -1;
        detail::check(mpx_event_fd(h_.get(), &fd));
        return fd;
    }
    mpx_event* native_handle() const noexcept { return h_.get(); }

private:
    explicit event(mpx_event* p) noexcept : h_(p) {}
    detail::handle<mpx_event, &mpx_event_close> h_;
};

/// A barrier for a fixed number of processes (Python's Barrier, without action).
class barrier {
public:
    barrier() noexcept = default;

    static barrier create(std::string_view name, std::uint32_t parties, std::uint32_t flags = 0) {
        mpx_barrier* p = nullptr;
        detail::check(mpx_barrier_create(detail::c_string(name, "name").c_str(), parties, flags, &p));
        return barrier(p);
    }
    static barrier open(std::string_view name, std::uint32_t flags = 0) {
        mpx_barrier* p = nullptr;
        detail::check(mpx_barrier_open(detail::c_string(name, "name").c_str(), flags, &p));
        return barrier(p);
    }
    static barrier anonymous(std::uint32_t parties) {
        mpx_barrier* p = nullptr;
        detail::check(mpx_barrier_create_anonymous(parties, &p));
        return barrier(p);
    }
    static barrier from_fd(int fd, std::uint32_t flags = 0) {
        mpx_barrier* p = nullptr;
        detail::check(mpx_barrier_open_fd(fd, flags, &p));
        return barrier(p);
    }
    static void unlink(std::string_view name) { detail::check(mpx_barrier_unlink(detail::c_string(name, "name").c_str())); }

    /// Waits until every party arrived, at most `timeout`; returns this party's arrival index
    /// (0 .. parties-1, the last arrival parties-1). Throws mpx::error MPX_E_BROKEN if the
    /// barrier is or becomes broken, MPX_E_TIMEOUT if this wait's time ran out (which breaks the
    /// barrier for the others, as in Python).
    template <class Rep = std::int64_t, class Period = std::nano>
    std::uint32_t wait(std::chrono::duration<Rep, Period> timeout = forever) {
        std::uint32_t index = 0;
        detail::check(mpx_barrier_wait(h_.get(), detail::timeout_ns(timeout), &index));
        return index;
    }
    /// Breaks the barrier: waiters now and later get MPX_E_BROKEN until reset().
    void abort() { detail::check(mpx_barrier_abort(h_.get())); }
    /// Empties and un-breaks it; current waiters get MPX_E_BROKEN.
    void reset() { detail::check(mpx_barrier_reset(h_.get())); }
    std::uint32_t parties() const noexcept { return mpx_barrier_parties(h_.get()); }
    std::uint32_t n_waiting() const noexcept { return mpx_barrier_n_waiting(h_.get()); }
    bool broken() const noexcept { return mpx_barrier_is_broken(h_.get()); }

    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    void close() noexcept { h_.reset(); }
    std::string_view name() const noexcept { return detail::c_name_view(mpx_barrier_name(h_.get())); }
    int fd() const {
        int fd = -1;
        detail::check(mpx_barrier_fd(h_.get(), &fd));
        return fd;
    }
    mpx_barrier* native_handle() const noexcept { return h_.get(); }

private:
    explicit barrier(mpx_barrier* p) noexcept : h_(p) {}
    detail::handle<mpx_barrier, &mpx_barrier_close> h_;
};

}  // namespace mpx

#endif  // MPX_SYNC_HPP
