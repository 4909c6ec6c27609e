// mpx/pool.hpp: process pools: mpx::pool_registry (the functions the workers run, C callbacks
// or C++ callables), mpx::pool_options, mpx::pool (submit / wait / map / close / join /
// terminate, the worker table), mpx::task, and the errors of a task (mpx::task_error thrown
// in a worker, mpx::task_failed thrown by the waiter).

#ifndef MPX_POOL_HPP
#define MPX_POOL_HPP

#include "core.hpp"
#include "queue.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#if defined(__has_include)
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define MPX_HPP_HAS_CXXABI 1
#endif
#endif
#ifndef MPX_HPP_HAS_CXXABI
#define MPX_HPP_HAS_CXXABI 0
#endif

namespace mpx {

/// Throw this from a task callable to fail its task with a status of one's choice (a negative
/// MPX_E_* code), an error type name, a message (what()) and a traceback text, all of which
/// the waiter gets in mpx::task_failed.
class task_error : public std::runtime_error {
public:
    task_error(std::string type_name, const std::string& message, std::string traceback = {}, mpx_status status = MPX_E_INVALID)
        : std::runtime_error(message), type_(std::move(type_name)), traceback_(std::move(traceback)), status_(status) {}

    const std::string& type_name() const noexcept { return type_; }
    const std::string& traceback() const noexcept { return traceback_; }
    mpx_status status() const noexcept { return status_; }

private:
    std::string type_;
    std::string traceback_;
    mpx_status status_;
};

/// A task failed (thrown by pool::wait): status() is its status (MPX_E_WORKER_DIED when its
/// worker died, MPX_E_NOT_FOUND for an unknown function, MPX_E_CLOSED after terminate, or the
/// function's own), what() the library's "task N failed: Type: message" with the traceback;
/// type_name(), message() and traceback() are the remote parts apart ("" when none was given).
class task_failed : public error {
public:
    task_failed(mpx_status status, const std::string& what, std::string type_name, std::string message, std::string traceback)
        : error(status, what), type_(std::move(type_name)), message_(std::move(message)), traceback_(std::move(traceback)) {}

    const std::string& type_name() const noexcept { return type_; }
    const std::string& message() const noexcept { return message_; }
    const std::string& traceback() const noexcept { return traceback_; }

private:
    std::string type_;
    std::string message_;
    std::string traceback_;
};

namespace detail {

/// The readable name of a type ("std::out_of_range"), demangled where the ABI allows it.
inline std::string type_name_of(const std::type_info& t) {
#if MPX_HPP_HAS_CXXABI
    int rc = 0;
    char* d = abi::__cxa_demangle(t.name(), nullptr, nullptr, &rc);
    if (rc == 0 && d) {
        std::string s(d);
        std::free(d);
        return s;
    }
    std::free(d);
#endif
    return t.name();
}

/// Gives an exception caught in a worker to the task's outcome (the current exception).
inline std::int32_t task_exception(mpx_task_out* out) noexcept {
    try {
        throw;
    } catch (const task_error& e) {
        return mpx_task_out_error(out, e.status(), e.type_name().empty() ? nullptr : e.type_name().c_str(), e.what(),
                                  e.traceback().empty() ? nullptr : e.traceback().c_str());
    } catch (const error& e) {
        // An mpx call failing inside the task keeps its status.
        return mpx_task_out_error(out, e.status(), "mpx::error", e.what(), nullptr);
    } catch (const std::exception& e) {
        try {
            return mpx_task_out_error(out, MPX_E_INVALID, type_name_of(typeid(e)).c_str(), e.what(), nullptr);
        } catch (...) {
            return mpx_task_out_error(out, MPX_E_INVALID, "std::exception", e.what(), nullptr);
        }
    } catch (...) {
        return mpx_task_out_error(out, MPX_E_INVALID, "unknown", "an exception of a type not derived from std::exception", nullptr);
    }
}

/// The C task function behind a C++ callable of type F (stored at `user`): argument bytes in,
/// the callable's bytes (any 1-byte contiguous range; void: none) out; an exception fails the
/// task (task_error: its parts; mpx::error: its status; other std::exception: MPX_E_INVALID with
/// the exception's type name and what()).
template <class F>
std::int32_t task_trampoline(void* user, const std::uint8_t* args, std::size_t len, mpx_task_out* out) noexcept {
    try {
        F& f = *static_cast<F*>(user);
        span<const std::byte> in(reinterpret_cast<const std::byte*>(args), len);
        if constexpr (std::is_void_v<std::invoke_result_t<F&, span<const std::byte>>>) {
            f(in);
            return MPX_OK;
        } else {
            const auto& result = f(in);
            span<const std::byte> b = as_bytes(result);
            return mpx_task_out_set(out, reinterpret_cast<const std::uint8_t*>(b.data()), b.size());
        }
    } catch (...) {
        return task_exception(out);
    }
}

}  // namespace detail

/// The functions a pool's workers run, by name: C callbacks (mpx_task_fn with a user pointer)
/// or C++ callables taking mpx::span<const std::byte> and returning bytes (std::vector<std::byte>,
/// std::string, ...) or void. Complete it before pool::create (the pool takes a copy). The
/// workers are forked children: a callable runs on the copy of its state as of the fork, and
/// nothing it changes comes back to the parent; only its result does. The registry keeps the
/// callables alive, and each pool made from it keeps them too (replacement workers are forked
/// later). Move-only; not for concurrent use from several threads.
///
///     mpx::pool_registry reg;
///     reg.add("upper", [](mpx::span<const std::byte> in) {
///         std::string s(reinterpret_cast<const char*>(in.data()), in.size());
///         for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
///         return s;
///     });
class pool_registry {
public:
    pool_registry() {
        mpx_pool_registry* p = nullptr;
        detail::check(mpx_pool_registry_new(&p));
        h_.reset(p);
    }

