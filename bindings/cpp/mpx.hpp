// mpx.hpp: header-only C++17 (and later) RAII layer over the mpx C ABI (include/mpx.h).
//
// Every class is a move-only owner of one C handle; the destructor closes it. Failures throw
// mpx::error, which carries the C status (MPX_E_*) and the library's message. Nothing here holds
// logic of its own: each member is one call into the C ABI.
//
//     auto shm = mpx::shared_memory::create("frames", 1 << 20);
//     mpx::span<float> v = shm.as<float>();
//     v[0] = 1.5f;
//
// Link with -lmpx. Capabilities are added as classes in the same style: a private
// detail::handle<C type, &mpx_<kind>_close> member, static factories (create/open/...), and
// accessors that never throw on a moved-from (empty) object where a neutral answer exists.

#ifndef MPX_HPP
#define MPX_HPP

#include <mpx.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <vector>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#if defined(__has_include)
#if __has_include(<version>)
#include <version>
#endif
#endif
#if defined(__cpp_lib_span) && __cpp_lib_span >= 202002L
#include <span>
#define MPX_HPP_STD_SPAN 1
#else
#define MPX_HPP_STD_SPAN 0
#endif

namespace mpx {

/// The library's version string, e.g. "0.1.0".
inline std::string_view version() noexcept { return mpx_version(); }

/// The C ABI version the loaded library implements (compare with MPX_ABI_VERSION).
inline std::uint32_t abi_version() noexcept { return mpx_abi_version(); }

/// Throws mpx::error (MPX_E_VERSION) if the loaded library implements another C ABI than the
/// mpx.h this program was compiled with. Call once at start.
inline void check_abi_version();

/// The constant name of a status code ("MPX_E_NOT_FOUND"), "MPX_E_UNKNOWN" for other values.
inline std::string_view status_name(mpx_status status) noexcept { return mpx_status_name(status); }

/// Flags for create/open (the C ABI's MPX_F_* values; combine with |).
namespace flag {
/// Remove the name when the last process using the object closes it.
inline constexpr std::uint32_t unlink_on_last_close = MPX_F_UNLINK_ON_LAST_CLOSE;
/// Map the object read-only (open only).
inline constexpr std::uint32_t read_only = MPX_F_READ_ONLY;
/// Create with permissions 0660 instead of 0600.
inline constexpr std::uint32_t mode_group = MPX_F_MODE_GROUP;
/// Create with permissions 0666 instead of 0600.
inline constexpr std::uint32_t mode_all = MPX_F_MODE_ALL;
}  // namespace flag

/// Timeout that blocks without limit, for calls taking a timeout.
inline constexpr std::chrono::nanoseconds forever{MPX_FOREVER};

/// An mpx call failed. what() is the library's message (with context, e.g. "shm 'frames': no
/// such object"); status() is the MPX_E_* code.
class error : public std::runtime_error {
public:
    error(mpx_status status, const std::string& message)
        : std::runtime_error(message.empty() ? std::string(mpx_status_name(status)) : message),
          status_(status) {}

    /// The MPX_E_* status code.
    mpx_status status() const noexcept { return status_; }

