// Hot calls: the bindings JS calls on every lookup, release and lock transition.
//
// They use raw Node-API, and only calls that cannot fail while the environment is being
// torn down (reading arguments, making a number): no coercion, no property writes, and
// never a JS error. A worker can be terminated at any instant, and creating an error in
// a terminating environment aborts the whole process. So a hot call returns a number,
// a result >= 0 or a negative Status, and the JS facade turns a Status into an error
// (src/core/status-error.ts), where it can still run at all.
#pragma once

#include <node_api.h>

#include <cstdint>

#include "../core/status.h"

namespace cmkit::addon {

template <size_t N>
struct HotArgs {
  napi_value argv[N];
  size_t argc = N;
};

// Reads up to N arguments; missing ones are undefined.
template <size_t N>
inline bool hotArgs(napi_env env, napi_callback_info info, HotArgs<N>* a) {
  return napi_get_cb_info(env, info, &a->argc, a->argv, nullptr, nullptr) == napi_ok;
}

inline napi_value hotInt(napi_env env, int32_t v) {
  napi_value r = nullptr;
  napi_create_int32(env, v, &r);
  return r;
}

inline napi_value hotStatus(napi_env env, Status s) { return hotInt(env, static_cast<int32_t>(s)); }

inline bool hotUint32(napi_env env, napi_value v, uint32_t* out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

// Adds a hot call to `target` (at load time; no wrapper object, no C++ exceptions).
inline void setHot(napi_env env, napi_value target, const char* name, napi_callback cb) {
  napi_value fn = nullptr;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn) == napi_ok) {
    napi_set_named_property(env, target, name, fn);
  }
}

}  // namespace cmkit::addon
