// The host port probe: only EADDRINUSE / EACCES mean "taken"; out of file descriptors is an error, never "occupied".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PortProbeError, probeFailure } from '../../src/net/port-probe.js';
import { DbcError } from '../../src/protocol/errors.js';

const errno = (code: string) => Object.assign(new Error(code), { code });

test('probeFailure: EADDRINUSE/EACCES are "not free", everything else an error', () => {
  assert.equal(probeFailure(errno('EADDRINUSE')), false);
  assert.equal(probeFailure(errno('EACCES')), false);
  for (const code of ['EMFILE', 'ENFILE']) {
    const e = probeFailure(errno(code));
    assert.ok(e instanceof PortProbeError && e instanceof DbcError);
    assert.deepEqual(e.toEnvelope(), { errcode: -3, message: 'internal error: host is out of file descriptors, try again later' });
    assert.equal(e.errno, code);
  }
  const other = probeFailure(errno('EADDRNOTAVAIL'));
  assert.ok(other instanceof PortProbeError);
  assert.equal(other.message, 'internal error: cannot probe host ports (EADDRNOTAVAIL)');
  assert.ok(probeFailure(new Error('no code')) instanceof PortProbeError);
});

test('isHostPortFree rejects with PortProbeError when the process is out of file descriptors (tcp and udp)', () => {
  const probe = fileURLToPath(new URL('../../src/net/port-probe.js', import.meta.url));
  // a child with 64 descriptors fills them with /dev/null and probes a free port
  const script = `
    import fs from 'node:fs';
    const { isHostPortFree, freePort } = await import(${JSON.stringify(probe)});
    const port = await freePort();
    const fds = [];
    try { for (;;) fds.push(fs.openSync('/dev/null', 'r')); } catch (e) { if (e.code !== 'EMFILE') throw e; }
    const out = {};
    for (const proto of ['tcp', 'udp']) {
      try { out[proto] = await isHostPortFree(port, '127.0.0.1', proto); }
      catch (e) { out[proto] = { name: e.name, errno: e.errno, message: e.message }; }
    }
    for (const fd of fds) fs.closeSync(fd);
    out.after = await isHostPortFree(port, '127.0.0.1', 'tcp');
    console.log(JSON.stringify(out));
  `;
  const res = JSON.parse(execFileSync('prlimit', ['--nofile=64:64', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' }));
  for (const proto of ['tcp', 'udp']) {
    assert.deepEqual(
      res[proto],
      { name: 'PortProbeError', errno: 'EMFILE', message: 'internal error: host is out of file descriptors, try again later' },
      proto,
    );
  }
  assert.equal(res.after, true, 'free again once descriptors are back');
});
