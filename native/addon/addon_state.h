// Per-thread state of the addon: one AddonState per Node environment (the main thread
// and each worker), owned by Node through SetInstanceData and freed when that
// environment is torn down.
//
// What is process-wide (shared by every thread) and what is not:
//   process-wide  the RefTable registry (native/addon/ref_table_binding.cpp) and the
//                 tables in it; RwLock words, which live in SharedArrayBuffers;
//   per thread    this struct: the scratch words through which JS passes a Fid without
//                 unpacking four arguments, the tables this thread has attached (with
//                 the shard that holds its references in each), and the RwLock words
//                 it holds.
//
// Why a thread keeps track of what it holds: a worker can be terminated, or can exit,
// while it holds references and locks. Node then tears down its environment and deletes
// this struct; the destructor retires the thread's shards and releases the lock modes
// its ledger lists, so the other threads carry on. The ledger keeps each word's memory
// alive (a V8 backing store), so a lock whose buffer JS already dropped is still memory
// we may write. References handed over to shared state (a cache's dirty buffers, say)
// are disowned first and are in no thread's shard.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "shared_table.h"

namespace cmkit::addon {

// Scratch layout (Uint32Array, kScratchWords long), written by src/core/native.ts:
//   [0] local table index   [1] cell   [2] volume   [3] vnode   [4] unique   [5] hash
//   [6] out: 1 when getHold created the entry, else 0
constexpr uint32_t kScratchWords = 8;
enum ScratchWord : uint32_t { kTable = 0, kCell, kVolume, kVnode, kUnique, kHash, kCreated };

// The modes this thread holds one RwLock word in, and the memory the word lives in.
struct LockHolds {
  uint32_t reads = 0;
  bool write = false;
  std::shared_ptr<void> memory;
};

struct AddonState {
  AddonState() = default;
  AddonState(const AddonState&) = delete;
  AddonState& operator=(const AddonState&) = delete;
  ~AddonState();  // retires every shard and releases every lock mode still held

  // This thread's token: unique in the process, never reused; see threadAlive().
  const uint32_t token = nextThreadToken();

  uint32_t* scratch = nullptr;
  Napi::Reference<Napi::Uint32Array> scratchRef;
  // Index = the local table index JS passes; empty once detached.
  std::vector<Attachment> tables;
  // By lock word: what this thread holds in it.
  std::unordered_map<uint32_t*, LockHolds> locks;

 private:
  static uint32_t nextThreadToken();
};

// Whether the thread that got `token` still has its environment. Shared state that names
// a thread (a buffer being fetched by it, say) is taken back once it is gone.
bool threadAlive(uint32_t token);

inline AddonState* stateOf(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<AddonState*>(data);
}

}  // namespace cmkit::addon
