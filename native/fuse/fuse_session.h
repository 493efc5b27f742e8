// A FUSE mount served from other threads: the kernel's protocol spoken directly
// (fuse_wire.h), read by a few reader threads that never wait for the requests they read
// to be answered. No libfuse: the mount builds wherever the addon builds.
//
// Threads and who may wait on whom:
//   - Reader threads (kReaders by default), each on its own descriptor of the connection
//     (the mount's, or a clone of it: FUSE_DEV_IOC_CLONE), read requests, turn each into a
//     Request, queue it and call its consumer's `wake` (which must not block: the binding
//     posts to a JS thread). They answer only what no consumer serves (ENOSYS), take
//     FORGETs (which want no answer), and answer a READ of a routed handle themselves when
//     the hit source has it (a cache hit: core/read_hit.h), with no hop to a JS thread. They wait in poll(2) on their descriptor and on an
//     eventfd that stop() signals, so stop() ends them at once.
//     INIT is answered by mount() itself, before any reader starts.
//   - Serving threads (JS threads, each a consumer with its own queue and wake) take
//     their queued requests and answer each exactly once, whenever its work is done,
//     with the reply* calls. A reply is one writev to the descriptor the request came in
//     on (the kernel matches it there): it never waits for a reader. Consumer 0 is the
//     thread that mounted; it gets every request except the data requests (read, write,
//     flush, fsync) of a file handle it routed to another consumer, which carry the Fid
//     it routed with them.
//   - The notifier thread sends cache invalidations to the kernel. They can wait on page
//     locks that an unanswered READ holds, so they must never run on the serving thread
//     (which is the one that would answer that READ).
//
// Invariants: every request taken is answered once (stop() answers what was never taken
// and what was taken but not answered with EIO); after stop() the reply calls do nothing
// and no descriptor is written after it is closed (devMu_). Wakes are called under mu_,
// so a consumer removed under mu_ is never woken after.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fuse_request.h"

namespace cmkit::fuse {

// Reads a reader thread serves itself, where it read the request (a cache hit), with
// no hop to a serving thread: the binding installs one over the cache.
class HitSource {
 public:
  virtual ~HitSource() = default;
  // On reader thread `reader` (0 .. readers-1, each only ever on its own thread): copies
  // the read into out (room for `size` bytes) and returns its length, or -1 on a miss.
  virtual int64_t read(uint32_t reader, const uint32_t fid[4], uint64_t offset, uint32_t size, char* out) = 0;
};

class Session {
 public:
  static constexpr unsigned kReaders = 2;
  // How long mount() waits for the kernel's INIT.
  static constexpr int kInitTimeoutMs = 10000;

  // Mounts at `mountpoint` (options: fuse_mount.h) and answers the kernel's INIT. `wake`
  // (consumer 0's) is called when requests arrive and its queue was empty (the serving
  // thread then takes them all). On failure returns nullptr and sets `error`. The session
  // is findable by id() until it is destroyed.
  static std::shared_ptr<Session> mount(const std::string& mountpoint, const std::vector<std::string>& options,
                                        std::function<void()> wake, std::string& error, unsigned readers = kReaders);
  static std::shared_ptr<Session> find(uint32_t id);
  ~Session();
  uint32_t id() const { return id_; }

  // Another serving thread; returns its consumer id (never 0). When it is removed (it
  // left, or its thread died) the requests queued for it and those it took but never
  // answered get EIO, and its routes go: later data requests of those handles go to 0.
  uint32_t addConsumer(std::function<void()> wake);
  void removeConsumer(uint32_t consumer);
  // Data requests of file handle `fh` go to `consumer`, carrying `fid`, until unroute.
  void route(uint64_t fh, uint32_t consumer, const uint32_t fid[4]);
  void unroute(uint64_t fh);

  // READs of routed handles are first offered to `source` on the reader thread, and
  // answered there when it has them. nullptr: no more; returns once no reader uses the
  // old source (so what it points at may go).
  void serveHits(std::shared_ptr<HitSource> source);
  uint32_t readers() const { return static_cast<uint32_t>(devs_.size()); }
  struct Counters {
    uint64_t wakes;       // wake calls: each posts to a JS thread
    uint64_t readerHits;  // READs answered by a reader thread itself
  };
  Counters counters() const {
    return {wakes_.load(std::memory_order_relaxed), readerHits_.load(std::memory_order_relaxed)};
  }

  // Serving thread: every request queued for `consumer`, oldest first; each must be answered.
  std::vector<Request*> take(uint32_t consumer);
  // False once the kernel ended the session (an outside umount) or stop() ran.
  bool alive() const { return !stopped_.load(std::memory_order_acquire); }

