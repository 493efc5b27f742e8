#include "fuse_session.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fuse_mount.h"
#include "fuse_wire.h"

namespace cmkit::fuse {

namespace {
std::mutex registryMu;
std::unordered_map<uint32_t, std::weak_ptr<Session>> registry;
uint32_t nextSessionId = 1;
}  // namespace

std::shared_ptr<Session> Session::find(uint32_t id) {
  std::lock_guard<std::mutex> g(registryMu);
  auto it = registry.find(id);
  return it == registry.end() ? nullptr : it->second.lock();
}

std::shared_ptr<Session> Session::mount(const std::string& mountpoint, const std::vector<std::string>& options,
                                        std::function<void()> wake, std::string& error, unsigned readers) {
  std::shared_ptr<Session> s(new Session());
  s->mountpoint_ = mountpoint;
  s->consumers_[0].wake = std::move(wake);
  Mounted m = mountFuse(mountpoint, options, error);
  if (m.fd < 0) return nullptr;
  s->devs_.push_back(m.fd);
  s->byHelper_ = m.byHelper;
  s->mounted_ = true;
  if (!s->answerInit(error) || !s->startReaders(readers < 1 ? 1 : readers, error)) {
    s->stop();
    return nullptr;
  }
  s->notifierThread_ = std::thread([p = s.get()] { p->notifier(); });
  std::lock_guard<std::mutex> g(registryMu);
  s->id_ = nextSessionId++;
  registry[s->id_] = s;
  return s;
}

// INIT is the kernel's first message on a new connection (nothing else is sent until it
// is answered), read here on the mount's descriptor while it still blocks.
bool Session::answerInit(std::string& error) {
  std::vector<char> buf(wire::kRequestBufferSize);
  for (;;) {
    pollfd p{devs_[0], POLLIN, 0};
    int ready = poll(&p, 1, kInitTimeoutMs);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      error = "the kernel sent no FUSE INIT for " + mountpoint_;
      return false;
    }
    ssize_t n = read(devs_[0], buf.data(), buf.size());
    if (n < 0 && (errno == EINTR || errno == ENOENT)) continue;
    fuse_in_header h{};
    if (n < static_cast<ssize_t>(sizeof h)) {
      error = "reading /dev/fuse for INIT: " + std::string(n < 0 ? std::strerror(errno) : "short message");
      return false;
    }
    std::memcpy(&h, buf.data(), sizeof h);
    if (h.opcode != FUSE_INIT) {
      error = "the kernel's first FUSE message was not INIT";
      return false;
    }
    fuse_init_out out;
    int err = wire::negotiateInit(buf.data() + sizeof h, static_cast<size_t>(n) - sizeof h, out);
    iovec body{&out, sizeof out};
    send(0, h.unique, err, err == 0 ? &body : nullptr, err == 0 ? 1 : 0);
    if (err != 0) {
      error = "the kernel speaks a FUSE protocol older than 7.x";
      return false;
    }
    // A kernel of a newer major is told ours and asks again.
    fuse_init_in in{};
    std::memcpy(&in, buf.data() + sizeof h, std::min(sizeof in, static_cast<size_t>(n) - sizeof h));
    if (in.major == FUSE_KERNEL_VERSION) return true;
  }
}

bool Session::startReaders(unsigned readers, std::string& error) {
  stopFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stopFd_ < 0) {
    error = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  for (unsigned i = 1; i < readers; i++) {
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    uint32_t master = static_cast<uint32_t>(devs_[0]);
    if (fd < 0 || ioctl(fd, FUSE_DEV_IOC_CLONE, &master) != 0) {
      error = std::string("cloning the /dev/fuse descriptor: ") + std::strerror(errno);
      if (fd >= 0) close(fd);
      return false;
    }
    devs_.push_back(fd);
  }
  // Non-blocking: a reader woken with another for one request must not then sleep in
  // read(2), where stop() could not reach it.
  for (int fd : devs_) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  for (uint32_t dev = 0; dev < devs_.size(); dev++) readerThreads_.emplace_back([this, dev] { reader(dev); });
  return true;
}

Session::~Session() {
  stop();
  std::lock_guard<std::mutex> g(registryMu);
  registry.erase(id_);
}

uint32_t Session::addConsumer(std::function<void()> wake) {
  std::lock_guard<std::mutex> g(mu_);
  uint32_t c = nextConsumer_++;
  consumers_[c].wake = std::move(wake);
  return c;
}

