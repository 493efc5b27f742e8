import { rangeError, typeError } from './errors.js';
import { addon } from './native.js';

const S = addon.status;

/**
 * The error for a negative Status from a hot call (native/addon/hot_call.h). Hot calls
 * never throw from native code, so that a worker terminated in the middle of one is never
 * asked to make an error; the facade throws this instead, where JS still runs.
 */
export function statusError(status: number, what: string): Error {
  switch (status) {
    case S.tableFull:
      return Object.assign(new Error(`${what}: every entry is held; nothing can be recycled`), { code: 'ERR_CMKIT_TABLE_FULL' });
    case S.notHeld:
      return rangeError('ERR_CMKIT_NOT_HELD', `${what}: this holder holds no reference to that slot (a disowned one is released with releaseDisowned)`);
    case S.badSlot:
      return rangeError('ERR_CMKIT_BAD_SLOT', `${what}: slot is not a used entry`);
    case S.lockNotHeld:
      return rangeError('ERR_CMKIT_LOCK_NOT_HELD', `${what}: the lock is not held in that mode`);
    case S.closed:
      return typeError('ERR_CMKIT_CLOSED', `${what}: the RefTable is closed`);
    case S.badArgument:
      return typeError('ERR_INVALID_ARG_TYPE', `${what}: an argument of the wrong type`);
    default:
      return Object.assign(new Error(`${what}: unexpected status ${status}`), { code: 'ERR_CMKIT_INTERNAL' });
  }
}
