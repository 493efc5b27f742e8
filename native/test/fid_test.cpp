// Fid: the hash is the one JS computes, equality agrees with field-by-field comparison,
// and sequential vnodes spread evenly over power-of-two buckets.
#include "../core/fid.h"

#include <cstdio>
#include <vector>

#include "stress.h"

using cmkit::Fid;

int main(int argc, char** argv) {
  auto opt = cmkit::stress::parseOptions(argc, argv, 1000000, 1);
  std::printf("fid_test seed=%llu\n", static_cast<unsigned long long>(opt.seed));

  // Pinned values; test/core-fid.test.ts pins the same ones for the JS implementation.
  CHECK(cmkit::fidHash(1, 2, 3, 4) == 1145416960u);
  CHECK(cmkit::fidHash(0, 0, 0, 0) == Fid{}.hash);

  std::mt19937_64 rng(opt.seed);
  uint64_t ops = 0;
  for (uint64_t i = 0; i < opt.opsPerThread; i++, ops++) {
    // Small field values so that equal Fids occur often.
    auto field = [&] { return static_cast<uint32_t>(rng() % 3); };
    Fid a = Fid::make(field(), field(), field(), field());
    Fid b = Fid::make(field(), field(), field(), field());
    CHECK((a == b) == cmkit::equalFieldByField(a, b));
  }

  // Sequential vnodes of one volume into 2^12 buckets: chi-square near its mean (the
  // number of buckets - 1) for a uniform spread.
  constexpr uint32_t kBuckets = 1u << 12, kKeys = kBuckets * 16;
  std::vector<uint32_t> count(kBuckets);
  for (uint32_t v = 1; v <= kKeys; v++) count[Fid::make(1, 536870915, v, 1).hash & (kBuckets - 1)]++;
  double expected = double(kKeys) / kBuckets, chi = 0;
  for (uint32_t c : count) chi += (c - expected) * (c - expected) / expected;
  std::printf("fid_test chi-square %.0f for %u buckets (uniform: about %u)\n", chi, kBuckets, kBuckets - 1);
  CHECK(chi < 1.1 * (kBuckets - 1));

  std::printf("fid_test ok ops=%llu\n", static_cast<unsigned long long>(ops));
  return 0;
}
