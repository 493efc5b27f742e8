// Binding of RefTable. Tables are process-wide: created once, registered under a numeric
// id that any thread can attach to. Each thread keeps its attached tables in its
// AddonState, by a small local index that JS writes into scratch word kTable, so the hot
// calls (findHold, release) unpack at most one argument.
#include <mutex>
#include <string>
#include <unordered_map>

#include "../core/ref_table.h"
#include "addon_state.h"
#include "bindings.h"
#include "errors.h"
#include "shared_table.h"

namespace cmkit::addon {

namespace {

// The process-wide registry. Ids are never reused, so a stale descriptor names nothing
// rather than some other table.
struct Registry {
  std::mutex mutex;
  std::unordered_map<uint32_t, std::shared_ptr<SharedTable>> tables;
  uint32_t nextId = 1;
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: threads may outlive main's exit
  return *r;
}

void throwClosed(Napi::Env env, const char* what) {
  throwTypeError(env, "ERR_CMKIT_CLOSED", std::string(what) + ": the RefTable is closed");
}

// The table named by scratch word kTable, or null after throwing.
SharedTable* scratchTable(Napi::Env env, AddonState& st, const char* what) {
  uint32_t local = st.scratch[kTable];
  if (local >= st.tables.size() || !st.tables[local] ||
      st.tables[local]->closed.load(std::memory_order_relaxed)) {
    throwClosed(env, what);
    return nullptr;
  }
  return st.tables[local].get();
}

Fid scratchFid(const uint32_t* s) { return Fid{s[kCell], s[kVolume], s[kVnode], s[kUnique], s[kHash]}; }

// This thread's ledger entry for a slot of the table selected in the scratch words.
int32_t& ledger(AddonState& st, SharedTable* t, uint32_t slot) {
  uint32_t local = st.scratch[kTable];
  if (st.holds.size() <= local) st.holds.resize(local + 1);
  std::vector<int32_t>& bySlot = st.holds[local];
  if (bySlot.size() <= slot) bySlot.resize(t->table.capacity(), 0);
  return bySlot[slot];
}

void noteHeld(AddonState& st, SharedTable* t, int32_t slot) {
  if (slot >= 0) ledger(st, t, static_cast<uint32_t>(slot))++;
}

Napi::Value create(const Napi::CallbackInfo& info) {
  auto capacity = uint32Arg(info, 0, "capacity");
  if (!capacity) return info.Env().Undefined();
  if (*capacity < 1 || *capacity > RefTable::kMaxCapacity) {
    throwRangeError(info.Env(), "ERR_OUT_OF_RANGE",
                    "The value of \"capacity\" is out of range. It must be >= 1 and <= " +
                        std::to_string(RefTable::kMaxCapacity));
    return info.Env().Undefined();
  }
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mutex);
  uint32_t id = r.nextId++;
  r.tables.emplace(id, std::make_shared<SharedTable>(*capacity));
  return Napi::Number::New(info.Env(), id);
}

Napi::Value attach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto id = uint32Arg(info, 0, "id");
  if (!id) return env.Undefined();
  std::shared_ptr<SharedTable> table;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> g(r.mutex);
    auto it = r.tables.find(*id);
    if (it != r.tables.end()) table = it->second;
  }
  if (!table || table->closed.load()) {
    throwTypeError(env, "ERR_CMKIT_CLOSED",
                   "RefTable.attach: no open RefTable has id " + std::to_string(*id));
    return env.Undefined();
  }
  AddonState& st = stateOf(env);
  for (size_t i = 0; i < st.tables.size(); i++) {
    if (!st.tables[i]) {
      st.tables[i] = std::move(table);
      if (i < st.holds.size()) st.holds[i].clear();
      return Napi::Number::New(env, static_cast<double>(i));
    }
  }
  st.tables.push_back(std::move(table));
  return Napi::Number::New(env, static_cast<double>(st.tables.size() - 1));
}

