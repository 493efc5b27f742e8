#include "shared_memory.h"

#include <v8.h>

#include <cstring>

namespace cmkit::addon {

namespace {

// A napi_value is a V8 local handle under another name (Node's own conversion copies
// the bits); the two conversions below are the only place the addon relies on that.
v8::Local<v8::Value> toV8(napi_value v) {
  v8::Local<v8::Value> local;
  static_assert(sizeof(local) == sizeof(v));
  std::memcpy(static_cast<void*>(&local), &v, sizeof(v));
  return local;
}

napi_value toNapi(v8::Local<v8::Value> local) {
  napi_value v;
  std::memcpy(&v, static_cast<void*>(&local), sizeof(v));
  return v;
}

void dropOwner(void*, size_t, void* owner) { delete static_cast<std::shared_ptr<void>*>(owner); }

}  // namespace

napi_value SharedView::make(napi_env, const std::shared_ptr<void>& owner) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  std::shared_ptr<v8::BackingStore> store;
  {
    std::lock_guard<std::mutex> g(mutex_);
    store = std::static_pointer_cast<v8::BackingStore>(store_.lock());
    if (!store) {
      // V8 may destroy the store on any thread; the deleter only drops our reference.
      store = v8::SharedArrayBuffer::NewBackingStore(data_, bytes_, dropOwner, new std::shared_ptr<void>(owner));
      store_ = store;
    }
  }
  return toNapi(v8::SharedArrayBuffer::New(isolate, store));
}

std::shared_ptr<void> keepMemory(napi_value buffer) {
  v8::Local<v8::Value> v = toV8(buffer);
  if (v.IsEmpty()) return nullptr;
  if (v->IsSharedArrayBuffer()) return v.As<v8::SharedArrayBuffer>()->GetBackingStore();
  if (v->IsArrayBuffer()) return v.As<v8::ArrayBuffer>()->GetBackingStore();
  return nullptr;
}

}  // namespace cmkit::addon
