// An asymmetric fence: readers on the hot path pay only a compiler barrier, and the rare
// writer pays for both sides with Linux's membarrier(2) (MEMBARRIER_CMD_PRIVATE_EXPEDITED),
// which runs a full memory barrier on every CPU that runs a thread of this process before
// it returns. The same device as liburcu's and folly's asymmetric fences.
//
// Why: a RefTable reader must order its count store before its seq load (a store-load
// order, the one the hardware does not keep by itself). From JS the only way to ask for
// it is an Atomics operation, which costs ~6-10 ns each in Node 20 (a builtin call, not
// an inlined instruction) and would double the cost of a hit. With heavyFence() on the
// writer's side between its seq store and its count loads, either the reader's count
// store was visible before the barrier ran on its CPU (the writer sees it), or the
// reader's seq load runs after that barrier (it sees the writer's seq).
#pragma once

namespace cmkit {

// Whether heavyFence() is the membarrier one, so readers may use plain stores and loads.
// Registers the process for it on the first call. False where the kernel lacks it (older
// than 4.14, or a sandbox that filters it): then readers must use full fences.
bool asymmetricFenceAvailable();

// The writer's side, after a seq_cst operation of its own: a membarrier when available,
// else nothing more.
void heavyFence();

}  // namespace cmkit
