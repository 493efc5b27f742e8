// The backing directory calls (native/core/backing_dir.h), each run on libuv's thread
// pool and settled as a promise, so a slow backing mount never stalls an event loop.
// Paths and names are byte strings: one JS char per byte (latin1), so any byte but '/'
// and NUL survives the trip. A failure rejects with an Error carrying `errno` (negative,
// as Node's fs errors do), `code` ("ENOENT") and `syscall`.
//
// Attributes travel as a Float64Array of kAttrWords per node:
//   [dev, inoLow32, inoHigh32, mode, nlink, uid, gid, rdev, size, blocks,
//    atimeSec, atimeNsec, mtimeSec, mtimeNsec, ctimeSec, ctimeNsec, btimeSec, btimeNsec]
#include <array>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../core/backing_dir.h"
#include "bindings.h"
#include "errors.h"

namespace cmkit::addon {

namespace {

using backing::Attr;

constexpr size_t kAttrWords = 18;

void putAttr(const Attr& a, double* w) {
  const double v[kAttrWords] = {
      static_cast<double>(a.dev),      static_cast<double>(a.ino & 0xffffffffu), static_cast<double>(a.ino >> 32),
      static_cast<double>(a.mode),     static_cast<double>(a.nlink),            static_cast<double>(a.uid),
      static_cast<double>(a.gid),      static_cast<double>(a.rdev),             static_cast<double>(a.size),
      static_cast<double>(a.blocks),   static_cast<double>(a.atimeSec),         static_cast<double>(a.atimeNsec),
      static_cast<double>(a.mtimeSec), static_cast<double>(a.mtimeNsec),        static_cast<double>(a.ctimeSec),
      static_cast<double>(a.ctimeNsec), static_cast<double>(a.btimeSec),        static_cast<double>(a.btimeNsec)};
  std::memcpy(w, v, sizeof v);
}

Napi::Value attrValue(Napi::Env env, const Attr& a) {
  Napi::Float64Array out = Napi::Float64Array::New(env, kAttrWords);
  putAttr(a, out.Data());
  return out;
}

Napi::Value latin1(Napi::Env env, const std::string& s) {
  napi_value v;
  napi_create_string_latin1(env, s.data(), s.size(), &v);
  return Napi::Value(env, v);
}

// One call on the thread pool: `run` there, `result` back on the JS thread.
class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, const char* syscall, std::function<int64_t()> run, std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env, syscall),
        deferred_(Napi::Promise::Deferred::New(env)),
        syscall_(syscall),
        run_(std::move(run)),
        result_(std::move(result)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

  void Execute() override { status_ = run_(); }

  void OnOK() override {
    Napi::Env env = Env();
    if (status_ >= 0) {
      deferred_.Resolve(result_ ? result_(env) : Napi::Number::New(env, static_cast<double>(status_)));
      return;
    }
    int e = static_cast<int>(-status_);
    const char* name = strerrorname_np(e);
    std::string code = name != nullptr ? name : "EIO";
    Napi::Error error = Napi::Error::New(env, code + ": " + std::strerror(e) + ", " + syscall_);
    error.Set("errno", Napi::Number::New(env, -e));
    error.Set("code", Napi::String::New(env, code));
    error.Set("syscall", Napi::String::New(env, syscall_));
    deferred_.Reject(error.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  const char* syscall_;
  std::function<int64_t()> run_;
  std::function<Napi::Value(Napi::Env)> result_;
  int64_t status_ = 0;
};

Napi::Value queue(Napi::Env env, const char* syscall, std::function<int64_t()> run,
                  std::function<Napi::Value(Napi::Env)> result = nullptr) {
  auto* job = new Job(env, syscall, std::move(run), std::move(result));
  Napi::Promise p = job->promise();
  job->Queue();  // deletes itself once settled
  return p;
}

bool stringArg(const Napi::CallbackInfo& info, size_t i, const char* name, std::string& out) {
  if (!info[i].IsString()) {
    throwTypeError(info.Env(), "ERR_INVALID_ARG_TYPE", std::string("The \"") + name + "\" argument must be a string");
    return false;
  }
  size_t len = 0;
  napi_get_value_string_latin1(info.Env(), info[i], nullptr, 0, &len);
  out.resize(len);
  napi_get_value_string_latin1(info.Env(), info[i], out.data(), len + 1, &len);
  return true;
}

bool numberArg(const Napi::CallbackInfo& info, size_t i, const char* name, double& out) {
  if (!info[i].IsNumber()) {
    throwTypeError(info.Env(), "ERR_INVALID_ARG_TYPE", std::string("The \"") + name + "\" argument must be a number");
    return false;
  }
  out = info[i].As<Napi::Number>().DoubleValue();
  return true;
}

// Reads the leading (root, path) pair every call takes.
bool rootAndPath(const Napi::CallbackInfo& info, int& root, std::string& path) {
  double r;
  if (!numberArg(info, 0, "root", r) || !stringArg(info, 1, "path", path)) return false;
  root = static_cast<int>(r);
  return true;
}

Napi::Value openRootCall(const Napi::CallbackInfo& info) {
  std::string path;
  if (!stringArg(info, 0, "path", path)) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), backing::openRoot(path));
}

Napi::Value lstatCall(const Napi::CallbackInfo& info) {
  int root;
  std::string path;
  if (!rootAndPath(info, root, path)) return info.Env().Undefined();
  auto a = std::make_shared<Attr>();
  return queue(info.Env(), "lstat", [=] { return backing::lstat(root, path, *a); },
               [a](Napi::Env env) { return attrValue(env, *a); });
}

// openFile(root, path, flags, mode, uid, gid) -> fd
Napi::Value openFileCall(const Napi::CallbackInfo& info) {
  int root;
  std::string path;
  double flags, mode, uid, gid;
  if (!rootAndPath(info, root, path) || !numberArg(info, 2, "flags", flags) || !numberArg(info, 3, "mode", mode) ||
      !numberArg(info, 4, "uid", uid) || !numberArg(info, 5, "gid", gid)) {
    return info.Env().Undefined();
  }
  return queue(info.Env(), "open", [=] {
    return backing::openFile(root, path, static_cast<int>(flags), static_cast<uint32_t>(mode),
                             static_cast<uint32_t>(uid), static_cast<uint32_t>(gid));
  });
}

// mkdir(root, path, mode, uid, gid) and mknod(root, path, mode, rdev, uid, gid) -> attr
Napi::Value mkdirCall(const Napi::CallbackInfo& info) {
  int root;
  std::string path;
  double mode, uid, gid;
  if (!rootAndPath(info, root, path) || !numberArg(info, 2, "mode", mode) || !numberArg(info, 3, "uid", uid) ||
      !numberArg(info, 4, "gid", gid)) {
    return info.Env().Undefined();
  }
  auto a = std::make_shared<Attr>();
  return queue(
      info.Env(), "mkdir",
      [=] {
        return backing::mkdir(root, path, static_cast<uint32_t>(mode), static_cast<uint32_t>(uid),
                              static_cast<uint32_t>(gid), *a);
      },
      [a](Napi::Env env) { return attrValue(env, *a); });
}

Napi::Value mknodCall(const Napi::CallbackInfo& info) {
  int root;
  std::string path;
  double mode, rdev, uid, gid;
  if (!rootAndPath(info, root, path) || !numberArg(info, 2, "mode", mode) || !numberArg(info, 3, "rdev", rdev) ||
      !numberArg(info, 4, "uid", uid) || !numberArg(info, 5, "gid", gid)) {
    return info.Env().Undefined();
  }
  auto a = std::make_shared<Attr>();
  return queue(
      info.Env(), "mknod",
      [=] {
        return backing::mknod(root, path, static_cast<uint32_t>(mode), static_cast<uint64_t>(rdev),
                              static_cast<uint32_t>(uid), static_cast<uint32_t>(gid), *a);
      },
      [a](Napi::Env env) { return attrValue(env, *a); });
}

// symlink(root, target, path, uid, gid) -> attr
Napi::Value symlinkCall(const Napi::CallbackInfo& info) {
  double r, uid, gid;
  std::string target, path;
  if (!numberArg(info, 0, "root", r) || !stringArg(info, 1, "target", target) || !stringArg(info, 2, "path", path) ||
      !numberArg(info, 3, "uid", uid) || !numberArg(info, 4, "gid", gid)) {
    return info.Env().Undefined();
  }
  int root = static_cast<int>(r);
  auto a = std::make_shared<Attr>();
  return queue(
      info.Env(), "symlink",
      [=] {
        return backing::symlink(root, target, path, static_cast<uint32_t>(uid), static_cast<uint32_t>(gid), *a);
      },
      [a](Napi::Env env) { return attrValue(env, *a); });
}

Napi::Value readlinkCall(const Napi::CallbackInfo& info) {
  int root;
  std::string path;
  if (!rootAndPath(info, root, path)) return info.Env().Undefined();
  auto out = std::make_shared<std::string>();
  return queue(info.Env(), "readlink", [=] { return backing::readlink(root, path, *out); },
               [out](Napi::Env env) { return latin1(env, *out); });
}

// link(root, from, to) -> attr of the new name
Napi::Value linkCall(const Napi::CallbackInfo& info) {
  int root;
  std::string from, to;
  if (!rootAndPath(info, root, from) || !stringArg(info, 2, "to", to)) return info.Env().Undefined();
  auto a = std::make_shared<Attr>();
  return queue(info.Env(), "link", [=] { return backing::link(root, from, to, *a); },
               [a](Napi::Env env) { return attrValue(env, *a); });
}

// unlink(root, path, directory)
Napi::Value unlinkCall(const Napi::CallbackInfo& info) {
  int root;
  std::string path;
  if (!rootAndPath(info, root, path)) return info.Env().Undefined();
  bool dir = info[2].ToBoolean().Value();
  return queue(info.Env(), dir ? "rmdir" : "unlink", [=] { return backing::unlink(root, path, dir); });
}

// rename(root, from, to, flags)
Napi::Value renameCall(const Napi::CallbackInfo& info) {
  int root;
  std::string from, to;
  double flags;
  if (!rootAndPath(info, root, from) || !stringArg(info, 2, "to", to) || !numberArg(info, 3, "flags", flags)) {
    return info.Env().Undefined();
  }
  return queue(info.Env(), "rename", [=] { return backing::rename(root, from, to, static_cast<unsigned>(flags)); });
}

// setattr(root, path, change: Float64Array [which, uid, gid, mode, atimeSec, atimeNsec,
// mtimeSec, mtimeNsec]; which: bit 0 uid, bit 1 gid, bit 2 mode) -> attr
Napi::Value setattrCall(const Napi::CallbackInfo& info) {
  int root;
  std::string path;
  if (!rootAndPath(info, root, path)) return info.Env().Undefined();
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[2].As<Napi::Float64Array>().ElementLength() != 8) {
    throwTypeError(info.Env(), "ERR_INVALID_ARG_TYPE", "The \"change\" argument must be a Float64Array of 8");
    return info.Env().Undefined();
  }
  const double* w = info[2].As<Napi::Float64Array>().Data();
  backing::AttrChange c;
  auto which = static_cast<uint32_t>(w[0]);
  c.setUid = (which & 1) != 0;
  c.setGid = (which & 2) != 0;
  c.setMode = (which & 4) != 0;
  c.uid = static_cast<uint32_t>(w[1]);
  c.gid = static_cast<uint32_t>(w[2]);
  c.mode = static_cast<uint32_t>(w[3]);
  c.atime = {static_cast<int64_t>(w[4]), static_cast<int64_t>(w[5])};
  c.mtime = {static_cast<int64_t>(w[6]), static_cast<int64_t>(w[7])};
  auto a = std::make_shared<Attr>();
  return queue(info.Env(), "setattr", [=] { return backing::setattr(root, path, c, *a); },
               [a](Napi::Env env) { return attrValue(env, *a); });
}

