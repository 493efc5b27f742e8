import type { Row } from './row.js';

/**
 * How far a row's headline ratio has come toward its goal, 1.0 meaning just met, for the
 * chart. Rows whose goal is an upper bound on the ratio (smaller is better) invert it.
 */
const UPPER_BOUNDS: Readonly<Record<string, number>> = { B1: 1.5, B5: 1.2, B9: 1.02, B10: 2, B11: 1.2, B13: 3 };
const LOWER_BOUNDS: Readonly<Record<string, number>> = { B2: 1.7, B3: 1.5, B4: 2, B6: 10, B7: 5, B8: 1.7, B12: 20 };

export function goalProgress(row: Row): number {
  // The M rows' ratio is cmkit against the better peer, goal 1 (ahead).
  if (row.id.startsWith('M')) return row.ratio;
  const upper = UPPER_BOUNDS[row.id];
  if (upper !== undefined) return row.ratio > 0 ? upper / row.ratio : 0;
  const lower = LOWER_BOUNDS[row.id];
  return lower !== undefined ? row.ratio / lower : 0;
}