void Session::removeConsumer(uint32_t consumer) {
  std::deque<Request*> left;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = consumers_.find(consumer);
    if (it == consumers_.end() || consumer == 0) return;
    left.swap(it->second.queue);
    consumers_.erase(it);
    for (auto r = routes_.begin(); r != routes_.end();) r = r->second.consumer == consumer ? routes_.erase(r) : std::next(r);
    for (auto o = outstanding_.begin(); o != outstanding_.end();) {
      if (o->second->consumer != consumer) {
        ++o;
        continue;
      }
      left.push_back(o->second);
      o = outstanding_.erase(o);
    }
  }
  for (Request* r : left) answer(r, EIO);
}

void Session::route(uint64_t fh, uint32_t consumer, const uint32_t fid[4]) {
  std::lock_guard<std::mutex> g(mu_);
  if (consumers_.count(consumer) == 0) return;
  Route& r = routes_[fh];
  r.consumer = consumer;
  for (int i = 0; i < 4; i++) r.fid[i] = fid[i];
}

void Session::unroute(uint64_t fh) {
  std::lock_guard<std::mutex> g(mu_);
  routes_.erase(fh);
}

void Session::wakeLocked(Consumer& c) {
  if (!c.wake) return;
  wakes_.fetch_add(1, std::memory_order_relaxed);
  c.wake();
}

void Session::wakeAllLocked() {
  for (auto& [id, c] : consumers_) wakeLocked(c);
}

void Session::reader(uint32_t dev) {
  std::vector<char> buf(wire::kRequestBufferSize);
  std::vector<char> hitBuf(wire::kMaxWrite);
  pollfd p[2] = {{devs_[dev], POLLIN, 0}, {stopFd_, POLLIN, 0}};
  while (!stopping_.load(std::memory_order_acquire)) {
    int ready = poll(p, 2, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents != 0) break;
    ssize_t n = read(devs_[dev], buf.data(), buf.size());
    if (n < 0) {
      // EAGAIN: another reader took it; ENOENT: the kernel dropped it (interrupted).
      if (errno == EINTR || errno == EAGAIN || errno == ENOENT) continue;
      if (errno == ENODEV) kernelEnded();  // unmounted from outside, or the connection aborted
      break;
    }
    dispatch(dev, buf.data(), static_cast<size_t>(n), hitBuf);
  }
}

void Session::dispatch(uint32_t dev, const char* msg, size_t n, std::vector<char>& hitBuf) {
  auto* r = new Request();
  r->dev = dev;
  std::vector<wire::Forget> forgets;
  int err = 0;
  switch (wire::decode(msg, n, *r, forgets, err)) {
    case wire::Decoded::Request:
      if (r->op == Op::Read && serveHit(dev, r, hitBuf)) return;
      enqueue(r);
      return;
    case wire::Decoded::Forgets:
      for (const wire::Forget& f : forgets) {
        auto* fr = new Request();
        fr->op = Op::Forget;
        fr->wantsReply = false;
        fr->ino = f.ino;
        fr->size = f.nlookup;
        enqueue(fr);
      }
      break;
    case wire::Decoded::Refuse:
      send(dev, r->unique, err, nullptr, 0);
      break;
    case wire::Decoded::Ignore:
      break;
  }
  delete r;
}

// A READ of a routed handle that the hit source has: answered here, on the reader thread.
bool Session::serveHit(uint32_t dev, Request* r, std::vector<char>& buf) {
  uint32_t fid[4];
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = routes_.find(r->fh);
    if (it == routes_.end()) return false;
    std::memcpy(fid, it->second.fid, sizeof fid);
  }
  std::shared_lock<std::shared_mutex> g(hitMu_);
  if (!hits_ || r->size > buf.size()) return false;
  int64_t n = hits_->read(dev, fid, static_cast<uint64_t>(r->offset), static_cast<uint32_t>(r->size), buf.data());
  if (n < 0) return false;
  iovec v{buf.data(), static_cast<size_t>(n)};
  send(dev, r->unique, 0, &v, 1);
  readerHits_.fetch_add(1, std::memory_order_relaxed);
  delete r;
  return true;
}

void Session::serveHits(std::shared_ptr<HitSource> source) {
  std::shared_ptr<HitSource> old;
  {
    std::unique_lock<std::shared_mutex> g(hitMu_);
    old = std::move(hits_);
    hits_ = std::move(source);
  }
  // `old` goes here: no reader is inside it (each holds hitMu_ while it is).
}

void Session::kernelEnded() {
  if (kernelEnded_.exchange(true)) return;
  stopped_.store(true, std::memory_order_release);
  std::lock_guard<std::mutex> g(mu_);
  wakeAllLocked();  // the serving threads learn the mount is gone
}

