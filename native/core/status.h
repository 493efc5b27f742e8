// Status codes returned by the core. The core never throws; the addon turns each
// non-OK status into a JS error in one place (native/addon/errors.cpp), and exports
// these numbers so that JS never copies them by hand.
#pragma once

#include <cstdint>

namespace cmkit {

enum class Status : int32_t {
  kOk = 0,
  kNotFound = -1,      // findHold: no entry for that Fid
  kTableFull = -2,     // getHold: every entry is held, nothing can be recycled
  kNotHeld = -3,       // release or hold of an entry whose refCount is zero
  kBadSlot = -4,       // a slot index outside the table or never used
  kLockNotHeld = -5,   // an RwLock transition from a mode the word says is not held
  kWouldBlock = -6,    // a try-operation that did not get the lock
  // Statuses of the addon's hot calls, which never throw (native/addon/hot_call.h):
  kBadArgument = -7,   // an argument of the wrong type or out of range
  kClosed = -8,        // a table that was closed or detached on this thread
};

}  // namespace cmkit
