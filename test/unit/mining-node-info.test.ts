import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HostInfo } from '../../src/host/inventory.js';
import { formatSize, maskIp, miningNodeMessage } from '../../src/host/mining-node-info.js';

const GiB = 1024 ** 3;
const KiB_PER_GiB = 1024 * 1024;

function h200Host(over: Partial<HostInfo> = {}): HostInfo {
  return {
    os: 'Ubuntu 24.04.3 LTS (Noble Numbat) 6.18.44-fc-v657-gpu GNU/Linux',
    cpu: { type: 'Intel(R) Xeon(R) Processor', mhz: 2100, cores: 16, physicalCpus: 1, threadsPerCore: 1, usedPercent: 12.5 },
    mem: { totalKiB: 131981020, availableKiB: 131499056 },
    gpus: [
      {
        index: 0,
        name: 'NVIDIA H200',
        uuid: 'GPU-52cc09db-4612-69dd-1018-df7cba9febda',
        pciBusId: '0000:00:06.0',
        memTotalMiB: 143771,
        memUsedMiB: 0,
        driverVersion: '580.159.04',
        cudaVersion: '13.0',
      },
    ],
    gpuPassthrough: [{ pciBusId: '0000:00:06.0', functions: ['0000:00:06.0'], vfioReady: false }],
    disk: { path: '/data', totalBytes: 2000 * GiB, freeBytes: 1500 * GiB, type: 'SSD' },
    ...over,
  };
}

test('formatSize follows the original scale_size up to G', () => {
  assert.equal(formatSize(0), '0K');
  assert.equal(formatSize(1), '1K');
  assert.equal(formatSize(1023), '1023K');
  assert.equal(formatSize(1024), '1M');
  assert.equal(formatSize(1536), '1.5M');
  assert.equal(formatSize(32 * KiB_PER_GiB), '32G');
  assert.equal(formatSize(Math.round(23.45 * KiB_PER_GiB)), '23.45G');
  assert.equal(formatSize(1.999 * KiB_PER_GiB), '2G'); // 1.999 -> "2.00" -> 2
  assert.equal(formatSize(350 * KiB_PER_GiB), '350G');
  assert.equal(formatSize(2000 * KiB_PER_GiB), '2000G'); // never T
  assert.equal(formatSize(131981020), '125.87G');
  assert.equal(formatSize(-13 * KiB_PER_GiB), '-13G');
});

test('IPv4 is masked like the original: *.b.*.d', () => {
  assert.equal(maskIp('183.60.141.54'), '*.60.*.54');
  assert.equal(maskIp(''), '');
  assert.equal(maskIp('2001:db8:0:1::5'), '*:db8:*:1::5');
});

test('the /mining_nodes message of the H200 host has the original shape', () => {
  const msg = miningNodeMessage(h200Host(), {
    version: '0.4.1.8',
    ip: '183.60.141.54',
    gpuUsed: 0,
    networkMode: 'user',
    images: [{ image_name: 'ubuntu-22.04.qcow2', image_size: '4.5G' }],
  });
  assert.deepEqual(msg, {
    version: '0.4.1.8',
    node_type: '1',
    ip: '*.60.*.54',
    os: 'Ubuntu 24.04.3 LTS (Noble Numbat) 6.18.44-fc-v657-gpu GNU/Linux',
    cpu: { type: 'Intel(R) Xeon(R) Processor', hz: '2100MHz', cores: '15', used_usage: '12.5%', physical_cpus: '1' },
    gpu: { gpu_count: 1, gpu_used: 0, gpus: [{ index: 0, name: 'NVIDIA H200', mem: '140.4G', pci: '0000:00:06.0' }] },
    // 125.87 GiB of RAM > 64 GB: 32 GB held back for the host
    mem: { size: '93.87G', free: '93.41G', used_usage: '0.489669%' },
    disk_system: { type: 'SSD', size: '350G' },
    disk_data: [{ path: '/data', type: 'SSD', size: '2000G', free: '1500G', used_usage: '25%' }],
    images: [{ image_name: 'ubuntu-22.04.qcow2', image_size: '4.5G' }],
    network_mode: 'user',
  });
});

test('real clients get numbers for gpu_count and gpu_used and can subtract them', () => {
  const two = h200Host();
  two.gpus = [two.gpus[0]!, { ...two.gpus[0]!, index: 1, pciBusId: '0000:3b:00.0' }];
  const msg = miningNodeMessage(two, { version: 'v', ip: '1.2.3.4', gpuUsed: 1, images: [] }) as {
    gpu: { gpu_count: unknown; gpu_used: unknown };
    cpu: { hz: unknown };
  };
  assert.equal(typeof msg.gpu.gpu_count, 'number');
  assert.equal(typeof msg.gpu.gpu_used, 'number');
  assert.equal((msg.gpu.gpu_count as number) - (msg.gpu.gpu_used as number), 1);
  assert.equal(typeof msg.cpu.hz, 'string');
});

test('small hosts keep all memory; /data free leaves room for a 350G system disk', () => {
  const small = h200Host({
    mem: { totalKiB: 16 * KiB_PER_GiB, availableKiB: 12 * KiB_PER_GiB },
    disk: { path: '/data', totalBytes: 500 * GiB, freeBytes: 400 * GiB, type: 'HDD' },
    cpu: { type: 'AMD EPYC 7302 16-Core Processor', mhz: 3000, cores: 64, physicalCpus: 2, threadsPerCore: 2, usedPercent: 43.92623 },
    gpus: [],
  });
  const msg = miningNodeMessage(small, { version: 'v', ip: '10.0.0.1', gpuUsed: 0, images: [] }) as Record<string, any>;
  assert.deepEqual(msg.mem, { size: '16G', free: '12G', used_usage: '25%' });
  assert.deepEqual(msg.disk_data, [{ path: '/data', type: 'HDD', size: '500G', free: '150G', used_usage: '20%' }]);
  assert.deepEqual(msg.disk_system, { type: 'HDD', size: '350G' });
  // one physical core (2 threads) per socket held back
  assert.equal(msg.cpu.cores, '60');
  assert.equal(msg.cpu.used_usage, '43.9262%');
  assert.deepEqual(msg.gpu, { gpu_count: 0, gpu_used: 0, gpus: [] });
  assert.equal('network_mode' in msg, false);
  const custom = miningNodeMessage(small, { version: 'v', ip: '10.0.0.1', gpuUsed: 0, images: [], systemDiskGiB: 100, nodeType: '2' }) as Record<string, any>;
  assert.equal(custom.node_type, '2');
  assert.equal(custom.disk_system.size, '100G');
  assert.equal(custom.disk_data[0].free, '400G');
});
