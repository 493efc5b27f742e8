/**
 * The requests a serving thread has in hand: each runs as an async task, counted by op
 * in the mount's shared counters; a task that throws is answered with its errno (and
 * counted as an error), so every request gets exactly one answer. The mounting thread
 * and each request worker keep one.
 */
import { errnoOf } from './errno.js';
import type { FuseRequest, FuseSessionHandle } from './fuse.js';

export class RequestTasks {
  readonly #session: FuseSessionHandle;
  /** Requests served, by op number; the last word counts errors. */
  readonly #counters: Int32Array;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(session: FuseSessionHandle, counters: Int32Array) {
    this.#session = session;
    this.#counters = counters;
  }

  /** Counts `r`; if `serve` is given, runs it and answers `r` with an errno should it throw. */
  run(r: FuseRequest, serve?: () => Promise<void>): void {
    Atomics.add(this.#counters, r.op, 1);
    if (serve === undefined) return;
    let started: Promise<void>;
    try {
      started = serve();
    } catch (e) {
      started = Promise.reject(e); // thrown before its first await: answered all the same
    }
    const task = started.catch((e: unknown) => {
      Atomics.add(this.#counters, this.#counters.length - 1, 1);
      this.#session.replyError(r.id, errnoOf(e));
    });
    this.#inFlight.add(task);
    void task.finally(() => this.#inFlight.delete(task));
  }

  /** Resolves once every task taken so far (and any taken meanwhile) has settled. */
  async settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }
}
