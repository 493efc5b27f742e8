// The FUSE binding (in the addon on Linux; no libfuse): a thin binding of
// fuse_session.h, exported as the addon's `fuse`. The JS facade (src/mount/fuse.ts) validates arguments; this
// layer only refuses values of the wrong type.
#include <napi.h>

#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "../addon/bindings.h"
#include "../addon/shared_table.h"
#include "../core/cache_layout.h"
#include "../core/read_hit.h"
#include "fuse_session.h"

namespace cmkit::fuse {

namespace {

// The cache's read hits for the session's reader threads: the core's readHit over the
// cache's two tables and its shared memory, with a shard of each table per reader (a
// shard is written only by its own thread). The memory is kept alive by the binding's
// references to its views, until the session drops this source.
class CacheHits : public HitSource {
 public:
  CacheHits(std::shared_ptr<addon::SharedTable> vnodes, std::shared_ptr<addon::SharedTable> buffers,
            const CacheMemory& memory, uint32_t readers)
      : vnodes_(std::move(vnodes)), buffers_(std::move(buffers)), memory_(memory) {
    for (uint32_t i = 0; i < readers; i++) {
      shards_.push_back({vnodes_->table.attachShard(), buffers_->table.attachShard()});
    }
  }

  ~CacheHits() override {
    for (Shards& s : shards_) {
      vnodes_->table.retireShard(s.vnode);
      buffers_->table.retireShard(s.buffer);
    }
  }

  int64_t read(uint32_t reader, const uint32_t fid[4], uint64_t offset, uint32_t size, char* out) override {
    if (reader >= shards_.size()) return -1;
    Shards& s = shards_[reader];
    HitHolder h{&vnodes_->table, s.vnode.get(), &buffers_->table, s.buffer.get()};
    return readHit(memory_, h, Fid::make(fid[0], fid[1], fid[2], fid[3]), offset, size, reinterpret_cast<uint8_t*>(out));
  }

