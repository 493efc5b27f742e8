/**
 * Access checks (OpenAFS's cm_access): whether a caller may read or write a file, from
 * the rights cached per vnode and PAG (access-cache.ts) while they are good, else by
 * asking the server as the caller's user.
 *
 * Invariants:
 * - An operation changes nothing before its caller is authorized; a denial is an
 *   ERR_CMKIT_ACCESS_DENIED error.
 * - Rights are cached with the breakSeq read before the RPC: a callback break while the
 *   server answers makes the answer stale at once.
 * - Cached rights are read under the vnode lock in either mode or an optimistic read
 *   (checked after), and stored under the write lock.
 */

import { Rights } from '../server/file-server.js';
import { ANONYMOUS } from './access-cache.js';
import { rpc, type CacheContext, type Caller, type Origin, type Vnode } from './context.js';
import { VnodeI32 } from './layout.js';

/** What cachedRights found: who the caller acts as, and its rights if cached and good. */
interface CachedRights {
  readonly rights: number | undefined;
  readonly userId: number;
  readonly validUntil: number;
  readonly breakSeq: number;
}

/**
 * Who `caller` acts as in v's cell now (the user its token names, until the token
 * expires), and the rights cached for that, if still good.
 */
function cachedRights(cache: CacheContext, v: Vnode, caller: Caller, now: number): CachedRights {
  const token = cache.pags!.token(caller.pag, v.fid.cell, now);
  const userId = token?.userId ?? ANONYMOUS;
  const validUntil = token?.expiresAt ?? Infinity;
  const breakSeq = Atomics.load(cache.v.vnodeI32, v.i + VnodeI32.BreakSeq);
  return { rights: cache.access.lookup(v.slot, caller.pag, userId, breakSeq, now), userId, validUntil, breakSeq };
}

/** Whether cached rights let `caller` do `right` now (no RPC). */
export function cachedRightsAllow(cache: CacheContext, v: Vnode, caller: Caller, right: number): boolean {
  const { rights } = cachedRights(cache, v, caller, Date.now());
  if (rights === undefined || (rights & right) === 0) return false;
  cache.v.count('accessHits');
  return true;
}

/** Lets the operation go on if `caller` may do `right` on v; no caller, no check. */
export async function authorize(cache: CacheContext, v: Vnode, caller: Caller | undefined, right: number, origin: Origin): Promise<void> {
  if (caller === undefined) return;
  await v.lock.readAsync();
  let cached: CachedRights;
  try {
    cached = cachedRights(cache, v, caller, Date.now());
  } finally {
    v.lock.release();
  }
  const { userId, validUntil, breakSeq } = cached;
  let rights = cached.rights;
  if (rights !== undefined) {
    cache.v.count('accessHits');
  } else {
    cache.v.count('accessRpcs');
    const reply = await rpc(cache, () => cache.server.fetchStatus(v.fid, userId === ANONYMOUS ? undefined : { userId }), origin);
    const granted = reply.rights ?? Rights.All;
    rights = granted;
    await v.lock.writeAsync();
    try {
      cache.access.store(v.slot, caller.pag, userId, granted, breakSeq, validUntil);
    } finally {
      v.lock.release();
    }
  }
  if ((rights & right) === 0) {
    const what = right === Rights.Write ? 'write' : 'read';
    const who = userId === ANONYMOUS ? 'anonymous (no usable token)' : `user ${userId}`;
    throw Object.assign(new Error(`PAG ${caller.pag}, as ${who}, may not ${what} ${v.fid}`), { code: 'ERR_CMKIT_ACCESS_DENIED' });
  }
}
