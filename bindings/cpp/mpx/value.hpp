// mpx/value.hpp: mpx::value<T> and mpx::array<T>, typed shared values and arrays (Python's
// Value and Array), optionally with an embedded recursive lock (see lockable.hpp).

#ifndef MPX_VALUE_HPP
#define MPX_VALUE_HPP

#include "core.hpp"
#include "lockable.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpx {

/// Flags of values and arrays (combine with the flag:: values of core.hpp).
namespace flag {
/// Value / array: embed a recursive lock (Python's lock=True), for lock()/unlock().
inline constexpr std::uint32_t value_lock = MPX_VALUE_LOCK;
}  // namespace flag

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

// fetch_add's inline path: the atomic on the element itself (C++20 std::atomic_ref, else the
// GCC/Clang builtins), sequentially consistent as mpx_value_fetch_add_i64 is. Without either,
// fetch_add calls the library.
#if defined(__cpp_lib_atomic_ref) || defined(__GNUC__) || defined(__clang__)
#define MPX_HPP_ELEM_ATOMICS 1
template <class T>
inline T elem_fetch_add(T* p, T delta) noexcept {
#if defined(__cpp_lib_atomic_ref)
    return std::atomic_ref<T>(*p).fetch_add(delta, std::memory_order_seq_cst);
#else
    return __atomic_fetch_add(p, delta, __ATOMIC_SEQ_CST);
#endif
}
#endif

/// The writable integer elements of a handle, from mpx_value_int_ptr (checked once, at open:
/// integer T of the element's size, a writable handle), or none. Moving empties the source, so
/// a moved-from or closed value never reaches a stale address.
template <class T>
struct elem_cache {
    T* p = nullptr;
    std::size_t n = 0;
    elem_cache() noexcept = default;
    elem_cache(elem_cache&& o) noexcept : p(std::exchange(o.p, nullptr)), n(std::exchange(o.n, 0)) {}
    elem_cache& operator=(elem_cache&& o) noexcept {
        T* op = std::exchange(o.p, nullptr);
        std::size_t on = std::exchange(o.n, 0);
        p = op;
        n = on;
        return *this;
    }
    /// Element i's address if the inline path may use it, else nullptr (the library decides).
    T* at(std::size_t i) const noexcept { return i < n ? p + i : nullptr; }
};

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
    void close() noexcept {
        elems_ = elem_cache<T>();
        h_.reset();
    }
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
    explicit value_base(mpx_value* p) noexcept : h_(p) {
        // Asked only when it can succeed but for a read-only handle (a failure just leaves the
        // cache empty: fetch_add then gets the library's error).
        void* e = nullptr;
        std::size_t n = mpx_value_count(p);
        if (std::is_integral_v<T> && n > 0 && mpx_value_int_ptr(p, 0, sizeof(T), true, &e) == MPX_OK) {
            elems_.p = static_cast<T*>(e);
            elems_.n = n;
        }
    }

    /// fetch_add of element i: inline when the cache has it, else through the library.
    T fetch_add_at(std::size_t i, T delta) {
        static_assert(std::is_integral_v<T>, "fetch_add needs an integer type");
#if defined(MPX_HPP_ELEM_ATOMICS)
        if (T* e = elems_.at(i)) return elem_fetch_add(e, delta);
#endif
        std::int64_t old = 0;
        check(mpx_value_fetch_add_i64(h_.get(), i, static_cast<std::int64_t>(delta), &old));
        return static_cast<T>(old);
    }

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
    elem_cache<T> elems_;
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
    /// Inline: the atomic on the element (mpx_value_int_ptr), no library call.
    T fetch_add(T delta) { return base::fetch_add_at(0, delta); }
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
    /// Adds atomically to element `i` (integers; wraps in T's width); returns the old value.
    /// Inline for an index in range (mpx_value_int_ptr); MPX_E_INVALID otherwise.
    T fetch_add(std::size_t i, T delta) { return base::fetch_add_at(i, delta); }
    /// Element `i` in place (zero-copy, unchecked, not synchronized).
    T& operator[](std::size_t i) const noexcept { return base::data()[i]; }
    T* begin() const noexcept { return base::data(); }
    T* end() const noexcept { return base::data() + base::size(); }

private:
    explicit array(mpx_value* p) noexcept : base(p) {}
};

}  // namespace mpx

#endif  // MPX_VALUE_HPP
