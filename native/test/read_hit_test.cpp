// The native read hit (core/read_hit.h) against writers that follow the cache's rules: a
// writer takes the vnode's write sequence odd, changes a block (its bytes, its state, its
// version) or the status, and makes it even again. Readers on other threads must get,
// for every read that hits, bytes of one generation per block (never torn), only from
// blocks that were valid while they read, and the file's length as the record says; a
// read of a block that is Busy, Prefetched or out of the version range, or of a file
// whose status is not current, misses.
#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "../core/cache_layout.h"
#include "../core/read_hit.h"
#include "stress.h"

using namespace cmkit;
namespace L = cmkit::cache_layout;

namespace {

constexpr uint32_t kBlock = 4096;
constexpr uint32_t kBlocks = 16;
constexpr uint64_t kLength = kBlocks * kBlock - 1000;  // the last block is partly the file's
const Fid kFid = Fid::make(1, 536870915, 77, 9);

struct Cache {
  RefTable vnodes{8};
  RefTable buffers{64};
  std::vector<int32_t> vnodeI32 = std::vector<int32_t>(8 * L::kVnodeI32);
  std::vector<double> vnodeF64 = std::vector<double>(8 * L::kVnodeF64);
  std::vector<int32_t> headers = std::vector<int32_t>(64 * L::kHeaderI32);
  std::vector<double> versions = std::vector<double>(64);
  std::vector<uint8_t> data = std::vector<uint8_t>(64 * kBlock);
  uint32_t vslot = 0;
  uint32_t slotOf[kBlocks] = {};
  CacheMemory memory() {
    return {vnodeI32.data(), vnodeF64.data(), 8, headers.data(), versions.data(), data.data(), 64, kBlock};
  }
};

template <typename T>
std::atomic_ref<T> at(std::vector<T>& v, uint64_t i) {
  return std::atomic_ref<T>(v[i]);
}

// Block b of generation g: every byte is (b * 16 + g) mod 256, so one read tells both.
void fill(Cache& c, uint32_t b, uint32_t g) {
  std::memset(c.data.data() + uint64_t{c.slotOf[b]} * kBlock, static_cast<int>((b * 16 + g) & 0xff), kBlock);
}

void setUp(Cache& c) {
  auto writer = c.vnodes.attachShard();
  bool created = false;
  c.vslot = static_cast<uint32_t>(c.vnodes.getHold(*writer, kFid, &created));
  const uint64_t i = uint64_t{c.vslot} * L::kVnodeI32, f = uint64_t{c.vslot} * L::kVnodeF64;
  c.vnodeF64[f + L::kDataVersion] = 5;
  c.vnodeF64[f + L::kBufDataVersionLow] = 1;
  c.vnodeF64[f + L::kLength] = kLength;
  c.vnodeI32[i + L::kGeneration] = 3;
  c.vnodeI32[i + L::kIdentity] = static_cast<int32_t>(kFid.cell);
  c.vnodeI32[i + L::kIdentity + 1] = static_cast<int32_t>(kFid.volume);
  c.vnodeI32[i + L::kIdentity + 2] = static_cast<int32_t>(kFid.vnode);
  c.vnodeI32[i + L::kIdentity + 3] = static_cast<int32_t>(kFid.unique);
  auto bufferShard = c.buffers.attachShard();
  for (uint32_t b = 0; b < kBlocks; b++) {
    c.slotOf[b] = static_cast<uint32_t>(c.buffers.getHold(*bufferShard, Fid::make(c.vslot, 3, b, 0), &created));
    const uint64_t h = uint64_t{c.slotOf[b]} * L::kHeaderI32;
    c.headers[h + L::kHeaderIdentity] = static_cast<int32_t>(c.vslot);
    c.headers[h + L::kHeaderIdentity + 1] = 3;
    c.headers[h + L::kHeaderIdentity + 2] = static_cast<int32_t>(b);
    c.headers[h + L::kHeaderIdentity + 3] = 0;
    c.headers[h + L::kState] = L::kValid;
    c.versions[c.slotOf[b]] = 5;
    fill(c, b, 0);
  }
  // The setup's own holds go; lookups find the idle entries again.
  c.vnodes.retireShard(writer);
  c.buffers.retireShard(bufferShard);
}

void checks(Cache& c) {
  auto vs = c.vnodes.attachShard();
  auto bs = c.buffers.attachShard();
  HitHolder h{&c.vnodes, vs.get(), &c.buffers, bs.get()};
  std::vector<uint8_t> out(kBlocks * kBlock);
  CHECK(readHit(c.memory(), h, kFid, 0, static_cast<uint32_t>(out.size()), out.data()) == static_cast<int64_t>(kLength));
  CHECK(readHit(c.memory(), h, kFid, kLength + 5, 100, out.data()) == 0);  // past the end: nothing, a hit
  CHECK(readHit(c.memory(), h, Fid::make(1, 2, 3, 4), 0, 10, out.data()) == -1);  // a file not cached
  const uint64_t i = uint64_t{c.vslot} * L::kVnodeI32;
  const uint64_t h5 = uint64_t{c.slotOf[5]} * L::kHeaderI32;
  for (int32_t state : {L::kBusy, L::kValid | L::kPrefetched, 0}) {
    c.headers[h5 + L::kState] = state;
    CHECK(readHit(c.memory(), h, kFid, 5 * kBlock + 10, 10, out.data()) == -1);
    CHECK(readHit(c.memory(), h, kFid, 4 * kBlock, 10, out.data()) == 10);  // another block still hits
  }
  c.headers[h5 + L::kState] = L::kDirty;  // our unstored bytes: valid whatever the versions say
  c.versions[c.slotOf[5]] = 99;
  CHECK(readHit(c.memory(), h, kFid, 5 * kBlock, 10, out.data()) == 10);
  c.headers[h5 + L::kState] = L::kValid;  // now out of [1, 5]: not valid
  CHECK(readHit(c.memory(), h, kFid, 5 * kBlock, 10, out.data()) == -1);
  c.versions[c.slotOf[5]] = 5;
  c.vnodeI32[i + L::kBreakSeq]++;  // a callback break: the status is not current
  CHECK(readHit(c.memory(), h, kFid, 0, 10, out.data()) == -1);
  c.vnodeI32[i + L::kStatusSeq]++;
  c.vnodeI32[i + L::kWriteSeq] = 1;  // a writer holds the lock
  CHECK(readHit(c.memory(), h, kFid, 0, 10, out.data()) == -1);
  c.vnodeI32[i + L::kWriteSeq] = 2;
  CHECK(readHit(c.memory(), h, kFid, 0, 10, out.data()) == 10);
  CHECK(c.vnodes.totalRefs() == 0 && c.buffers.totalRefs() == 0);  // every hold let go
  c.vnodes.retireShard(vs);
  c.buffers.retireShard(bs);
}

// Writers rewrite blocks (and flip their states) under the write sequence while readers hit.
void race(Cache& c, uint64_t seed, uint64_t rounds) {
  const uint64_t i = uint64_t{c.vslot} * L::kVnodeI32;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    std::mt19937_64 rng(seed);
    uint32_t gen[kBlocks] = {};
    auto seq = at(c.vnodeI32, i + L::kWriteSeq);
    while (!done.load()) {
      const uint32_t b = static_cast<uint32_t>(rng() % kBlocks);
      const uint64_t hs = uint64_t{c.slotOf[b]} * L::kHeaderI32 + L::kState;
      seq.store(seq.load() | 1);  // the write lock taken
      if (rng() % 8 == 0) {
        at(c.headers, hs).store(L::kBusy);  // a fill: Busy, bytes, then valid
        fill(c, b, ++gen[b]);
        at(c.headers, hs).store(L::kValid);
      } else {
        fill(c, b, ++gen[b]);
      }
      seq.store(seq.load() + 1);  // and released
      std::this_thread::sleep_for(std::chrono::microseconds(20));  // readers get a chance
    }
  });
  std::vector<std::thread> readers;
  std::atomic<uint64_t> hits{0};
  for (int t = 0; t < 2; t++) {
    readers.emplace_back([&, t] {
      auto vs = c.vnodes.attachShard();
      auto bs = c.buffers.attachShard();
      HitHolder h{&c.vnodes, vs.get(), &c.buffers, bs.get()};
      std::mt19937_64 rng(seed + 1 + t);
      std::vector<uint8_t> out(kBlocks * kBlock);
      for (uint64_t k = 0; k < rounds; k++) {
        const uint64_t off = rng() % kLength;
        const uint32_t len = 1 + static_cast<uint32_t>(rng() % (4 * kBlock));
        const int64_t n = readHit(c.memory(), h, kFid, off, len, out.data());
        if (n < 0) continue;
        hits++;
        CHECK(static_cast<uint64_t>(n) == std::min<uint64_t>(len, kLength - off));
        // One generation per block in what was read.
        for (uint64_t p = off; p < off + static_cast<uint64_t>(n);) {
          const uint64_t b = p / kBlock, blockEnd = std::min<uint64_t>((b + 1) * kBlock, off + n);
          const uint8_t first = out[p - off];
          CHECK(((first - b * 16) & 0xff) < 256);
          for (uint64_t q = p; q < blockEnd; q++) CHECK(out[q - off] == first);
          p = blockEnd;
        }
      }
      c.vnodes.retireShard(vs);
      c.buffers.retireShard(bs);
    });
  }
  for (auto& r : readers) r.join();
  done = true;
  writer.join();
  CHECK(hits.load() > 0);
  std::printf("  %llu hits in %llu reads\n", static_cast<unsigned long long>(hits.load()),
              static_cast<unsigned long long>(2 * rounds));
}

}  // namespace

int main(int argc, char** argv) {
  auto opt = cmkit::stress::parseOptions(argc, argv, 20000, 2);
  std::printf("read_hit_test seed %llu\n", static_cast<unsigned long long>(opt.seed));
  Cache c;
  setUp(c);
  checks(c);
  race(c, opt.seed, opt.opsPerThread);
  std::printf("ok\n");
  return 0;
}
