/**
 * Buffer validity by version range (after the 2008 OpenAFS Windows cache manager work).
 *
 * Each vnode keeps `dataVersion` (the server version it knows) and `bufDataVersionLow`;
 * a clean buffer is valid iff bufDataVersionLow <= buffer.dataVersion <= dataVersion.
 * Moving either end is O(1) whatever the number of cached buffers:
 * - after our own store, when the server's version rose by no more than our modifying
 *   RPCs in flight, only dataVersion moves up: every cached buffer stays valid;
 * - when the server reports a change we did not make, bufDataVersionLow = dataVersion =
 *   the new version: every older buffer is invalid at once.
 * Dirty buffers, and those in a store not yet answered, are always valid: they hold the
 * newest bytes, ours.
 */

export function isBufferValid(low: number, bufferVersion: number, dataVersion: number): boolean {
  return low <= bufferVersion && bufferVersion <= dataVersion;
}

export interface VersionRange {
  readonly dataVersion: number;
  readonly bufDataVersionLow: number;
}

export type VersionChange = 'unchanged' | 'ours' | 'theirs';

/**
 * The range after the server reported `serverVersion`, while `ownInFlight` of our
 * modifying RPCs had not been answered (counting the one this reply answers, if any).
 */
export function nextRange(range: VersionRange, serverVersion: number, ownInFlight: number): {
  range: VersionRange;
  change: VersionChange;
} {
  if (range.dataVersion < 0) {
    return { range: { dataVersion: serverVersion, bufDataVersionLow: serverVersion }, change: 'theirs' };
  }
  if (serverVersion <= range.dataVersion) return { range, change: 'unchanged' };
  if (serverVersion - range.dataVersion <= ownInFlight) {
    return { range: { dataVersion: serverVersion, bufDataVersionLow: range.bufDataVersionLow }, change: 'ours' };
  }
  return { range: { dataVersion: serverVersion, bufDataVersionLow: serverVersion }, change: 'theirs' };
}
