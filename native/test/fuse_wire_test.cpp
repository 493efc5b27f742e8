// The FUSE protocol codec (fuse_wire.h) fed bytes directly: each request the mount
// serves decodes to the fields the JS side reads; messages cut short, names without
// their NUL, a WRITE or BATCH_FORGET claiming more than was read, and random bytes are
// refused or ignored, never read past (ASan watches every byte); INIT takes only the
// capabilities we chose; directory entries are laid out and padded as the kernel parses
// them.
#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../fuse/fuse_wire.h"
#include "stress.h"

using cmkit::fuse::Op;
using cmkit::fuse::Request;
namespace wire = cmkit::fuse::wire;

namespace {

// A request: header, then the op's struct, then the given tail bytes.
template <typename T>
std::vector<char> message(uint32_t opcode, uint64_t nodeid, const T* arg, const std::string& tail) {
  std::vector<char> m(sizeof(fuse_in_header) + (arg ? sizeof(T) : 0) + tail.size());
  fuse_in_header h{};
  h.len = static_cast<uint32_t>(m.size());
  h.opcode = opcode;
  h.unique = 77;
  h.nodeid = nodeid;
  h.uid = 1001;
  h.gid = 1002;
  h.pid = 42;
  std::memcpy(m.data(), &h, sizeof h);
  if (arg) std::memcpy(m.data() + sizeof h, arg, sizeof(T));
  std::memcpy(m.data() + m.size() - tail.size(), tail.data(), tail.size());
  return m;
}

std::vector<char> message(uint32_t opcode, uint64_t nodeid, const std::string& tail) {
  return message<int>(opcode, nodeid, nullptr, tail);
}

// Decodes m, or only its first `cut` bytes: a copy of exactly that size, so ASan sees a read past it.
wire::Decoded decode(const std::vector<char>& m, Request& r, std::vector<wire::Forget>& f, int& err,
                     size_t cut = SIZE_MAX) {
  size_t n = cut < m.size() ? cut : m.size();
  std::vector<char> exact(m.begin(), m.begin() + static_cast<long>(n));
  return wire::decode(exact.data(), n, r, f, err);
}

void requests() {
  std::vector<wire::Forget> f;
  int err = 0;
  {
    Request r;
    CHECK(decode(message(FUSE_LOOKUP, 5, std::string("n\x80\xff", 3) + '\0'), r, f, err) == wire::Decoded::Request);
    CHECK(r.op == Op::Lookup && r.ino == 5 && r.name == std::string("n\x80\xff", 3) && r.unique == 77);
    CHECK(r.uid == 1001 && r.gid == 1002 && r.pid == 42);
  }
  {
    fuse_rename2_in a{};
    a.newdir = 9;
    a.flags = 1;  // RENAME_NOREPLACE
    Request r;
    CHECK(decode(message(FUSE_RENAME2, 5, &a, std::string("old\0new\0", 8)), r, f, err) == wire::Decoded::Request);
    CHECK(r.op == Op::Rename && r.ino == 5 && r.ino2 == 9 && r.name == "old" && r.name2 == "new" && r.flags == 1);
  }
  {
    fuse_link_in a{};
    a.oldnodeid = 12;
    Request r;
    CHECK(decode(message(FUSE_LINK, 3, &a, std::string("ln\0", 3)), r, f, err) == wire::Decoded::Request);
    CHECK(r.op == Op::Link && r.ino == 12 && r.ino2 == 3 && r.name == "ln");
  }
  {
    Request r;
    CHECK(decode(message(FUSE_SYMLINK, 3, std::string("name\0/target\0", 13)), r, f, err) == wire::Decoded::Request);
    CHECK(r.op == Op::Symlink && r.name == "name" && r.name2 == "/target");
  }
  {
    fuse_create_in a{};
    a.flags = O_WRONLY | O_CREAT | O_TRUNC;
    a.mode = 0100644;
    Request r;
    CHECK(decode(message(FUSE_CREATE, 1, &a, std::string("f\0", 2)), r, f, err) == wire::Decoded::Request);
    CHECK(r.op == Op::Create && r.flags == a.flags && r.mode == a.mode && r.name == "f");
  }
  {
    fuse_setattr_in a{};
    a.valid = FATTR_MODE | FATTR_SIZE | FATTR_MTIME | FATTR_FH | FATTR_LOCKOWNER;
    a.fh = 33;
    a.size = 1 << 20;
    a.mode = 0100600;
    a.mtime = 1700000000;
    a.mtimensec = 123456789;
    Request r;
    CHECK(decode(message(FUSE_SETATTR, 4, &a, ""), r, f, err) == wire::Decoded::Request);
    CHECK(r.op == Op::Setattr && r.fh == 33 && r.attr.st_size == (1 << 20) && r.attr.st_mode == 0100600);
    CHECK(r.toSet == (cmkit::fuse::kSetMode | cmkit::fuse::kSetSize | cmkit::fuse::kSetMtime));
    CHECK(r.attr.st_mtim.tv_sec == 1700000000 && r.attr.st_mtim.tv_nsec == 123456789);
  }
  {
    std::string data(5000, 'x');
    fuse_write_in a{};
    a.fh = 8;
    a.offset = 4096;
    a.size = static_cast<uint32_t>(data.size());
    Request r;
    auto m = message(FUSE_WRITE, 2, &a, data);
    CHECK(decode(m, r, f, err) == wire::Decoded::Request);
    CHECK(r.op == Op::Write && r.fh == 8 && r.offset == 4096 && r.data.size() == 5000 && r.data[4999] == 'x');
    // The same WRITE cut short: its size now claims more than was read.
    Request cut;
    CHECK(decode(m, cut, f, err, m.size() - 1) == wire::Decoded::Refuse && err == EIO);
  }
  {
    fuse_batch_forget_in a{};
    a.count = 1000;  // far more than follow
    fuse_forget_one one[2] = {{10, 1}, {11, 2}};
    std::string tail(reinterpret_cast<const char*>(one), sizeof one);
    Request r;
    f.clear();
    CHECK(decode(message(FUSE_BATCH_FORGET, 0, &a, tail), r, f, err) == wire::Decoded::Forgets);
    CHECK(f.size() == 2 && f[0].ino == 10 && f[1].nlookup == 2);
  }
  {
    // Names that run to the end of the message with no NUL.
    Request r;
    CHECK(decode(message(FUSE_LOOKUP, 1, std::string("abc", 3)), r, f, err) == wire::Decoded::Refuse);
    CHECK(decode(message(FUSE_RENAME, 1, std::string("\0\0\0\0\0\0\0\0old\0new", 15)), r, f, err) ==
          wire::Decoded::Refuse);
  }
  {
    // Operations we do not serve, and an INTERRUPT: ENOSYS, so the kernel asks no more.
    Request r;
    CHECK(decode(message(FUSE_GETXATTR, 1, std::string(8, '\0')), r, f, err) == wire::Decoded::Refuse);
    CHECK(err == ENOSYS && r.unique == 77);
    CHECK(decode(message(FUSE_INTERRUPT, 0, std::string(8, '\0')), r, f, err) == wire::Decoded::Refuse);
    CHECK(err == ENOSYS);
    CHECK(decode(message(FUSE_LOOKUP, 1, ""), r, f, err, sizeof(fuse_in_header) - 1) == wire::Decoded::Ignore);
  }
}

void init() {
  fuse_init_in in{};
  in.major = 7;
  in.minor = 45;
  in.max_readahead = 128 * 1024;
  in.flags = 0xffffffffu;  // everything offered
  fuse_init_out out;
  CHECK(wire::negotiateInit(reinterpret_cast<const char*>(&in), sizeof in, out) == 0);
  CHECK(out.major == 7 && out.minor == wire::kMinor);
  uint32_t chosen = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_ASYNC_DIO |
                    FUSE_MAX_PAGES | FUSE_INIT_EXT;
  CHECK(out.flags == chosen);
  CHECK(out.flags2 == 0);
  CHECK(out.max_readahead == 128 * 1024);  // never more than the kernel's
  CHECK(out.max_write == wire::kMaxWrite && out.max_pages == wire::kMaxWrite / 4096);
  // An old-style INIT (16 bytes, no flags2), offering none of our wishes.
  in.flags = FUSE_WRITEBACK_CACHE | FUSE_POSIX_LOCKS;
  CHECK(wire::negotiateInit(reinterpret_cast<const char*>(&in), 16, out) == 0);
  CHECK(out.flags == 0 && out.max_pages == 0);
  in.major = 6;
  CHECK(wire::negotiateInit(reinterpret_cast<const char*>(&in), 16, out) == EPROTO);
}

void dirents() {
  char buf[256];
  // 24 bytes of fuse_dirent, a 5-byte name, padded to 32.
  size_t n = wire::addDirent(buf, sizeof buf, "hello", 7, S_IFREG | 0644, 3);
  CHECK(n == 32);
  fuse_dirent d;
  std::memcpy(&d, buf, sizeof d);
  CHECK(d.ino == 7 && d.off == 3 && d.namelen == 5 && d.type == (S_IFREG >> 12));
  CHECK(std::memcmp(buf + FUSE_NAME_OFFSET, "hello\0\0\0", 8) == 0);
  CHECK(wire::addDirent(buf, 31, "hello", 7, S_IFREG, 3) == 32);  // too big: says so, writes nothing
  struct stat st {};
  st.st_ino = 7;
  st.st_mode = S_IFDIR | 0755;
  st.st_size = 4096;
  n = wire::addDirentPlus(buf, sizeof buf, "d", 70, st, 4, 1.5, 0.25);
  CHECK(n == FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + 1));
  fuse_direntplus p;
  std::memcpy(&p, buf, sizeof p);
  CHECK(p.entry_out.nodeid == 70 && p.entry_out.entry_valid == 1 && p.entry_out.entry_valid_nsec == 500000000);
  CHECK(p.entry_out.attr_valid == 0 && p.entry_out.attr_valid_nsec == 250000000);
  CHECK(p.entry_out.attr.size == 4096 && p.dirent.ino == 7 && p.dirent.type == (S_IFDIR >> 12));
  uint64_t sec;
  uint32_t nsec;
  wire::splitTimeout(-1, sec, nsec);
  CHECK(sec == 0 && nsec == 0);
}

