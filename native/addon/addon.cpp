// Entry point of the addon: per-thread state, shared constants, and the calls that belong
// to no one component (Fid hashing for the cross-check test, the empty call that the
// benchmark uses as its floor).
#include "../core/cache_layout.h"
#include "../core/fid.h"
#include "../core/status.h"
#include "addon_state.h"
#include "bindings.h"
#include "errors.h"

namespace cmkit::addon {

namespace {

Napi::Value fidHashCall(const Napi::CallbackInfo& info) {
  uint32_t w[4];
  static const char* const kNames[4] = {"cell", "volume", "vnode", "unique"};
  for (size_t i = 0; i < 4; i++) {
    auto v = uint32Arg(info, i, kNames[i]);
    if (!v) return info.Env().Undefined();
    w[i] = *v;
  }
  return Napi::Number::New(info.Env(), fidHash(w[0], w[1], w[2], w[3]));
}

Napi::Value threadAliveCall(const Napi::CallbackInfo& info) {
  auto token = uint32Arg(info, 0, "token");
  if (!token) return info.Env().Undefined();
  return Napi::Boolean::New(info.Env(), threadAlive(*token));
}

// The cheapest call the addon can make: the benchmark's floor for a native round trip.
Napi::Value noop(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }

Napi::Object statusCodes(Napi::Env env) {
  Napi::Object s = Napi::Object::New(env);
  s.Set("ok", static_cast<int32_t>(Status::kOk));
  s.Set("notFound", static_cast<int32_t>(Status::kNotFound));
  s.Set("tableFull", static_cast<int32_t>(Status::kTableFull));
  s.Set("notHeld", static_cast<int32_t>(Status::kNotHeld));
  s.Set("badSlot", static_cast<int32_t>(Status::kBadSlot));
  s.Set("lockNotHeld", static_cast<int32_t>(Status::kLockNotHeld));
  s.Set("wouldBlock", static_cast<int32_t>(Status::kWouldBlock));
  s.Set("badArgument", static_cast<int32_t>(Status::kBadArgument));
  s.Set("closed", static_cast<int32_t>(Status::kClosed));
  return s;
}

// The record positions and bits native code reads (core/cache_layout.h), for the test
// that src/cache/layout.ts agrees.
Napi::Object cacheLayout(Napi::Env env) {
  namespace L = cache_layout;
  Napi::Object o = Napi::Object::New(env);
  o.Set("vnodeF64", L::kVnodeF64);
  o.Set("vnodeI32", L::kVnodeI32);
  o.Set("dataVersion", L::kDataVersion);
  o.Set("bufDataVersionLow", L::kBufDataVersionLow);
  o.Set("length", L::kLength);
  o.Set("breakSeq", L::kBreakSeq);
  o.Set("statusSeq", L::kStatusSeq);
  o.Set("identity", L::kIdentity);
  o.Set("generation", L::kGeneration);
  o.Set("writeSeq", L::kWriteSeq);
  o.Set("headerI32", L::kHeaderI32);
  o.Set("state", L::kState);
  o.Set("headerIdentity", L::kHeaderIdentity);
  o.Set("valid", L::kValid);
  o.Set("dirty", L::kDirty);
  o.Set("busy", L::kBusy);
  o.Set("prefetched", L::kPrefetched);
  o.Set("storing", L::kStoring);
  return o;
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* st = new AddonState();
  env.SetInstanceData<AddonState>(st);  // Node deletes it when this thread's env goes
  Napi::Uint32Array scratch = Napi::Uint32Array::New(env, kScratchWords);
  st->scratch = scratch.Data();
  st->scratchRef = Napi::Persistent(scratch);
  exports.Set("scratch", scratch);
  exports.Set("status", statusCodes(env));
  exports.Set("cacheLayout", cacheLayout(env));
  exports.Set("fidHash", Napi::Function::New(env, fidHashCall, "fidHash"));
  exports.Set("noop", Napi::Function::New(env, noop, "noop"));
  exports.Set("threadToken", Napi::Number::New(env, st->token));
  exports.Set("threadAlive", Napi::Function::New(env, threadAliveCall, "threadAlive"));
  initRefTable(env, exports);
  initRwLock(env, exports);
  initBench(env, exports);
  initBacking(env, exports);
  initCacheFile(env, exports);
#ifdef __linux__
  cmkit::fuse::initFuse(env, exports);
#endif
  return exports;
}

}  // namespace

}  // namespace cmkit::addon

static Napi::Object initAddon(Napi::Env env, Napi::Object exports) {
  return cmkit::addon::init(env, exports);
}

NODE_API_MODULE(cmkit, initAddon)