 private:
  struct Shards {
    std::shared_ptr<RefTable::Shard> vnode;
    std::shared_ptr<RefTable::Shard> buffer;
  };
  std::shared_ptr<addon::SharedTable> vnodes_;
  std::shared_ptr<addon::SharedTable> buffers_;
  CacheMemory memory_;
  std::vector<Shards> shards_;
};

bool typeError(Napi::Env env, const char* message) {
  Napi::Error e = Napi::TypeError::New(env, message);
  e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  e.ThrowAsJavaScriptException();
  return false;
}

// A stat from [ino, mode, nlink, uid, gid, rdev, size, blocks, atimeSec, atimeNsec,
// mtimeSec, mtimeNsec, ctimeSec, ctimeNsec].
constexpr uint32_t kAttrFields = 14;

bool statFrom(Napi::Env env, Napi::Value value, struct stat& st) {
  const char* message = "attr must be an array of 14 numbers";
  if (!value.IsArray()) return typeError(env, message);
  Napi::Array a = value.As<Napi::Array>();
  if (a.Length() != kAttrFields) return typeError(env, message);
  double v[kAttrFields];
  for (uint32_t k = 0; k < kAttrFields; k++) {
    Napi::Value x = a.Get(k);
    if (!x.IsNumber()) return typeError(env, message);
    v[k] = x.As<Napi::Number>().DoubleValue();
  }
  st = {};
  st.st_ino = static_cast<ino_t>(v[0]);
  st.st_mode = static_cast<mode_t>(v[1]);
  st.st_nlink = static_cast<nlink_t>(v[2]);
  st.st_uid = static_cast<uid_t>(v[3]);
  st.st_gid = static_cast<gid_t>(v[4]);
  st.st_rdev = static_cast<dev_t>(v[5]);
  st.st_size = static_cast<off_t>(v[6]);
  st.st_blocks = static_cast<blkcnt_t>(v[7]);
  st.st_blksize = 4096;
  auto setTime = [](struct timespec& ts, double sec, double nsec) {
    ts.tv_sec = static_cast<time_t>(sec);
    ts.tv_nsec = nsec >= 0 && nsec < 1e9 ? static_cast<long>(nsec) : 0;
  };
  setTime(st.st_atim, v[8], v[9]);
  setTime(st.st_mtim, v[10], v[11]);
  setTime(st.st_ctim, v[12], v[13]);
  return true;
}

bool statArg(const Napi::CallbackInfo& info, size_t i, struct stat& st) { return statFrom(info.Env(), info[i], st); }

// Names are byte strings: one JS char per byte (latin1), so no byte is lost to UTF-8.
Napi::Value latin1(Napi::Env env, const std::string& s) {
  napi_value v;
  napi_create_string_latin1(env, s.data(), s.size(), &v);
  return Napi::Value(env, v);
}

bool bytesOf(Napi::Env env, Napi::Value value, std::string& out) {
  if (!value.IsString()) return typeError(env, "names must be strings");
  size_t len = 0;
  napi_get_value_string_latin1(env, value, nullptr, 0, &len);
  out.resize(len);
  napi_get_value_string_latin1(env, value, out.data(), len + 1, &len);
  return true;
}

double num(const Napi::CallbackInfo& info, size_t i) {
  return info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : -1;
}

uint32_t idArg(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) {
    typeError(info.Env(), "id must be a number");
    return 0;
  }
  return info[0].As<Napi::Number>().Uint32Value();
}


class FuseSession : public Napi::ObjectWrap<FuseSession> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "FuseSession",
                       {
                           InstanceMethod("take", &FuseSession::take),
                           InstanceMethod("alive", &FuseSession::alive),
                           InstanceMethod("replyError", &FuseSession::replyError),
                           InstanceMethod("replyEntry", &FuseSession::replyEntry),
                           InstanceMethod("replyCreate", &FuseSession::replyCreate),
                           InstanceMethod("replyAttr", &FuseSession::replyAttr),
                           InstanceMethod("replyOpen", &FuseSession::replyOpen),
                           InstanceMethod("replyData", &FuseSession::replyData),
                           InstanceMethod("replyWrite", &FuseSession::replyWrite),
                           InstanceMethod("replyDir", &FuseSession::replyDir),
                           InstanceMethod("replyDirPlus", &FuseSession::replyDirPlus),
                           InstanceMethod("replyReadlink", &FuseSession::replyReadlink),
                           InstanceMethod("replyStatfs", &FuseSession::replyStatfs),
                           InstanceMethod("invalidate", &FuseSession::invalidate),
                           InstanceMethod("invalidated", &FuseSession::invalidated),
                           InstanceMethod("stop", &FuseSession::stop),
                           InstanceMethod("sessionId", &FuseSession::sessionId),
                           InstanceMethod("consumerId", &FuseSession::consumerId),
                           InstanceMethod("route", &FuseSession::route),
                           InstanceMethod("unroute", &FuseSession::unroute),
                           InstanceMethod("ref", &FuseSession::ref),
                           InstanceMethod("unref", &FuseSession::unref),
                           InstanceMethod("serveHits", &FuseSession::serveHits),
                           InstanceMethod("counters", &FuseSession::counters),
                       });
  }

  // new FuseSession(mountpoint, options: string[], onWake): mounts; this thread is consumer 0.
  // new FuseSession(sessionId, onWake): another serving thread of a mounted session.
  explicit FuseSession(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FuseSession>(info) {
    Napi::Env env = info.Env();
    if (info[0].IsNumber()) {
      attach(info);
      return;
    }
    if (!info[0].IsString()) {
      typeError(env, "mountpoint must be a string");
      return;
    }
    if (!info[1].IsArray()) {
      typeError(env, "options must be an array of strings");
      return;
    }
    if (!info[2].IsFunction()) {
      typeError(env, "onWake must be a function");
      return;
    }
    std::vector<std::string> options;
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value o = a.Get(i);
      if (!o.IsString()) {
        typeError(env, "options must be an array of strings");
        return;
      }
      options.push_back(o.As<Napi::String>().Utf8Value());
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "cmkit.fuse", 0, 1);
    std::string error;
    auto wake = [tsfn = tsfn_]() mutable { tsfn.NonBlockingCall(); };
    session_ = Session::mount(info[0].As<Napi::String>().Utf8Value(), options, wake, error);
    owner_ = true;
    if (!session_) {
      tsfn_.Release();
      released_ = true;
      Napi::Error e = Napi::Error::New(env, error);
      e.Set("code", Napi::String::New(env, "ERR_CMKIT_MOUNT_FAILED"));
      e.ThrowAsJavaScriptException();
      return;
    }
    hookEnvCleanup(env);
  }

  ~FuseSession() override {
    if (hooked_) napi_remove_env_cleanup_hook(env_, onEnvCleanup, this);
    shutdown();
  }

 private:
  void attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[1].IsFunction()) {
      typeError(env, "onWake must be a function");
      return;
    }
    session_ = Session::find(info[0].As<Napi::Number>().Uint32Value());
    if (!session_ || !session_->alive()) {
      session_.reset();
      released_ = true;
      Napi::Error e = Napi::Error::New(env, "no mounted FUSE session has that id");
      e.Set("code", Napi::String::New(env, "ERR_CMKIT_MOUNT_FAILED"));
      e.ThrowAsJavaScriptException();
      return;
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "cmkit.fuse.consumer", 0, 1);
    consumer_ = session_->addConsumer([tsfn = tsfn_]() mutable { tsfn.NonBlockingCall(); });
    hookEnvCleanup(env);
  }

  // A thread that ends without stop() (a worker terminated or crashed, the process
  // exiting) still leaves the session: hooks run in reverse order of registration, so
  // this one runs while the thread-safe function made before it is still valid.
  void hookEnvCleanup(Napi::Env env) {
    env_ = env;
    hooked_ = napi_add_env_cleanup_hook(env, onEnvCleanup, this) == napi_ok;
  }

  static void onEnvCleanup(void* arg) {
    auto* self = static_cast<FuseSession*>(arg);
    self->hooked_ = false;
    self->shutdown();
  }

  // The owner unmounts; another consumer only leaves (its queued requests get EIO). The
  // thread-safe function goes last: the session never wakes a consumer it has removed.
  void shutdown() {
    if (session_) {
      if (owner_) session_->stop();
      else session_->removeConsumer(consumer_);
    }
    session_.reset();
    hitViews_.clear();  // no reader uses them now: stop() dropped the hit source
    if (!released_) {
      tsfn_.Release();
      released_ = true;
    }
  }

  Napi::Value sessionId(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), session_ ? session_->id() : 0);
  }

  Napi::Value consumerId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), consumer_); }

  // route(fh, consumer, cell, volume, vnode, unique)
  Napi::Value route(const Napi::CallbackInfo& info) {
    for (size_t i = 0; i < 6; i++) {
      if (!info[i].IsNumber()) {
        typeError(info.Env(), "route takes six numbers");
        return info.Env().Undefined();
      }
    }
    uint32_t fid[4];
    for (size_t i = 0; i < 4; i++) fid[i] = info[i + 2].As<Napi::Number>().Uint32Value();
    if (session_) {
      session_->route(static_cast<uint64_t>(num(info, 0)), info[1].As<Napi::Number>().Uint32Value(), fid);
    }
    return info.Env().Undefined();
  }

  Napi::Value unroute(const Napi::CallbackInfo& info) {
    if (session_ && info[0].IsNumber()) session_->unroute(static_cast<uint64_t>(num(info, 0)));
    return info.Env().Undefined();
  }

  Napi::Value take(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<Request*> got = session_ ? session_->take(consumer_) : std::vector<Request*>{};
    Napi::Array out = Napi::Array::New(env, got.size());
    for (size_t i = 0; i < got.size(); i++) {
      Request* r = got[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("id", r->id);
      o.Set("op", static_cast<uint32_t>(r->op));
      o.Set("ino", static_cast<double>(r->ino));
      switch (r->op) {
        case Op::Lookup:
        case Op::Unlink:
        case Op::Rmdir:
          o.Set("name", latin1(env, r->name));
          break;
        case Op::Mkdir:
        case Op::Create:
        case Op::Mknod:
          o.Set("name", latin1(env, r->name));
          o.Set("mode", r->mode);
          o.Set("flags", r->flags);
          o.Set("rdev", static_cast<double>(r->rdev));
          setCaller(o, r);
          break;
        case Op::Symlink:
          o.Set("name", latin1(env, r->name));
          o.Set("target", latin1(env, r->name2));
          setCaller(o, r);
          break;
        case Op::Link:
          o.Set("newParent", static_cast<double>(r->ino2));
          o.Set("newName", latin1(env, r->name));
          break;
        case Op::Rename:
          o.Set("name", latin1(env, r->name));
          o.Set("newParent", static_cast<double>(r->ino2));
          o.Set("newName", latin1(env, r->name2));
          o.Set("flags", r->flags);
          break;
        case Op::Forget:
          o.Set("nlookup", static_cast<double>(r->size));
          break;
        case Op::Setattr:
          o.Set("toSet", r->toSet);
          o.Set("mode", static_cast<uint32_t>(r->attr.st_mode));
          o.Set("uid", static_cast<uint32_t>(r->attr.st_uid));
          o.Set("gid", static_cast<uint32_t>(r->attr.st_gid));
          o.Set("size", static_cast<double>(r->attr.st_size));
          o.Set("atime", timeArray(env, r->attr.st_atim));
          o.Set("mtime", timeArray(env, r->attr.st_mtim));
          o.Set("fh", static_cast<double>(r->fh));
          setCaller(o, r);
          break;
        case Op::Open:
          o.Set("flags", r->flags);
          setCaller(o, r);
          break;
        case Op::Read:
          setFid(env, o, r);
          [[fallthrough]];
        case Op::Readdir:
        case Op::Readdirplus:
          o.Set("fh", static_cast<double>(r->fh));
          o.Set("offset", static_cast<double>(r->offset));
          o.Set("size", static_cast<double>(r->size));
          break;
        case Op::Write: {
          setFid(env, o, r);
          o.Set("fh", static_cast<double>(r->fh));
          o.Set("offset", static_cast<double>(r->offset));
          // The bytes move to JS without a copy; the Request keeps nothing of them.
          auto* bytes = new std::vector<char>(std::move(r->data));
          o.Set("data", Napi::Buffer<char>::New(env, bytes->data(), bytes->size(),
                                                [](Napi::Env, char*, std::vector<char>* v) { delete v; }, bytes));
          break;
        }
        case Op::Flush:
        case Op::Fsync:
          setFid(env, o, r);
          o.Set("fh", static_cast<double>(r->fh));
          break;
        default:
          o.Set("fh", static_cast<double>(r->fh));
          break;
      }
      out.Set(static_cast<uint32_t>(i), o);
      if (r->op == Op::Forget) delete r;  // answered on the loop thread already
    }
    return out;
  }

  Napi::Value alive(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), session_ && session_->alive());
  }

  Napi::Value replyError(const Napi::CallbackInfo& info) {
    uint32_t id = idArg(info);
    if (session_ && id) session_->replyError(id, static_cast<int>(num(info, 1)));
    return info.Env().Undefined();
  }

  // replyEntry(id, attr, entryTimeout, attrTimeout)
  Napi::Value replyEntry(const Napi::CallbackInfo& info) {
    uint32_t id = idArg(info);
    struct stat st;
    if (id && statArg(info, 1, st) && session_) session_->replyEntry(id, st, num(info, 2), num(info, 3));
    return info.Env().Undefined();
  }

  // replyCreate(id, attr, entryTimeout, attrTimeout, fh, keepCache)
  Napi::Value replyCreate(const Napi::CallbackInfo& info) {
    uint32_t id = idArg(info);
    struct stat st;
    if (id && statArg(info, 1, st) && session_) {
      session_->replyCreate(id, st, num(info, 2), num(info, 3), static_cast<uint64_t>(num(info, 4)),
                            info[5].ToBoolean().Value());
    }
    return info.Env().Undefined();
  }

  // replyAttr(id, attr, attrTimeout)
  Napi::Value replyAttr(const Napi::CallbackInfo& info) {
    uint32_t id = idArg(info);
    struct stat st;
    if (id && statArg(info, 1, st) && session_) session_->replyAttr(id, st, num(info, 2));
    return info.Env().Undefined();
  }

  // replyOpen(id, fh, keepCache, directIo)
  Napi::Value replyOpen(const Napi::CallbackInfo& info) {
    uint32_t id = idArg(info);
    if (id && session_) {
      session_->replyOpen(id, static_cast<uint64_t>(num(info, 1)), info[2].ToBoolean().Value(),
                          info[3].ToBoolean().Value());
    }
    return info.Env().Undefined();
  }

  // replyData(id, bytes: Uint8Array)
  Napi::Value replyData(const Napi::CallbackInfo& info) {
    uint32_t id = idArg(info);
    if (!info[1].IsTypedArray()) {
      typeError(info.Env(), "data must be a Uint8Array");
      return info.Env().Undefined();
    }
    Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
    if (id && session_) session_->replyData(id, reinterpret_cast<const char*>(data.Data()), data.ByteLength());
    return info.Env().Undefined();
  }

  // replyWrite(id, count)
  Napi::Value replyWrite(const Napi::CallbackInfo& info) {
    uint32_t id = idArg(info);
    if (id && session_) session_->replyWrite(id, static_cast<size_t>(num(info, 1)));
    return info.Env().Undefined();
  }

  // replyDir(id, names: string[], inos: number[], modes: number[], offset)
  Napi::Value replyDir(const Napi::CallbackInfo& info) {
    uint32_t id = idArg(info);
    if (!info[1].IsArray() || !info[2].IsArray() || !info[3].IsArray()) {
      typeError(info.Env(), "names, inos and modes must be arrays");
      return info.Env().Undefined();
    }
    Napi::Array names = info[1].As<Napi::Array>();
    Napi::Array inos = info[2].As<Napi::Array>();
    Napi::Array modes = info[3].As<Napi::Array>();
    std::vector<Session::DirEntry> listing;
    for (uint32_t i = 0; i < names.Length(); i++) {
      std::string name;
      if (!bytesOf(info.Env(), names.Get(i), name)) return info.Env().Undefined();
      listing.push_back({std::move(name), static_cast<uint64_t>(inos.Get(i).ToNumber().DoubleValue()),
                         static_cast<uint32_t>(modes.Get(i).ToNumber().Uint32Value())});
    }
    double offset = num(info, 4);
    if (id && session_) session_->replyDir(id, listing, offset < 0 ? 0 : static_cast<size_t>(offset));
    return info.Env().Undefined();
  }

  // replyDirPlus(id, names: string[], attrs: FuseAttr[], inos: number[], offset, entryTimeout,
  // attrTimeout) -> how many entries went out (the kernel holds a lookup of each with ino != 0)
  Napi::Value replyDirPlus(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id = idArg(info);
    if (!info[1].IsArray() || !info[2].IsArray() || !info[3].IsArray()) {
      typeError(env, "names, attrs and inos must be arrays");
      return env.Undefined();
    }
    Napi::Array names = info[1].As<Napi::Array>();
    Napi::Array attrs = info[2].As<Napi::Array>();
    Napi::Array inos = info[3].As<Napi::Array>();
    if (attrs.Length() != names.Length() || inos.Length() != names.Length()) {
      typeError(env, "names, attrs and inos must have the same length");
      return env.Undefined();
    }
    std::vector<Session::DirEntryPlus> entries(names.Length());
    for (uint32_t i = 0; i < names.Length(); i++) {
      if (!bytesOf(env, names.Get(i), entries[i].name) || !statFrom(env, attrs.Get(i), entries[i].attr)) {
        return env.Undefined();
      }
      entries[i].ino = static_cast<uint64_t>(inos.Get(i).ToNumber().DoubleValue());
    }
    double offset = num(info, 4);
    size_t sent = 0;
    if (id && session_) {
      sent = session_->replyDirPlus(id, entries, offset < 0 ? 0 : static_cast<size_t>(offset), num(info, 5), num(info, 6));
    }
    return Napi::Number::New(env, static_cast<double>(sent));
  }

  // replyReadlink(id, target: byte string)
  Napi::Value replyReadlink(const Napi::CallbackInfo& info) {
    uint32_t id = idArg(info);
    std::string target;
    if (id && bytesOf(info.Env(), info[1], target) && session_) session_->replyReadlink(id, target);
    return info.Env().Undefined();
  }

  // replyStatfs(id, [bsize, blocks, bfree, bavail, files, ffree, namemax])
  Napi::Value replyStatfs(const Napi::CallbackInfo& info) {
    uint32_t id = idArg(info);
    if (!info[1].IsArray()) {
      typeError(info.Env(), "fields must be an array");
      return info.Env().Undefined();
    }
    Napi::Array a = info[1].As<Napi::Array>();
    auto at = [&](uint32_t k) { return static_cast<uint64_t>(a.Get(k).ToNumber().DoubleValue()); };
    struct statvfs sv {};
    sv.f_bsize = sv.f_frsize = at(0);
    sv.f_blocks = at(1);
    sv.f_bfree = at(2);
    sv.f_bavail = at(3);
    sv.f_files = at(4);
    sv.f_ffree = sv.f_favail = at(5);
    sv.f_namemax = at(6);
    if (id && session_) session_->replyStatfs(id, sv);
    return info.Env().Undefined();
  }

  Napi::Value invalidate(const Napi::CallbackInfo& info) {
    if (!session_ || !info[0].IsNumber()) return Napi::Number::New(info.Env(), 0);
    return Napi::Number::New(info.Env(), static_cast<double>(session_->invalidate(static_cast<uint64_t>(num(info, 0)))));
  }

  Napi::Value invalidated(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), session_ ? static_cast<double>(session_->invalidated()) : 1e300);
  }

  Napi::Value stop(const Napi::CallbackInfo& info) {
    shutdown();
    return info.Env().Undefined();
  }

  // serveHits(vnodeTableId, bufferTableId, vnodeI32, vnodeF64, headers, versions, data,
  // blockSize): the reader threads answer cached reads of routed handles themselves.
  // serveHits(): no more (returns once no reader is in the old source).
  Napi::Value serveHits(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!session_ || !owner_) return env.Undefined();
    if (info.Length() == 0) {
      session_->serveHits(nullptr);
      hitViews_.clear();
      return env.Undefined();
    }
    auto table = [&](size_t i) -> std::shared_ptr<addon::SharedTable> {
      return info[i].IsNumber() ? addon::findSharedTable(info[i].As<Napi::Number>().Uint32Value()) : nullptr;
    };
    std::shared_ptr<addon::SharedTable> vnodes = table(0), buffers = table(1);
    if (!vnodes || !buffers) {
      typeError(env, "serveHits: no open RefTable has that id");
      return env.Undefined();
    }
    // The views are over SharedArrayBuffers, which napi_get_arraybuffer_info refuses:
    // the typed array's own info gives its data, offset applied.
    auto view = [&](size_t i, napi_typedarray_type type, void** data, size_t* length) {
      napi_typedarray_type got;
      return info[i].IsTypedArray() &&
             napi_get_typedarray_info(env, info[i], &got, length, data, nullptr, nullptr) == napi_ok && got == type;
    };
    void* p[5];
    size_t n[5];
    if (!view(2, napi_int32_array, &p[0], &n[0]) || !view(3, napi_float64_array, &p[1], &n[1]) ||
        !view(4, napi_int32_array, &p[2], &n[2]) || !view(5, napi_float64_array, &p[3], &n[3]) ||
        !view(6, napi_uint8_array, &p[4], &n[4]) || !info[7].IsNumber()) {
      typeError(env, "serveHits takes two table ids, the cache's five views and its block size");
      return env.Undefined();
    }
    CacheMemory m;
    m.vnodeI32 = static_cast<const int32_t*>(p[0]);
    m.vnodeF64 = static_cast<const double*>(p[1]);
    m.vnodeSlots = static_cast<uint32_t>(std::min(n[0] / cache_layout::kVnodeI32, n[1] / cache_layout::kVnodeF64));
    m.headers = static_cast<int32_t*>(p[2]);
    m.versions = static_cast<const double*>(p[3]);
    m.data = static_cast<const uint8_t*>(p[4]);
    m.blockSize = info[7].As<Napi::Number>().Uint32Value();
    if (m.blockSize == 0) {
      typeError(env, "serveHits: blockSize must be > 0");
      return env.Undefined();
    }
    m.bufferSlots = static_cast<uint32_t>(std::min({n[2] / cache_layout::kHeaderI32, n[3], n[4] / m.blockSize}));
    std::vector<Napi::Reference<Napi::Value>> keep;
    for (size_t i = 2; i <= 6; i++) keep.push_back(Napi::Persistent(info[i]));
    session_->serveHits(std::make_shared<CacheHits>(vnodes, buffers, m, session_->readers()));
    hitViews_ = std::move(keep);
    return env.Undefined();
  }

  // counters() -> { wakes, readerHits }
  Napi::Value counters(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    Session::Counters c = session_ ? session_->counters() : Session::Counters{0, 0};
    o.Set("wakes", static_cast<double>(c.wakes));
    o.Set("readerHits", static_cast<double>(c.readerHits));
    return o;
  }

  Napi::Value ref(const Napi::CallbackInfo& info) {
    if (!released_) tsfn_.Ref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value unref(const Napi::CallbackInfo& info) {
    if (!released_) tsfn_.Unref(info.Env());
    return info.Env().Undefined();
  }

  static Napi::Value timeArray(Napi::Env env, const struct timespec& ts) {
    Napi::Array a = Napi::Array::New(env, 2);
    a.Set(0u, static_cast<double>(ts.tv_sec));
    a.Set(1u, static_cast<double>(ts.tv_nsec));
    return a;
  }

  // Who asks: the request's uid, gid and pid.
  static void setCaller(Napi::Object& o, const Request* r) {
    o.Set("callerUid", r->uid);
    o.Set("callerGid", r->gid);
    o.Set("callerPid", r->pid);
  }

  // A routed data request names its file by the Fid it was routed with.
  void setFid(Napi::Env env, Napi::Object& o, const Request* r) {
    if (consumer_ == 0) return;
    Napi::Array fid = Napi::Array::New(env, 4);
    for (uint32_t i = 0; i < 4; i++) fid.Set(i, r->fid[i]);
    o.Set("fid", fid);
  }

  std::shared_ptr<Session> session_;
  // The cache views the session's hit source reads, kept alive while it may (owner only).
  std::vector<Napi::Reference<Napi::Value>> hitViews_;
  napi_env env_ = nullptr;
  bool hooked_ = false;
  uint32_t consumer_ = 0;
  bool owner_ = false;
  Napi::ThreadSafeFunction tsfn_;
  bool released_ = false;
};

}  // namespace

