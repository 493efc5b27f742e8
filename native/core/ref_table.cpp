#include "ref_table.h"

#include <bit>
#include <cassert>

namespace cmkit {

namespace {
uint32_t bucketCountFor(uint32_t capacity) { return std::bit_ceil(capacity); }
}  // namespace

RefTable::RefTable(uint32_t capacity)
    : capacity_(capacity),
      mask_(bucketCountFor(capacity) - 1),
      entries_(new Entry[capacity]),
      buckets_(bucketCountFor(capacity), -1) {
  assert(capacity >= 1 && capacity <= kMaxCapacity);
}

int32_t RefTable::lookupLocked(const Fid& fid) const {
  for (int32_t i = buckets_[fid.hash & mask_]; i >= 0; i = entries_[i].next) {
    if (entries_[i].fid == fid) return i;
  }
  return static_cast<int32_t>(Status::kNotFound);
}

int32_t RefTable::findHold(const Fid& fid) {
  SharedGuard g(lock_);
  int32_t slot = lookupLocked(fid);
  if (slot >= 0) addRef(entries_[slot]);
  return slot;
}

int32_t RefTable::findHoldExclusive(const Fid& fid) {
  ExclusiveGuard g(lock_);
  int32_t slot = lookupLocked(fid);
  if (slot >= 0) addRef(entries_[slot]);
  return slot;
}

void RefTable::findHoldMany(const Fid* fids, uint32_t n, int32_t* out) {
  SharedGuard g(lock_);
  for (uint32_t i = 0; i < n; i++) {
    int32_t slot = lookupLocked(fids[i]);
    if (slot >= 0) addRef(entries_[slot]);
    out[i] = slot;
  }
}

int32_t RefTable::getHold(const Fid& fid, bool* created) {
  *created = false;
  int32_t slot = findHold(fid);
  if (slot >= 0) return slot;

  ExclusiveGuard g(lock_);
  // Another thread may have inserted the Fid between our two lock acquisitions.
  slot = lookupLocked(fid);
  if (slot >= 0) {
    addRef(entries_[slot]);
    return slot;
  }
  slot = takeSlotExclusive();
  if (slot < 0) return static_cast<int32_t>(Status::kTableFull);
  Entry& e = entries_[slot];
  e.fid = fid;
  uint32_t b = fid.hash & mask_;
  e.next = buckets_[b];
  buckets_[b] = slot;
  e.refCount.store(1, std::memory_order_relaxed);
  e.referenced.store(1, std::memory_order_relaxed);
  *created = true;
  return slot;
}

int32_t RefTable::takeSlotExclusive() {
  if (freeHead_ >= 0) {
    int32_t slot = freeHead_;
    freeHead_ = entries_[slot].next;
    entries_[slot].next = -1;
    entries_[slot].removed = false;
    freed_.fetch_sub(1, std::memory_order_relaxed);
    return slot;
  }
  uint32_t used = used_.load(std::memory_order_relaxed);
  if (used < capacity_) {
    used_.store(used + 1, std::memory_order_relaxed);
    return static_cast<int32_t>(used);
  }
  // Two turns of the hand: the first may only clear referenced bits.
  for (uint32_t step = 0; step < 2 * capacity_; step++) {
    uint32_t slot = clockHand_;
    clockHand_ = (clockHand_ + 1 == capacity_) ? 0 : clockHand_ + 1;
    Entry& e = entries_[slot];
    if (e.refCount.load(std::memory_order_acquire) != 0) continue;
    if (e.referenced.exchange(0, std::memory_order_relaxed) != 0) continue;
    unlinkExclusive(static_cast<int32_t>(slot));
    recycled_.fetch_add(1, std::memory_order_relaxed);
    return static_cast<int32_t>(slot);
  }
  return -1;
}

void RefTable::unlinkExclusive(int32_t slot) {
  int32_t* link = &buckets_[entries_[slot].fid.hash & mask_];
  while (*link != slot) {
    assert(*link >= 0 && "a used entry is always on its chain");
    link = &entries_[*link].next;
  }
  *link = entries_[slot].next;
  entries_[slot].next = -1;
}

Status RefTable::hold(uint32_t slot) {
  if (slot >= used()) return Status::kBadSlot;
  std::atomic<int32_t>& count = entries_[slot].refCount;
  int32_t c = count.load(std::memory_order_relaxed);
  do {
    // From zero only under the shared lock (findHold): here the entry could be
    // recycled under us.
    if (c <= 0) return Status::kNotHeld;
  } while (!count.compare_exchange_weak(c, c + 1, std::memory_order_acquire,
                                        std::memory_order_relaxed));
  return Status::kOk;
}

Status RefTable::release(uint32_t slot) {
  if (slot >= used()) return Status::kBadSlot;
  std::atomic<int32_t>& count = entries_[slot].refCount;
  int32_t c = count.load(std::memory_order_relaxed);
  do {
    if (c <= 0) return Status::kNotHeld;
  } while (!count.compare_exchange_weak(c, c - 1, std::memory_order_release,
                                        std::memory_order_relaxed));
  return Status::kOk;
}

Status RefTable::releaseMany(const int32_t* slots, uint32_t n, uint32_t* done) {
  for (uint32_t i = 0; i < n; i++) {
    if (slots[i] < 0) {
      *done = i;
      return Status::kBadSlot;
    }
    Status s = release(static_cast<uint32_t>(slots[i]));
    if (s != Status::kOk) {
      *done = i;
      return s;
    }
  }
  *done = n;
  return Status::kOk;
}

bool RefTable::removeIfIdle(uint32_t slot, const Fid& fid) {
  if (slot >= used()) return false;
  ExclusiveGuard g(lock_);
  Entry& e = entries_[slot];
  // The slot may since have been removed, or removed and reused for another key.
  if (e.removed || !(e.fid == fid)) return false;
  if (e.refCount.load(std::memory_order_acquire) != 0) return false;
  unlinkExclusive(static_cast<int32_t>(slot));
  e.removed = true;
  e.fid = Fid{};
  e.referenced.store(0, std::memory_order_relaxed);
  e.next = freeHead_;
  freeHead_ = static_cast<int32_t>(slot);
  freed_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

int32_t RefTable::refCount(uint32_t slot) const {
  if (slot >= used()) return static_cast<int32_t>(Status::kBadSlot);
  return entries_[slot].refCount.load(std::memory_order_acquire);
}

bool RefTable::fidAt(uint32_t slot, Fid* out) {
  SharedGuard g(lock_);
  if (slot >= used() || entries_[slot].removed) return false;
  *out = entries_[slot].fid;
  return true;
}

int64_t RefTable::totalRefs() const {
  int64_t sum = 0;
  uint32_t n = used();
  for (uint32_t i = 0; i < n; i++) sum += entries_[i].refCount.load(std::memory_order_acquire);
  return sum;
}

}  // namespace cmkit
