// test_shm.cpp: mpx::shared_memory (bindings/cpp/mpx.hpp) with real processes.
// Built twice by the Makefile, as C++17 (minimal mpx::span) and C++20 (std::span); both run.
// Prints one line per check and "test_shm_cpp: N passed, M failed"; exits non-zero on failure.

#include <mpx.hpp>

#include "testutil.hpp"

#include <sys/resource.h>

#include <cstdint>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

namespace {

// Runs `f`; checks that it throws mpx::error with `want` and a message containing `needle`.
struct point {
    float x, y;
};

// Static properties of the binding: move-only handles, spans that convert to const.
static_assert(!std::is_copy_constructible_v<mpx::shared_memory>, "shared_memory is move-only");
static_assert(!std::is_copy_assignable_v<mpx::shared_memory>, "shared_memory is move-only");
static_assert(std::is_nothrow_move_constructible_v<mpx::shared_memory>, "moves do not throw");
static_assert(std::is_nothrow_move_assignable_v<mpx::shared_memory>, "moves do not throw");
static_assert(std::is_base_of_v<std::runtime_error, mpx::error>, "mpx::error is a runtime_error");
static_assert(std::is_convertible_v<mpx::span<int>, mpx::span<const int>>, "span<T> -> span<const T>");
static_assert(!std::is_convertible_v<mpx::span<const int>, mpx::span<int>>, "no span<const T> -> span<T>");
#if MPX_HPP_STD_SPAN
static_assert(std::is_same_v<mpx::span<int>, std::span<int>>, "C++20: mpx::span is std::span");
#endif

void test_version() {
    CHECK(mpx::version() == mpx_version() && !mpx::version().empty(), "mpx::version() = %s", mpx_version());
    CHECK(mpx::abi_version() == MPX_ABI_VERSION, "mpx::abi_version() == MPX_ABI_VERSION");
    mpx::check_abi_version();
    CHECK(true, "mpx::check_abi_version() accepts the loaded library");
    CHECK(mpx::status_name(MPX_E_KIND) == "MPX_E_KIND", "mpx::status_name");
    CHECK(mpx::detail::timeout_ns(std::chrono::milliseconds(5)) == 5000000 &&
              mpx::detail::timeout_ns(std::chrono::seconds(-1)) == MPX_FOREVER &&
              mpx::detail::timeout_ns(mpx::forever) == MPX_FOREVER && mpx::detail::timeout_ns(std::chrono::seconds(0)) == 0 &&
              mpx::detail::timeout_ns(std::chrono::hours::max()) == INT64_MAX,
          "timeout_ns: 5 ms, negative = forever, 0, hours::max() clamped");
    CHECK(MPX_HPP_STD_SPAN == (__cplusplus >= 202002L ? 1 : 0), "mpx::span is %s under C++%ld",
          MPX_HPP_STD_SPAN ? "std::span" : "the C++17 fallback", (long)(__cplusplus / 100 % 100));
}

void test_basics() {
    const std::string name = t_name("basic");
    const std::size_t size = 3 * 4096 + 6;
    auto shm = mpx::shared_memory::create(name, size);
    CHECK(shm.valid() && static_cast<bool>(shm), "create gives a valid object");
    CHECK(shm.size() == size, "size() is %zu", size);
    CHECK(shm.name() == name, "name() is the name");
    CHECK(reinterpret_cast<std::uintptr_t>(shm.data()) % 4096 == 0, "data() is page-aligned");
    CHECK(shm.fd() >= 0 && shm.data_offset() % 4096 == 0, "fd() and data_offset()");
    CHECK(shm.native_handle() != nullptr && mpx_shm_ptr(shm.native_handle()) == shm.data(), "native_handle()");

    mpx::span<std::byte> bytes = shm.bytes();
    CHECK(bytes.size() == size && bytes.size_bytes() == size && !bytes.empty() && bytes.data() == shm.data(), "bytes() spans the buffer");
    mpx::span<std::uint32_t> words = shm.as<std::uint32_t>();
    CHECK(words.size() == size / 4 && words.size_bytes() == size / 4 * 4, "as<uint32_t>() has size()/4 elements");
    for (std::size_t i = 0; i < words.size(); i++) words[i] = static_cast<std::uint32_t>(i * 3);
    std::uint64_t sum = 0;
    for (std::uint32_t w : words) sum += w;
    std::uint64_t n = words.size();
    CHECK(sum == 3 * n * (n - 1) / 2, "range-for over the span sums what was written");
    CHECK(words.front() == 0 && words.back() == 3 * (n - 1), "front() and back()");
    CHECK(words.first(4).size() == 4 && words.first(4)[3] == 9, "first(4)");
    CHECK(words.last(2).size() == 2 && words.last(2)[1] == words.back(), "last(2)");
    CHECK(words.subspan(10, 5).size() == 5 && words.subspan(10, 5)[0] == 30 && words.subspan(10).size() == n - 10, "subspan");
    mpx::span<const std::uint32_t> cwords = words;
    CHECK(cwords.data() == words.data() && cwords.size() == words.size(), "span<T> converts to span<const T>");
    CHECK(static_cast<std::uint8_t>(bytes[4]) == 3, "bytes() and as<T>() view the same memory");
    auto points = shm.as<point>();
    CHECK(points.size() == size / sizeof(point), "as<struct>() has size()/sizeof(T) elements");
    auto cview = shm.as<const std::uint32_t>();
    CHECK(cview[7] == 21, "as<const T>()");

    // A second object over the same name sees the same bytes.
    auto other = mpx::shared_memory::open(name);
    CHECK(other.as<std::uint32_t>()[100] == 300 && other.data() != shm.data(), "open() maps the same bytes elsewhere");
    other.as<std::uint32_t>()[100] = 7;
    CHECK(words[100] == 7, "writes are shared between the two mappings");

    expect_error([&] { mpx::shared_memory::create(name, 16); }, MPX_E_EXISTS, "already exists", "create an existing name");
    shm.unlink();
    CHECK(!t_exists(name.c_str()), "unlink() removed the name");
    CHECK(words[100] == 7, "still usable after unlink()");
    expect_error([&] { mpx::shared_memory::open(name); }, MPX_E_NOT_FOUND, name.c_str(), "open after unlink");
    expect_error([&] { shm.unlink(); }, MPX_E_NOT_FOUND, name.c_str(), "unlink() twice");
    expect_error([&] { mpx::shared_memory::unlink(name); }, MPX_E_NOT_FOUND, "no such object", "static unlink of a missing name");
}

void test_moves() {
    const std::string name = t_name("move");
    auto a = mpx::shared_memory::create(name, 4096);
    void* p = a.data();
    a.as<int>()[0] = 42;
    mpx::shared_memory b(std::move(a));
    CHECK(!a && !a.valid() && a.data() == nullptr && a.size() == 0 && a.name().empty(), "a moved-from object is empty");
    CHECK(b && b.data() == p && b.as<int>()[0] == 42 && b.name() == name, "the moved-to object owns the mapping");
    expect_error([&] { (void)a.fd(); }, MPX_E_INVALID, "NULL", "fd() of a moved-from object");
    expect_error([&] { a.unlink(); }, MPX_E_INVALID, "closed", "unlink() of a moved-from object");
    CHECK(a.bytes().empty() && a.as<int>().empty(), "views of a moved-from object are empty");

    // Move-assigning over a live object closes it: shown with unlink-on-last-close.
    const std::string name2 = t_name("move2");
    auto c = mpx::shared_memory::create(name2, 4096, mpx::flag::unlink_on_last_close);
    CHECK(t_exists(name2.c_str()), "flagged object exists");
    c = std::move(b);
    CHECK(!t_exists(name2.c_str()), "move-assignment closed the previous buffer (its name went with its last user)");
    CHECK(c.name() == name && c.as<int>()[0] == 42, "and took the moved buffer");
    c = std::move(c);
    CHECK(c.valid() && c.name() == name, "self-move-assignment keeps the buffer");

    std::vector<mpx::shared_memory> v;
    for (int i = 0; i < 4; i++) v.push_back(mpx::shared_memory::anonymous(4096));  // reallocation moves
    v.push_back(std::move(c));
    bool all = true;
    for (auto& s : v) all = all && s.valid();
    CHECK(all && v.back().name() == name, "move-only objects live in a growing std::vector");

    v.back().close();
    v.back().close();
    CHECK(!v.back().valid(), "close() twice is harmless");
    {
        mpx::shared_memory empty;
        CHECK(!empty && empty.size() == 0, "a default-constructed object is empty");
    }
    mpx::shared_memory::unlink(name);
}

void test_errors() {
    expect_error([] { mpx::shared_memory::open(t_name("missing")); }, MPX_E_NOT_FOUND, "no such object", "open a missing name");
    expect_error([] { mpx::shared_memory::create("", 16); }, MPX_E_INVALID, "empty", "empty name");
    expect_error([] { mpx::shared_memory::create(std::string(201, 'x'), 16); }, MPX_E_INVALID, "201", "201-byte name");
    expect_error([] { mpx::shared_memory::create("a/b", 16); }, MPX_E_INVALID, "not allowed", "name with '/'");
    expect_error([] { mpx::shared_memory::create("\xff", 16); }, MPX_E_INVALID, "UTF-8", "non-UTF-8 name");
    expect_error([] { mpx::shared_memory::create(std::string_view("ab\0cd", 5), 16); }, MPX_E_INVALID, "NUL", "name with an embedded NUL");
    CHECK(!t_exists("ab"), "the embedded-NUL name did not create its prefix");
    expect_error([] { mpx::shared_memory::create(t_name("zero"), 0); }, MPX_E_INVALID, "size", "size 0");
    expect_error([] { mpx::shared_memory::anonymous(0); }, MPX_E_INVALID, "size", "anonymous size 0");
    expect_error([] { mpx::shared_memory::create(t_name("flag"), 16, 0x100); }, MPX_E_INVALID, "flag", "unknown flag");
    expect_error([] { mpx::shared_memory::create(t_name("ro"), 16, mpx::flag::read_only); }, MPX_E_INVALID, "READ_ONLY",
                 "create read-only");
    expect_error([] { mpx::shared_memory::from_fd(-1); }, MPX_E_INVALID, "file descriptor", "from_fd(-1)");
    auto anon = mpx::shared_memory::anonymous(100);
    expect_error([&] { anon.unlink(); }, MPX_E_INVALID, "no name", "unlink() of an anonymous buffer");

    // A segment of another kind (header rewritten by hand, checksum fixed): MPX_E_KIND.
    const std::string name = t_name("kind");
    mpx::shared_memory::create(name, 4096).close();
    CHECK(t_patch(name.c_str(), T_OFF_KIND, 4, 6, 1) == 0, "rewrite the header's kind to 6 (event)");
    expect_error([&] { mpx::shared_memory::open(name); }, MPX_E_KIND, "event", "open a segment of another kind");
    CHECK(t_patch(name.c_str(), T_OFF_VERSION, 4, 3, 1) == 0, "rewrite the layout version to 3");
    expect_error([&] { mpx::shared_memory::open(name); }, MPX_E_VERSION, "version 3", "open a segment of layout version 3");
    mpx::shared_memory::unlink(name);

    // The exception is catchable as std::runtime_error with the same message.
    try {
        mpx::shared_memory::open("no-such-object-anywhere");
        CHECK(false, "open threw");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("no-such-object-anywhere") != std::string::npos, "caught as std::runtime_error: %s", e.what());
    }
}

