// The two things Node-API cannot do with shared memory, done with V8's API:
//   - give JS a SharedArrayBuffer over memory the addon owns (a RefTable's index and
//     each holder's counts), kept alive for as long as any such view exists;
//   - keep the memory of a JS (Shared)ArrayBuffer alive after JS has dropped it (the
//     lock words a thread's ledger still holds when the thread exits).
// Both hold V8 backing stores, which are reference counted across isolates, so neither
// depends on the order in which Node tears an environment down.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <memory>
#include <mutex>

namespace cmkit::addon {

// Memory the addon owns, shown to JS as SharedArrayBuffers. Every view made from one
// SharedView shares a single backing store (V8 takes a raw pointer only once); `owner`
// stays alive until the last view is gone.
class SharedView {
 public:
  SharedView(void* data, size_t bytes) : data_(data), bytes_(bytes) {}
  // A new SharedArrayBuffer over the memory, or null if V8 could not make one.
  napi_value make(napi_env env, const std::shared_ptr<void>& owner);

 private:
  void* const data_;
  const size_t bytes_;
  std::mutex mutex_;
  std::weak_ptr<void> store_;  // the backing store while any view lives
};

// Keeps the memory of `buffer` (an ArrayBuffer or SharedArrayBuffer) alive while the
// result lives; null for anything else.
std::shared_ptr<void> keepMemory(napi_value buffer);

}  // namespace cmkit::addon
