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

// ---- Synchronization: mutex (Lock), recursive_mutex (RLock), semaphore, condition, event,
// barrier; value<T> / array<T>. Each is a named object (opened by name from C, Python, Rust) or
// anonymous (shared with a child by fd). Timeouts are std::chrono durations; mpx::forever (or
// any negative duration) waits without limit, zero tries once.
//
// Owner death: when a process dies holding a mutex, recursive_mutex, a condition's lock or a
// value's lock, the next acquirer gets the lock instead of hanging (the C ABI's
// MPX_E_OWNER_DIED). C++ surfaces it two ways: acquire() returns acquire_result::owner_died
// (the lock IS held), and every successful acquisition through lock()/try_lock()/
// try_lock_for()/acquire() records it, so after std::lock_guard / std::unique_lock took the
// lock, owner_died() says whether the previous holder died (the data it protects may be
// half-updated). The flag belongs to the object and is meaningful to the thread that holds the
// lock.

/// Flags of the sync kinds (combine with the flag:: values above).
namespace flag {
/// Semaphore: give back the permits of processes that die holding them (undo table).
inline constexpr std::uint32_t sem_undo = MPX_SEM_UNDO;
/// Value / array: embed a recursive lock (Python's lock=True), for lock()/unlock().
inline constexpr std::uint32_t value_lock = MPX_VALUE_LOCK;
}  // namespace flag

/// How an acquisition ended.
enum class acquire_result {
    acquired,    ///< the lock is held
    owner_died,  ///< the lock is held; the previous holder died holding it
    timeout,     ///< the time ran out; the lock is not held
};

/// How a condition wait ended. The lock is held again in every case.
enum class wait_result {
    notified,    ///< a notify arrived (or a spurious wakeup after a waiter was killed)
    timeout,     ///< the time ran out
    owner_died,  ///< re-acquiring the lock took it from a dead holder (re-check the predicate)
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

inline std::string_view c_name_view(const char* n) noexcept { return n ? std::string_view(n) : std::string_view(); }

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

namespace detail {

/// The typecode a C++ element type is created with, and the typecodes it may open (same size
/// and kind: int64_t is `long` here, which opens a Python 'q' as well as an 'l').
template <class T>
struct value_type_info;
#define MPX_HPP_VALUE_TYPE(T, CODE, ACCEPTS)                       \
    template <>                                                     \
    struct value_type_info<T> {                                     \
        static constexpr char code = CODE;                          \
        static constexpr const char* accepts = ACCEPTS;             \
    };
MPX_HPP_VALUE_TYPE(char, 'c', "cbB")
MPX_HPP_VALUE_TYPE(signed char, 'b', "b")
MPX_HPP_VALUE_TYPE(unsigned char, 'B', "Bc")
MPX_HPP_VALUE_TYPE(short, 'h', "h")
MPX_HPP_VALUE_TYPE(unsigned short, 'H', "H")
MPX_HPP_VALUE_TYPE(int, 'i', "i")
MPX_HPP_VALUE_TYPE(unsigned int, 'I', "Iu")
MPX_HPP_VALUE_TYPE(long, 'l', "lq")
MPX_HPP_VALUE_TYPE(unsigned long, 'L', "LQ")
MPX_HPP_VALUE_TYPE(long long, 'q', "ql")
MPX_HPP_VALUE_TYPE(unsigned long long, 'Q', "QL")
MPX_HPP_VALUE_TYPE(float, 'f', "f")
MPX_HPP_VALUE_TYPE(double, 'd', "d")
MPX_HPP_VALUE_TYPE(wchar_t, 'u', "u")
#undef MPX_HPP_VALUE_TYPE

/// What value<T> and array<T> share: the handle, the type check at open, the embedded lock.
template <class T>
class value_base : public lockable<value_base<T>> {
public:
    static_assert(sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8, "mpx: unsupported element size");

    /// Element `i`, read atomically (throws MPX_E_INVALID if i >= size()).
    T get(std::size_t i) const {
        T v{};
        check(mpx_value_get(h_.get(), i, &v, sizeof v));
        return v;
    }
    /// Sets element `i` atomically.
    void set(std::size_t i, T v) { check(mpx_value_set(h_.get(), i, &v, sizeof v)); }

