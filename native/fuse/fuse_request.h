// One kernel FUSE request as the serving threads see it: decoded out of the reader's
// buffer (fuse_wire.cpp) so it outlives that buffer, answered once by a reply* call of
// the Session (fuse_session.h). No Node headers, no libfuse.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cmkit::fuse {

// The operations the mount serves. The JS side gets these numbers from the addon's
// `ops` table (fuse_binding.cpp lists the names in this order).
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

// Setattr's `toSet` bits: the kernel's FATTR_* values, passed as they come, less those the
// mount does not act on (FH, LOCKOWNER, KILL_SUIDGID: not negotiated).
constexpr int kSetMode = 1 << 0;
constexpr int kSetUid = 1 << 1;
constexpr int kSetGid = 1 << 2;
constexpr int kSetSize = 1 << 3;
constexpr int kSetAtime = 1 << 4;
constexpr int kSetMtime = 1 << 5;
constexpr int kSetAtimeNow = 1 << 7;
constexpr int kSetMtimeNow = 1 << 8;
constexpr int kSetCtime = 1 << 10;

struct Request {
  uint32_t id = 0;         // the session's handle for the reply calls
  Op op = Op::Lookup;
  uint64_t unique = 0;     // the kernel's id of the request
  uint32_t dev = 0;        // which reader's descriptor it came in on: the reply goes back there
  bool wantsReply = true;  // false for FORGET, which the kernel never waits on
  uint64_t ino = 0;
  uint64_t ino2 = 0;      // rename: the new parent; link: the new parent
  std::string name;       // lookup/create/unlink/mkdir/mknod/rmdir/rename/symlink/link: the entry's name
  std::string name2;      // rename: the new name; symlink: the link's target
  uint64_t fh = 0;
  int64_t offset = 0;
  uint64_t size = 0;      // read/readdir: bytes wanted; forget: nlookup
  uint32_t flags = 0;     // open/create: open flags; rename: RENAME_* flags
  uint32_t mode = 0;
  uint64_t rdev = 0;      // mknod
  // Who asks (the request header): creates are owned by uid/gid.
  uint32_t uid = 0, gid = 0, pid = 0;
  int toSet = 0;          // setattr: kSet* bits
  struct stat attr {};    // setattr: the new values
  std::vector<char> data;  // write
  uint32_t fid[4] = {0, 0, 0, 0};  // a routed data request: the Fid its handle was routed with
  uint32_t consumer = 0;           // the serving thread it was queued for
};

}  // namespace cmkit::fuse
