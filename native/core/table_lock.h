// TableLock: the shared/exclusive lock of one RefTable, with readers striped by thread.
//
// Modes and who may hold them at once:
//   shared     any number of threads, each for the length of one lookup (a chain walk);
//   exclusive  one thread, and then no thread holds shared.
// Invariant: exclusive held  =>  sum over stripes of readers == 0.
//
// Why striped by thread: a single reader count is one cache line that every lookup
// writes, so two threads that only read still contend on it. Here each thread counts
// itself in its own cache line (its stripe) and a writer has to visit every stripe. A
// lookup therefore writes only memory its own thread owns (plus the entry's refCount),
// and reads scale with threads even when they look up the same hot Fid. Inserts and
// recycling, which take the exclusive lock, are rare in a warm cache: a hit never
// inserts.
//
// Neither mode waits without bound: readers and writers hold the lock only inside one
// native call for a bounded amount of work, and never across a return to JS. So a thread
// that finds the lock taken spins (with a yield) instead of sleeping.
//
// The lock is not reentrant, and must be released by the thread that took it.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>

namespace cmkit {

class TableLock {
 public:
  static constexpr unsigned kStripes = 64;

  TableLock() = default;
  TableLock(const TableLock&) = delete;
  TableLock& operator=(const TableLock&) = delete;

  void lockShared() {
    Stripe& s = stripes_[threadStripe()];
    for (;;) {
      // seq_cst on both sides: the reader announces itself and then looks for a writer,
      // the writer announces itself and then looks for readers (Dekker's pattern). At
      // least one of the two sees the other.
      s.readers.fetch_add(1, std::memory_order_seq_cst);
      if (writer_.load(std::memory_order_seq_cst) == 0) return;
      s.readers.fetch_sub(1, std::memory_order_release);
      while (writer_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    }
  }

  void unlockShared() { stripes_[threadStripe()].readers.fetch_sub(1, std::memory_order_release); }

  void lockExclusive() {
    writerMutex_.lock();
    writer_.store(1, std::memory_order_seq_cst);
    for (Stripe& s : stripes_) {
      while (s.readers.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
    }
  }

  void unlockExclusive() {
    writer_.store(0, std::memory_order_release);
    writerMutex_.unlock();
  }

 private:
  struct alignas(64) Stripe {
    std::atomic<uint32_t> readers{0};
  };

  // Round robin rather than a hash of the thread id, so the first kStripes threads of
  // the process each get a stripe of their own.
  static unsigned threadStripe() {
    static std::atomic<unsigned> next{0};
    thread_local const unsigned mine = next.fetch_add(1, std::memory_order_relaxed) % kStripes;
    return mine;
  }

  Stripe stripes_[kStripes];
  alignas(64) std::atomic<uint32_t> writer_{0};
  std::mutex writerMutex_;
};

// Scoped guards, one per mode; neither can be copied or moved.
class SharedGuard {
 public:
  explicit SharedGuard(TableLock& l) : lock_(l) { lock_.lockShared(); }
  ~SharedGuard() { lock_.unlockShared(); }
  SharedGuard(const SharedGuard&) = delete;
  SharedGuard& operator=(const SharedGuard&) = delete;

 private:
  TableLock& lock_;
};

class ExclusiveGuard {
 public:
  explicit ExclusiveGuard(TableLock& l) : lock_(l) { lock_.lockExclusive(); }
  ~ExclusiveGuard() { lock_.unlockExclusive(); }
  ExclusiveGuard(const ExclusiveGuard&) = delete;
  ExclusiveGuard& operator=(const ExclusiveGuard&) = delete;

 private:
  TableLock& lock_;
};

}  // namespace cmkit
