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
}

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
  if (!PASSWORD_RE.test(opts.password) || /['"\\]/.test(opts.password)) {
    throw new Error('invalid seed password: 1-64 printable ASCII characters without quotes or backslash');
  }
}

export function renderMetaData(opts: NoCloudSeedOptions): string {
  return `instance-id: ${opts.instanceId}\nlocal-hostname: ${opts.hostname}\n`;
}

export function renderUserData(opts: NoCloudSeedOptions): string {
  return [
    '#cloud-config',
    `hostname: ${opts.hostname}`,
    'ssh_pwauth: true',
    'users:',
    '  - default',
    `  - name: ${opts.user}`,
    '    lock_passwd: false',
    `    plain_text_passwd: '${opts.password}'`,
    '    shell: /bin/bash',
    '    sudo: ALL=(ALL) NOPASSWD:ALL',
    'chpasswd:',
    '  expire: false',
    '',
  ].join('\n');
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
