// Calls used only by `npm run bench`: native timings and counters that JS cannot take
// itself. Nothing here is part of the cmkit API.
#include <sys/resource.h>

#include "../core/fid_compare_timing.h"
#include "bindings.h"
#include "errors.h"

namespace cmkit::addon {

namespace {

// timeFidCompare(hashFirst: boolean, candidates, rounds) -> ns per compare
Napi::Value timeFidCompareCall(const Napi::CallbackInfo& info) {
  bool hashFirst = info[0].ToBoolean();
  auto candidates = uint32Arg(info, 1, "candidates");
  if (!candidates) return info.Env().Undefined();
  auto rounds = uint32Arg(info, 2, "rounds");
  if (!rounds) return info.Env().Undefined();
  if (*candidates == 0) {
    throwRangeError(info.Env(), "ERR_OUT_OF_RANGE", "The value of \"candidates\" must be >= 1");
    return info.Env().Undefined();
  }
  double ns = timeFidCompare(hashFirst ? FidCompare::kHashFirst : FidCompare::kFieldByField, *candidates, *rounds);
  return Napi::Number::New(info.Env(), ns);
}

// Voluntary context switches of the calling thread so far (Linux RUSAGE_THREAD).
Napi::Value threadVoluntarySwitches(const Napi::CallbackInfo& info) {
  struct rusage ru {};
  if (getrusage(RUSAGE_THREAD, &ru) != 0) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), static_cast<double>(ru.ru_nvcsw));
}

}  // namespace

void initBench(Napi::Env env, Napi::Object exports) {
  Napi::Object b = Napi::Object::New(env);
  b.Set("timeFidCompare", Napi::Function::New(env, timeFidCompareCall, "timeFidCompare"));
  b.Set("threadVoluntarySwitches", Napi::Function::New(env, threadVoluntarySwitches, "threadVoluntarySwitches"));
  exports.Set("bench", b);
}

}  // namespace cmkit::addon
