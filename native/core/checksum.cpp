#include "checksum.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace cmkit {

void blockChecksums(const uint8_t* data, size_t blockSize, const int32_t* slots, const uint32_t* seeds, uint32_t* out,
                    size_t n, unsigned threads) {
  auto run = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; i++) out[i] = blockChecksum(data + static_cast<size_t>(slots[i]) * blockSize, blockSize, seeds[i]);
  };
  // Below ~4 MiB a thread's start costs more than it saves.
  size_t perThread = (4u << 20) / blockSize + 1;
  size_t parts = std::min<size_t>(threads == 0 ? 1 : threads, (n + perThread - 1) / perThread);
  if (parts <= 1) {
    run(0, n);
    return;
  }
  std::vector<std::thread> helpers;
  size_t step = (n + parts - 1) / parts;
  for (size_t k = 1; k < parts; k++) helpers.emplace_back(run, k * step, std::min(n, (k + 1) * step));
  run(0, std::min(n, step));
  for (auto& t : helpers) t.join();
}

}  // namespace cmkit
