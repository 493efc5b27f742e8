import { invalidArgType } from '../core/errors.js';
import { checkInteger, checkObject } from '../core/validate.js';
import type { PagTable, Token } from './pag-table.js';

export interface TokenRenewerOptions {
  /**
   * Asks the token's cell for a new expiry; resolves to it, or to undefined if the cell
   * refused. The renewer never sets an expiry past the token's renewUntil.
   */
  readonly renew: (pag: number, token: Token) => Promise<number | undefined>;
  /** Renew a token this long before it expires, in ms. @default 3600000 (1 hour) */
  readonly leadMs?: number;
  /** How often start() looks, in ms. @default 60000 */
  readonly intervalMs?: number;
  /** The clock, ms since the epoch; tests pass their own. @default Date.now */
  readonly now?: () => number;
}

export interface RenewalPass {
  readonly renewed: number;
  /** Tokens removed because they expired or passed renewUntil: those users are anonymous now. */
  readonly dropped: number;
}

/**
 * Keeps the tokens of live PAGs usable for as long as their cells allow: a batch job
 * started with a 25-hour token keeps running for the token's whole renewable life (7
 * days, say), and is refused after it.
 */
export class TokenRenewer {
  readonly #pags: PagTable;
  readonly #renew: TokenRenewerOptions['renew'];
  readonly #leadMs: number;
  readonly #intervalMs: number;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #pass: Promise<RenewalPass> | undefined;

  constructor(pags: PagTable, options: TokenRenewerOptions) {
    checkObject(pags, 'pags');
    checkObject(options, 'options');
    if (typeof options.renew !== 'function') throw invalidArgType('options.renew', 'a function', options.renew);
    this.#pags = pags;
    this.#renew = options.renew;
    this.#leadMs = checkInteger(options.leadMs ?? 3_600_000, 'options.leadMs', 0, 2 ** 40);
    this.#intervalMs = checkInteger(options.intervalMs ?? 60_000, 'options.intervalMs', 1, 2 ** 31 - 1);
    const now = options.now ?? Date.now;
    if (typeof now !== 'function') throw invalidArgType('options.now', 'a function', now);
    this.#now = now;
  }

  /** One look at every token of every live PAG: renew what is due, drop what is dead. */
  tick(): Promise<RenewalPass> {
    // Passes never overlap: a slow cell must not get two renewals of one token.
    this.#pass ??= this.#run().finally(() => (this.#pass = undefined));
    return this.#pass;
  }

  /** Looks every intervalMs until stop(); the timer does not keep the process alive. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.tick().catch(() => {}), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #run(): Promise<RenewalPass> {
    let renewed = 0;
    let dropped = 0;
    for (const pag of this.#pags.livePags()) {
      let tokens: Token[];
      try {
        tokens = this.#pags.tokens(pag);
      } catch {
        continue; // logged out since we listed it
      }
      for (const token of tokens) {
        const now = this.#now();
        if (now >= token.expiresAt) {
          // Expired, or past renewUntil (expiresAt never exceeds it): never used again.
          if (this.#ifAlive(() => this.#pags.dropToken(pag, token.cell))) dropped++;
          continue;
        }
        if (token.expiresAt - now > this.#leadMs || token.expiresAt >= token.renewUntil) continue;
        let next: number | undefined;
        try {
          next = await this.#renew(pag, token);
        } catch {
          next = undefined; // the cell is unreachable: try again next pass, until expiry
        }
        if (next === undefined || !(next > token.expiresAt)) continue;
        const expiresAt = Math.min(next, token.renewUntil);
        if (this.#ifAlive(() => this.#pags.setToken(pag, { ...token, expiresAt }))) renewed++;
      }
    }
    return { renewed, dropped };
  }

  /** Runs fn on a PAG that may have been logged out meanwhile; false if it was. */
  #ifAlive(fn: () => void): boolean {
    try {
      fn();
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_CMKIT_NO_SUCH_PAG') return false;
      throw e;
    }
  }
}
