#include "asymmetric_fence.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cmkit {

namespace {

long membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

bool registerOnce() {
  long supported = membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

}  // namespace

bool asymmetricFenceAvailable() {
  static const bool available = registerOnce();
  return available;
}

// Callers come here right after a seq_cst read-modify-write, itself a full fence on
// this thread; the system call is a full barrier on every other.
void heavyFence() {
  if (asymmetricFenceAvailable()) membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
}

}  // namespace cmkit
