/** Errors of mount operations, as the errno the kernel is answered with. */
import { constants } from 'node:os';

export const { errno } = constants;

/** An error that a mount operation answers with `code` (a positive errno). */
export function errnoError(code: number): Error & { errno: number } {
  return Object.assign(new Error(`errno ${code}`), { errno: -code });
}

/** The errno a failed operation answers with: the fs error's own, else EACCES, EFBIG or EIO. */
export function errnoOf(e: unknown): number {
  const err = e as { errno?: unknown; code?: unknown };
  if (typeof err?.errno === 'number' && err.errno < 0) return -err.errno;
  if (err?.code === 'ERR_CMKIT_ACCESS_DENIED') return errno.EACCES;
  if (err?.code === 'ERR_OUT_OF_RANGE') return errno.EFBIG;
  return errno.EIO;
}
