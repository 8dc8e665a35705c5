// The QEMU driver against real QEMU (TCG) with a blank disk: SeaBIOS finds nothing to boot and just sits there,
// which is all these lifecycle checks need (and a guest that ignores the ACPI power button).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QemuHypervisor } from '../../src/vm/qemu.js';
import { GuestAgentClient, QmpClient, type QmpEvent } from '../../src/vm/qmp.js';
import type { VmExit, VmSpec } from '../../src/vm/types.js';

const root = mkdtempSync(join(tmpdir(), 'dbc-qemu-'));
const qemuPids = new Set<number>();
const hv = new QemuHypervisor({ accel: 'tcg' });
const exits: VmExit[] = [];
hv.onExit((e) => exits.push(e));

/** SIGKILL QEMUs this test started that are still around (checked by their argv, since pids get reused) */
function killLeftovers(): void {
  for (const pid of qemuPids) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(root)) continue;
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
process.on('exit', killLeftovers);
after(async () => {
  await hv.detachAll();
  killLeftovers();
  rmSync(root, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** the RFB version line and the security types a VNC server offers (RFB 3.8 handshake) */
function vncHandshake(port: number): Promise<{ version: string; securityTypes: number[] }> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let version = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('VNC handshake timed out'));
    }, 10000);
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!version && buf.length >= 12) {
        version = buf.subarray(0, 12).toString('latin1');
        buf = buf.subarray(12);
        s.write('RFB 003.008\n');
      }
      if (version && buf.length >= 1 && buf.length >= 1 + buf[0]!) {
        clearTimeout(timer);
        s.destroy();
        resolve({ version, securityTypes: [...buf.subarray(1, 1 + buf[0]!)] });
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

let vmCount = 0;
async function makeSpec(forwardPort: number): Promise<VmSpec> {
  vmCount++;
  const runDir = join(root, `vm${vmCount}`);
  mkdirSync(runDir);
  const disk = join(runDir, 'vda.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  return {
    taskId: `qdrv_${vmCount}`,
    runDir,
    name: `qdrv_${vmCount}`,
    cpuCores: 1,
    memMiB: 128,
    disks: [{ name: 'vda', path: disk }],
    biosMode: 'legacy',
    os: 'linux',
    nicModel: 'virtio',
    forwards: [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: forwardPort, guestPort: 22 }],
    vnc: { listen: '127.0.0.1', port: await freePort(), password: 'vncpass1' },
    gpus: [],
    serialLog: join(runDir, 'serial.log'),
  };
}

