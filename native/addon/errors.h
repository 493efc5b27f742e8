// The one place where core status codes and bad arguments become JS errors. Every error
// carries a string `code`; the JS facade (src/core/errors.ts) documents them.
#pragma once

#include <napi.h>

#include <cstdint>
#include <optional>

#include "../core/status.h"

namespace cmkit::addon {

// Throws the JS error for a non-OK status. `what` names the operation, e.g.
// "RefTable.release".
void throwStatus(Napi::Env env, Status status, const char* what);

void throwTypeError(Napi::Env env, const char* code, const std::string& message);
void throwRangeError(Napi::Env env, const char* code, const std::string& message);

// Argument readers: each returns nullopt after throwing a TypeError or RangeError that
// names the argument.
std::optional<uint32_t> uint32Arg(const Napi::CallbackInfo& info, size_t i, const char* name);


// A typed array argument of one type, by one Node-API call: its data and length.
template <typename T>
struct TypedArg {
  T* data;
  size_t length;
};
std::optional<TypedArg<uint32_t>> uint32ArrayArg(const Napi::CallbackInfo& info, size_t i,
                                                 const char* name);
std::optional<TypedArg<int32_t>> int32ArrayArg(const Napi::CallbackInfo& info, size_t i,
                                               const char* name);

}  // namespace cmkit::addon