// readdirPlus(root, path) -> { names: string[], attrs: Float64Array }
Napi::Value readdirPlusCall(const Napi::CallbackInfo& info) {
  int root;
  std::string path;
  if (!rootAndPath(info, root, path)) return info.Env().Undefined();
  auto entries = std::make_shared<std::vector<backing::Entry>>();
  return queue(info.Env(), "readdir", [=] { return backing::readdirPlus(root, path, *entries); },
               [entries](Napi::Env env) {
                 Napi::Array names = Napi::Array::New(env, entries->size());
                 Napi::Float64Array attrs = Napi::Float64Array::New(env, entries->size() * kAttrWords);
                 for (size_t i = 0; i < entries->size(); i++) {
                   names.Set(static_cast<uint32_t>(i), latin1(env, (*entries)[i].name));
                   putAttr((*entries)[i].attr, attrs.Data() + i * kAttrWords);
                 }
                 Napi::Object out = Napi::Object::New(env);
                 out.Set("names", names);
                 out.Set("attrs", attrs);
                 return out;
               });
}

Napi::Value statfsCall(const Napi::CallbackInfo& info) {
  double r;
  if (!numberArg(info, 0, "root", r)) return info.Env().Undefined();
  int root = static_cast<int>(r);
  auto out = std::make_shared<std::array<uint64_t, 7>>();
  return queue(info.Env(), "statfs", [=] { return backing::statfs(root, out->data()); },
               [out](Napi::Env env) {
                 Napi::Float64Array a = Napi::Float64Array::New(env, 7);
                 for (size_t i = 0; i < 7; i++) a[i] = static_cast<double>((*out)[i]);
                 return a;
               });
}

