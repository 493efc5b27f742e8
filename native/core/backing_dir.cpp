#include "backing_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

namespace cmkit::backing {

namespace {

// A descriptor closed when it goes out of scope (unless it is the borrowed root).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd, bool owned = true) : fd_(fd), owned_(owned) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.fd_), owned_(o.owned_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (owned_ && fd_ >= 0) ::close(fd_);
      fd_ = o.fd_;
      owned_ = o.owned_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~Fd() {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_ = -1;
  bool owned_ = true;
};

int err() { return -errno; }

// Splits `path` into its directory part and last component, checking every component.
int split(const std::string& path, std::string& dir, std::string& name) {
  if (path.empty()) return -EINVAL;
  size_t start = 0;
  for (;;) {
    size_t end = path.find('/', start);
    size_t len = (end == std::string::npos ? path.size() : end) - start;
    if (len == 0) return -EINVAL;
    if (len > NAME_MAX) return -ENAMETOOLONG;
    std::string_view c(path.data() + start, len);
    if (c == "." || c == ".." || c.find('\0') != std::string_view::npos) return -EINVAL;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  size_t slash = path.rfind('/');
  dir = slash == std::string::npos ? std::string() : path.substr(0, slash);
  name = slash == std::string::npos ? path : path.substr(slash + 1);
  return 0;
}

// The directory `dir` (already checked by split) beneath root, never through a symlink.
int openDir(int root, const std::string& dir, int flags, Fd& out) {
  if (dir.empty() && (flags & O_PATH) != 0) {
    out = Fd(root, false);
    return 0;
  }
  const char* p = dir.empty() ? "." : dir.c_str();
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_DIRECTORY | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = syscall(SYS_openat2, root, p, &how, sizeof how);
  if (fd >= 0) {
    out = Fd(static_cast<int>(fd));
    return 0;
  }
  if (errno != ENOSYS) return err();
  // No openat2: one component at a time, none followed.
  Fd at(root, false);
  size_t start = 0;
  std::string rest = dir.empty() ? "." : dir;
  for (;;) {
    size_t end = rest.find('/', start);
    std::string c = rest.substr(start, end == std::string::npos ? std::string::npos : end - start);
    bool last = end == std::string::npos;
    int f = openat(at.get(), c.c_str(), (last ? flags : O_PATH) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (f < 0) return errno == ENOTDIR ? -ELOOP : err();
    at = Fd(f);
    if (last) break;
    start = end + 1;
  }
  out = std::move(at);
  return 0;
}

// The parent directory of `path` (O_PATH) and the last component.
int parentOf(int root, const std::string& path, Fd& dir, std::string& name) {
  std::string d;
  if (int r = split(path, d, name); r < 0) return r;
  return openDir(root, d, O_PATH, dir);
}

void fromStatx(const struct statx& s, Attr& a) {
  a.dev = makedev(s.stx_dev_major, s.stx_dev_minor);
  a.ino = s.stx_ino;
  a.mode = s.stx_mode;
  a.nlink = s.stx_nlink;
  a.uid = s.stx_uid;
  a.gid = s.stx_gid;
  a.rdev = makedev(s.stx_rdev_major, s.stx_rdev_minor);
  a.size = static_cast<int64_t>(s.stx_size);
  a.blocks = static_cast<int64_t>(s.stx_blocks);
  a.atimeSec = s.stx_atime.tv_sec;
  a.atimeNsec = s.stx_atime.tv_nsec;
  a.mtimeSec = s.stx_mtime.tv_sec;
  a.mtimeNsec = s.stx_mtime.tv_nsec;
  a.ctimeSec = s.stx_ctime.tv_sec;
  a.ctimeNsec = s.stx_ctime.tv_nsec;
  bool hasBirth = (s.stx_mask & STATX_BTIME) != 0;
  a.btimeSec = hasBirth ? s.stx_btime.tv_sec : 0;
  a.btimeNsec = hasBirth ? s.stx_btime.tv_nsec : 0;
}

int statAt(int dir, const char* name, int flags, Attr& out) {
  struct statx s {};
  if (statx(dir, name, flags | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_BTIME, &s) < 0) return err();
  fromStatx(s, out);
  return 0;
}

// The node itself, never followed: an O_PATH descriptor of it.
int openNode(int root, const std::string& path, Fd& out) {
  if (path.empty()) {
    int f = fcntl(root, F_DUPFD_CLOEXEC, 0);
    if (f < 0) return err();
    out = Fd(f);
    return 0;
  }
  Fd dir;
  std::string name;
  if (int r = parentOf(root, path, dir, name); r < 0) return r;
  int f = openat(dir.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (f < 0) return err();
  out = Fd(f);
  return 0;
}

// chmod of the inode an O_PATH descriptor holds (fchmod refuses O_PATH descriptors; the
// /proc magic link names that inode, whatever its path has become).
int chmodFd(int fd, uint32_t mode) {
  std::string proc = "/proc/self/fd/" + std::to_string(fd);
  return ::chmod(proc.c_str(), mode & 07777) < 0 ? err() : 0;
}

// Ownership of a new node: the requester's, with the group of a setgid parent.
void ownerFor(int dir, uint32_t& gid, uint32_t& mode, bool isDir) {
  struct stat p {};
  if (fstat(dir, &p) == 0 && (p.st_mode & S_ISGID) != 0) {
    gid = p.st_gid;
    if (isDir) mode |= S_ISGID;
  }
}

// Gives a node just made under `dir` its owner and exact mode, then its attributes.
int finishNew(int dir, const std::string& name, uint32_t uid, uint32_t gid, uint32_t mode, bool chmodToo, Attr& out) {
  Fd node(openat(dir, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (node.get() < 0) return err();
  // Only the calls that change something (see openFile), then the attributes once more
  // if one did.
  if (int r = statAt(node.get(), "", AT_EMPTY_PATH, out); r < 0) return r;
  bool chown = out.uid != uid || out.gid != gid;
  bool chmod = chmodToo && (out.mode & 07777) != mode;
  if (chown && fchownat(node.get(), "", uid, gid, AT_EMPTY_PATH) < 0) return err();
  if (chmod) {
    if (int r = chmodFd(node.get(), mode); r < 0) return r;
  }
  return chown || chmod ? statAt(node.get(), "", AT_EMPTY_PATH, out) : 0;
}

}  // namespace

int openRoot(const std::string& path) {
  int f = open(path.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  return f < 0 ? err() : f;
}

int lstat(int root, const std::string& path, Attr& out) {
  if (path.empty()) return statAt(root, "", AT_EMPTY_PATH, out);
  Fd dir;
  std::string name;
  if (int r = parentOf(root, path, dir, name); r < 0) return r;
  return statAt(dir.get(), name.c_str(), AT_SYMLINK_NOFOLLOW, out);
}

int openFile(int root, const std::string& path, int flags, uint32_t mode, uint32_t uid, uint32_t gid) {
  Fd dir;
  std::string name;
  if (int r = parentOf(root, path, dir, name); r < 0) return r;
  bool create = (flags & O_CREAT) != 0;
  int f = openat(dir.get(), name.c_str(), flags | (create ? O_EXCL : 0) | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
                 0600);
  if (f < 0) return err();
  Fd file(f);
  struct stat st {};
  if (fstat(f, &st) < 0) return err();
  if (!S_ISREG(st.st_mode)) return -EINVAL;
  if (create) {
    uint32_t m = mode & 07777;
    ownerFor(dir.get(), gid, m, false);
    // Each call is a round trip where the backing directory is a network mount: make
    // only those that change something (the owner is most often the server's own).
    bool owned = st.st_uid == uid && st.st_gid == gid;
    if ((!owned && fchown(f, uid, gid) < 0) || ((st.st_mode & 07777) != m && fchmod(f, m) < 0)) {
      int e = err();
      unlinkat(dir.get(), name.c_str(), 0);
      return e;
    }
  }
  if (fcntl(f, F_SETFL, fcntl(f, F_GETFL) & ~O_NONBLOCK) < 0) return err();
  return file.release();
}

int mkdir(int root, const std::string& path, uint32_t mode, uint32_t uid, uint32_t gid, Attr& out) {
  Fd dir;
  std::string name;
  if (int r = parentOf(root, path, dir, name); r < 0) return r;
  uint32_t m = mode & 07777;
  ownerFor(dir.get(), gid, m, true);
  // Private until it has its owner: nobody else may use it in between.
  if (mkdirat(dir.get(), name.c_str(), 0700) < 0) return err();
  return finishNew(dir.get(), name, uid, gid, m, true, out);
}

int mknod(int root, const std::string& path, uint32_t mode, uint64_t rdev, uint32_t uid, uint32_t gid, Attr& out) {
  Fd dir;
  std::string name;
  if (int r = parentOf(root, path, dir, name); r < 0) return r;
  uint32_t m = mode & 07777;
  ownerFor(dir.get(), gid, m, false);
  if (mknodat(dir.get(), name.c_str(), (mode & S_IFMT) | 0600, static_cast<dev_t>(rdev)) < 0) return err();
  return finishNew(dir.get(), name, uid, gid, m, true, out);
}

int symlink(int root, const std::string& target, const std::string& path, uint32_t uid, uint32_t gid, Attr& out) {
  if (target.empty() || target.size() >= PATH_MAX) return target.empty() ? -ENOENT : -ENAMETOOLONG;
  if (target.find('\0') != std::string::npos) return -EINVAL;
  Fd dir;
  std::string name;
  if (int r = parentOf(root, path, dir, name); r < 0) return r;
  uint32_t m = 0777;
  ownerFor(dir.get(), gid, m, false);
  if (symlinkat(target.c_str(), dir.get(), name.c_str()) < 0) return err();
  return finishNew(dir.get(), name, uid, gid, 0, false, out);
}

int readlink(int root, const std::string& path, std::string& out) {
  Fd dir;
  std::string name;
  if (int r = parentOf(root, path, dir, name); r < 0) return r;
  std::string buf(PATH_MAX, '\0');
  ssize_t n = readlinkat(dir.get(), name.c_str(), buf.data(), buf.size());
  if (n < 0) return err();
  buf.resize(static_cast<size_t>(n));
  out = std::move(buf);
  return 0;
}

int link(int root, const std::string& from, const std::string& to, Attr& out) {
  Fd fromDir, toDir;
  std::string fromName, toName;
  if (int r = parentOf(root, from, fromDir, fromName); r < 0) return r;
  if (int r = parentOf(root, to, toDir, toName); r < 0) return r;
  if (linkat(fromDir.get(), fromName.c_str(), toDir.get(), toName.c_str(), 0) < 0) return err();
  return statAt(toDir.get(), toName.c_str(), AT_SYMLINK_NOFOLLOW, out);
}

int unlink(int root, const std::string& path, bool directory) {
  Fd dir;
  std::string name;
  if (int r = parentOf(root, path, dir, name); r < 0) return r;
  return unlinkat(dir.get(), name.c_str(), directory ? AT_REMOVEDIR : 0) < 0 ? err() : 0;
}

int rename(int root, const std::string& from, const std::string& to, unsigned flags) {
  Fd fromDir, toDir;
  std::string fromName, toName;
  if (int r = parentOf(root, from, fromDir, fromName); r < 0) return r;
  if (int r = parentOf(root, to, toDir, toName); r < 0) return r;
  long r = syscall(SYS_renameat2, fromDir.get(), fromName.c_str(), toDir.get(), toName.c_str(), flags);
  return r < 0 ? err() : 0;
}

int setattr(int root, const std::string& path, const AttrChange& c, Attr& out) {
  Fd node;
  if (int r = openNode(root, path, node); r < 0) return r;
  if (c.setUid || c.setGid) {
    uid_t u = c.setUid ? c.uid : static_cast<uid_t>(-1);
    gid_t g = c.setGid ? c.gid : static_cast<gid_t>(-1);
    if (fchownat(node.get(), "", u, g, AT_EMPTY_PATH) < 0) return err();
  }
  if (c.setMode) {
    struct stat st {};
    if (fstat(node.get(), &st) < 0) return err();
    if (S_ISLNK(st.st_mode)) return -EOPNOTSUPP;
    if (int r = chmodFd(node.get(), c.mode); r < 0) return r;
  }
  if (c.atime.nsec != kOmit || c.mtime.nsec != kOmit) {
    timespec ts[2] = {{c.atime.sec, c.atime.nsec}, {c.mtime.sec, c.mtime.nsec}};
    if (utimensat(node.get(), "", ts, AT_EMPTY_PATH) < 0) return err();
  }
  return statAt(node.get(), "", AT_EMPTY_PATH, out);
}

int readdirPlus(int root, const std::string& path, std::vector<Entry>& out) {
  Fd dir;
  if (!path.empty()) {
    std::string d, name;
    if (int r = split(path, d, name); r < 0) return r;
  }
  if (int r = openDir(root, path, O_RDONLY, dir); r < 0) return r;
  DIR* d = fdopendir(dir.get());
  if (d == nullptr) return err();
  dir.release();  // the DIR owns it now
  errno = 0;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    Entry entry;
    entry.name = e->d_name;
    if (statAt(dirfd(d), e->d_name, AT_SYMLINK_NOFOLLOW, entry.attr) == 0) out.push_back(std::move(entry));
    errno = 0;
  }
  int e = errno;
  closedir(d);
  return e != 0 ? -e : 0;
}

int statfs(int root, uint64_t out[7]) {
  struct statvfs s {};
  if (fstatvfs(root, &s) < 0) return err();
  out[0] = s.f_bsize;
  out[1] = s.f_blocks;
  out[2] = s.f_bfree;
  out[3] = s.f_bavail;
  out[4] = s.f_files;
  out[5] = s.f_ffree;
  out[6] = s.f_namemax;
  return 0;
}

int64_t maxFileSize(int root) {
  Fd dir;
  if (int r = openDir(root, "", O_RDONLY, dir); r < 0) return r;
  Fd f(openat(dir.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (f.get() < 0) return -EOPNOTSUPP;
  // The largest length ftruncate accepts: set bits from the top down.
  int64_t size = 0;
  for (int bit = 62; bit >= 0; bit--) {
    int64_t trial = size | (int64_t{1} << bit);
    if (ftruncate(f.get(), trial) == 0) size = trial;
  }
  return size;
}

}  // namespace cmkit::backing
