// Fid: the identity of a file on a server, {cell, volume, vnode, unique}, carrying a
// hash computed once when the Fid is made.
//
// Why a precomputed mixing hash: the 2008 profile of the OpenAFS Windows cache manager
// found FID comparison and bucket selection on every lookup. Comparing the 32-bit hash
// first rejects almost every non-matching Fid in one compare, and a mixing hash (rather
// than packing bits of volume and vnode together) spreads sequential vnode numbers over
// all buckets of a power-of-two table, so `hash & mask` is a good bucket index.
//
// The hash is MurmurHash3's 32-bit block mix and finalizer applied to the four words
// with seed 0. src/core/fid.ts computes the same function with Math.imul; a test checks
// that both agree on random Fids.
#pragma once

#include <cstdint>

namespace cmkit {

constexpr uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

constexpr uint32_t mixWord(uint32_t h, uint32_t k) {
  k *= 0xcc9e2d51u;
  k = rotl32(k, 15);
  k *= 0x1b873593u;
  h ^= k;
  h = rotl32(h, 13);
  return h * 5u + 0xe6546b64u;
}

constexpr uint32_t finalMix(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

constexpr uint32_t fidHash(uint32_t cell, uint32_t volume, uint32_t vnode, uint32_t unique) {
  uint32_t h = 0;
  h = mixWord(h, cell);
  h = mixWord(h, volume);
  h = mixWord(h, vnode);
  h = mixWord(h, unique);
  return finalMix(h ^ 16u);  // 16: the key length in bytes, as Murmur3 folds it in
}

struct Fid {
  uint32_t cell = 0;
  uint32_t volume = 0;
  uint32_t vnode = 0;
  uint32_t unique = 0;
  uint32_t hash = fidHash(0, 0, 0, 0);

  static constexpr Fid make(uint32_t cell, uint32_t volume, uint32_t vnode, uint32_t unique) {
    return Fid{cell, volume, vnode, unique, fidHash(cell, volume, vnode, unique)};
  }
};

// Hash first: two different Fids almost never share a hash, so the field compares run
// only for the Fid actually being looked for. vnode comes next because it is the field
// that differs between neighbours in one volume.
inline bool operator==(const Fid& a, const Fid& b) {
  return a.hash == b.hash && a.vnode == b.vnode && a.unique == b.unique &&
         a.volume == b.volume && a.cell == b.cell;
}

// The comparison that the hash replaces: every field, cell first, as a struct compare.
inline bool equalFieldByField(const Fid& a, const Fid& b) {
  return a.cell == b.cell && a.volume == b.volume && a.vnode == b.vnode &&
         a.unique == b.unique;
}

}  // namespace cmkit
