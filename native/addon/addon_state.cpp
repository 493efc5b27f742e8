#include "addon_state.h"

#include <mutex>
#include <unordered_set>

#include "../core/rw_lock.h"

namespace cmkit::addon {

namespace {

struct LiveThreads {
  std::mutex mutex;
  std::unordered_set<uint32_t> tokens;
  uint32_t next = 1;
};

LiveThreads& liveThreads() {
  static LiveThreads* live = new LiveThreads();  // never destroyed: threads outlive main's exit
  return *live;
}

}  // namespace

uint32_t AddonState::nextThreadToken() {
  LiveThreads& live = liveThreads();
  std::lock_guard<std::mutex> g(live.mutex);
  uint32_t token = live.next++;
  live.tokens.insert(token);
  return token;
}

bool threadAlive(uint32_t token) {
  LiveThreads& live = liveThreads();
  std::lock_guard<std::mutex> g(live.mutex);
  return live.tokens.count(token) != 0;
}

AddonState::~AddonState() {
  for (Attachment& a : tables) {
    if (a.shared) a.shared->table.retireShard(a.shard);
  }
  {
    LiveThreads& live = liveThreads();
    std::lock_guard<std::mutex> g(live.mutex);
    live.tokens.erase(token);
  }
  // Each word's memory is kept alive by its entry, whatever GC did with the buffer.
  // Threads asleep on a word are not woken from here (only JS can notify); they wait in
  // bounded slices and see the word change.
  for (auto& [word, held] : locks) {
    rwlock::Word w(*word);
    if (held.write) w.releaseWrite();
    for (; held.reads > 0; held.reads--) w.releaseRead();
  }
}

}  // namespace cmkit::addon
