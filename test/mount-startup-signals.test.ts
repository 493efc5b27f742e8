/**
 * A SIGTERM at any moment of `cmkit mount`'s start-up, as an impatient operator or a
 * service manager sends one: the process exits 0, no mount is left in /proc/mounts, and
 * the mount point takes a new mount at once. The moments are timed from the one at which
 * the CLI first listens for SIGTERM (a preloaded helper says when; before it, Node's own
 * start-up dies by any SIGTERM, and how long that takes on a loaded machine is noise):
 * half from there to when the kernel mount appears, half from there to after the mount is
 * ready, so they cover the live kernel mount before the workers have started too.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { fuseUnavailable } from '../src/mount/fuse.js';
import { CLI, mount, mounted } from './helpers/mount-process.js';
import { MARKER } from './helpers/signal-handler-marker.js';

const skip = fuseUnavailable();
const POINTS = 20;
// A bigger cache makes the stretch between the kernel mount and readiness (prefault,
// workers) long enough for several of the points to land in it.
const OPTIONS = ['--cache-size', '512M', '--workers', '2'];
const PRELOAD = path.join(__dirname, 'helpers', 'signal-handler-marker.js');

interface Start {
  readonly p: ChildProcess;
  readonly out: () => string;
  /** Milliseconds from spawn to the CLI's first SIGTERM listener; rejects if it exits first. */
  readonly listening: Promise<number>;
  /** The modules loaded when that listener was added. */
  readonly loadedFirst: () => string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly spawnedAt: number;
}

function start(backing: string, mountpoint: string): Start {
  const spawnedAt = performance.now();
  const p = spawn(process.execPath, ['-r', PRELOAD, CLI, 'mount', backing, mountpoint, ...OPTIONS], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let heard: (ms: number) => void = () => {};
  const listening = new Promise<number>((resolve) => (heard = resolve));
  const seen = (d: Buffer): void => {
    out += d.toString();
    if (out.includes(MARKER)) heard(performance.now() - spawnedAt);
  };
  p.stdout!.on('data', seen);
  p.stderr!.on('data', seen);
  // 'close', not 'exit': every byte it wrote has been read by then.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => p.on('close', (code, signal) => resolve({ code, signal })));
  const listeningOrExit = Promise.race([
    listening,
    exited.then(({ code, signal }) => {
      throw new Error(`exited (${code ?? signal}) before listening for SIGTERM: ${out}`);
    }),
  ]);
  const markerLine = (): string => out.split('\n').find((line) => line.startsWith(MARKER)) ?? '';
  return {
    p,
    out: () => out.replace(`${markerLine()}\n`, ''),
    listening: listeningOrExit,
    loadedFirst: () => markerLine().slice(MARKER.length + 2).split(' '),
    exited,
    spawnedAt,
  };
}

/** Milliseconds from the first SIGTERM listener until the kernel mount appears, and until the CLI says it is ready. */
async function calibrate(backing: string, mountpoint: string): Promise<{ appeared: number; ready: number }> {
  const s = start(backing, mountpoint);
  let appeared = -1;
  let ready = -1;
  const poll = setInterval(() => {
    const now = performance.now() - s.spawnedAt;
    if (appeared < 0 && mounted(mountpoint)) appeared = now;
    if (ready < 0 && s.out().includes('cmkit: mounted')) {
      ready = now;
      s.p.kill('SIGTERM');
    }
  }, 1);
  try {
    const listening = await s.listening;
    const { code } = await s.exited;
    // Counted from the listener, the points would miss a CLI that listens late; so the
    // listener must come before any other module of cmkit's has loaded.
    assert.deepEqual(s.loadedFirst(), ['cli.js', 'stop-signals.js']);
    assert.equal(code, 0, s.out());
    assert.ok(ready > 0, s.out());
    return { appeared: (appeared < 0 ? ready : appeared) - listening, ready: ready - listening };
  } finally {
    clearInterval(poll);
  }
}

test('SIGTERM at 20 points of start-up: exit 0, no mount left, the mount point usable again', { skip, timeout: 240_000 }, async (t) => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'cmkit-startup-'));
  const backing = path.join(base, 'backing');
  const mountpoint = path.join(base, 'mnt');
  mkdirSync(backing);
  mkdirSync(mountpoint);
  writeFileSync(path.join(backing, 'f'), 'kept');
  try {
    const { ready, appeared } = await calibrate(backing, mountpoint);
    assert.equal(mounted(mountpoint), false, 'the calibration mount is gone');
    const after = (k: number): number => {
      const half = POINTS / 2;
      return k < half ? (appeared * k) / half : appeared + ((ready * 1.2 + 50 - appeared) * (k - half)) / (half - 1);
    };
    const outcomes: string[] = [];
    let sawMount = 0;
    for (let k = 0; k < POINTS; k++) {
      const s = start(backing, mountpoint);
      await s.listening;
      await sleep(after(k));
      const live = mounted(mountpoint);
      if (live) sawMount++;
      s.p.kill('SIGTERM');
      const { code, signal } = await s.exited;
      const left = mounted(mountpoint);
      if (left) execFileSync('umount', ['-l', mountpoint]);
      outcomes.push(`${after(k).toFixed(0)} ms after listening${live ? ' (mounted)' : ''}: exit ${code ?? signal}${left ? ', mount left' : ''}: ${s.out().trim().split('\n').join(' | ')}`);
      assert.equal(code, 0, outcomes.join('\n'));
      assert.equal(left, false, outcomes.join('\n'));
    }
    // The points must have hit the live mount, not only the moments around it.
    assert.ok(sawMount >= 3, `only ${sawMount} of the points found the mount live:\n${outcomes.join('\n')}`);
    const m = await mount(base, OPTIONS);
    try {
      assert.equal(readFileSync(path.join(mountpoint, 'f'), 'utf8'), 'kept');
    } finally {
      assert.equal(await m.stop(), 0);
    }
    for (const line of outcomes) t.diagnostic(line);
  } finally {
    if (mounted(mountpoint)) execFileSync('umount', ['-l', mountpoint]);
    rmSync(base, { recursive: true, force: true });
  }
});
