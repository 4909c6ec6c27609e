// mpx/core.hpp: what every capability header of the C++ binding builds on: the library and
// C ABI versions, status names, the create/open flags, mpx::forever, mpx::error and the
// status check, the C string and timeout conversions, the move-only detail::handle, and
// mpx::span (std::span under C++20). See mpx.hpp for the binding as a whole.

#ifndef MPX_CORE_HPP
#define MPX_CORE_HPP

#include <mpx.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
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
/// Buffers (create only): do not reserve the memory up front (fast create of any size, but a
/// full /dev/shm then kills the first toucher of an unbacked page with SIGBUS).
inline constexpr std::uint32_t noreserve = MPX_F_NORESERVE;
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

/// A C string from the C ABI as a view ("" for NULL).
inline std::string_view c_name_view(const char* n) noexcept { return n ? std::string_view(n) : std::string_view(); }

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

}  // namespace mpx

#endif  // MPX_CORE_HPP