void initFuse(Napi::Env env, Napi::Object addonExports) {
  Napi::Object exports = Napi::Object::New(env);
  addonExports.Set("fuse", exports);
  exports.Set("FuseSession", FuseSession::define(env));
  Napi::Object ops = Napi::Object::New(env);
  const char* names[] = {"lookup", "forget", "getattr", "setattr", "opendir", "readdir", "releasedir",
                         "open",   "create", "read",    "write",   "flush",   "fsync",   "release",
                         "unlink", "rename", "mkdir",   "rmdir",   "statfs",  "readlink", "symlink",
                         "link",   "mknod",  "readdirplus"};
  for (uint32_t i = 0; i < sizeof names / sizeof names[0]; i++) ops.Set(names[i], i);
  exports.Set("ops", ops);
  Napi::Object setAttr = Napi::Object::New(env);
  setAttr.Set("mode", kSetMode);
  setAttr.Set("uid", kSetUid);
  setAttr.Set("gid", kSetGid);
  setAttr.Set("size", kSetSize);
  setAttr.Set("atime", kSetAtime);
  setAttr.Set("mtime", kSetMtime);
  setAttr.Set("atimeNow", kSetAtimeNow);
  setAttr.Set("mtimeNow", kSetMtimeNow);
  exports.Set("setAttr", setAttr);
}

}  // namespace cmkit::fuse
