/**
 * A seeded 32-bit generator (mulberry32) for randomized tests. The seed comes from
 * CMKIT_SEED when set, so a failing run replays: each test prints the seed it used.
 */
export function seededRandom(seed = Number(process.env['CMKIT_SEED'] ?? (Math.random() * 2 ** 32) >>> 0)): {
  next: () => number;
  seed: number;
} {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return { next, seed };
}
