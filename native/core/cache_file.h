// A cache file mapped shared into the process: the memory of a cache that is bigger than
// RAM (the kernel pages it) and that outlives the process (a kill -9 leaves every store
// the process made in the file's pages, and the next process maps them again).
//
// Invariants:
//   - One process at a time: open() takes an exclusive flock, held until the mapping
//     goes; a second opener gets EWOULDBLOCK instead of two caches writing one file.
//   - The path is opened without following a symlink in its last component, and the file
//     is created 0600: a cache file holds other users' file data.
//   - The mapping stays until the last MappedFile reference is dropped (the addon ties
//     that to V8's backing stores, so no JS view ever outlives it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace cmkit {

class MappedFile {
 public:
  // Opens or creates `path`, locks it and maps `bytes` of it. A new or empty file is
  // sized to `bytes` (sparse: blocks are allocated as they are written); a file of any
  // other size is refused with EINVAL, since its layout would not be this one. Returns 0
  // or an errno.
  static int open(const char* path, size_t bytes, std::shared_ptr<MappedFile>* out);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Closes the descriptor, and with it the flock, while the mapping stays for the views
  // that still point at it: a cache that is closed lets the next one open the file at
  // once, without waiting for the garbage collector to drop the last view.
  void unlock();
  // madvise over [offset, offset + length), clipped to the file; 0 or an errno.
  int advise(size_t offset, size_t length, int advice) const;

 private:
  MappedFile(int fd, uint8_t* data, size_t size) : fd_(fd), data_(data), size_(size) {}
  std::atomic<int> fd_;
  uint8_t* const data_;
  const size_t size_;
};

}  // namespace cmkit
