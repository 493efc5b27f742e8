// Binding of RwLock. A lock is a 32-bit word in an Int32Array over a SharedArrayBuffer;
// every call names it by (array, index). JS does the sleeping (Atomics.wait/waitAsync on
// the same word), so no call here ever blocks.
#include <string>

#include "../core/rw_lock.h"
#include "addon_state.h"
#include "bindings.h"
#include "errors.h"

namespace cmkit::addon {

namespace {

// The lock word named by arguments 0 (array) and 1 (index), or null after throwing.
uint32_t* wordArg(const Napi::CallbackInfo& info) {
  auto words = int32ArrayArg(info, 0, "words");
  if (!words) return nullptr;
  auto index = uint32ArgFast(info, 1, "index");
  if (!index) return nullptr;
  if (*index >= words->length) {
    throwRangeError(info.Env(), "ERR_OUT_OF_RANGE",
                    "The value of \"index\" is out of range. It must be < " +
                        std::to_string(words->length));
    return nullptr;
  }
  return reinterpret_cast<uint32_t*>(words->data) + *index;
}

// The thread's ledger of what it holds in each word (see addon_state.h): every
// transition that succeeds updates it, so that the thread's exit releases what is left.
LockHolds& held(const Napi::CallbackInfo& info, uint32_t* w) { return stateOf(info.Env()).locks[w]; }

void forget(const Napi::CallbackInfo& info, uint32_t* w) {
  auto& locks = stateOf(info.Env()).locks;
  auto it = locks.find(w);
  if (it != locks.end() && it->second.reads == 0 && !it->second.write) locks.erase(it);
}

Napi::Value tryRead(const Napi::CallbackInfo& info) {
  uint32_t* w = wordArg(info);
  if (!w) return info.Env().Undefined();
  bool ok = rwlock::Word(*w).tryRead();
  if (ok) held(info, w).reads++;
  return Napi::Boolean::New(info.Env(), ok);
}

Napi::Value tryWrite(const Napi::CallbackInfo& info) {
  uint32_t* w = wordArg(info);
  if (!w) return info.Env().Undefined();
  bool ok = rwlock::Word(*w).tryWrite();
  if (ok) held(info, w).write = true;
  return Napi::Boolean::New(info.Env(), ok);
}

// Returns the value to sleep on, as the signed number Atomics.wait compares against, or
// 0 when the caller should try again at once.
Napi::Value prepareWait(const Napi::CallbackInfo& info) {
  uint32_t* w = wordArg(info);
  if (!w) return info.Env().Undefined();
  uint32_t v = rwlock::Word(*w).prepareWait(info[2].ToBoolean());
  return Napi::Number::New(info.Env(), static_cast<int32_t>(v));
}

// Releases return 1 when sleepers must be woken, 0 otherwise; or throw. `note` records
// the transition in the thread's ledger once it succeeded.
template <rwlock::Result (rwlock::Word::*kOp)()>
Napi::Value releasing(const Napi::CallbackInfo& info, const char* what, void (*note)(LockHolds&)) {
  uint32_t* w = wordArg(info);
  if (!w) return info.Env().Undefined();
  rwlock::Result r = (rwlock::Word(*w).*kOp)();
  if (r < 0) {
    throwStatus(info.Env(), static_cast<Status>(r), what);
    return info.Env().Undefined();
  }
  note(held(info, w));
  forget(info, w);
  return Napi::Number::New(info.Env(), r);
}

void dropRead(LockHolds& h) {
  if (h.reads > 0) h.reads--;
}
void dropWrite(LockHolds& h) { h.write = false; }
void writeToRead(LockHolds& h) {
  h.write = false;
  h.reads++;
}

Napi::Value releaseRead(const Napi::CallbackInfo& info) {
  return releasing<&rwlock::Word::releaseRead>(info, "RwLock.release (read)", dropRead);
}
Napi::Value releaseWrite(const Napi::CallbackInfo& info) {
  return releasing<&rwlock::Word::releaseWrite>(info, "RwLock.release (write)", dropWrite);
}
Napi::Value downgrade(const Napi::CallbackInfo& info) {
  return releasing<&rwlock::Word::downgrade>(info, "RwLock.downgrade", writeToRead);
}
Napi::Value releaseReadForUpgrade(const Napi::CallbackInfo& info) {
  return releasing<&rwlock::Word::releaseReadForUpgrade>(info, "RwLock.upgrade", dropRead);
}

// true when upgraded, false when other readers hold shares; throws when no share is held.
Napi::Value tryUpgrade(const Napi::CallbackInfo& info) {
  uint32_t* w = wordArg(info);
  if (!w) return info.Env().Undefined();
  Status s = rwlock::Word(*w).tryUpgrade();
  if (s == Status::kLockNotHeld) {
    throwStatus(info.Env(), s, "RwLock.tryUpgrade");
    return info.Env().Undefined();
  }
  if (s == Status::kOk) {
    LockHolds& h = held(info, w);
    dropRead(h);
    h.write = true;
  }
  return Napi::Boolean::New(info.Env(), s == Status::kOk);
}

}  // namespace

void initRwLock(Napi::Env env, Napi::Object exports) {
  Napi::Object l = Napi::Object::New(env);
  l.Set("tryRead", Napi::Function::New(env, tryRead, "tryRead"));
  l.Set("tryWrite", Napi::Function::New(env, tryWrite, "tryWrite"));
  l.Set("prepareWait", Napi::Function::New(env, prepareWait, "prepareWait"));
  l.Set("releaseRead", Napi::Function::New(env, releaseRead, "releaseRead"));
  l.Set("releaseWrite", Napi::Function::New(env, releaseWrite, "releaseWrite"));
  l.Set("downgrade", Napi::Function::New(env, downgrade, "downgrade"));
  l.Set("tryUpgrade", Napi::Function::New(env, tryUpgrade, "tryUpgrade"));
  l.Set("releaseReadForUpgrade",
        Napi::Function::New(env, releaseReadForUpgrade, "releaseReadForUpgrade"));
  Napi::Object bits = Napi::Object::New(env);
  bits.Set("writer", static_cast<double>(rwlock::kWriter));
  bits.Set("pending", static_cast<double>(rwlock::kPending));
  bits.Set("waiters", static_cast<double>(rwlock::kWaiters));
  bits.Set("readerMask", static_cast<double>(rwlock::kReaderMask));
  l.Set("bits", bits);
  exports.Set("rwLock", l);
}

}  // namespace cmkit::addon
