import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PagTable, TokenRenewer } from '../src/index.js';
import type { Token } from '../src/index.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

test('after 10^6 login/logout cycles the PAG table holds only live PAGs', () => {
  const pags = PagTable.create({ capacity: 1024 });
  try {
    // 100 sessions stay logged in throughout; 10^6 others come and go.
    const staying = Array.from({ length: 100 }, () => pags.login());
    const t0 = 1e12;
    for (let i = 0; i < 1_000_000; i++) {
      const pag = pags.login();
      if (i % 1000 === 0) pags.setToken(pag, { cell: 1, userId: i, expiresAt: t0 + 25 * HOUR, renewUntil: t0 + 7 * DAY });
      if (i % 7 === 0) pags.hold(pag); // a second process of the session
      if (i % 7 === 0) assert.equal(pags.logout(pag), false, 'one holder is left');
      assert.equal(pags.logout(pag), true, 'the last logout destroys it, tokens or not');
    }
    const stats = pags.stats();
    assert.equal(stats.live, 100, 'only the 100 sessions still logged in');
    assert.equal(stats.created, 1_000_100);
    assert.equal(stats.destroyed, 1_000_000);
    assert.deepEqual(new Set(pags.livePags()), new Set(staying));
    for (const pag of staying) assert.equal(pags.isAlive(pag), true);
    assert.throws(() => pags.tokens(staying[0]! + 1_000_000), { code: 'ERR_CMKIT_NO_SUCH_PAG' });
    assert.throws(() => pags.logout(staying[staying.length - 1]! + 5), { code: 'ERR_CMKIT_NO_SUCH_PAG' });
  } finally {
    pags.close();
  }
});

test('an expired token is never used; tokens per cell; bad input is a clear error', () => {
  const pags = PagTable.create({ capacity: 16 });
  try {
    const pag = pags.login();
    pags.setToken(pag, { cell: 1, userId: 500, expiresAt: 2000, renewUntil: 5000 });
    pags.setToken(pag, { cell: 2, userId: 600, expiresAt: 3000, renewUntil: 3000 });
    assert.equal(pags.token(pag, 1, 1999)?.userId, 500);
    assert.equal(pags.token(pag, 1, 2000), undefined, 'expired at expiresAt');
    assert.equal(pags.token(pag, 2, 2500)?.userId, 600);
    assert.equal(pags.token(pag, 3, 0), undefined, 'no token for cell 3: anonymous there');
    pags.dropToken(pag, 2);
    assert.equal(pags.token(pag, 2, 0), undefined);
    assert.throws(() => pags.setToken(pag, { cell: 1, userId: 1, expiresAt: 10, renewUntil: 5 }), { name: 'RangeError', message: /renewUntil/ });
    assert.throws(() => pags.setToken(pag, { cell: -1, userId: 1, expiresAt: 10, renewUntil: 50 }), { name: 'RangeError', message: /token\.cell/ });
    assert.throws(() => pags.token(-1, 1), { name: 'RangeError', message: /pag/ });
    assert.throws(() => pags.setToken(pag, null as unknown as Token), { name: 'TypeError', message: /token/ });
    for (let c = 3; c <= 5; c++) pags.setToken(pag, { cell: c, userId: 1, expiresAt: 10, renewUntil: 10 });
    assert.throws(() => pags.setToken(pag, { cell: 9, userId: 1, expiresAt: 10, renewUntil: 10 }), { name: 'RangeError', message: /cells per PAG/ });
    assert.equal(pags.logout(pag), true);
    assert.throws(() => pags.logout(pag), { code: 'ERR_CMKIT_NO_SUCH_PAG' });
  } finally {
    pags.close();
  }
});

test('a long job\'s token is renewed before it expires while the job runs, and refused after renew-until', async () => {
  const pags = PagTable.create({ capacity: 16 });
  let now = Date.UTC(2026, 10, 22);
  const start = now;
  const renewals: number[] = [];
  const renewer = new TokenRenewer(pags, {
    leadMs: HOUR,
    now: () => now,
    // The cell grants another 25 hours each time; the renewer caps it at renewUntil.
    renew: async (_pag, token) => {
      renewals.push(now);
      assert.ok(now < token.expiresAt, 'asked before the token expired');
      return now + 25 * HOUR;
    },
  });
  try {
    const job = pags.login();
    pags.setToken(job, { cell: 1, userId: 42, expiresAt: start + 25 * HOUR, renewUntil: start + 7 * DAY });
    const bystander = pags.login(); // no token: nothing to renew
    // The job runs 8 days; the renewer looks every 10 minutes.
    let refusedAt: number | undefined;
    for (; now < start + 8 * DAY; now += 10 * 60_000) {
      await renewer.tick();
      const token = pags.token(job, 1, now);
      if (now < start + 7 * DAY) assert.ok(token !== undefined, `usable at day ${((now - start) / DAY).toFixed(2)}`);
      else {
        assert.equal(token, undefined, 'refused after renew-until');
        refusedAt ??= now;
      }
    }
    assert.equal(refusedAt, start + 7 * DAY);
    assert.ok(renewals.length >= 6, `renewed about daily for 7 days (${renewals.length} times)`);
    assert.deepEqual(pags.tokens(job), [], 'the dead token was dropped: the job is anonymous now');
    assert.equal(pags.isAlive(job), true, 'the PAG itself lives until logout, not until token expiry');
    assert.equal(pags.logout(job), true);
    assert.equal(pags.logout(bystander), true);
  } finally {
    renewer.stop();
    pags.close();
  }
});