    /// Registers a C callback as `name` (1..=MPX_POOL_MAX_FNAME bytes; replaces a function of
    /// that name); workers call `fn(user, args, len, out)`.
    pool_registry& add(std::string_view name, mpx_task_fn fn, void* user = nullptr) {
        detail::check(mpx_pool_registry_add(h_.get(), detail::c_string(name, "name").c_str(), fn, user));
        return *this;
    }

    /// Registers a C++ callable as `name`: f(mpx::span<const std::byte>) returning bytes or void.
    template <class F, class Fn = std::decay_t<F>,
              class = std::enable_if_t<!std::is_convertible_v<Fn, mpx_task_fn> && std::is_invocable_v<Fn&, span<const std::byte>>>>
    pool_registry& add(std::string_view name, F&& f) {
        auto fn = std::make_shared<Fn>(std::forward<F>(f));
        detail::check(mpx_pool_registry_add(h_.get(), detail::c_string(name, "name").c_str(), &detail::task_trampoline<Fn>, fn.get()));
        keep_.push_back(std::move(fn));
        return *this;
    }

    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    const mpx_pool_registry* native_handle() const noexcept { return h_.get(); }

private:
    friend class pool;
    detail::handle<mpx_pool_registry, &mpx_pool_registry_free> h_;
    std::vector<std::shared_ptr<void>> keep_;  // the callables the registered user pointers point to
};

/// Options for a new pool; setters chain: pool_options().workers(2).max_tasks_per_child(100).
/// 0 means the default everywhere.
class pool_options {
public:
    pool_options() {
        mpx_pool_opts* p = nullptr;
        detail::check(mpx_pool_opts_new(&p));
        h_.reset(p);
    }
    /// Number of workers (1..=1024; 0: as many as CPUs this process may run on).
    pool_options& workers(std::size_t n) { return set(mpx_pool_opts_set_workers(h_.get(), n)); }
    /// Replace a worker after it ran `n` tasks (0: never).
    pool_options& max_tasks_per_child(std::uint64_t n) { return set(mpx_pool_opts_set_max_tasks_per_child(h_.get(), n)); }
    /// Task queue bytes (0: 1 MiB); the largest task is about this.
    pool_options& task_capacity(std::size_t bytes) { return set(mpx_pool_opts_set_task_capacity(h_.get(), bytes)); }
    /// Result queue bytes (0: 1 MiB); a larger result fails its task with MPX_E_TOO_BIG.
    pool_options& result_capacity(std::size_t bytes) { return set(mpx_pool_opts_set_result_capacity(h_.get(), bytes)); }

