// mpx/process.hpp: starting and managing processes: mpx::process_options, mpx::process,
// entry points (register_entry, init), mpx::this_process and cpu_count().

#ifndef MPX_PROCESS_HPP
#define MPX_PROCESS_HPP

#include "core.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpx {

/// How a process is started, as in Python's multiprocessing.
enum class start_method : std::uint32_t {
    fork = MPX_START_FORK,              ///< fork the caller; the child inherits everything
    spawn = MPX_START_SPAWN,            ///< re-execute this program (needs mpx::init)
    forkserver = MPX_START_FORKSERVER,  ///< fork from a clean server process (needs mpx::init)
};

/// Options for starting a process; setters chain: process_options().name("w").daemon(true).
class process_options {
public:
    process_options() {
        mpx_proc_opts* p = nullptr;
        detail::check(mpx_proc_opts_new(&p));
        h_.reset(p);
    }
    /// The child's name (what mpx::this_process::name() returns in it).
    process_options& name(std::string_view n) { return set(mpx_proc_opts_set_name(get(), detail::c_string(n, "name").c_str())); }
    /// The child dies with its parent, even a SIGKILLed one, and is terminated at normal exit.
    process_options& daemon(bool d = true) { return set(mpx_proc_opts_set_daemon(get(), d)); }
    /// Working directory (spawn only).
    process_options& cwd(std::string_view dir) { return set(mpx_proc_opts_set_cwd(get(), detail::c_string(dir, "dir").c_str())); }
    /// Sets an environment variable (spawn only).
    process_options& env(std::string_view key, std::string_view value) {
        return set(mpx_proc_opts_setenv(get(), detail::c_string(key, "key").c_str(), detail::c_string(value, "value").c_str()));
    }
    /// Removes an inherited environment variable (spawn only).
    process_options& unsetenv(std::string_view key) { return set(mpx_proc_opts_unsetenv(get(), detail::c_string(key, "key").c_str())); }
    /// Starts from an empty environment (spawn only).
    process_options& clearenv() { return set(mpx_proc_opts_clearenv(get())); }
    /// Keeps descriptor `fd` open at the same number (spawn: others above 2 are closed;
    /// forkserver: passed with the request, at most 253; not for fork).
    process_options& keep_fd(int fd) { return set(mpx_proc_opts_keep_fd(get(), fd)); }
    /// Standard stream `which` (0, 1, 2) to /dev/null.
    process_options& stdio_null(int which) { return set(mpx_proc_opts_set_stdio(get(), which, MPX_STDIO_NULL, -1)); }
    /// Standard stream `which` from/to descriptor `fd` of the parent.
    process_options& stdio_fd(int which, int fd) { return set(mpx_proc_opts_set_stdio(get(), which, MPX_STDIO_FD, fd)); }
    /// Standard stream `which` to a file (truncated unless `append`).
    process_options& stdio_file(int which, std::string_view path, bool append = false) {
        return set(mpx_proc_opts_set_stdio_file(get(), which, detail::c_string(path, "path").c_str(), append));
    }
    /// CPUs the child may run on.
    process_options& affinity(const std::vector<int>& cpus) { return set(mpx_proc_opts_set_affinity(get(), cpus.data(), cpus.size())); }
    /// Nice value (-20..=19).
    process_options& nice(int n) { return set(mpx_proc_opts_set_nice(get(), n)); }
    /// Process group (0: a new group led by the child).
    process_options& process_group(int pgid) { return set(mpx_proc_opts_set_process_group(get(), pgid)); }
    /// A new session (setsid).
    process_options& new_session(bool yes = true) { return set(mpx_proc_opts_set_new_session(get(), yes)); }

    const mpx_proc_opts* native_handle() const noexcept { return h_.get(); }

private:
    mpx_proc_opts* get() const noexcept { return h_.get(); }
    process_options& set(mpx_status s) {
        detail::check(s);
        return *this;
    }
    detail::handle<mpx_proc_opts, &mpx_proc_opts_free> h_;
};

