/**
 * Fair share of a bounded number of slots between shares (a user, or a user on one
 * volume), after the thread quotas CERN ran on its AFS file servers in 2012: of 256
 * threads, one user could hold at most 60, and at most 30 while anyone else waited.
 *
 * Rules, checked each time a slot frees or a task arrives:
 * - At most `slots` tasks run at once.
 * - A share never runs more than `n2` tasks.
 * - A share running `n1` or more gets no new slot while another share is starved: it has
 *   work waiting and runs fewer than `n1` itself. (Counting only starved shares keeps two
 *   floods from holding each other to n1 while slots stand idle.)
 * - Among the shares that may start a task, turns go round-robin; within a share, FIFO.
 *
 * With `fair: false` the queue is one FIFO over every share, bounded only by `slots`:
 * the design fair share replaces, kept for the benchmark.
 *
 * A task already running is never preempted, so a share may sit above n1 for as long as
 * its running tasks take; what the rules bound is what it is given.
 */

import { invalidArgType } from '../core/errors.js';
import { checkInteger, checkObject } from '../core/validate.js';

export interface FairShareOptions {
  /** Tasks that run at once over all shares. */
  readonly slots: number;
  /** The most one share runs at once. */
  readonly n2: number;
  /** The most one share is brought up to while another share is starved; < n2. */
  readonly n1: number;
  /** false: one FIFO queue, no per-share limits. @default true */
  readonly fair?: boolean;
}

/** What the queue knows of one share, for stats and tests. */
export interface ShareStats {
  readonly running: number;
  readonly waiting: number;
  /** The most this share ever ran at once. */
  readonly peakRunning: number;
  /** The most it was brought up to by a start made while another share was starved. */
  readonly peakStartedWhileOthersStarved: number;
  readonly started: number;
}

interface Task {
  readonly share: string;
  readonly run: () => Promise<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
}

interface Share {
  running: number;
  readonly queue: Task[];
  peakRunning: number;
  peakStartedWhileOthersStarved: number;
  started: number;
}

export class FairShareQueue {
  readonly #slots: number;
  readonly #n2: number;
  readonly #n1: number;
  readonly #fair: boolean;
  readonly #shares = new Map<string, Share>();
  /** Shares with waiting tasks, in turn order (fair mode). */
  readonly #turns: string[] = [];
  /** Every waiting task in arrival order (FIFO mode). */
  readonly #fifo: Task[] = [];
  /** drain() callers, woken when nothing runs or waits. */
  readonly #drained: Array<() => void> = [];
  #running = 0;

  constructor(options: FairShareOptions) {
    checkObject(options, 'options');
    this.#slots = checkInteger(options.slots, 'options.slots', 1, 2 ** 31);
    this.#n2 = checkInteger(options.n2, 'options.n2', 1, this.#slots);
    this.#n1 = checkInteger(options.n1, 'options.n1', 1, this.#n2);
    this.#fair = options.fair ?? true;
    if (typeof this.#fair !== 'boolean') throw invalidArgType('options.fair', 'of type boolean', this.#fair);
  }

  /** Runs `run` when `share` is given a slot; settles as it does. */
  submit<T>(share: string, run: () => Promise<T>): Promise<T> {
    if (typeof share !== 'string') throw invalidArgType('share', 'of type string', share);
    if (typeof run !== 'function') throw invalidArgType('run', 'a function', run);
    return new Promise<T>((resolve, reject) => {
      const task: Task = { share, run, resolve: resolve as (v: unknown) => void, reject };
      const s = this.#share(share);
      if (s.queue.length === 0 && this.#fair) this.#turns.push(share);
      s.queue.push(task);
      if (!this.#fair) this.#fifo.push(task);
      this.#dispatch();
    });
  }

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    let n = 0;
    for (const s of this.#shares.values()) n += s.queue.length;
    return n;
  }

  shareStats(share: string): ShareStats {
    const s = this.#shares.get(share);
    if (s === undefined) return { running: 0, waiting: 0, peakRunning: 0, peakStartedWhileOthersStarved: 0, started: 0 };
    const { running, peakRunning, peakStartedWhileOthersStarved, started } = s;
    return { running, waiting: s.queue.length, peakRunning, peakStartedWhileOthersStarved, started };
  }

  /** Resolves once nothing runs or waits. */
  async drain(): Promise<void> {
    while (this.#running > 0 || this.waiting > 0) {
      await new Promise<void>((resolve) => this.#drained.push(resolve));
    }
  }

  #share(name: string): Share {
    let s = this.#shares.get(name);
    if (s === undefined) {
      s = { running: 0, queue: [], peakRunning: 0, peakStartedWhileOthersStarved: 0, started: 0 };
      this.#shares.set(name, s);
    }
    return s;
  }

  #dispatch(): void {
    while (this.#running < this.#slots) {
      const task = this.#fair ? this.#nextFair() : this.#fifo.shift();
      if (task === undefined) return;
      if (!this.#fair) this.#shares.get(task.share)!.queue.shift();
      this.#start(task);
    }
  }

  /** The next task by the rules above, taken off its queue; undefined if none may start. */
  #nextFair(): Task | undefined {
    const starved = this.#starvedShares();
    for (let k = 0; k < this.#turns.length; k++) {
      const name = this.#turns[k]!;
      const s = this.#shares.get(name)!;
      const othersStarved = starved > (s.running < this.#n1 ? 1 : 0);
      const cap = othersStarved ? this.#n1 : this.#n2;
      if (s.running >= cap) continue;
      this.#turns.splice(k, 1);
      const task = s.queue.shift()!;
      if (s.queue.length > 0) this.#turns.push(name); // to the back: round-robin
      if (othersStarved) s.peakStartedWhileOthersStarved = Math.max(s.peakStartedWhileOthersStarved, s.running + 1);
      return task;
    }
    return undefined;
  }

  /** Shares with work waiting and fewer than n1 running. */
  #starvedShares(): number {
    let n = 0;
    for (const name of this.#turns) if (this.#shares.get(name)!.running < this.#n1) n++;
    return n;
  }

  #start(task: Task): void {
    const s = this.#shares.get(task.share)!;
    this.#running++;
    s.running++;
    s.started++;
    s.peakRunning = Math.max(s.peakRunning, s.running);
    let settled: Promise<unknown>;
    try {
      settled = task.run();
    } catch (e) {
      settled = Promise.reject(e);
    }
    // The slot is free before the submitter hears back, so what it does next sees it free.
    const finished = (): void => {
      this.#running--;
      s.running--;
      this.#dispatch();
      if (this.#running === 0 && this.waiting === 0) for (const wake of this.#drained.splice(0)) wake();
    };
    settled.then(
      (value) => {
        finished();
        task.resolve(value);
      },
      (reason) => {
        finished();
        task.reject(reason);
      },
    );
  }
}
