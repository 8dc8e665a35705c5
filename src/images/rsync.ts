// rsync as a child process: argument arrays only (never a shell), rsync:// URLs to image centres (rsync daemons).
import { spawn, type ChildProcess } from 'node:child_process';
import { formatBytes } from '../util/format.js';
import { NAME_RE } from './names.js';
import type { UploadCredential } from './secrets.js';
import { rsyncUrl, type ImageServer } from './servers.js';

export interface RemoteFile {
  name: string;
  size: number;
  /** 'YYYY/MM/DD hh:mm:ss' as rsync prints it */
  mtime: string;
}

export interface RsyncOptions {
  /** binary, default `rsync` from PATH */
  bin?: string;
  /** rsync --timeout (I/O idle seconds) */
  timeoutS?: number;
  /** rsync --contimeout (daemon connect seconds) */
  connectTimeoutS?: number;
}

export class RsyncError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'RsyncError';
  }
}

/** exit codes after which a partial file is worth keeping (interrupted, not wrong) */
export const RESUMABLE_EXIT = new Set([10, 12, 20, 30, 35]);

/** the most useful line of rsync's stderr: the first `rsync:` / `@ERROR` line, else the last line */
export function rsyncReason(stderr: string, code: number | null): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const pick =
    lines.find((l) => l.startsWith('@ERROR')) ??
    lines.find((l) => /^rsync: /.test(l) && !/some files\/attrs were not transferred/.test(l)) ??
    lines[lines.length - 1];
  return (pick ?? `rsync exited with ${code}`).replace(/^rsync: /, '').slice(0, 500);
}

/**
 * What a renter may read of an rsync failure: a short text by kind, never rsync's stderr (host paths, module
 * names, daemon messages). The raw text goes to the log.
 */
export function publicRsyncReason(stderr: string, code: number | null): string {
  if (/auth failed|password file|No password/i.test(stderr)) return 'the image server refused the credentials';
  if (/read only|write only|refused|denied|not permitted|Permission denied|Unknown module/i.test(stderr) && !/Connection refused/i.test(stderr)) {
    return 'the image server refused the transfer';
  }
  if (/Connection refused|No route to host|Name or service not known|unreachable|timed out|timeout/i.test(stderr)) return 'the image server is unreachable';
  if (/No such file or directory|link_stat/.test(stderr)) return 'the file does not exist on the image server';
  if (/No space left/i.test(stderr)) return 'no space left on the image server';
  return code === null ? 'rsync could not run' : `rsync failed (exit ${code})`;
}

export function commonArgs(o: RsyncOptions): string[] {
  return [`--timeout=${o.timeoutS ?? 120}`, `--contimeout=${o.connectTimeoutS ?? 20}`];
}

export interface RsyncRun {
  child: ChildProcess;
  pid: number;
  /** resolves when the process has exited */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

/** spawn rsync; stdout chunks go to onStdout, stderr is kept (last 16 KiB) */
export function runRsync(args: string[], o: RsyncOptions & { onStdout?: (chunk: string) => void } = {}): RsyncRun {
  const child = spawn(o.bin ?? 'rsync', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', RSYNC_PASSWORD: undefined } });
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d: string) => o.onStdout?.(d));
  child.stderr.on('data', (d: string) => {
    stderr = (stderr + d).slice(-16384);
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, stderr: `${stderr}\nrsync: ${err.message}` }));
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  return { child, pid: child.pid ?? 0, done };
}

const LIST_LINE = /^([-dlcbps])[rwxsStT-]{9}\s+([\d,.]+)\s+(\d{4}\/\d\d\/\d\d)\s+(\d\d:\d\d:\d\d)\s+(.+)$/;

/** parse `rsync --list-only` output: regular files only */
export function parseListing(text: string): RemoteFile[] {
  const out: RemoteFile[] = [];
  for (const line of text.split('\n')) {
    const m = LIST_LINE.exec(line.trimEnd());
    if (!m || m[1] !== '-') continue;
    const size = Number(m[2]!.replace(/[,.]/g, ''));
    if (!Number.isSafeInteger(size)) continue;
    out.push({ name: m[5]!, size, mtime: `${m[3]} ${m[4]}` });
  }
  return out;
}

async function listOnly(url: string, o: RsyncOptions): Promise<{ code: number | null; out: string; stderr: string }> {
  let out = '';
  const run = runRsync(['--list-only', '--no-motd', ...commonArgs(o), url], { ...o, onStdout: (d) => (out += d) });
  const r = await run.done;
  return { code: r.code, out, stderr: r.stderr };
}

/** the .qcow2 images of an image centre, by name */
export async function listImages(server: ImageServer, o: RsyncOptions = {}): Promise<RemoteFile[]> {
  const r = await listOnly(rsyncUrl(server), o);
  if (r.code !== 0) throw new RsyncError(rsyncReason(r.stderr, r.code), r.code, r.stderr);
  return parseListing(r.out)
    .filter((f) => NAME_RE.test(f.name) && f.name.endsWith('.qcow2'))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** one file of an image centre; undefined when it does not exist (or is not a regular file) */
export async function statRemote(server: ImageServer, file: string, o: RsyncOptions = {}): Promise<RemoteFile | undefined> {
  const r = await listOnly(rsyncUrl(server, file), o);
  if (r.code === 23 && /No such file or directory|link_stat/.test(r.stderr)) return undefined;
  if (r.code !== 0) throw new RsyncError(rsyncReason(r.stderr, r.code), r.code, r.stderr);
  return parseListing(r.out).find((f) => f.name === file);
}

/** the original's reply entries: `{image_name, image_size}` with scale_size units */
export function listEntry(f: RemoteFile): { image_name: string; image_size: string } {
  return { image_name: f.name, image_size: formatBytes(f.size) };
}

/**
 * Delete `file` from the image centre's partial directory (a failed upload leaves its partial there). rsync has no
 * remote rm: sync an empty directory onto it with --delete, filtered to that one name.
 */
export async function removeRemotePartial(
  server: ImageServer,
  partialDir: string,
  file: string,
  emptyDir: string,
  o: RsyncOptions = {},
  cred?: UploadCredential,
): Promise<void> {
  const run = runRsync(
    [
      '-r',
      '--delete',
      '--no-motd',
      ...commonArgs(o),
      ...(cred ? [`--password-file=${cred.passwordFile}`] : []),
      `--include=/${file}`,
      '--exclude=*',
      `${emptyDir.replace(/\/+$/, '')}/`,
      rsyncUrl(server, `${partialDir}/`, cred ? { user: cred.user, module: cred.uploadModule } : undefined),
    ],
    o,
  );
  await run.done;
}
