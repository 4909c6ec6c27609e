// testutil.hpp: what the C++ tests share on top of ../c/testutil.h (CHECK and friends).
#ifndef MPX_TESTS_CPP_TESTUTIL_HPP
#define MPX_TESTS_CPP_TESTUTIL_HPP

#include <mpx.hpp>

#include "../c/testutil.h"

#include <exception>
#include <string>

// Checks that `f()` throws mpx::error with status `want` and `needle` in its message.
template <class F>
void expect_error(F&& f, mpx_status want, const char* needle, const char* desc) {
    try {
        f();
        CHECK(false, "%s: threw nothing, wanted %s", desc, mpx_status_name(want));
    } catch (const mpx::error& e) {
        bool ok = e.status() == want && std::string(e.status_name()) == mpx_status_name(want) &&
                  std::string(e.what()).find(needle) != std::string::npos && e.what()[0] != 0;
        CHECK(ok, "%s -> mpx::error %s (\"%s\")", desc, e.status_name(), e.what());
    } catch (const std::exception& e) {
        CHECK(false, "%s: threw another exception: %s", desc, e.what());
    }
}

#endif