    /// The elements, zero-copy (64-byte aligned). Plain accesses through it are not
    /// synchronized: hold the lock, or use get()/set()/fetch_add().
    span<T> elements() const noexcept { return span<T>(static_cast<T*>(mpx_value_ptr(h_.get())), mpx_value_count(h_.get())); }
    T* data() const noexcept { return static_cast<T*>(mpx_value_ptr(h_.get())); }
    std::size_t size() const noexcept { return mpx_value_count(h_.get()); }
    /// The typecode ('i', 'd', ...).
    char typecode() const noexcept { return mpx_value_typecode(h_.get()); }
    /// Whether it has an embedded lock (created with flag::value_lock or Python's lock=True).
    bool has_lock() const noexcept { return mpx_value_has_lock(h_.get()); }

    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }
    void close() noexcept { h_.reset(); }
    std::string_view name() const noexcept { return c_name_view(mpx_value_name(h_.get())); }
    int fd() const {
        int fd = -1;
        check(mpx_value_fd(h_.get(), &fd));
        return fd;
    }
    mpx_value* native_handle() const noexcept { return h_.get(); }

    static void unlink(std::string_view name) { check(mpx_value_unlink(c_string(name, "name").c_str())); }

protected:
    value_base() noexcept = default;
    explicit value_base(mpx_value* p) noexcept : h_(p) {}

    /// Throws unless T matches the segment's typecode (a Python 'd' is not an int).
    static void validate(mpx_value* p) {
        const char* ok = value_type_info<T>::accepts;
        char code = mpx_value_typecode(p);
        bool match = false;
        for (; *ok; ++ok) match = match || *ok == code;
        if (!match || mpx_value_itemsize(p) != sizeof(T))
            throw error(MPX_E_INVALID, std::string("value '") + mpx_value_name(p) + "' holds typecode '" + std::string(1, code) +
                                           "', not '" + std::string(1, value_type_info<T>::code) + "'");
    }
    static mpx_value* create_raw(const char* name, std::size_t count, const T* init, std::uint32_t flags) {
        mpx_value* p = nullptr;
        check(mpx_value_create(name, value_type_info<T>::code, count, init, init ? count * sizeof(T) : 0, flags, &p));
        return p;
    }
    static mpx_value* create_anonymous_raw(std::size_t count, const T* init, std::uint32_t flags) {
        mpx_value* p = nullptr;
        check(mpx_value_create_anonymous(value_type_info<T>::code, count, init, init ? count * sizeof(T) : 0, flags, &p));
        return p;
    }
    static mpx_value* open_raw(std::string_view name, std::uint32_t flags) {
        mpx_value* p = nullptr;
        check(mpx_value_open(c_string(name, "name").c_str(), flags, &p));
        return p;
    }
    static mpx_value* from_fd_raw(int fd, std::uint32_t flags) {
        mpx_value* p = nullptr;
        check(mpx_value_open_fd(fd, flags, &p));
        return p;
    }
    /// Takes `p` if it is a V (V::validate), else closes it and throws.
    template <class V>
    static V adopt(mpx_value* p) {
        try {
            V::validate(p);
        } catch (...) {
            mpx_value_close(p);
            throw;
        }
        return V(p);
    }

private:
    friend class lockable<value_base<T>>;
    mpx_status acquire_ns(std::int64_t ns) { return mpx_value_acquire(h_.get(), ns); }
    mpx_status release_now() { return mpx_value_release(h_.get()); }
    handle<mpx_value, &mpx_value_close> h_;
};

}  // namespace detail

/// A typed shared value (Python's Value): T is int, double, std::int64_t, ... (the typecode
/// follows: int 'i', double 'd', long 'l', ...). With flag::value_lock it embeds a recursive lock
/// (Python's lock=True): lock()/unlock()/try_lock_for() make it usable with std::lock_guard,
/// and Python's get_lock() is the same lock.
template <class T>
class value : public detail::value_base<T> {
    using base = detail::value_base<T>;
    friend base;

public:
    value() noexcept = default;

