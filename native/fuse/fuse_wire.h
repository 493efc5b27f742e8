// The kernel's FUSE protocol on the wire (the structures of linux/fuse.h, which comes
// with the C library's kernel headers): INIT negotiation, decoding a request into a
// Request, and encoding replies. Pure functions over byte buffers: no descriptors, no
// threads, so a test can feed them bytes.
//
// Message layout (both directions, native byte order):
//   request: fuse_in_header (len, opcode, unique, nodeid, uid, gid, pid) | op's struct | names
//   reply:   fuse_out_header (len, error = -errno or 0, unique) | op's struct | data
//   notify:  fuse_out_header with unique 0 and error = the notify code | its struct
// The sizes of the op structs are those of the protocol minor we answer INIT with
// (kMinor): the kernel sends and expects the layout of the minor we chose.
#pragma once

#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuse_request.h"

namespace cmkit::fuse::wire {

// The protocol minor we speak: every structure below is laid out as of 7.31 (the one
// libfuse 3.14 negotiated for this mount before we spoke the protocol ourselves).
constexpr uint32_t kMinor = 31;
static_assert(FUSE_KERNEL_VERSION == 7 && FUSE_KERNEL_MINOR_VERSION >= kMinor, "linux/fuse.h is older than 7.31");

constexpr uint32_t kMaxWrite = 1024 * 1024;  // and so the biggest READ we are asked for
constexpr uint32_t kMaxReadahead = 1024 * 1024;
// A reader's buffer: the kernel refuses a read(2) of /dev/fuse that could not hold the
// biggest WRITE (its headers and kMaxWrite bytes).
constexpr size_t kRequestBufferSize = kMaxWrite + 4096;
static_assert(kRequestBufferSize >= FUSE_MIN_READ_BUFFER);

// The INIT reply for the kernel's INIT request body `in` (n bytes). Returns 0, or the
// errno to refuse INIT with (a protocol major other than 7).
int negotiateInit(const char* in, size_t n, fuse_init_out& out);

// What decode() made of one message.
enum class Decoded {
  Request,  // `r` is filled: queue it for a serving thread
  Forgets,  // FORGET / BATCH_FORGET: `forgets` is filled; the kernel wants no reply
  Refuse,   // answer at once with `err` (an operation we do not serve: ENOSYS)
  Ignore,   // nothing to do (a message too short to carry a header)
};

struct Forget {
  uint64_t ino;
  uint64_t nlookup;
};

// Decodes one message of n bytes read from /dev/fuse. `r.unique` is set whatever it returns
// (but Ignore), so a Refuse can be answered.
Decoded decode(const char* msg, size_t n, Request& r, std::vector<Forget>& forgets, int& err);

// Reply bodies.
fuse_attr attrOf(const struct stat& st);
fuse_entry_out entryOf(uint64_t nodeid, const struct stat& st, double entryTimeout, double attrTimeout);
fuse_attr_out attrOutOf(const struct stat& st, double attrTimeout);
fuse_kstatfs statfsOf(const struct statvfs& sv);
// open_flags for an open or create reply.
uint32_t openFlags(bool keepCache, bool directIo);

// Appends one directory entry (READDIR) at buf[used..]; returns the bytes it takes, and
// writes nothing when that is more than room.
size_t addDirent(char* buf, size_t room, const std::string& name, uint64_t ino, uint32_t mode, uint64_t nextOffset);
// The same for READDIRPLUS, with the entry's lookup answer (nodeid 0: no lookup).
size_t addDirentPlus(char* buf, size_t room, const std::string& name, uint64_t nodeid, const struct stat& st,
                     uint64_t nextOffset, double entryTimeout, double attrTimeout);

// A timeout in seconds as the protocol's (seconds, nanoseconds); negative is 0.
void splitTimeout(double t, uint64_t& sec, uint32_t& nsec);

}  // namespace cmkit::fuse::wire
