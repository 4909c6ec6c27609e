// mpx/lockable.hpp: what the lock-like classes share (mutex, recursive_mutex, condition,
// value/array with an embedded lock): acquire_result and detail::lockable, which gives them
// acquire()/lock()/try_lock()/try_lock_for()/try_lock_until()/unlock()/owner_died().
//
// Owner death: when a process dies holding a mutex, recursive_mutex, a condition's lock or a
// value's lock, the next acquirer gets the lock instead of hanging (the C ABI's
// MPX_E_OWNER_DIED). C++ surfaces it two ways: acquire() returns acquire_result::owner_died
// (the lock IS held), and every successful acquisition through lock()/try_lock()/
// try_lock_for()/acquire() records it, so after std::lock_guard / std::unique_lock took the
// lock, owner_died() says whether the previous holder died (the data it protects may be
// half-updated). The flag belongs to the object and is meaningful to the thread that holds the
// lock.

#ifndef MPX_LOCKABLE_HPP
#define MPX_LOCKABLE_HPP

#include "core.hpp"

#include <chrono>
#include <cstdint>

namespace mpx {

/// How an acquisition ended.
enum class acquire_result {
    acquired,    ///< the lock is held
    owner_died,  ///< the lock is held; the previous holder died holding it
    timeout,     ///< the time ran out; the lock is not held
};

namespace detail {

/// A duration as the C ABI's timeout, for try_lock_for/try_acquire_for: a negative duration
/// tries once (as std::timed_mutex does), never "forever".
template <class Rep, class Period>
std::int64_t try_timeout_ns(std::chrono::duration<Rep, Period> d) {
    return d <= d.zero() ? 0 : timeout_ns(d);
}

/// The time left until `t` as a try timeout (0 once it passed).
template <class Clock, class Duration>
std::int64_t until_ns(const std::chrono::time_point<Clock, Duration>& t) {
    return try_timeout_ns(t - Clock::now());
}

/// MPX_OK / MPX_E_OWNER_DIED / MPX_E_TIMEOUT as an acquire_result; anything else throws.
inline acquire_result acquire_status(mpx_status s) {
    if (s == MPX_OK) return acquire_result::acquired;
    if (s == MPX_E_OWNER_DIED) return acquire_result::owner_died;
    if (s == MPX_E_TIMEOUT) return acquire_result::timeout;
    check(s);
    return acquire_result::timeout;  // not reached
}

/// The lock operations every lockable class shares, over `Derived::acquire_ns(int64)` (one C
/// call returning an mpx_status) and `Derived::release_now()`.
template <class Derived>
class lockable {
public:
    /// Acquires, waiting at most `timeout` (mpx::forever: without limit; zero: try once).
    /// Throws mpx::error for anything but acquired / owner died / timeout.
    template <class Rep = std::int64_t, class Period = std::nano>
    acquire_result acquire(std::chrono::duration<Rep, Period> timeout = forever) {
        return record(acquire_status(self().acquire_ns(timeout_ns(timeout))));
    }

    /// BasicLockable: waits without limit. Throws mpx::error on failure.
    void lock() { record(acquire_status(self().acquire_ns(MPX_FOREVER))); }

    /// Lockable: true if acquired (also from a dead holder: see owner_died()).
    bool try_lock() { return record(acquire_status(self().acquire_ns(0))) != acquire_result::timeout; }

    /// TimedLockable.
    template <class Rep, class Period>
    bool try_lock_for(std::chrono::duration<Rep, Period> d) {
        return record(acquire_status(self().acquire_ns(try_timeout_ns(d)))) != acquire_result::timeout;
    }

    /// TimedLockable.
    template <class Clock, class Duration>
    bool try_lock_until(const std::chrono::time_point<Clock, Duration>& t) {
        return record(acquire_status(self().acquire_ns(until_ns(t)))) != acquire_result::timeout;
    }

    /// BasicLockable. Throws mpx::error (MPX_E_STATE) if the lock is not held (or, for a
    /// recursive lock, not held by this thread).
    void unlock() { check(self().release_now()); }

    /// Whether the last successful acquisition through this object took the lock from a
    /// process that died holding it.
    bool owner_died() const noexcept { return owner_died_; }

protected:
    lockable() noexcept = default;

private:
    acquire_result record(acquire_result r) noexcept {
        if (r != acquire_result::timeout) owner_died_ = r == acquire_result::owner_died;
        return r;
    }
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
    bool owner_died_ = false;
};

}  // namespace detail

}  // namespace mpx

#endif  // MPX_LOCKABLE_HPP
