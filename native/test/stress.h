// Helpers shared by the standalone stress tests: seeded randomness, a CHECK that works
// in release builds, and argument parsing. No Node headers.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

namespace cmkit::stress {

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

struct Options {
  uint64_t seed;
  uint64_t opsPerThread;
  unsigned threads;
};

// argv: [seed] [opsPerThread] [threads]. A run prints its seed; pass it back to replay
// the same per-thread operation streams (the interleaving still varies).
inline Options parseOptions(int argc, char** argv, uint64_t defaultOps, unsigned defaultThreads) {
  Options o{std::random_device{}(), defaultOps, defaultThreads};
  if (argc > 1) o.seed = std::strtoull(argv[1], nullptr, 10);
  if (argc > 2) o.opsPerThread = std::strtoull(argv[2], nullptr, 10);
  if (argc > 3) o.threads = static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10));
  return o;
}

}  // namespace cmkit::stress