    const mpx_pool_opts* native_handle() const noexcept { return h_.get(); }

private:
    pool_options& set(mpx_status s) {
        detail::check(s);
        return *this;
    }
    detail::handle<mpx_pool_opts, &mpx_pool_opts_free> h_;
};

/// A task submitted to a pool: its id (ids start at 1; 0 is no task).
class task {
public:
    constexpr task() noexcept = default;
    constexpr explicit task(std::uint64_t id) noexcept : id_(id) {}
    constexpr std::uint64_t id() const noexcept { return id_; }
    friend constexpr bool operator==(task a, task b) noexcept { return a.id_ == b.id_; }
    friend constexpr bool operator!=(task a, task b) noexcept { return a.id_ != b.id_; }
    friend constexpr bool operator<(task a, task b) noexcept { return a.id_ < b.id_; }

private:
    std::uint64_t id_ = 0;
};

/// What a worker slot is doing (MPX_POOL_WORKER_*).
enum class worker_state : std::uint32_t {
    starting = MPX_POOL_WORKER_STARTING,  ///< being started, it has not run yet
    idle = MPX_POOL_WORKER_IDLE,          ///< waiting for a task
    busy = MPX_POOL_WORKER_BUSY,          ///< running task
    dead = MPX_POOL_WORKER_DEAD,          ///< died without being asked to; being replaced
    exited = MPX_POOL_WORKER_EXITED,      ///< exited as asked (closed pool, max tasks per child)
};

/// One slot of the worker table (pool::worker).
struct worker_info {
    int pid = 0;                              ///< 0 before the worker started
    worker_state state = worker_state::starting;
    mpx::task task;                           ///< the task it runs while busy, else task()
    std::uint64_t done = 0;                   ///< tasks the slot's workers finished with a result
    std::uint64_t failed = 0;                 ///< ... with an error (not those whose worker died)
};

/// A process pool: workers forked from the caller at create (and for replacements), running the
/// functions of a pool_registry by name; a task is a function name and argument bytes, its
/// result bytes or an error. A worker that dies fails exactly the task it ran (MPX_E_WORKER_DIED)
/// and is replaced. Move-only; the destructor frees the pool, terminating it if it still runs
/// (workers killed and reaped, a named pool's names removed). May be used from several threads.
///
///     auto p = mpx::pool::anonymous(reg, mpx::pool_options().workers(2));
///     mpx::task t = p.submit("upper", std::string_view("hello"));
///     std::vector<std::byte> r = p.wait(t);   // throws mpx::task_failed if it failed
///     p.close();
///     p.join(10s);
class pool {
public:
    /// An empty object (valid() is false).
    pool() noexcept = default;
    pool(pool&&) noexcept = default;
    pool& operator=(pool&& o) noexcept {
        if (this != &o) {
            h_ = std::move(o.h_);  // frees the old pool before dropping the callables it used
            keep_ = std::move(o.keep_);
        }
        return *this;
    }
    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;
    ~pool() = default;  // h_ (declared last) goes first, then the callables

    /// Creates a named pool (its objects `name`, `name.tasks`, `name.results` are visible in
    /// `mpx ls` and removed when it ends). Throws MPX_E_EXISTS if the name is taken.
    static pool create(std::string_view name, const pool_registry& reg, const pool_options* opts = nullptr) {
        return make(detail::c_string(name, "name").c_str(), reg, opts);
    }
    static pool create(std::string_view name, const pool_registry& reg, const pool_options& opts) { return create(name, reg, &opts); }

    /// Creates an anonymous pool.
    static pool anonymous(const pool_registry& reg, const pool_options* opts = nullptr) { return make(nullptr, reg, opts); }
    static pool anonymous(const pool_registry& reg, const pool_options& opts) { return anonymous(reg, &opts); }

    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    /// The name ("" for an anonymous or empty pool).
    std::string_view name() const noexcept { return detail::c_name_view(mpx_pool_name(h_.get())); }
    /// Worker slots (0 for an empty pool).
    std::size_t size() const noexcept { return mpx_pool_size(h_.get()); }