void test_processes() {
    const std::string name = t_name("fork");
    auto shm = mpx::shared_memory::create(name, 1 << 16);
    auto f = shm.as<float>();
    for (std::size_t i = 0; i < f.size(); i++) f[i] = static_cast<float>(i) * 0.5f;
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        int code = 0;
        try {
            auto mine = mpx::shared_memory::open(name);
            auto g = mine.as<float>();
            if (g.size() != (1 << 16) / 4) code = 10;
            for (std::size_t i = 0; i < g.size() && code == 0; i++)
                if (g[i] != static_cast<float>(i) * 0.5f) code = 11;
            for (auto& x : g) x = -x;
        } catch (const mpx::error& e) {
            std::fprintf(stderr, "child: %s: %s\n", e.status_name(), e.what());
            code = 20;
        }
        _exit(code);  // the child's RAII objects closed above; _exit skips the parent's atexit
    }
    int status = t_wait(pid, 30);
    CHECK(t_exited(status, 0), "forked child opened by name, read the floats and negated them (status %#x)", status);
    bool neg = true;
    for (std::size_t i = 0; i < f.size(); i++) neg = neg && f[i] == -static_cast<float>(i) * 0.5f;
    CHECK(neg, "parent sees every float the child negated");

    // Anonymous buffer shared with a forked child through from_fd.
    auto anon = mpx::shared_memory::anonymous(4096);
    anon.as<std::uint64_t>()[0] = 0x1122334455667788ull;
    pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        try {
            auto mine = mpx::shared_memory::from_fd(anon.fd());
            if (mine.as<std::uint64_t>()[0] != 0x1122334455667788ull) _exit(10);
            mine.as<std::uint64_t>()[1] = 99;
        } catch (const mpx::error&) {
            _exit(20);
        }
        _exit(0);
    }
    status = t_wait(pid, 30);
    CHECK(t_exited(status, 0) && anon.as<std::uint64_t>()[1] == 99, "anonymous buffer shared with a child via from_fd(fd())");

    // Read-only view: a write faults in the child.
    auto ro = mpx::shared_memory::open(name, mpx::flag::read_only);
    CHECK(ro.as<const float>()[2] == -1.0f, "read-only open reads");
    pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        volatile float* p = ro.as<float>().data();
        p[2] = 1.0f;
        _exit(0);
    }
    status = t_wait(pid, 30);
    CHECK(t_signaled(status, SIGSEGV), "writing through a read-only view kills the writer with SIGSEGV");
    CHECK(f[2] == -1.0f, "the buffer is unchanged");
    shm.unlink();

    // unlink_on_last_close with RAII scopes.
    const std::string n2 = t_name("scope");
    {
        auto s1 = mpx::shared_memory::create(n2, 4096, mpx::flag::unlink_on_last_close);
        {
            auto s2 = mpx::shared_memory::open(n2);
        }
        CHECK(t_exists(n2.c_str()), "the name stays while one object is alive");
    }
    CHECK(!t_exists(n2.c_str()), "the name goes when the last object leaves scope");
}

}  // namespace

int main() {
    t_init("test_shm_cpp");
    try {
        test_version();
        test_basics();
        test_moves();
        test_errors();
        test_processes();
    } catch (const mpx::error& e) {
        CHECK(false, "unexpected mpx::error %s: %s", e.status_name(), e.what());
    }
    return t_finish();
}
