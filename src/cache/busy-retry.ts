import { setTimeout as sleep } from 'node:timers/promises';

import { ServerError } from '../server/server-error.js';

/** How a foreground operation treats a busy server. */
export interface BusyRetryPolicy {
  /** Give up this long after the first attempt, in ms. */
  readonly deadlineMs: number;
  /** The first wait, in ms; each later wait doubles, up to maxDelayMs. */
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

/**
 * Runs an RPC. When the server answers busy and `policy` permits retries, waits with
 * exponential backoff and tries again until the deadline; `onRetry` counts each retry.
 * With no policy (background work), the busy answer is returned to the caller at once:
 * such work never sleeps for a retry it was not permitted.
 */
export async function withBusyRetry<T>(
  rpc: () => Promise<T>,
  policy: BusyRetryPolicy | undefined,
  onRetry: () => void,
): Promise<T> {
  if (policy === undefined) return rpc();
  const deadline = performance.now() + policy.deadlineMs;
  let delay = policy.initialDelayMs;
  for (;;) {
    try {
      return await rpc();
    } catch (e) {
      const wait = Math.min(delay, deadline - performance.now());
      if (!(e instanceof ServerError) || e.kind !== 'busy' || wait <= 0) throw e;
      onRetry();
      await sleep(wait);
      delay = Math.min(delay * 2, policy.maxDelayMs);
    }
  }
}
