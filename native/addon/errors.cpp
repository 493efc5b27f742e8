#include "errors.h"

#include <cmath>
#include <string>

namespace cmkit::addon {

namespace {

using MakeError = napi_status (*)(napi_env, napi_value, napi_value, napi_value*);

// In raw Node-API, giving up quietly at the first step that fails: a worker being
// terminated cannot take an exception, and asking it to make one through the C++
// wrapper would abort the process.
void throwWithCode(napi_env env, MakeError make, const char* code, const std::string& message) {
  napi_value codeValue = nullptr, text = nullptr, error = nullptr;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &codeValue) != napi_ok) return;
  if (napi_create_string_utf8(env, message.data(), message.size(), &text) != napi_ok) return;
  if (make(env, codeValue, text, &error) != napi_ok) return;
  napi_throw(env, error);
}

}  // namespace

void throwTypeError(Napi::Env env, const char* code, const std::string& message) {
  throwWithCode(env, napi_create_type_error, code, message);
}

void throwRangeError(Napi::Env env, const char* code, const std::string& message) {
  throwWithCode(env, napi_create_range_error, code, message);
}

void throwStatus(Napi::Env env, Status status, const char* what) {
  std::string op(what);
  switch (status) {
    case Status::kOk:
      return;
    case Status::kNotFound:
      return throwRangeError(env, "ERR_CMKIT_NOT_FOUND", op + ": no entry for that fid");
    case Status::kTableFull:
      return throwWithCode(env, napi_create_error, "ERR_CMKIT_TABLE_FULL",
                           op + ": every entry is held; nothing can be recycled");
    case Status::kNotHeld:
      return throwRangeError(env, "ERR_CMKIT_NOT_HELD",
                             op + ": the entry's refCount is zero (release without hold)");
    case Status::kBadSlot:
      return throwRangeError(env, "ERR_CMKIT_BAD_SLOT", op + ": slot is not a used entry");
    case Status::kLockNotHeld:
      return throwRangeError(env, "ERR_CMKIT_LOCK_NOT_HELD",
                             op + ": the lock is not held in that mode");
    case Status::kWouldBlock:
      return throwWithCode(env, napi_create_error, "ERR_CMKIT_WOULD_BLOCK", op + ": the lock is taken");
    case Status::kBadArgument:
      return throwWithCode(env, napi_create_type_error, "ERR_INVALID_ARG_TYPE", op + ": an argument of the wrong type");
    case Status::kClosed:
      return throwWithCode(env, napi_create_type_error, "ERR_CMKIT_CLOSED", op + ": the RefTable is closed");
  }
  throwWithCode(env, napi_create_error, "ERR_CMKIT_INTERNAL", op + ": unknown status");
}

std::optional<uint32_t> uint32Arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) {
    throwTypeError(info.Env(), "ERR_INVALID_ARG_TYPE",
                   std::string("The \"") + name + "\" argument must be of type number");
    return std::nullopt;
  }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || std::trunc(d) != d) {
    throwRangeError(info.Env(), "ERR_OUT_OF_RANGE",
                    std::string("The value of \"") + name +
                        "\" is out of range. It must be an integer >= 0 and <= 4294967295");
    return std::nullopt;
  }
  return static_cast<uint32_t>(d);
}

template <typename T, napi_typedarray_type kType>
static std::optional<TypedArg<T>> typedArrayArg(const Napi::CallbackInfo& info, size_t i,
                                                const char* name, const char* typeName) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(info.Env(), info[i], &type, &length, &data, nullptr, nullptr) !=
          napi_ok ||
      type != kType) {
    throwTypeError(info.Env(), "ERR_INVALID_ARG_TYPE",
                   std::string("The \"") + name + "\" argument must be an instance of " +
                       typeName);
    return std::nullopt;
  }
  return TypedArg<T>{static_cast<T*>(data), length};
}

std::optional<TypedArg<uint32_t>> uint32ArrayArg(const Napi::CallbackInfo& info, size_t i,
                                                 const char* name) {
  return typedArrayArg<uint32_t, napi_uint32_array>(info, i, name, "Uint32Array");
}

std::optional<TypedArg<int32_t>> int32ArrayArg(const Napi::CallbackInfo& info, size_t i,
                                               const char* name) {
  return typedArrayArg<int32_t, napi_int32_array>(info, i, name, "Int32Array");
}

}  // namespace cmkit::addon
