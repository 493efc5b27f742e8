import { invalidArgType, rangeError } from './errors.js';
import { addon } from './native.js';
import { statusError } from './status-error.js';
import { checkObject, checkUint32 } from './validate.js';

const binding = addon.rwLock;

/** Structured-clonable: post it to a worker and call RwLock.attach there. */
export interface RwLockDescriptor {
  readonly kind: 'cmkit.RwLock';
  /** Lock words, over a SharedArrayBuffer. */
  readonly words: Int32Array;
  readonly index: number;
  /** The write sequence's word in `words`, for optimistic reads; absent without one. */
  readonly seqIndex?: number;
}

export type RwLockMode = 'none' | 'read' | 'write';

/** Bytes given to a lock that gets a SharedArrayBuffer of its own: a cache line, so two
 * such locks never share one. */
const OWN_BUFFER_BYTES = 64;

/**
 * The longest a waiter sleeps before looking at the word again. Releases wake sleepers at
 * once; this bound is for the release no one can announce: a thread that exits holding
 * the lock has it released by native code, which cannot wake JS waiters.
 */
const WAIT_SLICE_MS = 20;

/**
 * A reader/writer lock with upgrade and downgrade, whose whole state is one 32-bit word
 * in shared memory. The rules (modes, what may overlap, how waiters are woken) are stated
 * in native/core/rw_lock.h, which implements every transition.
 *
 * An RwLock object is one holder: it holds the lock in at most one mode at a time and is
 * not reentrant, so acquiring again while holding is an error rather than a deadlock.
 * Threads, or async tasks on one thread, that hold the same lock at once each use their
 * own RwLock object over the same word: `RwLock.attach(lock.descriptor)`.
 *
 * Waiting happens in JS, on the lock word: `read()` and `write()` sleep in Atomics.wait
 * (so `worker.terminate()` still interrupts them); `readAsync()` and `writeAsync()` use
 * Atomics.waitAsync and keep the event loop running, for the main thread.
 */
export class RwLock {
  readonly #words: Int32Array;
  readonly #index: number;
  /** The write sequence (odd while a writer holds the lock), or -1 without one. */
  readonly #seq: number;
  #mode: RwLockMode = 'none';
  #acquiring = false;

  /**
   * With no arguments, a new lock with a word of its own. With
   * `words` (an Int32Array over a SharedArrayBuffer) and `index`, a holder of the lock
   * whose word is `words[index]`; a zeroed word is a free lock. `seqIndex` names a second
   * word that every holder of the lock keeps as its write sequence, for optimisticRead.
   */
  constructor(words?: Int32Array, index = 0, seqIndex?: number) {
    if (words === undefined) {
      this.#words = new Int32Array(new SharedArrayBuffer(OWN_BUFFER_BYTES));
      this.#index = 0;
      this.#seq = -1;
      return;
    }
    if (!(words instanceof Int32Array) || !(words.buffer instanceof SharedArrayBuffer)) {
      throw invalidArgType('words', 'an Int32Array over a SharedArrayBuffer', words);
    }
    checkUint32(index, 'index');
    if (index >= words.length) {
      throw rangeError('ERR_OUT_OF_RANGE', `The value of "index" is out of range. It must be < ${words.length}. Received ${index}`);
    }
    this.#words = words;
    this.#index = index;
    if (seqIndex === undefined) {
      this.#seq = -1;
      return;
    }
    checkUint32(seqIndex, 'seqIndex');
    if (seqIndex >= words.length || seqIndex === index) {
      throw rangeError('ERR_OUT_OF_RANGE', `The value of "seqIndex" is out of range. It must be < ${words.length} and not "index". Received ${seqIndex}`);
    }
    this.#seq = seqIndex;
  }

  /** Another holder of the lock a descriptor names, usually on another thread. */
  static attach(descriptor: RwLockDescriptor): RwLock {
    checkObject(descriptor, 'descriptor');
    if (descriptor.kind !== 'cmkit.RwLock') {
      throw invalidArgType('descriptor', 'an RwLock descriptor', descriptor);
    }
    return new RwLock(descriptor.words, descriptor.index, descriptor.seqIndex);
  }

