// RefTable: a bounded, concurrent hash table of Fid entries with reference counts kept
// per holder, whose index JS can probe by itself.
//
//   index (int32 words, shared with every thread; layout in namespace reftable below)
//   +-----+----------------------+------------------------------------------------+
//   | seq | buckets: first slot  | entries: cell volume vnode unique hash next    |
//   |     | of each chain, or -1 |          referenced disowned   (8 words each)  |
//   +-----+----------------------+------------------------------------------------+
//   shards (one per holder, i.e. per thread's attachment): counts[capacity]
//
//   bucket = fid.hash & (buckets - 1); slot = entry index, stable while the entry names
//   its Fid, used by later layers to find their shared record.
//
// Who writes what:
//   - chains, names (the Fid words) and seq: only a writer, under mutex_;
//   - a shard's counts: only its holder (its thread), from native code or from JS;
//   - disowned counts: any thread, by atomic add (references handed to shared state);
//   - referenced bits: any thread sets them, the clock hand clears them.
// So a hit (probe, count up, count down) writes only memory its own thread owns.
//
// The count of an entry is disowned + the sum over live shards. Zero means idle: still
// on its chain and findable, and a lookup may hold it again (from zero is legal).
//
// The invariant: an entry is never recycled (or removed) while its count is > 0, even
// for a count being raised at that moment by a lookup. Why it holds:
//   reader (findHold, and the same steps in src/core/ref-table.ts):
//     r1 s0 = seq; if odd, wait        r3 own[slot] += 1       (seq_cst)
//     r2 probe the chain for fid       r4 if seq != s0: own[slot] -= 1, retry (seq_cst)
//   recycler (under mutex_):
//     w1 count(slot) == 0 and bit clear (a cheap pre-check)
//     w2 seq += 1, now odd             (seq_cst)
//     w3 re-check count(slot) == 0, summing every live shard (seq_cst); else seq += 1
//        and go on to the next slot
//     w4 unlink, rename, relink; seq += 1, even again
//   In the single order of seq_cst operations either r3 comes before w3, and the
//   recycler sees the count and leaves the entry, or w2 comes before r4, and the reader
//   sees seq moved and lets go. The JS reader does r3 and r4 with plain stores and loads
//   where asymmetricFenceAvailable() (asymmetric_fence.h): the recycler's heavyFence()
//   between w2 and w3 then gives the same either-or. A reader that saw a stable seq at r1 and again at r4
//   also read a chain and a name no writer was changing (a seqlock), so the slot it
//   holds names its Fid. Holds by slot (hold()) add to a count that is already > 0.
//
// A shard dies with its holder (retireShard: a thread exits, is terminated, or detaches):
// it leaves the sum under mutex_, so its references are released all at once, and its
// memory stays alive as long as anything (a JS view of it) still points there.
//
// Which idle entry is recycled: the CLOCK approximation of LRU (as in Linux page
// reclaim and many buffer caches). A hold sets the entry's referenced bit; the hand
// skips held entries and clears referenced bits, and recycles the first idle entry
// whose bit is already clear. An exact LRU list would have to be relinked on every
// release to zero, under the lock; with CLOCK a release is one store to the holder's own
// count.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "fid.h"
#include "status.h"

namespace cmkit {

namespace reftable {
// Index layout, in int32 words. seq has a cache line to itself: readers only read it.
constexpr uint32_t kSeq = 0;
constexpr uint32_t kClosedFlag = 1;  // for the binding: set once the table is closed; the core ignores it
constexpr uint32_t kBucketsBase = 16;
constexpr uint32_t kEntryWords = 8;
enum EntryWord : uint32_t { kCell, kVolume, kVnode, kUnique, kHash, kNext, kReferenced, kDisowned };
}  // namespace reftable

class RefTable {
 public:
  static constexpr uint32_t kMaxCapacity = 1u << 24;

  // One holder's counts: capacity words, written only by the thread that holds it.
  class Shard {
   public:
    explicit Shard(uint32_t capacity);
    int32_t* counts() { return counts_.get(); }
    uint32_t size() const { return size_; }

   private:
    friend class RefTable;
    std::atomic_ref<int32_t> at(uint32_t slot) { return std::atomic_ref<int32_t>(counts_[slot]); }
    const uint32_t size_;
    std::unique_ptr<int32_t[], void (*)(void*)> counts_;
    bool live_ = false;  // on the table's list of shards; under the table's mutex_
  };

  // capacity: 1 .. kMaxCapacity, checked by the caller.
  explicit RefTable(uint32_t capacity);
  RefTable(const RefTable&) = delete;
  RefTable& operator=(const RefTable&) = delete;

  // A new holder. Its references count until retireShard.
  std::shared_ptr<Shard> attachShard();
  // Drops every reference the shard holds; the shard must not be used on this table again.
  void retireShard(const std::shared_ptr<Shard>& shard);