// Forgets this thread's attachment. With `close` set, also closes the table for every
// thread: later calls anywhere fail, and the memory goes when the last thread detaches.
Napi::Value detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto local = uint32Arg(info, 0, "local");
  if (!local) return env.Undefined();
  bool close = info[1].ToBoolean();
  AddonState& st = stateOf(env);
  if (*local >= st.tables.size() || !st.tables[*local]) return env.Undefined();
  st.releaseHolds(*local);  // a thread that leaves a table leaves its references too
  if (close) {
    st.tables[*local]->closed.store(true);
    Registry& r = registry();
    std::lock_guard<std::mutex> g(r.mutex);
    for (auto it = r.tables.begin(); it != r.tables.end(); ++it) {
      if (it->second == st.tables[*local]) {
        r.tables.erase(it);
        break;
      }
    }
  }
  st.tables[*local].reset();
  return env.Undefined();
}

Napi::Value findHold(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& st = stateOf(env);
  SharedTable* t = scratchTable(env, st, "RefTable.findHold");
  if (!t) return env.Undefined();
  int32_t slot = t->table.findHold(scratchFid(st.scratch));
  noteHeld(st, t, slot);
  return Napi::Number::New(env, slot);
}

Napi::Value findHoldExclusive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& st = stateOf(env);
  SharedTable* t = scratchTable(env, st, "RefTable.findHoldExclusive");
  if (!t) return env.Undefined();
  int32_t slot = t->table.findHoldExclusive(scratchFid(st.scratch));
  noteHeld(st, t, slot);
  return Napi::Number::New(env, slot);
}

Napi::Value getHold(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& st = stateOf(env);
  SharedTable* t = scratchTable(env, st, "RefTable.getHold");
  if (!t) return env.Undefined();
  bool created = false;
  int32_t slot = t->table.getHold(scratchFid(st.scratch), &created);
  if (slot < 0) {
    throwStatus(env, static_cast<Status>(slot), "RefTable.getHold");
    return env.Undefined();
  }
  st.scratch[kCreated] = created ? 1 : 0;
  noteHeld(st, t, slot);
  return Napi::Number::New(env, slot);
}

// The slot argument of a hot call, after the table's bounds check, or nullopt after
// throwing.
std::optional<uint32_t> slotArg(const Napi::CallbackInfo& info, SharedTable* t, const char* what) {
  auto slot = uint32ArgFast(info, 0, "slot");
  if (!slot) return std::nullopt;
  if (*slot >= t->table.used()) {
    throwStatus(info.Env(), Status::kBadSlot, what);
    return std::nullopt;
  }
  return slot;
}

// Which ledger a reference change is written to.
enum class Owner { kThisThread, kShared };

// hold/release, of a reference this thread owns (kept in its ledger) or of a disowned one.
template <Status (RefTable::*kOp)(uint32_t), int32_t kDelta, Owner kOwner>
Napi::Value countOp(const Napi::CallbackInfo& info, const char* what) {
  Napi::Env env = info.Env();
  AddonState& st = stateOf(env);
  SharedTable* t = scratchTable(env, st, what);
  if (!t) return env.Undefined();
  auto slot = slotArg(info, t, what);
  if (!slot) return env.Undefined();
  if (kOwner == Owner::kThisThread && kDelta < 0 && ledger(st, t, *slot) <= 0) {
    // Releasing a reference another thread took would let that thread's exit release it
    // a second time.
    throwRangeError(env, "ERR_CMKIT_NOT_HELD",
                    std::string(what) + ": this thread holds no reference to that slot " +
                        "(a disowned one is released with releaseDisowned)");
    return env.Undefined();
  }
  Status s = (t->table.*kOp)(*slot);
  if (s != Status::kOk) {
    throwStatus(env, s, what);
    return env.Undefined();
  }
  if (kOwner == Owner::kThisThread) ledger(st, t, *slot) += kDelta;
  return env.Undefined();
}

