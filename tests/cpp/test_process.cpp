// test_process.cpp: mpx::process (bindings/cpp/mpx.hpp) with real processes: spawn, fork with
// lambdas, entry points by each start method, exceptions, destructor policies, identity.
// Prints one line per check and "test_process_cpp: N passed, M failed".

#include <mpx.hpp>

#include "../c/testutil.h"

#include <poll.h>
#include <signal.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

static_assert(!std::is_copy_constructible_v<mpx::process>, "process is move-only");
static_assert(std::is_nothrow_move_constructible_v<mpx::process>, "moves do not throw");

void test_spawn() {
    auto p = mpx::process::spawn("sh", {"sh", "-c", "exit 5"});
    CHECK(p.pid() > 0, "spawn gives a pid");
    CHECK(p.join(10s) == 5, "exit status 5");
    CHECK(p.exitcode() == 5, "exitcode after join");

    auto s = mpx::process::spawn("sleep", {"sleep", "30"});
    CHECK(!s.join(20ms).has_value(), "join with timeout returns nullopt while running");
    CHECK(s.is_alive(), "is_alive while running");
    CHECK(!s.exitcode().has_value(), "no exitcode while running");
    struct pollfd pfd = {s.sentinel(), POLLIN, 0};
    CHECK(poll(&pfd, 1, 0) == 0, "sentinel not readable while running");
    s.terminate();
    CHECK(poll(&pfd, 1, 10000) == 1, "sentinel readable after terminate");
    CHECK(s.join() == -SIGTERM, "terminated: -SIGTERM");

    try {
        mpx::process::spawn("mpx-no-such-program-cpp", {"x"});
        CHECK(false, "missing program throws");
    } catch (const mpx::error& e) {
        CHECK(e.status() == MPX_E_NOT_FOUND, "missing program: %s (%s)", e.status_name(), e.what());
    }

    mpx::process_options o;
    o.env("MPX_CPP_VAR", "v1").stdio_null(1).name("sp");
    auto e = mpx::process::spawn("sh", {"sh", "-c", "test \"$MPX_CPP_VAR\" = v1"}, o);
    CHECK(e.name() == "sp", "name from options");
    CHECK(e.join(10s) == 0, "environment reaches the child");
}

void test_fork() {
    int base = 10;
    std::vector<int> captured{1, 2, 3};
    auto p = mpx::process::fork([&] { return base + static_cast<int>(captured.size()); });
    CHECK(p.join(10s) == 13, "lambda result is the exit code");
    auto v = mpx::process::fork([] {});
    CHECK(v.join(10s) == 0, "void lambda exits 0");
    auto t = mpx::process::fork([]() -> int { throw std::runtime_error("thrown in child"); });
    CHECK(t.join(10s) == 1, "uncaught exception exits 1");
    auto k = mpx::process::fork([] {
        raise(SIGKILL);
        return 0;
    });
    CHECK(k.join(10s) == -SIGKILL, "killed child: -SIGKILL");
    mpx::process_options o;
    o.name("forked-one");
    auto n = mpx::process::fork([] { return mpx::this_process::name() == "forked-one" ? 0 : 1; }, o);
    CHECK(n.join(10s) == 0, "child knows its name");
    auto pp = mpx::process::fork([me = mpx::this_process::pid()] { return mpx::this_process::parent_pid() == me ? 0 : 1; });
    CHECK(pp.join(10s) == 0, "child knows its parent");
}

void test_entries() {
    for (auto m : {mpx::start_method::fork, mpx::start_method::spawn, mpx::start_method::forkserver}) {
        auto p = mpx::process::start(m, "count", "abcdef");
        CHECK(p.join(20s) == 6, "entry by method %u sees its argument", static_cast<unsigned>(m));
        auto t = mpx::process::start(m, "throw");
        CHECK(t.join(20s) == 1, "entry throwing exits 1 (method %u)", static_cast<unsigned>(m));
        try {
            mpx::process::start(m, "unknown-entry");
            CHECK(false, "unknown entry throws");
        } catch (const mpx::error& e) {
            CHECK(e.status() == MPX_E_NOT_FOUND, "unknown entry: %s", e.status_name());
        }
    }
}

void test_destructor_policies() {
    int pid = 0;
    {
        auto p = mpx::process::spawn("sleep", {"sleep", "30"});
        pid = p.pid();
        p.set_on_destroy(mpx::process::on_destroy::terminate);
    }
    CHECK(kill(pid, 0) == -1, "terminate policy: the child is gone and reaped after the destructor");
    {
        auto p = mpx::process::spawn("sh", {"sh", "-c", "sleep 0.1"});
        pid = p.pid();
        p.set_on_destroy(mpx::process::on_destroy::join);
    }
    CHECK(kill(pid, 0) == -1, "join policy: reaped when the destructor returns");
    {
        auto p = mpx::process::spawn("sh", {"sh", "-c", "sleep 0.1"});
        pid = p.pid();
    }
    bool gone = false;
    for (int i = 0; i < 500 && !gone; i++) {
        gone = kill(pid, 0) == -1;
        if (!gone) usleep(10000);
    }
    CHECK(gone, "detach policy: reaped in the background, no zombie");
    mpx::process moved = mpx::process::spawn("true", {"true"});
    mpx::process other = std::move(moved);
    CHECK(!moved.valid() && other.valid(), "move transfers the handle");
    CHECK(other.join(10s) == 0, "moved-to handle joins");
}

}  // namespace

int main(int argc, char** argv) {
    mpx::register_entry("count", [](const std::byte*, std::size_t n) { return static_cast<int>(n); });
    mpx::register_entry("throw", [](const std::byte*, std::size_t) -> int { throw std::logic_error("entry threw"); });
    mpx::init(argc, argv);
    t_init("test_process_cpp");
    CHECK(mpx::this_process::name() == "MainProcess", "main process name");
    CHECK(mpx::cpu_count() >= 1, "cpu_count");
    test_spawn();
    test_fork();
    test_entries();
    test_destructor_policies();
    return t_finish();
}
