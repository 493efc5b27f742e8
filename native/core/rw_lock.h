// RwLock: a reader/writer lock whose whole state is one 32-bit word, so it can live in
// shared memory (a SharedArrayBuffer) and be used from every thread of the process, and
// so a thread that must wait can sleep on that word with Atomics.wait / waitAsync.
//
// Word layout:
//   bit 31      kWriter    a writer holds the lock
//   bit 30      kPending   a writer (or an upgrader) is waiting: new readers stay out
//   bit 29      kWaiters   some thread sleeps on the word: a release must wake it
//   bits 0..28  readers    how many read shares are held
//
// Modes and who may hold them at once:
//   read   readers <= kMaxReaders and no writer;
//   write  exactly one, and then readers == 0.
//   Invariant: (word & kWriter) == 0 || readers(word) == 0.
//
// Every operation here is a compare-and-swap loop that never waits: a thread that did not
// get the lock calls prepareWait(), sleeps on the returned value outside native code (so
// the wait is interruptible and terminate() works), and tries again. The releaser that
// finds kWaiters set clears it and tells its caller to wake every sleeper (notify all).
//
// Transitions, named by what they give up and what they take:
//   downgrade      write -> read atomically: no writer can get in between, and sleeping
//                  readers are woken.
//   tryUpgrade     read -> write, only when the caller is the sole reader; otherwise it
//                  fails and the caller still holds its read share.
//   releaseReadForUpgrade
//                  gives up the read share and raises kPending in the same step, so the
//                  caller waits as the next writer. Because the share is given up, two
//                  concurrent upgraders cannot deadlock; the caller must re-validate what
//                  it read, since another writer may have run first.
//
// Starvation and self-healing: kPending keeps new readers out while a writer waits. It is
// cleared whenever the lock becomes free, and a waiting writer sets it again when it next
// fails, so a writer that died while waiting cannot leave readers locked out.
//
// The lock is not reentrant and keeps no owner: the wrapper that hands it out (JS
// RwLock, or the C++ caller) knows which mode it holds. Any thread may release.
#pragma once

#include <atomic>
#include <cstdint>

#include "status.h"

namespace cmkit {

namespace rwlock {

constexpr uint32_t kWriter = 1u << 31;
constexpr uint32_t kPending = 1u << 30;
constexpr uint32_t kWaiters = 1u << 29;
constexpr uint32_t kReaderMask = kWaiters - 1;
constexpr uint32_t kMaxReaders = kReaderMask;

constexpr uint32_t readers(uint32_t w) { return w & kReaderMask; }

// What a release did: whether sleepers must be woken.
enum class Wake : int32_t { kNone = 0, kAll = 1 };

// The result of a transition: a Status (negative on error) or a Wake value.
using Result = int32_t;
constexpr Result fromWake(Wake w) { return static_cast<Result>(w); }
constexpr Result fromStatus(Status s) { return static_cast<Result>(s); }

class Word {
 public:
  explicit Word(uint32_t& w) : word_(w) {}

  uint32_t load() const { return word_.load(std::memory_order_acquire); }

  bool tryRead() {
    uint32_t w = word_.load(std::memory_order_relaxed);
    do {
      if ((w & (kWriter | kPending)) != 0 || readers(w) == kMaxReaders) return false;
    } while (!word_.compare_exchange_weak(w, w + 1, std::memory_order_acquire,
                                          std::memory_order_relaxed));
    return true;
  }

  bool tryWrite() {
    uint32_t w = word_.load(std::memory_order_relaxed);
    do {
      if ((w & kWriter) != 0 || readers(w) != 0) return false;
    } while (!word_.compare_exchange_weak(w, (w | kWriter) & ~kPending,
                                          std::memory_order_acquire,
                                          std::memory_order_relaxed));
    return true;
  }

  // Before sleeping: marks the word so the next release wakes us, and for a writer
  // raises kPending. Returns the value to sleep on, or 0 if the lock looks free now and
  // the caller should simply try again. (0 is never a value worth sleeping on: it means
  // free.)
  uint32_t prepareWait(bool forWrite) {
    uint32_t w = word_.load(std::memory_order_relaxed);
    for (;;) {
      bool blocked = forWrite ? ((w & kWriter) != 0 || readers(w) != 0)
                              : ((w & (kWriter | kPending)) != 0);
      if (!blocked) return 0;
      uint32_t want = w | kWaiters | (forWrite ? kPending : 0);
      if (want == w) return w;
      if (word_.compare_exchange_weak(w, want, std::memory_order_relaxed)) return want;
    }
  }

  Result releaseRead() {
    uint32_t w = word_.load(std::memory_order_relaxed);
    uint32_t next;
    do {
      if ((w & kWriter) != 0 || readers(w) == 0) return fromStatus(Status::kLockNotHeld);
      next = w - 1;
      // Last reader out: the lock is free, so nobody may stay pending or asleep.
      if (readers(next) == 0) next &= ~(kPending | kWaiters);
    } while (!word_.compare_exchange_weak(w, next, std::memory_order_release,
                                          std::memory_order_relaxed));
    return fromWake(readers(next) == 0 && (w & kWaiters) != 0 ? Wake::kAll : Wake::kNone);
  }

  Result releaseWrite() {
    uint32_t w = word_.load(std::memory_order_relaxed);
    do {
      if ((w & kWriter) == 0) return fromStatus(Status::kLockNotHeld);
    } while (!word_.compare_exchange_weak(w, 0, std::memory_order_release,
                                          std::memory_order_relaxed));
    return fromWake((w & kWaiters) != 0 ? Wake::kAll : Wake::kNone);
  }

  Result downgrade() {
    uint32_t w = word_.load(std::memory_order_relaxed);
    do {
      if ((w & kWriter) == 0) return fromStatus(Status::kLockNotHeld);
      // Writer bit off and our read share on in one step. kPending is dropped so that the
      // sleeping readers we wake can enter; a waiting writer raises it again.
    } while (!word_.compare_exchange_weak(w, 1, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
    return fromWake((w & kWaiters) != 0 ? Wake::kAll : Wake::kNone);
  }

  // Status::kOk when upgraded, kWouldBlock when other readers hold shares (the caller
  // still holds its read share), kLockNotHeld when no read share is held.
  Status tryUpgrade() {
    uint32_t w = word_.load(std::memory_order_relaxed);
    do {
      if ((w & kWriter) != 0 || readers(w) == 0) return Status::kLockNotHeld;
      if (readers(w) != 1) return Status::kWouldBlock;
    } while (!word_.compare_exchange_weak(w, (w - 1) | kWriter, std::memory_order_acquire,
                                          std::memory_order_relaxed));
    return Status::kOk;
  }

  Result releaseReadForUpgrade() {
    uint32_t w = word_.load(std::memory_order_relaxed);
    uint32_t next;
    do {
      if ((w & kWriter) != 0 || readers(w) == 0) return fromStatus(Status::kLockNotHeld);
      next = w - 1;
      next = readers(next) == 0 ? next & ~(kPending | kWaiters) : next | kPending;
    } while (!word_.compare_exchange_weak(w, next, std::memory_order_release,
                                          std::memory_order_relaxed));
    return fromWake(readers(next) == 0 && (w & kWaiters) != 0 ? Wake::kAll : Wake::kNone);
  }

 private:
  std::atomic_ref<uint32_t> word_;
};

}  // namespace rwlock
}  // namespace cmkit