Napi::Value maxFileSizeCall(const Napi::CallbackInfo& info) {
  double r;
  if (!numberArg(info, 0, "root", r)) return info.Env().Undefined();
  int root = static_cast<int>(r);
  return queue(info.Env(), "maxFileSize", [=] { return backing::maxFileSize(root); });
}

}  // namespace

void initBacking(Napi::Env env, Napi::Object exports) {
  Napi::Object b = Napi::Object::New(env);
  b.Set("attrWords", Napi::Number::New(env, kAttrWords));
  b.Set("openRoot", Napi::Function::New(env, openRootCall, "openRoot"));
  b.Set("lstat", Napi::Function::New(env, lstatCall, "lstat"));
  b.Set("openFile", Napi::Function::New(env, openFileCall, "openFile"));
  b.Set("mkdir", Napi::Function::New(env, mkdirCall, "mkdir"));
  b.Set("mknod", Napi::Function::New(env, mknodCall, "mknod"));
  b.Set("symlink", Napi::Function::New(env, symlinkCall, "symlink"));
  b.Set("readlink", Napi::Function::New(env, readlinkCall, "readlink"));
  b.Set("link", Napi::Function::New(env, linkCall, "link"));
  b.Set("unlink", Napi::Function::New(env, unlinkCall, "unlink"));
  b.Set("rename", Napi::Function::New(env, renameCall, "rename"));
  b.Set("setattr", Napi::Function::New(env, setattrCall, "setattr"));
  b.Set("readdirPlus", Napi::Function::New(env, readdirPlusCall, "readdirPlus"));
  b.Set("statfs", Napi::Function::New(env, statfsCall, "statfs"));
  b.Set("maxFileSize", Napi::Function::New(env, maxFileSizeCall, "maxFileSize"));
  exports.Set("backing", b);
}

}  // namespace cmkit::addon
