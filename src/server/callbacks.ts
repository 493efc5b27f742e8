import type { Fid } from '../core/fid.js';

/**
 * One client connection's callbacks: the files the server promised to tell it about,
 * and whom to tell. A promise is kept once: after a break the client must ask again
 * (fetch status or data) to be told of the next change.
 */
export class Callbacks {
  readonly #promised = new Set<string>();
  readonly #listeners = new Set<(fid: Fid) => void>();

  /** Adds a listener (a cache manager, and a mount that drops the kernel's copy). */
  onBreak(listener: (fid: Fid) => void): void {
    this.#listeners.add(listener);
  }

  /** The client now caches `fid`: tell it when someone else changes the file. */
  promise(fid: Fid): void {
    this.#promised.add(fid.toString());
  }

  /** Someone else changed `fid`: tell the client, if it was promised. */
  break(fid: Fid): void {
    if (this.#promised.delete(fid.toString())) for (const l of this.#listeners) l(fid);
  }
}
