// Per-thread state of the addon: one AddonState per Node environment (the main thread
// and each worker), owned by Node through SetInstanceData and freed when that
// environment is torn down.
//
// What is process-wide (shared by every thread) and what is not:
//   process-wide  the RefTable registry (native/addon/ref_table_binding.cpp) and the
//                 tables in it; RwLock words, which live in SharedArrayBuffers;
//   per thread    this struct: the scratch words through which JS passes a Fid without
//                 unpacking four arguments, the tables this thread has attached, and
//                 what this thread holds in them and in RwLock words.
//
// Why a thread keeps a ledger of what it holds: a worker can be terminated, or can
// exit, while it holds references and locks. Node then tears down its environment and
// deletes this struct; the destructor releases whatever the ledger still lists, so the
// other threads carry on. References handed over to shared state (a cache's dirty
// buffers, say) are disowned first and are not in any thread's ledger.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

namespace cmkit::addon {

struct SharedTable;

// Scratch layout (Uint32Array, kScratchWords long), written by src/core/native.ts:
//   [0] local table index   [1] cell   [2] volume   [3] vnode   [4] unique   [5] hash
//   [6] out: 1 when getHold created the entry, else 0
constexpr uint32_t kScratchWords = 8;
enum ScratchWord : uint32_t { kTable = 0, kCell, kVolume, kVnode, kUnique, kHash, kCreated };

// The modes this thread holds one RwLock word in.
struct LockHolds {
  uint32_t reads = 0;
  bool write = false;
};

struct AddonState {
  AddonState() = default;
  AddonState(const AddonState&) = delete;
  AddonState& operator=(const AddonState&) = delete;
  ~AddonState();  // releases every hold still in the ledgers

  // This thread's token: unique in the process, never reused; see threadAlive().
  const uint32_t token = nextThreadToken();

  uint32_t* scratch = nullptr;
  Napi::Reference<Napi::Uint32Array> scratchRef;
  // Index = the local table index JS passes; null once detached.
  std::vector<std::shared_ptr<SharedTable>> tables;
  // Parallel to `tables`: this thread's references by slot, sized on first use.
  std::vector<std::vector<int32_t>> holds;
  // By lock word: what this thread holds in it.
  std::unordered_map<uint32_t*, LockHolds> locks;

  // Releases this thread's references in table `local` (on detach and at teardown).
  void releaseHolds(size_t local);

 private:
  static uint32_t nextThreadToken();
};

// Whether the thread that got `token` still has its environment. Shared state that names
// a thread (a buffer being fetched by it, say) is taken back once it is gone.
bool threadAlive(uint32_t token);

inline AddonState& stateOf(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }

}  // namespace cmkit::addon
