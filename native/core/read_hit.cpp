#include "read_hit.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "cache_layout.h"

namespace cmkit {

namespace {

namespace L = cache_layout;

int32_t load(const int32_t* words, uint64_t i) {
  return std::atomic_ref<const int32_t>(words[i]).load(std::memory_order_acquire);
}

// The records' doubles are written under the vnode's write lock, which the optimistic
// read checks for; relaxed loads keep the reads themselves well-defined.
double loadF64(const double* words, uint64_t i) {
  return std::atomic_ref<const double>(words[i]).load(std::memory_order_relaxed);
}

// Releases a table hold when it goes out of scope.
class Held {
 public:
  Held(RefTable* t, RefTable::Shard* s, int32_t slot) : t_(t), s_(s), slot_(slot) {}
  ~Held() {
    if (slot_ >= 0) t_->release(*s_, static_cast<uint32_t>(slot_));
  }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
  int32_t slot() const { return slot_; }

 private:
  RefTable* t_;
  RefTable::Shard* s_;
  int32_t slot_;
};

// The copy of a seqlock reader: it may race a writer's copy into the same block, which
// the sequence check after it then catches, and its bytes are dropped. ThreadSanitizer
// would report that race, which is the design; so under it this one copy is a plain
// loop it does not instrument (and not turned back into a memcpy call, which it would).
#if defined(__SANITIZE_THREAD__)
__attribute__((no_sanitize("thread"), optimize("no-tree-loop-distribute-patterns"))) void racyCopy(
    uint8_t* to, const uint8_t* from, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) to[i] = from[i];
}
#else
void racyCopy(uint8_t* to, const uint8_t* from, uint64_t n) { std::memcpy(to, from, n); }
#endif

bool identityIs(const int32_t* words, uint64_t at, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  // Written first word last (layout.ts storeIdentity): read it last-first.
  return load(words, at + 3) == static_cast<int32_t>(d) && load(words, at + 2) == static_cast<int32_t>(c) &&
         load(words, at + 1) == static_cast<int32_t>(b) && load(words, at) == static_cast<int32_t>(a);
}

}  // namespace

int64_t readHit(const CacheMemory& m, const HitHolder& h, const Fid& fid, uint64_t offset, uint32_t length,
                uint8_t* out) {
  Held vnode(h.vnodes, h.vnodeShard, h.vnodes->findHold(*h.vnodeShard, fid));
  if (vnode.slot() < 0 || static_cast<uint32_t>(vnode.slot()) >= m.vnodeSlots) return -1;
  const uint32_t vslot = static_cast<uint32_t>(vnode.slot());
  const uint64_t i = uint64_t{vslot} * L::kVnodeI32;
  const uint64_t f = uint64_t{vslot} * L::kVnodeF64;
  const int32_t* I = m.vnodeI32;
  if (!identityIs(I, i + L::kIdentity, fid.cell, fid.volume, fid.vnode, fid.unique)) return -1;
  if (load(I, i + L::kStatusSeq) != load(I, i + L::kBreakSeq) || !(loadF64(m.vnodeF64, f + L::kDataVersion) >= 0)) {
    return -1;
  }
  const int32_t stamp = load(I, i + L::kWriteSeq);
  if ((stamp & 1) != 0) return -1;
  const uint32_t gen = static_cast<uint32_t>(load(I, i + L::kGeneration));
  const double low = loadF64(m.vnodeF64, f + L::kBufDataVersionLow);
  const double dataVersion = loadF64(m.vnodeF64, f + L::kDataVersion);
  const double fileLength = loadF64(m.vnodeF64, f + L::kLength);
  const uint64_t want = offset + length;
  const uint64_t end = fileLength <= static_cast<double>(offset) ? offset
                       : static_cast<double>(want) <= fileLength ? want
                                                                   : static_cast<uint64_t>(fileLength);
  const uint64_t bs = m.blockSize;
  for (uint64_t pos = offset; pos < end;) {
    const uint64_t block = pos / bs;
    const uint32_t lo = static_cast<uint32_t>(block);
    const uint32_t hi = static_cast<uint32_t>(block >> 32);
    Held buffer(h.buffers, h.bufferShard, h.buffers->findHold(*h.bufferShard, Fid::make(vslot, gen, lo, hi)));
    if (buffer.slot() < 0 || static_cast<uint32_t>(buffer.slot()) >= m.bufferSlots) return -1;
    const uint64_t b = static_cast<uint32_t>(buffer.slot());
    const uint64_t hdr = b * L::kHeaderI32;
    const int32_t state = load(m.headers, hdr + L::kState);
    if (!identityIs(m.headers, hdr + L::kHeaderIdentity, vslot, gen, lo, hi)) return -1;
    if ((state & (L::kBusy | L::kPrefetched)) != 0) return -1;
    bool valid = (state & (L::kDirty | L::kStoring)) != 0;
    if (!valid && (state & L::kValid) != 0) {
      const double version = loadF64(m.versions, b);
      valid = low <= version && version <= dataVersion;
    }
    if (!valid) return -1;
    const uint64_t within = pos - block * bs;
    const uint64_t n = std::min(bs - within, end - pos);
    // May be torn by a writer that came in meanwhile: then the sequence check below
    // fails and these bytes are never used.
    racyCopy(out + (pos - offset), m.data + b * bs + within, n);
    pos += n;
  }
  // The copies above must be done before the sequence is read again: an acquire fence
  // (ThreadSanitizer does not model fences: there, a seq_cst load, which it does).
#if defined(__SANITIZE_THREAD__)
  const int32_t after = std::atomic_ref<const int32_t>(I[i + L::kWriteSeq]).load(std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_acquire);
  const int32_t after = std::atomic_ref<const int32_t>(I[i + L::kWriteSeq]).load(std::memory_order_relaxed);
#endif
  if (after != stamp) return -1;
  return static_cast<int64_t>(end - offset);
}

}  // namespace cmkit
