/**
 * Every error cmkit throws carries a string `code`, so callers can branch on it and it
 * survives being posted out of a worker (structured clone keeps `message` and `name`,
 * and own `code` properties of Error objects).
 *
 * Codes:
 * - `ERR_INVALID_ARG_TYPE` (TypeError): an argument of the wrong type.
 * - `ERR_OUT_OF_RANGE` (RangeError): a number outside its range, NaN, or not an integer.
 * - `ERR_CMKIT_CLOSED` (TypeError): use of a RefTable or RwLock after close, or attach to
 *   one that is closed or unknown.
 * - `ERR_CMKIT_NOT_HELD` (RangeError): release or hold of an entry whose refCount is 0.
 * - `ERR_CMKIT_BAD_SLOT` (RangeError): a slot that names no entry.
 * - `ERR_CMKIT_LOCK_NOT_HELD` (RangeError): release, downgrade or upgrade of a lock this
 *   holder does not hold in that mode.
 * - `ERR_CMKIT_LOCK_HELD` (RangeError): acquiring a lock this holder already holds (locks
 *   are not reentrant).
 * - `ERR_CMKIT_TABLE_FULL` (Error): every entry of a RefTable is held.
 * - `ERR_CMKIT_NO_SUCH_PAG` (TypeError): a PAG id that names no live PAG (logged out).
 * - `ERR_CMKIT_ACCESS_DENIED` (Error): the server grants the caller's PAG no such right.
 * - `ERR_CMKIT_NO_FUSE` (Error): a mount where FUSE cannot be used; the message says why.
 * - `ERR_CMKIT_MOUNT_FAILED` (Error): the kernel refused the mount (raised by the addon's FUSE session).
 *
 * Errors from the addon use the same codes; native/addon/errors.cpp makes them.
 */

export type ErrorCode =
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_OUT_OF_RANGE'
  | 'ERR_CMKIT_CLOSED'
  | 'ERR_CMKIT_NOT_HELD'
  | 'ERR_CMKIT_BAD_SLOT'
  | 'ERR_CMKIT_LOCK_NOT_HELD'
  | 'ERR_CMKIT_LOCK_HELD'
  | 'ERR_CMKIT_TABLE_FULL'
  | 'ERR_CMKIT_NO_SUCH_PAG'
  | 'ERR_CMKIT_ACCESS_DENIED'
  | 'ERR_CMKIT_NO_FUSE'
  | 'ERR_CMKIT_MOUNT_FAILED';

export interface CmkitErrorFields {
  readonly code: ErrorCode;
}

function withCode<E extends Error>(error: E, code: ErrorCode): E & CmkitErrorFields {
  return Object.assign(error, { code });
}

export function typeError(code: ErrorCode, message: string): TypeError & CmkitErrorFields {
  return withCode(new TypeError(message), code);
}

export function rangeError(code: ErrorCode, message: string): RangeError & CmkitErrorFields {
  return withCode(new RangeError(message), code);
}

/** One template for every bad argument, as Node's own messages put it. */
function received(value: unknown): string {
  if (value === null) return 'Received null';
  if (value === undefined) return 'Received undefined';
  if (typeof value === 'function') return 'Received function';
  if (typeof value === 'object') return `Received an instance of ${value.constructor?.name ?? 'Object'}`;
  return `Received type ${typeof value} (${String(value)})`;
}

export function invalidArgType(name: string, expected: string, value: unknown): TypeError {
  return typeError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be ${expected}. ${received(value)}`);
}

export function outOfRange(name: string, range: string, value: unknown): RangeError {
  return rangeError('ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${String(value)}`);
}
