import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockEntryOf, blockNodeOf, buildQemuArgs, driveId, hotplugCommands, macForTask } from '../../src/vm/qemu-args.js';
import type { VmSpec } from '../../src/vm/types.js';

const env = { accel: 'tcg' as const, ovmfCode: '/usr/share/OVMF/OVMF_CODE_4M.fd', ovmfVars: '/run/dbc/vm/t1/OVMF_VARS.fd' };

function spec(over: Partial<VmSpec> = {}): VmSpec {
  return {
    taskId: 't1',
    runDir: '/run/dbc/vm/t1',
    name: 'domain_t1',
    cpuCores: 2,
    memMiB: 2048,
    disks: [
      { name: 'vda', path: '/var/lib/dbc/disks/t1/vda.qcow2' },
      { name: 'vdb', path: '/var/lib/dbc/disks/t1/data1.qcow2' },
    ],
    seedIso: '/run/dbc/vm/t1/seed.iso',
    biosMode: 'legacy',
    os: 'linux',
    nicModel: 'virtio',
    forwards: [
      { proto: 'tcp', hostAddr: '0.0.0.0', hostPort: 20022, guestPort: 22 },
      { proto: 'udp', hostAddr: '127.0.0.1', hostPort: 20053, guestPort: 53 },
    ],
    vnc: { listen: '0.0.0.0', port: 5905, password: 'pw' },
    gpus: [],
    serialLog: '/var/log/dbc/t1.serial.log',
    ...over,
  };
}

/** the value following each occurrence of flag */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

test('legacy linux VM: machine, accel, cpu, memory, display, consoles, pidfile', () => {
  const a = buildQemuArgs(spec(), env);
  assert.deepEqual(values(a, '-name'), ['domain_t1']);
  assert.deepEqual(values(a, '-machine'), ['pc']);
  assert.deepEqual(values(a, '-accel'), ['tcg']);
  assert.deepEqual(values(a, '-smp'), ['2']);
  assert.deepEqual(values(a, '-m'), ['2048']);
  assert.deepEqual(values(a, '-display'), ['none']);
  assert.deepEqual(values(a, '-vnc'), ['0.0.0.0:5,password=on']);
  assert.ok(values(a, '-device').includes('VGA,id=video0'));
  assert.ok(
    values(a, '-chardev').includes('socket,id=serial0,path=/run/dbc/vm/t1/serial.sock,server=on,wait=off,logfile=/var/log/dbc/t1.serial.log,logappend=on'),
  );
  assert.deepEqual(values(a, '-serial'), ['chardev:serial0']);
  assert.deepEqual(values(a, '-qmp'), ['unix:/run/dbc/vm/t1/qmp.sock,server=on,wait=off']);
  assert.deepEqual(values(a, '-pidfile'), ['/run/dbc/vm/t1/qemu.pid']);
  assert.ok(values(a, '-chardev').includes('socket,id=qga0,path=/run/dbc/vm/t1/qga.sock,server=on,wait=off'));
  assert.ok(values(a, '-device').includes('virtserialport,chardev=qga0,name=org.qemu.guest_agent.0'));
  assert.ok(!a.includes('-no-reboot'), 'system_reset must reboot, not exit');
  assert.ok(!a.includes('-daemonize'));
  assert.ok(!a.includes('-boot'));
  assert.ok(!a.some((x) => x.includes('pflash')));
});

test('kvm uses the host cpu', () => {
  const a = buildQemuArgs(spec(), { ...env, accel: 'kvm' });
  assert.deepEqual(values(a, '-accel'), ['kvm']);
  assert.deepEqual(values(a, '-cpu'), ['host']);
});

test('disks are virtio-blk qcow2 with stable ids and serial=<name>, vda boots first, the seed is a read-only IDE CD', () => {
  const a = buildQemuArgs(spec(), env);
  const drives = values(a, '-drive');
  const devices = values(a, '-device');
  assert.ok(drives.includes('if=none,id=drive-vda,file=/var/lib/dbc/disks/t1/vda.qcow2,format=qcow2'));
  assert.ok(drives.includes('if=none,id=drive-vdb,file=/var/lib/dbc/disks/t1/data1.qcow2,format=qcow2'));
  assert.ok(devices.includes('virtio-blk-pci,drive=drive-vda,id=vda,serial=vda,bootindex=1'));
  assert.ok(devices.includes('virtio-blk-pci,drive=drive-vdb,id=vdb,serial=vdb'));
  assert.ok(drives.includes('if=none,id=drive-seed,file=/run/dbc/vm/t1/seed.iso,format=raw,media=cdrom,readonly=on'));
  assert.ok(devices.includes('virtio-scsi-pci,id=seed-scsi'));
  assert.ok(devices.includes('scsi-cd,bus=seed-scsi.0,drive=drive-seed,id=seed'));
  // no virtio disk besides the API's: the guest's vdX are vda, vdb (a hot-added vdc stays vdc)
  assert.deepEqual(
    devices.filter((d) => d.startsWith('virtio-blk-pci')).map((d) => /id=(\w+)/.exec(d)?.[1]),
    ['vda', 'vdb'],
  );
});

