/**
 * Preloaded (`node -r`) into a CLI by the start-up signals test: writes MARKER to stderr
 * as soon as the process has a SIGTERM listener, so the test can time its signals from
 * that moment instead of from spawn. A signal before it meets Node's own start-up, which
 * dies by any SIGTERM (no script can listen yet), and how long that start-up takes on a
 * loaded machine is noise the test must not measure. stderr to a pipe is written
 * synchronously, so once the test reads MARKER the listener exists. After MARKER come
 * the modules loaded by then (file names, space-separated), so the test can check that
 * the listener comes first, before the addon and the cache.
 */
import path from 'node:path';

export const MARKER = 'cmkit-test: SIGTERM listener added';

const on = process.on.bind(process);
let said = false;
process.on = ((event: string | symbol, listener: (...args: unknown[]) => void) => {
  on(event, listener);
  if (event === 'SIGTERM' && !said) {
    said = true;
    const loaded = Object.keys(require.cache).filter((f) => f !== __filename);
    process.stderr.write(`${MARKER}: ${loaded.map((f) => path.basename(f)).join(' ')}\n`);
  }
  return process;
}) as typeof process.on;