    /// A named value holding `init`. flags: flag::* and flag::value_lock.
    static value create(std::string_view name, T init = T{}, std::uint32_t flags = 0) {
        return base::template adopt<value>(base::create_raw(detail::c_string(name, "name").c_str(), 1, &init, flags));
    }
    static value anonymous(T init = T{}, std::uint32_t flags = 0) {
        return base::template adopt<value>(base::create_anonymous_raw(1, &init, flags));
    }
    /// Opens a named value of a matching typecode (MPX_E_INVALID for another type, or if it is
    /// an array of more than one element).
    static value open(std::string_view name, std::uint32_t flags = 0) { return base::template adopt<value>(base::open_raw(name, flags)); }
    static value from_fd(int fd, std::uint32_t flags = 0) { return base::template adopt<value>(base::from_fd_raw(fd, flags)); }

    /// The value, read atomically.
    T load() const { return base::get(0); }
    /// Stores atomically.
    void store(T v) { base::set(0, v); }
    /// Adds atomically without the lock (integers; wraps in T's width); returns the old value.
    T fetch_add(T delta) {
        static_assert(std::is_integral_v<T>, "fetch_add needs an integer type");
        std::int64_t old = 0;
        detail::check(mpx_value_fetch_add_i64(base::native_handle(), 0, static_cast<std::int64_t>(delta), &old));
        return static_cast<T>(old);
    }
    /// The value in place (zero-copy; plain accesses are not synchronized).
    T& ref() const noexcept { return *base::data(); }

private:
    explicit value(mpx_value* p) noexcept : base(p) {}
    static void validate(mpx_value* p) {
        base::validate(p);
        if (mpx_value_count(p) != 1)
            throw error(MPX_E_INVALID, std::string("value '") + mpx_value_name(p) + "' is an array of " +
                                           std::to_string(mpx_value_count(p)) + " elements: open it as mpx::array");
    }
};

/// A typed shared array (Python's Array): size() elements of T, zero-copy through elements()
/// (an mpx::span<T>), with atomic get()/set() per element and an optional embedded lock.
template <class T>
class array : public detail::value_base<T> {
    using base = detail::value_base<T>;
    friend base;

public:
    array() noexcept = default;

    /// A named array of `count` zeroed elements. flags: flag::* and flag::value_lock.
    static array create(std::string_view name, std::size_t count, std::uint32_t flags = 0) {
        return base::template adopt<array>(base::create_raw(detail::c_string(name, "name").c_str(), count, nullptr, flags));
    }
    /// A named array holding a copy of `init`.
    static array create(std::string_view name, span<const T> init, std::uint32_t flags = 0) {
        return base::template adopt<array>(base::create_raw(detail::c_string(name, "name").c_str(), init.size(), init.data(), flags));
    }
    static array anonymous(std::size_t count, std::uint32_t flags = 0) {
        return base::template adopt<array>(base::create_anonymous_raw(count, nullptr, flags));
    }
    static array anonymous(span<const T> init, std::uint32_t flags = 0) {
        return base::template adopt<array>(base::create_anonymous_raw(init.size(), init.data(), flags));
    }
    static array open(std::string_view name, std::uint32_t flags = 0) { return base::template adopt<array>(base::open_raw(name, flags)); }
    static array from_fd(int fd, std::uint32_t flags = 0) { return base::template adopt<array>(base::from_fd_raw(fd, flags)); }

    /// Copies elements [start, start + out.size()) into `out` (not atomic as a whole: hold
    /// the lock if writers may run).
    void read(std::size_t start, span<T> out) const {
        detail::check(mpx_value_read(base::native_handle(), start, out.data(), out.size() * sizeof(T)));
    }
    /// Copies `in` over elements [start, start + in.size()).
    void write(std::size_t start, span<const T> in) {
        detail::check(mpx_value_write(base::native_handle(), start, in.data(), in.size() * sizeof(T)));
    }
    /// All elements as a vector (one read).
    std::vector<T> to_vector() const {
        std::vector<T> v(base::size());
        read(0, span<T>(v.data(), v.size()));
        return v;
    }
    /// Adds atomically to element `i` (integers); returns the old value.
    T fetch_add(std::size_t i, T delta) {
        static_assert(std::is_integral_v<T>, "fetch_add needs an integer type");
        std::int64_t old = 0;
        detail::check(mpx_value_fetch_add_i64(base::native_handle(), i, static_cast<std::int64_t>(delta), &old));
        return static_cast<T>(old);
    }
    /// Element `i` in place (zero-copy, unchecked, not synchronized).
    T& operator[](std::size_t i) const noexcept { return base::data()[i]; }
    T* begin() const noexcept { return base::data(); }
    T* end() const noexcept { return base::data() + base::size(); }

private:
    explicit array(mpx_value* p) noexcept : base(p) {}
};

