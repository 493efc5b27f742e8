// Binding of MappedFile (native/core/cache_file.h) and of the block checksum: a cache
// file's regions as SharedArrayBuffers, every one over the same shared mapping, so that
// each worker's views (structured-cloned SharedArrayBuffers share their backing store)
// and Atomics.wait on their words all meet in one place. Node-API cannot make a
// SharedArrayBuffer over memory it did not allocate; V8's API can (shared_memory.h),
// which needs V8's sandbox off, as it is in Node 20-24's builds.
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <thread>

#include "../core/cache_file.h"
#include "../core/checksum.h"
#include "bindings.h"
#include "errors.h"
#include "shared_memory.h"

namespace cmkit::addon {

namespace {

// map(path, bytes, regions: Float64Array of [offset, length] pairs) -> [unlock, willNeed,
// ...SharedArrayBuffers over those regions of the file], or a positive errno
// (EWOULDBLOCK: another process has the file; EINVAL: the file is another size).
// unlock() lets the file go (MappedFile::unlock); willNeed(offset, length) starts the
// kernel reading that part of the file in (MADV_WILLNEED), so that touching it later
// does not wait for the disk. Neither keeps the mapping alive.
Napi::Value map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throwTypeError(env, "ERR_INVALID_ARG_TYPE", "cacheFile.map(path: string, bytes: number, regions: Float64Array)");
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  double bytes = info[1].As<Napi::Number>().DoubleValue();
  Napi::Float64Array regions = info[2].As<Napi::Float64Array>();
  if (!(bytes > 0) || bytes != std::floor(bytes) || bytes > 9007199254740991.0 || regions.ElementLength() % 2 != 0 ||
      path.find('\0') != std::string::npos) {
    throwRangeError(env, "ERR_OUT_OF_RANGE", "cacheFile.map: bad size, regions or path");
    return env.Undefined();
  }
  for (size_t i = 0; i < regions.ElementLength(); i += 2) {
    double off = regions[i], len = regions[i + 1];
    if (!(off >= 0) || !(len > 0) || off + len > bytes || off != std::floor(off) || len != std::floor(len)) {
      throwRangeError(env, "ERR_OUT_OF_RANGE", "cacheFile.map: a region outside the file");
      return env.Undefined();
    }
  }
  std::shared_ptr<MappedFile> file;
  int err = MappedFile::open(path.c_str(), static_cast<size_t>(bytes), &file);
  if (err != 0) return Napi::Number::New(env, err);
  Napi::Array out = Napi::Array::New(env, regions.ElementLength() / 2 + 2);
  std::weak_ptr<MappedFile> weak = file;
  out.Set(0u, Napi::Function::New(env, [weak](const Napi::CallbackInfo& info) {
    if (auto f = weak.lock()) f->unlock();
    return info.Env().Undefined();
  }, "unlock"));
  out.Set(1u, Napi::Function::New(env, [weak](const Napi::CallbackInfo& info) {
    auto f = weak.lock();
    if (!f || info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) return info.Env().Undefined();
    double off = info[0].As<Napi::Number>().DoubleValue(), len = info[1].As<Napi::Number>().DoubleValue();
    if (off >= 0 && len > 0) f->advise(static_cast<size_t>(off), static_cast<size_t>(len), MADV_WILLNEED);
    return info.Env().Undefined();
  }, "willNeed"));
  for (size_t i = 0; i < regions.ElementLength(); i += 2) {
    SharedView view(file->data() + static_cast<size_t>(regions[i]), static_cast<size_t>(regions[i + 1]));
    napi_value sab = view.make(env, file);
    if (sab == nullptr) {
      throwRangeError(env, "ERR_CMKIT_MAP", "cacheFile.map: V8 refused a SharedArrayBuffer over the file");
      return env.Undefined();
    }
    out.Set(static_cast<uint32_t>(i / 2 + 2), Napi::Value(env, sab));
  }
  return out;
}

// checksum(bytes: Uint8Array, offset, length, seed) -> uint32. Arguments are trusted to
// be in range by the one caller (src/cache/cache-file.ts checks them once per cache).
Napi::Value checksum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsTypedArray()) {
    throwTypeError(env, "ERR_INVALID_ARG_TYPE", "checksum(bytes: Uint8Array, offset, length, seed)");
    return env.Undefined();
  }
  Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
  double off = info[1].As<Napi::Number>().DoubleValue();
  double len = info[2].As<Napi::Number>().DoubleValue();
  if (!(off >= 0) || !(len >= 0) || off + len > static_cast<double>(a.ByteLength())) {
    throwRangeError(env, "ERR_OUT_OF_RANGE", "checksum: a range outside the array");
    return env.Undefined();
  }
  uint32_t seed = info[3].As<Napi::Number>().Uint32Value();
  return Napi::Number::New(env, blockChecksum(a.Data() + static_cast<size_t>(off), static_cast<size_t>(len), seed));
}

// checksums(data: Uint8Array, blockSize, slots: Int32Array, seeds: Uint32Array, out:
// Uint32Array): blockChecksums over the machine's cores (at most 4).
Napi::Value checksums(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsTypedArray() || !info[1].IsNumber()) {
    throwTypeError(env, "ERR_INVALID_ARG_TYPE", "checksums(data: Uint8Array, blockSize, slots: Int32Array, seeds: Uint32Array, out: Uint32Array)");
    return env.Undefined();
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  uint32_t blockSize = info[1].As<Napi::Number>().Uint32Value();
  auto slots = int32ArrayArg(info, 2, "slots");
  if (!slots) return env.Undefined();
  auto seeds = uint32ArrayArg(info, 3, "seeds");
  if (!seeds) return env.Undefined();
  auto out = uint32ArrayArg(info, 4, "out");
  if (!out) return env.Undefined();
  if (blockSize == 0 || seeds->length != slots->length || out->length != slots->length) {
    throwRangeError(env, "ERR_OUT_OF_RANGE", "checksums: slots, seeds and out must be as long as each other");
    return env.Undefined();
  }
  size_t blocks = data.ByteLength() / blockSize;
  for (size_t i = 0; i < slots->length; i++) {
    if (slots->data[i] < 0 || static_cast<size_t>(slots->data[i]) >= blocks) {
      throwRangeError(env, "ERR_OUT_OF_RANGE", "checksums: a slot outside the data");
      return env.Undefined();
    }
  }
  unsigned threads = std::min(4u, std::max(1u, std::thread::hardware_concurrency()));
  blockChecksums(data.Data(), blockSize, slots->data, seeds->data, out->data, slots->length, threads);
  return env.Undefined();
}

}  // namespace

void initCacheFile(Napi::Env env, Napi::Object exports) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("map", Napi::Function::New(env, map, "map"));
  c.Set("checksum", Napi::Function::New(env, checksum, "checksum"));
  c.Set("checksums", Napi::Function::New(env, checksums, "checksums"));
  exports.Set("cacheFile", c);
}

}  // namespace cmkit::addon