    // ---- tasks ----

    /// Submits a call of `fname` on `args` (bytes of anything contiguous with 1-byte elements),
    /// waiting for room in the task queue. An unknown name fails the task, not the submit.
    /// Throws MPX_E_STATE after close or terminate, MPX_E_TOO_BIG for a task too large.
    template <class Bytes>
    task submit(std::string_view fname, const Bytes& args) {
        return submit_bytes(fname, detail::as_bytes(args));
    }
    task submit(std::string_view fname, const char* args) { return submit(fname, std::string_view(args)); }
    task submit(std::string_view fname) { return submit_bytes(fname, span<const std::byte>()); }

    /// Waits for the task without limit and takes its result. Throws mpx::task_failed if the task
    /// failed; either way the task is consumed (waiting again throws MPX_E_INVALID).
    std::vector<std::byte> wait(task t) {
        auto r = wait(t, forever);
        if (!r) throw error(MPX_E_TIMEOUT, "pool: a wait without limit ended without a result");
        return std::move(*r);
    }

    /// As wait(t), at most `timeout`: nullopt if the task has not finished (it stays pending).
    template <class Rep, class Period>
    std::optional<std::vector<std::byte>> wait(task t, std::chrono::duration<Rep, Period> timeout) {
        std::uint8_t* out = nullptr;
        std::size_t len = 0;
        char* type = nullptr;
        char* msg = nullptr;
        char* tb = nullptr;
        mpx_status s = mpx_pool_wait_error(h_.get(), t.id(), detail::timeout_ns(timeout), &out, &len, &type, &msg, &tb);
        if (s == MPX_OK) {
            std::vector<std::byte> r(reinterpret_cast<const std::byte*>(out), reinterpret_cast<const std::byte*>(out) + len);
            mpx_free(out);
            return r;
        }
        if (s == MPX_E_TIMEOUT) return std::nullopt;
        if (!type && !msg && !tb) detail::check(s);  // the call itself failed (MPX_E_INVALID, ...)
        std::string what = mpx_last_error();
        auto take = [](char* p) {
            std::string v = p ? std::string(p) : std::string();
            mpx_free(p);
            return v;
        };
        std::string ty = take(type), m = take(msg), trace = take(tb);
        throw task_failed(s, what, std::move(ty), std::move(m), std::move(trace));
    }

    /// Whether the task has finished (its result waits for wait()). Never blocks. Throws
    /// MPX_E_INVALID for an id that is neither pending nor finished.
    bool ready(task t) const {
        bool r = false;
        detail::check(mpx_pool_ready(h_.get(), t.id(), &r));
        return r;
    }

    /// Waits at most `timeout` until one of `tasks` has finished and returns it (its result stays
    /// for wait()); nullopt if none finished in time. Throws MPX_E_INVALID if none of them is
    /// pending or finished.
    template <class Rep, class Period>
    std::optional<task> wait_any(const std::vector<task>& tasks, std::chrono::duration<Rep, Period> timeout) {
        std::vector<std::uint64_t> ids;
        ids.reserve(tasks.size());
        for (task t : tasks) ids.push_back(t.id());
        std::uint64_t done = 0;
        mpx_status s = mpx_pool_wait_any(h_.get(), ids.data(), ids.size(), detail::timeout_ns(timeout), &done);
        if (s == MPX_E_TIMEOUT) return std::nullopt;
        detail::check(s);
        return task(done);
    }
    task wait_any(const std::vector<task>& tasks) {
        auto t = wait_any(tasks, forever);
        if (!t) throw error(MPX_E_TIMEOUT, "pool: a wait without limit ended without a result");
        return *t;
    }

