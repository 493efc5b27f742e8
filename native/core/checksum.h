// The checksum of a cached block: whether the bytes in a cache file are still the ones
// fetched (a torn or corrupted record is dropped, never served). Not cryptographic: it
// catches flipped bits, torn pages and bytes of another block, which is what a crash or
// a bad disk makes. 64-bit multiply-rotate rounds over 8-byte words in four lanes (each
// word's bits reach every output bit through the lanes' merge and the final mix), folded
// to 32 bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace cmkit {

namespace checksum_detail {
constexpr uint64_t k1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t k2 = 0xC2B2AE3D27D4EB4Full;
inline uint64_t round(uint64_t h, uint64_t w) {
  h ^= w * k2;
  return ((h << 31) | (h >> 33)) * k1;
}
inline uint64_t word(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}
}  // namespace checksum_detail

inline uint32_t blockChecksum(const uint8_t* p, size_t n, uint32_t seed) {
  using namespace checksum_detail;
  // Four independent lanes over 32-byte stripes: a lane's multiply waits only on its own
  // last round, so the four run side by side (~4x one chain; memory-bound after that).
  uint64_t h0 = (static_cast<uint64_t>(seed) << 32 | seed) ^ (n * k1);
  uint64_t h1 = h0 ^ k2, h2 = h0 + k1, h3 = ~h0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    h0 = round(h0, word(p + i));
    h1 = round(h1, word(p + i + 8));
    h2 = round(h2, word(p + i + 16));
    h3 = round(h3, word(p + i + 24));
  }
  uint64_t h = round(round(round(h0, h1), h2), h3);
  for (; i + 8 <= n; i += 8) h = round(h, word(p + i));
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

// The checksums of n blocks of `blockSize` bytes at data + slots[i] * blockSize, with
// seeds[i], into out[i]: split over up to `threads` threads (the calling one among them),
// since a cache that restarts checks a whole file's blocks at once. Returns when all are
// done; the blocks must not change meanwhile.
void blockChecksums(const uint8_t* data, size_t blockSize, const int32_t* slots, const uint32_t* seeds, uint32_t* out,
                    size_t n, unsigned threads);

}  // namespace cmkit
