// `dbc node --network bridge` as its own process inside a network namespace: it builds the node bridge, its dnsmasq
// and the nftables table, reports network_mode bridge, and a second start adopts the same dnsmasq.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { cliPath, sleep, waitFor } from '../helpers/devnet.js';

const NS = `dbnd${randomBytes(2).toString('hex')}`;
const dir = mkdtempSync(join(os.tmpdir(), 'dbc-node-bridge-'));
const inNs = (args: string[]) => execFileSync('ip', ['netns', 'exec', NS, ...args], { encoding: 'utf8', timeout: 20_000 });
let proc: ChildProcess | undefined;

after(() => {
  proc?.kill('SIGKILL');
  try {
    for (const pid of execFileSync('ip', ['netns', 'pids', NS], { encoding: 'utf8' }).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
  } catch {
    // none
  }
  try {
    execFileSync('ip', ['netns', 'del', NS]);
  } catch {
    // not created
  }
  rmSync(dir, { recursive: true, force: true });
});

async function startNode(): Promise<ChildProcess> {
  rmSync(join(dir, 'node.json'), { force: true });
  let out = '';
  const p = spawn(
    'ip',
    [
      'netns',
      'exec',
      NS,
      process.execPath,
      cliPath,
      'node',
      '--data-dir',
      dir,
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--network',
      'bridge',
      '--bridge',
      'dbcbr9',
      '--bridge-cidr',
      '10.201.0.0/24',
      '--lan-local',
      '10.79.0.2',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  await waitFor(
    'node.json',
    () => {
      if (p.exitCode !== null) throw new Error(`dbc node exited ${p.exitCode}: ${out}`);
      return existsSync(join(dir, 'node.json')) ? true : undefined;
    },
    60_000,
    200,
  );
  return p;
}

function dnsmasqPid(): number {
  return Number(readFileSync(join(dir, 'net', 'dbcbr9', 'dnsmasq.pid'), 'utf8').trim());
}

test('dbc node --network bridge builds its bridge, DHCP and rules, and adopts them after a restart', { timeout: 120_000 }, async () => {
  execFileSync('ip', ['netns', 'add', NS]);
  inNs(['ip', 'link', 'set', 'lo', 'up']);
  proc = await startNode();
  const link = JSON.parse(inNs(['ip', '-j', 'addr', 'show', 'dev', 'dbcbr9']))[0];
  assert.equal(link.operstate === 'UP' || link.flags.includes('UP'), true);
  assert.ok(
    link.addr_info.some((a: { local: string; prefixlen: number }) => a.local === '10.201.0.1' && a.prefixlen === 24),
    JSON.stringify(link),
  );
  assert.equal(inNs(['sysctl', '-n', 'net.ipv4.ip_forward']).trim(), '1');
  const pid = dnsmasqPid();
  assert.ok(readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('dbcbr9'));
  await waitFor(
    'nft table',
    () => {
      try {
        return inNs(['nft', 'list', 'table', 'ip', 'dbc']).includes('masquerade') ? true : undefined;
      } catch {
        return undefined;
      }
    },
    30_000,
    300,
  );
  const table = inNs(['nft', 'list', 'table', 'ip', 'dbc']);
  assert.match(table, /ip saddr 10\.201\.0\.0\/24 oifname != "dbcbr9" masquerade/);

  // kill -9 and start again: the same dnsmasq is adopted, not a second one
  proc.kill('SIGKILL');
  await new Promise((r) => proc!.once('exit', r));
  proc = await startNode();
  await sleep(500);
  assert.equal(dnsmasqPid(), pid);
  const dnsmasqs = execFileSync('ip', ['netns', 'pids', NS], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('dnsmasq') && !/\) Z /.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
      } catch {
        return false;
      }
    });
  assert.deepEqual(dnsmasqs.map(Number), [pid]);
  proc.kill('SIGTERM');
  await new Promise((r) => proc!.once('exit', r));
});