// Random messages, and real ones with random bytes flipped or cut: decode never reads
// past what it is given, whatever the header claims.
void hostile(uint64_t seed, uint64_t rounds) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<char>> seeds;
  fuse_write_in w{};
  w.size = 64;
  seeds.push_back(message(FUSE_WRITE, 2, &w, std::string(64, 'y')));
  fuse_batch_forget_in b{};
  b.count = 3;
  seeds.push_back(message(FUSE_BATCH_FORGET, 0, &b, std::string(48, '\1')));
  seeds.push_back(message(FUSE_RENAME, 1, std::string("\0\0\0\0\0\0\0\0a\0b\0", 12)));
  fuse_mknod_in k{};
  seeds.push_back(message(FUSE_MKNOD, 1, &k, std::string("node\0", 5)));
  for (uint64_t i = 0; i < rounds; i++) {
    std::vector<char> m;
    if (i % 4 == 0) {
      m.resize(rng() % 200);
      for (char& c : m) c = static_cast<char>(rng());
      if (m.size() >= 8) {  // a known opcode, so the switch goes past the header
        uint32_t op = 1 + static_cast<uint32_t>(rng() % 52);
        std::memcpy(m.data() + 4, &op, 4);
      }
    } else {
      m = seeds[rng() % seeds.size()];
      for (int k2 = 0; k2 < 3; k2++) m[rng() % m.size()] = static_cast<char>(rng());
      m.resize(rng() % (m.size() + 1));
    }
    Request r;
    std::vector<wire::Forget> f;
    int err = 0;
    decode(m, r, f, err);
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto opt = cmkit::stress::parseOptions(argc, argv, 200000, 1);
  std::printf("fuse_wire_test seed %llu\n", static_cast<unsigned long long>(opt.seed));
  requests();
  init();
  dirents();
  hostile(opt.seed, opt.opsPerThread);
  std::printf("ok\n");
  return 0;
}
