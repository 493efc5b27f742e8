#include "fuse_wire.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

namespace cmkit::fuse::wire {

namespace {

// The capabilities we take when the kernel offers them; everything else is left off on
// purpose (README, "What the mount asks of the kernel"):
//   - ASYNC_READ: readahead READs may be in flight together.
//   - ATOMIC_O_TRUNC: open carries O_TRUNC and the open handler truncates (as a pending
//     truncation in the cache, so an overwrite fetches nothing).
//   - DO_READDIRPLUS, always (not READDIRPLUS_AUTO, the kernel's adaptive choice): a
//     listing brings every entry's attributes in the same round.
//   - ASYNC_DIO: an O_DIRECT read or write larger than one request goes out in parallel.
//   - BIG_WRITES and MAX_PAGES: 1 MiB writes and reads (max_pages = 256).
// Left off: WRITEBACK_CACHE (every write reaches the cache manager at once),
// AUTO_INVAL_DATA (the mount invalidates pages itself when the server says so), DONT_MASK
// (the kernel applies the caller's umask), POSIX_ACL, POSIX_LOCKS and FLOCK_LOCKS (the
// kernel keeps locks local), SPLICE_* (not yet), HANDLE_KILLPRIV(_V2) (the kernel clears
// setuid/setgid itself, by a SETATTR of the mode, as a local file system does),
// EXPORT_SUPPORT (no lookups of "." and ".."), PARALLEL_DIROPS (lookups and listings of
// one directory stay serialized by the kernel, as with libfuse before).
constexpr uint32_t kWanted =
    FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_ASYNC_DIO | FUSE_MAX_PAGES;

constexpr size_t kHeader = sizeof(fuse_in_header);

// A NUL-terminated name at p, within end; false when it runs past end.
bool nameAt(const char*& p, const char* end, std::string& out) {
  if (p >= end) return false;
  size_t len = strnlen(p, static_cast<size_t>(end - p));
  if (len == static_cast<size_t>(end - p)) return false;  // no NUL before the end
  out.assign(p, len);
  p += len + 1;
  return true;
}

// Bytes left from p to end (0 when p is past it).
size_t left(const char* p, const char* end) { return p < end ? static_cast<size_t>(end - p) : 0; }

template <typename T>
bool argOf(const char* body, const char* end, T& out) {
  if (left(body, end) < sizeof(T)) return false;
  std::memcpy(&out, body, sizeof(T));
  return true;
}

void timeOf(struct timespec& ts, uint64_t sec, uint32_t nsec) {
  ts.tv_sec = static_cast<time_t>(sec);
  ts.tv_nsec = static_cast<long>(nsec);
}

}  // namespace

int negotiateInit(const char* in, size_t n, fuse_init_out& out) {
  fuse_init_in arg{};
  std::memcpy(&arg, in, n < sizeof arg ? n : sizeof arg);
  out = {};
  out.major = FUSE_KERNEL_VERSION;
  out.minor = kMinor;
  if (arg.major != FUSE_KERNEL_VERSION) return arg.major > FUSE_KERNEL_VERSION ? 0 : EPROTO;
  uint32_t offered = arg.flags;
  out.flags = offered & kWanted;
  // An extended INIT (flags2) is answered as one, with none of the extended bits.
  if ((offered & FUSE_INIT_EXT) != 0) out.flags |= FUSE_INIT_EXT;
  out.max_readahead = arg.max_readahead < kMaxReadahead ? arg.max_readahead : kMaxReadahead;
  out.max_write = kMaxWrite;
  if ((out.flags & FUSE_MAX_PAGES) != 0) out.max_pages = kMaxWrite / 4096;
  out.time_gran = 1;
  // max_background and congestion_threshold 0: the kernel's defaults (12 and 9).
  return 0;
}

Decoded decode(const char* msg, size_t n, Request& r, std::vector<Forget>& forgets, int& err) {
  if (n < kHeader) return Decoded::Ignore;
  fuse_in_header h;
  std::memcpy(&h, msg, kHeader);
  r.unique = h.unique;
  r.ino = h.nodeid;
  r.uid = h.uid;
  r.gid = h.gid;
  r.pid = h.pid;
  const char* body = msg + kHeader;
  // The kernel's len is the message's; one that claims more than was read, or less than a
  // header, is held to what is there.
  const char* end = msg + (h.len < kHeader ? kHeader : h.len < n ? h.len : n);
  const char* p = body;
  err = EIO;  // what a malformed request of a known operation gets
  switch (h.opcode) {
    case FUSE_LOOKUP:
      r.op = Op::Lookup;
      return nameAt(p, end, r.name) ? Decoded::Request : Decoded::Refuse;
    case FUSE_FORGET: {
      fuse_forget_in a;
      if (!argOf(body, end, a)) return Decoded::Ignore;
      forgets.push_back({h.nodeid, a.nlookup});
      return Decoded::Forgets;
    }
    case FUSE_BATCH_FORGET: {
      fuse_batch_forget_in a;
      if (!argOf(body, end, a)) return Decoded::Ignore;
      const char* one = body + sizeof a;
      size_t count = std::min<size_t>(a.count, left(one, end) / sizeof(fuse_forget_one));
      for (size_t i = 0; i < count; i++, one += sizeof(fuse_forget_one)) {
        fuse_forget_one f;
        std::memcpy(&f, one, sizeof f);
        forgets.push_back({f.nodeid, f.nlookup});
      }
      return Decoded::Forgets;
    }
    case FUSE_GETATTR:
      r.op = Op::Getattr;
      return Decoded::Request;
    case FUSE_SETATTR: {
      fuse_setattr_in a;
      if (!argOf(body, end, a)) return Decoded::Refuse;
      r.op = Op::Setattr;
      r.toSet = static_cast<int>(a.valid & (kSetMode | kSetUid | kSetGid | kSetSize | kSetAtime | kSetMtime |
                                            kSetAtimeNow | kSetMtimeNow | kSetCtime));
      r.fh = (a.valid & FATTR_FH) != 0 ? a.fh : 0;
      r.attr.st_mode = a.mode;
      r.attr.st_uid = a.uid;
      r.attr.st_gid = a.gid;
      r.attr.st_size = static_cast<off_t>(a.size);
      timeOf(r.attr.st_atim, a.atime, a.atimensec);
      timeOf(r.attr.st_mtim, a.mtime, a.mtimensec);
      timeOf(r.attr.st_ctim, a.ctime, a.ctimensec);
      return Decoded::Request;
    }
    case FUSE_READLINK:
      r.op = Op::Readlink;
      return Decoded::Request;
    case FUSE_SYMLINK:
      // The entry's name, then what the link holds.
      r.op = Op::Symlink;
      return nameAt(p, end, r.name) && nameAt(p, end, r.name2) ? Decoded::Request : Decoded::Refuse;
    case FUSE_MKNOD: {
      fuse_mknod_in a;
      if (!argOf(body, end, a)) return Decoded::Refuse;
      p = body + sizeof a;
      r.op = Op::Mknod;
      r.mode = a.mode;
      r.rdev = a.rdev;
      return nameAt(p, end, r.name) ? Decoded::Request : Decoded::Refuse;
    }
    case FUSE_MKDIR: {
      fuse_mkdir_in a;
      if (!argOf(body, end, a)) return Decoded::Refuse;
      p = body + sizeof a;
      r.op = Op::Mkdir;
      r.mode = a.mode;  // the kernel has applied the caller's umask (no DONT_MASK)
      return nameAt(p, end, r.name) ? Decoded::Request : Decoded::Refuse;
    }
    case FUSE_UNLINK:
    case FUSE_RMDIR:
      r.op = h.opcode == FUSE_UNLINK ? Op::Unlink : Op::Rmdir;
      return nameAt(p, end, r.name) ? Decoded::Request : Decoded::Refuse;
    case FUSE_RENAME:
    case FUSE_RENAME2: {
      if (h.opcode == FUSE_RENAME) {
        fuse_rename_in a;
        if (!argOf(body, end, a)) return Decoded::Refuse;
        r.ino2 = a.newdir;
        p = body + sizeof a;
      } else {
        fuse_rename2_in a;
        if (!argOf(body, end, a)) return Decoded::Refuse;
        r.ino2 = a.newdir;
        r.flags = a.flags;
        p = body + sizeof a;
      }
      r.op = Op::Rename;
      return nameAt(p, end, r.name) && nameAt(p, end, r.name2) ? Decoded::Request : Decoded::Refuse;
    }
    case FUSE_LINK: {
      // The header names the new parent; the body the inode linked and the new name.
      fuse_link_in a;
      if (!argOf(body, end, a)) return Decoded::Refuse;
      p = body + sizeof a;
      r.op = Op::Link;
      r.ino = a.oldnodeid;
      r.ino2 = h.nodeid;
      return nameAt(p, end, r.name) ? Decoded::Request : Decoded::Refuse;
    }
    case FUSE_OPEN:
    case FUSE_OPENDIR: {
      fuse_open_in a;
      if (!argOf(body, end, a)) return Decoded::Refuse;
      r.op = h.opcode == FUSE_OPEN ? Op::Open : Op::Opendir;
      r.flags = a.flags;
      return Decoded::Request;
    }
    case FUSE_CREATE: {
      fuse_create_in a;
      if (!argOf(body, end, a)) return Decoded::Refuse;
      p = body + sizeof a;
      r.op = Op::Create;
      r.flags = a.flags;
      r.mode = a.mode;
      return nameAt(p, end, r.name) ? Decoded::Request : Decoded::Refuse;
    }
    case FUSE_READ:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS: {
      fuse_read_in a;
      if (!argOf(body, end, a)) return Decoded::Refuse;
      r.op = h.opcode == FUSE_READ ? Op::Read : h.opcode == FUSE_READDIR ? Op::Readdir : Op::Readdirplus;
      r.fh = a.fh;
      r.offset = static_cast<int64_t>(a.offset);
      r.size = a.size;
      return Decoded::Request;
    }
    case FUSE_WRITE: {
      fuse_write_in a;
      if (!argOf(body, end, a)) return Decoded::Refuse;
      const char* data = body + sizeof a;
      if (left(data, end) < a.size) return Decoded::Refuse;
      r.op = Op::Write;
      r.fh = a.fh;
      r.offset = static_cast<int64_t>(a.offset);
      r.data.assign(data, data + a.size);
      return Decoded::Request;
    }
    case FUSE_STATFS:
      r.op = Op::Statfs;
      return Decoded::Request;
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR: {
      fuse_release_in a;
      if (!argOf(body, end, a)) return Decoded::Refuse;
      r.op = h.opcode == FUSE_RELEASE ? Op::Release : Op::Releasedir;
      r.fh = a.fh;
      return Decoded::Request;
    }
    case FUSE_FSYNC: {
      fuse_fsync_in a;
      if (!argOf(body, end, a)) return Decoded::Refuse;
      r.op = Op::Fsync;
      r.fh = a.fh;
      return Decoded::Request;
    }
    case FUSE_FLUSH: {
      fuse_flush_in a;
      if (!argOf(body, end, a)) return Decoded::Refuse;
      r.op = Op::Flush;
      r.fh = a.fh;
      return Decoded::Request;
    }
    default:
      // Not served: the kernel then remembers and asks no more (xattrs: EOPNOTSUPP to the
      // caller; fsyncdir, fallocate, lseek, copy_file_range, tmpfile: its own fallback or
      // EOPNOTSUPP), and for INTERRUPT it stops sending them: a request already given to JS
      // runs to its end. A second INIT, DESTROY (fuseblk only) and anything newer alike.
      err = ENOSYS;
      return Decoded::Refuse;
  }
}

void splitTimeout(double t, uint64_t& sec, uint32_t& nsec) {
  if (!(t > 0)) {
    sec = 0;
    nsec = 0;
    return;
  }
  if (t >= 1e18) {
    sec = 1000000000000000000ull;
    nsec = 0;
    return;
  }
  double whole = std::floor(t);
  sec = static_cast<uint64_t>(whole);
  double frac = (t - whole) * 1e9;
  nsec = frac >= 0 && frac < 1e9 ? static_cast<uint32_t>(frac) : 0;
}

fuse_attr attrOf(const struct stat& st) {
  fuse_attr a{};
  a.ino = st.st_ino;
  a.size = static_cast<uint64_t>(st.st_size);
  a.blocks = static_cast<uint64_t>(st.st_blocks);
  a.atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  a.mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  a.ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  a.atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a.mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a.ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  a.mode = st.st_mode;
  a.nlink = static_cast<uint32_t>(st.st_nlink);
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.rdev = static_cast<uint32_t>(st.st_rdev);
  a.blksize = static_cast<uint32_t>(st.st_blksize);
  return a;
}

fuse_entry_out entryOf(uint64_t nodeid, const struct stat& st, double entryTimeout, double attrTimeout) {
  fuse_entry_out e{};
  e.nodeid = nodeid;
  e.generation = 1;
  splitTimeout(entryTimeout, e.entry_valid, e.entry_valid_nsec);
  splitTimeout(attrTimeout, e.attr_valid, e.attr_valid_nsec);
  e.attr = attrOf(st);
  return e;
}

fuse_attr_out attrOutOf(const struct stat& st, double attrTimeout) {
  fuse_attr_out a{};
  splitTimeout(attrTimeout, a.attr_valid, a.attr_valid_nsec);
  a.attr = attrOf(st);
  return a;
}

fuse_kstatfs statfsOf(const struct statvfs& sv) {
  fuse_kstatfs k{};
  k.blocks = sv.f_blocks;
  k.bfree = sv.f_bfree;
  k.bavail = sv.f_bavail;
  k.files = sv.f_files;
  k.ffree = sv.f_ffree;
  k.bsize = static_cast<uint32_t>(sv.f_bsize);
  k.namelen = static_cast<uint32_t>(sv.f_namemax);
  k.frsize = static_cast<uint32_t>(sv.f_frsize);
  return k;
}

uint32_t openFlags(bool keepCache, bool directIo) {
  return (keepCache ? FOPEN_KEEP_CACHE : 0) | (directIo ? FOPEN_DIRECT_IO : 0);
}

size_t addDirent(char* buf, size_t room, const std::string& name, uint64_t ino, uint32_t mode, uint64_t nextOffset) {
  size_t len = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + name.size());
  if (len > room) return len;
  fuse_dirent d{};
  d.ino = ino;
  d.off = nextOffset;
  d.namelen = static_cast<uint32_t>(name.size());
  d.type = (mode & S_IFMT) >> 12;
  std::memset(buf, 0, len);
  std::memcpy(buf, &d, FUSE_NAME_OFFSET);
  std::memcpy(buf + FUSE_NAME_OFFSET, name.data(), name.size());
  return len;
}

size_t addDirentPlus(char* buf, size_t room, const std::string& name, uint64_t nodeid, const struct stat& st,
                     uint64_t nextOffset, double entryTimeout, double attrTimeout) {
  size_t len = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + name.size());
  if (len > room) return len;
  fuse_direntplus d{};
  d.entry_out = entryOf(nodeid, st, entryTimeout, attrTimeout);
  d.dirent.ino = st.st_ino;
  d.dirent.off = nextOffset;
  d.dirent.namelen = static_cast<uint32_t>(name.size());
  d.dirent.type = (st.st_mode & S_IFMT) >> 12;
  std::memset(buf, 0, len);
  std::memcpy(buf, &d, FUSE_NAME_OFFSET_DIRENTPLUS);
  std::memcpy(buf + FUSE_NAME_OFFSET_DIRENTPLUS, name.data(), name.size());
  return len;
}

}  // namespace cmkit::fuse::wire
