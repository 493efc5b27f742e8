// A process-wide RefTable as the addon shares it between threads.
#pragma once

#include <atomic>

#include "../core/ref_table.h"

namespace cmkit::addon {

struct SharedTable {
  explicit SharedTable(uint32_t capacity) : table(capacity) {}
  RefTable table;
  std::atomic<bool> closed{false};
};

}  // namespace cmkit::addon