void Session::enqueue(Request* r) {
  std::lock_guard<std::mutex> g(mu_);
  r->id = nextId_++;
  if (nextId_ == 0) nextId_ = 1;
  uint32_t to = 0;
  bool data = r->op == Op::Read || r->op == Op::Write || r->op == Op::Flush || r->op == Op::Fsync;
  if (data) {
    auto it = routes_.find(r->fh);
    if (it != routes_.end()) {
      to = it->second.consumer;
      for (int i = 0; i < 4; i++) r->fid[i] = it->second.fid[i];
    }
  }
  r->consumer = to;
  Consumer& c = consumers_[to];
  bool wasEmpty = c.queue.empty();
  c.queue.push_back(r);
  if (wasEmpty) wakeLocked(c);
}

std::vector<Request*> Session::take(uint32_t consumer) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = consumers_.find(consumer);
  if (it == consumers_.end()) return {};
  std::vector<Request*> out(it->second.queue.begin(), it->second.queue.end());
  it->second.queue.clear();
  for (Request* r : out) {
    if (r->wantsReply) outstanding_.emplace(r->id, r);
  }
  return out;
}

Request* Session::claim(uint32_t id) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = outstanding_.find(id);
  if (it == outstanding_.end()) return nullptr;
  Request* r = it->second;
  outstanding_.erase(it);
  return r;
}

void Session::send(uint32_t dev, uint64_t unique, int error, const iovec* iov, int n) {
  fuse_out_header h{};
  h.unique = unique;
  h.error = unique == 0 ? error : -error;
  iovec v[4];
  v[0] = {&h, sizeof h};
  size_t len = sizeof h;
  for (int i = 0; i < n && i < 3; i++) {
    v[i + 1] = iov[i];
    len += iov[i].iov_len;
  }
  h.len = static_cast<uint32_t>(len);
  std::shared_lock<std::shared_mutex> g(devMu_);
  if (devsClosed_) return;
  // Errors are the kernel's to know: ENOENT (it gave up on the request: interrupted or
  // aborted), ENODEV (the connection is gone). Neither leaves anything for us to do.
  (void)!writev(devs_[dev], v, 1 + (n < 3 ? n : 3));
}

void Session::answer(Request* r, int error, const iovec* iov, int n) {
  if (r->wantsReply) send(r->dev, r->unique, error, iov, n);
  delete r;
}

void Session::replyError(uint32_t id, int err) {
  if (Request* r = claim(id)) answer(r, err);
}

void Session::replyEntry(uint32_t id, const struct stat& st, double entryTimeout, double attrTimeout) {
  if (Request* r = claim(id)) {
    fuse_entry_out e = wire::entryOf(st.st_ino, st, entryTimeout, attrTimeout);
    iovec v{&e, sizeof e};
    answer(r, 0, &v, 1);
  }
}

void Session::replyCreate(uint32_t id, const struct stat& st, double entryTimeout, double attrTimeout, uint64_t fh,
                          bool keepCache) {
  if (Request* r = claim(id)) {
    fuse_entry_out e = wire::entryOf(st.st_ino, st, entryTimeout, attrTimeout);
    fuse_open_out o{};
    o.fh = fh;
    o.open_flags = wire::openFlags(keepCache, false);
    iovec v[2] = {{&e, sizeof e}, {&o, sizeof o}};
    answer(r, 0, v, 2);
  }
}

void Session::replyAttr(uint32_t id, const struct stat& st, double attrTimeout) {
  if (Request* r = claim(id)) {
    fuse_attr_out a = wire::attrOutOf(st, attrTimeout);
    iovec v{&a, sizeof a};
    answer(r, 0, &v, 1);
  }
}

void Session::replyOpen(uint32_t id, uint64_t fh, bool keepCache, bool directIo) {
  if (Request* r = claim(id)) {
    fuse_open_out o{};
    o.fh = fh;
    o.open_flags = wire::openFlags(keepCache, directIo);
    iovec v{&o, sizeof o};
    answer(r, 0, &v, 1);
  }
}

void Session::replyData(uint32_t id, const char* data, size_t size) {
  if (Request* r = claim(id)) {
    iovec v{const_cast<char*>(data), size};
    answer(r, 0, &v, 1);
  }
}

void Session::replyWrite(uint32_t id, size_t count) {
  if (Request* r = claim(id)) {
    fuse_write_out w{};
    w.size = static_cast<uint32_t>(count);
    iovec v{&w, sizeof w};
    answer(r, 0, &v, 1);
  }
}