test('hot-plug uses the boot-time ids; a disk is found in query-block by id, device path or file', () => {
  assert.equal(driveId('vdc'), 'drive-vdc');
  const [add, dev] = hotplugCommands('vdc', '/d/x.qcow2');
  assert.deepEqual(add, {
    execute: 'blockdev-add',
    arguments: { driver: 'qcow2', 'node-name': 'drive-vdc', file: { driver: 'file', filename: '/d/x.qcow2' } },
  });
  assert.deepEqual(dev, { execute: 'device_add', arguments: { driver: 'virtio-blk-pci', drive: 'drive-vdc', id: 'vdc', serial: 'vdc' } });
  const entries = [
    {
      device: 'drive-vdb',
      qdev: '/machine/peripheral/vdb/virtio-backend',
      inserted: { 'node-name': '#block123', file: '/d/b', image: { 'virtual-size': 1024 } },
    },
    { device: '', qdev: '/machine/peripheral/vdc/virtio-backend', inserted: { 'node-name': 'drive-vdc', file: '/d/c' } },
    { device: '', inserted: { 'node-name': '#block9', file: '/d/e' } },
  ];
  assert.equal(blockNodeOf(entries, 'vdb', '/d/b'), '#block123');
  assert.equal(blockEntryOf(entries, 'vdb', '/d/b')?.inserted?.image?.['virtual-size'], 1024);
  assert.equal(blockNodeOf(entries, 'vdc', '/d/c'), 'drive-vdc');
  assert.equal(blockNodeOf(entries, 'vde', '/d/e'), '#block9');
  assert.equal(blockNodeOf(entries, 'vdd', '/d/d'), undefined);
});

test('user networking: one hostfwd per forward, NIC model and a MAC stable per task', () => {
  const a = buildQemuArgs(
    spec({
      nicModel: 'e1000',
      extraNics: [{ id: 'lan0', kind: 'mcast', mac: '52:54:00:aa:bb:cc', group: '239.254.0.7', port: 20001, localAddr: '127.0.0.1' }],
    }),
    env,
  );
  assert.deepEqual(values(a, '-netdev'), [
    'user,id=net0,hostfwd=tcp:0.0.0.0:20022-:22,hostfwd=udp:127.0.0.1:20053-:53',
    'socket,id=lan0,mcast=239.254.0.7:20001,localaddr=127.0.0.1',
  ]);
  assert.ok(values(a, '-device').includes('virtio-net-pci,netdev=lan0,id=nic-lan0,mac=52:54:00:aa:bb:cc,romfile='));
  const mac = macForTask('t1');
  assert.match(mac, /^52:54:00(:[0-9a-f]{2}){3}$/);
  assert.equal(mac, macForTask('t1'));
  assert.notEqual(mac, macForTask('t2'));
  assert.ok(values(a, '-device').includes(`e1000,netdev=net0,id=nic0,mac=${mac},romfile=`));
  assert.ok(buildQemuArgs(spec({ nicModel: 'rtl8139' }), env).some((x) => x.startsWith('rtl8139,netdev=net0')));
  assert.ok(buildQemuArgs(spec(), env).some((x) => x.startsWith('virtio-net-pci,netdev=net0')));
});

test('uefi adds the OVMF code read-only and the per-VM vars copy', () => {
  const drives = values(buildQemuArgs(spec({ biosMode: 'uefi' }), env), '-drive');
  assert.ok(drives.includes('if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd'));
  assert.ok(drives.includes('if=pflash,format=raw,file=/run/dbc/vm/t1/OVMF_VARS.fd'));
});

test('pxe boots from the network and needs no disk', () => {
  const a = buildQemuArgs(spec({ biosMode: 'pxe', disks: [], seedIso: undefined }), env);
  assert.deepEqual(values(a, '-boot'), ['n']);
  assert.ok(!values(a, '-drive').some((d) => d.includes('qcow2')));
  assert.ok(values(a, '-device').some((d) => d.startsWith('virtio-net-pci,netdev=net0') && d.endsWith(',bootindex=1')));
  assert.throws(() => buildQemuArgs(spec({ disks: [] }), env), /needs a disk/);
});

test('windows: q35, local-time RTC and a USB tablet', () => {
  const a = buildQemuArgs(spec({ os: 'windows', biosMode: 'uefi' }), env);
  assert.deepEqual(values(a, '-machine'), ['q35']);
  assert.deepEqual(values(a, '-rtc'), ['base=localtime']);
  assert.ok(values(a, '-device').some((d) => d.startsWith('qemu-xhci')));
  assert.ok(values(a, '-device').some((d) => d.startsWith('usb-tablet')));
  assert.deepEqual(values(buildQemuArgs(spec(), env), '-rtc'), []);
});

