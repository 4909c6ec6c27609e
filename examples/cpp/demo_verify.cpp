// demo_verify.cpp: step 3 of `make demo` (examples/demo.py). Opens the float32 buffer NAME, checks
// that every value is 2 * (i * 0.5) + 1 (a C program wrote the ramp, Python transformed it in
// place), and removes the name.
//
// usage: demo_verify NAME COUNT

#include <mpx.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
    if (argc != 3 || std::atol(argv[2]) <= 0) {
        std::cerr << "usage: demo_verify NAME COUNT\n";
        return 2;
    }
    const std::size_t count = static_cast<std::size_t>(std::atol(argv[2]));
    try {
        auto shm = mpx::shared_memory::open(argv[1]);
        mpx::span<const float> y = shm.as<const float>();
        std::size_t bad = 0;
        for (std::size_t i = 0; i < y.size(); i++)
            if (y[i] != 2.0f * (static_cast<float>(i) * 0.5f) + 1.0f && bad++ < 3)
                std::cerr << "demo_verify: y[" << i << "] = " << y[i] << ", expected " << 2.0f * (i * 0.5f) + 1.0f << "\n";
        shm.unlink();  // done with it: the name goes now, the memory when the last user closes
        if (y.size() != count || bad) {
            std::cerr << "demo_verify: FAILED: " << y.size() << " floats (expected " << count << "), " << bad << " wrong\n";
            return 1;
        }
        std::printf("[C++]    demo_verify: all %zu floats equal 2 * (i * 0.5) + 1 (y[%zu] = %g); removed mpx.%s\n", y.size(),
                    y.size() - 1, static_cast<double>(y.back()), argv[1]);
        return 0;
    } catch (const mpx::error& e) {
        std::cerr << "demo_verify: " << e.status_name() << ": " << e.what() << "\n";
        return 1;
    }
}
