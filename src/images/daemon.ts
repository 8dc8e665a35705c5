// A local image centre for `dbc up`: `rsync --daemon --no-detach` as a child process on DIR/image-server/, seeded
// with a copy of the test image, registered on the client as ID_1 (dbc-docs §8.3). Two modules over that directory:
// `images`, read-only and anonymous (list and download, as the original's public centres), and `images-upload`,
// write-only with rsync `auth users` and a secrets file generated at every start (issue 10, finding 2).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { placeFile } from '../util/files.js';
import { listImages } from './rsync.js';
import type { UploadCredential } from './secrets.js';
import type { ImageServer } from './servers.js';

export interface RsyncDaemonOptions {
  /** folder for rsyncd.conf, the pid/log files and the module directory */
  dir: string;
  /** module name (default `images`) */
  module?: string;
  /** the id the client registers it under (default ID_1) */
  id?: string;
  /** listen address (default 127.0.0.1) */
  host?: string;
  /** the address clients use (default: host) */
  advertise?: string;
  /** port; 0 or absent: a free one */
  port?: number;
  /** images to place in the module directory (a copy of its own: reflink, else plain) when missing */
  seed?: string[];
  bin?: string;
}

export interface RsyncDaemon {
  server: ImageServer;
  /** the credentials of the upload module (password in a 0600 file; never on a command line) */
  upload: UploadCredential;
  /** the module directory */
  path: string;
  pid: number;
  stop(): Promise<void>;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** a daemon left by a `dbc up` that was killed (SIGKILL leaves its children): stop it, it holds the port */
function killPrevious(pidFile: string, conf: string): void {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  if (Number.isInteger(pid) && pid > 1) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.startsWith('rsync') && cmd.includes(conf)) process.kill(pid, 'SIGKILL');
    } catch {
      // not running
    }
  }
  rmSync(pidFile, { force: true });
}

function place(source: string, dir: string): void {
  // 0644: the centre's own copy, which nobody but the daemon's uploads touch
  placeFile(source, dir, 0o644);
}

export const UPLOAD_USER = 'dbc-upload';
export const uploadModuleOf = (module: string): string => `${module}-upload`;

export function rsyncdConf(o: {
  path: string;
  module: string;
  host: string;
  pidFile: string;
  uid: number;
  gid: number;
  secretsFile: string;
  user?: string;
}): string {
  return [
    '# written by dbc up: the local image centre',
    `address = ${o.host}`,
    'use chroot = no',
    `pid file = ${o.pidFile}`,
    // as root, rsyncd would switch to nobody, who cannot write the module: stay who we are
    `uid = ${o.uid}`,
    `gid = ${o.gid}`,
    'max connections = 0',
    'timeout = 600',
    '',
    // anonymous: list and download only
    `[${o.module}]`,
    `    path = ${o.path}`,
    '    comment = dbc images',
    '    read only = yes',
    '    write only = no',
    '    list = yes',
    '',
    // authenticated uploads over the same directory: no download, no listing, no in-place rewrite of a file
    `[${uploadModuleOf(o.module)}]`,
    `    path = ${o.path}`,
    '    comment = dbc image uploads',
    '    read only = no',
    '    write only = yes',
    '    list = no',
    `    auth users = ${o.user ?? UPLOAD_USER}`,
    `    secrets file = ${o.secretsFile}`,
    '    strict modes = yes',
    '    refuse options = inplace append append-verify',
    '',
  ].join('\n');
}

export async function startRsyncDaemon(o: RsyncDaemonOptions): Promise<RsyncDaemon> {
  const module = o.module ?? 'images';
  const host = o.host ?? '127.0.0.1';
  const path = join(o.dir, module === 'images' ? 'image-server' : module);
  mkdirSync(path, { recursive: true });
  for (const s of o.seed ?? []) place(s, path);
  const conf = join(o.dir, 'rsyncd.conf');
  const pidFile = join(o.dir, 'rsyncd.pid');
  // a fresh upload password at every start: the daemon's secrets file and the uploader's password file, both 0600
  const secretsFile = join(o.dir, 'rsyncd.secrets');
  const passwordFile = join(o.dir, 'rsyncd.password');
  const password = randomBytes(24).toString('base64url');
  for (const [f, text] of [
    [secretsFile, `${UPLOAD_USER}:${password}\n`],
    [passwordFile, `${password}\n`],
  ] as const) {
    rmSync(f, { force: true });
    writeFileSync(f, text, { mode: 0o600 });
  }
  const upload: UploadCredential = { user: UPLOAD_USER, passwordFile, uploadModule: uploadModuleOf(module) };
  writeFileSync(conf, rsyncdConf({ path, module, host, pidFile, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, secretsFile }));

  killPrevious(pidFile, conf);
  const portFile = join(o.dir, 'rsyncd.port');
  let lastErr = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    // the port of the previous run when it is free: records of interrupted uploads name it
    let port = o.port ?? 0;
    if (!port && attempt === 0 && existsSync(portFile)) {
      const old = Number(readFileSync(portFile, 'utf8').trim());
      if (Number.isInteger(old) && old > 0 && old < 65536 && (await portFree(host, old))) port = old;
    }
    if (!port) port = await freePort(host);
    const child: ChildProcess = spawn(
      o.bin ?? 'rsync',
      ['--daemon', '--no-detach', `--config=${conf}`, `--port=${port}`, `--log-file=${join(o.dir, 'rsyncd.log')}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    let exited = false;
    const gone = new Promise<void>((r) => {
      child.once('exit', () => {
        exited = true;
        r();
      });
      child.once('error', (e) => {
        stderr += e.message;
        exited = true;
        r();
      });
    });
    const server: ImageServer = { id: o.id ?? 'ID_1', host: o.advertise ?? host, port, module };
    // ready when a listing answers
    const end = Date.now() + 10_000;
    let ready = false;
    while (!exited && Date.now() < end) {
      try {
        await listImages(server, { connectTimeoutS: 2, timeoutS: 5 });
        ready = true;
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (ready) {
      writeFileSync(portFile, `${port}\n`);
      return {
        server,
        upload,
        path,
        pid: child.pid ?? 0,
        async stop() {
          if (!exited) {
            child.kill('SIGTERM');
            const t = setTimeout(() => child.kill('SIGKILL'), 3000);
            await gone;
            clearTimeout(t);
          }
        },
      };
    }
    if (!exited) child.kill('SIGKILL');
    await gone;
    lastErr = stderr.trim();
    if (o.port) break; // a fixed port that fails will not get better
  }
  throw new Error(`rsync daemon did not start: ${lastErr || 'no answer'}`);
}