  get descriptor(): RwLockDescriptor {
    const d = { kind: 'cmkit.RwLock', words: this.#words, index: this.#index } as const;
    return this.#seq < 0 ? d : { ...d, seqIndex: this.#seq };
  }

  /**
   * An optimistic read, as in Java's StampedLock: a stamp to pass to `validate` after
   * reading without the lock, or -1 while a writer holds it. It writes nothing, so
   * readers on many threads never contend; what they read may be torn by a writer, and
   * is to be used only if `validate` says no writer came in between. Only for locks made
   * with a seqIndex: the sequence costs every write transition two atomic operations.
   */
  optimisticRead(): number {
    if (this.#seq < 0) throw rangeError('ERR_OUT_OF_RANGE', 'RwLock.optimisticRead: this lock has no write sequence (seqIndex)');
    const s = Atomics.load(this.#words, this.#seq);
    return (s & 1) === 0 ? s : -1;
  }

  /** Whether no writer held the lock since `optimisticRead` returned `stamp`. */
  validate(stamp: number): boolean {
    return stamp >= 0 && Atomics.load(this.#words, this.#seq) === stamp;
  }

  /** The mode this holder has the lock in. */
  get mode(): RwLockMode {
    return this.#mode;
  }

  tryRead(): boolean {
    this.#expect('none', 'RwLock.tryRead');
    if (!took(binding.tryRead(this.#words, this.#index), 'RwLock.tryRead')) return false;
    this.#mode = 'read';
    return true;
  }

  tryWrite(): boolean {
    this.#expect('none', 'RwLock.tryWrite');
    if (!took(binding.tryWrite(this.#words, this.#index), 'RwLock.tryWrite')) return false;
    this.#enterWrite();
    return true;
  }

  /** Takes a read share, sleeping while a writer holds or waits. */
  read(): void {
    this.#expect('none', 'RwLock.read');
    this.#waitFor(false);
    this.#mode = 'read';
  }

  /** Takes the write lock, sleeping while anyone holds the lock. */
  write(): void {
    this.#expect('none', 'RwLock.write');
    this.#waitFor(true);
    this.#enterWrite();
  }

  async readAsync(): Promise<void> {
    this.#expect('none', 'RwLock.readAsync');
    this.#acquiring = true; // so a second acquire or a release on this holder fails at once
    try {
      await this.#waitForAsync(false);
    } finally {
      this.#acquiring = false;
    }
    this.#mode = 'read';
  }

  async writeAsync(): Promise<void> {
    this.#expect('none', 'RwLock.writeAsync');
    this.#acquiring = true; // so a second acquire or a release on this holder fails at once
    try {
      await this.#waitForAsync(true);
    } finally {
      this.#acquiring = false;
    }
    this.#enterWrite();
  }

  /**
   * read -> write without waiting, when this holder is the only reader. Returns false
   * (still holding the read share) when others read too.
   */
  tryUpgrade(): boolean {
    this.#expect('read', 'RwLock.tryUpgrade');
    if (!took(binding.tryUpgrade(this.#words, this.#index), 'RwLock.tryUpgrade')) return false;
    this.#enterWrite();
    return true;
  }

  /**
   * read -> write. Immediate when this holder is the only reader, and then returns false.
   * Otherwise gives up the read share, waits as the next writer and returns true: another
   * writer may have run in between, so re-validate whatever was read under the share.
   */
  upgrade(): boolean {
    this.#expect('read', 'RwLock.upgrade');
    if (took(binding.tryUpgrade(this.#words, this.#index), 'RwLock.upgrade')) {
      this.#enterWrite();
      return false;
    }
    this.#wake(binding.releaseReadForUpgrade(this.#words, this.#index), 'RwLock.upgrade');
    this.#mode = 'none';
    this.#waitFor(true);
    this.#enterWrite();
    return true;
  }

  /** write -> read atomically: no writer gets in between; waiting readers are woken. */
  downgrade(): void {
    this.#expect('write', 'RwLock.downgrade');
    this.#leaveWrite();
    this.#wake(binding.downgrade(this.#words, this.#index), 'RwLock.downgrade');
    this.#mode = 'read';
  }

  /** Releases whichever mode this holder has. */
  release(): void {
    const mode = this.#mode;
    if (mode === 'none' || this.#acquiring) throw lockNotHeld('RwLock.release', 'none');
    if (mode === 'write') this.#leaveWrite();
    const wake = mode === 'read'
      ? binding.releaseRead(this.#words, this.#index)
      : binding.releaseWrite(this.#words, this.#index);
    this.#mode = 'none';
    this.#wake(wake, 'RwLock.release');
  }

  // Only the write holder changes the sequence, so a load and a store do: odd from here
  // until #leaveWrite. A writer that died holding the lock left it odd; the next one
  // makes it even again.
  #enterWrite(): void {
    this.#mode = 'write';
    if (this.#seq >= 0) Atomics.store(this.#words, this.#seq, Atomics.load(this.#words, this.#seq) | 1);
  }

  #leaveWrite(): void {
    if (this.#seq >= 0) Atomics.store(this.#words, this.#seq, (Atomics.load(this.#words, this.#seq) | 1) + 1);
  }

  #expect(mode: RwLockMode, what: string): void {
    if (this.#acquiring) {
      throw rangeError('ERR_CMKIT_LOCK_HELD', `${what}: an async acquire on this holder is still waiting`);
    }
    if (this.#mode === mode) return;
    if (mode === 'none') {
      throw rangeError('ERR_CMKIT_LOCK_HELD', `${what}: this holder already has the lock in ${this.#mode} mode (RwLock is not reentrant)`);
    }
    throw lockNotHeld(what, mode);
  }

  #waitFor(forWrite: boolean): void {
    const words = this.#words;
    const index = this.#index;
    const what = forWrite ? 'RwLock.write' : 'RwLock.read';
    while (!took(forWrite ? binding.tryWrite(words, index) : binding.tryRead(words, index), what)) {
      const value = binding.prepareWait(words, index, forWrite);
      if (value !== 0) Atomics.wait(words, index, value, WAIT_SLICE_MS);
    }
  }

  async #waitForAsync(forWrite: boolean): Promise<void> {
    const words = this.#words;
    const index = this.#index;
    const what = forWrite ? 'RwLock.writeAsync' : 'RwLock.readAsync';
    while (!took(forWrite ? binding.tryWrite(words, index) : binding.tryRead(words, index), what)) {
      const value = binding.prepareWait(words, index, forWrite);
      if (value === 0) continue;
      const result = Atomics.waitAsync(words, index, value, WAIT_SLICE_MS);
      if (!result.async) continue;
      // A pending waitAsync does not keep the event loop alive: a thread whose only work
      // is waiting for the lock would exit. A timer for the slice does.
      const alive = setTimeout(() => {}, WAIT_SLICE_MS);
      try {
        await result.value;
      } finally {
        clearTimeout(alive);
      }
    }
  }

  #wake(wake: number, what: string): void {
    if (wake < 0) throw statusError(wake, what);
    if (wake !== 0) Atomics.notify(this.#words, this.#index);
  }
}

/** A try-call's answer: taken (1) or not (0); anything else is a Status to throw. */
function took(result: number, what: string): boolean {
  if (result === 1) return true;
  if (result === 0) return false;
  throw statusError(result, what);
}

function lockNotHeld(what: string, mode: RwLockMode): RangeError {
  const needs = mode === 'none' ? 'held' : `held in ${mode} mode`;
  return rangeError('ERR_CMKIT_LOCK_NOT_HELD', `${what}: the lock is not ${needs} by this holder`);
}