namespace detail {
/// Bytes of anything contiguous with 1-byte elements (std::string, std::string_view,
/// std::vector<std::byte>, std::vector<char>, mpx::span<const std::byte>, ...).
template <class T>
span<const std::byte> as_bytes(const T& x) noexcept {
    static_assert(sizeof(*std::data(x)) == 1, "mpx::queue: messages are sequences of 1-byte elements");
    return span<const std::byte>(reinterpret_cast<const std::byte*>(std::data(x)), std::size(x));
}

/// Whether a status means "not now" (no room, no message, timed out) rather than an error.
inline bool not_now(mpx_status s) noexcept { return s == MPX_E_FULL || s == MPX_E_EMPTY || s == MPX_E_TIMEOUT; }

/// The value of a call made without a time limit (which cannot come back empty-handed).
template <class T>
T forever_value(std::optional<T>&& v) {
    if (!v) throw error(MPX_E_TIMEOUT, "queue: a wait without limit ended without a result");
    return std::move(*v);
}
}  // namespace detail

/// A bounded multi-producer multi-consumer queue of byte messages in shared memory (Python's
/// multiprocessing Queue, JoinableQueue and SimpleQueue underneath). Named queues are opened by
/// name from any language; anonymous ones are passed to children by fd(). Move-only; the
/// destructor closes the handle (it never shuts the queue down nor removes the name).
///
/// Calls without a timeout block; those with one return false / nullopt when it expires (a
/// zero timeout never waits). Errors throw mpx::error: MPX_E_CLOSED after shutdown(),
/// MPX_E_TOO_BIG for a message that can never fit, MPX_E_CORRUPT, ...
///
///     auto q = mpx::queue::create("jobs", 1 << 20);
///     q.put(std::string_view("hello"));
///     std::vector<std::byte> m = q.get();
class queue {
public:
    /// What the queue was created as.
    enum class variant : std::uint32_t {
        plain = 0,                       ///< multiprocessing.Queue
        joinable = MPX_QUEUE_JOINABLE,   ///< multiprocessing.JoinableQueue: task_done / join
        simple = MPX_QUEUE_SIMPLE,       ///< multiprocessing.SimpleQueue: no message limit
    };

    /// An open zero-copy put: write into data(), then commit(len). The destructor aborts an
    /// uncommitted reservation (nothing is published). Other producers wait while it is open,
    /// and this thread must not put to the queue meanwhile.
    class reservation {
    public:
        reservation() noexcept = default;
        reservation(reservation&& o) noexcept : q_(std::exchange(o.q_, nullptr)), data_(o.data_) {}
        reservation& operator=(reservation&& o) noexcept {
            if (this != &o) {
                abort();
                q_ = std::exchange(o.q_, nullptr);
                data_ = o.data_;
            }
            return *this;
        }
        reservation(const reservation&) = delete;
        reservation& operator=(const reservation&) = delete;
        ~reservation() { abort(); }

        /// Where to write: the reserved size, 8-byte aligned.
        span<std::byte> data() const noexcept { return data_; }
        /// Publishes the first `len` bytes (<= data().size()) as one message.
        void commit(std::size_t len) {
            if (!q_) throw error(MPX_E_STATE, "queue: commit of an ended reservation");
            detail::check(mpx_queue_commit(q_, len));
            q_ = nullptr;
        }
        /// Drops the reservation (also what the destructor does).
        void abort() noexcept {
            if (q_) mpx_queue_abort(std::exchange(q_, nullptr));
        }
        explicit operator bool() const noexcept { return q_ != nullptr; }

    private:
        friend class queue;
        reservation(mpx_queue* q, span<std::byte> d) noexcept : q_(q), data_(d) {}
        mpx_queue* q_ = nullptr;
        span<std::byte> data_;
    };

    /// An open zero-copy get: the next message in place. commit() removes it from the queue; the
    /// destructor (or abort()) leaves it there. Other consumers wait while it is open.
    class read_view {
    public:
        read_view() noexcept = default;
        read_view(read_view&& o) noexcept : q_(std::exchange(o.q_, nullptr)), data_(o.data_) {}
        read_view& operator=(read_view&& o) noexcept {
            if (this != &o) {
                abort();
                q_ = std::exchange(o.q_, nullptr);
                data_ = o.data_;
            }
            return *this;
        }
        read_view(const read_view&) = delete;
        read_view& operator=(const read_view&) = delete;
        ~read_view() { abort(); }

