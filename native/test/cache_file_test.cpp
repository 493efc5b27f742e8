// The cache file's native pieces: MappedFile (one process at a time, its size, no
// symlink, bytes kept across mappings), blockChecksums over threads (the same sums as
// one thread, and a flipped byte changes its block's), and RefTable::restore (ascending
// slots, no duplicate name, skipped slots reused, a disowned reference kept).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "../core/cache_file.h"
#include "../core/checksum.h"
#include "../core/ref_table.h"
#include "stress.h"

using cmkit::Fid;
using cmkit::MappedFile;
using cmkit::RefTable;

static void mappedFile(const std::string& dir) {
  std::string path = dir + "/cache";
  std::shared_ptr<MappedFile> a, b;
  CHECK(MappedFile::open(path.c_str(), 1 << 20, &a) == 0);
  CHECK(a->size() == (1u << 20));
  a->data()[12345] = 77;
  CHECK(MappedFile::open(path.c_str(), 1 << 20, &b) == EWOULDBLOCK);  // one process (open file) at a time
  a->unlock();
  CHECK(a->data()[12345] == 77);  // the mapping outlives the lock
  CHECK(MappedFile::open(path.c_str(), 2 << 20, &b) == EINVAL);       // another size: another layout
  CHECK(MappedFile::open(path.c_str(), 1 << 20, &b) == 0);
  CHECK(b->data()[12345] == 77);  // the same file's pages
  a.reset();
  b.reset();
  std::string link = dir + "/link";
  CHECK(::symlink(path.c_str(), link.c_str()) == 0);
  CHECK(MappedFile::open(link.c_str(), 1 << 20, &a) == ELOOP);
  CHECK(MappedFile::open((dir + "/missing/x").c_str(), 1 << 20, &a) == ENOENT);
  ::unlink(link.c_str());
  ::unlink(path.c_str());
}

static void checksums(std::mt19937_64& rng) {
  constexpr size_t kBlock = 65536, kBlocks = 300;
  std::vector<uint8_t> data(kBlock * kBlocks);
  for (auto& byte : data) byte = static_cast<uint8_t>(rng());
  std::vector<int32_t> slots;
  std::vector<uint32_t> seeds;
  for (size_t i = 0; i < kBlocks; i += 2) {
    slots.push_back(static_cast<int32_t>(kBlocks - 1 - i));
    seeds.push_back(static_cast<uint32_t>(rng()));
  }
  for (unsigned threads : {1u, 2u, 4u}) {
    std::vector<uint32_t> out(slots.size());
    cmkit::blockChecksums(data.data(), kBlock, slots.data(), seeds.data(), out.data(), slots.size(), threads);
    for (size_t k = 0; k < slots.size(); k++) {
      CHECK(out[k] == cmkit::blockChecksum(data.data() + slots[k] * kBlock, kBlock, seeds[k]));
    }
  }
  uint8_t* block = data.data() + slots[3] * kBlock;
  uint32_t before = cmkit::blockChecksum(block, kBlock, seeds[3]);
  for (size_t at : {size_t{0}, size_t{9}, kBlock / 2 + 3, kBlock - 1}) {
    block[at] ^= 0x10;
    CHECK(cmkit::blockChecksum(block, kBlock, seeds[3]) != before);
    block[at] ^= 0x10;
  }
  CHECK(cmkit::blockChecksum(block, kBlock, seeds[3] + 1) != before);  // the seed names the block
}

static void restore() {
  RefTable table(8);
  auto shard = table.attachShard();
  Fid a = Fid::make(1, 2, 3, 4), b = Fid::make(1, 2, 3, 5), c = Fid::make(9, 9, 9, 9);
  CHECK(table.restore(2, a, false) == cmkit::Status::kOk);
  CHECK(table.restore(1, b, false) == cmkit::Status::kBadSlot);      // not ascending
  CHECK(table.restore(5, a, false) == cmkit::Status::kBadArgument);  // a name it has
  CHECK(table.restore(5, b, true) == cmkit::Status::kOk);
  CHECK(table.restore(8, c, false) == cmkit::Status::kBadSlot);      // past capacity
  CHECK(table.findHold(*shard, a) == 2);
  CHECK(table.refCount(5) == 1);                                     // the disowned reference
  CHECK(table.releaseDisowned(5) == cmkit::Status::kOk);
  // The slots skipped (0, 1, 3, 4) and the rest (6, 7) are free for new names.
  std::vector<bool> used(8);
  used[2] = used[5] = true;
  for (uint32_t k = 0; k < 6; k++) {
    bool created = false;
    int32_t slot = table.getHold(*shard, Fid::make(100, k, 0, 0), &created);
    CHECK(created && slot >= 0 && slot < 8 && !used[static_cast<size_t>(slot)]);
    used[static_cast<size_t>(slot)] = true;
  }
  table.retireShard(shard);
}

int main(int argc, char** argv) {
  auto opt = cmkit::stress::parseOptions(argc, argv, 1, 1);
  std::printf("cache_file_test seed=%llu\n", static_cast<unsigned long long>(opt.seed));
  char dir[] = "/tmp/cmkit-cache-file-test-XXXXXX";
  CHECK(::mkdtemp(dir) != nullptr);
  std::mt19937_64 rng(opt.seed);
  mappedFile(dir);
  checksums(rng);
  restore();
  ::rmdir(dir);
  std::printf("cache_file_test ok\n");
  return 0;
}
