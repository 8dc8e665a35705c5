import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostInventory } from '../../src/host/inventory.js';

function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return dir;
}
const fixtureDir = path.join(repoRoot(), 'test', 'fixtures', 'gpu-host-h200');
const fixture = (name: string) => fs.readFileSync(path.join(fixtureDir, name), 'utf8');
const hostTxt = fixture('host.txt').split('\n');
const kernel = hostTxt[0]!.split(' ')[2]!; // `uname -a`: Linux <host> <release> ...
const cpuCount = Number(hostTxt.find((l) => /^\d+$/.test(l.trim())));

const roots: string[] = [];
after(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

interface FakePci {
  addr: string;
  vendor: string;
  device: string;
  cls: string;
  driver?: string;
}

/** a /proc, /sys, /etc and /dev tree of the H200 host, with the PCI devices given */
function fakeHost(pci: FakePci[], opts: { vfio?: boolean } = {}) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dbc-host-'));
  roots.push(root);
  const proc = path.join(root, 'proc');
  const sys = path.join(root, 'sys');
  const etc = path.join(root, 'etc');
  const dev = path.join(root, 'dev');
  const data = path.join(root, 'data');
  for (const d of [proc, sys, etc, dev, data]) fs.mkdirSync(d);
  // the fixture holds the first processor block: repeat it for every CPU of that host
  const first = fixture('cpuinfo-head.txt').split(/\n\n/)[0]!;
  const blocks = Array.from({ length: cpuCount }, (_, i) =>
    first.replace(/^processor\t: \d+/m, `processor\t: ${i}`).replace(/^(core id|apicid|initial apicid)(\t*): \d+/gm, `$1$2: ${i}`),
  );
  fs.writeFileSync(path.join(proc, 'cpuinfo'), blocks.join('\n\n') + '\n\n');
  fs.writeFileSync(path.join(proc, 'meminfo'), fixture('meminfo.txt'));
  fs.writeFileSync(path.join(proc, 'stat'), 'cpu  1000 0 500 8000 500 0 0 0 0 0\ncpu0 1000 0 500 8000 500 0 0 0 0 0\n');
  const osLines = hostTxt.filter((l) => /^[A-Z_]+=/.test(l));
  fs.writeFileSync(path.join(etc, 'os-release'), ['NAME="Ubuntu"', ...osLines].join('\n') + '\n');
  if (opts.vfio) fs.mkdirSync(path.join(dev, 'vfio'));
  const devices = path.join(sys, 'bus', 'pci', 'devices');
  fs.mkdirSync(devices, { recursive: true });
  for (const p of pci) {
    const d = path.join(devices, p.addr);
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'vendor'), `${p.vendor}\n`);
    fs.writeFileSync(path.join(d, 'device'), `${p.device}\n`);
    fs.writeFileSync(path.join(d, 'class'), `${p.cls}\n`);
    if (p.driver) fs.symlinkSync(`../../../bus/pci/drivers/${p.driver}`, path.join(d, 'driver'));
  }
  return { root, proc, sys, etc, dev, data };
}

test('the H200 host: os, cpu, memory and its GPU from nvidia-smi', async () => {
  const h = fakeHost([{ addr: '0000:00:06.0', vendor: '0x10de', device: '0x2335', cls: '0x030200', driver: 'nvidia' }]);
  let smiCalls = 0;
  const inv = new HostInventory({
    dataDir: h.data,
    procRoot: h.proc,
    sysRoot: h.sys,
    etcRoot: h.etc,
    devRoot: h.dev,
    kernelRelease: kernel,
    nvidiaSmi: async () => {
      smiCalls++;
      return fixture('nvidia-smi-q.xml');
    },
  });
  const info = await inv.snapshot();
  assert.equal(info.os, 'Ubuntu 24.04.3 LTS (Noble Numbat) 6.18.44-fc-v657-gpu GNU/Linux');
  assert.deepEqual(info.cpu, {
    type: 'Intel(R) Xeon(R) Processor',
    mhz: 2100,
    cores: 16,
    physicalCpus: 1,
    threadsPerCore: 1,
    usedPercent: 0,
  });
  assert.deepEqual(info.mem, { totalKiB: 131981020, availableKiB: 131499056 });
  assert.equal(info.gpus.length, 1);
  assert.equal(info.gpus[0]!.name, 'NVIDIA H200');
  assert.equal(info.gpus[0]!.memTotalMiB, 143771);
  // bound to the nvidia driver and no /dev/vfio, as on the fixture host: listed, not ready for passthrough
  assert.deepEqual(info.gpuPassthrough, [{ pciBusId: '0000:00:06.0', functions: ['0000:00:06.0'], vfioReady: false }]);
  assert.equal(info.disk.path, h.data);
  assert.ok(info.disk.totalBytes > 0 && info.disk.freeBytes <= info.disk.totalBytes);
  assert.ok(info.disk.type === 'SSD' || info.disk.type === 'HDD');
  // polled again at once: served from the cache, nvidia-smi not run twice
  assert.equal(await inv.snapshot(), info);
  assert.equal(smiCalls, 1);
});

