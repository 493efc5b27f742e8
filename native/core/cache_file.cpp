#include "cache_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace cmkit {

int MappedFile::open(const char* path, size_t bytes, std::shared_ptr<MappedFile>* out) {
  if (bytes == 0) return EINVAL;
  int fd = ::open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return errno;
  auto fail = [fd](int e) {
    ::close(fd);
    return e;
  };
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) return fail(errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) return fail(errno);
  if (!S_ISREG(st.st_mode)) return fail(EINVAL);
  if (st.st_size == 0) {
    if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) return fail(errno);
  } else if (static_cast<size_t>(st.st_size) != bytes) {
    return fail(EINVAL);
  }
  // The mapping holds its own reference to the open file: mapped through this
  // descriptor, the flock would last until munmap. So it maps a second open of the
  // same file (the /proc link names the inode, whatever its path is now), and the first
  // only holds the lock.
  int mapFd = ::open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDWR | O_CLOEXEC);
  if (mapFd < 0) return fail(errno);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, mapFd, 0);
  int mapErr = p == MAP_FAILED ? errno : 0;
  ::close(mapFd);
  if (mapErr != 0) return fail(mapErr);
  out->reset(new MappedFile(fd, static_cast<uint8_t*>(p), bytes));
  return 0;
}

MappedFile::~MappedFile() {
  ::munmap(data_, size_);
  unlock();
}

void MappedFile::unlock() {
  int fd = fd_.exchange(-1);
  if (fd >= 0) ::close(fd);  // and with it the flock
}

int MappedFile::advise(size_t offset, size_t length, int advice) const {
  if (offset >= size_) return 0;
  if (length > size_ - offset) length = size_ - offset;
  // madvise wants a page-aligned start.
  size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  size_t start = offset & ~(page - 1);
  return ::madvise(data_ + start, length + (offset - start), advice) == 0 ? 0 : errno;
}

}  // namespace cmkit
