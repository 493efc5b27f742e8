#include "fuse_session.h"

#include <poll.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace cmkit::fuse {

namespace {

Session* sessionOf(fuse_req_t req) { return static_cast<Session*>(fuse_req_userdata(req)); }

Request* make(fuse_req_t req, Op op, fuse_ino_t ino) {
  auto* r = new Request();
  r->req = req;
  r->op = op;
  r->ino = ino;
  if (req != nullptr) {
    const fuse_ctx* ctx = fuse_req_ctx(req);
    r->uid = ctx->uid;
    r->gid = ctx->gid;
    r->pid = static_cast<uint32_t>(ctx->pid);
  }
  return r;
}

void queue(fuse_req_t req, Request* r) { sessionOf(req)->enqueue(r); }

// A request on an open file (or directory) handle; read and readdir also carry a range.
Request* onHandle(fuse_req_t req, Op op, fuse_ino_t ino, const fuse_file_info* fi, size_t size = 0, off_t off = 0) {
  Request* r = make(req, op, ino);
  r->fh = fi->fh;
  r->size = size;
  r->offset = off;
  return r;
}

// Every capability chosen here, not left to libfuse's defaults:
//   - ATOMIC_O_TRUNC: open carries O_TRUNC and the open handler truncates (as a pending
//     truncation in the cache, so an overwrite fetches nothing).
//   - READDIRPLUS, always (not the kernel's adaptive choice): a listing brings every
//     entry's attributes in the same round, so `ls -l` costs no GETATTR per name.
//   - no writeback cache: every write reaches the cache manager at once.
//   - no AUTO_INVAL_DATA: the mount invalidates pages itself when the server says so.
//   - no DONT_MASK: the kernel applies the caller's umask; the server applies the mode as sent.
//   - no POSIX ACLs, no locks (the kernel keeps flock/fcntl locks local), no splice.
//   - no HANDLE_KILLPRIV: the kernel clears setuid/setgid itself, by a SETATTR of the mode,
//     on a write or chown by a non-owner, as a local file system clears them.
//   - no EXPORT_SUPPORT: lookups of "." and ".." are never asked.
// Big writes and reads (1 MiB).
void opInit(void*, fuse_conn_info* conn) {
  conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_DONT_MASK |
                  FUSE_CAP_POSIX_ACL | FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_SPLICE_READ |
                  FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_EXPORT_SUPPORT);
  conn->want |= conn->capable & (FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_READDIRPLUS);
  conn->max_write = 1024 * 1024;
  conn->max_readahead = 1024 * 1024;
}

void opLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Request* r = make(req, Op::Lookup, parent);
  r->name = name;
  queue(req, r);
}

void opForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Request* r = make(nullptr, Op::Forget, ino);
  r->size = nlookup;
  Session* s = sessionOf(req);
  fuse_reply_none(req);
  s->enqueue(r);
}

void opForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Session* s = sessionOf(req);
  fuse_reply_none(req);
  for (size_t i = 0; i < count; i++) {
    Request* r = make(nullptr, Op::Forget, forgets[i].ino);
    r->size = forgets[i].nlookup;
    s->enqueue(r);
  }
}

void opGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) { queue(req, make(req, Op::Getattr, ino)); }

void opSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int toSet, fuse_file_info* fi) {
  Request* r = make(req, Op::Setattr, ino);
  r->attr = *attr;
  r->toSet = toSet;
  r->fh = fi != nullptr ? fi->fh : 0;
  queue(req, r);
}

void opOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) { queue(req, make(req, Op::Opendir, ino)); }

void opReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  queue(req, onHandle(req, Op::Readdir, ino, fi, size, off));
}

void opReleasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  queue(req, onHandle(req, Op::Releasedir, ino, fi));
}

void opOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Request* r = make(req, Op::Open, ino);
  r->flags = static_cast<uint32_t>(fi->flags);
  queue(req, r);
}

void opCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  Request* r = make(req, Op::Create, parent);
  r->name = name;
  r->mode = mode;
  r->flags = static_cast<uint32_t>(fi->flags);
  queue(req, r);
}

void opRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  queue(req, onHandle(req, Op::Read, ino, fi, size, off));
}

void opWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  Request* r = onHandle(req, Op::Write, ino, fi, 0, off);
  r->data.assign(buf, buf + size);
  queue(req, r);
}

void opFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) { queue(req, onHandle(req, Op::Flush, ino, fi)); }

void opFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info* fi) { queue(req, onHandle(req, Op::Fsync, ino, fi)); }

void opRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  queue(req, onHandle(req, Op::Release, ino, fi));
}

void opUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Request* r = make(req, Op::Unlink, parent);
  r->name = name;
  queue(req, r);
}

void opRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Request* r = make(req, Op::Rmdir, parent);
  r->name = name;
  queue(req, r);
}

void opMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Request* r = make(req, Op::Mkdir, parent);
  r->name = name;
  r->mode = mode;
  queue(req, r);
}

void opRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
              unsigned int flags) {
  Request* r = make(req, Op::Rename, parent);
  r->name = name;
  r->ino2 = newparent;
  r->name2 = newname;
  r->flags = flags;
  queue(req, r);
}

