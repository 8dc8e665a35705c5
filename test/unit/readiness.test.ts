// The readiness rule (src/vm/readiness.ts): an SSH banner or a console marker ends the wait; an agent that answers
// while sshd does not yet listen (a stock cloud image before cloud-init made the user) does not, until its grace ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bannerAnswers, serialSize, waitGuestReady, type ReadinessProbe } from '../../src/vm/readiness.js';

const agentUp = { agent: async () => ({}) } as unknown as ReadinessProbe['hv'];
const agentDown = {
  agent: async () => {
    throw new Error('no answer');
  },
} as unknown as ReadinessProbe['hv'];

/** a TCP server that accepts and (optionally) says an SSH banner, as QEMU's hostfwd does before and after sshd listens */
async function server(banner: () => boolean): Promise<{ port: number; close: () => Promise<void> }> {
  const srv = net.createServer((s) => {
    if (banner()) s.write('SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n');
    s.on('error', () => undefined);
    setTimeout(() => s.destroy(), 200);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return { port, close: () => new Promise((r) => srv.close(() => r())) };
}

function serialLog(): { file: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'dbc-ready-'));
  const file = join(dir, 'serial.log');
  writeFileSync(file, 'old boot\nCloud-init v. 22.4.2 finished at earlier\ndbc-1 login: \n');
  return { file, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('a connect without a banner is not an answer; a banner is', async () => {
  let say = false;
  const s = await server(() => say);
  try {
    assert.equal(await bannerAnswers('127.0.0.1', s.port, 'ssh', 500), false);
    say = true;
    assert.equal(await bannerAnswers('127.0.0.1', s.port, 'ssh', 500), true);
  } finally {
    await s.close();
  }
});

test('the agent answering first does not end the wait while the SSH port can still be probed; the banner does', async () => {
  let say = false;
  const s = await server(() => say);
  const log = serialLog();
  try {
    const p: ReadinessProbe = {
      hv: agentUp,
      taskId: 't',
      serialLog: log.file,
      serialFrom: serialSize(log.file),
      port: { host: '127.0.0.1', port: s.port, protocol: 'ssh' },
    };
    const t0 = Date.now();
    setTimeout(() => (say = true), 700);
    const r = await waitGuestReady(p, { capMs: 10_000, intervalMs: 50, agentGraceMs: 5_000, stop: () => false });
    assert.equal(r, 'ssh');
    const ms = Date.now() - t0;
    assert.ok(ms >= 650 && ms < 3000, `ready after ${ms} ms`);
  } finally {
    await s.close();
    log.done();
  }
});

test('an agent without SSH is enough once its grace has passed', async () => {
  const s = await server(() => false);
  const log = serialLog();
  try {
    const p: ReadinessProbe = {
      hv: agentUp,
      taskId: 't',
      serialLog: log.file,
      serialFrom: serialSize(log.file),
      port: { host: '127.0.0.1', port: s.port, protocol: 'ssh' },
    };
    const t0 = Date.now();
    assert.equal(await waitGuestReady(p, { capMs: 10_000, intervalMs: 50, agentGraceMs: 600, stop: () => false }), 'agent');
    assert.ok(Date.now() - t0 >= 600);
  } finally {
    await s.close();
    log.done();
  }
});

test('console markers count only from this boot; a login prompt only where no port is probed', async () => {
  const s = await server(() => false);
  const log = serialLog();
  try {
    const withPort: ReadinessProbe = {
      hv: agentDown,
      taskId: 't',
      serialLog: log.file,
      serialFrom: serialSize(log.file),
      port: { host: '127.0.0.1', port: s.port, protocol: 'ssh' },
    };
    // the previous boot's markers are before serialFrom
    assert.equal(await waitGuestReady(withPort, { capMs: 300, intervalMs: 50, stop: () => false }), 'timeout');
    appendFileSync(log.file, 'Debian GNU/Linux 12 dbc-1 ttyS0\n\ndbc-1 login: \n');
    assert.equal(await waitGuestReady(withPort, { capMs: 300, intervalMs: 50, stop: () => false }), 'timeout');
    const noPort: ReadinessProbe = { ...withPort, port: undefined };
    assert.equal(await waitGuestReady(noPort, { capMs: 300, intervalMs: 50, stop: () => false }), 'serial');
    appendFileSync(log.file, '[   71.2] cloud-init[612]: Cloud-init v. 22.4.2 finished at Sun, 06 Dec 2026 03:40:00 +0000. Up 71.2 seconds\n');
    assert.equal(await waitGuestReady(withPort, { capMs: 300, intervalMs: 50, stop: () => false }), 'serial');
  } finally {
    await s.close();
    log.done();
  }
});

test('stop() ends the wait', async () => {
  const log = serialLog();
  try {
    let stop = false;
    setTimeout(() => (stop = true), 200);
    const p: ReadinessProbe = { hv: agentDown, taskId: 't', serialLog: log.file, serialFrom: serialSize(log.file) };
    assert.equal(await waitGuestReady(p, { capMs: 10_000, intervalMs: 50, stop: () => stop }), 'stopped');
  } finally {
    log.done();
  }
});
