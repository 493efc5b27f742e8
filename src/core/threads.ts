import { addon } from './native.js';
import { checkUint32 } from './validate.js';

/**
 * This thread's token: unique in the process and never reused. Shared state can name the
 * thread that owns something (a buffer being fetched) by it.
 */
export const threadToken: number = addon.threadToken;

/** Whether the thread that has `token` is still running (its environment not torn down). */
export function threadAlive(token: number): boolean {
  return addon.threadAlive(checkUint32(token, 'token'));
}