void opStatfs(fuse_req_t req, fuse_ino_t ino) { queue(req, make(req, Op::Statfs, ino)); }

void opReadlink(fuse_req_t req, fuse_ino_t ino) { queue(req, make(req, Op::Readlink, ino)); }

void opSymlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Request* r = make(req, Op::Symlink, parent);
  r->name = name;
  r->name2 = target;
  queue(req, r);
}

void opLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Request* r = make(req, Op::Link, ino);
  r->ino2 = newparent;
  r->name = newname;
  queue(req, r);
}

void opMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Request* r = make(req, Op::Mknod, parent);
  r->name = name;
  r->mode = mode;
  r->rdev = rdev;
  queue(req, r);
}

void opReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  queue(req, onHandle(req, Op::Readdirplus, ino, fi, size, off));
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops{};
  ops.init = opInit;
  ops.lookup = opLookup;
  ops.forget = opForget;
  ops.forget_multi = opForgetMulti;
  ops.getattr = opGetattr;
  ops.setattr = opSetattr;
  ops.opendir = opOpendir;
  ops.readdir = opReaddir;
  ops.releasedir = opReleasedir;
  ops.open = opOpen;
  ops.create = opCreate;
  ops.read = opRead;
  ops.write = opWrite;
  ops.flush = opFlush;
  ops.fsync = opFsync;
  ops.release = opRelease;
  ops.unlink = opUnlink;
  ops.rmdir = opRmdir;
  ops.mkdir = opMkdir;
  ops.rename = opRename;
  ops.statfs = opStatfs;
  ops.readlink = opReadlink;
  ops.symlink = opSymlink;
  ops.link = opLink;
  ops.mknod = opMknod;
  ops.readdirplus = opReaddirplus;
  return ops;
}();

}  // namespace

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
                                        std::function<void()> wake, std::string& error) {
  std::shared_ptr<Session> s(new Session());
  s->mountpoint_ = mountpoint;
  s->consumers_[0].wake = std::move(wake);
  std::vector<std::string> argv = {"cmkit"};
  for (const auto& o : options) {
    argv.push_back("-o");
    argv.push_back(o);
  }
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(cargv.size()), cargv.data());
  s->se_ = fuse_session_new(&args, &kOps, sizeof kOps, s.get());
  fuse_opt_free_args(&args);  // what libfuse allocated while parsing them
  if (s->se_ == nullptr) {
    error = "fuse_session_new failed (bad mount options?)";
    return nullptr;
  }
  if (fuse_session_mount(s->se_, mountpoint.c_str()) != 0) {
    error = "mounting " + mountpoint + " failed (is /dev/fuse there, and may this process mount?)";
    fuse_session_destroy(s->se_);
    s->se_ = nullptr;
    return nullptr;
  }
  s->loopThread_ = std::thread([p = s.get()] { p->loop(); });
  s->notifierThread_ = std::thread([p = s.get()] { p->notifier(); });
  std::lock_guard<std::mutex> g(registryMu);
  s->id_ = nextSessionId++;
  registry[s->id_] = s;
  return s;
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
  for (Request* r : left) {
    if (r->req != nullptr) fuse_reply_err(r->req, EIO);
    delete r;
  }
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

void Session::wakeAllLocked() {
  for (auto& [id, c] : consumers_) {
    if (c.wake) c.wake();
  }
}

void Session::loop() {
  fuse_buf buf{};
  int fd = fuse_session_fd(se_);
  while (!stopping_.load(std::memory_order_acquire) && !fuse_session_exited(se_)) {
    pollfd p{fd, POLLIN, 0};
    int ready = poll(&p, 1, kPollMs);
    if (ready <= 0) continue;
    int n = fuse_session_receive_buf(se_, &buf);
    if (n == -EINTR || n == -EAGAIN) continue;
    if (n <= 0) break;  // unmounted from outside, or the connection was aborted
    fuse_session_process_buf(se_, &buf);
  }
  free(buf.mem);
  loopEnded();
}

void Session::loopEnded() {
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
  if (wasEmpty && c.wake) c.wake();
}

