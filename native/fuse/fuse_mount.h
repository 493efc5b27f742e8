// Mounting and unmounting a FUSE file system without libfuse: open /dev/fuse and
// mount(2) it (root, or CAP_SYS_ADMIN), or, when that is refused, have fusermount3 (the
// setuid helper of Debian's fuse3 package) mount it and pass the descriptor back over a
// socket (SCM_RIGHTS; it reads the socket's number from _FUSE_COMMFD).
#pragma once

#include <string>
#include <vector>

namespace cmkit::fuse {

struct Mounted {
  int fd = -1;              // /dev/fuse of the new connection
  bool byHelper = false;    // fusermount3 mounted it, and must unmount it
};

// `options`: fsname=NAME, subtype=NAME, default_permissions, allow_other; anything else
// is refused (error says which). On failure returns fd -1 and sets `error`.
Mounted mountFuse(const std::string& mountpoint, const std::vector<std::string>& options, std::string& error);

// Detaches the mount (lazily: a process with a file open there sees ENOTCONN from then on,
// the mount point is free at once). `fd` must be closed already (the connection ends
// with its last descriptor). Call only while the mount is still ours: not after the
// kernel said it ended (something else may be mounted there since).
void unmountFuse(const std::string& mountpoint, bool byHelper);

}  // namespace cmkit::fuse
