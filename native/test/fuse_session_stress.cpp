// The FUSE session under the sanitizers: a real mount of one read-only file, read from
// the kernel by four reader threads (one cloned descriptor each) and served by C++
// consumer threads (the mounting one and a second that open routes half the handles
// to), or by the reader threads themselves from a hit source that comes and goes, read
// through the kernel by several threads at once while another sends invalidations. Every byte read is checked; then the second consumer leaves, the mount
// is read again by consumer 0 alone, and stop() must end it all. Needs /dev/fuse and the
// right to mount (root); prints why and passes otherwise.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../fuse/fuse_session.h"
#include "stress.h"

using cmkit::fuse::Op;
using cmkit::fuse::Request;
using cmkit::fuse::Session;

namespace {

constexpr uint64_t kFileIno = 2;
constexpr size_t kFileSize = 3 * 1024 * 1024 + 123;
constexpr uint32_t kFid[4] = {1, 2, 3, 4};

uint8_t byteAt(size_t i) { return static_cast<uint8_t>(i * 131 + i / 4096); }

struct stat attrOf(uint64_t ino) {
  struct stat st {};
  st.st_ino = ino;
  st.st_nlink = 1;
  if (ino == kFileIno) {
    st.st_mode = S_IFREG | 0444;
    st.st_size = kFileSize;
  } else {
    st.st_mode = S_IFDIR | 0555;
  }
  return st;
}

// One serving thread: sleeps until its wake, then answers everything queued for it.
class Server {
 public:
  std::function<void()> wake() {
    return [this] {
      std::lock_guard<std::mutex> g(mu_);
      woken_ = true;
      cv_.notify_one();
    };
  }

  void start(Session* s, uint32_t consumer, std::atomic<uint32_t>* routeTo) {
    session_ = s;
    consumer_ = consumer;
    routeTo_ = routeTo;
    thread_ = std::thread([this] { loop(); });
  }

  void finish() {
    {
      std::lock_guard<std::mutex> g(mu_);
      done_ = true;
      cv_.notify_one();
    }
    thread_.join();
  }

  std::atomic<uint64_t> served{0};

 private:
  void loop() {
    for (;;) {
      {
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait_for(g, std::chrono::milliseconds(50), [this] { return woken_ || done_; });
        if (done_) return;
        woken_ = false;
      }
      for (Request* r : session_->take(consumer_)) serve(r);
    }
  }

  void serve(Request* r) {
    served++;
    uint32_t id = r->id;
    switch (r->op) {
      case Op::Forget:
        delete r;  // answered by the loop thread; the serving thread only frees it
        return;
      case Op::Lookup:
        if (r->ino == 1 && r->name == "f") session_->replyEntry(id, attrOf(kFileIno), 0, 0);
        else session_->replyError(id, ENOENT);
        return;
      case Op::Getattr:
        session_->replyAttr(id, attrOf(r->ino), 0);
        return;
      case Op::Open: {
        uint64_t fh = nextFh_++;
        uint32_t to = routeTo_->load();
        if (to != 0 && fh % 2 == 0) session_->route(fh, to, kFid);
        session_->replyOpen(id, fh, false, false);
        return;
      }
      case Op::Read: {
        CHECK(r->consumer == consumer_);
        if (consumer_ != 0) CHECK(r->fid[0] == kFid[0] && r->fid[3] == kFid[3]);
        size_t off = static_cast<size_t>(r->offset);
        size_t n = off >= kFileSize ? 0 : std::min<size_t>(r->size, kFileSize - off);
        std::vector<char> out(n);
        for (size_t i = 0; i < n; i++) out[i] = static_cast<char>(byteAt(off + i));
        session_->replyData(id, out.data(), n);
        return;
      }
      case Op::Release:
        session_->unroute(r->fh);
        session_->replyError(id, 0);
        return;
      case Op::Flush:
      case Op::Opendir:
      case Op::Releasedir:
        if (r->op == Op::Opendir) session_->replyOpen(id, 1, false, false);
        else session_->replyError(id, 0);
        return;
      case Op::Readdir:
        session_->replyDir(id, {{".", 1, S_IFDIR}, {"..", 1, S_IFDIR}, {"f", kFileIno, S_IFREG}},
                           static_cast<size_t>(r->offset));
        return;
      default:
        session_->replyError(id, ENOSYS);
        return;
    }
  }

  Session* session_ = nullptr;
  uint32_t consumer_ = 0;
  std::atomic<uint32_t>* routeTo_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
  bool done_ = false;
  static std::atomic<uint64_t> nextFh_;
};
std::atomic<uint64_t> Server::nextFh_{1};

// Reads a reader thread answers itself: the first half of the file, for routed handles
// (the rest misses and goes to the consumer the handle is routed to).
class StressHits : public cmkit::fuse::HitSource {
 public:
  explicit StressHits(uint32_t readers) : calls_(readers) {}
  int64_t read(uint32_t reader, const uint32_t fid[4], uint64_t offset, uint32_t size, char* out) override {
    CHECK(reader < calls_.size());
    calls_[reader]++;  // each reader only ever touches its own
    CHECK(fid[0] == kFid[0] && fid[3] == kFid[3]);
    if (offset + size > kFileSize / 2) return -1;
    for (uint32_t i = 0; i < size; i++) out[i] = static_cast<char>(byteAt(offset + i));
    return size;
  }

