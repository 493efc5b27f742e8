// The word positions and bits of the cache's shared records that native code reads
// (read_hit.h). The layout itself, who writes each field and under which lock, is drawn
// in src/cache/layout.ts; the addon exports these values and a test checks that
// layout.ts agrees with them, so the two cannot drift.
#pragma once

#include <cstdint>

namespace cmkit::cache_layout {

// Vnode record: 128 bytes, seen as 16 doubles or 32 int32 words.
constexpr uint32_t kVnodeF64 = 16;
constexpr uint32_t kVnodeI32 = 32;
constexpr uint32_t kDataVersion = 0;        // f64
constexpr uint32_t kBufDataVersionLow = 1;  // f64
constexpr uint32_t kLength = 2;             // f64
constexpr uint32_t kBreakSeq = 11;          // i32
constexpr uint32_t kStatusSeq = 12;         // i32
constexpr uint32_t kIdentity = 16;          // i32[16..19]
constexpr uint32_t kGeneration = 20;        // i32
constexpr uint32_t kWriteSeq = 26;          // i32: the vnode lock's write sequence, odd while written

// Buffer header: 40 bytes, 10 int32 words.
constexpr uint32_t kHeaderI32 = 10;
constexpr uint32_t kState = 0;
constexpr uint32_t kHeaderIdentity = 1;  // vnode slot, generation, block low, block high

// Buffer state bits.
constexpr int32_t kValid = 1;
constexpr int32_t kDirty = 2;
constexpr int32_t kBusy = 4;
constexpr int32_t kPrefetched = 8;
constexpr int32_t kStoring = 16;

}  // namespace cmkit::cache_layout
