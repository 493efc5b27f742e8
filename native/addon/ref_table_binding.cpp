// Binding of RefTable. Tables are process-wide: created once, registered under a numeric
// id that any thread can attach to. Each attachment gets a shard of counts (the holder's
// references) and a view of the table's index, both as SharedArrayBuffers, so that the
// JS facade probes and counts by itself (src/core/ref-table.ts) and calls in here only
// to insert, to wait out a writer, and for the rarer operations.
//
// A thread keeps its attachments in its AddonState, by a small local index that JS
// writes into scratch word kTable, so the hot calls unpack at most one argument. Hot
// calls return a slot or a Status and never throw (hot_call.h).
#include <mutex>
#include <string>
#include <unordered_map>

#include "../core/ref_table.h"
#include "addon_state.h"
#include "bindings.h"
#include "errors.h"
#include "hot_call.h"
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

}  // namespace

std::shared_ptr<SharedTable> findSharedTable(uint32_t id) {
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mutex);
  auto it = r.tables.find(id);
  return it == r.tables.end() || it->second->closed() ? nullptr : it->second;
}

namespace {

// The attachment named by scratch word kTable, or null if closed or detached.
Attachment* scratchAttachment(AddonState* st) {
  if (st == nullptr) return nullptr;
  uint32_t local = st->scratch[kTable];
  if (local >= st->tables.size()) return nullptr;
  Attachment& a = st->tables[local];
  if (!a.shared || a.shared->closed()) return nullptr;
  return &a;
}

Fid scratchFid(const uint32_t* s) { return Fid{s[kCell], s[kVolume], s[kVnode], s[kUnique], s[kHash]}; }

// ---- hot calls: a slot or a Status, never an exception -------------------------------

template <int32_t (RefTable::*kFind)(RefTable::Shard&, const Fid&)>
napi_value finding(napi_env env, napi_callback_info) {
  AddonState* st = stateOf(env);
  Attachment* a = scratchAttachment(st);
  if (a == nullptr) return hotStatus(env, Status::kClosed);
  return hotInt(env, (a->shared->table.*kFind)(*a->shard, scratchFid(st->scratch)));
}

napi_value getHold(napi_env env, napi_callback_info) {
  AddonState* st = stateOf(env);
  Attachment* a = scratchAttachment(st);
  if (a == nullptr) return hotStatus(env, Status::kClosed);
  bool created = false;
  int32_t slot = a->shared->table.getHold(*a->shard, scratchFid(st->scratch), &created);
  st->scratch[kCreated] = created ? 1 : 0;
  return hotInt(env, slot);
}

// hold, release, disown, releaseDisowned: (slot) -> Status.
template <Status (*kOp)(Attachment&, uint32_t)>
napi_value bySlot(napi_env env, napi_callback_info info) {
  Attachment* a = scratchAttachment(stateOf(env));
  if (a == nullptr) return hotStatus(env, Status::kClosed);
  HotArgs<1> args;
  uint32_t slot = 0;
  if (!hotArgs(env, info, &args) || !hotUint32(env, args.argv[0], &slot)) return hotStatus(env, Status::kBadArgument);
  return hotStatus(env, kOp(*a, slot));
}

Status holdOp(Attachment& a, uint32_t slot) { return a.shared->table.hold(*a.shard, slot); }
Status releaseOp(Attachment& a, uint32_t slot) { return a.shared->table.release(*a.shard, slot); }
Status disownOp(Attachment& a, uint32_t slot) { return a.shared->table.disown(*a.shard, slot); }
Status releaseDisownedOp(Attachment& a, uint32_t slot) { return a.shared->table.releaseDisowned(slot); }

// ---- the rest: may throw, through errors.h ---------------------------------------------

void throwClosed(Napi::Env env, const char* what) {
  throwTypeError(env, "ERR_CMKIT_CLOSED", std::string(what) + ": the RefTable is closed");
}

Attachment* attachmentOrThrow(Napi::Env env, const char* what) {
  Attachment* a = scratchAttachment(stateOf(env));
  if (a == nullptr) throwClosed(env, what);
  return a;
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

// attach(id) -> { local, index, counts, mask, capacity }: index and counts are
// SharedArrayBuffers over the table's index and this attachment's shard.
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
  if (!table || table->closed()) {
    throwTypeError(env, "ERR_CMKIT_CLOSED", "RefTable.attach: no open RefTable has id " + std::to_string(*id));
    return env.Undefined();
  }
  napi_value index = table->index.make(env, table);
  std::shared_ptr<RefTable::Shard> shard = table->table.attachShard();
  SharedView counts(shard->counts(), shard->size() * sizeof(int32_t));
  napi_value countsView = counts.make(env, shard);
  AddonState* st = stateOf(env);
  size_t local = 0;
  while (local < st->tables.size() && st->tables[local].shared) local++;
  if (local == st->tables.size()) st->tables.emplace_back();
  st->tables[local] = Attachment{table, shard};
  Napi::Object out = Napi::Object::New(env);
  out.Set("local", static_cast<double>(local));
  out.Set("index", Napi::Value(env, index));
  out.Set("counts", Napi::Value(env, countsView));
  out.Set("mask", table->table.mask());
  out.Set("capacity", table->table.capacity());
  return out;
}

// Forgets this thread's attachment, and its references with it. With `close` set, also
// closes the table for every thread: later calls anywhere fail, and the memory goes
// when the last attachment and view are gone.
Napi::Value detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto local = uint32Arg(info, 0, "local");
  if (!local) return env.Undefined();
  bool close = info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  AddonState* st = stateOf(env);
  if (*local >= st->tables.size() || !st->tables[*local].shared) return env.Undefined();
  Attachment& a = st->tables[*local];
  a.shared->table.retireShard(a.shard);
  if (close) {
    a.shared->close();
    Registry& r = registry();
    std::lock_guard<std::mutex> g(r.mutex);
    for (auto it = r.tables.begin(); it != r.tables.end(); ++it) {
      if (it->second == a.shared) {
        r.tables.erase(it);
        break;
      }
    }
  }
  a = Attachment{};
  return env.Undefined();
}