Napi::Value hold(const Napi::CallbackInfo& info) {
  return countOp<&RefTable::hold, 1, Owner::kThisThread>(info, "RefTable.hold");
}

Napi::Value release(const Napi::CallbackInfo& info) {
  return countOp<&RefTable::release, -1, Owner::kThisThread>(info, "RefTable.release");
}

Napi::Value releaseDisowned(const Napi::CallbackInfo& info) {
  return countOp<&RefTable::release, -1, Owner::kShared>(info, "RefTable.releaseDisowned");
}

// Hands one of this thread's references over to shared state: the count stays, but the
// thread's exit will no longer release it.
Napi::Value disown(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& st = stateOf(env);
  SharedTable* t = scratchTable(env, st, "RefTable.disown");
  if (!t) return env.Undefined();
  auto slot = slotArg(info, t, "RefTable.disown");
  if (!slot) return env.Undefined();
  int32_t& mine = ledger(st, t, *slot);
  if (mine <= 0) {
    throwRangeError(env, "ERR_CMKIT_NOT_HELD", "RefTable.disown: this thread holds no reference to that slot");
    return env.Undefined();
  }
  mine--;
  return env.Undefined();
}

// findHoldMany(fids: Uint32Array of 5 words a Fid, out: Int32Array)
Napi::Value findHoldMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& st = stateOf(env);
  SharedTable* t = scratchTable(env, st, "RefTable.findHoldMany");
  if (!t) return env.Undefined();
  auto fids = uint32ArrayArg(info, 0, "fids");
  if (!fids) return env.Undefined();
  auto out = int32ArrayArg(info, 1, "out");
  if (!out) return env.Undefined();
  size_t n = out->length;
  if (fids->length < n * 5) {
    throwRangeError(env, "ERR_OUT_OF_RANGE", "RefTable.findHoldMany: \"fids\" holds fewer than out.length Fids");
    return env.Undefined();
  }
  const uint32_t* w = fids->data;
  std::vector<Fid> batch(n);
  for (size_t i = 0; i < n; i++, w += 5) batch[i] = Fid{w[0], w[1], w[2], w[3], w[4]};
  t->table.findHoldMany(batch.data(), static_cast<uint32_t>(n), out->data);
  for (size_t i = 0; i < n; i++) noteHeld(st, t, out->data[i]);
  return env.Undefined();
}

Napi::Value releaseMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& st = stateOf(env);
  SharedTable* t = scratchTable(env, st, "RefTable.releaseMany");
  if (!t) return env.Undefined();
  auto slots = int32ArrayArg(info, 0, "slots");
  if (!slots) return env.Undefined();
  // Only references this thread holds, as release checks one by one.
  size_t n = slots->length;
  std::vector<int32_t> mine(slots->data, slots->data + n);
  size_t allowed = 0;
  for (; allowed < n; allowed++) {
    int32_t slot = mine[allowed];
    if (slot < 0 || static_cast<uint32_t>(slot) >= t->table.used() || ledger(st, t, slot) <= 0) break;
    ledger(st, t, slot)--;  // taken back below for any the table refuses
  }
  uint32_t done = 0;
  Status s = t->table.releaseMany(mine.data(), static_cast<uint32_t>(allowed), &done);
  for (size_t i = done; i < allowed; i++) ledger(st, t, mine[i])++;
  if (s == Status::kOk && allowed < n) {
    s = (mine[allowed] < 0 || static_cast<uint32_t>(mine[allowed]) >= t->table.used()) ? Status::kBadSlot
                                                                                       : Status::kNotHeld;
  }
  if (s != Status::kOk) {
    std::string what = "RefTable.releaseMany (slots[" + std::to_string(done) + "]; the " +
                       std::to_string(done) + " before it were released)";
    throwStatus(env, s, what.c_str());
  }
  return env.Undefined();
}

