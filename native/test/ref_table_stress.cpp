// RefTable under many threads: random getHold / findHold / hold / release / disown /
// batch calls on a key space larger than the table, so the recycler races the readers'
// seqlock probes all the time. Each thread is one holder (a shard); some threads die
// holding references, and their shard is retired for them.
// Invariants checked:
//   - an entry is never recycled while held: the Fid a held slot names never changes;
//   - counts return to zero: at the end every refCount is 0, including the references
//     of the threads that died holding them and the disowned ones;
//   - a full table says so instead of recycling a held entry;
//   - removeIfIdle, raced against lookups, never removes a held entry, and a removed
//     slot is reused before the table grows.
// ThreadSanitizer checks the rest (the probes' reads are atomic, the writers' under a
// mutex).
#include "../core/ref_table.h"

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "stress.h"

using cmkit::Fid;
using cmkit::RefTable;
using cmkit::Status;

namespace {

struct Held {
  int32_t slot;
  Fid fid;
};

void checkStillNames(RefTable& t, const Held& h) {
  Fid now;
  CHECK(t.fidAt(static_cast<uint32_t>(h.slot), &now));
  CHECK(now == h.fid);
  CHECK(t.refCount(static_cast<uint32_t>(h.slot)) >= 1);
}

// Entries disowned by the threads, released by another thread later.
struct Disowned {
  std::mutex mutex;
  std::vector<Held> held;
};

// Readers racing the recycler on a table so small that nearly every getHold recycles:
// more threads than cores, each holding a key across a yield and checking that the slot
// still names it. This is the phase that catches a recycler that skips its re-check of
// the count after raising seq (the window between its pre-check and seq is a few
// instructions wide; a thread preempted there is what widens it).
void raceTheRecycler(const cmkit::stress::Options& opt) {
  constexpr uint32_t kTiny = 4;
  constexpr unsigned kThreads = 8;
  RefTable table(kTiny);
  auto worker = [&](unsigned id) {
    std::mt19937_64 rng(opt.seed * 7919 + id);
    auto shard = table.attachShard();
    for (uint64_t i = 0; i < opt.opsPerThread / 4; i++) {
      Fid f = Fid::make(1, 1, static_cast<uint32_t>(rng() % (2 * kTiny)), 1);
      bool created = false;
      int32_t slot = (i & 1) != 0 ? table.findHold(*shard, f) : table.getHold(*shard, f, &created);
      if (slot < 0) continue;  // not found, or every entry held right now
      checkStillNames(table, {slot, f});
      std::this_thread::yield();
      checkStillNames(table, {slot, f});
      CHECK(table.release(*shard, static_cast<uint32_t>(slot)) == Status::kOk);
    }
    table.retireShard(shard);
  };
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < kThreads; i++) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();
  CHECK(table.totalRefs() == 0);
  CHECK(table.recycled() > 0);
  std::printf("ref_table_stress race ok ops=%llu recycled=%llu\n",
              static_cast<unsigned long long>(kThreads * (opt.opsPerThread / 4)),
              static_cast<unsigned long long>(table.recycled()));
}

}  // namespace

