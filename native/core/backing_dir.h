// A backing directory, reached only from a held descriptor of its root: the server side
// of `cmkit mount` runs as root and must never let a user-controlled path lead it
// anywhere else.
//
// Rules every call keeps:
//   - A path is relative to the root and made of components separated by '/'; no
//     component is empty, ".", "..", longer than NAME_MAX or contains NUL (EINVAL or
//     ENAMETOOLONG otherwise). "" is the root itself.
//   - The directories of a path are resolved beneath the root without following any
//     symlink (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
//     on kernels without openat2, one openat(O_NOFOLLOW) per component). A directory
//     swapped for a symlink fails with ELOOP or ENOTDIR; it is never followed.
//   - The last component is never followed either: stat, chown and utimens act on a
//     symlink itself (AT_SYMLINK_NOFOLLOW / AT_EMPTY_PATH on an O_PATH descriptor),
//     chmod acts on the inode an O_PATH|O_NOFOLLOW descriptor holds (and refuses a
//     symlink, as Linux does), and openFile opens regular files only (O_NOFOLLOW,
//     O_NONBLOCK so a FIFO planted under the name cannot hang the server).
//   - What a create makes is owned by the uid/gid given (the requesting user; the gid of
//     a setgid parent wins, as on a local file system) and gets exactly the mode given:
//     the server process's umask plays no part.
// Every call returns 0 (or a descriptor) on success and -errno on failure; none throws.
// No Node headers: native/addon/backing_binding.cpp runs these on libuv's thread pool.
// Needs Linux >= 5.8 (utimensat with AT_EMPTY_PATH).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cmkit::backing {

// A node's attributes, as statx gives them (btime 0 where the file system has none).
struct Attr {
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t rdev = 0;
  int64_t size = 0;
  int64_t blocks = 0;
  int64_t atimeSec = 0, atimeNsec = 0;
  int64_t mtimeSec = 0, mtimeNsec = 0;
  int64_t ctimeSec = 0, ctimeNsec = 0;
  int64_t btimeSec = 0, btimeNsec = 0;
};

struct Entry {
  std::string name;
  Attr attr;
};

// A time for setattr: seconds and nanoseconds, or kNow / kOmit in nsec.
struct Time {
  int64_t sec = 0;
  int64_t nsec = 0;
};
constexpr int64_t kNow = (1L << 30) - 1;   // UTIME_NOW
constexpr int64_t kOmit = (1L << 30) - 2;  // UTIME_OMIT

// What setattr changes: chown first (the kernel clears setuid/setgid on it), then the
// mode, then the times.
struct AttrChange {
  bool setUid = false, setGid = false, setMode = false;
  uint32_t uid = 0, gid = 0, mode = 0;
  Time atime{0, kOmit}, mtime{0, kOmit};
};

// Opens the root (a directory, not followed if a symlink): an O_PATH descriptor the
// caller keeps for every later call.
int openRoot(const std::string& path);

int lstat(int root, const std::string& path, Attr& out);
// A regular file, with open(2) flags; O_CREAT implies O_EXCL and creates it owned by
// uid/gid with `mode`. Anything but a regular file is refused with EINVAL.
int openFile(int root, const std::string& path, int flags, uint32_t mode, uint32_t uid, uint32_t gid);
int mkdir(int root, const std::string& path, uint32_t mode, uint32_t uid, uint32_t gid, Attr& out);
// mode carries the type (S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK, S_IFREG).
int mknod(int root, const std::string& path, uint32_t mode, uint64_t rdev, uint32_t uid, uint32_t gid, Attr& out);
int symlink(int root, const std::string& target, const std::string& path, uint32_t uid, uint32_t gid, Attr& out);
int readlink(int root, const std::string& path, std::string& out);
int link(int root, const std::string& from, const std::string& to, Attr& out);
int unlink(int root, const std::string& path, bool directory);
// flags: RENAME_NOREPLACE, RENAME_EXCHANGE (renameat2).
int rename(int root, const std::string& from, const std::string& to, unsigned flags);
int setattr(int root, const std::string& path, const AttrChange& change, Attr& out);
// Every entry but "." and "..", each with its attributes (an entry removed meanwhile is left out).
int readdirPlus(int root, const std::string& path, std::vector<Entry>& out);
// [bsize, blocks, bfree, bavail, files, ffree, namemax]
int statfs(int root, uint64_t out[7]);
// The largest size a file of this file system may have, probed on an unnamed temporary
// file (O_TMPFILE, so no name appears); -EOPNOTSUPP where it cannot be probed.
int64_t maxFileSize(int root);

}  // namespace cmkit::backing