  // Answers; each frees the request. An id no longer outstanding is ignored.
  void replyError(uint32_t id, int err);
  void replyEntry(uint32_t id, const struct stat& st, double entryTimeout, double attrTimeout);
  void replyCreate(uint32_t id, const struct stat& st, double entryTimeout, double attrTimeout, uint64_t fh,
                   bool keepCache);
  void replyAttr(uint32_t id, const struct stat& st, double attrTimeout);
  // directIo: the kernel neither caches the file's pages nor clamps reads at its size.
  void replyOpen(uint32_t id, uint64_t fh, bool keepCache, bool directIo);
  void replyData(uint32_t id, const char* data, size_t size);
  void replyWrite(uint32_t id, size_t count);
  struct DirEntry {
    std::string name;
    uint64_t ino;
    uint32_t mode;
  };
  // Entries from index `offset` of the directory's listing, as many as fit.
  void replyDir(uint32_t id, const std::vector<DirEntry>& listing, size_t offset);
  // READDIRPLUS: entries (listing index offset + i) with attributes, as many as fit;
  // returns how many went out. The kernel holds one more lookup of each that went out,
  // except those with ino 0 (".", ".."), which carry no attributes.
  struct DirEntryPlus {
    std::string name;
    struct stat attr;
    uint64_t ino;
  };
  size_t replyDirPlus(uint32_t id, const std::vector<DirEntryPlus>& entries, size_t offset, double entryTimeout,
                      double attrTimeout);
  void replyReadlink(uint32_t id, const std::string& target);
  void replyStatfs(uint32_t id, const struct statvfs& sv);

  // Queues "forget the attributes and cached pages of ino" for the notifier thread;
  // returns a ticket. Invalidations are sent in ticket order, and `wake` is called after
  // each, so the serving thread can wait (without blocking) for invalidated() >= ticket.
  uint64_t invalidate(uint64_t ino);
  uint64_t invalidated() const { return invalidated_.load(std::memory_order_acquire); }

  // Ends the loop, answers everything outstanding with EIO, unmounts (lazily: a process
  // that still has a file open sees ENOTCONN, and the mount point is free at once).
  void stop();

 private:
  struct Consumer {
    std::function<void()> wake;
    std::deque<Request*> queue;
  };
  struct Route {
    uint32_t consumer;
    uint32_t fid[4];
  };

  Session() = default;
  bool answerInit(std::string& error);
  bool serveHit(uint32_t dev, Request* r, std::vector<char>& buf);
  void wakeLocked(Consumer& c);
  bool startReaders(unsigned readers, std::string& error);
  void reader(uint32_t dev);
  void dispatch(uint32_t dev, const char* msg, size_t n, std::vector<char>& hitBuf);
  void enqueue(Request* r);
  void kernelEnded();
  Request* claim(uint32_t id);
  // One reply (or notification, unique 0) of `error` (an errno, or a notify code when
  // unique is 0) and the body in iov[0..n).
  void send(uint32_t dev, uint64_t unique, int error, const iovec* iov, int n);
  // Answers r with `error` and the body, and frees it.
  void answer(Request* r, int error, const iovec* iov = nullptr, int n = 0);
  void notifier();
  void wakeAllLocked();

  uint32_t id_ = 0;
  std::string mountpoint_;
  bool byHelper_ = false;  // fusermount3 mounted it (fuse_mount.h)
  bool mounted_ = false;   // owner thread only: stop() has not run yet
  // devs_[0] is the mount's descriptor, the rest its clones, one per reader. Fixed before
  // the readers start; closed by stop() only under devMu_ held exclusively, while every
  // write holds it shared (so no write ever goes to a closed or reused number).
  std::vector<int> devs_;
  std::shared_mutex devMu_;
  bool devsClosed_ = false;  // guarded by devMu_
  int stopFd_ = -1;          // an eventfd: readable once stop() began
  std::vector<std::thread> readerThreads_;
  std::thread notifierThread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> kernelEnded_{false};  // a reader saw ENODEV: unmounted from outside, or aborted
  std::shared_mutex hitMu_;               // readers hold it shared while they use hits_
  std::shared_ptr<HitSource> hits_;       // guarded by hitMu_
  std::atomic<uint64_t> wakes_{0};
  std::atomic<uint64_t> readerHits_{0};

  std::mutex mu_;  // guards consumers_, routes_, outstanding_, nextId_, invalidations_, unmounted_
  std::condition_variable notifierCv_;
  std::unordered_map<uint32_t, Consumer> consumers_;
  uint32_t nextConsumer_ = 1;
  std::unordered_map<uint64_t, Route> routes_;
  std::unordered_map<uint32_t, Request*> outstanding_;
  uint32_t nextId_ = 1;
  std::deque<uint64_t> invalidations_;
  uint64_t tickets_ = 0;
  std::atomic<uint64_t> invalidated_{0};
  bool unmounted_ = false;
};

}  // namespace cmkit::fuse
