/**
 * SIGINT and SIGTERM for the CLI, taken from the first moment its code runs: one that
 * arrives while the mount is starting (the kernel mount is live before the request
 * workers are) must still unmount it, not kill the process and leave a dead mount
 * behind. cli.ts imports this module first, so the handlers exist before the addon and
 * the cache load. Each signal is counted and passed to the mount's handler once it has
 * one.
 */
export const stopSignals = {
  count: 0,
  /** The first signal's name, '' before any. */
  first: '',
  handler: undefined as ((signal: string) => void) | undefined,
};

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    stopSignals.count++;
    if (stopSignals.first === '') stopSignals.first = signal;
    stopSignals.handler?.(signal);
  });
}
