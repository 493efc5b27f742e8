#include "ref_table.h"

#include "asymmetric_fence.h"

#include <bit>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace cmkit {

using namespace reftable;

namespace {

uint32_t bucketCountFor(uint32_t capacity) { return std::bit_ceil(capacity); }

// Zeroed words on their own cache lines, so that one holder's counts never share a line
// with another's, nor the index's seq with anything.
std::unique_ptr<int32_t[], void (*)(void*)> cacheLineWords(size_t n) {
  size_t bytes = (n * sizeof(int32_t) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) std::abort();  // as operator new does without exceptions
  std::memset(p, 0, bytes);
  return {static_cast<int32_t*>(p), std::free};
}

}  // namespace

RefTable::Shard::Shard(uint32_t capacity) : size_(capacity), counts_(cacheLineWords(capacity)) {}

RefTable::RefTable(uint32_t capacity)
    : capacity_(capacity),
      mask_(bucketCountFor(capacity) - 1),
      entriesBase_(kBucketsBase + bucketCountFor(capacity)),
      indexWords_(entriesBase_ + capacity * kEntryWords),
      index_(cacheLineWords(indexWords_)),
      removed_(capacity, false) {
  assert(capacity >= 1 && capacity <= kMaxCapacity);
  for (uint32_t b = 0; b <= mask_; b++) index_[kBucketsBase + b] = -1;
  for (uint32_t s = 0; s < capacity; s++) index_[entryBase(s) + kNext] = -1;
}

bool RefTable::lightReaders() { return asymmetricFenceAvailable(); }

std::shared_ptr<RefTable::Shard> RefTable::attachShard() {
  auto shard = std::make_shared<Shard>(capacity_);
  std::lock_guard<std::mutex> g(mutex_);
  shard->live_ = true;
  shards_.push_back(shard);
  return shard;
}

void RefTable::retireShard(const std::shared_ptr<Shard>& shard) {
  std::lock_guard<std::mutex> g(mutex_);
  if (!shard->live_) return;
  shard->live_ = false;
  for (size_t i = 0; i < shards_.size(); i++) {
    if (shards_[i] == shard) {
      shards_[i] = shards_.back();
      shards_.pop_back();
      break;
    }
  }
}

// An RMW is an acquire too: no store of the change can become visible before seq is odd.
void RefTable::beginChange() { word(kSeq).fetch_add(1, std::memory_order_seq_cst); }

void RefTable::endChange() { word(kSeq).fetch_add(1, std::memory_order_release); }

int32_t RefTable::probe(const Fid& fid) {
  int32_t slot = word(kBucketsBase + (fid.hash & mask_)).load(std::memory_order_relaxed);
  // A chain read while a writer relinks may be torn; the caller then retries. Bounded, so
  // that a torn chain cannot loop.
  for (uint32_t steps = 0; slot >= 0 && static_cast<uint32_t>(slot) < capacity_ && steps < capacity_; steps++) {
    uint32_t e = entryBase(static_cast<uint32_t>(slot));
    if (static_cast<uint32_t>(word(e + kHash).load(std::memory_order_relaxed)) == fid.hash &&
        static_cast<uint32_t>(word(e + kVnode).load(std::memory_order_relaxed)) == fid.vnode &&
        static_cast<uint32_t>(word(e + kUnique).load(std::memory_order_relaxed)) == fid.unique &&
        static_cast<uint32_t>(word(e + kVolume).load(std::memory_order_relaxed)) == fid.volume &&
        static_cast<uint32_t>(word(e + kCell).load(std::memory_order_relaxed)) == fid.cell) {
      return slot;
    }
    slot = word(e + kNext).load(std::memory_order_relaxed);
  }
  return static_cast<int32_t>(Status::kNotFound);
}

int32_t RefTable::lookupLocked(const Fid& fid) { return probe(fid); }

