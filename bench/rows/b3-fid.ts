import { Fid, fidHash } from '../../src/index.js';
import { addon } from '../../src/core/native.js';
import { median, medianNsPerOp, round } from '../measure.js';
import type { RowFn } from '../row.js';

const BUCKETS = 1 << 12;

/** The bit-packing hash the mixing hash replaces: volume and vnode bits side by side. */
const packedHash = (volume: number, vnode: number): number => ((volume << 16) ^ vnode) >>> 0;

/** Chi-square of `keys` sequential vnodes over BUCKETS buckets, divided by its ideal (BUCKETS - 1). */
function chiSquareRatio(hash: (vnode: number) => number, keys: number, stride: number): number {
  const count = new Uint32Array(BUCKETS);
  for (let i = 0; i < keys; i++) count[hash(1 + i * stride) & (BUCKETS - 1)]!++;
  const expected = keys / BUCKETS;
  let chi = 0;
  for (const c of count) chi += ((c - expected) * (c - expected)) / expected;
  return chi / (BUCKETS - 1);
}

/**
 * B3: Fid equality hash-first against field by field, in C++ (a chain walk over one
 * volume's sequential vnodes) and in JS; and the bucket spread of the hash for sequential
 * vnodes against bit packing.
 */
export const b3: RowFn = async (ctx) => {
  const rounds = ctx.quick ? 100_000 : 400_000;
  const hashFirst: number[] = [];
  const fields: number[] = [];
  for (let r = 0; r < 5; r++) {
    hashFirst.push(addon.bench.timeFidCompare(true, 64, rounds));
    fields.push(addon.bench.timeFidCompare(false, 64, rounds));
  }
  const cpp = median(fields) / median(hashFirst);

  const chain = Array.from({ length: 64 }, (_, v) => new Fid(1, 536870915, v + 1, 1));
  const byFields = (a: Fid, b: Fid): boolean => a.cell === b.cell && a.volume === b.volume && a.vnode === b.vnode && a.unique === b.unique;
  let sink = 0;
  const js = await medianNsPerOp(
    {
      'Fid.equals (hash first)': (n) => {
        for (let i = 0; i < n; i++) if (chain[i & 63]!.equals(chain[(i >> 6) & 63]!)) sink++;
      },
      'field by field': (n) => {
        for (let i = 0; i < n; i++) if (byFields(chain[i & 63]!, chain[(i >> 6) & 63]!)) sink++;
      },
    },
    { quick: ctx.quick, batch: 4096 },
  );
  if (sink < 0) throw new Error('unreachable');

  // Sequential vnodes, and every other vnode (AFS files get odd vnode numbers, directories even).
  const keys = BUCKETS * 16;
  const mixed = Math.max(chiSquareRatio((v) => fidHash(1, 536870915, v, 1), keys, 1), chiSquareRatio((v) => fidHash(1, 536870915, v, 1), keys, 2));
  const packed = Math.max(chiSquareRatio((v) => packedHash(536870915, v), keys, 1), chiSquareRatio((v) => packedHash(536870915, v), keys, 2));

  return {
    id: 'B3',
    name: 'Fid equality and hash spread',
    metric: 'ns per compare in C++, hash first',
    unit: 'ns',
    value: round(median(hashFirst)),
    baseline: round(median(fields)),
    peer: null,
    floor: null,
    ratio: round(cpp),
    goal: 'field-by-field / hash-first >= 1.5 (C++); chi-square <= 1.1x ideal for the mixing hash, not for bit packing',
    met: cpp >= 1.5 && mixed <= 1.1 && packed > 1.1,
    extra: {
      'JS Fid.equals ns': round(js['Fid.equals (hash first)']!),
      'JS field-by-field ns': round(js['field by field']!),
      'chi-square / ideal, mixing hash': round(mixed),
      'chi-square / ideal, bit packing': round(packed),
    },
  };
};
