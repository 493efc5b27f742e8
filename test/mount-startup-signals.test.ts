/**
 * A SIGTERM at any moment of `cmkit mount`'s start-up, as an impatient operator or a
 * service manager sends one: the process exits 0, no mount is left in /proc/mounts, and
 * the mount point takes a new mount at once. Half the moments are spread from the first
 * one at which the CLI's code runs (the time a script that loads only its signal module
 * takes to answer) to when the kernel mount appears, half from there to after the mount
 * is ready, so they cover the live kernel mount before the workers have started too.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { fuseUnavailable } from '../src/mount/fuse.js';
import { CLI, mount, mounted } from './helpers/mount-process.js';

const skip = fuseUnavailable();
const POINTS = 20;
// A bigger cache makes the stretch between the kernel mount and readiness (prefault,
// workers) long enough for several of the points to land in it.
const OPTIONS = ['--cache-size', '512M', '--workers', '2'];

/** Milliseconds from spawn until the process prints `marker` (or exits). */
async function timeTo(args: string[], marker: string): Promise<{ ms: number; code: number | null; out: string }> {
  const start = performance.now();
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let ms = -1;
  const seen = (d: Buffer): void => {
    out += d.toString();
    if (ms < 0 && out.includes(marker)) ms = performance.now() - start;
  };
  p.stdout!.on('data', seen);
  p.stderr!.on('data', seen);
  const code = await new Promise<number | null>((resolve) => {
    p.on('exit', (c) => resolve(c));
    if (marker !== 'exit') {
      const poll = setInterval(() => {
        if (ms >= 0) {
          clearInterval(poll);
          p.kill('SIGTERM');
        }
      }, 2);
    }
  });
  return { ms: ms >= 0 ? ms : performance.now() - start, code, out };
}

/** Milliseconds from spawn until the kernel mount appears, and until the CLI says it is ready. */
async function calibrate(backing: string, mountpoint: string): Promise<{ appeared: number; ready: number }> {
  const start = performance.now();
  let appeared = -1;
  const poll = setInterval(() => {
    if (appeared < 0 && mounted(mountpoint)) appeared = performance.now() - start;
  }, 1);
  try {
    const { ms } = await timeTo([CLI, 'mount', backing, mountpoint, ...OPTIONS], 'cmkit: mounted');
    return { appeared: appeared < 0 ? ms : appeared, ready: ms };
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
    const signalsModule = path.join(path.dirname(CLI), 'stop-signals.js');
    // The slowest of three, and a little more: the machine is noisy, and a signal before
    // the handlers exist kills any Node process.
    let first = 0;
    for (let k = 0; k < 3; k++) {
      first = Math.max(first, (await timeTo(['-e', `require(${JSON.stringify(signalsModule)}); console.log('taken')`], 'taken')).ms);
    }
    first += 10;
    const { ready, appeared } = await calibrate(backing, mountpoint);
    assert.equal(mounted(mountpoint), false, 'the calibration mount is gone');
    const at = (k: number): number => {
      const half = POINTS / 2;
      return k < half ? first + ((appeared - first) * k) / half : appeared + ((ready * 1.2 + 50 - appeared) * (k - half)) / (half - 1);
    };
    const outcomes: string[] = [];
    let sawMount = 0;
    for (let k = 0; k < POINTS; k++) {
      const p = spawn(process.execPath, [CLI, 'mount', backing, mountpoint, ...OPTIONS], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => p.on('exit', (c) => resolve(c)));
      await sleep(at(k));
      const live = mounted(mountpoint);
      if (live) sawMount++;
      p.kill('SIGTERM');
      const code = await exited;
      const left = mounted(mountpoint);
      if (left) execFileSync('umount', ['-l', mountpoint]);
      outcomes.push(`${at(k).toFixed(0)} ms${live ? ' (mounted)' : ''}: exit ${code}${left ? ', mount left' : ''}: ${out.trim().split('\n').join(' | ')}`);
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
