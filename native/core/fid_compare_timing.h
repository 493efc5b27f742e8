// Times Fid comparison the way a hash-chain walk does it: one probe against a run of
// candidates from the same cell and volume with sequential vnodes, none of them equal
// until the last. For the benchmark (row B3); no Node headers.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "fid.h"

namespace cmkit {

enum class FidCompare { kHashFirst, kFieldByField };

// Nanoseconds per comparison, over `rounds` walks of `candidates`.
inline double timeFidCompare(FidCompare mode, uint32_t candidates, uint32_t rounds) {
  std::vector<Fid> chain;
  chain.reserve(candidates);
  for (uint32_t v = 1; v <= candidates; v++) chain.push_back(Fid::make(1, 536870915, v, 1));
  uint64_t matches = 0;
  auto start = std::chrono::steady_clock::now();
  for (uint32_t r = 0; r < rounds; r++) {
    // The probe changes each round so the compiler cannot hoist the walk.
    const Fid probe = chain[r % candidates];
    for (const Fid& f : chain) {
      bool eq = mode == FidCompare::kHashFirst ? f == probe : equalFieldByField(f, probe);
      matches += eq ? 1 : 0;
    }
    asm volatile("" : : "r"(matches) : "memory");
  }
  auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  if (matches != rounds) return -1;  // each walk finds its probe exactly once
  return ns / (double(candidates) * rounds);
}

}  // namespace cmkit