int main(int argc, char** argv) {
  auto opt = cmkit::stress::parseOptions(argc, argv, 300000, 4);
  std::printf("ref_table_stress seed=%llu threads=%u ops/thread=%llu\n",
              static_cast<unsigned long long>(opt.seed), opt.threads,
              static_cast<unsigned long long>(opt.opsPerThread));

  constexpr uint32_t kCapacity = 256;
  constexpr uint32_t kKeys = 1024;      // four times the capacity: constant recycling
  constexpr size_t kMaxHeldPerThread = 16;  // threads * 16 < capacity, so getHold succeeds
  RefTable table(kCapacity);
  std::atomic<uint64_t> ops{0}, fullSeen{0}, died{0};
  Disowned disowned;

  auto worker = [&](unsigned id) {
    std::mt19937_64 rng(opt.seed * 1000003 + id);
    std::shared_ptr<RefTable::Shard> shard = table.attachShard();
    RefTable::Shard& s = *shard;
    std::vector<Held> held;
    auto randomFid = [&] { return Fid::make(1, 7, static_cast<uint32_t>(rng() % kKeys), 1); };
    for (uint64_t i = 0; i < opt.opsPerThread; i++) {
      unsigned op = rng() % 100;
      if (op < 35 && held.size() < kMaxHeldPerThread) {
        Fid f = randomFid();
        bool created = false;
        int32_t slot = table.getHold(s, f, &created);
        CHECK(slot >= 0);
        held.push_back({slot, f});
        checkStillNames(table, held.back());
      } else if (op < 55 && held.size() < kMaxHeldPerThread) {
        Fid f = randomFid();
        int32_t slot = table.findHold(s, f);
        CHECK(slot >= 0 || slot == static_cast<int32_t>(Status::kNotFound));
        if (slot >= 0) {
          held.push_back({slot, f});
          checkStillNames(table, held.back());
        }
      } else if (op < 65 && !held.empty() && held.size() < kMaxHeldPerThread) {
        Held h = held[rng() % held.size()];
        CHECK(table.hold(s, static_cast<uint32_t>(h.slot)) == Status::kOk);
        held.push_back(h);
      } else if (op < 70 && held.size() + 4 <= kMaxHeldPerThread) {
        Fid batch[4] = {randomFid(), randomFid(), randomFid(), randomFid()};
        int32_t out[4];
        table.findHoldMany(s, batch, 4, out);
        for (int k = 0; k < 4; k++) {
          if (out[k] >= 0) {
            held.push_back({out[k], batch[k]});
            checkStillNames(table, held.back());
          }
        }
      } else if (!held.empty()) {
        size_t k = rng() % held.size();
        checkStillNames(table, held[k]);
        Held h = held[k];
        held[k] = held.back();
        held.pop_back();
        if (op % 7 == 0) {
          // Handed to shared state; some thread drops it later.
          CHECK(table.disown(s, static_cast<uint32_t>(h.slot)) == Status::kOk);
          std::lock_guard<std::mutex> g(disowned.mutex);
          disowned.held.push_back(h);
          continue;
        }
        CHECK(table.release(s, static_cast<uint32_t>(h.slot)) == Status::kOk);
        {
          // Drop a disowned reference, and hold one of another thread's by slot.
          std::lock_guard<std::mutex> g(disowned.mutex);
          if (op % 3 == 0 && !disowned.held.empty()) {
            Held d = disowned.held.back();
            checkStillNames(table, d);
            if (op % 2 == 0 && held.size() < kMaxHeldPerThread) {
              CHECK(table.hold(s, static_cast<uint32_t>(d.slot)) == Status::kOk);
              held.push_back(d);
            }
            disowned.held.pop_back();
            CHECK(table.releaseDisowned(static_cast<uint32_t>(d.slot)) == Status::kOk);
          }
        }
        // Some keys die with their last holder (a PAG); lookups may hold them again first.
        if (op % 4 == 0) {
          table.removeIfIdle(static_cast<uint32_t>(h.slot), h.fid);
          for (const Held& still : held) checkStillNames(table, still);
        }
      }
    }
    ops.fetch_add(opt.opsPerThread + held.size(), std::memory_order_relaxed);
    if (id % 2 == 1) {
      // Dies holding them: the shard goes, and its references with it.
      died.fetch_add(held.size(), std::memory_order_relaxed);
      table.retireShard(shard);
      return;
    }
    for (const Held& h : held) CHECK(table.release(s, static_cast<uint32_t>(h.slot)) == Status::kOk);
    table.retireShard(shard);
  };

  std::vector<std::thread> threads;
  for (unsigned i = 0; i < opt.threads; i++) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();

  for (const Held& d : disowned.held) CHECK(table.releaseDisowned(static_cast<uint32_t>(d.slot)) == Status::kOk);
  CHECK(table.totalRefs() == 0);
  for (uint32_t s = 0; s < table.used(); s++) CHECK(table.refCount(s) == 0);
  auto main = table.attachShard();
  RefTable::Shard& s = *main;
  CHECK(table.release(s, 0) == Status::kNotHeld);
  CHECK(table.releaseDisowned(0) == Status::kNotHeld);
  CHECK(table.recycled() > 0);

  // Remove every idle entry: all go to the free list and none is found again; new keys
  // take freed slots before the table grows.
  for (uint32_t s = 0; s < table.used(); s++) {
    Fid f;
    if (table.fidAt(s, &f)) CHECK(table.removeIfIdle(s, f));
  }
  CHECK(table.freed() == table.used());
  for (uint32_t v = 0; v < kKeys; v++) CHECK(table.findHold(s, Fid::make(1, 7, v, 1)) == static_cast<int32_t>(Status::kNotFound));
  uint32_t usedBefore = table.used();
  {
    bool created = false;
    int32_t slot = table.getHold(s, Fid::make(4, 4, 4, 4), &created);
    CHECK(slot >= 0 && created && table.used() == usedBefore && table.freed() == usedBefore - 1);
    CHECK(!table.removeIfIdle(static_cast<uint32_t>(slot), Fid::make(4, 4, 4, 4)));  // held
    CHECK(table.release(s, static_cast<uint32_t>(slot)) == Status::kOk);
    CHECK(!table.removeIfIdle(static_cast<uint32_t>(slot), Fid::make(5, 5, 5, 5)));  // another key
  }

  // A full table: hold every entry, then one more Fid must fail, not steal.
  std::vector<int32_t> all;
  for (uint32_t v = 0; v < kCapacity; v++) {
    bool created = false;
    int32_t slot = table.getHold(s, Fid::make(2, 2, v, 2), &created);
    CHECK(slot >= 0);
    all.push_back(slot);
  }
  bool created = false;
  CHECK(table.getHold(s, Fid::make(3, 3, 3, 3), &created) == static_cast<int32_t>(Status::kTableFull));
  fullSeen.fetch_add(1);
  uint32_t done = 0;
  CHECK(table.releaseMany(s, all.data(), static_cast<uint32_t>(all.size()), &done) == Status::kOk);
  CHECK(done == all.size() && table.totalRefs() == 0);

  // A holder that dies holding every entry frees them all at once.
  for (int32_t slot : all) CHECK(table.hold(s, static_cast<uint32_t>(slot)) == Status::kNotHeld);
  {
    auto doomed = table.attachShard();
    for (uint32_t v = 0; v < kCapacity; v++) CHECK(table.getHold(*doomed, Fid::make(2, 2, v, 2), &created) >= 0);
    CHECK(table.getHold(s, Fid::make(3, 3, 3, 3), &created) == static_cast<int32_t>(Status::kTableFull));
    table.retireShard(doomed);
    CHECK(table.totalRefs() == 0);
    int32_t slot = table.getHold(s, Fid::make(3, 3, 3, 3), &created);
    CHECK(slot >= 0 && created);
    CHECK(table.release(s, static_cast<uint32_t>(slot)) == Status::kOk);
  }

  raceTheRecycler(opt);
  std::printf("ref_table_stress ok ops=%llu recycled=%llu released-at-death=%llu\n",
              static_cast<unsigned long long>(ops.load()),
              static_cast<unsigned long long>(table.recycled()),
              static_cast<unsigned long long>(died.load()));
  return 0;
}