async function startTracked(h: QemuHypervisor, spec: VmSpec): Promise<number> {
  const { pid } = await h.start(spec);
  qemuPids.add(pid);
  return pid;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let a: VmSpec;
let aPid: number;

test('start: the VM runs, its forwarded port listens and VNC demands a password', { timeout: 60000 }, async () => {
  a = await makeSpec(await freePort());
  aPid = await startTracked(hv, a);
  assert.ok(alive(aPid));
  assert.equal(await hv.state(a.taskId), 'running');
  assert.deepEqual(hv.running(), [a.taskId]);
  assert.ok(await canConnect(a.forwards[0]!.hostPort), 'hostfwd port listens');
  const vnc = await vncHandshake(a.vnc.port);
  assert.equal(vnc.version, 'RFB 003.008\n');
  assert.deepEqual(vnc.securityTypes, [2], 'VNC authentication only, no "None"');
});

test('addForward / removeForward change what listens on the host', { timeout: 30000 }, async () => {
  const fwd = { proto: 'tcp' as const, hostAddr: '127.0.0.1', hostPort: await freePort(), guestPort: 80 };
  assert.equal(await canConnect(fwd.hostPort), false);
  await hv.addForward(a.taskId, fwd);
  assert.equal(await canConnect(fwd.hostPort), true);
  await assert.rejects(hv.addForward(a.taskId, fwd), /Could not set up host forwarding rule/);
  await hv.removeForward(a.taskId, fwd);
  assert.equal(await canConnect(fwd.hostPort), false);
  await assert.rejects(hv.removeForward(a.taskId, fwd), /not found/);
  assert.ok(await canConnect(a.forwards[0]!.hostPort), 'the start-time forward is untouched');
});

test('reset reboots in place: same process, still running', { timeout: 30000 }, async () => {
  await hv.reset(a.taskId);
  await sleep(300);
  assert.ok(alive(aPid));
  assert.equal(await hv.state(a.taskId), 'running');
});

test('pause is reported and wakeup resumes', { timeout: 30000 }, async () => {
  await hv.qmp(a.taskId, 'stop');
  assert.equal(await hv.state(a.taskId), 'paused');
  await hv.wakeup(a.taskId);
  assert.equal(await hv.state(a.taskId), 'running');
});

test('a guest agent call to a guest without an agent fails after its timeout', { timeout: 30000 }, async () => {
  const t0 = Date.now();
  await assert.rejects(hv.agent(a.taskId, 'guest-ping', undefined, 800), /guest agent guest-ping: no answer within 800 ms/);
  assert.ok(Date.now() - t0 >= 700);
  assert.equal(await hv.state(a.taskId), 'running');
});

test('shutdown of a guest that ignores the power button is forced after the timeout', { timeout: 30000 }, async () => {
  const t0 = Date.now();
  assert.equal(await hv.shutdown(a.taskId, 1500), 'forced');
  const took = Date.now() - t0;
  assert.ok(took >= 1500, `waited the timeout (${took} ms)`);
  assert.equal(alive(aPid), false);
  await sleep(200);
  assert.deepEqual(
    exits.filter((e) => e.taskId === a.taskId),
    [{ taskId: a.taskId, reason: 'host-qmp-quit' }],
  );
  assert.equal(await hv.state(a.taskId), 'shutoff');
  assert.deepEqual(hv.running(), []);
  await assert.rejects(hv.reset(a.taskId), /not running/);
});

test('destroy stops a running VM at once and reports its exit once', { timeout: 30000 }, async () => {
  const b = await makeSpec(await freePort());
  const pid = await startTracked(hv, b);
  await hv.destroy(b.taskId);
  assert.equal(alive(pid), false);
  assert.equal(await canConnect(b.forwards[0]!.hostPort), false);
  await hv.destroy(b.taskId); // no-op once gone
  await sleep(200);
  assert.equal(exits.filter((e) => e.taskId === b.taskId).length, 1);
});

test("a hostfwd port already taken fails the start with QEMU's reason", { timeout: 30000 }, async () => {
  const taken: Server = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const port = (taken.address() as { port: number }).port;
  try {
    const c = await makeSpec(port);
    await assert.rejects(hv.start(c), (err: Error) => {
      assert.match(err.message, new RegExp(`Could not set up host forwarding rule 'tcp:127\\.0\\.0\\.1:${port}-:22'`));
      return true;
    });
    assert.ok(!hv.running().includes(c.taskId));
    assert.equal(await hv.state(c.taskId), 'shutoff');
  } finally {
    await new Promise((resolve) => taken.close(resolve));
  }
});

/** start a VM from a separate node process (a stand-in daemon), then SIGKILL that process; returns the QEMU pid */
async function startFromKilledStarter(spec: VmSpec): Promise<number> {
  const starterPath = fileURLToPath(new URL('../helpers/qemu-starter.js', import.meta.url));
  const starter = spawn(process.execPath, [starterPath, JSON.stringify({ spec, accel: 'tcg' })], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    starter.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    starter.once('exit', (code) => reject(new Error(`starter exited early (${code}): ${out}`)));
  });
  const reply = JSON.parse(line) as { pid?: number; error?: string };
  assert.ok(reply.pid, `starter started a VM: ${line}`);
  qemuPids.add(reply.pid);
  const starterGone = new Promise((resolve) => starter.once('exit', resolve));
  starter.kill('SIGKILL');
  await starterGone;
  return reply.pid;
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await sleep(50);
  return cond();
}

test('a VM survives its SIGKILLed starter and a new driver adopts and destroys it', { timeout: 60000 }, async () => {
  const d = await makeSpec(await freePort());
  const pid = await startFromKilledStarter(d);
  await sleep(300);
  assert.ok(alive(pid), 'QEMU outlives the process that started it');
  assert.ok(await canConnect(d.forwards[0]!.hostPort));

  const hv2 = new QemuHypervisor({ accel: 'tcg' });
  const exits2: VmExit[] = [];
  hv2.onExit((e) => exits2.push(e));
  assert.equal(await hv2.adopt(d.taskId, join(root, 'no-such-vm')), false);
  assert.equal(await hv2.adopt(d.taskId, d.runDir), true);
  assert.deepEqual(hv2.running(), [d.taskId]);
  assert.equal(await hv2.state(d.taskId), 'running');
  await hv2.destroy(d.taskId);
  assert.equal(alive(pid), false);
  assert.deepEqual(exits2, [{ taskId: d.taskId, reason: 'host-qmp-quit' }]);
  assert.equal(await hv2.adopt(d.taskId, d.runDir), false, 'nothing left to adopt');
  await hv2.detachAll();
});

test('an adopted VM killed from outside is reported gone once', { timeout: 60000 }, async () => {
  const e = await makeSpec(await freePort());
  const pid = await startFromKilledStarter(e);
  const hv3 = new QemuHypervisor({ accel: 'tcg' });
  const exits3: VmExit[] = [];
  hv3.onExit((x) => exits3.push(x));
  assert.equal(await hv3.adopt(e.taskId, e.runDir), true);
  process.kill(pid, 'SIGKILL');
  assert.ok(await waitFor(() => exits3.length > 0, 10000), 'exit noticed');
  await sleep(300);
  assert.deepEqual(exits3, [{ taskId: e.taskId, reason: 'crashed' }]);
  assert.deepEqual(hv3.running(), []);
  assert.equal(await hv3.state(e.taskId), 'shutoff');
});

test('a started VM killed from outside is reported as killed', { timeout: 30000 }, async () => {
  const f = await makeSpec(await freePort());
  const pid = await startTracked(hv, f);
  process.kill(pid, 'SIGKILL');
  assert.ok(await waitFor(() => exits.some((x) => x.taskId === f.taskId), 5000));
  assert.deepEqual(
    exits.filter((x) => x.taskId === f.taskId),
    [{ taskId: f.taskId, reason: 'killed' }],
  );
  assert.equal(await hv.state(f.taskId), 'shutoff');
});

