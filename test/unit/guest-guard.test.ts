// The guest guard's nftables table (net/guest-guard.ts): deterministic, only validated integers and names reach
// the text, and it only ever names its own table. When nft runs here (root), the text is loaded into a scratch
// network namespace to prove it is valid nftables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, statSync, writeFileSync, mkdirSync, chmodSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { GUARD_TABLE, GUARD_UID, renderGuardRuleset, setupGuestGuard } from '../../src/net/guest-guard.js';
import { grantToVm } from '../../src/vm/run-as.js';

const owner = { uid: GUARD_UID, gid: GUARD_UID };

test('the guard table: own table replaced atomically, drops new connections of the VM uid to local addresses', () => {
  const text = renderGuardRuleset(owner);
  assert.equal(text, renderGuardRuleset({ ...owner }), 'deterministic');
  const lines = text.split('\n');
  assert.deepEqual(lines.slice(0, 3), [`table inet ${GUARD_TABLE} {}`, `delete table inet ${GUARD_TABLE}`, `table inet ${GUARD_TABLE} {`]);
  assert.match(text, /type filter hook output priority filter; policy accept;/);
  assert.match(text, new RegExp(`meta skuid ${GUARD_UID} ct state established,related accept`));
  assert.match(text, new RegExp(`meta skuid ${GUARD_UID} fib daddr type local meta l4proto \\{ tcp, udp \\} th dport 53 accept`));
  assert.match(text, new RegExp(`meta skuid ${GUARD_UID} fib daddr type local meta l4proto tcp counter reject with tcp reset`));
  assert.match(text, new RegExp(`meta skuid ${GUARD_UID} fib daddr type local counter reject`));
  // every table statement names the guard's table only
  for (const m of text.matchAll(/table (\w+) (\w+)/g)) assert.deepEqual([m[1], m[2]], ['inet', GUARD_TABLE]);
});

test('the guard table refuses anything but integers and plain names', () => {
  for (const bad of [0, -1, 1.5, NaN, 2 ** 32, Number('1; flush ruleset')]) {
    assert.throws(() => renderGuardRuleset({ uid: bad, gid: 1 }), /invalid uid/);
    assert.throws(() => renderGuardRuleset({ uid: 1, gid: bad }), /invalid gid/);
  }
  assert.throws(() => renderGuardRuleset({ uid: '1 accept' as unknown as number, gid: 1 }), /invalid uid/);
  for (const t of ['dbc; flush ruleset', 'x}', 'ip dbc', '', 'A', '1abc', 'a'.repeat(40)]) {
    assert.throws(() => renderGuardRuleset(owner, t), /invalid table name/);
  }
});

test('the guard table loads into nftables (scratch namespace)', { skip: process.getuid?.() !== 0 }, () => {
  const ns = `dbcgu${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    const text = renderGuardRuleset(owner);
    for (let i = 0; i < 2; i++) execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: text });
    const listed = execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset'], { encoding: 'utf8' });
    assert.equal(listed.match(/table inet dbc_guard/g)?.length, 1, listed);
    assert.match(listed, new RegExp(`meta skuid ${GUARD_UID} fib daddr type local`));
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
});

test('grantToVm: the file goes to the VM uid, directories above it get search permission only', { skip: process.getuid?.() !== 0 }, () => {
  const base = mkdtempSync(join(os.tmpdir(), 'dbc-grant-'));
  try {
    const dir = join(base, 'a', 'b');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(join(base, 'a'), 0o700);
    chmodSync(base, 0o700);
    const file = join(dir, 'd.qcow2');
    writeFileSync(file, 'x', { mode: 0o600 });
    grantToVm(file, owner);
    assert.equal(statSync(file).uid, GUARD_UID);
    for (const p of [dir, join(base, 'a'), base]) assert.equal(statSync(p).mode & 0o777, 0o701, p);
    grantToVm(file, null);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('--guest-guard off: no uid to drop to, one warning line', async () => {
  const warnings: unknown[] = [];
  const log = { info() {}, debug() {}, error() {}, warn: (...a: unknown[]) => warnings.push(a) } as never;
  const st = await setupGuestGuard('off', log);
  assert.deepEqual(st, { active: false, owner: null, reason: 'off' });
  assert.equal(warnings.length, 1);
});
