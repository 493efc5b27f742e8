// The cache's read hit path in native code, for threads that are not JS threads (the
// FUSE session's readers serve a cached read where they read the request, with no hop
// to a JS thread). The same rules as the hit path of src/cache/read.ts, which stays the
// definition (a test checks both agree on every read of a file being changed):
//   - the file's record names its Fid and its status is current (no callback break
//     since it was fetched);
//   - an optimistic read of the vnode lock: its write sequence is even before and the
//     same after, so no writer (a fill, a write, a truncation) came in between;
//   - every block asked for (up to the file's length as this client sees it) has a
//     buffer naming it that is not Busy and is valid: Dirty or Storing (our bytes), or
//     Valid with a version in [bufDataVersionLow, dataVersion];
//   - no block is Prefetched: the first read of a prefetched block is the JS path's, which
//     counts it used and moves the readahead window on.
// Anything else is a miss, and nothing shared was written (but this holder's own
// reference counts, up and down again).
#pragma once

#include <cstdint>

#include "fid.h"
#include "ref_table.h"

namespace cmkit {

// The cache's shared memory (src/cache/layout.ts), as raw pointers the caller keeps alive.
struct CacheMemory {
  const int32_t* vnodeI32 = nullptr;
  const double* vnodeF64 = nullptr;
  uint32_t vnodeSlots = 0;
  int32_t* headers = nullptr;  // written only to hold or release: never by readHit
  const double* versions = nullptr;
  const uint8_t* data = nullptr;
  uint32_t bufferSlots = 0;
  uint32_t blockSize = 0;
};

// One thread's holds on the cache's two tables.
struct HitHolder {
  RefTable* vnodes = nullptr;
  RefTable::Shard* vnodeShard = nullptr;
  RefTable* buffers = nullptr;
  RefTable::Shard* bufferShard = nullptr;
};

// Copies up to `length` bytes of `fid` at `offset` into out and returns how many (fewer
// at the file's length, 0 past it), or -1 on a miss.
int64_t readHit(const CacheMemory& m, const HitHolder& h, const Fid& fid, uint64_t offset, uint32_t length,
                uint8_t* out);

}  // namespace cmkit