test('without nvidia-smi, NVIDIA display and 3D controllers are found in sysfs with all functions of their slot', async () => {
  const h = fakeHost(
    [
      { addr: '0000:00:02.0', vendor: '0x8086', device: '0x3e92', cls: '0x030000', driver: 'i915' },
      { addr: '0000:3b:00.0', vendor: '0x10de', device: '0x2684', cls: '0x030000', driver: 'vfio-pci' },
      { addr: '0000:3b:00.1', vendor: '0x10de', device: '0x22ba', cls: '0x040300', driver: 'vfio-pci' },
      { addr: '0000:af:00.0', vendor: '0x10de', device: '0x2335', cls: '0x030200', driver: 'vfio-pci' },
      { addr: '0000:af:00.1', vendor: '0x10de', device: '0x22ba', cls: '0x040300', driver: 'snd_hda_intel' },
    ],
    { vfio: true },
  );
  const inv = new HostInventory({
    dataDir: h.data,
    procRoot: h.proc,
    sysRoot: h.sys,
    etcRoot: h.etc,
    devRoot: h.dev,
    nvidiaSmi: async () => null,
  });
  const info = await inv.snapshot();
  assert.deepEqual(
    info.gpus.map((g) => [g.index, g.pciBusId, g.name]),
    [
      [0, '0000:3b:00.0', 'NVIDIA 10de:2684'],
      [1, '0000:af:00.0', 'NVIDIA 10de:2335'],
    ],
  );
  assert.deepEqual(info.gpuPassthrough, [
    { pciBusId: '0000:3b:00.0', functions: ['0000:3b:00.0', '0000:3b:00.1'], vfioReady: true },
    // the audio function is still held by the host driver: the slot cannot go to a guest yet
    { pciBusId: '0000:af:00.0', functions: ['0000:af:00.0', '0000:af:00.1'], vfioReady: false },
  ]);
});

test('without /dev/vfio no GPU is ready for passthrough', async () => {
  const h = fakeHost([{ addr: '0000:3b:00.0', vendor: '0x10de', device: '0x2684', cls: '0x030000', driver: 'vfio-pci' }]);
  const inv = new HostInventory({ dataDir: h.data, procRoot: h.proc, sysRoot: h.sys, devRoot: h.dev, nvidiaSmi: async () => null });
  assert.deepEqual((await inv.snapshot()).gpuPassthrough, [{ pciBusId: '0000:3b:00.0', functions: ['0000:3b:00.0'], vfioReady: false }]);
});

test('CPU usage is the busy share of the ticks since the previous snapshot', async () => {
  const h = fakeHost([]);
  const inv = new HostInventory({
    dataDir: h.data,
    procRoot: h.proc,
    sysRoot: h.sys,
    etcRoot: h.etc,
    devRoot: h.dev,
    nvidiaSmi: async () => null,
    cacheMs: 0,
  });
  assert.equal((await inv.snapshot()).cpu.usedPercent, 0);
  // +300 user, +100 system, +100 idle, +0 iowait: 80 % busy
  fs.writeFileSync(path.join(h.proc, 'stat'), 'cpu  1300 0 600 8100 500 0 0 0 0 0\n');
  assert.equal((await inv.snapshot()).cpu.usedPercent, 80);
  // +50 user, +50 iowait: 50 %
  fs.writeFileSync(path.join(h.proc, 'stat'), 'cpu  1350 0 600 8100 550 0 0 0 0 0\n');
  assert.equal((await inv.snapshot()).cpu.usedPercent, 50);
});

test('smoke: the real host (no GPUs here)', async () => {
  const inv = new HostInventory({ dataDir: os.tmpdir() });
  const info = await inv.snapshot();
  assert.ok(info.cpu.cores >= 1);
  assert.ok(info.cpu.physicalCpus >= 1);
  assert.ok(info.cpu.usedPercent >= 0 && info.cpu.usedPercent <= 100);
  assert.ok(info.mem.totalKiB > 0 && info.mem.availableKiB <= info.mem.totalKiB);
  assert.ok(info.os.includes(os.release()), info.os);
  assert.ok(info.disk.totalBytes > 0);
  assert.deepEqual(info.gpus, []);
  assert.deepEqual(info.gpuPassthrough, []);
});
