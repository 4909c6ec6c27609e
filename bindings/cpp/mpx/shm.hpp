// mpx/shm.hpp: mpx::shared_memory, a named or anonymous shared-memory buffer.

#ifndef MPX_SHM_HPP
#define MPX_SHM_HPP

#include "core.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace mpx {

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

}  // namespace mpx

#endif  // MPX_SHM_HPP
