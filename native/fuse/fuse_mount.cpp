#include "fuse_mount.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace cmkit::fuse {

namespace {

const char* kHelper = "fusermount3";

struct Parsed {
  std::string fsname = "cmkit";
  std::string subtype;
  bool defaultPermissions = false;
  bool allowOther = false;
};

bool parse(const std::vector<std::string>& options, Parsed& p, std::string& error) {
  for (const std::string& o : options) {
    if (o.rfind("fsname=", 0) == 0) p.fsname = o.substr(7);
    else if (o.rfind("subtype=", 0) == 0) p.subtype = o.substr(8);
    else if (o == "default_permissions") p.defaultPermissions = true;
    else if (o == "allow_other") p.allowOther = true;
    else {
      error = "unknown mount option: " + o;
      return false;
    }
    // The kernel's option string is comma-separated: a comma in a value would split it.
    if (o.find(',') != std::string::npos) {
      error = "mount option with a comma: " + o;
      return false;
    }
  }
  return true;
}

// Waits for a child, retrying on EINTR; its exit status, or -1.
int reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs fusermount3 with `args`; `commFd` >= 0 is passed to it as _FUSE_COMMFD (and left
// open across the exec). Returns the child's pid, or -1.
pid_t spawnHelper(const std::vector<std::string>& args, int commFd) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; e++) {
    if (std::strncmp(*e, "_FUSE_", 6) != 0) env.emplace_back(*e);
  }
  if (commFd >= 0) env.push_back("_FUSE_COMMFD=" + std::to_string(commFd));
  std::vector<char*> argv{const_cast<char*>(kHelper)};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawnp(&pid, kHelper, nullptr, nullptr, argv.data(), envp.data()) != 0) return -1;
  return pid;
}

// The descriptor fusermount3 sends back once it has mounted, or -1 (it failed: it says why
// on stderr, which the child shares with us).
int receiveFd(int sock) {
  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

Mounted mountByHelper(const std::string& mountpoint, const Parsed& p, std::string& error) {
  int sv[2];
  // The child's end must survive exec; ours must not leak into other children.
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    error = std::string("socketpair: ") + std::strerror(errno);
    return {};
  }
  fcntl(sv[0], F_SETFD, FD_CLOEXEC);
  std::string opts = "fsname=" + p.fsname;
  if (!p.subtype.empty()) opts += ",subtype=" + p.subtype;
  if (p.defaultPermissions) opts += ",default_permissions";
  if (p.allowOther) opts += ",allow_other";
  pid_t pid = spawnHelper({"-o", opts, "--", mountpoint}, sv[1]);
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    error = "mounting " + mountpoint + " needs root or fusermount3 (Debian: apt-get install fuse3)";
    return {};
  }
  int fd = receiveFd(sv[0]);
  close(sv[0]);
  int status = reap(pid);
  if (fd < 0 || status != 0) {
    if (fd >= 0) close(fd);
    error = "fusermount3 could not mount " + mountpoint + " (its message is above)";
    return {};
  }
  return {fd, true};
}

}  // namespace

Mounted mountFuse(const std::string& mountpoint, const std::vector<std::string>& options, std::string& error) {
  Parsed p;
  if (!parse(options, p, error)) return {};
  struct stat st;
  if (stat(mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    error = "mount point " + mountpoint + " is not a directory";
    return {};
  }
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    error = std::string("/dev/fuse: ") + std::strerror(errno);
    return {};
  }
  std::string data = "fd=" + std::to_string(fd) + ",rootmode=40000,user_id=" + std::to_string(getuid()) +
                     ",group_id=" + std::to_string(getgid());
  if (p.defaultPermissions) data += ",default_permissions";
  if (p.allowOther) data += ",allow_other";
  std::string type = p.subtype.empty() ? "fuse" : "fuse." + p.subtype;
  if (mount(p.fsname.c_str(), mountpoint.c_str(), type.c_str(), MS_NOSUID | MS_NODEV, data.c_str()) == 0) {
    return {fd, false};
  }
  int err = errno;
  close(fd);
  if (err == EPERM) return mountByHelper(mountpoint, p, error);
  error = "mounting " + mountpoint + " failed: " + std::strerror(err);
  return {};
}

void unmountFuse(const std::string& mountpoint, bool byHelper) {
  if (!byHelper) {
    // Never through a symlink someone put where the mount point was.
    umount2(mountpoint.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    return;
  }
  pid_t pid = spawnHelper({"-u", "-q", "-z", "--", mountpoint}, -1);
  if (pid >= 0) reap(pid);
}

}  // namespace cmkit::fuse
