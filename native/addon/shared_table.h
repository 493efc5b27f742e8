// A process-wide RefTable as the addon shares it between threads, and one thread's
// attachment to it.
#pragma once

#include <atomic>
#include <memory>

#include "../core/ref_table.h"
#include "shared_memory.h"

namespace cmkit::addon {

struct SharedTable {
  explicit SharedTable(uint32_t capacity)
      : table(capacity), index(table.index(), table.indexWords() * sizeof(int32_t)) {}
  RefTable table;
  SharedView index;  // the JS views of table.index(); each keeps this SharedTable alive

  // Closed for every thread: one word of the index, so the JS probes see it too.
  bool closed() { return flag().load(std::memory_order_seq_cst) != 0; }
  void close() { flag().store(1, std::memory_order_seq_cst); }

 private:
  std::atomic_ref<int32_t> flag() { return std::atomic_ref<int32_t>(table.index()[reftable::kClosedFlag]); }
};

// What a thread holds in a table lives in its shard, which the table owns: the thread's
// exit (or detach) retires the shard, and so releases the references, with no ledger of
// its own and nothing that GC can free first.
struct Attachment {
  std::shared_ptr<SharedTable> shared;
  std::shared_ptr<RefTable::Shard> shard;
};

}  // namespace cmkit::addon