    /// Calls `fname` on each item of `items` (a range of strings, byte vectors, spans, ...) and
    /// returns the results in order. Items travel `chunksize` per task (0: multiprocessing's
    /// rule). Throws the first failed chunk's mpx::error, MPX_E_TIMEOUT if it all takes longer
    /// than `timeout`.
    template <class Range, class Rep = std::chrono::nanoseconds::rep, class Period = std::chrono::nanoseconds::period>
    std::vector<std::vector<std::byte>> map(std::string_view fname, const Range& items, std::size_t chunksize = 0,
                                            std::chrono::duration<Rep, Period> timeout = forever) {
        std::vector<std::size_t> lens;
        std::vector<std::byte> flat;
        for (const auto& item : items) {
            span<const std::byte> b = detail::as_bytes(item);
            lens.push_back(b.size());
            flat.insert(flat.end(), b.begin(), b.end());
        }
        std::vector<std::size_t> out_lens(lens.size());
        std::uint8_t* out = nullptr;
        detail::check(mpx_pool_map(h_.get(), detail::c_string(fname, "fname").c_str(), reinterpret_cast<const std::uint8_t*>(flat.data()),
                                   lens.data(), lens.size(), chunksize, detail::timeout_ns(timeout), &out, out_lens.data()));
        std::vector<std::vector<std::byte>> results;
        results.reserve(lens.size());
        const auto* p = reinterpret_cast<const std::byte*>(out);
        for (std::size_t n : out_lens) {
            results.emplace_back(p, p + n);
            p += n;
        }
        mpx_free(out);
        return results;
    }

    // ---- lifecycle ----

    /// Stops taking tasks: the workers finish what is queued, then exit; submit then throws
    /// MPX_E_STATE. Idempotent.
    void close() { detail::check(mpx_pool_close(h_.get())); }
    /// After close() or terminate(): waits without limit until every worker exited and every
    /// result is collected (results stay for wait()). Throws MPX_E_STATE on an open pool.
    void join() { detail::check(mpx_pool_join(h_.get(), MPX_FOREVER)); }
    /// As join(), at most `timeout`; false if workers still run.
    template <class Rep, class Period>
    bool join(std::chrono::duration<Rep, Period> timeout) {
        mpx_status s = mpx_pool_join(h_.get(), detail::timeout_ns(timeout));
        if (s == MPX_E_TIMEOUT) return false;
        detail::check(s);
        return true;
    }
    /// Stops at once: kills and reaps the workers; tasks not finished fail with MPX_E_CLOSED.
    /// Idempotent.
    void terminate() { detail::check(mpx_pool_terminate(h_.get())); }

    // ---- workers ----

    /// What slot `slot` (0..size()) of the worker table says. Throws MPX_E_INVALID out of range.
    worker_info worker(std::size_t slot) const {
        std::int32_t pid = 0;
        std::uint32_t state = 0;
        std::uint64_t t = 0;
        worker_info w;
        detail::check(mpx_pool_worker(h_.get(), slot, &pid, &state, &t, &w.done, &w.failed));
        w.pid = pid;
        w.state = static_cast<worker_state>(state);
        w.task = task(t);
        return w;
    }
    /// Every slot of the worker table.
    std::vector<worker_info> workers() const {
        std::vector<worker_info> ws;
        for (std::size_t i = 0, n = size(); i < n; i++) ws.push_back(worker(i));
        return ws;
    }

    mpx_pool* native_handle() const noexcept { return h_.get(); }

private:
    static pool make(const char* name, const pool_registry& reg, const pool_options* opts) {
        pool out;
        out.keep_ = reg.keep_;  // before the workers exist, so nothing can fail after
        mpx_pool* p = nullptr;
        detail::check(mpx_pool_create(name, opts ? opts->native_handle() : nullptr, reg.h_.get(), &p));
        out.h_.reset(p);
        return out;
    }

    task submit_bytes(std::string_view fname, span<const std::byte> args) {
        std::uint64_t id = 0;
        detail::check(mpx_pool_submit(h_.get(), detail::c_string(fname, "fname").c_str(), reinterpret_cast<const std::uint8_t*>(args.data()),
                                      args.size(), &id));
        return task(id);
    }

    std::vector<std::shared_ptr<void>> keep_;  // the registry's callables, for replacement workers
    detail::handle<mpx_pool, &mpx_pool_free> h_;
};

}  // namespace mpx

#endif  // MPX_POOL_HPP