namespace detail {
/// Runs a C++ callable as a child's body: its int result (or 0 for void) is the exit code; an
/// uncaught exception prints its what() to stderr and exits 1, as the process contract says.
template <class F>
int run_child_body(F& f) noexcept {
    try {
        if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
            f();
            return 0;
        } else {
            return static_cast<int>(f());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mpx: process failed: uncaught exception: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "mpx: process failed: uncaught exception\n");
    }
    return 1;
}

template <class F>
int fork_trampoline(void* user) {
    return run_child_body(*static_cast<F*>(user));
}

using entry_function = std::function<int(const std::byte*, std::size_t)>;

inline int entry_trampoline(const std::uint8_t* arg, std::size_t len, void* user) {
    auto& f = *static_cast<entry_function*>(user);
    auto call = [&] { return f(reinterpret_cast<const std::byte*>(arg), len); };
    return run_child_body(call);
}
}  // namespace detail

/// A started process. Move-only. What the destructor does with a process still running is the
/// policy: detach (default; it runs on and is reaped in the background, never a zombie), join,
/// or terminate (SIGTERM, then join).
class process {
public:
    enum class on_destroy { detach, join, terminate };

    process() noexcept = default;
    process(process&&) noexcept = default;
    process& operator=(process&& o) noexcept {
        if (this != &o) {
            finish();
            h_ = std::move(o.h_);
            policy_ = o.policy_;
        }
        return *this;
    }
    ~process() { finish(); }

    /// Starts an executable: `argv[0]` is the name the program sees; `program` is a path or a
    /// name looked up in PATH. Throws MPX_E_NOT_FOUND if it does not exist.
    static process spawn(std::string_view program, const std::vector<std::string>& argv, const process_options* opts = nullptr) {
        std::vector<const char*> args;
        for (const auto& a : argv) args.push_back(a.c_str());
        args.push_back(nullptr);
        mpx_process* p = nullptr;
        detail::check(mpx_spawn(detail::c_string(program, "program").c_str(), args.data(), opts ? opts->native_handle() : nullptr, &p));
        return process(p);
    }
    static process spawn(std::string_view program, const std::vector<std::string>& argv, const process_options& opts) {
        return spawn(program, argv, &opts);
    }

    /// Forks a child that runs `f()`: its int result (or 0) is the exit code; an uncaught
    /// exception exits with 1 after printing what() to stderr.
    template <class F>
    static process fork(F&& f, const process_options* opts = nullptr) {
        using Fn = std::decay_t<F>;
        Fn fn(std::forward<F>(f));  // the child runs its copy of this object
        mpx_process* p = nullptr;
        detail::check(mpx_fork(&detail::fork_trampoline<Fn>, &fn, opts ? opts->native_handle() : nullptr, &p));
        return process(p);
    }
    template <class F>
    static process fork(F&& f, const process_options& opts) {
        return fork(std::forward<F>(f), &opts);
    }

    /// Starts registered entry `entry` with argument bytes `arg` by `method`.
    static process start(start_method method, std::string_view entry, std::string_view arg = {}, const process_options* opts = nullptr) {
        mpx_process* p = nullptr;
        detail::check(mpx_start(static_cast<std::uint32_t>(method), detail::c_string(entry, "entry").c_str(),
                                reinterpret_cast<const std::uint8_t*>(arg.data()), arg.size(), opts ? opts->native_handle() : nullptr, &p));
        return process(p);
    }
    static process start(start_method method, std::string_view entry, std::string_view arg, const process_options& opts) {
        return start(method, entry, arg, &opts);
    }

    /// Takes charge of a child forked by other means.
    static process adopt(int pid) {
        mpx_process* p = nullptr;
        detail::check(mpx_process_adopt(pid, nullptr, &p));
        return process(p);
    }

