/**
 * An fsstress-style run of the project's own: 4 processes (one as the unprivileged test
 * user where one can be made) at once on one namespace through `cmkit mount`, mixed
 * creates, writes, appends, truncations, renames, links, unlinks, mkdirs and rmdirs,
 * 10^4 operations in 5 phases. After each phase every file's size and contents, every
 * directory's listing and every link count through the mount must equal the backing
 * directory's; within a phase, no errno but those races explain, and files held open
 * after their unlink read back exactly what was written to them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { fuseUnavailable } from '../src/mount/fuse.js';
import { asUser, testUser, withMount } from './helpers/mount-process.js';
import { seededRandom } from './helpers/random.js';

const skip = fuseUnavailable();
const PROCESSES = 4;
const PHASES = 5;
const OPS_PER_PHASE = 500; // per process: 4 x 5 x 500 = 10^4
const WORKER = path.join(__dirname, 'workers', 'fsstress-worker.js');

interface WorkerResult {
  counts: Record<string, number>;
  unexpected: string[];
  openUnlinked: string[];
}

function runWorker(prefix: string[], root: string, seed: number): Promise<WorkerResult> {
  const [cmd, ...args] = [...prefix, process.execPath, WORKER, root, String(seed), String(OPS_PER_PHASE)];
  const p = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) =>
    p.on('exit', (code) => {
      if (code !== 0) reject(new Error(`fsstress worker exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as WorkerResult);
    }),
  );
}

/** Every node under `root`: kind, size, link count and a digest of a file's contents. */
function tree(root: string): Map<string, string> {
  const nodes = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = lstatSync(path.join(root, r));
      if (st.isDirectory()) {
        nodes.set(r, 'dir');
        walk(r);
      } else {
        const digest = createHash('sha256').update(readFileSync(path.join(root, r))).digest('hex').slice(0, 16);
        nodes.set(r, `file size ${st.size} nlink ${st.nlink} ${digest}`);
      }
    }
  };
  walk('');
  return nodes;
}

for (const [label, extra] of [
  ['default options', []],
  ['no request workers', ['--workers', '0']],
] as const) {
  test(`fsstress (${label}): 4 processes, 10^4 mixed operations; after each phase the mount and the backing directory agree on every file`, { skip, timeout: 600_000 }, async (t) => {
    const user = testUser();
    const seed = seededRandom().seed;
    t.diagnostic(`seed ${seed}; ${typeof user === 'string' ? `all as root (${user})` : `process 3 as ${user.name}`}`);
    await withMount('fsstress', [...extra], async (m) => {
      chmodSync(path.dirname(m.mountpoint), 0o755);
      chmodSync(m.backing, 0o777);
      const totals: Record<string, number> = {};
      for (let phase = 0; phase < PHASES; phase++) {
        const results = await Promise.all(
          Array.from({ length: PROCESSES }, (_, k) =>
            runWorker(k === 3 && typeof user !== 'string' ? asUser(user) : [], m.mountpoint, seed + phase * PROCESSES + k),
          ),
        );
        for (const r of results) {
          for (const [op, n] of Object.entries(r.counts)) totals[op] = (totals[op] ?? 0) + n;
          assert.deepEqual(r.unexpected, [], `phase ${phase}: errnos no race explains`);
          assert.deepEqual(r.openUnlinked, [], `phase ${phase}: unlinked open files`);
        }
        const through = tree(m.mountpoint);
        const backing = tree(m.backing);
        const differ = [...new Set([...through.keys(), ...backing.keys()])]
          .filter((k) => through.get(k) !== backing.get(k))
          .map((k) => `${k}: mount ${through.get(k) ?? 'missing'}, backing ${backing.get(k) ?? 'missing'}`);
        assert.deepEqual(differ, [], `phase ${phase}: the mount and the backing directory differ`);
        assert.ok(through.size > 0, `phase ${phase}: the run left no files to compare`);
        t.diagnostic(`phase ${phase}: ${through.size} nodes agree`);
      }
      t.diagnostic(`operations that succeeded: ${JSON.stringify(totals)}`);
    });
  });
}
