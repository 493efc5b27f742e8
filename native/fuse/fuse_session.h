// A FUSE mount served from another thread: libfuse's low-level session, read by one
// loop thread that never waits for the requests it reads to be answered.
//
// Threads and who may wait on whom:
//   - The loop thread reads /dev/fuse, turns each request into a Request, queues it and
//     calls `wake` (which must not block: the binding posts to a JS thread). It answers
//     only FORGET (which wants no answer) and INIT itself. It polls with a timeout so
//     stop() ends it within kPollMs whatever the kernel is doing.
//   - Serving threads (JS threads, each a consumer with its own queue and wake) take
//     their queued requests and answer each exactly once, whenever its work is done,
//     with the reply* calls. A reply is one write to /dev/fuse: it never waits for the
//     loop thread. Consumer 0 is the thread that mounted; it gets every request except
//     the data requests (read, write, flush, fsync) of a file handle it routed to
//     another consumer, which carry the Fid it routed with them.
//   - The notifier thread sends cache invalidations to the kernel. They can wait on page
//     locks that an unanswered READ holds, so they must never run on the serving thread
//     (which is the one that would answer that READ).
//
// Invariants: every request taken is answered once (stop() answers what was never taken
// and what was taken but not answered with EIO); after stop() the reply calls do nothing.
// Wakes are called under mu_, so a consumer removed under mu_ is never woken after.
#pragma once

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace cmkit::fuse {

enum class Op : uint8_t {
  Lookup,
  Forget,
  Getattr,
  Setattr,
  Opendir,
  Readdir,
  Releasedir,
  Open,
  Create,
  Read,
  Write,
  Flush,
  Fsync,
  Release,
  Unlink,
  Rename,
  Mkdir,
  Rmdir,
  Statfs,
  Readlink,
  Symlink,
  Link,
  Mknod,
  Readdirplus,
};

// One kernel request, copied out of libfuse's buffer so it outlives the loop's callback.
struct Request {
  uint32_t id = 0;
  Op op = Op::Lookup;
  fuse_req_t req = nullptr;
  uint64_t ino = 0;
  uint64_t ino2 = 0;      // rename: the new parent; link: the new parent
  std::string name;       // lookup/create/unlink/mkdir/mknod/rmdir/rename/symlink/link: the entry's name
  std::string name2;      // rename: the new name; symlink: the link's target
  uint64_t fh = 0;
  int64_t offset = 0;
  uint64_t size = 0;      // read: bytes wanted; forget: nlookup
  uint32_t flags = 0;     // open/create: open flags; rename: RENAME_* flags
  uint32_t mode = 0;
  uint64_t rdev = 0;      // mknod
  // Who asks (fuse_req_ctx): creates are owned by uid/gid.
  uint32_t uid = 0, gid = 0, pid = 0;
  int toSet = 0;          // setattr: FUSE_SET_ATTR_* bits
  struct stat attr {};    // setattr: the new values
  std::vector<char> data;  // write
  uint32_t fid[4] = {0, 0, 0, 0};  // a routed data request: the Fid its handle was routed with
  uint32_t consumer = 0;           // the serving thread it was queued for
};

class Session {
 public:
  static constexpr int kPollMs = 100;

  // Mounts at `mountpoint`. `wake` (consumer 0's) is called when requests arrive and its
  // queue was empty (the serving thread then takes them all). On failure returns nullptr
  // and sets `error`. The session is findable by id() until it is destroyed.
  static std::shared_ptr<Session> mount(const std::string& mountpoint, const std::vector<std::string>& options,
                                        std::function<void()> wake, std::string& error);
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

  // @internal libfuse callbacks.
  void enqueue(Request* r);
  void loopEnded();

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
  Request* claim(uint32_t id);
  void loop();
  void notifier();
  void wakeAllLocked();

  fuse_session* se_ = nullptr;
  uint32_t id_ = 0;
  std::string mountpoint_;
  std::thread loopThread_;
  std::thread notifierThread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};

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
