// Per-thread state of the addon: one AddonState per Node environment (the main thread
// and each worker), owned by Node through SetInstanceData and freed when that
// environment is torn down.
//
// What is process-wide (shared by every thread) and what is not:
//   process-wide  the RefTable registry (native/addon/ref_table_binding.cpp) and the
//                 tables in it; RwLock words, which live in SharedArrayBuffers;
//   per thread    this struct: the scratch words through which JS passes a Fid without
//                 unpacking four arguments, and the tables this thread has attached.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace cmkit::addon {

struct SharedTable;

// Scratch layout (Uint32Array, kScratchWords long), written by src/core/native.ts:
//   [0] local table index   [1] cell   [2] volume   [3] vnode   [4] unique   [5] hash
//   [6] out: 1 when getHold created the entry, else 0
constexpr uint32_t kScratchWords = 8;
enum ScratchWord : uint32_t { kTable = 0, kCell, kVolume, kVnode, kUnique, kHash, kCreated };

struct AddonState {
  uint32_t* scratch = nullptr;
  Napi::Reference<Napi::Uint32Array> scratchRef;
  // Index = the local table index JS passes; null once detached.
  std::vector<std::shared_ptr<SharedTable>> tables;
};

inline AddonState& stateOf(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }

}  // namespace cmkit::addon
