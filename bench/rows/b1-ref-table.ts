import { LRUCache } from 'lru-cache';

import { Fid, RefTable } from '../../src/index.js';
import { addon } from '../../src/core/native.js';
import { medianNsPerOp, round } from '../measure.js';
import type { RowFn } from '../row.js';

const KEYS = 1024;

/** B1: RefTable find+hold+release from JS, one thread, against an empty call and Map/lru-cache. */
export const b1: RowFn = async (ctx) => {
  const table = new RefTable({ capacity: 4 * KEYS });
  const fids = Array.from({ length: KEYS }, (_, v) => new Fid(1, 536870915, v, 1));
  const map = new Map<Fid, number>();
  const lru = new LRUCache<Fid, number>({ max: 4 * KEYS });
  for (const fid of fids) {
    table.release(table.getHold(fid));
    map.set(fid, 1);
    lru.set(fid, 1);
  }
  let sink = 0;
  // One atomic read-modify-write, for scale: a hold and a release are one each.
  const word = new Int32Array(new SharedArrayBuffer(64));
  const ns = await medianNsPerOp(
    {
      'empty Node-API call': (n) => {
        for (let i = 0; i < n; i++) addon.noop();
      },
      'cmkit findHold+release': (n) => {
        for (let i = 0; i < n; i++) {
          const slot = table.findHold(fids[i & (KEYS - 1)]!);
          table.release(slot);
        }
      },
      'Atomics.add': (n) => {
        for (let i = 0; i < n; i++) Atomics.add(word, i & 15, 1);
      },
      'Map get': (n) => {
        for (let i = 0; i < n; i++) sink += map.get(fids[i & (KEYS - 1)]!)!;
      },
      'lru-cache get': (n) => {
        for (let i = 0; i < n; i++) sink += lru.get(fids[i & (KEYS - 1)]!)!;
      },
    },
    { quick: ctx.quick, batch: 1000 },
  );
  table.close();
  if (sink < 0) throw new Error('unreachable');
  const value = ns['cmkit findHold+release']!;
  const floor = ns['empty Node-API call']!;
  const lruNs = ns['lru-cache get']!;
  const ratio = value / floor;
  return {
    id: 'B1',
    name: 'RefTable find+hold+release, one thread',
    metric: 'ns per find+hold+release',
    unit: 'ns',
    value: round(value),
    baseline: null,
    peer: round(lruNs),
    floor: round(floor),
    ratio: round(ratio),
    goal: 'ratio to the empty call <= 1.5, and no slower than lru-cache get',
    met: ratio <= 1.5 && value <= lruNs,
    extra: {
      'Map get ns': round(ns['Map get']!),
      'ratio to lru-cache get': round(value / lruNs),
      'Atomics.add ns': round(ns['Atomics.add']!),
    },
  };
};