// --- protocol edge cases, against small fake peers on unix sockets ---

async function unixServer(name: string, onConn: (sock: import('node:net').Socket) => void): Promise<{ path: string; server: Server }> {
  const path = join(root, name);
  const server = createServer(onConn);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server };
}

test('QMP client: split greeting, garbage, out-of-order answers, events, errors, close', { timeout: 10000 }, async () => {
  const { path, server } = await unixServer('fake-qmp.sock', (sock) => {
    sock.write('{"QMP": {"version": {"qemu": {"major": 7, "minor"');
    setTimeout(() => sock.write(': 2, "micro": 22}}, "capabilities": []}}\r\nnot json at all\r\n'), 20);
    let buf = '';
    const held: Array<{ id: string }> = [];
    sock.on('data', (c) => {
      buf += c.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as { execute: string; id: string };
        buf = buf.slice(nl + 1);
        if (msg.execute === 'qmp_capabilities') sock.write(JSON.stringify({ return: {}, id: msg.id }) + '\r\n');
        else if (msg.execute === 'slow') held.push(msg);
        else if (msg.execute === 'fast') {
          // the fast answer and an event first, then the slow one, written byte-split
          const out =
            `{"event": "RESET", "data": {"guest": true}}\r\n{"return": "fast", "id": "${msg.id}"}\r\n` +
            held.map((h) => `{"return": "slow", "id": "${h.id}"}\r\n`).join('');
          sock.write(out.slice(0, 17));
          setTimeout(() => sock.write(out.slice(17)), 10);
        } else if (msg.execute === 'broken') {
          sock.write(JSON.stringify({ error: { class: 'CommandNotFound', desc: 'The command broken has not been found' }, id: msg.id }) + '\r\n');
        } else if (msg.execute === 'hang') sock.destroy();
      }
    });
  });
  try {
    const qmp = await QmpClient.connect(path, 2000);
    assert.equal(qmp.greeting.version?.qemu?.minor, 2);
    const events: QmpEvent[] = [];
    qmp.on('event', (e: QmpEvent) => events.push(e));
    const slow = qmp.execute('slow');
    const fast = qmp.execute('fast');
    assert.deepEqual(await Promise.all([slow, fast]), ['slow', 'fast']);
    assert.deepEqual(
      events.map((e) => e.event),
      ['RESET'],
    );
    await assert.rejects(qmp.execute('broken'), /The command broken has not been found/);
    let closed = 0;
    qmp.on('close', () => closed++);
    await assert.rejects(qmp.execute('hang'), /connection closed/);
    assert.equal(closed, 1);
    await assert.rejects(qmp.execute('fast'), /connection closed/);
  } finally {
    server.close();
  }
});

test('guest agent client: skips stale output, syncs with or without 0xFF, reports errors and silence', { timeout: 15000 }, async () => {
  let mode: 'sentinel' | 'plain' | 'error' | 'silent' = 'sentinel';
  const { path, server } = await unixServer('fake-qga.sock', (sock) => {
    // leftovers of an earlier client, including a half-written answer
    sock.write('{"return": 12345}\n{"return": {"stale": tr');
    let buf = '';
    sock.on('data', (c) => {
      buf += c.toString('latin1');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as { execute: string; arguments?: { id?: number } };
        buf = buf.slice(nl + 1);
        if (mode === 'silent') continue;
        if (msg.execute === 'guest-sync-delimited') {
          const reply = `{"return": ${msg.arguments!.id}}\n`;
          if (mode === 'plain') sock.write('ue}}\n' + reply);
          else sock.write(Buffer.concat([Buffer.from('garbage'), Buffer.from([0xff]), Buffer.from(reply)]));
        } else if (mode === 'error') {
          sock.write('{"error": {"class": "GenericError", "desc": "user does not exist"}}\n');
        } else {
          // no trailing newline: some agents end the answer without one
          sock.write(JSON.stringify({ return: { ran: msg.execute } }));
        }
      }
    });
  });
  try {
    const agent = new GuestAgentClient(path, 2000);
    assert.deepEqual(await agent.execute('guest-info'), { ran: 'guest-info' });
    mode = 'plain';
    assert.deepEqual(await agent.execute('guest-ping'), { ran: 'guest-ping' });
    mode = 'error';
    await assert.rejects(agent.execute('guest-set-user-password', { username: 'x', password: 'eA==', crypted: false }), /user does not exist/);
    mode = 'silent';
    await assert.rejects(agent.execute('guest-ping', undefined, 500), /no answer within 500 ms/);
    mode = 'sentinel';
    // commands queue: both answered, in order
    const [x, y] = await Promise.all([agent.execute('guest-get-time'), agent.execute('guest-get-host-name')]);
    assert.deepEqual([x, y], [{ ran: 'guest-get-time' }, { ran: 'guest-get-host-name' }]);
  } finally {
    server.close();
  }
});
