// The checksum of a cached block: whether the bytes in a cache file are still the ones
// fetched (a torn or corrupted record is dropped, never served). Not cryptographic: it
// catches flipped bits, torn pages and bytes of another block, which is what a crash or
// a bad disk makes. 64-bit multiply-rotate rounds over 8-byte words (each word's bits
// reach every output bit through the final mix), folded to 32 bits; ~1 cycle per byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace cmkit {

inline uint32_t blockChecksum(const uint8_t* p, size_t n, uint32_t seed) {
  constexpr uint64_t k1 = 0x9E3779B185EBCA87ull;
  constexpr uint64_t k2 = 0xC2B2AE3D27D4EB4Full;
  uint64_t h = (static_cast<uint64_t>(seed) << 32 | seed) ^ (n * k1);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h ^= w * k2;
    h = ((h << 31) | (h >> 33)) * k1;
  }
  uint64_t tail = 0;
  if (i < n) std::memcpy(&tail, p + i, n - i);
  h ^= tail * k2;
  h ^= h >> 33;
  h *= k2;
  h ^= h >> 29;
  h *= k1;
  h ^= h >> 32;
  return static_cast<uint32_t>(h ^ (h >> 32));
}

}  // namespace cmkit