void RefTable::touch(uint32_t slot) {
  // Plain load first: most hits find the bit already set and skip the write, which
  // would otherwise take the cache line away from other readers of the same entry.
  auto bit = word(entryBase(slot) + kReferenced);
  if (bit.load(std::memory_order_relaxed) == 0) bit.store(1, std::memory_order_relaxed);
}

int32_t RefTable::findHold(Shard& s, const Fid& fid) {
  for (;;) {
    uint32_t s0 = static_cast<uint32_t>(word(kSeq).load(std::memory_order_acquire));
    if ((s0 & 1) != 0) {
      // A writer holds the index for a bounded piece of work: wait it out.
      std::this_thread::yield();
      continue;
    }
    int32_t slot = probe(fid);
    if (slot >= 0) {
      s.at(static_cast<uint32_t>(slot)).fetch_add(1, std::memory_order_seq_cst);
      if (static_cast<uint32_t>(word(kSeq).load(std::memory_order_seq_cst)) == s0) {
        touch(static_cast<uint32_t>(slot));
        return slot;
      }
      s.at(static_cast<uint32_t>(slot)).fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    // Re-read seq with a read-modify-write that changes nothing: as a release it keeps
    // the probe's loads before it (a plain load could be ordered ahead of them).
    if (static_cast<uint32_t>(word(kSeq).fetch_add(0, std::memory_order_acq_rel)) == s0) return slot;
  }
}

int32_t RefTable::findHoldExclusive(Shard& s, const Fid& fid) {
  std::lock_guard<std::mutex> g(mutex_);
  int32_t slot = lookupLocked(fid);
  if (slot >= 0) {
    s.at(static_cast<uint32_t>(slot)).fetch_add(1, std::memory_order_relaxed);
    touch(static_cast<uint32_t>(slot));
  }
  return slot;
}

void RefTable::findHoldMany(Shard& s, const Fid* fids, uint32_t n, int32_t* out) {
  for (uint32_t i = 0; i < n; i++) out[i] = findHold(s, fids[i]);
}

int32_t RefTable::getHold(Shard& s, const Fid& fid, bool* created) {
  *created = false;
  int32_t slot = findHold(s, fid);
  if (slot >= 0) return slot;

  std::lock_guard<std::mutex> g(mutex_);
  // Another thread may have inserted the Fid since our lookup.
  slot = lookupLocked(fid);
  if (slot >= 0) {
    // No recycler can run while we hold mutex_, so no seq check is needed.
    s.at(static_cast<uint32_t>(slot)).fetch_add(1, std::memory_order_relaxed);
    touch(static_cast<uint32_t>(slot));
    return slot;
  }
  slot = claimSlotLocked();
  if (slot < 0) return static_cast<int32_t>(Status::kTableFull);
  nameLocked(static_cast<uint32_t>(slot), fid);
  s.at(static_cast<uint32_t>(slot)).store(1, std::memory_order_relaxed);
  word(entryBase(static_cast<uint32_t>(slot)) + kReferenced).store(1, std::memory_order_relaxed);
  endChange();
  *created = true;
  return slot;
}

int64_t RefTable::countLocked(uint32_t slot) {
  int64_t sum = word(entryBase(slot) + kDisowned).load(std::memory_order_seq_cst);
  for (const auto& shard : shards_) sum += shard->at(slot).load(std::memory_order_seq_cst);
  return sum;
}

int32_t RefTable::claimSlotLocked() {
  if (freeHead_ >= 0) {
    // A removed slot is on no chain, but a reader that walked in before the removal may
    // still stand on it: renaming it is a change like any other.
    uint32_t slot = static_cast<uint32_t>(freeHead_);
    beginChange();
    freeHead_ = word(entryBase(slot) + kNext).load(std::memory_order_relaxed);
    removed_[slot] = false;
    freed_.fetch_sub(1, std::memory_order_relaxed);
    return static_cast<int32_t>(slot);
  }
  uint32_t used = used_.load(std::memory_order_relaxed);
  if (used < capacity_) {
    beginChange();
    used_.store(used + 1, std::memory_order_relaxed);
    return static_cast<int32_t>(used);
  }
  // Two turns of the hand: the first may only clear referenced bits.
  for (uint32_t step = 0; step < 2 * capacity_; step++) {
    uint32_t slot = clockHand_;
    clockHand_ = (clockHand_ + 1 == capacity_) ? 0 : clockHand_ + 1;
    if (countLocked(slot) != 0) continue;
    if (word(entryBase(slot) + kReferenced).exchange(0, std::memory_order_relaxed) != 0) continue;
    beginChange();
    heavyFence();  // for readers that raise their count with a plain store (JS)
    // The re-check: a lookup that raised the count after the pre-check above shows up
    // here, or sees seq move and lets go (the invariant in ref_table.h).
    if (countLocked(slot) != 0) {
      endChange();
      continue;
    }
    unlinkLocked(slot);
    recycled_.fetch_add(1, std::memory_order_relaxed);
    return static_cast<int32_t>(slot);
  }
  return -1;
}

void RefTable::nameLocked(uint32_t slot, const Fid& fid) {
  uint32_t e = entryBase(slot);
  word(e + kCell).store(static_cast<int32_t>(fid.cell), std::memory_order_relaxed);
  word(e + kVolume).store(static_cast<int32_t>(fid.volume), std::memory_order_relaxed);
  word(e + kVnode).store(static_cast<int32_t>(fid.vnode), std::memory_order_relaxed);
  word(e + kUnique).store(static_cast<int32_t>(fid.unique), std::memory_order_relaxed);
  word(e + kHash).store(static_cast<int32_t>(fid.hash), std::memory_order_relaxed);
  uint32_t head = kBucketsBase + (fid.hash & mask_);
  word(e + kNext).store(word(head).load(std::memory_order_relaxed), std::memory_order_relaxed);
  word(head).store(static_cast<int32_t>(slot), std::memory_order_relaxed);
}

void RefTable::unlinkLocked(uint32_t slot) {
  uint32_t e = entryBase(slot);
  uint32_t link = kBucketsBase + (static_cast<uint32_t>(word(e + kHash).load(std::memory_order_relaxed)) & mask_);
  while (word(link).load(std::memory_order_relaxed) != static_cast<int32_t>(slot)) {
    int32_t at = word(link).load(std::memory_order_relaxed);
    assert(at >= 0 && "a used entry is always on its chain");
    link = entryBase(static_cast<uint32_t>(at)) + kNext;
  }
  word(link).store(word(e + kNext).load(std::memory_order_relaxed), std::memory_order_relaxed);
  word(e + kNext).store(-1, std::memory_order_relaxed);
}

Status RefTable::hold(Shard& s, uint32_t slot) {
  if (slot >= used()) return Status::kBadSlot;
  auto own = s.at(slot);
  int32_t mine = own.load(std::memory_order_relaxed);
  if (mine > 0) {
    // Only this holder writes its count, and the entry cannot go while it holds one.
    own.store(mine + 1, std::memory_order_relaxed);
    return Status::kOk;
  }
  // Held by someone else (or disowned): under mutex_ no recycler runs, so a count > 0
  // read there stays > 0 until our own reference is in.
  std::lock_guard<std::mutex> g(mutex_);
  if (countLocked(slot) <= 0) return Status::kNotHeld;
  own.store(1, std::memory_order_relaxed);
  return Status::kOk;
}

Status RefTable::release(Shard& s, uint32_t slot) {
  if (slot >= used()) return Status::kBadSlot;
  auto own = s.at(slot);
  int32_t mine = own.load(std::memory_order_relaxed);
  if (mine <= 0) return Status::kNotHeld;
  // Release: what we did with the entry happens before a recycler reads the count.
  own.store(mine - 1, std::memory_order_release);
  return Status::kOk;
}

Status RefTable::disown(Shard& s, uint32_t slot) {
  if (slot >= used()) return Status::kBadSlot;
  auto own = s.at(slot);
  int32_t mine = own.load(std::memory_order_relaxed);
  if (mine <= 0) return Status::kNotHeld;
  // Shared count first, so the sum never dips to zero between the two.
  word(entryBase(slot) + kDisowned).fetch_add(1, std::memory_order_seq_cst);
  own.store(mine - 1, std::memory_order_release);
  return Status::kOk;
}

Status RefTable::releaseDisowned(uint32_t slot) {
  if (slot >= used()) return Status::kBadSlot;
  auto count = word(entryBase(slot) + kDisowned);
  int32_t c = count.load(std::memory_order_relaxed);
  do {
    if (c <= 0) return Status::kNotHeld;
  } while (!count.compare_exchange_weak(c, c - 1, std::memory_order_release, std::memory_order_relaxed));
  return Status::kOk;
}

Status RefTable::releaseMany(Shard& s, const int32_t* slots, uint32_t n, uint32_t* done) {
  for (uint32_t i = 0; i < n; i++) {
    Status st = slots[i] < 0 ? Status::kBadSlot : release(s, static_cast<uint32_t>(slots[i]));
    if (st != Status::kOk) {
      *done = i;
      return st;
    }
  }
  *done = n;
  return Status::kOk;
}

bool RefTable::removeIfIdle(uint32_t slot, const Fid& fid) {
  if (slot >= used()) return false;
  std::lock_guard<std::mutex> g(mutex_);
  uint32_t e = entryBase(slot);
  // The slot may since have been removed, or removed and reused for another key.
  if (removed_[slot] || lookupLocked(fid) != static_cast<int32_t>(slot)) return false;
  if (countLocked(slot) != 0) return false;
  beginChange();
  heavyFence();
  if (countLocked(slot) != 0) {  // the re-check, as when recycling
    endChange();
    return false;
  }
  unlinkLocked(slot);
  for (uint32_t w : {kCell, kVolume, kVnode, kUnique, kHash, kReferenced}) word(e + w).store(0, std::memory_order_relaxed);
  word(e + kNext).store(freeHead_, std::memory_order_relaxed);
  endChange();
  removed_[slot] = true;
  freeHead_ = static_cast<int32_t>(slot);
  freed_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

Status RefTable::restore(uint32_t slot, const Fid& fid, bool disowned) {
  std::lock_guard<std::mutex> g(mutex_);
  uint32_t used = used_.load(std::memory_order_relaxed);
  if (slot >= capacity_ || slot < used) return Status::kBadSlot;
  if (lookupLocked(fid) >= 0) return Status::kBadArgument;
  beginChange();
  for (uint32_t skipped = used; skipped < slot; skipped++) {
    word(entryBase(skipped) + kNext).store(freeHead_, std::memory_order_relaxed);
    removed_[skipped] = true;
    freeHead_ = static_cast<int32_t>(skipped);
    freed_.fetch_add(1, std::memory_order_relaxed);
  }
  used_.store(slot + 1, std::memory_order_relaxed);
  nameLocked(slot, fid);
  if (disowned) word(entryBase(slot) + kDisowned).store(1, std::memory_order_relaxed);
  endChange();
  return Status::kOk;
}

int32_t RefTable::refCount(uint32_t slot) {
  if (slot >= used()) return static_cast<int32_t>(Status::kBadSlot);
  std::lock_guard<std::mutex> g(mutex_);
  return static_cast<int32_t>(countLocked(slot));
}

bool RefTable::fidAt(uint32_t slot, Fid* out) {
  std::lock_guard<std::mutex> g(mutex_);
  if (slot >= used() || removed_[slot]) return false;
  uint32_t e = entryBase(slot);
  auto w = [&](uint32_t i) { return static_cast<uint32_t>(word(e + i).load(std::memory_order_relaxed)); };
  *out = Fid{w(kCell), w(kVolume), w(kVnode), w(kUnique), w(kHash)};
  return true;
}

int64_t RefTable::totalRefs() {
  std::lock_guard<std::mutex> g(mutex_);
  int64_t sum = 0;
  uint32_t n = used();
  for (uint32_t i = 0; i < n; i++) sum += countLocked(i);
  return sum;
}

}  // namespace cmkit
