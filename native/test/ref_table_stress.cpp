// RefTable under many threads: random getHold / findHold / hold / release / batch calls
// on a key space larger than the table, so entries are recycled all the time.
// Invariants checked:
//   - an entry is never recycled while held: the Fid a held slot names never changes;
//   - counts return to zero: at the end every refCount is 0;
//   - a full table says so instead of recycling a held entry;
//   - removeIfIdle, raced against lookups, never removes a held entry, and a removed
//     slot is reused before the table grows.
// ThreadSanitizer checks the rest (fid and chain reads under the shared lock).
#include "../core/ref_table.h"

#include <atomic>
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
  std::atomic<uint64_t> ops{0}, fullSeen{0};

  auto worker = [&](unsigned id) {
    std::mt19937_64 rng(opt.seed * 1000003 + id);
    std::vector<Held> held;
    auto randomFid = [&] { return Fid::make(1, 7, static_cast<uint32_t>(rng() % kKeys), 1); };
    for (uint64_t i = 0; i < opt.opsPerThread; i++) {
      unsigned op = rng() % 100;
      if (op < 35 && held.size() < kMaxHeldPerThread) {
        Fid f = randomFid();
        bool created = false;
        int32_t slot = table.getHold(f, &created);
        CHECK(slot >= 0);
        held.push_back({slot, f});
        checkStillNames(table, held.back());
      } else if (op < 55 && held.size() < kMaxHeldPerThread) {
        Fid f = randomFid();
        int32_t slot = table.findHold(f);
        CHECK(slot >= 0 || slot == static_cast<int32_t>(Status::kNotFound));
        if (slot >= 0) {
          held.push_back({slot, f});
          checkStillNames(table, held.back());
        }
      } else if (op < 65 && !held.empty() && held.size() < kMaxHeldPerThread) {
        Held h = held[rng() % held.size()];
        CHECK(table.hold(static_cast<uint32_t>(h.slot)) == Status::kOk);
        held.push_back(h);
      } else if (op < 70 && held.size() + 4 <= kMaxHeldPerThread) {
        Fid batch[4] = {randomFid(), randomFid(), randomFid(), randomFid()};
        int32_t out[4];
        table.findHoldMany(batch, 4, out);
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
        CHECK(table.release(static_cast<uint32_t>(h.slot)) == Status::kOk);
        held[k] = held.back();
        held.pop_back();
        // Some keys die with their last holder (a PAG); lookups may hold them again first.
        if (op % 4 == 0) {
          table.removeIfIdle(static_cast<uint32_t>(h.slot), h.fid);
          for (const Held& still : held) checkStillNames(table, still);
        }
      }
    }
    for (const Held& h : held) CHECK(table.release(static_cast<uint32_t>(h.slot)) == Status::kOk);
    ops.fetch_add(opt.opsPerThread + held.size(), std::memory_order_relaxed);
  };

  std::vector<std::thread> threads;
  for (unsigned i = 0; i < opt.threads; i++) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();

  CHECK(table.totalRefs() == 0);
  for (uint32_t s = 0; s < table.used(); s++) CHECK(table.refCount(s) == 0);
  CHECK(table.release(0) == Status::kNotHeld);
  CHECK(table.recycled() > 0);

  // Remove every idle entry: all go to the free list and none is found again; new keys
  // take freed slots before the table grows.
  for (uint32_t s = 0; s < table.used(); s++) {
    Fid f;
    if (table.fidAt(s, &f)) CHECK(table.removeIfIdle(s, f));
  }
  CHECK(table.freed() == table.used());
  for (uint32_t v = 0; v < kKeys; v++) CHECK(table.findHold(Fid::make(1, 7, v, 1)) == static_cast<int32_t>(Status::kNotFound));
  uint32_t usedBefore = table.used();
  {
    bool created = false;
    int32_t slot = table.getHold(Fid::make(4, 4, 4, 4), &created);
    CHECK(slot >= 0 && created && table.used() == usedBefore && table.freed() == usedBefore - 1);
    CHECK(!table.removeIfIdle(static_cast<uint32_t>(slot), Fid::make(4, 4, 4, 4)));  // held
    CHECK(table.release(static_cast<uint32_t>(slot)) == Status::kOk);
    CHECK(!table.removeIfIdle(static_cast<uint32_t>(slot), Fid::make(5, 5, 5, 5)));  // another key
  }

  // A full table: hold every entry, then one more Fid must fail, not steal.
  std::vector<int32_t> all;
  for (uint32_t v = 0; v < kCapacity; v++) {
    bool created = false;
    int32_t slot = table.getHold(Fid::make(2, 2, v, 2), &created);
    CHECK(slot >= 0);
    all.push_back(slot);
  }
  bool created = false;
  CHECK(table.getHold(Fid::make(3, 3, 3, 3), &created) == static_cast<int32_t>(Status::kTableFull));
  fullSeen.fetch_add(1);
  uint32_t done = 0;
  CHECK(table.releaseMany(all.data(), static_cast<uint32_t>(all.size()), &done) == Status::kOk);
  CHECK(done == all.size() && table.totalRefs() == 0);

  std::printf("ref_table_stress ok ops=%llu recycled=%llu\n",
              static_cast<unsigned long long>(ops.load()),
              static_cast<unsigned long long>(table.recycled()));
  return 0;
}