    int pid() const noexcept { return mpx_process_pid(h_.get()); }
    std::string_view name() const noexcept {
        const char* n = mpx_process_name(h_.get());
        return n ? std::string_view(n) : std::string_view();
    }
    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }

    /// Waits for the end: the exit code (status, or minus the signal number).
    int join() { return *join(forever); }

    /// Waits up to `timeout`: the exit code, or nullopt if still running.
    template <class Rep, class Period>
    std::optional<int> join(std::chrono::duration<Rep, Period> timeout) {
        int code = 0;
        mpx_status s = mpx_process_join(h_.get(), detail::timeout_ns(timeout), &code);
        if (s == MPX_E_TIMEOUT) return std::nullopt;
        detail::check(s);
        return code;
    }

    bool is_alive() const {
        bool alive = false;
        detail::check(mpx_process_is_alive(h_.get(), &alive));
        return alive;
    }

    /// The exit code if it ended (status, or minus the signal number), else nullopt.
    std::optional<int> exitcode() const {
        bool finished = false;
        int code = 0;
        detail::check(mpx_process_exitcode(h_.get(), &finished, &code));
        return finished ? std::optional<int>(code) : std::nullopt;
    }

    void signal(int sig) const { detail::check(mpx_process_signal(h_.get(), sig)); }
    void terminate() const { detail::check(mpx_process_terminate(h_.get())); }
    void kill() const { detail::check(mpx_process_kill(h_.get())); }
    void interrupt() const { detail::check(mpx_process_interrupt(h_.get())); }

    /// A descriptor readable when the process ends (for poll/epoll). Owned by this object.
    int sentinel() const {
        int fd = -1;
        detail::check(mpx_process_sentinel(h_.get(), &fd));
        return fd;
    }

    /// What the destructor does if the process is still running.
    void set_on_destroy(on_destroy p) noexcept { policy_ = p; }

    /// Lets the process run on; it is reaped in the background.
    void detach() noexcept { h_.reset(); }

    mpx_process* native_handle() const noexcept { return h_.get(); }

private:
    explicit process(mpx_process* p) noexcept : h_(p) {}
    void finish() noexcept {
        if (!h_) return;
        if (policy_ == on_destroy::terminate) mpx_process_terminate(h_.get());
        if (policy_ != on_destroy::detach) mpx_process_join(h_.get(), MPX_FOREVER, nullptr);
        h_.reset();
    }
    detail::handle<mpx_process, &mpx_process_close> h_;
    on_destroy policy_ = on_destroy::detach;
};

/// Registers a named entry point (any callable taking (const std::byte*, std::size_t) and
/// returning int). Register every entry, then call mpx::init first thing in main.
template <class F>
void register_entry(std::string_view name, F&& f) {
    // Entries live for the whole program, so the callable is intentionally never freed.
    auto* fn = new detail::entry_function(std::forward<F>(f));
    detail::check(mpx_entry_register(detail::c_string(name, "name").c_str(), &detail::entry_trampoline, fn));
}

/// Call first thing in main after registering entries: in a child started by spawn or in the
/// fork server it runs what was asked and exits; otherwise it returns.
inline void init(int argc, char** argv) { detail::check(mpx_init(argc, const_cast<const char* const*>(argv))); }

/// The calling process's identity.
namespace this_process {
inline int pid() noexcept { return mpx_current_pid(); }
/// The process that started this one (for a fork-server child, the client, not the server).
inline int parent_pid() noexcept { return mpx_parent_pid(); }
inline std::string name() {
    std::size_t len = 0;
    mpx_current_name(nullptr, 0, &len);
    std::string s(len + 1, '\0');
    detail::check(mpx_current_name(s.data(), s.size(), &len));
    s.resize(len);
    return s;
}
inline void set_name(std::string_view n) { detail::check(mpx_set_current_name(detail::c_string(n, "name").c_str())); }
}  // namespace this_process

/// Number of CPUs online.
inline int cpu_count() noexcept { return mpx_cpu_count(); }

}  // namespace mpx

#endif  // MPX_PROCESS_HPP
