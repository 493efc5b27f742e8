// RwLock under many threads: random read / write / try / upgrade / downgrade on a few
// lock words, sleeping on the word the way JS does (prepareWait, then wait on the value;
// a release that reports Wake::kAll wakes everyone).
// Invariants checked, through shadow counts kept beside each lock:
//   - modes never overlap illegally: a writer is alone; readers never see a writer;
//   - no writer gets in during a downgrade: the downgrader is counted as a reader
//     before the word changes, so a writer entering would find it;
//   - two upgraders never deadlock (the run finishes);
//   - every word is back to 0 at the end.
// Each lock also guards a plain (non-atomic) payload that writers change and readers
// read, so ThreadSanitizer reports any access the lock failed to order.
#include "../core/rw_lock.h"

#include <atomic>
#include <thread>
#include <vector>

#include "stress.h"

namespace rw = cmkit::rwlock;
using cmkit::Status;

namespace {

struct alignas(64) Guarded {
  uint32_t word = 0;
  std::atomic<int32_t> readersIn{0};
  std::atomic<int32_t> writersIn{0};
  uint64_t payload = 0;  // guarded by `word`
};

void sleepOn(uint32_t& word, uint32_t value) { std::atomic_ref<uint32_t>(word).wait(value); }

void wake(uint32_t& word, rw::Result r) {
  CHECK(r >= 0);
  if (r == rw::fromWake(rw::Wake::kAll)) std::atomic_ref<uint32_t>(word).notify_all();
}

void read(Guarded& g) {
  rw::Word w(g.word);
  while (!w.tryRead()) {
    uint32_t v = w.prepareWait(false);
    if (v != 0) sleepOn(g.word, v);
  }
}

void write(Guarded& g) {
  rw::Word w(g.word);
  while (!w.tryWrite()) {
    uint32_t v = w.prepareWait(true);
    if (v != 0) sleepOn(g.word, v);
  }
}

void enterRead(Guarded& g) {
  g.readersIn.fetch_add(1);
  CHECK(g.writersIn.load() == 0);
  volatile uint64_t seen = g.payload;
  (void)seen;
}

void enterWrite(Guarded& g) {
  CHECK(g.writersIn.fetch_add(1) == 0);
  CHECK(g.readersIn.load() == 0);
  g.payload++;
}

}  // namespace

int main(int argc, char** argv) {
  auto opt = cmkit::stress::parseOptions(argc, argv, 300000, 4);
  std::printf("rw_lock_stress seed=%llu threads=%u ops/thread=%llu\n",
              static_cast<unsigned long long>(opt.seed), opt.threads,
              static_cast<unsigned long long>(opt.opsPerThread));

  constexpr unsigned kLocks = 3;
  std::vector<Guarded> locks(kLocks);
  std::atomic<uint64_t> upgradesImmediate{0}, upgradesWaited{0}, downgrades{0};

  auto worker = [&](unsigned id) {
    std::mt19937_64 rng(opt.seed * 7919 + id);
    for (uint64_t i = 0; i < opt.opsPerThread; i++) {
      Guarded& g = locks[rng() % kLocks];
      rw::Word w(g.word);
      switch (rng() % 6) {
        case 0:  // read, release
          read(g);
          enterRead(g);
          g.readersIn.fetch_sub(1);
          wake(g.word, w.releaseRead());
          break;
        case 1:  // write, release
          write(g);
          enterWrite(g);
          g.writersIn.fetch_sub(1);
          wake(g.word, w.releaseWrite());
          break;
        case 2:  // try forms
          if (w.tryRead()) {
            enterRead(g);
            g.readersIn.fetch_sub(1);
            wake(g.word, w.releaseRead());
          } else if (w.tryWrite()) {
            enterWrite(g);
            g.writersIn.fetch_sub(1);
            wake(g.word, w.releaseWrite());
          }
          break;
        case 3:  // write, downgrade, read, release
        case 4: {
          write(g);
          enterWrite(g);
          g.readersIn.fetch_add(1);  // counted as a reader before the writer bit goes
          g.writersIn.fetch_sub(1);
          wake(g.word, w.downgrade());
          downgrades.fetch_add(1, std::memory_order_relaxed);
          CHECK(g.writersIn.load() == 0);
          volatile uint64_t seen = g.payload;
          (void)seen;
          g.readersIn.fetch_sub(1);
          wake(g.word, w.releaseRead());
          break;
        }
        case 5: {  // read, upgrade (immediate or by giving up the share), release
          read(g);
          enterRead(g);
          g.readersIn.fetch_sub(1);
          Status s = w.tryUpgrade();
          CHECK(s == Status::kOk || s == Status::kWouldBlock);
          if (s == Status::kOk) {
            upgradesImmediate.fetch_add(1, std::memory_order_relaxed);
          } else {
            wake(g.word, w.releaseReadForUpgrade());
            write(g);
            upgradesWaited.fetch_add(1, std::memory_order_relaxed);
          }
          enterWrite(g);
          g.writersIn.fetch_sub(1);
          wake(g.word, w.releaseWrite());
          break;
        }
      }
    }
  };

  std::vector<std::thread> threads;
  for (unsigned i = 0; i < opt.threads; i++) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();

  for (auto& g : locks) {
    CHECK(g.word == 0);
    CHECK(g.readersIn.load() == 0 && g.writersIn.load() == 0);
  }
  // Transitions from the wrong mode are refused, and leave the word alone.
  rw::Word w(locks[0].word);
  CHECK(w.releaseRead() == rw::fromStatus(Status::kLockNotHeld));
  CHECK(w.releaseWrite() == rw::fromStatus(Status::kLockNotHeld));
  CHECK(w.downgrade() == rw::fromStatus(Status::kLockNotHeld));
  CHECK(w.tryUpgrade() == Status::kLockNotHeld);
  CHECK(locks[0].word == 0);

  uint64_t ops = opt.opsPerThread * opt.threads;
  std::printf("rw_lock_stress ok ops=%llu upgrades immediate=%llu waited=%llu downgrades=%llu\n",
              static_cast<unsigned long long>(ops),
              static_cast<unsigned long long>(upgradesImmediate.load()),
              static_cast<unsigned long long>(upgradesWaited.load()),
              static_cast<unsigned long long>(downgrades.load()));
  return 0;
}
