/**
 * A source tree for the M rows' untar, listing and git workloads: `files` files in nested
 * directories (about 20 a directory, three levels deep), sizes spread as a source tree's
 * are (most under 8 KiB, a few up to 256 KiB), contents from a fixed seed so every run and
 * every target gets the same bytes.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** A small deterministic generator (xorshift32): the same tree in every run. */
function generator(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

export interface SourceTree {
  readonly root: string;
  readonly files: number;
  readonly bytes: number;
}

/** Writes the tree under `root` (which must not exist). */
export function makeSourceTree(root: string, files: number): SourceTree {
  const rand = generator(0x5eed);
  let bytes = 0;
  for (let i = 0; i < files; i++) {
    const dir = path.join(root, `d${i % 7}`, `s${(i >> 3) % 13}`, `m${Math.floor(i / 20)}`);
    mkdirSync(dir, { recursive: true });
    // Mostly small: 2^(7..13) bytes, one in twenty up to 2^18.
    const size = Math.floor(2 ** (7 + rand() * (rand() < 0.05 ? 11 : 6)));
    const body = Buffer.allocUnsafe(size);
    for (let j = 0; j < size; j++) body[j] = 32 + Math.floor(rand() * 95);
    writeFileSync(path.join(dir, `f${i}.txt`), body);
    bytes += size;
  }
  return { root, files, bytes };
}

/** Turns the tree into a git repository with one commit, as a clone would leave it. */
export function commitTree(root: string, home: string): void {
  const git = (...args: string[]): void => {
    execFileSync('git', ['-C', root, '-c', 'user.name=bench', '-c', 'user.email=bench@localhost', ...args], {
      stdio: 'ignore',
      env: { ...process.env, HOME: home, GIT_CONFIG_NOSYSTEM: '1' },
    });
  };
  git('init', '-q');
  git('add', '.');
  git('commit', '-q', '-m', 'tree');
}