        /// The message's bytes (valid until commit or abort).
        span<const std::byte> data() const noexcept { return data_; }
        std::size_t size() const noexcept { return data_.size(); }
        /// Removes the message from the queue.
        void commit() {
            if (!q_) throw error(MPX_E_STATE, "queue: commit of an ended read");
            detail::check(mpx_queue_read_commit(q_));
            q_ = nullptr;
        }
        /// Leaves the message in the queue (also what the destructor does).
        void abort() noexcept {
            if (q_) mpx_queue_read_abort(std::exchange(q_, nullptr));
        }
        explicit operator bool() const noexcept { return q_ != nullptr; }

    private:
        friend class queue;
        read_view(mpx_queue* q, span<const std::byte> d) noexcept : q_(q), data_(d) {}
        mpx_queue* q_ = nullptr;
        span<const std::byte> data_;
    };

    /// An empty object (valid() is false).
    queue() noexcept = default;

    /// Creates a named queue holding at least `capacity` bytes of messages (each also takes an
    /// 8-byte header and is padded to 8) and at most `max_messages` messages (0: no limit).
    /// flags: flag::unlink_on_last_close, flag::mode_group, flag::mode_all.
    static queue create(std::string_view name, std::size_t capacity, std::uint64_t max_messages = 0,
                        variant v = variant::plain, std::uint32_t flags = 0) {
        std::string n = detail::c_string(name, "name");
        mpx_queue* p = nullptr;
        detail::check(mpx_queue_create(n.c_str(), capacity, max_messages, flags | static_cast<std::uint32_t>(v), &p));
        return queue(p);
    }

    /// Creates an anonymous queue; pass fd() to a child and open it there with from_fd().
    static queue anonymous(std::size_t capacity, std::uint64_t max_messages = 0, variant v = variant::plain) {
        mpx_queue* p = nullptr;
        detail::check(mpx_queue_create_anonymous(capacity, max_messages, static_cast<std::uint32_t>(v), &p));
        return queue(p);
    }

    /// Opens a named queue. Throws MPX_E_NOT_FOUND, MPX_E_KIND (not a queue), MPX_E_CORRUPT, ...
    static queue open(std::string_view name, std::uint32_t flags = 0) {
        std::string n = detail::c_string(name, "name");
        mpx_queue* p = nullptr;
        detail::check(mpx_queue_open(n.c_str(), flags, &p));
        return queue(p);
    }

    /// Opens the queue behind an inherited or received fd (duplicated; the caller keeps `fd`).
    static queue from_fd(int fd, std::uint32_t flags = 0) {
        mpx_queue* p = nullptr;
        detail::check(mpx_queue_open_fd(fd, flags, &p));
        return queue(p);
    }

    /// Removes a queue's name; processes that have it open keep it.
    static void unlink(std::string_view name) { detail::check(mpx_queue_unlink(detail::c_string(name, "name").c_str())); }
    /// Removes this queue's name if it still refers to this queue.
    void unlink() const { detail::check(mpx_queue_unlink_self(h_.get())); }

    /// Closes the handle now (the destructor does the same).
    void close() noexcept { h_.reset(); }
    bool valid() const noexcept { return static_cast<bool>(h_); }
    explicit operator bool() const noexcept { return valid(); }

    // ---- put ----

    /// Puts one message, waiting for room without limit.
    void put(span<const std::byte> msg) { detail::check(mpx_queue_put(h_.get(), msg.data(), msg.size(), MPX_FOREVER)); }
    void put(std::string_view msg) { put(detail::as_bytes(msg)); }

    /// Puts one message, waiting at most `timeout` for room; false if there was none.
    template <class Rep, class Period>
    bool put(span<const std::byte> msg, std::chrono::duration<Rep, Period> timeout) {
        mpx_status s = mpx_queue_put(h_.get(), msg.data(), msg.size(), detail::timeout_ns(timeout));
        if (detail::not_now(s)) return false;
        detail::check(s);
        return true;
    }
    template <class Rep, class Period>
    bool put(std::string_view msg, std::chrono::duration<Rep, Period> timeout) {
        return put(detail::as_bytes(msg), timeout);
    }

