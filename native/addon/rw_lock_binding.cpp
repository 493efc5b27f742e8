// Binding of RwLock. A lock is a 32-bit word in an Int32Array over a SharedArrayBuffer;
// every call names it by (array, index). JS does the sleeping (Atomics.wait/waitAsync on
// the same word), so no call here ever blocks. Every call is a hot call (hot_call.h): it
// returns a number and never throws, so a worker terminated in the middle of one is
// never asked to make an error.
#include "../core/rw_lock.h"
#include "addon_state.h"
#include "bindings.h"
#include "hot_call.h"
#include "shared_memory.h"

namespace cmkit::addon {

namespace {

struct WordArg {
  uint32_t* word = nullptr;
  napi_value buffer = nullptr;  // the array's buffer, for the ledger to keep alive
};

// The lock word named by arguments 0 (array) and 1 (index); false for anything else.
// argv[2], when present, is left for the caller.
bool wordArg(napi_env env, napi_callback_info info, WordArg* out, napi_value* extra = nullptr) {
  HotArgs<3> args;
  if (!hotArgs(env, info, &args) || args.argc < 2) return false;
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, args.argv[0], &type, &length, &data, &out->buffer, &offset) != napi_ok ||
      type != napi_int32_array) {
    return false;
  }
  uint32_t index = 0;
  if (!hotUint32(env, args.argv[1], &index) || index >= length) return false;
  out->word = static_cast<uint32_t*>(data) + index;
  if (extra != nullptr) *extra = args.argc > 2 ? args.argv[2] : nullptr;
  return true;
}

// The thread's ledger of what it holds in each word (see addon_state.h): every
// transition that succeeds updates it, so that the thread's exit releases what is left.
// A word's first entry takes a reference to its buffer's memory.
LockHolds* held(napi_env env, const WordArg& w) {
  AddonState* st = stateOf(env);
  if (st == nullptr) return nullptr;
  LockHolds& h = st->locks[w.word];
  if (!h.memory) h.memory = keepMemory(w.buffer);
  return &h;
}

void forget(napi_env env, uint32_t* word) {
  AddonState* st = stateOf(env);
  if (st == nullptr) return;
  auto it = st->locks.find(word);
  if (it != st->locks.end() && it->second.reads == 0 && !it->second.write) st->locks.erase(it);
}

// tryRead, tryWrite: 1 when taken, 0 when not; kBadArgument.
template <bool kWrite>
napi_value tryTake(napi_env env, napi_callback_info info) {
  WordArg w;
  if (!wordArg(env, info, &w)) return hotStatus(env, Status::kBadArgument);
  rwlock::Word word(*w.word);
  bool ok = kWrite ? word.tryWrite() : word.tryRead();
  if (ok) {
    LockHolds* h = held(env, w);
    if (h != nullptr) {
      if (kWrite) h->write = true;
      else h->reads++;
    }
  }
  return hotInt(env, ok ? 1 : 0);
}

// prepareWait(words, index, forWrite): the value to sleep on, as the signed number
// Atomics.wait compares against, or 0 when the caller should try again at once (also for
// bad arguments: the try that follows reports them).
napi_value prepareWait(napi_env env, napi_callback_info info) {
  WordArg w;
  napi_value forWriteArg = nullptr;
  if (!wordArg(env, info, &w, &forWriteArg)) return hotInt(env, 0);
  bool forWrite = false;
  if (forWriteArg != nullptr) napi_get_value_bool(env, forWriteArg, &forWrite);
  return hotInt(env, static_cast<int32_t>(rwlock::Word(*w.word).prepareWait(forWrite)));
}

// Releases return 1 when sleepers must be woken, 0 otherwise, or a negative Status.
// `note` records the transition in the thread's ledger once it succeeded.
template <rwlock::Result (rwlock::Word::*kOp)(), void (*kNote)(LockHolds&)>
napi_value releasing(napi_env env, napi_callback_info info) {
  WordArg w;
  if (!wordArg(env, info, &w)) return hotStatus(env, Status::kBadArgument);
  rwlock::Result r = (rwlock::Word(*w.word).*kOp)();
  if (r >= 0) {
    if (LockHolds* h = held(env, w)) kNote(*h);
    forget(env, w.word);
  }
  return hotInt(env, r);
}

void dropRead(LockHolds& h) {
  if (h.reads > 0) h.reads--;
}
void dropWrite(LockHolds& h) { h.write = false; }
void writeToRead(LockHolds& h) {
  h.write = false;
  h.reads++;
}
void readToWrite(LockHolds& h) {
  dropRead(h);
  h.write = true;
}

// 1 when upgraded, 0 when other readers hold shares, kLockNotHeld when no share is held.
napi_value tryUpgrade(napi_env env, napi_callback_info info) {
  WordArg w;
  if (!wordArg(env, info, &w)) return hotStatus(env, Status::kBadArgument);
  Status s = rwlock::Word(*w.word).tryUpgrade();
  if (s == Status::kOk) {
    if (LockHolds* h = held(env, w)) readToWrite(*h);
    return hotInt(env, 1);
  }
  return s == Status::kWouldBlock ? hotInt(env, 0) : hotStatus(env, s);
}

}  // namespace

void initRwLock(Napi::Env env, Napi::Object exports) {
  Napi::Object l = Napi::Object::New(env);
  setHot(env, l, "tryRead", tryTake<false>);
  setHot(env, l, "tryWrite", tryTake<true>);
  setHot(env, l, "prepareWait", prepareWait);
  setHot(env, l, "releaseRead", releasing<&rwlock::Word::releaseRead, dropRead>);
  setHot(env, l, "releaseWrite", releasing<&rwlock::Word::releaseWrite, dropWrite>);
  setHot(env, l, "downgrade", releasing<&rwlock::Word::downgrade, writeToRead>);
  setHot(env, l, "tryUpgrade", tryUpgrade);
  setHot(env, l, "releaseReadForUpgrade", releasing<&rwlock::Word::releaseReadForUpgrade, dropRead>);
  Napi::Object bits = Napi::Object::New(env);
  bits.Set("writer", static_cast<double>(rwlock::kWriter));
  bits.Set("pending", static_cast<double>(rwlock::kPending));
  bits.Set("waiters", static_cast<double>(rwlock::kWaiters));
  bits.Set("readerMask", static_cast<double>(rwlock::kReaderMask));
  l.Set("bits", bits);
  exports.Set("rwLock", l);
}

}  // namespace cmkit::addon
