"""Test data the cross-language tests share with the C and C++ tools (tests/c/tool_util.h,
tests/cpp/tool_util.hpp): the byte pattern and the FNV-1a checksum."""

import numpy as np


def pattern(n, seed):
    """Bytes j = (j * 31 + seed) mod 256 (period 256, so built from one block)."""
    block = bytes(((j * 31 + seed) & 0xFF) for j in range(256))
    return (block * (n // 256 + 1))[:n]


def pattern_array(n, seed):
    """The same pattern as a numpy uint8 array."""
    return ((np.arange(n, dtype=np.uint64) * 31 + seed) & 0xFF).astype(np.uint8)


def fnv1a(data, h=0x811C9DC5):
    """32-bit FNV-1a of a bytes-like object (``h``: the running value, to chain calls)."""
    for b in bytes(data):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h