    /// Puts without waiting; false if there is no room.
    bool try_put(span<const std::byte> msg) { return put(msg, std::chrono::nanoseconds(0)); }
    bool try_put(std::string_view msg) { return try_put(detail::as_bytes(msg)); }

    /// Puts all the messages of `msgs` (a range of strings, byte vectors, spans, ...) at once,
    /// in order and next to each other, or none: waits at most `timeout` until all fit.
    /// Returns false if they did not fit in time; MPX_E_TOO_BIG if they never can.
    template <class Range, class Rep = std::chrono::nanoseconds::rep, class Period = std::chrono::nanoseconds::period>
    bool put_many(const Range& msgs, std::chrono::duration<Rep, Period> timeout = forever) {
        std::vector<std::size_t> lens;
        std::vector<std::byte> flat;
        for (const auto& m : msgs) {
            span<const std::byte> b = detail::as_bytes(m);
            lens.push_back(b.size());
            flat.insert(flat.end(), b.begin(), b.end());
        }
        mpx_status s = mpx_queue_put_many(h_.get(), flat.data(), lens.data(), lens.size(), detail::timeout_ns(timeout));
        if (detail::not_now(s)) return false;
        detail::check(s);
        return true;
    }

    /// Zero-copy put: room for a message of up to `max_len` bytes, written in place.
    reservation reserve(std::size_t max_len) { return detail::forever_value(reserve(max_len, forever)); }
    /// As reserve(max_len), waiting at most `timeout` for room (nullopt if there was none).
    template <class Rep, class Period>
    std::optional<reservation> reserve(std::size_t max_len, std::chrono::duration<Rep, Period> timeout) {
        void* p = nullptr;
        mpx_status s = mpx_queue_reserve(h_.get(), max_len, detail::timeout_ns(timeout), &p);
        if (detail::not_now(s)) return std::nullopt;
        detail::check(s);
        return reservation(h_.get(), span<std::byte>(static_cast<std::byte*>(p), max_len));
    }

    // ---- get ----

    /// Gets one message, waiting without limit. Throws MPX_E_CLOSED once the queue is shut
    /// down and empty.
    std::vector<std::byte> get() { return detail::forever_value(get(forever)); }

    /// Gets one message, waiting at most `timeout` (nullopt if none came).
    template <class Rep, class Period>
    std::optional<std::vector<std::byte>> get(std::chrono::duration<Rep, Period> timeout) {
        std::vector<std::byte> m(256);
        const std::int64_t t = detail::timeout_ns(timeout);
        for (;;) {
            std::size_t len = 0;
            mpx_status s = mpx_queue_get(h_.get(), m.data(), m.size(), &len, t);
            if (s == MPX_E_BUFFER_TOO_SMALL) {
                m.resize(len);  // the size it needs; another consumer may take it first: retry
                continue;
            }
            if (detail::not_now(s)) return std::nullopt;
            detail::check(s);
            m.resize(len);
            return m;
        }
    }

    /// Gets without waiting (nullopt if the queue is empty).
    std::optional<std::vector<std::byte>> try_get() { return get(std::chrono::nanoseconds(0)); }

    /// Gets one message into `buf` and returns its size, waiting at most `timeout` (nullopt if
    /// none came). Throws MPX_E_BUFFER_TOO_SMALL (leaving the message queued) if it does not fit.
    template <class Rep = std::chrono::nanoseconds::rep, class Period = std::chrono::nanoseconds::period>
    std::optional<std::size_t> get_into(span<std::byte> buf, std::chrono::duration<Rep, Period> timeout = forever) {
        std::size_t len = 0;
        mpx_status s = mpx_queue_get(h_.get(), buf.data(), buf.size(), &len, detail::timeout_ns(timeout));
        if (detail::not_now(s)) return std::nullopt;
        detail::check(s);
        return len;
    }

