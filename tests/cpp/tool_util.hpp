// tool_util.hpp: what the C++ test tools (tests/cpp/tool_*.cpp) share: strict argument
// parsing, the byte pattern and the FNV-1a checksum that the cross-language tests agree on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>

namespace tool {

// The tool's name for messages ("tool_shm (C++)"); each tool defines it.
extern const char* const name;

// A decimal number in 0..max (no sign, nothing after it), or nullopt after saying why.
inline std::optional<unsigned long long> number(const std::string& s, unsigned long long max) {
    try {
        std::size_t used = 0;
        if (s.empty() || s[0] == '-') throw std::invalid_argument(s);
        unsigned long long v = std::stoull(s, &used, 10);
        if (used == s.size() && v <= max) return v;
    } catch (const std::exception&) {
    }
    std::cerr << name << ": '" << s << "' is not a number in 0.." << max << "\n";
    return std::nullopt;
}

// Byte j of the test pattern with `seed`: (j * 31 + seed) mod 256, as the Python and C tests.
inline std::uint8_t pattern(std::size_t j, unsigned seed) { return static_cast<std::uint8_t>(j * 31u + seed); }

// 32-bit FNV-1a of n bytes.
inline std::uint32_t fnv1a(const void* data, std::size_t n) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    std::uint32_t h = 0x811c9dc5u;
    for (std::size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x01000193u;
    }
    return h;
}

}  // namespace tool
