/**
 * Sequential-read detection and a growing readahead window for one open file, in the
 * manner of Linux on-demand readahead: the first window is the request rounded up to a
 * power of two, times four (times two when that is already large); each later window is
 * twice the last, up to a cap. The next window is started when the reader enters the
 * second half of the current one, so the fetch runs while the reader still has data.
 * A read that does not continue where the last one ended resets the stream.
 */

export interface ReadaheadWindow {
  readonly start: number;
  readonly length: number;
}

export class Readahead {
  readonly #max: number;
  #nextExpected = -1;
  #windowStart = 0;
  #windowLength = 0;

  /** max: the largest window, in bytes. */
  constructor(max: number) {
    this.#max = max;
  }

  /** Whether a read at `offset` would continue the stream (taken as sequential by onRead). */
  continues(offset: number): boolean {
    return offset === this.#nextExpected || (this.#nextExpected === -1 && offset === 0);
  }

  /** Records a read; returns the window to fetch in the background now, if any. */
  onRead(offset: number, length: number): ReadaheadWindow | undefined {
    const sequential = offset === this.#nextExpected;
    this.#nextExpected = offset + length;
    if (!sequential) {
      this.#windowLength = 0;
      if (offset !== 0) return undefined; // a first read at 0 is taken as the start of a stream
    }
    const end = offset + length;
    if (this.#windowLength === 0) {
      const rounded = 2 ** Math.ceil(Math.log2(Math.max(length, 1)));
      const scale = rounded >= this.#max / 4 ? 2 : 4;
      this.#windowLength = Math.min(rounded * scale, this.#max);
      this.#windowStart = end;
      return { start: this.#windowStart, length: this.#windowLength };
    }
    // Reader has entered the second half of the current window: start the next one.
    if (end >= this.#windowStart + this.#windowLength / 2) {
      this.#windowStart += this.#windowLength;
      this.#windowLength = Math.min(this.#windowLength * 2, this.#max);
      if (this.#windowStart < end) this.#windowStart = end;
      return { start: this.#windowStart, length: this.#windowLength };
    }
    return undefined;
  }
}
