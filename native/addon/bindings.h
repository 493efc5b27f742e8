// Each binding file adds its functions to the addon's exports.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>

namespace cmkit::addon {

struct SharedTable;
// The open RefTable with this id (ref_table_binding.cpp), or nullptr.
std::shared_ptr<SharedTable> findSharedTable(uint32_t id);

void initRefTable(Napi::Env env, Napi::Object exports);
void initRwLock(Napi::Env env, Napi::Object exports);
void initBench(Napi::Env env, Napi::Object exports);
void initBacking(Napi::Env env, Napi::Object exports);
void initCacheFile(Napi::Env env, Napi::Object exports);

}  // namespace cmkit::addon

namespace cmkit::fuse {
// The FUSE session (native/fuse/fuse_binding.cpp), on Linux: exports.fuse.
void initFuse(Napi::Env env, Napi::Object exports);
}  // namespace cmkit::fuse
