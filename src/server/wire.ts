/**
 * A simulated link's bandwidth, for the servers' slow-link options: one wire that every
 * transfer of a server shares, so transfers queue one after another at `bandwidth`
 * bytes per second (latency is the server's own, per RPC, and overlaps).
 */
export class Wire {
  readonly #bandwidth: number;
  readonly #sleep: (ms: number) => Promise<unknown>;
  #freeAt = 0;

  /** bandwidth: bytes per second, 0 for no limit. */
  constructor(bandwidth: number, sleep: (ms: number) => Promise<unknown>) {
    this.#bandwidth = bandwidth;
    this.#sleep = sleep;
  }

  /** Resolves once `n` bytes have crossed the wire, after those queued before them. */
  async transfer(n: number): Promise<void> {
    if (n === 0 || this.#bandwidth <= 0) return;
    const now = performance.now();
    this.#freeAt = Math.max(now, this.#freeAt) + (n / this.#bandwidth) * 1000;
    await this.#sleep(this.#freeAt - now);
  }
}
