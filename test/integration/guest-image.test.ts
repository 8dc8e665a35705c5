// The dbc test guest image boots from its own disk (SeaBIOS and OVMF), takes its login from a NoCloud seed,
// answers SSH through a user-net hostfwd, obeys the ACPI power button and runs the mini guest agent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'ssh2';
import { writeNoCloudSeed } from '../../src/storage/seed.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const IMAGE = path.join(REPO, '.cache/images/dbc-test.qcow2');
const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
const BOOT_TIMEOUT_MS = 90_000;

let dir = '';
const vms: ChildProcess[] = [];

function exec(bin: string, args: string[], timeout = 120_000): Promise<string> {
  return new Promise((res, rej) => {
    execFile(bin, args, { timeout }, (err, stdout, stderr) => (err ? rej(new Error(`${bin}: ${stderr || err.message}`)) : res(stdout)));
  });
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = net.createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => res(port));
    });
  });
}

async function waitForSerial(log: string, marker: string, vm: ChildProcess, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (vm.exitCode !== null || vm.signalCode !== null) throw new Error(`QEMU exited before ${marker}`);
    const text = await fs.readFile(log, 'utf8').catch(() => '');
    if (text.includes(marker)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no ${marker} within ${timeoutMs} ms; serial:\n${await fs.readFile(log, 'utf8').catch(() => '')}`);
}

function startVm(name: string, extra: string[]): { vm: ChildProcess; serial: string; qmp: string; qga: string } {
  const serial = path.join(dir, `${name}.serial`);
  const qmp = path.join(dir, `${name}.qmp`);
  const qga = path.join(dir, `${name}.qga`);
  const vm = spawn(
    'qemu-system-x86_64',
    [
      '-accel',
      'tcg',
      '-m',
      '256',
      '-display',
      'none',
      '-monitor',
      'none',
      '-serial',
      `file:${serial}`,
      '-qmp',
      `unix:${qmp},server=on,wait=off`,
      '-device',
      'virtio-serial-pci',
      '-chardev',
      `socket,id=qga0,path=${qga},server=on,wait=off`,
      '-device',
      'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  vms.push(vm);
  return { vm, serial, qmp, qga };
}

function exited(vm: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (vm.exitCode !== null || vm.signalCode !== null) return Promise.resolve(true);
  return new Promise((res) => {
    const timer = setTimeout(() => res(false), timeoutMs);
    vm.once('exit', () => {
      clearTimeout(timer);
      res(true);
    });
  });
}

/** Sends JSON lines over a unix socket (QMP or guest agent) and collects one JSON reply per command. */
async function jsonExchange(socket: string, commands: object[], greeting: boolean): Promise<any[]> {
  return new Promise((res, rej) => {
    const s = net.createConnection(socket);
    const replies: any[] = [];
    let buf = '';
    let sent = 0;
    const timer = setTimeout(() => {
      s.destroy();
      rej(new Error(`no reply on ${socket}: ${JSON.stringify(replies)}`));
    }, 15_000);
    const next = () => {
      if (sent < commands.length) s.write(JSON.stringify(commands[sent++]) + '\n');
      else {
        clearTimeout(timer);
        s.end();
        res(replies);
      }
    };
    s.on('connect', () => {
      if (!greeting) next();
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
    s.on('data', (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (!line) continue;
        const msg = JSON.parse(line);
        if ('event' in msg) continue;
        if (!('QMP' in msg)) replies.push(msg);
        next();
      }
    });
  });
}

function sshExec(port: number, username: string, password: string, command: string): Promise<string> {
  return new Promise((res, rej) => {
    const c = new Client();
    c.on('ready', () => {
      c.exec(command, (err, stream) => {
        if (err) {
          c.end();
          rej(err);
          return;
        }
        let out = '';
        stream.on('data', (d: Buffer) => {
          out += d.toString();
        });
        stream.stderr.on('data', (d: Buffer) => {
          out += d.toString();
        });
        stream.on('close', () => {
          c.end();
          res(out);
        });
      });
    });
    c.on('error', rej);
    c.connect({ host: '127.0.0.1', port, username, password, readyTimeout: 30_000 });
  });
}

before(async () => {
  if (!existsSync(IMAGE)) await exec('bash', [path.join(REPO, 'scripts/build-test-image.sh')], 300_000);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dbc-guest-image-'));
});

after(async () => {
  for (const vm of vms) if (vm.exitCode === null && vm.signalCode === null) vm.kill('SIGKILL');
  await Promise.all(vms.map((vm) => exited(vm, 5_000)));
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test('legacy BIOS boot from its own disk: seed login over SSH, guest agent, ACPI power-off', { timeout: 180_000 }, async (t) => {
  const overlay = path.join(dir, 'legacy.qcow2');
  await exec('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', IMAGE, overlay]);
  const seed = path.join(dir, 'seed.iso');
  await writeNoCloudSeed(seed, { instanceId: 'task-legacy', hostname: 'dbc-task-1', user: 'renter', password: 'Pa ss-1!' });
  const port = await freePort();
  const t0 = Date.now();
  const { vm, serial, qmp, qga } = startVm('legacy', [
    '-drive',
    `file=${overlay},if=virtio,format=qcow2`,
    '-drive',
    `file=${seed},if=virtio,format=raw,readonly=on`,
    '-netdev',
    `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${port}-:22`,
    '-device',
    'virtio-net-pci,netdev=n0',
  ]);
  await waitForSerial(serial, 'DBC_GUEST_READY', vm, BOOT_TIMEOUT_MS);
  t.diagnostic(`legacy (SeaBIOS) boot to DBC_GUEST_READY: ${Date.now() - t0} ms`);
  const log = await fs.readFile(serial, 'utf8');
  assert.match(log, /DBC_GUEST_BOOT_OK/);
  assert.match(log, /dbc-guest: ip 10\.0\.2\.15 dev eth0/);

  const out = await sshExec(port, 'renter', 'Pa ss-1!', 'id -un; ip -4 addr; cat /etc/hostname');
  const lines = out.split('\n');
  assert.equal(lines[0], 'renter');
  assert.match(out, /inet 10\.0\.2\.15\/24/);
  assert.equal(lines.filter((l) => l.trim()).at(-1), 'dbc-task-1');

  const [sync, ping, info, setPw, unknown] = await jsonExchange(
    qga,
    [
      { execute: 'guest-sync', arguments: { id: 4242 } },
      { execute: 'guest-ping' },
      { execute: 'guest-info' },
      { execute: 'guest-set-user-password', arguments: { username: 'renter', password: Buffer.from('n3w-Secret').toString('base64'), crypted: false } },
      { execute: 'guest-no-such-command' },
    ],
    false,
  );
  assert.deepEqual(sync, { return: 4242 });
  assert.deepEqual(ping, { return: {} });
  assert.equal(info.return.version, 'dbc-mini-1');
  assert.deepEqual(setPw, { return: {} });
  assert.equal(unknown.error.class, 'CommandNotFound');
  assert.equal((await sshExec(port, 'renter', 'n3w-Secret', 'id -un')).trim(), 'renter');
  await assert.rejects(sshExec(port, 'renter', 'Pa ss-1!', 'true'));

  const [caps, powerdown] = await jsonExchange(qmp, [{ execute: 'qmp_capabilities' }, { execute: 'system_powerdown' }], true);
  assert.deepEqual(caps, { return: {} });
  assert.deepEqual(powerdown, { return: {} });
  assert.equal(await exited(vm, 10_000), true, 'QEMU still running 10 s after system_powerdown');
  assert.equal(vm.exitCode, 0);
});

test('UEFI (OVMF) boot from the same image reaches DBC_GUEST_READY', { timeout: 180_000 }, async (t) => {
  const overlay = path.join(dir, 'uefi.qcow2');
  await exec('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', IMAGE, overlay]);
  const vars = path.join(dir, 'OVMF_VARS.fd');
  await fs.copyFile(OVMF_VARS, vars);
  const t0 = Date.now();
  const { vm, serial } = startVm('uefi', [
    '-drive',
    `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`,
    '-drive',
    `if=pflash,format=raw,file=${vars}`,
    '-drive',
    `file=${overlay},if=virtio,format=qcow2`,
    '-netdev',
    'user,id=n0,restrict=on',
    '-device',
    'virtio-net-pci,netdev=n0',
  ]);
  await waitForSerial(serial, 'DBC_GUEST_READY', vm, BOOT_TIMEOUT_MS);
  t.diagnostic(`UEFI (OVMF) boot to DBC_GUEST_READY: ${Date.now() - t0} ms`);
  assert.match(await fs.readFile(serial, 'utf8'), /dbc-guest: ip 10\.0\.2\.15 dev eth0/);
  vm.kill('SIGTERM');
  assert.equal(await exited(vm, 10_000), true);
});

test('the seed ISO is a cidata volume with cloud-config user-data, and bad values are refused', async () => {
  const iso = path.join(dir, 'check.iso');
  await writeNoCloudSeed(iso, { instanceId: 'task-7', hostname: 'gpu-7', user: 'dbc', password: 'p@ss w0rd#1' });
  assert.match(await exec('isoinfo', ['-d', '-i', iso]), /Volume id: cidata/);
  const userData = await exec('isoinfo', ['-R', '-i', iso, '-x', '/user-data']);
  assert.ok(userData.startsWith('#cloud-config\n'));
  assert.match(userData, /^ {2}- name: dbc$/m);
  assert.match(userData, /^ {4}plain_text_passwd: 'p@ss w0rd#1'$/m);
  assert.match(userData, /^ssh_pwauth: true$/m);
  assert.equal(await exec('isoinfo', ['-R', '-i', iso, '-x', '/meta-data']), 'instance-id: task-7\nlocal-hostname: gpu-7\n');
  assert.equal(((await fs.stat(iso)).mode & 0o777).toString(8), '600');

  const ok = { instanceId: 'i', hostname: 'h', user: 'u', password: 'p' };
  for (const bad of [
    { user: 'Root' },
    { user: '-x' },
    { hostname: 'a.b' },
    { hostname: 'x'.repeat(64) },
    { instanceId: '../x' },
    { password: '' },
    { password: "it's" },
    { password: 'a"b' },
    { password: 'a\\b' },
    { password: 'a\nb' },
    { password: 'x'.repeat(65) },
  ]) {
    await assert.rejects(writeNoCloudSeed(path.join(dir, 'bad.iso'), { ...ok, ...bad }), /invalid seed/);
  }
  assert.equal(existsSync(path.join(dir, 'bad.iso')), false);
});
