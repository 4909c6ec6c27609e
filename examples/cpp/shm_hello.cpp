// shm_hello.cpp: a named shared-memory buffer from C++ (RAII, exceptions, typed views). Any
// process, in any language, can open "hello-cpp" by name while it exists.
#include <mpx.hpp>
#include <cstdio>

int main() try {
    auto shm = mpx::shared_memory::create("hello-cpp", 1024 * sizeof(int), mpx::flag::unlink_on_last_close);
    mpx::span<int> v = shm.as<int>();
    for (std::size_t i = 0; i < v.size(); i++) v[i] = static_cast<int>(i * i);
    auto other = mpx::shared_memory::open("hello-cpp");  // as another process would
    std::printf("hello from C++: %zu ints, the last is %d\n", other.as<int>().size(), other.as<int>().back());
    return 0;  // both close here; the last close removes the name
} catch (const mpx::error& e) {
    std::fprintf(stderr, "mpx: %s: %s\n", e.status_name(), e.what());
    return 1;
}