    /// Gets the messages that are ready, up to `max` (waiting at most `timeout` for the first);
    /// one lock round trip. Empty if none came in time.
    template <class Rep = std::chrono::nanoseconds::rep, class Period = std::chrono::nanoseconds::period>
    std::vector<std::vector<std::byte>> get_many(std::size_t max, std::chrono::duration<Rep, Period> timeout = forever) {
        std::vector<std::vector<std::byte>> out;
        std::vector<std::size_t> lens(max);
        std::vector<std::byte> buf(64 * 1024);
        const std::int64_t t = detail::timeout_ns(timeout);
        for (;;) {
            std::size_t count = 0;
            mpx_status s = mpx_queue_get_many(h_.get(), buf.data(), buf.size(), lens.data(), max, &count, t);
            if (s == MPX_E_BUFFER_TOO_SMALL) {
                buf.resize(lens[0]);
                continue;
            }
            if (detail::not_now(s)) return out;
            detail::check(s);
            std::size_t off = 0;
            for (std::size_t i = 0; i < count; i++) {
                out.emplace_back(buf.begin() + static_cast<std::ptrdiff_t>(off), buf.begin() + static_cast<std::ptrdiff_t>(off + lens[i]));
                off += lens[i];
            }
            return out;
        }
    }

    /// Zero-copy get: the next message in place (waits without limit).
    read_view read() { return detail::forever_value(read(forever)); }
    /// As read(), waiting at most `timeout` (nullopt if none came).
    template <class Rep, class Period>
    std::optional<read_view> read(std::chrono::duration<Rep, Period> timeout) {
        const void* p = nullptr;
        std::size_t len = 0;
        mpx_status s = mpx_queue_read(h_.get(), detail::timeout_ns(timeout), &p, &len);
        if (detail::not_now(s)) return std::nullopt;
        detail::check(s);
        return read_view(h_.get(), span<const std::byte>(static_cast<const std::byte*>(p), len));
    }

    // ---- state ----

    /// Shuts the queue down for every process: puts throw MPX_E_CLOSED, gets drain what is
    /// left and then throw MPX_E_CLOSED, blocked callers wake.
    void shutdown() { detail::check(mpx_queue_shutdown(h_.get())); }
    bool is_shutdown() const noexcept { return mpx_queue_is_shutdown(h_.get()); }

    /// Messages in the queue (exact when no put or get is half-way).
    std::size_t qsize() const noexcept { return mpx_queue_qsize(h_.get()); }
    bool empty() const noexcept { return mpx_queue_empty(h_.get()); }
    bool full() const noexcept { return mpx_queue_full(h_.get()); }
    /// Ring bytes (>= the capacity asked for).
    std::size_t capacity() const noexcept { return mpx_queue_capacity(h_.get()); }
    /// The largest message that fits.
    std::size_t max_message() const noexcept { return mpx_queue_max_message(h_.get()); }
    std::uint64_t max_messages() const noexcept { return mpx_queue_max_messages(h_.get()); }
    std::size_t bytes_used() const noexcept { return mpx_queue_bytes_used(h_.get()); }
    variant get_variant() const noexcept { return static_cast<variant>(mpx_queue_variant(h_.get())); }
    /// Repairs of a side left by a process that died in the middle of a call.
    std::uint64_t recoveries() const noexcept { return mpx_queue_recoveries(h_.get()); }

    // ---- JoinableQueue ----

    /// Marks one task done. Throws MPX_E_STATE if called more times than messages were put.
    void task_done() { detail::check(mpx_queue_task_done(h_.get())); }
    /// Waits until every message put has been marked done.
    void join() { detail::check(mpx_queue_join(h_.get(), MPX_FOREVER)); }
    /// As join(), at most `timeout`; false if tasks are still unfinished.
    template <class Rep, class Period>
    bool join(std::chrono::duration<Rep, Period> timeout) {
        mpx_status s = mpx_queue_join(h_.get(), detail::timeout_ns(timeout));
        if (s == MPX_E_TIMEOUT) return false;
        detail::check(s);
        return true;
    }
    std::uint64_t unfinished() const noexcept { return mpx_queue_unfinished(h_.get()); }

    /// The name ("" for an anonymous or closed queue).
    std::string_view name() const noexcept {
        const char* n = mpx_queue_name(h_.get());
        return n ? std::string_view(n) : std::string_view();
    }
    /// The segment's fd, owned by this object.
    int fd() const {
        int fd = -1;
        detail::check(mpx_queue_fd(h_.get(), &fd));
        return fd;
    }
    mpx_queue* native_handle() const noexcept { return h_.get(); }

private:
    explicit queue(mpx_queue* p) noexcept : h_(p) {}
    detail::handle<mpx_queue, &mpx_queue_close> h_;
};

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
