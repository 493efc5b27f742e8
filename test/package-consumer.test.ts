/**
 * cmkit as a user installs it: `npm pack` of this checkout, installed into a fresh
 * project with no network (the tarball, and npm's cache for its dependencies), then used
 * from there: require and import of every export, tsc over a file that uses the types, a
 * cache round trip, the CLI, and (where FUSE is there) a mount.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import * as cmkit from '../src/index.js';
import { fuseUnavailable } from '../src/mount/fuse.js';

const REPO = path.join(__dirname, '..', '..');
const TSC = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

// Once, against the release build: under the ASan pass the install's compiler would run
// with the sanitizer runtime preloaded.
const underAsan = process.env['CMKIT_ADDON'] !== undefined ? 'runs once, in the release pass (not with the ASan addon)' : undefined;

test('npm pack, installed into a fresh project offline: every export, the types, a round trip, the CLI and a mount', { skip: underAsan, timeout: 600_000 }, async (t) => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'cmkit-consumer-'));
  try {
    // --ignore-scripts: the checkout's dist is already built; prepare would only rebuild it.
    const tarball = run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', base], REPO).trim().split('\n').pop()!;
    const project = path.join(base, 'project');
    mkdirSync(project);
    // No registry: cmkit's own dependencies come from this checkout's node_modules, packed,
    // and reach the project only as what cmkit's package.json asks for (overrides add
    // nothing cmkit does not depend on).
    const overrides: Record<string, string> = {};
    for (const dep of ['node-addon-api', 'piscina']) {
      const packed = run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', base], path.join(REPO, 'node_modules', dep)).trim().split('\n').pop()!;
      overrides[dep] = `file:${path.join(base, packed)}`;
    }
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, overrides }));
    run('npm', ['install', '--offline', '--no-audit', '--no-fund', path.join(base, tarball)], project);
    const installed = JSON.parse(readFileSync(path.join(project, 'node_modules', 'cmkit', 'package.json'), 'utf8')) as { version: string };
    t.diagnostic(`installed cmkit ${installed.version} from ${tarball}`);

    const names = Object.keys(cmkit).sort();
    writeFileSync(
      path.join(project, 'use.cjs'),
      `const c = require('cmkit');
const want = ${JSON.stringify(names)};
for (const n of want) if (!(n in c)) throw new Error('require lacks ' + n);
(async () => {
  const e = await import('cmkit');
  for (const n of want) if (e[n] !== c[n]) throw new Error('import differs at ' + n);
  const server = new c.MemoryFileServer();
  const fid = new c.Fid(1, 2, 3, 4);
  server.createFile(fid, new Uint8Array(0));
  const cache = c.CacheManager.create(server.connect(), { cacheSize: 1 << 20 });
  await cache.write(fid, 0, new TextEncoder().encode('round trip'));
  await cache.flush(fid);
  const back = new TextDecoder().decode(await cache.read(fid, 0, 100));
  await cache.close();
  if (back !== 'round trip') throw new Error('read back ' + back);
  const pool = new c.CachePool(c.CacheManager.create(server.connect(), { cacheSize: 1 << 20 }), { threads: 1 });
  await pool.close();
  console.log('ok ' + want.length);
})().catch((err) => { console.error(err); process.exit(1); });
`,
    );
    assert.equal(run(process.execPath, ['use.cjs'], project).trim(), `ok ${names.length}`);

    writeFileSync(
      path.join(project, 'use.ts'),
      `import { CacheManager, Fid, MemoryFileServer, type CacheManagerOptions, type FileServer } from 'cmkit';
const options: CacheManagerOptions = { cacheSize: 1 << 20 };
const server: FileServer = new MemoryFileServer().connect();
const cache: CacheManager = CacheManager.create(server, options);
const fid: Fid = new Fid(1, 2, 3, 4);
export const pending: Promise<Uint8Array> = cache.read(fid, 0, 10);
`,
    );
    writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, module: 'node16', moduleResolution: 'node16', target: 'es2022', types: ['node'], typeRoots: [path.join(REPO, 'node_modules', '@types')] },
        files: ['use.ts'],
      }),
    );
    run(process.execPath, [TSC, '-p', 'tsconfig.json'], project);

    assert.match(run('npx', ['--offline', 'cmkit', '--help'], project), /cmkit mount <backing-dir> <mountpoint>/);

    const noFuse = fuseUnavailable();
    if (noFuse !== undefined) {
      t.diagnostic(`the installed mount was not tried: ${noFuse}`);
      return;
    }
    const backing = path.join(base, 'backing');
    const mnt = path.join(base, 'mnt');
    mkdirSync(backing);
    mkdirSync(mnt);
    writeFileSync(path.join(backing, 'hello'), 'from the backing directory');
    const cli = spawn('npx', ['--offline', 'cmkit', 'mount', backing, mnt], { cwd: project, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => cli.on('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      cli.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('cmkit: mounted')) resolve();
      });
      void exited.then(() => reject(new Error(`the installed cmkit mount exited: ${out}`)));
    });
    try {
      assert.equal(readFileSync(path.join(mnt, 'hello'), 'utf8'), 'from the backing directory');
      writeFileSync(path.join(mnt, 'written'), 'through the installed mount');
    } finally {
      // npx runs the CLI as its child: signal both, then wait for the CLI's unmount.
      execFileSync('pkill', ['-TERM', '-f', `cmkit mount ${backing}`]);
      await exited;
      for (let i = 0; i < 200 && readFileSync('/proc/self/mounts', 'utf8').includes(` ${mnt} `); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.equal(readFileSync(path.join(backing, 'written'), 'utf8'), 'through the installed mount');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
