import { RwLock } from '../../src/index.js';
import { addon } from '../../src/core/native.js';
import { medianNsPerOp, round } from '../measure.js';
import type { RowFn } from '../row.js';

/**
 * B4: RwLock transitions against the release-and-reacquire they replace, the uncontended
 * read lock against the empty call, and voluntary context switches of the thread over
 * 10^6 sole-reader upgrade/downgrade cycles.
 */
export const b4: RowFn = async (ctx) => {
  const lock = new RwLock();
  lock.read();
  const ns = await medianNsPerOp(
    {
      'empty Node-API call': (n) => {
        for (let i = 0; i < n; i++) addon.noop();
      },
      'upgrade+downgrade': (n) => {
        for (let i = 0; i < n; i++) {
          lock.tryUpgrade();
          lock.downgrade();
        }
      },
      'release read, acquire write, release write, acquire read': (n) => {
        for (let i = 0; i < n; i++) {
          lock.release();
          lock.write();
          lock.release();
          lock.read();
        }
      },
      'read lock+unlock (from read: release, read)': (n) => {
        for (let i = 0; i < n; i++) {
          lock.release();
          lock.read();
        }
      },
    },
    { quick: ctx.quick, batch: 1000 },
  );
  const transitions = ns['upgrade+downgrade']!;
  const reacquire = ns['release read, acquire write, release write, acquire read']!;
  const speedup = reacquire / transitions;

  const cycles = 1_000_000;
  const before = addon.bench.threadVoluntarySwitches();
  for (let i = 0; i < cycles; i++) {
    lock.upgrade();
    lock.downgrade();
  }
  const switches = addon.bench.threadVoluntarySwitches() - before;
  lock.release();

  return {
    id: 'B4',
    name: 'RwLock upgrade/downgrade, sole reader',
    metric: 'ns per upgrade+downgrade',
    unit: 'ns',
    value: round(transitions),
    baseline: round(reacquire),
    peer: null,
    floor: round(ns['empty Node-API call']!),
    ratio: round(speedup),
    goal: 'reacquire / transitions >= 2, and 0 voluntary context switches in 10^6 cycles',
    met: speedup >= 2 && switches === 0,
    extra: {
      'read lock+unlock ns': round(ns['read lock+unlock (from read: release, read)']!),
      'read lock+unlock / empty call': round(ns['read lock+unlock (from read: release, read)']! / ns['empty Node-API call']!),
      'voluntary context switches': switches,
    },
  };
};