    /// The status constant's name, e.g. "MPX_E_NOT_FOUND".
    const char* status_name() const noexcept { return mpx_status_name(status_); }

private:
    mpx_status status_;
};

inline void check_abi_version() {
    if (mpx_abi_version() != MPX_ABI_VERSION)
        throw error(MPX_E_VERSION, "libmpx implements C ABI version " + std::to_string(mpx_abi_version()) +
                                       ", this program was compiled for version " + std::to_string(MPX_ABI_VERSION));
}

namespace detail {

/// Throws mpx::error for any status other than MPX_OK, with mpx_last_error()'s message (read
/// at once: the next mpx call on this thread may replace it). Returns MPX_OK otherwise.
inline mpx_status check(mpx_status status) {
    if (status != MPX_OK) throw error(status, mpx_last_error());
    return status;
}

/// A std::string_view as a NUL-terminated string for the C ABI. An embedded NUL would silently
/// shorten the name the library sees, so it is refused here as the library would refuse it.
inline std::string c_string(std::string_view s, const char* what) {
    if (s.find('\0') != std::string_view::npos)
        throw error(MPX_E_INVALID, std::string(what) + " contains a NUL byte");
    return std::string(s);
}

/// A C++ duration as the C ABI's int64 nanoseconds (negative = forever, 0 = do not block).
/// Durations too long for int64 nanoseconds (~292 years) are clamped to the longest one.
template <class Rep, class Period>
std::int64_t timeout_ns(std::chrono::duration<Rep, Period> d) {
    if (d < d.zero()) return MPX_FOREVER;
    using seconds_ld = std::chrono::duration<long double>;
    if (seconds_ld(d) >= seconds_ld(std::chrono::nanoseconds::max())) return std::chrono::nanoseconds::max().count();
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

/// Move-only owner of one C handle `T*`, released with `Close` (an mpx_*_close function that
/// accepts NULL). Every capability class holds one of these, so none repeats the move logic.
template <class T, void (*Close)(T*)>
class handle {
public:
    handle() noexcept = default;
    explicit handle(T* p) noexcept : p_(p) {}
    handle(const handle&) = delete;
    handle& operator=(const handle&) = delete;
    handle(handle&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    handle& operator=(handle&& o) noexcept {
        if (this != &o) reset(std::exchange(o.p_, nullptr));
        return *this;
    }
    ~handle() { reset(); }

    T* get() const noexcept { return p_; }
    /// Closes the current handle (if any) and takes `p`.
    void reset(T* p = nullptr) noexcept {
        T* old = std::exchange(p_, p);
        if (old) Close(old);
    }
    /// Gives up ownership without closing.
    T* release() noexcept { return std::exchange(p_, nullptr); }
    explicit operator bool() const noexcept { return p_ != nullptr; }

private:
    T* p_ = nullptr;
};

}  // namespace detail

#if MPX_HPP_STD_SPAN

/// A view over contiguous objects: std::span under C++20.
template <class T>
using span = std::span<T>;

#else

/// A view over contiguous objects: a minimal std::span (dynamic extent) for C++17. It owns
/// nothing; it is valid while the object it views is open.
template <class T>
class span {
public:
    using element_type = T;
    using value_type = std::remove_cv_t<T>;
    using size_type = std::size_t;
    using pointer = T*;
    using reference = T&;
    using iterator = T*;

    constexpr span() noexcept = default;
    constexpr span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
    template <std::size_t N>
    constexpr span(T (&array)[N]) noexcept : data_(array), size_(N) {}
    /// span<T> converts to span<const T>, as std::span does.
    template <class U, class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
    constexpr span(const span<U>& o) noexcept : data_(o.data()), size_(o.size()) {}

    constexpr T* data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr std::size_t size_bytes() const noexcept { return size_ * sizeof(T); }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr T& operator[](std::size_t i) const noexcept { return data_[i]; }
    constexpr T& front() const noexcept { return data_[0]; }
    constexpr T& back() const noexcept { return data_[size_ - 1]; }
    constexpr T* begin() const noexcept { return data_; }
    constexpr T* end() const noexcept { return data_ + size_; }

    /// The first `n` elements (n <= size(), as for std::span).
    constexpr span first(std::size_t n) const noexcept { return span(data_, n); }
    /// The last `n` elements (n <= size()).
    constexpr span last(std::size_t n) const noexcept { return span(data_ + (size_ - n), n); }
    /// `count` elements from `offset` (all the rest when count is npos).
    constexpr span subspan(std::size_t offset, std::size_t count = static_cast<std::size_t>(-1)) const noexcept {
        return span(data_ + offset, count == static_cast<std::size_t>(-1) ? size_ - offset : count);
    }

private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

#endif

/// A shared-memory buffer: named (visible as /dev/shm/mpx.<name>, opened by name from any
/// language) or anonymous (a memfd shared by passing fd() to a child). Move-only; the
/// destructor closes it, which never removes the name (use unlink(), or create with
/// flag::unlink_on_last_close). The bytes are shared: synchronise access across processes.
class shared_memory {
public:
    /// An empty object (valid() is false); assign a created or opened buffer to it.
    shared_memory() noexcept = default;

    /// Creates a named buffer of `size` zeroed bytes. flags: flag::unlink_on_last_close,
    /// flag::mode_group, flag::mode_all. Throws mpx::error (MPX_E_EXISTS if the name is taken,
    /// MPX_E_INVALID for a bad name, size or flag).
    static shared_memory create(std::string_view name, std::size_t size, std::uint32_t flags = 0) {
        std::string n = detail::c_string(name, "name");
        mpx_shm* p = nullptr;
        detail::check(mpx_shm_create(n.c_str(), size, flags, &p));
        return shared_memory(p);
    }

    /// Opens an existing named buffer. flags: flag::read_only, flag::unlink_on_last_close.
    /// Throws mpx::error (MPX_E_NOT_FOUND, MPX_E_KIND for another kind of object,
    /// MPX_E_VERSION / MPX_E_CORRUPT for a segment that does not validate).
    static shared_memory open(std::string_view name, std::uint32_t flags = 0) {
        std::string n = detail::c_string(name, "name");
        mpx_shm* p = nullptr;
        detail::check(mpx_shm_open(n.c_str(), flags, &p));
        return shared_memory(p);
    }

    /// Creates an anonymous buffer of `size` bytes (a memfd sealed against resizing).
    static shared_memory anonymous(std::size_t size) {
        mpx_shm* p = nullptr;
        detail::check(mpx_shm_create_anonymous(size, &p));
        return shared_memory(p);
    }

    /// Opens the buffer behind an inherited or received fd. The fd is duplicated: the caller
    /// keeps owning `fd`. flags: flag::read_only.
    static shared_memory from_fd(int fd, std::uint32_t flags = 0) {
        mpx_shm* p = nullptr;
        detail::check(mpx_shm_open_fd(fd, flags, &p));
        return shared_memory(p);
    }

    /// Removes a buffer's name; processes that have it open keep it. Throws MPX_E_NOT_FOUND if
    /// there is no such name.
    static void unlink(std::string_view name) {
        std::string n = detail::c_string(name, "name");
        detail::check(mpx_shm_unlink(n.c_str()));
    }

    /// Removes this buffer's name if it still refers to this buffer (this object stays usable).
    /// Throws MPX_E_INVALID for an anonymous or closed buffer, MPX_E_NOT_FOUND if the name was
    /// already removed (and perhaps reused by another object, which is left alone).
    void unlink() const {
        if (!valid()) throw error(MPX_E_INVALID, "shm: unlink on a closed buffer");
        detail::check(mpx_shm_unlink_self(h_.get()));
    }

    /// Unmaps and closes now (the destructor does the same). Calling it again does nothing.
    void close() noexcept { h_.reset(); }

    /// Whether this object holds an open buffer (false once moved from or closed).
    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }

    /// The first byte (page-aligned), or nullptr when closed. Valid until close.
    void* data() const noexcept { return mpx_shm_ptr(h_.get()); }

    /// Size in bytes (as created), 0 when closed.
    std::size_t size() const noexcept { return mpx_shm_size(h_.get()); }

    /// The name ("" for an anonymous or closed buffer). Valid until close.
    std::string_view name() const noexcept {
        const char* n = mpx_shm_name(h_.get());
        return n ? std::string_view(n) : std::string_view();
    }

    /// The segment's file descriptor, owned by this object (dup it to keep it longer).
    int fd() const {
        int fd = -1;
        detail::check(mpx_shm_fd(h_.get(), &fd));
        return fd;
    }

    /// Offset of the data within the segment file (a multiple of the page size).
    std::size_t data_offset() const {
        std::size_t off = 0;
        detail::check(mpx_shm_data_offset(h_.get(), &off));
        return off;
    }

    /// The bytes as a view.
    span<std::byte> bytes() const noexcept { return span<std::byte>(static_cast<std::byte*>(data()), size()); }

    /// The bytes as size() / sizeof(T) objects of T (the data is page-aligned, so any T fits).
    /// T must be trivially copyable: another process (in any language) sees only its bytes.
    template <class T>
    span<T> as() const noexcept {
        static_assert(std::is_trivially_copyable_v<T>, "mpx::shared_memory::as<T>: T must be trivially copyable");
        return span<T>(static_cast<T*>(data()), size() / sizeof(T));
    }

    /// The underlying C handle (still owned by this object), for calls not wrapped here.
    mpx_shm* native_handle() const noexcept { return h_.get(); }

private:
    explicit shared_memory(mpx_shm* p) noexcept : h_(p) {}
    detail::handle<mpx_shm, &mpx_shm_close> h_;
};

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
    /// Keeps descriptor `fd` open at the same number (spawn only; others above 2 are closed).
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

namespace detail {
/// Bytes of any contiguous trivially copyable range, as the C ABI's (pointer, length).
inline const std::uint8_t* bytes_of(const void* p) noexcept { return static_cast<const std::uint8_t*>(p); }
}  // namespace detail

/// One end of a connection: whole byte messages to another process (any language), framed as
/// Python's multiprocessing.connection frames them. Made by mpx::pipe(), listener::accept(),
/// connection::connect() or connection::from_fd(). Move-only; the destructor closes it (the peer
/// then sees the end of the stream). One thread may receive while another sends.
///
///     auto [a, b] = mpx::pipe();
///     a.send("hello");
///     std::string s = b.recv_string();
class connection {
public:
    /// An empty object (valid() is false).
    connection() noexcept = default;

    /// Connects to a listener at `address` ("unix:/path", "unix:@name", "tcp:host:port",
    /// "tcp:[::1]:port"); with `authkey` the mutual handshake runs (mpx::error MPX_E_AUTH if the
    /// keys differ). Waits up to `timeout` for the connection and the handshake together.
    template <class Rep = std::int64_t, class Period = std::nano>
    static connection connect(std::string_view address, std::optional<std::string_view> authkey = std::nullopt,
                              std::chrono::duration<Rep, Period> timeout = forever) {
        std::string a = detail::c_string(address, "address");
        mpx_conn* c = nullptr;
        detail::check(mpx_client_connect(a.c_str(), authkey ? detail::bytes_of(authkey->data()) : nullptr,
                                         authkey ? authkey->size() : 0, detail::timeout_ns(timeout), &c));
        return connection(c);
    }

    /// A connection over an inherited or received descriptor (a stream socket or a pipe end).
    /// On success the connection owns `fd`; on failure (mpx::error) the caller still does.
    /// flags: 0 (whatever the descriptor allows), or MPX_CONN_READABLE / MPX_CONN_WRITABLE.
    static connection from_fd(int fd, std::uint32_t flags = 0) {
        mpx_conn* c = nullptr;
        detail::check(mpx_conn_from_fd(fd, flags, &c));
        return connection(c);
    }

    /// Sends one message (any size, 0 included). Throws MPX_E_CLOSED if the peer has gone.
    void send(const void* data, std::size_t size) const { detail::check(mpx_conn_send(h_.get(), detail::bytes_of(data), size)); }
    void send(std::string_view s) const { send(s.data(), s.size()); }
    template <class T>
    void send(span<T> v) const {
        static_assert(std::is_trivially_copyable_v<T>, "mpx::connection::send: T must be trivially copyable");
        send(v.data(), v.size() * sizeof(T));
    }

    /// Receives one message, waiting as long as it takes. Throws MPX_E_CLOSED at the end of
    /// the stream, MPX_E_TOO_BIG beyond the maximum message size.
    std::vector<std::byte> recv() const { return *recv(forever); }

    /// Receives one message within `timeout`, or nullopt when it runs out (what arrived is
    /// kept for the next call).
    template <class Rep, class Period>
    std::optional<std::vector<std::byte>> recv(std::chrono::duration<Rep, Period> timeout) const {
        std::uint8_t* p = nullptr;
        std::size_t len = 0;
        mpx_status st = mpx_conn_recv_alloc(h_.get(), &p, &len, detail::timeout_ns(timeout));
        if (st == MPX_E_TIMEOUT) return std::nullopt;
        detail::check(st);
        std::vector<std::byte> v(reinterpret_cast<std::byte*>(p), reinterpret_cast<std::byte*>(p) + len);
        mpx_free(p);
        return v;
    }

    /// Receives one message as a string (waiting as long as it takes).
    std::string recv_string() const {
        std::vector<std::byte> v = recv();
        return std::string(reinterpret_cast<const char*>(v.data()), v.size());
    }

    /// Receives one message into `buf` and returns its size, or nullopt when `timeout` runs
    /// out. A message larger than `buf` throws mpx::error MPX_E_BUFFER_TOO_SMALL and stays for
    /// the next call (pending_size() tells its size; recv() takes it whole).
    template <class Rep = std::int64_t, class Period = std::nano>
    std::optional<std::size_t> recv_into(span<std::byte> buf, std::chrono::duration<Rep, Period> timeout = forever) const {
        std::size_t len = 0;
        mpx_status st = mpx_conn_recv(h_.get(), reinterpret_cast<std::uint8_t*>(buf.data()), buf.size(), &len, detail::timeout_ns(timeout));
        if (st == MPX_E_TIMEOUT) return std::nullopt;
        detail::check(st);
        return len;
    }

    /// Size of a message kept after MPX_E_BUFFER_TOO_SMALL (0 if none is pending).
    std::size_t pending_size() const {
        std::size_t len = 0;
        return mpx_conn_recv(h_.get(), nullptr, 0, &len, 0) == MPX_E_BUFFER_TOO_SMALL ? len : 0;
    }

    /// Whether something can be received without waiting for its first byte (or the peer
    /// closed). Waits up to `timeout` (default: just look).
    template <class Rep = std::int64_t, class Period = std::nano>
    bool poll(std::chrono::duration<Rep, Period> timeout = std::chrono::nanoseconds(0)) const {
        bool ready = false;
        detail::check(mpx_conn_poll(h_.get(), detail::timeout_ns(timeout), &ready));
        return ready;
    }

    /// Waits up to `timeout` until some of `conns` can receive; their indices (empty when the
    /// time ran out). Like Python's multiprocessing.connection.wait.
    template <class Rep = std::int64_t, class Period = std::nano>
    static std::vector<std::size_t> wait(const std::vector<const connection*>& conns, std::chrono::duration<Rep, Period> timeout = forever) {
        std::vector<const mpx_conn*> hs;
        for (const connection* c : conns) hs.push_back(c ? c->h_.get() : nullptr);
        std::unique_ptr<bool[]> ready(new bool[hs.size() ? hs.size() : 1]());
        std::size_t n = 0;
        detail::check(mpx_conn_wait(hs.data(), hs.size(), detail::timeout_ns(timeout), ready.get(), &n));
        std::vector<std::size_t> out;
        for (std::size_t i = 0; i < hs.size(); i++)
            if (ready[i]) out.push_back(i);
        return out;
    }

    /// Sets the largest incoming message accepted (0: no limit). A larger one throws
    /// MPX_E_TOO_BIG and leaves the connection unusable (MPX_E_BROKEN).
    void set_max_message_size(std::uint64_t max) const { detail::check(mpx_conn_set_max_message_size(h_.get(), max)); }

    /// Sends descriptors (Unix connections; the caller keeps its own). Python receives them
    /// with multiprocessing.reduction.recv_handle / recvfds.
    void send_fds(const std::vector<int>& fds) const { detail::check(mpx_conn_send_fds(h_.get(), fds.data(), fds.size())); }

    /// Receives descriptors (at most `max`; the caller owns and must close them). Throws
    /// MPX_E_STATE if an ordinary message comes first; nullopt when `timeout` runs out.
    template <class Rep = std::int64_t, class Period = std::nano>
    std::optional<std::vector<int>> recv_fds(std::size_t max = MPX_CONN_MAX_FDS, std::chrono::duration<Rep, Period> timeout = forever) const {
        std::vector<int> fds(max ? max : 1, -1);
        std::size_t n = 0;
        mpx_status st = mpx_conn_recv_fds(h_.get(), fds.data(), max, &n, detail::timeout_ns(timeout));
        if (st == MPX_E_TIMEOUT) return std::nullopt;
        detail::check(st);
        fds.resize(n);
        return fds;
    }

    /// Sends a shared-memory buffer (typically shared_memory::anonymous) by its descriptor.
    void send_shm(const shared_memory& shm) const { detail::check(mpx_conn_send_shm(h_.get(), shm.native_handle())); }

    /// Receives a buffer sent with send_shm and opens it (flags: flag::read_only).
    template <class Rep = std::int64_t, class Period = std::nano>
    shared_memory recv_shm(std::uint32_t flags = 0, std::chrono::duration<Rep, Period> timeout = forever) const {
        std::optional<std::vector<int>> fds = recv_fds(1, timeout);
        if (!fds) throw error(MPX_E_TIMEOUT, "recv_shm: no buffer within the timeout");
        int fd = (*fds)[0];
        try {
            shared_memory shm = shared_memory::from_fd(fd, flags);
            ::close(fd);
            return shm;
        } catch (...) {
            ::close(fd);
            throw;
        }
    }

    /// The descriptor (owned by the connection), for poll/epoll; check poll() first, since a
    /// message may already be buffered inside the connection.
    int fileno() const {
        int fd = -1;
        detail::check(mpx_conn_fileno(h_.get(), &fd));
        return fd;
    }

    /// The peer's address ("tcp:127.0.0.1:51234"; "unix:" for an unnamed Unix peer), like
    /// Python's Listener.last_accepted. Throws MPX_E_INVALID for a pipe.
    std::string peer_address() const {
        std::size_t len = 0;
        mpx_status st = mpx_conn_peer_address(h_.get(), nullptr, 0, &len);
        if (st != MPX_E_BUFFER_TOO_SMALL) detail::check(st);
        std::string s(len + 1, '\0');
        detail::check(mpx_conn_peer_address(h_.get(), s.data(), s.size(), &len));
        s.resize(len);
        return s;
    }

    /// MPX_CONN_READABLE | MPX_CONN_WRITABLE | MPX_CONN_UNIX (0 when empty).
    std::uint32_t flags() const noexcept {
        std::uint32_t f = 0;
        return mpx_conn_flags(h_.get(), &f) == MPX_OK ? f : 0;
    }
    bool readable() const noexcept { return (flags() & MPX_CONN_READABLE) != 0; }
    bool writable() const noexcept { return (flags() & MPX_CONN_WRITABLE) != 0; }

    /// Closes now (the destructor does the same). Calling it again does nothing.
    void close() noexcept { h_.reset(); }
    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    mpx_conn* native_handle() const noexcept { return h_.get(); }

private:
    friend class listener;
    friend std::pair<connection, connection> pipe(bool duplex);
    explicit connection(mpx_conn* c) noexcept : h_(c) {}
    detail::handle<mpx_conn, &mpx_conn_close> h_;
};

/// A connected pair, as Python's multiprocessing.Pipe(duplex): duplex over a Unix socketpair,
/// or one way over a pipe (first receives, second sends).
inline std::pair<connection, connection> pipe(bool duplex = true) {
    mpx_conn* a = nullptr;
    mpx_conn* b = nullptr;
    detail::check(mpx_pipe(duplex, &a, &b));
    return {connection(a), connection(b)};
}

/// A listening socket; clients connect with connection::connect (or Python's
/// multiprocessing.connection.Client). Move-only; the destructor closes it and removes its
/// Unix socket path.
class listener {
public:
    listener() noexcept = default;

    /// Listens at `address` (see connection::connect; port 0 or "unix:@" let the kernel choose:
    /// read address()). With `authkey`, clients must pass the handshake. Throws MPX_E_EXISTS
    /// for an address in use, MPX_E_INVALID for a malformed one.
    static listener create(std::string_view address, int backlog = 16, std::optional<std::string_view> authkey = std::nullopt) {
        std::string a = detail::c_string(address, "address");
        mpx_listener* l = nullptr;
        detail::check(mpx_listener_create(a.c_str(), backlog, authkey ? detail::bytes_of(authkey->data()) : nullptr,
                                          authkey ? authkey->size() : 0, &l));
        return listener(l);
    }

    /// Waits for a client (authenticated if the listener has a key). Throws MPX_E_AUTH for a
    /// client that fails the handshake (accept again for the next one).
    connection accept() const { return *accept(forever); }

    /// As accept(), giving up after `timeout` (nullopt).
    template <class Rep, class Period>
    std::optional<connection> accept(std::chrono::duration<Rep, Period> timeout) const {
        mpx_conn* c = nullptr;
        mpx_status st = mpx_listener_accept(h_.get(), detail::timeout_ns(timeout), &c);
        if (st == MPX_E_TIMEOUT) return std::nullopt;
        detail::check(st);
        return connection(c);
    }

    /// The address clients use, with the kernel's choices filled in ("tcp:127.0.0.1:40123").
    std::string address() const {
        std::size_t len = 0;
        mpx_listener_address(h_.get(), nullptr, 0, &len);
        std::string s(len + 1, '\0');
        detail::check(mpx_listener_address(h_.get(), s.data(), s.size(), &len));
        s.resize(len);
        return s;
    }

    /// How long an accepted client has for the handshake (default 30 s; forever for no limit).
    template <class Rep, class Period>
    void set_handshake_timeout(std::chrono::duration<Rep, Period> timeout) const {
        detail::check(mpx_listener_set_handshake_timeout(h_.get(), detail::timeout_ns(timeout)));
    }

    int fileno() const {
        int fd = -1;
        detail::check(mpx_listener_fileno(h_.get(), &fd));
        return fd;
    }

    void close() noexcept { h_.reset(); }
    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    mpx_listener* native_handle() const noexcept { return h_.get(); }

private:
    explicit listener(mpx_listener* l) noexcept : h_(l) {}
    detail::handle<mpx_listener, &mpx_listener_close> h_;
};


}  // namespace mpx

#endif  // MPX_HPP