// findHoldMany(fids: Uint32Array of 5 words a Fid, out: Int32Array)
Napi::Value findHoldMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Attachment* a = attachmentOrThrow(env, "RefTable.findHoldMany");
  if (!a) return env.Undefined();
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
  a->shared->table.findHoldMany(*a->shard, batch.data(), static_cast<uint32_t>(n), out->data);
  return env.Undefined();
}

Napi::Value releaseMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Attachment* a = attachmentOrThrow(env, "RefTable.releaseMany");
  if (!a) return env.Undefined();
  auto slots = int32ArrayArg(info, 0, "slots");
  if (!slots) return env.Undefined();
  std::vector<int32_t> mine(slots->data, slots->data + slots->length);
  uint32_t done = 0;
  Status s = a->shared->table.releaseMany(*a->shard, mine.data(), static_cast<uint32_t>(mine.size()), &done);
  if (s != Status::kOk) {
    std::string what = "RefTable.releaseMany (slots[" + std::to_string(done) + "]; the " +
                       std::to_string(done) + " before it were released)";
    throwStatus(env, s, what.c_str());
  }
  return env.Undefined();
}

Napi::Value refCount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Attachment* a = attachmentOrThrow(env, "RefTable.refCount");
  if (!a) return env.Undefined();
  auto slot = uint32Arg(info, 0, "slot");
  if (!slot) return env.Undefined();
  int32_t c = a->shared->table.refCount(*slot);
  if (c < 0) {
    throwStatus(env, static_cast<Status>(c), "RefTable.refCount");
    return env.Undefined();
  }
  return Napi::Number::New(env, c);
}

