import { PagTable, RefTable } from '../../src/index.js';
import { median, round } from '../measure.js';
import type { RowFn } from '../row.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1);
const TOKEN = { cell: 1, userId: 1000, expiresAt: T0 + 25 * HOUR, renewUntil: T0 + 7 * 24 * HOUR };
const BATCH = 2000;
const SAMPLES = 9;

/** One design of PAG lifetime: a login (new PAG with a token) and its logout. */
interface Design {
  cycle(): void;
  /** PAG entries the table holds now. */
  entries(): number;
  close(): void;
}

/** cmkit: the last logout destroys the PAG and frees its slot. */
function destroyAtLogout(): Design {
  const pags = PagTable.create({ capacity: 4096 });
  return {
    cycle() {
      const pag = pags.login();
      pags.setToken(pag, TOKEN);
      pags.logout(pag);
    },
    entries: () => pags.stats().live,
    close: () => pags.close(),
  };
}

/**
 * The design it replaces: a PAG stays until its tokens expire (25 hours here, so never
 * within the run). Logout only drops the session's reference; the entry and its token
 * stay in the table, which must be large enough for every login of a day and more.
 */
function keepUntilExpiry(capacity: number): Design {
  const table = new RefTable({ capacity });
  const tokens = new Float64Array(capacity * 4);
  let nextId = 1;
  return {
    cycle() {
      const id = nextId++;
      const slot = table.getHoldKey(0x50414721, id, 0, 0);
      tokens.set([TOKEN.cell, TOKEN.userId, TOKEN.expiresAt, TOKEN.renewUntil], slot * 4);
      table.release(slot);
    },
    entries: () => table.stats().used,
    close: () => table.close(),
  };
}

function nsPerCycle(design: Design): number {
  const t0 = performance.now();
  for (let i = 0; i < BATCH; i++) design.cycle();
  return ((performance.now() - t0) * 1e6) / BATCH;
}

/**
 * Median ns per login+logout of a design after `few` and after `many` logins. The two
 * are sampled in turns, so a slow moment of the machine (or of the collector) hits both
 * alike: each `few` sample runs on a fresh table brought to `few` logins, each `many`
 * sample on one table brought to `many` logins first.
 */
function measure(make: () => Design, few: number, many: number): { few: number; many: number; held: number } {
  // A throwaway instance first, so the measured ones start with compiled code.
  const warm = make();
  for (let i = 0; i < 4 * BATCH; i++) warm.cycle();
  warm.close();
  const old = make();
  try {
    for (let i = 0; i < many; i++) old.cycle();
    const fewSamples: number[] = [];
    const manySamples: number[] = [];
    for (let s = 0; s < SAMPLES; s++) {
      const fresh = make();
      try {
        for (let i = 0; i < few; i++) fresh.cycle();
        fewSamples.push(nsPerCycle(fresh));
      } finally {
        fresh.close();
      }
      manySamples.push(nsPerCycle(old));
    }
    return { few: median(fewSamples), many: median(manySamples), held: old.entries() };
  } finally {
    old.close();
  }
}

/** B11: creating and destroying a PAG after 10^6 logins vs after 10^3. */
export const b11: RowFn = async (ctx) => {
  const many = 1_000_000;
  ctx.progress('B11: login+logout, destroy at last logout, after 10^3 and 10^6 logins');
  const ours = measure(destroyAtLogout, 1000, many);
  ctx.progress('B11: the same, PAGs kept until their tokens expire');
  const kept = measure(() => keepUntilExpiry(2 ** 21), 1000, many);
  const ratio = ours.many / ours.few;
  return {
    id: 'B11',
    name: 'Create and destroy a PAG (login, token, logout) after 10^6 logins',
    metric: 'ns per login+logout after 10^6 logins',
    unit: 'ns',
    value: round(ours.many),
    baseline: round(kept.many),
    peer: null,
    floor: null,
    ratio: round(ratio),
    goal: 't(after 10^6) / t(after 10^3) <= 1.2',
    met: ratio <= 1.2,
    extra: {
      'ns after 10^3 logins': round(ours.few),
      'baseline: ns after 10^3 logins': round(kept.few),
      'baseline: t(after 10^6) / t(after 10^3)': round(kept.many / kept.few),
      'PAG entries held after the run': ours.held,
      'baseline: PAG entries held after the run': kept.held,
    },
  };
};