std::vector<Request*> Session::take(uint32_t consumer) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = consumers_.find(consumer);
  if (it == consumers_.end()) return {};
  std::vector<Request*> out(it->second.queue.begin(), it->second.queue.end());
  it->second.queue.clear();
  for (Request* r : out) {
    if (r->req != nullptr) outstanding_.emplace(r->id, r);
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

void Session::replyError(uint32_t id, int err) {
  if (Request* r = claim(id)) {
    fuse_reply_err(r->req, err);
    delete r;
  }
}

namespace {
fuse_entry_param entryOf(const struct stat& st, double entryTimeout, double attrTimeout) {
  fuse_entry_param e{};
  e.ino = st.st_ino;
  e.generation = 1;
  e.attr = st;
  e.attr_timeout = attrTimeout;
  e.entry_timeout = entryTimeout;
  return e;
}
}  // namespace

void Session::replyEntry(uint32_t id, const struct stat& st, double entryTimeout, double attrTimeout) {
  if (Request* r = claim(id)) {
    fuse_entry_param e = entryOf(st, entryTimeout, attrTimeout);
    fuse_reply_entry(r->req, &e);
    delete r;
  }
}

void Session::replyCreate(uint32_t id, const struct stat& st, double entryTimeout, double attrTimeout, uint64_t fh,
                          bool keepCache) {
  if (Request* r = claim(id)) {
    fuse_entry_param e = entryOf(st, entryTimeout, attrTimeout);
    fuse_file_info fi{};
    fi.fh = fh;
    fi.keep_cache = keepCache ? 1 : 0;
    fuse_reply_create(r->req, &e, &fi);
    delete r;
  }
}

void Session::replyAttr(uint32_t id, const struct stat& st, double attrTimeout) {
  if (Request* r = claim(id)) {
    fuse_reply_attr(r->req, &st, attrTimeout);
    delete r;
  }
}

void Session::replyOpen(uint32_t id, uint64_t fh, bool keepCache, bool directIo) {
  if (Request* r = claim(id)) {
    fuse_file_info fi{};
    fi.fh = fh;
    fi.keep_cache = keepCache ? 1 : 0;
    fi.direct_io = directIo ? 1 : 0;
    fuse_reply_open(r->req, &fi);
    delete r;
  }
}

void Session::replyData(uint32_t id, const char* data, size_t size) {
  if (Request* r = claim(id)) {
    fuse_reply_buf(r->req, data, size);
    delete r;
  }
}

void Session::replyWrite(uint32_t id, size_t count) {
  if (Request* r = claim(id)) {
    fuse_reply_write(r->req, count);
    delete r;
  }
}

void Session::replyDir(uint32_t id, const std::vector<DirEntry>& listing, size_t offset) {
  Request* r = claim(id);
  if (r == nullptr) return;
  std::vector<char> buf(r->size);
  size_t used = 0;
  for (size_t i = offset; i < listing.size(); i++) {
    struct stat st {};
    st.st_ino = listing[i].ino;
    st.st_mode = listing[i].mode;
    size_t need = fuse_add_direntry(r->req, buf.data() + used, buf.size() - used, listing[i].name.c_str(), &st,
                                    static_cast<off_t>(i + 1));
    if (need > buf.size() - used) break;
    used += need;
  }
  fuse_reply_buf(r->req, buf.data(), used);
  delete r;
}

size_t Session::replyDirPlus(uint32_t id, const std::vector<DirEntryPlus>& entries, size_t offset,
                             double entryTimeout, double attrTimeout) {
  Request* r = claim(id);
  if (r == nullptr) return 0;
  std::vector<char> buf(r->size);
  size_t used = 0;
  size_t sent = 0;
  for (const DirEntryPlus& d : entries) {
    fuse_entry_param e{};
    e.ino = d.ino;
    e.generation = 1;
    e.attr = d.attr;
    e.attr_timeout = attrTimeout;
    e.entry_timeout = entryTimeout;
    size_t need = fuse_add_direntry_plus(r->req, buf.data() + used, buf.size() - used, d.name.c_str(), &e,
                                         static_cast<off_t>(offset + sent + 1));
    if (need > buf.size() - used) break;
    used += need;
    sent++;
  }
  fuse_reply_buf(r->req, buf.data(), used);
  delete r;
  return sent;
}

void Session::replyReadlink(uint32_t id, const std::string& target) {
  if (Request* r = claim(id)) {
    fuse_reply_readlink(r->req, target.c_str());
    delete r;
  }
}

void Session::replyStatfs(uint32_t id, const struct statvfs& sv) {
  if (Request* r = claim(id)) {
    fuse_reply_statfs(r->req, &sv);
    delete r;
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
    // ENOENT: the kernel no longer knows the inode, so it caches nothing of it.
    fuse_lowlevel_notify_inval_inode(se_, ino, 0, 0);
    invalidated_.fetch_add(1, std::memory_order_acq_rel);
    g.lock();
    if (consumers_[0].wake) consumers_[0].wake();
  }
}

void Session::stop() {
  if (se_ == nullptr) return;
  stopping_.store(true, std::memory_order_release);
  if (loopThread_.joinable()) loopThread_.join();
  std::vector<Request*> left;
  {
    std::lock_guard<std::mutex> g(mu_);
    unmounted_ = true;
    invalidated_.store(tickets_, std::memory_order_release);
    for (auto& [id, c] : consumers_) {
      left.insert(left.end(), c.queue.begin(), c.queue.end());
      c.queue.clear();
    }
    routes_.clear();
    for (auto& [id, r] : outstanding_) left.push_back(r);
    outstanding_.clear();
  }
  notifierCv_.notify_all();
  if (notifierThread_.joinable()) notifierThread_.join();
  for (Request* r : left) {
    if (r->req != nullptr) fuse_reply_err(r->req, EIO);
    delete r;
  }
  fuse_session_unmount(se_);
  fuse_session_destroy(se_);
  se_ = nullptr;
}

}  // namespace cmkit::fuse