Napi::Value refCount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& st = stateOf(env);
  SharedTable* t = scratchTable(env, st, "RefTable.refCount");
  if (!t) return env.Undefined();
  auto slot = uint32Arg(info, 0, "slot");
  if (!slot) return env.Undefined();
  int32_t c = t->table.refCount(*slot);
  if (c < 0) {
    throwStatus(env, static_cast<Status>(c), "RefTable.refCount");
    return env.Undefined();
  }
  return Napi::Number::New(env, c);
}

// Writes the Fid of a used slot into the scratch words; false for a slot never used.
Napi::Value fidAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& st = stateOf(env);
  SharedTable* t = scratchTable(env, st, "RefTable.fidAt");
  if (!t) return env.Undefined();
  auto slot = uint32Arg(info, 0, "slot");
  if (!slot) return env.Undefined();
  Fid fid;
  if (!t->table.fidAt(*slot, &fid)) return Napi::Boolean::New(env, false);
  uint32_t* s = st.scratch;
  s[kCell] = fid.cell;
  s[kVolume] = fid.volume;
  s[kVnode] = fid.vnode;
  s[kUnique] = fid.unique;
  s[kHash] = fid.hash;
  return Napi::Boolean::New(env, true);
}

// Removes the entry at slot if it still names the key in the scratch words and is idle.
Napi::Value removeIfIdle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& st = stateOf(env);
  SharedTable* t = scratchTable(env, st, "RefTable.removeIfIdle");
  if (!t) return env.Undefined();
  auto slot = uint32Arg(info, 0, "slot");
  if (!slot) return env.Undefined();
  return Napi::Boolean::New(env, t->table.removeIfIdle(*slot, scratchFid(st.scratch)));
}

Napi::Value stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& st = stateOf(env);
  SharedTable* t = scratchTable(env, st, "RefTable.stats");
  if (!t) return env.Undefined();
  Napi::Object o = Napi::Object::New(env);
  o.Set("capacity", t->table.capacity());
  o.Set("used", t->table.used());
  o.Set("recycled", static_cast<double>(t->table.recycled()));
  o.Set("free", t->table.freed());
  o.Set("totalRefs", static_cast<double>(t->table.totalRefs()));
  return o;
}

}  // namespace

void initRefTable(Napi::Env env, Napi::Object exports) {
  Napi::Object t = Napi::Object::New(env);
  t.Set("create", Napi::Function::New(env, create, "create"));
  t.Set("attach", Napi::Function::New(env, attach, "attach"));
  t.Set("detach", Napi::Function::New(env, detach, "detach"));
  t.Set("findHold", Napi::Function::New(env, findHold, "findHold"));
  t.Set("findHoldExclusive", Napi::Function::New(env, findHoldExclusive, "findHoldExclusive"));
  t.Set("getHold", Napi::Function::New(env, getHold, "getHold"));
  t.Set("hold", Napi::Function::New(env, hold, "hold"));
  t.Set("release", Napi::Function::New(env, release, "release"));
  t.Set("disown", Napi::Function::New(env, disown, "disown"));
  t.Set("releaseDisowned", Napi::Function::New(env, releaseDisowned, "releaseDisowned"));
  t.Set("findHoldMany", Napi::Function::New(env, findHoldMany, "findHoldMany"));
  t.Set("releaseMany", Napi::Function::New(env, releaseMany, "releaseMany"));
  t.Set("refCount", Napi::Function::New(env, refCount, "refCount"));
  t.Set("fidAt", Napi::Function::New(env, fidAt, "fidAt"));
  t.Set("removeIfIdle", Napi::Function::New(env, removeIfIdle, "removeIfIdle"));
  t.Set("stats", Napi::Function::New(env, stats, "stats"));
  t.Set("maxCapacity", RefTable::kMaxCapacity);
  exports.Set("refTable", t);
}

}  // namespace cmkit::addon