 private:
  std::vector<uint64_t> calls_;
};

// Opens the file `rounds` times and checks random ranges of it on each open.
void readRounds(const std::string& path, uint64_t seed, unsigned rounds) {
  std::mt19937_64 rng(seed);
  std::vector<char> buf(300 * 1024);
  for (unsigned k = 0; k < rounds; k++) {
    int fd = open(path.c_str(), O_RDONLY);
    CHECK(fd >= 0);
    for (int j = 0; j < 8; j++) {
      size_t off = rng() % (kFileSize + 4096);
      size_t len = 1 + rng() % buf.size();
      ssize_t got = pread(fd, buf.data(), len, static_cast<off_t>(off));
      size_t want = off >= kFileSize ? 0 : std::min(len, kFileSize - off);
      CHECK(got == static_cast<ssize_t>(want));
      for (size_t i = 0; i < want; i++) CHECK(static_cast<uint8_t>(buf[i]) == byteAt(off + i));
    }
    CHECK(close(fd) == 0);
  }
}

void readPhase(const std::string& file, uint64_t seed, unsigned threads, unsigned rounds, Session* s) {
  std::atomic<bool> reading{true};
  std::thread invalidator([&] {
    while (reading.load()) {
      s->invalidate(kFileIno);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  std::vector<std::thread> readers;
  for (unsigned t = 0; t < threads; t++) readers.emplace_back(readRounds, file, seed + t, rounds);
  for (auto& r : readers) r.join();
  reading = false;
  invalidator.join();
}

}  // namespace

int main(int argc, char** argv) {
  auto opt = cmkit::stress::parseOptions(argc, argv, 60, 3);
  std::printf("fuse_session_stress seed %llu\n", static_cast<unsigned long long>(opt.seed));
  if (access("/dev/fuse", R_OK | W_OK) != 0 || geteuid() != 0) {
    std::printf("skipped: needs /dev/fuse and root\n");
    return 0;
  }
  char dir[] = "/tmp/cmkit-fuse-stress-XXXXXX";
  CHECK(mkdtemp(dir) != nullptr);
  const std::string file = std::string(dir) + "/f";

  Server main0;
  Server second;
  std::atomic<uint32_t> routeTo{0};
  std::string error;
  // More readers than the default: requests of one file arrive on several descriptors.
  std::shared_ptr<Session> s = Session::mount(dir, {"fsname=cmkit-stress"}, main0.wake(), error, 4);
  if (!s) {
    std::printf("skipped: %s\n", error.c_str());
    rmdir(dir);
    return 0;
  }
  CHECK(Session::find(s->id()) == s);
  main0.start(s.get(), 0, &routeTo);
  uint32_t c2 = s->addConsumer(second.wake());
  CHECK(c2 != 0);
  second.start(s.get(), c2, &routeTo);
  routeTo = c2;

  // Reader threads answer hits meanwhile, their source put in and taken out again and
  // again: serveHits(nullptr) must wait for every reader to be out of the old one.
  std::atomic<bool> toggling{true};
  std::thread toggler([&] {
    while (toggling.load()) {
      s->serveHits(std::make_shared<StressHits>(s->readers()));
      std::this_thread::sleep_for(std::chrono::microseconds(500));
      s->serveHits(nullptr);
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  });
  readPhase(file, opt.seed, opt.threads, static_cast<unsigned>(opt.opsPerThread), s.get());
  toggling = false;
  toggler.join();
  CHECK(second.served.load() > 0);  // routed handles reached the second consumer
  CHECK(s->counters().readerHits > 0);  // and some of their reads were reader threads' own

  // The second consumer leaves: later handles and reads are all consumer 0's.
  routeTo = 0;
  s->removeConsumer(c2);
  second.finish();
  uint64_t before = main0.served.load();
  readPhase(file, opt.seed + 100, opt.threads, static_cast<unsigned>(opt.opsPerThread / 2), s.get());
  CHECK(main0.served.load() > before);

  s->stop();
  CHECK(!s->alive());
  main0.finish();
  std::vector<Request*> none = s->take(0);
  CHECK(none.empty());
  s.reset();
  CHECK(rmdir(dir) == 0);  // unmounted: the directory is empty and free again
  std::printf("ok: %llu + %llu requests served\n", static_cast<unsigned long long>(main0.served.load()),
              static_cast<unsigned long long>(second.served.load()));
  return 0;
}