void Session::replyDir(uint32_t id, const std::vector<DirEntry>& listing, size_t offset) {
  Request* r = claim(id);
  if (r == nullptr) return;
  std::vector<char> buf(r->size);
  size_t used = 0;
  for (size_t i = offset; i < listing.size(); i++) {
    size_t need = wire::addDirent(buf.data() + used, buf.size() - used, listing[i].name, listing[i].ino,
                                  listing[i].mode, i + 1);
    if (need > buf.size() - used) break;
    used += need;
  }
  iovec v{buf.data(), used};
  answer(r, 0, &v, 1);
}

size_t Session::replyDirPlus(uint32_t id, const std::vector<DirEntryPlus>& entries, size_t offset,
                             double entryTimeout, double attrTimeout) {
  Request* r = claim(id);
  if (r == nullptr) return 0;
  std::vector<char> buf(r->size);
  size_t used = 0;
  size_t sent = 0;
  for (const DirEntryPlus& d : entries) {
    size_t need = wire::addDirentPlus(buf.data() + used, buf.size() - used, d.name, d.ino, d.attr,
                                      offset + sent + 1, entryTimeout, attrTimeout);
    if (need > buf.size() - used) break;
    used += need;
    sent++;
  }
  iovec v{buf.data(), used};
  answer(r, 0, &v, 1);
  return sent;
}

void Session::replyReadlink(uint32_t id, const std::string& target) {
  if (Request* r = claim(id)) {
    iovec v{const_cast<char*>(target.data()), target.size()};
    answer(r, 0, &v, 1);
  }
}

void Session::replyStatfs(uint32_t id, const struct statvfs& sv) {
  if (Request* r = claim(id)) {
    fuse_statfs_out o{};
    o.st = wire::statfsOf(sv);
    iovec v{&o, sizeof o};
    answer(r, 0, &v, 1);
  }
}

uint64_t Session::invalidate(uint64_t ino) {
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> g(mu_);
    ticket = ++tickets_;
    if (unmounted_) {
      invalidated_.store(ticket, std::memory_order_release);
      return ticket;
    }
    invalidations_.push_back(ino);
  }
  notifierCv_.notify_one();
  return ticket;
}

void Session::notifier() {
  std::unique_lock<std::mutex> g(mu_);
  for (;;) {
    notifierCv_.wait(g, [this] { return unmounted_ || !invalidations_.empty(); });
    if (unmounted_) return;
    uint64_t ino = invalidations_.front();
    invalidations_.pop_front();
    g.unlock();
    // Attributes and every cached page. ENOENT: the kernel no longer knows the inode, so
    // it caches nothing of it.
    fuse_notify_inval_inode_out n{};
    n.ino = ino;
    iovec v{&n, sizeof n};
    send(0, 0, FUSE_NOTIFY_INVAL_INODE, &v, 1);
    invalidated_.fetch_add(1, std::memory_order_acq_rel);
    g.lock();
    wakeLocked(consumers_[0]);
  }
}

void Session::stop() {
  if (!mounted_) return;
  mounted_ = false;
  stopping_.store(true, std::memory_order_release);
  if (stopFd_ >= 0) {
    uint64_t one = 1;
    (void)!write(stopFd_, &one, sizeof one);
  }
  for (std::thread& t : readerThreads_) t.join();
  readerThreads_.clear();
  serveHits(nullptr);
  std::vector<Request*> left;
  {
    std::lock_guard<std::mutex> g(mu_);
    stopped_.store(true, std::memory_order_release);
    unmounted_ = true;
    invalidated_.store(tickets_, std::memory_order_release);
    for (auto& [id, c] : consumers_) {
      left.insert(left.end(), c.queue.begin(), c.queue.end());
      c.queue.clear();
    }
    routes_.clear();
    for (auto& [id, r] : outstanding_) left.push_back(r);
    outstanding_.clear();
    wakeAllLocked();
  }
  notifierCv_.notify_all();
  if (notifierThread_.joinable()) notifierThread_.join();
  for (Request* r : left) answer(r, EIO);
  // Ended from outside already (POLLERR: the connection is gone)? Then the mount point may
  // hold something else by now: leave it alone.
  pollfd p{devs_[0], 0, 0};
  bool ended = kernelEnded_.load() || (poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0);
  {
    std::unique_lock<std::shared_mutex> g(devMu_);
    devsClosed_ = true;
    for (int fd : devs_) close(fd);  // the connection ends with its last descriptor
  }
  if (stopFd_ >= 0) close(stopFd_);
  if (!ended) unmountFuse(mountpoint_, byHelper_);
}

}  // namespace cmkit::fuse