test('GPUs are passed through with vfio-pci', () => {
  const a = buildQemuArgs(spec({ gpus: ['0000:3b:00.0', '0000:af:00.1'] }), env);
  const vfio = values(a, '-device').filter((d) => d.startsWith('vfio-pci'));
  assert.deepEqual(vfio, ['vfio-pci,host=0000:3b:00.0', 'vfio-pci,host=0000:af:00.1']);
});

test('values that would break QEMU option syntax or escape the run directory are refused', () => {
  const bad: Array<[string, Partial<VmSpec>]> = [
    ['task id ../x', { taskId: '../x' }],
    ['task id with a comma', { taskId: 'a,b' }],
    ['task id too long', { taskId: 'a'.repeat(65) }],
    ['relative disk path', { disks: [{ name: 'vda', path: 'disk.qcow2' }] }],
    ['path a,b', { disks: [{ name: 'vda', path: '/var/a,b.qcow2' }] }],
    ['path with an option injected', { disks: [{ name: 'vda', path: '/x.qcow2,format=raw' }] }],
    ['path with ..', { disks: [{ name: 'vda', path: '/var/lib/../../etc/shadow' }] }],
    ['path with a newline', { serialLog: '/var/log/a\nb' }],
    ['runDir relative', { runDir: 'run/t1' }],
    ['socket path too long', { runDir: '/' + 'r'.repeat(100) }],
    ['seed path with comma', { seedIso: '/a,b.iso' }],
    ['disk name with comma', { disks: [{ name: 'vda,x', path: '/a.qcow2' }] }],
    [
      'duplicate disk name',
      {
        disks: [
          { name: 'vda', path: '/a.qcow2' },
          { name: 'vda', path: '/b.qcow2' },
        ],
      },
    ],
    ['VM name with comma', { name: 'a,b' }],
    ['port 70000', { forwards: [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 70000, guestPort: 22 }] }],
    ['port 0', { forwards: [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 2222, guestPort: 0 }] }],
    ['host address not IPv4', { forwards: [{ proto: 'tcp', hostAddr: 'localhost', hostPort: 2222, guestPort: 22 }] }],
    ['forward proto', { forwards: [{ proto: 'sctp' as 'tcp', hostAddr: '127.0.0.1', hostPort: 2222, guestPort: 22 }] }],
    ['vnc port below 5900', { vnc: { listen: '127.0.0.1', port: 5899, password: 'x' } }],
    ['vnc port 70000', { vnc: { listen: '127.0.0.1', port: 70000, password: 'x' } }],
    ['vnc listen hostname', { vnc: { listen: 'example.com', port: 5901, password: 'x' } }],
    ['PCI id without domain', { gpus: ['3b:00.0'] }],
    ['PCI id upper case', { gpus: ['0000:3B:00.0'] }],
    ['PCI id function 8', { gpus: ['0000:3b:00.8'] }],
    ['PCI id with option', { gpus: ['0000:3b:00.0,romfile=/x'] }],
    ['cpu 0', { cpuCores: 0 }],
    ['cpu 257', { cpuCores: 257 }],
    ['cpu fractional', { cpuCores: 1.5 }],
    ['mem 63', { memMiB: 63 }],
    ['mem too large', { memMiB: 1048577 }],
    ['nic model', { nicModel: 'ne2k' as 'virtio' }],
  ];
  for (const [what, over] of bad) {
    assert.throws(() => buildQemuArgs(spec(over), env), Error, what);
  }
  assert.throws(() => buildQemuArgs(spec({ biosMode: 'uefi' }), { ...env, ovmfVars: '/a,b' }), Error, 'ovmf vars with comma');
});

test('bridge mode: the first NIC is a tap, LAN NICs carry their MTU, bad names and groups are refused', () => {
  const a = buildQemuArgs(
    spec({ tap: 'dtm0123456789', extraNics: [{ id: 'lan0', kind: 'tap', mac: '52:54:00:01:02:03', ifname: 'dtl0123456789', mtu: 1450 }] }),
    env,
  );
  assert.deepEqual(values(a, '-netdev'), [
    'tap,id=net0,ifname=dtm0123456789,script=no,downscript=no',
    'tap,id=lan0,ifname=dtl0123456789,script=no,downscript=no',
  ]);
  assert.ok(values(a, '-device').includes('virtio-net-pci,netdev=lan0,id=nic-lan0,mac=52:54:00:01:02:03,romfile=,host_mtu=1450'));
  assert.throws(() => buildQemuArgs(spec({ tap: 'tap0,script=/bin/sh' }), env), /invalid tap name/);
  assert.throws(
    () =>
      buildQemuArgs(spec({ extraNics: [{ id: 'mc0', kind: 'mcast', mac: '52:54:00:01:02:03', group: '10.0.0.1', port: 5000, localAddr: '127.0.0.1' }] }), env),
    /not a multicast group/,
  );
  assert.throws(() => buildQemuArgs(spec({ extraNics: [{ id: 'mc0', kind: 'tap', mac: '52:54:00:01:02:03,x=1', ifname: 'dtl1' }] }), env), /invalid mac/);
});
