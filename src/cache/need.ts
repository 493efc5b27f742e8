/**
 * What a locked pass over a file asks for when it stops before it is done: the pass
 * (read, write, prefetch) runs under the vnode lock and never awaits; whatever needs an
 * await (an RPC, a wait on another thread's fetch) it returns as a Need, and
 * locked-pass.ts resolves it with the lock released before the pass goes on.
 */

/** A run of consecutive blocks claimed (state Busy, buffer held) for one fetch. */
export interface Run {
  readonly firstBlock: number;
  readonly slots: number[];
}

export type Need =
  /** Fetch the claimed run. */
  | { readonly kind: 'fetch'; readonly run: Run }
  /** Wait until another thread's fetch of `slot` ends (its state leaves `state`). */
  | { readonly kind: 'busy'; readonly slot: number; readonly state: number }
  /** A buffer is being set up or was changed meanwhile: look again next turn. */
  | { readonly kind: 'retry' }
  /** Every buffer is held: store dirty data to free some. */
  | { readonly kind: 'full' };

export const RETRY: Need = { kind: 'retry' };
export const FULL: Need = { kind: 'full' };
