// RefTable: a bounded, concurrent hash table of Fid entries with atomic reference counts.
//
//   buckets_ (power of two, >= capacity)      entries_ (capacity, one cache line each)
//   +----+                                     +-----------------------------------+
//   |  3 |--> entry 3 --> entry 0 --> end       | fid | refCount | referenced | next |
//   | -1 |                                     +-----------------------------------+
//   |  1 |--> entry 1 --> end                   slot = index in entries_: stable for
//   +----+                                     the life of the entry, used by later
//   bucket = fid.hash & (buckets - 1)          layers to find their shared record
//
// Invariants:
//   - An entry is on exactly one chain from the moment it is first used; it moves to
//     another chain only when recycled for another Fid.
//   - refCount >= 0. Zero means idle: still on its chain and findable, and a lookup may
//     hold it again (from zero is legal).
//   - Chains and the Fid of an entry change only under the exclusive lock; lookups walk
//     them under the shared lock.
//   - An entry is recycled only under the exclusive lock, after re-reading refCount == 0.
//     Nothing can raise a count from zero without the shared lock (hold() by slot needs
//     refCount > 0), so that re-read cannot go stale before the recycle is done.
//   - An entry removed (removeIfIdle) is on no chain and on the free list, and only
//     there; getHold takes free slots before never-used ones and before the clock, so
//     the clock never meets a removed entry.
//
// Which idle entry is recycled: the CLOCK approximation of LRU (as in Linux page
// reclaim and many buffer caches). A hold sets the entry's referenced bit; the clock
// hand skips held entries and clears referenced bits, and recycles the first idle entry
// whose bit is already clear. We chose CLOCK over an exact LRU list because an exact list
// must be relinked on every release to zero, which needs the exclusive lock; with CLOCK a
// release is one atomic decrement and nothing else.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "fid.h"
#include "status.h"
#include "table_lock.h"

namespace cmkit {

class RefTable {
 public:
  static constexpr uint32_t kMaxCapacity = 1u << 24;

  // capacity: 1 .. kMaxCapacity, checked by the caller.
  explicit RefTable(uint32_t capacity);
  RefTable(const RefTable&) = delete;
  RefTable& operator=(const RefTable&) = delete;

  // Finds the entry for fid and adds a reference. Returns its slot, or kNotFound.
  int32_t findHold(const Fid& fid);

  // The design findHold replaces (the cache manager before 2008): the lookup and the
  // count change under the exclusive lock. Kept as the benchmark's baseline (row B2).
  int32_t findHoldExclusive(const Fid& fid);

  // Finds or creates the entry for fid and adds a reference. Returns its slot, or
  // kTableFull when every entry is held. *created tells whether the slot now names a
  // Fid it did not name before (so the caller must reset the slot's record).
  int32_t getHold(const Fid& fid, bool* created);

  // Adds a reference to an entry the caller already holds.
  Status hold(uint32_t slot);

  // Drops one reference. The entry stays findable at zero.
  Status release(uint32_t slot);

  // For keys that must die with their last holder (a PAG): if the entry at slot still
  // names `fid` and nobody holds it, takes it off its chain so no lookup finds it, and
  // frees the slot for the next getHold. Returns true if it removed the entry. Safe to
  // race with lookups (one that held it again wins) and with other removers.
  bool removeIfIdle(uint32_t slot, const Fid& fid);

  // Batch forms: one shared-lock acquisition for all n lookups. out[i] is a slot or
  // kNotFound. releaseMany stops at the first bad slot and returns its status, with
  // *done set to how many were released.
  void findHoldMany(const Fid* fids, uint32_t n, int32_t* out);
  Status releaseMany(const int32_t* slots, uint32_t n, uint32_t* done);

  // The count of one entry, or kBadSlot.
  int32_t refCount(uint32_t slot) const;
  // The Fid a used slot names; false for a slot never used.
  bool fidAt(uint32_t slot, Fid* out);

  uint32_t capacity() const { return capacity_; }
  // Entries that name a Fid (held or idle).
  uint32_t used() const { return used_.load(std::memory_order_relaxed); }
  // Entries that were taken from one Fid and given to another.
  uint64_t recycled() const { return recycled_.load(std::memory_order_relaxed); }
  // Slots removed and not yet reused: used() - freed() entries name a Fid.
  uint32_t freed() const { return freed_.load(std::memory_order_relaxed); }
  // The sum of all refCounts; exact only when no thread is holding or releasing.
  int64_t totalRefs() const;

 private:
  struct alignas(64) Entry {
    Fid fid;
    std::atomic<int32_t> refCount{0};
    std::atomic<uint8_t> referenced{0};
    bool removed = false;  // on the free list; written under the exclusive lock
    int32_t next = -1;     // next slot on the same chain, or the free list; or -1
  };

  int32_t lookupLocked(const Fid& fid) const;  // caller holds the lock in either mode
  int32_t takeSlotExclusive();                 // a never-used or recycled slot, or -1
  void unlinkExclusive(int32_t slot);
  static void addRef(Entry& e) {
    e.refCount.fetch_add(1, std::memory_order_acquire);
    // Plain load first: most hits find the bit already set and skip the write, which
    // would otherwise take the cache line away from other readers of the same entry.
    if (e.referenced.load(std::memory_order_relaxed) == 0) {
      e.referenced.store(1, std::memory_order_relaxed);
    }
  }

  const uint32_t capacity_;
  const uint32_t mask_;
  std::unique_ptr<Entry[]> entries_;
  std::vector<int32_t> buckets_;
  TableLock lock_;
  // Written only under the exclusive lock; atomic so stats may be read without it.
  std::atomic<uint32_t> used_{0};
  std::atomic<uint64_t> recycled_{0};
  std::atomic<uint32_t> freed_{0};
  int32_t freeHead_ = -1;  // removed slots, linked through Entry::next
  uint32_t clockHand_ = 0;
};

}  // namespace cmkit
