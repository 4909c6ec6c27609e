// mpx/queue.hpp: mpx::queue, a bounded multi-producer multi-consumer queue of byte messages
// in shared memory, with zero-copy reservations and reads.

#ifndef MPX_QUEUE_HPP
#define MPX_QUEUE_HPP

#include "core.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mpx {

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
    /// shutdown(), waiting at most `timeout` for a producer in progress; false if it held its
    /// side that long (the queue is then not shut down).
    template <class Rep, class Period>
    bool shutdown(std::chrono::duration<Rep, Period> timeout) {
        mpx_status s = mpx_queue_shutdown_timeout(h_.get(), detail::timeout_ns(timeout));
        if (s == MPX_E_TIMEOUT) return false;
        detail::check(s);
        return true;
    }
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

}  // namespace mpx

#endif  // MPX_QUEUE_HPP
