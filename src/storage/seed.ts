// NoCloud seed ISO (volume label `cidata`) carrying the login user, its password and the hostname. Read by the
// dbc test guest (scripts/guest/dbc-seed) and, unchanged, by cloud-init in Ubuntu/Debian cloud images.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export interface NoCloudSeedOptions {
  instanceId: string;
  hostname: string;
  user: string;
  password: string;
  /** the data disk's name (`vdb`): cloud-init formats it once (ext4, label dbc-data) and mounts it at /data */
  dataDisk?: string;
}

/** the label of the data disk's file system (cloud-init fs_setup, the test guest's dbc-data-disk) */
export const DATA_DISK_LABEL = 'dbc-data';
const DISK_RE = /^vd[a-z]{1,2}$/;

const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
const HOSTNAME_RE = /^[A-Za-z0-9-]{1,63}$/;
const INSTANCE_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
// printable ASCII without ' " \ : safe inside a single-quoted YAML scalar and in the guest's shell parsing
const PASSWORD_RE = /^[\x20-\x7e]{1,64}$/;

export function validateSeedOptions(opts: NoCloudSeedOptions): void {
  if (!INSTANCE_ID_RE.test(opts.instanceId)) {
    throw new Error(`invalid seed instanceId ${JSON.stringify(opts.instanceId)}: 1-64 of A-Z a-z 0-9 _ -`);
  }
  if (!HOSTNAME_RE.test(opts.hostname)) {
    throw new Error(`invalid seed hostname ${JSON.stringify(opts.hostname)}: 1-63 of A-Z a-z 0-9 -`);
  }
  if (!USER_RE.test(opts.user)) {
    throw new Error(`invalid seed user ${JSON.stringify(opts.user)}: lowercase letter or _ first, then up to 31 of a-z 0-9 _ -`);
  }
  if (opts.dataDisk !== undefined && !DISK_RE.test(opts.dataDisk)) throw new Error(`invalid seed data disk ${JSON.stringify(opts.dataDisk)}: vd + 1-2 letters`);
  if (!PASSWORD_RE.test(opts.password) || /['"\\]/.test(opts.password)) {
    throw new Error('invalid seed password: 1-64 printable ASCII characters without quotes or backslash');
  }
}

export function renderMetaData(opts: NoCloudSeedOptions): string {
  return `instance-id: ${opts.instanceId}\nlocal-hostname: ${opts.hostname}\n`;
}

/**
 * What a renter expects of a stock cloud image: the hostname resolvable (`manage_etc_hosts`, else sudo warns
 * `unable to resolve host`), password SSH, the login user in sudo; the data disk (by its serial, so by-id names the
 * API's disk) formatted ext4 once (`overwrite: false`: a disk with any file system is never reformatted) and mounted
 * at /data with nofail (a VM whose data disk was removed still boots).
 */
export function renderUserData(opts: NoCloudSeedOptions): string {
  const lines = [
    '#cloud-config',
    `hostname: ${opts.hostname}`,
    'manage_etc_hosts: localhost',
    'ssh_pwauth: true',
    'users:',
    '  - default',
    `  - name: ${opts.user}`,
    '    lock_passwd: false',
    `    plain_text_passwd: '${opts.password}'`,
    '    shell: /bin/bash',
    '    groups: [sudo]',
    '    sudo: ALL=(ALL) NOPASSWD:ALL',
    'chpasswd:',
    '  expire: false',
  ];
  if (opts.dataDisk) {
    lines.push(
      'fs_setup:',
      `  - label: ${DATA_DISK_LABEL}`,
      '    filesystem: ext4',
      `    device: /dev/disk/by-id/virtio-${opts.dataDisk}`,
      '    partition: none',
      '    overwrite: false',
      'mounts:',
      `  - [LABEL=${DATA_DISK_LABEL}, /data, ext4, "defaults,nofail", "0", "2"]`,
    );
  }
  return [...lines, ''].join('\n');
}

function run(bin: string, args: string[]): Promise<void> {
  return new Promise((res, rej) => {
    execFile(bin, args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) rej(new Error(`${bin} failed: ${String(stderr).trim() || err.message}`));
      else res();
    });
  });
}

/** Writes a NoCloud seed ISO at isoPath (replaced atomically). Throws on invalid options or genisoimage failure. */
export async function writeNoCloudSeed(isoPath: string, opts: NoCloudSeedOptions): Promise<void> {
  validateSeedOptions(opts);
  const target = resolve(isoPath);
  const dir = await mkdtemp(join(tmpdir(), 'dbc-seed-'));
  const partial = `${target}.${process.pid}.partial`;
  try {
    await writeFile(join(dir, 'meta-data'), renderMetaData(opts), { mode: 0o600 });
    await writeFile(join(dir, 'user-data'), renderUserData(opts), { mode: 0o600 });
    await run('genisoimage', ['-quiet', '-output', partial, '-volid', 'cidata', '-joliet', '-rock', join(dir, 'user-data'), join(dir, 'meta-data')]);
    await chmod(partial, 0o600); // it holds the password
    await rename(partial, target);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(partial, { force: true });
  }
}