// Writes the Fid of a used slot into the scratch words; false for a slot never used.
Napi::Value fidAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Attachment* a = attachmentOrThrow(env, "RefTable.fidAt");
  if (!a) return env.Undefined();
  auto slot = uint32Arg(info, 0, "slot");
  if (!slot) return env.Undefined();
  Fid fid;
  if (!a->shared->table.fidAt(*slot, &fid)) return Napi::Boolean::New(env, false);
  uint32_t* s = stateOf(env)->scratch;
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
  Attachment* a = attachmentOrThrow(env, "RefTable.removeIfIdle");
  if (!a) return env.Undefined();
  auto slot = uint32Arg(info, 0, "slot");
  if (!slot) return env.Undefined();
  return Napi::Boolean::New(env, a->shared->table.removeIfIdle(*slot, scratchFid(stateOf(env)->scratch)));
}

// Names slot with the key in the scratch words (rebuilding a table); returns a Status.
Napi::Value restore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Attachment* a = attachmentOrThrow(env, "RefTable.restore");
  if (!a) return env.Undefined();
  auto slot = uint32Arg(info, 0, "slot");
  if (!slot) return env.Undefined();
  bool disowned = info.Length() > 1 && info[1].ToBoolean().Value();
  Status st = a->shared->table.restore(*slot, scratchFid(stateOf(env)->scratch), disowned);
  return Napi::Number::New(env, static_cast<int32_t>(st));
}

Napi::Value stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Attachment* a = attachmentOrThrow(env, "RefTable.stats");
  if (!a) return env.Undefined();
  RefTable& t = a->shared->table;
  Napi::Object o = Napi::Object::New(env);
  o.Set("capacity", t.capacity());
  o.Set("used", t.used());
  o.Set("recycled", static_cast<double>(t.recycled()));
  o.Set("free", t.freed());
  o.Set("totalRefs", static_cast<double>(t.totalRefs()));
  return o;
}

Napi::Object layout(Napi::Env env) {
  Napi::Object l = Napi::Object::New(env);
  l.Set("seq", reftable::kSeq);
  l.Set("closed", reftable::kClosedFlag);
  l.Set("bucketsBase", reftable::kBucketsBase);
  l.Set("entryWords", reftable::kEntryWords);
  l.Set("cell", static_cast<uint32_t>(reftable::kCell));
  l.Set("volume", static_cast<uint32_t>(reftable::kVolume));
  l.Set("vnode", static_cast<uint32_t>(reftable::kVnode));
  l.Set("unique", static_cast<uint32_t>(reftable::kUnique));
  l.Set("hash", static_cast<uint32_t>(reftable::kHash));
  l.Set("next", static_cast<uint32_t>(reftable::kNext));
  l.Set("referenced", static_cast<uint32_t>(reftable::kReferenced));
  l.Set("lightReaders", RefTable::lightReaders());
  return l;
}

}  // namespace

void initRefTable(Napi::Env env, Napi::Object exports) {
  Napi::Object t = Napi::Object::New(env);
  t.Set("create", Napi::Function::New(env, create, "create"));
  t.Set("attach", Napi::Function::New(env, attach, "attach"));
  t.Set("detach", Napi::Function::New(env, detach, "detach"));
  setHot(env, t, "findHold", finding<&RefTable::findHold>);
  setHot(env, t, "findHoldExclusive", finding<&RefTable::findHoldExclusive>);
  setHot(env, t, "getHold", getHold);
  setHot(env, t, "hold", bySlot<holdOp>);
  setHot(env, t, "release", bySlot<releaseOp>);
  setHot(env, t, "disown", bySlot<disownOp>);
  setHot(env, t, "releaseDisowned", bySlot<releaseDisownedOp>);
  t.Set("findHoldMany", Napi::Function::New(env, findHoldMany, "findHoldMany"));
  t.Set("releaseMany", Napi::Function::New(env, releaseMany, "releaseMany"));
  t.Set("refCount", Napi::Function::New(env, refCount, "refCount"));
  t.Set("fidAt", Napi::Function::New(env, fidAt, "fidAt"));
  t.Set("removeIfIdle", Napi::Function::New(env, removeIfIdle, "removeIfIdle"));
  t.Set("stats", Napi::Function::New(env, stats, "stats"));
  t.Set("restore", Napi::Function::New(env, restore, "restore"));
  t.Set("layout", layout(env));
  t.Set("maxCapacity", RefTable::kMaxCapacity);
  exports.Set("refTable", t);
}

}  // namespace cmkit::addon