  // Finds the entry for fid and adds a reference. Returns its slot, or kNotFound.
  int32_t findHold(Shard& s, const Fid& fid);

  // The design findHold replaces (the cache manager before 2008): the lookup and the
  // count change under the writers' lock. Kept as the benchmark's baseline (row B2).
  int32_t findHoldExclusive(Shard& s, const Fid& fid);

  // Finds or creates the entry for fid and adds a reference. Returns its slot, or
  // kTableFull when every entry is held. *created tells whether the slot now names a
  // Fid it did not name before (so the caller must reset the slot's record).
  int32_t getHold(Shard& s, const Fid& fid, bool* created);

  // Adds a reference to an entry that is held (by this holder or any other).
  Status hold(Shard& s, uint32_t slot);

  // Drops one of this holder's references. The entry stays findable at zero.
  Status release(Shard& s, uint32_t slot);

  // Hands one of this holder's references over to shared state (a dirty buffer's, say):
  // it no longer dies with the holder, and any thread drops it with releaseDisowned.
  Status disown(Shard& s, uint32_t slot);
  Status releaseDisowned(uint32_t slot);

  // For keys that must die with their last holder (a PAG): if the entry at slot still
  // names `fid` and nobody holds it, takes it off its chain so no lookup finds it, and
  // frees the slot for the next getHold. Returns true if it removed the entry. Safe to
  // race with lookups (one that held it again wins) and with other removers.
  bool removeIfIdle(uint32_t slot, const Fid& fid);

  // Rebuilds a table from a record of its names that outlived it (a cache file): names
  // `slot` with `fid`, idle, or held by one disowned reference (a dirty record's own).
  // Only before any holder uses the table, and in ascending slot order: the slots skipped
  // go to the free list. kBadSlot for a slot out of order or range, kBadArgument for a
  // name the table already has (a torn record's duplicate).
  Status restore(uint32_t slot, const Fid& fid, bool disowned);

  // Batch forms. out[i] is a slot or kNotFound. releaseMany stops at the first bad slot
  // and returns its status, with *done set to how many were released.
  void findHoldMany(Shard& s, const Fid* fids, uint32_t n, int32_t* out);
  Status releaseMany(Shard& s, const int32_t* slots, uint32_t n, uint32_t* done);

  // The count of one entry (every holder's and the disowned), or kBadSlot.
  int32_t refCount(uint32_t slot);
  // The Fid a used slot names; false for a slot never used or removed.
  bool fidAt(uint32_t slot, Fid* out);

  uint32_t capacity() const { return capacity_; }
  uint32_t mask() const { return mask_; }
  // Entries that name a Fid (held or idle), counting removed ones.
  uint32_t used() const { return used_.load(std::memory_order_relaxed); }
  // Entries that were taken from one Fid and given to another.
  uint64_t recycled() const { return recycled_.load(std::memory_order_relaxed); }
  // Slots removed and not yet reused: used() - freed() entries name a Fid.
  uint32_t freed() const { return freed_.load(std::memory_order_relaxed); }
  // The sum of all counts; exact only when no thread is holding or releasing.
  int64_t totalRefs();

  // Whether readers may raise their counts with plain stores (see the invariant).
  static bool lightReaders();

  // The index, for the JS probe: indexWords() words in the layout above.
  int32_t* index() { return index_.get(); }
  uint32_t indexWords() const { return indexWords_; }

 private:
  std::atomic_ref<int32_t> word(uint32_t i) { return std::atomic_ref<int32_t>(index_[i]); }
  uint32_t entryBase(uint32_t slot) const { return entriesBase_ + slot * reftable::kEntryWords; }
  int32_t probe(const Fid& fid);        // a chain walk; stable only if seq did not move
  int32_t lookupLocked(const Fid& fid);  // under mutex_: nothing moves
  int64_t countLocked(uint32_t slot);    // under mutex_: disowned + every live shard
  int32_t claimSlotLocked();             // a slot for a new name, with seq odd; or -1
  void unlinkLocked(uint32_t slot);
  void nameLocked(uint32_t slot, const Fid& fid);
  void beginChange();
  void endChange();
  void touch(uint32_t slot);

  const uint32_t capacity_;
  const uint32_t mask_;
  const uint32_t entriesBase_;
  const uint32_t indexWords_;
  std::unique_ptr<int32_t[], void (*)(void*)> index_;
  std::mutex mutex_;  // writers: chains, names, seq, the shard list, the free list
  std::vector<std::shared_ptr<Shard>> shards_;  // the live ones; under mutex_
  std::atomic<uint32_t> used_{0};               // written under mutex_
  std::atomic<uint64_t> recycled_{0};           // written under mutex_
  std::atomic<uint32_t> freed_{0};              // written under mutex_
  std::vector<bool> removed_;  // on the free list; under mutex_
  int32_t freeHead_ = -1;      // removed slots, linked through their next word; under mutex_
  uint32_t clockHand_ = 0;     // under mutex_
};

}  // namespace cmkit
